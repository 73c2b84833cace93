//! Addresses of Services that are gone, given back without a finalizer on every Service.
//!
//! A Service carries nothing of ours in its metadata, so deleting one never waits for this
//! controller (an uninstalled sart leaves no Service stuck in Terminating). What it held is
//! given back from the watch instead:
//! - a deletion event releases the Service's addresses and deletes its advertisements;
//! - after every (re)list, and every [`EVERY`] as a safety net, whatever the allocator holds or
//!   an advertisement names for a Service the cache no longer shows (or that is no longer a
//!   LoadBalancer of ours) is released the same way: this covers deletions missed while the
//!   watch was down or the controller was not running;
//! - a reconcile that assigned addresses to a Service deleted meanwhile gives them back itself
//!   ([`super::service::reconcile`] looks after assigning).
//!
//! Advertisements are also owned by their Service, so Kubernetes' garbage collector deletes
//! them with it; deleting them here withdraws the route without waiting for it.
//!
//! What is stale is decided by pure functions ([`stale_holders`], [`orphan_ads`]) over the
//! allocator, the advertisements and a presence test.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use ipam::ServiceKey;
use kube::ResourceExt;
use kube::runtime::{reflector, watcher};
use tokio::sync::mpsc;
use tracing::{info, warn};

use super::cached_ad::CachedAd;
use super::lb_service::LbService;
use super::service::ServiceContext;
use super::{ads, locked};
use k8s::cache;
use k8s::crd::AddressType;

/// How often everything held is checked against the cache, whatever the watch said.
pub(crate) const EVERY: Duration = Duration::from_secs(60);

/// What the Service watch says that may leave addresses behind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Gone {
    /// This Service was deleted.
    Deleted(ServiceKey),
    /// A (re)list completed: deletions during the gap were never seen one by one.
    Relisted,
}

/// Reads one watch event (after the reflector applied it to the cache).
pub(crate) fn gone(ev: &watcher::Event<LbService>) -> Option<Gone> {
    match ev {
        watcher::Event::Delete(s) => Some(Gone::Deleted(s.key())),
        watcher::Event::InitDone => Some(Gone::Relisted),
        _ => None,
    }
}

/// Services the allocator holds addresses for that are not `present`.
pub(crate) fn stale_holders<'a>(
    held: impl IntoIterator<Item = &'a ServiceKey>,
    present: impl Fn(&ServiceKey) -> bool,
) -> Vec<ServiceKey> {
    held.into_iter().filter(|k| !present(k)).cloned().collect()
}

/// The Service a Service advertisement was made for (namespace, its label), if it is one.
fn ad_service(ad: &CachedAd) -> Option<ServiceKey> {
    if ad.ad_type != AddressType::Service {
        return None;
    }
    let name = ad.service.as_ref()?;
    Some(ServiceKey::new(ad.namespace()?, name.clone()))
}

/// Service advertisements (namespace, name) whose Service is not `present`; ones already being
/// deleted are left to finish.
pub(crate) fn orphan_ads(
    ads: &[Arc<CachedAd>],
    present: impl Fn(&ServiceKey) -> bool,
) -> Vec<(String, String)> {
    ads.iter()
        .filter(|a| a.metadata.deletion_timestamp.is_none())
        .filter(|a| ad_service(a).is_some_and(|k| !present(&k)))
        .filter_map(|a| Some((a.namespace()?, a.name_any())))
        .collect()
}

/// Whether the cache shows `k` as a LoadBalancer Service of ours.
fn present(services: &reflector::Store<LbService>, k: &ServiceKey) -> bool {
    services
        .get(&reflector::ObjectRef::new(&k.name).within(&k.namespace))
        .is_some_and(|s| s.ours)
}

/// Releases what Services no longer in the cache hold: `only` one Service, or every one.
async fn collect(ctx: &ServiceContext, only: Option<&ServiceKey>) {
    let services = &ctx.caches.services;
    let is_present = |k: &ServiceKey| present(services, k);
    let released: Vec<(ServiceKey, Vec<std::net::IpAddr>)> = {
        let mut alloc = ctx.addresses.lock();
        let stale = match only {
            Some(k) => stale_holders([k], is_present),
            None => stale_holders(alloc.services().map(|(k, _)| k), is_present),
        };
        stale
            .into_iter()
            .map(|k| {
                let ips = alloc.release(&k);
                (k, ips)
            })
            .filter(|(_, ips)| !ips.is_empty())
            .collect()
    };
    for (k, ips) in &released {
        locked(&ctx.written).remove(k);
        info!(service = %k, ips = ?ips, "Service gone: addresses released");
    }
    let all_ads = ctx.caches.ads.state();
    let candidates: Vec<Arc<CachedAd>> = match only {
        Some(k) => all_ads
            .into_iter()
            .filter(|a| ad_service(a).as_ref() == Some(k))
            .collect(),
        None => all_ads,
    };
    for (ns, name) in orphan_ads(&candidates, is_present) {
        info!(advertisement = %name, namespace = %ns, "Service gone: advertisement deleted");
        if let Err(e) = ads::delete(&ctx.ads, &ns, &name).await {
            // Its owner reference lets the garbage collector finish; the next sweep retries.
            warn!(advertisement = %name, error = %e, "deleting a gone Service's advertisement");
        }
    }
    if !released.is_empty() {
        ctx.refresh.pools();
        // Freed addresses may be what a waiting Service needs.
        ctx.refresh.services();
    }
}

/// Gives back what gone Services held, as the watch reports them, until `gone` closes.
pub(crate) async fn run(ctx: Arc<ServiceContext>, mut gone: mpsc::UnboundedReceiver<Gone>) {
    // Before its first list the cache is empty, and everything would look gone.
    if cache::ready(&ctx.caches.services).await.is_err() {
        return;
    }
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + EVERY, EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            g = gone.recv() => match g {
                Some(Gone::Deleted(k)) => {
                    // Several deletions queued (a namespace deleted): one pass for them all.
                    let mut keys = BTreeSet::from([k]);
                    let mut sweep = false;
                    while let Ok(g) = gone.try_recv() {
                        match g {
                            Gone::Deleted(k) => { keys.insert(k); }
                            Gone::Relisted => sweep = true,
                        }
                    }
                    if sweep || keys.len() > 64 {
                        collect(&ctx, None).await;
                    } else {
                        for k in &keys {
                            collect(&ctx, Some(k)).await;
                        }
                    }
                }
                Some(Gone::Relisted) => collect(&ctx, None).await,
                None => return,
            },
            _ = tick.tick() => collect(&ctx, None).await,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use k8s::crd::{BGPAdvertisement, BGPAdvertisementSpec, Protocol, SERVICE_NAME_LABEL};

    fn ad(ns: &str, name: &str, service: Option<&str>, t: AddressType) -> Arc<CachedAd> {
        let mut a = BGPAdvertisement::new(
            name,
            BGPAdvertisementSpec {
                cidr: "198.18.0.1/32".into(),
                ad_type: t,
                protocol: Protocol::Ipv4,
                attrs: None,
            },
        );
        a.metadata.namespace = Some(ns.into());
        if let Some(s) = service {
            a.metadata.labels = Some([(SERVICE_NAME_LABEL.to_owned(), s.to_owned())].into());
        }
        Arc::new(serde_json::from_value(serde_json::to_value(a).unwrap()).unwrap())
    }

    #[test]
    fn deletions_and_relists_are_what_the_watch_reports() {
        let s: LbService = serde_json::from_value(
            serde_json::json!({"metadata": {"name": "a", "namespace": "d"}}),
        )
        .unwrap();
        assert_eq!(
            gone(&watcher::Event::Delete(s.clone())),
            Some(Gone::Deleted(ServiceKey::new("d", "a")))
        );
        assert_eq!(gone(&watcher::Event::InitDone), Some(Gone::Relisted));
        assert_eq!(gone(&watcher::Event::Apply(s.clone())), None);
        assert_eq!(gone(&watcher::Event::InitApply(s)), None);
        assert_eq!(gone(&watcher::Event::Init), None);
    }

    #[test]
    fn only_absent_holders_are_stale() {
        let held = [ServiceKey::new("d", "a"), ServiceKey::new("d", "b")];
        let stale = stale_holders(&held, |k| k.name == "a");
        assert_eq!(stale, [ServiceKey::new("d", "b")]);
        assert!(stale_holders(&held, |_| true).is_empty());
    }

    #[test]
    fn orphans_are_service_ads_of_absent_services_only() {
        let mut deleting = (*ad("d", "c-ad", Some("c"), AddressType::Service)).clone();
        deleting.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
            ));
        let ads = [
            ad("d", "a-ad", Some("a"), AddressType::Service),
            ad("d", "b-ad", Some("b"), AddressType::Service),
            // Same name in another namespace: another Service.
            ad("e", "a-ad", Some("a"), AddressType::Service),
            // A pod block's advertisement, even with the label, is not the Service side's.
            ad("d", "block", Some("b"), AddressType::Pod),
            ad("d", "unlabelled", None, AddressType::Service),
            Arc::new(deleting),
        ];
        let present = |k: &ServiceKey| k == &ServiceKey::new("d", "a");
        assert_eq!(
            orphan_ads(&ads, present),
            [
                ("d".to_owned(), "b-ad".to_owned()),
                ("e".to_owned(), "a-ad".to_owned())
            ]
        );
    }
}
