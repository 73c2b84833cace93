//! LoadBalancer addresses for Services. What a Service asks for is read from the watch
//! ([`super::lb_service`]); the addresses come from the pure allocator in `ipam`; this module
//! only moves the answer into `status.loadBalancer.ingress`, a condition and Events.
//!
//! A Service is ours when it is `type: LoadBalancer` with no `loadBalancerClass` or with ours.
//! Turning it into another type releases its addresses here; deleting it releases them from
//! the watch ([`super::service_gone`]), with no finalizer on the Service.

use std::collections::BTreeSet;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ipam::{FamilyPolicy, IpFamily, LbError, LbRequest, ServiceKey};
use k8s_openapi::api::core::v1::{LoadBalancerIngress, Namespace};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::runtime::reflector;
use kube::{Client, Resource, ResourceExt};
use serde_json::json;
use tracing::{info, warn};

use super::cached_ad::CachedAd;
use super::condition::{self, says};
use super::context::{Addresses, Ads, Events, Refresh};
use super::lb_service::LbService;
use super::{Error, ads, advertise, locked, set_finalizer};
use k8s::crd::{
    AddressType, BGPAdvertisement, BGPAdvertisementSpec, BGPPeer, Protocol as AdProtocol,
    SERVICE_NAME_LABEL,
};

/// The Service controller's, and the gone-Service task's.
pub(crate) struct ServiceContext {
    pub(crate) client: Client,
    pub(crate) events: Arc<Events>,
    pub(crate) addresses: Arc<Addresses>,
    pub(crate) refresh: Refresh,
    pub(crate) ads: Arc<Ads>,
    /// Our status as last written on each Service, until the cache shows it: a reconcile that
    /// sees the object from before that write skips it, and a repeated condition keeps its time.
    pub(crate) written: Mutex<HashMap<ipam::ServiceKey, Written>>,
    pub(crate) caches: ServiceCaches,
}

pub(crate) struct ServiceCaches {
    pub(crate) slices: reflector::Store<EndpointSlice>,
    pub(crate) ads: reflector::Store<CachedAd>,
    pub(crate) peers: reflector::Store<BGPPeer>,
    /// Their labels decide which pools their Services may use.
    pub(crate) namespaces: reflector::Store<Namespace>,
    /// Every Service, as much as is read of it: what the Service controller reconciles, and
    /// what tells a gone Service from a live one.
    pub(crate) services: reflector::Store<LbService>,
}

/// What earlier versions put on every Service they gave an address to; taken off where found.
pub const FINALIZER: &str = "service.sart.terassyi.net/finalizer";
/// The condition we keep on Services: whether their addresses are assigned.
pub const CONDITION: &str = "sart.terassyi.net/AddressAssigned";

/// An Event reason for an allocation failure.
fn reason(e: &LbError) -> &'static str {
    match e {
        LbError::UnknownPool { .. } => "UnknownPool",
        LbError::NoPool { .. } => "NoPool",
        LbError::NotInPool { .. } => "RequestedIPNotInPool",
        LbError::RequestedIpTaken { .. } => "RequestedIPTaken",
        LbError::PoolExhausted { .. } => "PoolExhausted",
        LbError::PoolNotAllowed { .. } => "PoolNotAllowed",
        _ => "AllocationFailed",
    }
}

/// Records every Service's current addresses before anything new is given out, oldest Service
/// first, so that a restarted controller hands out exactly what the cluster already shows.
pub(crate) fn restore_all(
    alloc: &mut ipam::Allocator,
    services: &[LbService],
) -> Vec<(ServiceKey, LbError)> {
    let mut ours: Vec<&LbService> = services
        .iter()
        .filter(|s| s.ours || s.finalizers().iter().any(|f| f == FINALIZER))
        .collect();
    ours.sort_by_key(|s| (s.metadata.creation_timestamp.as_ref().map(|t| t.0), s.key()));
    let mut conflicts = Vec::new();
    for s in ours {
        if s.ingress.is_empty() {
            continue;
        }
        let req = s
            .request
            .clone()
            .unwrap_or_else(|_| LbRequest::new(FamilyPolicy::Single(IpFamily::Ipv4)));
        if let Err(e) = alloc.restore(&s.key(), req, &s.ingress) {
            conflicts.push((s.key(), e));
        }
    }
    conflicts
}

pub(crate) async fn reconcile(
    svc: Arc<LbService>,
    ctx: Arc<ServiceContext>,
) -> Result<Action, Error> {
    let k = svc.key();
    let api: Api<LbService> = Api::namespaced(ctx.client.clone(), &k.namespace);
    let has_finalizer = svc.finalizers().iter().any(|f| f == FINALIZER);
    if svc.meta().deletion_timestamp.is_some() || !svc.ours {
        let released = ctx.addresses.lock().release(&k);
        locked(&ctx.written).remove(&k);
        // Held here, or released already by the sweep of `service_gone` while its status still
        // says we assigned it.
        let held = !released.is_empty() || svc.says_assigned(CONDITION);
        // sart (and an earlier version of ours) finalized Services: every one, in sart's case,
        // ClusterIP ones included. Those get the finalizer off and their advertisements
        // cleaned, but no status of ours unless we held addresses for them.
        if held || has_finalizer {
            if !released.is_empty() {
                info!(service = %k, ips = ?released, "addresses released");
            }
            if held && svc.meta().deletion_timestamp.is_none() {
                // No longer a LoadBalancer of ours: take our addresses out of its status.
                let mine: BTreeSet<IpAddr> = match released.is_empty() {
                    true => svc.ingress.iter().copied().collect(),
                    false => released.iter().copied().collect(),
                };
                let keep: Vec<IpAddr> = svc
                    .ingress
                    .iter()
                    .copied()
                    .filter(|ip| !mine.contains(ip))
                    .collect();
                write_status(
                    &ctx,
                    &api,
                    &svc,
                    &keep,
                    Some(("Released", "not a LoadBalancer Service of ours")),
                )
                .await?;
            }
            sync_ads(&svc, &[], &ctx).await?;
            if has_finalizer {
                set_finalizer(&api, &*svc, FINALIZER, false).await?;
            }
        }
        if !released.is_empty() {
            ctx.refresh.pools();
            // Freed addresses may be what a waiting Service needs.
            ctx.refresh.services();
        }
        return Ok(Action::await_change());
    }
    let req = match svc.request.clone() {
        Ok(r) => r,
        Err(e) => {
            ctx.warn(&svc, "InvalidAnnotation", &e.to_string()).await;
            write_status(
                &ctx,
                &api,
                &svc,
                &svc.ingress,
                Some(("InvalidRequest", &e.to_string())),
            )
            .await?;
            return Ok(Action::await_change());
        }
    };
    // Read and validated once for both: the allocator's pools and the namespace's.
    let valid = ctx.addresses.valid_service_pools();
    ctx.addresses.sync_pools_from(&valid);
    let mut req = req;
    let labels = namespace_labels(&ctx, &k.namespace).await?;
    req.allowed_pools = Some(k8s::pools::usable_by(&valid, labels.as_ref()));
    let req_for_retain = req.clone();
    let (held, assigned) = {
        let mut alloc = ctx.addresses.lock();
        let held = alloc.ips(&k).map(<[IpAddr]>::to_vec).unwrap_or_default();
        (held, alloc.assign(&k, req))
    };
    // Deleted while this reconcile ran: the watch's release may have come before the assignment
    // above, and the cache dropped the Service before that release, so looking now is enough.
    if !still_cached(&ctx, &svc) {
        let released = ctx.addresses.lock().release(&k);
        info!(service = %k, ips = ?released, "Service gone while assigning: addresses released");
        ctx.refresh.pools();
        ctx.refresh.services();
        return Ok(Action::await_change());
    }
    match assigned {
        Ok(ips) => {
            // An earlier version's finalizer comes off. The status is written on the object as
            // patched, so the reconcile the patch wakes knows the status write is ours (see
            // `Written`).
            let svc = if has_finalizer {
                Arc::new(set_finalizer(&api, &*svc, FINALIZER, false).await?)
            } else {
                svc
            };
            // The allocator, not the (possibly stale) object, says whether this is news.
            if held != ips {
                info!(service = %k, ips = ?ips, before = ?held, "addresses assigned");
                let list: Vec<String> = ips.iter().map(ToString::to_string).collect();
                // Told once, when decided, and off the path to the route.
                let (c, s) = (ctx.clone(), svc.clone());
                tokio::spawn(async move {
                    c.normal(&s, "AddressAssigned", &list.join(",")).await;
                });
                ctx.refresh.pools();
            }
            // The advertisement first: it is what the agents act on, so the route does not wait
            // for the status write.
            sync_ads(&svc, &ips, &ctx).await?;
            write_status(&ctx, &api, &svc, &ips, None).await?;
            // The EndpointSlice event that woke us may reach our slice cache a moment later:
            // Local Services look again, so their announcing nodes are never stale for long.
            if svc.local {
                return Ok(Action::requeue(Duration::from_secs(10)));
            }
            Ok(Action::await_change())
        }
        Err(e) => {
            warn!(service = %k, error = %e, "no address");
            ctx.warn(&svc, reason(&e), &e.to_string()).await;
            // A pool its namespace may no longer use: what it holds there goes (status,
            // advertisements); other refusals leave its addresses as they are.
            let ips = if matches!(e, LbError::PoolNotAllowed { .. }) {
                let kept = ctx.addresses.lock().retain_allowed(&k, &req_for_retain);
                if kept != held {
                    info!(service = %k, ips = ?kept, before = ?held, "addresses of a pool the namespace may not use released");
                    sync_ads(&svc, &kept, &ctx).await?;
                    ctx.refresh.pools();
                }
                kept
            } else {
                svc.ingress.clone()
            };
            write_status(&ctx, &api, &svc, &ips, Some((reason(&e), &e.to_string()))).await?;
            // Pool changes trigger a new attempt; this is a safety net.
            Ok(Action::requeue(Duration::from_secs(60)))
        }
    }
}

/// Whether the Service cache still holds this very Service (same UID).
fn still_cached(ctx: &ServiceContext, svc: &LbService) -> bool {
    let at = kube::runtime::reflector::ObjectRef::from_obj(svc);
    ctx.caches
        .services
        .get(&at)
        .is_some_and(|s| s.metadata.uid == svc.metadata.uid)
}

/// A namespace's labels: from the cache, else (created a moment ago) from the API server;
/// `None` for a namespace that does not exist.
async fn namespace_labels(
    ctx: &ServiceContext,
    namespace: &str,
) -> Result<Option<std::collections::BTreeMap<String, String>>, Error> {
    if let Some(n) = ctx
        .caches
        .namespaces
        .get(&kube::runtime::reflector::ObjectRef::new(namespace))
    {
        return Ok(Some(n.labels().clone()));
    }
    let api: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(ctx.client.clone());
    Ok(api
        .get_opt(namespace)
        .await
        .map_err(Error::Kube)?
        .map(|n| n.labels().clone()))
}

/// Our status as last written on a Service.
#[derive(Clone, Debug)]
pub(crate) struct Written {
    pub condition: Condition,
    pub ips: Vec<IpAddr>,
    /// resourceVersion of the object the write was made on: a reconcile that still sees that
    /// version has not seen the write yet.
    pub based_on: Option<String>,
}

/// Writes ingress and our condition, only when they differ from what the Service shows (or,
/// when the Service is seen from before our last write, from what we wrote).
async fn write_status(
    ctx: &ServiceContext,
    api: &Api<LbService>,
    svc: &LbService,
    ips: &[IpAddr],
    failure: Option<(&str, &str)>,
) -> Result<(), Error> {
    let mut conditions: Vec<Condition> = svc.conditions.clone();
    let (st, reason, message) = match failure {
        None => ("True", "Assigned", String::new()),
        Some((r, m)) => ("False", r, m.to_owned()),
    };
    let key = svc.key();
    let last = locked(&ctx.written).get(&key).cloned();
    if let Some(w) = &last
        && w.based_on.is_some()
        && w.based_on == svc.metadata.resource_version
        && w.ips == ips
        && says(&w.condition, st, reason, &message)
    {
        return Ok(());
    }
    let old = conditions.iter().position(|c| c.type_ == CONDITION);
    let current = old.map(|i| conditions[i].clone());
    let unchanged_condition = current
        .as_ref()
        .is_some_and(|c| says(c, st, reason, &message));
    if unchanged_condition && svc.ingress == ips {
        // The object shows our status, and no later reconcile sees an older one: the memo of
        // our write has served.
        locked(&ctx.written).remove(&key);
        return Ok(());
    }
    let condition = match (current, last) {
        (Some(c), _) if unchanged_condition => c,
        // The object may be stale: a condition we wrote that says the same keeps its time, so a
        // repeated patch changes nothing on the server.
        (_, Some(w)) if says(&w.condition, st, reason, &message) => w.condition,
        _ => condition::new(CONDITION, st, reason, message, svc.metadata.generation),
    };
    match old {
        Some(i) => conditions[i] = condition.clone(),
        None => conditions.push(condition.clone()),
    }
    let ingress: Vec<LoadBalancerIngress> = ips
        .iter()
        .map(|ip| LoadBalancerIngress {
            ip: Some(ip.to_string()),
            ip_mode: Some("VIP".into()),
            ..LoadBalancerIngress::default()
        })
        .collect();
    let patch = json!({
        "status": {
            "loadBalancer": { "ingress": ingress },
            "conditions": conditions,
        }
    });
    api.patch_status(
        &svc.name_any(),
        &PatchParams::default(),
        &Patch::Merge(&patch),
    )
    .await
    .map_err(Error::Kube)?;
    locked(&ctx.written).insert(
        key,
        Written {
            condition,
            ips: ips.to_vec(),
            based_on: svc.metadata.resource_version.clone(),
        },
    );
    Ok(())
}

/// One BGPAdvertisement per address, owned by the Service (Kubernetes deletes them with it), with
/// `status.peers` moved towards the peers that should announce it; advertisements of addresses
/// the Service no longer holds are deleted, and the agents withdraw what has no advertisement.
async fn sync_ads(svc: &LbService, ips: &[IpAddr], ctx: &ServiceContext) -> Result<(), Error> {
    let ns = svc.namespace().unwrap_or_default();
    let name = svc.name_any();
    let existing: Vec<Arc<CachedAd>> = ctx
        .caches
        .ads
        .state()
        .into_iter()
        .filter(|a| a.namespace().as_deref() == Some(ns.as_str()))
        .filter(|a| a.service.as_ref() == Some(&name))
        .collect();
    let wanted: BTreeSet<String> = ips.iter().map(|ip| advertise::name(&name, *ip)).collect();
    for a in &existing {
        if !wanted.contains(&a.name_any()) && a.metadata.deletion_timestamp.is_none() {
            info!(advertisement = %a.name_any(), "address released: advertisement deleted");
            ads::delete(&ctx.ads, &ns, &a.name_any()).await?;
        }
    }
    if ips.is_empty() {
        return Ok(());
    }
    let peers: Vec<BGPPeer> = ctx
        .caches
        .peers
        .state()
        .iter()
        .map(|p| (**p).clone())
        .collect();
    // Only this Service's slices: copying every slice of the cluster for every Service made a
    // burst of N Services cost N² copies.
    let slices: Vec<EndpointSlice> = ctx
        .caches
        .slices
        .state()
        .iter()
        .filter(|s| s.namespace().as_deref() == Some(ns.as_str()))
        .filter(|s| s.labels().get(SERVICE_NAME_LABEL) == Some(&name))
        .map(|s| (**s).clone())
        .collect();
    let targets = advertise::target_peers(svc, &peers, &slices);
    for ip in ips {
        let ad_name = advertise::name(&name, *ip);
        let (cidr, protocol) = match ip {
            IpAddr::V4(_) => (format!("{ip}/32"), AdProtocol::Ipv4),
            IpAddr::V6(_) => (format!("{ip}/128"), AdProtocol::Ipv6),
        };
        let mut want = BGPAdvertisement::new(
            &ad_name,
            BGPAdvertisementSpec {
                cidr,
                ad_type: AddressType::Service,
                protocol,
                attrs: None,
            },
        );
        want.metadata.namespace = Some(ns.clone());
        want.metadata.labels = Some([(SERVICE_NAME_LABEL.to_owned(), name.clone())].into());
        want.metadata.owner_references = svc.controller_owner_ref(&()).map(|o| vec![o]);
        let found = existing.iter().find(|a| a.name_any() == ad_name);
        ads::ensure(&ctx.ads, found.map(|a| &**a), &want, &targets).await?;
    }
    Ok(())
}

impl ServiceContext {
    async fn warn(&self, svc: &LbService, reason: &str, note: &str) {
        self.events
            .event(svc, EventType::Warning, reason, "Allocate", note)
            .await;
    }

    async fn normal(&self, svc: &LbService, reason: &str, note: &str) {
        self.events.event_once(svc, reason, "Allocate", note).await;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    use k8s_openapi::jiff::Timestamp;

    fn svc(v: serde_json::Value) -> LbService {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn restore_keeps_the_older_service_on_a_contested_address() {
        let mk = |name: &str, t: i64, ip: &str| {
            svc(json!({
                "metadata": {"name": name, "namespace": "d",
                    "creationTimestamp": Timestamp::from_second(t).unwrap().to_string()},
                "spec": {"type": "LoadBalancer", "ipFamilies": ["IPv4"]},
                "status": {"loadBalancer": {"ingress": [{"ip": ip}]}}
            }))
        };
        let pools = vec![ipam::LbPool {
            name: "p".into(),
            cidr: "10.0.0.0/24".parse().unwrap(),
            auto_assign: true,
            selective: false,
        }];
        let mut a = ipam::Allocator::new(pools).unwrap();
        let conflicts = restore_all(
            &mut a,
            &[mk("young", 200, "10.0.0.7"), mk("old", 100, "10.0.0.7")],
        );
        assert_eq!(conflicts.len(), 1);
        assert_eq!(conflicts[0].0.name, "young");
        assert_eq!(
            a.ips(&ServiceKey::new("d", "old")).unwrap(),
            ["10.0.0.7".parse::<IpAddr>().unwrap()]
        );
    }
}
