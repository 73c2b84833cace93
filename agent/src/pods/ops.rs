//! The operations the runtime asks for: ADD (choose addresses, record them, then set up the
//! kernel), DEL, CHECK; and what an ADD does when it fails halfway (undo, in that order
//! reversed).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Namespace, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, PostParams};
use kube::runtime::reflector::ObjectRef;
use tracing::{info, warn};

use crate::pod_ipam::{Allocation, Attachment, IpamError};
use crate::pod_pool::{self};
use crate::pod_store::{Stored, StoredAddress};
use crate::podnet::{self, NetError, PodLink};
use k8s::crd::{AddressPool, AddressReservation, AddressReservationSpec};
use k8s::pools;
use proto::v1 as pb;

use super::{PodError, PodNetwork, unix_now};

/// What an ADD must get onto this node before it can try again.
enum Missing {
    /// Another block of this pool.
    Block(String),
    /// A static address (of this pool): its block, or the address lent.
    Address(String, IpAddr),
}

impl PodNetwork {
    pub(crate) async fn add(&self, a: &pb::Args) -> Result<pb::CniResult, PodError> {
        let att = attachment(a)?;
        if a.netns.is_empty() {
            return Err(PodError::BadRequest("CNI_NETNS is required for ADD".into()));
        }
        // Refused before an address is taken (the kernel work would fail on it anyway).
        if !std::path::Path::new(&a.netns).exists() {
            return Err(PodError::BadRequest(format!(
                "CNI_NETNS {} does not exist",
                a.netns
            )));
        }
        let _slot = self.slot().await?;
        let _busy = self.claim(&att)?;
        let gateways = self.gateways().await?;
        let existing = self.lock().attachments.get(&att).cloned();
        let stored = match existing {
            // ADD again (a runtime retrying): the same addresses, set up again.
            Some(s) => s,
            None => self.allocate(a, &att).await?,
        };
        let link = PodLink {
            netns: PathBuf::from(&stored.netns),
            ifname: stored.ifname.clone(),
            host_ifname: stored.host_ifname.clone(),
            addresses: stored.addresses.iter().map(|s| s.ip).collect(),
            gateways,
        };
        self.settled(&stored.netns).await;
        match podnet::setup(link.clone()).await {
            Ok(made) => {
                info!(pod = %format!("{}/{}", stored.pod_namespace, stored.pod_name), addresses = ?link.addresses, veth = %link.host_ifname, "pod attached");
                Ok(result(&link, &made))
            }
            Err(e) => {
                warn!(container = %att.container_id, error = %e, "pod set-up failed; undoing it");
                if let Err(u) = self.undo(&stored).await {
                    warn!(container = %att.container_id, error = %u, "undoing a failed set-up");
                }
                Err(PodError::Net(e))
            }
        }
    }

    /// Chooses and takes the attachment's addresses and records them.
    async fn allocate(&self, a: &pb::Args, att: &Attachment) -> Result<Stored, PodError> {
        let cni_args = cni_args(a);
        let (ns, name) = match (
            cni_args.get("K8S_POD_NAMESPACE"),
            cni_args.get("K8S_POD_NAME"),
        ) {
            (Some(ns), Some(name)) if !ns.is_empty() && !name.is_empty() => (ns, name),
            _ => {
                return Err(PodError::BadRequest(
                    "CNI_ARGS must name the pod (K8S_POD_NAMESPACE and K8S_POD_NAME)".into(),
                ));
            }
        };
        // The runtime names the pod's uid (kubelet does): a cached pod of another uid is an
        // older pod of the same name the watch has not seen go yet.
        let uid = cni_args.get("K8S_POD_UID").filter(|u| !u.is_empty());
        let cached = self
            .pods
            .get(&ObjectRef::new(name).within(ns))
            .filter(|p| uid.is_none_or(|u| p.metadata.uid.as_ref() == Some(u)));
        let pod = match cached {
            Some(p) => p,
            // Just bound to this node: the watch may not have brought it yet.
            None => Arc::new(
                Api::<Pod>::namespaced(self.client.clone(), ns)
                    .get_opt(name)
                    .await
                    .map_err(|e| PodError::kube(&format!("reading pod {ns}/{name}"), e))?
                    .ok_or_else(|| PodError::NoPod(format!("pod {ns}/{name} does not exist")))?,
            ),
        };
        if let Some(u) = uid
            && pod.metadata.uid.as_ref() != Some(u)
        {
            return Err(PodError::NoPod(format!(
                "pod {ns}/{name} with uid {u} does not exist (the pod of that name has another)"
            )));
        }
        let namespace = match self.namespaces.get(&ObjectRef::new(ns)) {
            Some(n) => Some(n),
            None => Api::<Namespace>::all(self.client.clone())
                .get_opt(ns)
                .await
                .map_err(|e| PodError::kube(&format!("reading namespace {ns}"), e))?
                .map(Arc::new),
        };
        let all: Vec<AddressPool> = self.pools.state().iter().map(|p| (**p).clone()).collect();
        let valid: Vec<pools::ValidPool> = pools::validate(&all)
            .into_values()
            .filter_map(Result::ok)
            .collect();
        let empty = BTreeMap::new();
        let ns_annotations = namespace
            .as_ref()
            .and_then(|n| n.metadata.annotations.as_ref())
            .unwrap_or(&empty);
        let key = format!("{ns}/{name}");
        let reservation = self.reservations.get(&ObjectRef::new(name).within(ns));
        // A sticky pod's reservation goes the static addresses' way: the same checks, the same
        // paths to any node.
        let (sticky, annotations) = pod_pool::sticky_annotations(
            pod.metadata.annotations.as_ref().unwrap_or(&empty),
            ns_annotations,
            reservation.as_ref().map(|r| r.spec.addresses.as_slice()),
        );
        let choice = pod_pool::choose(
            &annotations,
            pod_pool::NamespaceView {
                name: ns,
                annotations: namespace
                    .as_ref()
                    .and_then(|n| n.metadata.annotations.as_ref())
                    .unwrap_or(&empty),
                labels: namespace
                    .as_ref()
                    .and_then(|n| n.metadata.labels.as_ref())
                    .unwrap_or(&empty),
            },
            &valid,
        )
        .map_err(PodError::Choice)?;
        // An address reserved for another pod is that pod's, wherever it runs next.
        if let pod_pool::Choice::Static(ips) = &choice {
            for (ip, _) in ips {
                if let Some(other) = self.reserved_for(*ip).filter(|o| *o != key) {
                    let by = other
                        .split_once('/')
                        .filter(|(other_ns, _)| *other_ns == ns.as_str())
                        .map(|_| format!(" pod {other}"))
                        .unwrap_or_else(|| " another pod".to_owned());
                    return Err(PodError::Taken(format!(
                        "address {ip} is reserved for{by} (sticky)"
                    )));
                }
            }
        }
        let stored = self.allocate_with(a, att, ns, name, &pod, &choice).await?;
        if sticky && reservation.is_none() {
            self.reserve(ns, name, &pod, &stored).await;
        }
        Ok(stored)
    }

    /// Keeps a sticky pod's first addresses for its name, owned by the pod's owner (deleting a
    /// StatefulSet deletes its pods' reservations). A failure costs stickiness, not the pod.
    async fn reserve(&self, ns: &str, name: &str, pod: &Pod, stored: &Stored) {
        let mut r = AddressReservation::new(
            name,
            AddressReservationSpec {
                addresses: stored.addresses.iter().map(|a| a.ip.to_string()).collect(),
            },
        );
        r.metadata.namespace = Some(ns.to_owned());
        r.metadata.owner_references = pod.metadata.owner_references.as_ref().map(|refs| {
            refs.iter()
                .filter(|o| o.controller == Some(true))
                .map(|o| OwnerReference {
                    block_owner_deletion: None,
                    ..o.clone()
                })
                .collect()
        });
        let api: Api<AddressReservation> = Api::namespaced(self.client.clone(), ns);
        match api.create(&PostParams::default(), &r).await {
            Ok(_) => {
                info!(pod = %format!("{ns}/{name}"), addresses = ?r.spec.addresses, "addresses reserved (sticky)")
            }
            Err(kube::Error::Api(e)) if e.code == 409 => {}
            Err(e) => {
                warn!(pod = %format!("{ns}/{name}"), error = %e, "reserving a sticky pod's addresses")
            }
        }
    }

    async fn allocate_with(
        &self,
        a: &pb::Args,
        att: &Attachment,
        ns: &str,
        name: &str,
        pod: &Pod,
        choice: &pod_pool::Choice,
    ) -> Result<Stored, PodError> {
        let network = network_name(&a.conf_json);
        let chosen: Vec<String> = match &choice {
            pod_pool::Choice::Pools(p) => p.clone(),
            pod_pool::Choice::Static(_) => Vec::new(),
        };
        // Each round may bring one more block (or a static address); a handful covers a dual-stack pod
        // whose blocks fill up under it meanwhile.
        for _ in 0..4 {
            let outcome = 'pick: {
                let mut st = self.lock();
                self.sync_blocks(&mut st);
                let out = match st.ipam.allocate(att, choice) {
                    Ok(out) => out,
                    Err(IpamError::NotOnThisNode { ip }) => {
                        let pool = match &choice {
                            pod_pool::Choice::Static(ips) => ips
                                .iter()
                                .find(|(i, _)| *i == ip)
                                .map(|(_, p)| p.clone())
                                .unwrap_or_default(),
                            pod_pool::Choice::Pools(_) => String::new(),
                        };
                        // A static address in no block of this node: get it here first.
                        break 'pick Err(Missing::Address(pool, ip));
                    }
                    Err(IpamError::Taken { ip }) => {
                        if let Some((host, _)) = st.ipam.loans().iter().find(|(_, l)| l.ip == ip) {
                            // A sticky pod back before the node it ran on gave its address
                            // back: soon.
                            if self.reserved_for(ip).as_deref() == Some(&format!("{ns}/{name}")) {
                                return Err(PodError::TryAgain(format!(
                                    "address {ip} is still lent to the node this pod ran on (AddressBlock {host}); try again"
                                )));
                            }
                            return Err(PodError::Taken(format!(
                                "address {ip} is lent to another node (AddressBlock {host})"
                            )));
                        }
                        let by = st
                            .ipam
                            .holder(ip)
                            .and_then(|h| st.attachments.get(h))
                            .filter(|s| s.pod_namespace == *ns)
                            .map(|s| format!(" by pod {}/{}", s.pod_namespace, s.pod_name))
                            .unwrap_or_default();
                        return Err(PodError::Taken(format!(
                            "address {ip} is taken{by} on this node"
                        )));
                    }
                    Err(e) => return Err(PodError::Ipam(e)),
                };
                if let Allocation::NeedBlock(pool) = out {
                    break 'pick Err(Missing::Block(pool));
                }
                let record = st
                    .ipam
                    .record(att)
                    .cloned()
                    .unwrap_or(crate::pod_ipam::Record {
                        addresses: Vec::new(),
                    });
                let stored = Stored {
                    container_id: att.container_id.clone(),
                    ifname: att.ifname.clone(),
                    network: network.clone(),
                    netns: a.netns.clone(),
                    pod_namespace: ns.to_owned(),
                    pod_name: name.to_owned(),
                    host_ifname: podnet::host_ifname(&att.container_id, &att.ifname),
                    addresses: record
                        .addresses
                        .iter()
                        .map(|(ip, block)| StoredAddress {
                            ip: *ip,
                            block: block.clone(),
                        })
                        .collect(),
                    pod_uid: pod.metadata.uid.clone().unwrap_or_default(),
                    created: unix_now(),
                };
                st.attachments.insert(att.clone(), stored.clone());
                for (_, block) in &record.addresses {
                    st.empty_since.remove(block);
                }
                if self.queue_ahead(&mut st, &chosen) {
                    self.ahead_wanted.notify_one();
                }
                Ok(stored)
            };
            match outcome {
                Ok(stored) => {
                    if let Err(e) = self.save(&stored).await {
                        self.forget(&stored);
                        return Err(PodError::Store(e));
                    }
                    return Ok(stored);
                }
                Err(Missing::Block(pool)) => self.request_block(&pool, false).await?,
                Err(Missing::Address(pool, ip)) => self.request_address(&pool, ip, ns).await?,
            }
        }
        Err(PodError::TryAgain(
            "the node's blocks filled up faster than new ones came; try again".into(),
        ))
    }

    pub(super) async fn save(&self, s: &Stored) -> Result<(), String> {
        let store = self.store.clone();
        let s = s.clone();
        tokio::task::spawn_blocking(move || store.save(&s))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())
    }

    /// Releases an attachment's addresses in memory.
    pub(super) fn forget(&self, s: &Stored) {
        let mut st = self.lock();
        let att = s.attachment();
        st.ipam.release(&att);
        st.attachments.remove(&att);
    }

    /// Removes whatever an attachment has: its veth, its addresses, its record.
    pub(super) async fn undo(&self, s: &Stored) -> Result<(), PodError> {
        let deletion = podnet::teardown(
            s.host_ifname.clone(),
            s.addresses.iter().map(|a| a.ip).collect(),
        )
        .await
        .map_err(PodError::Net)?;
        if let Some(d) = deletion {
            self.deleting(&s.netns, d);
        }
        self.forget(s);
        let store = self.store.clone();
        let h = s.host_ifname.clone();
        tokio::task::spawn_blocking(move || store.remove(&h))
            .await
            .map_err(|e| PodError::Store(e.to_string()))?
            .map_err(|e| PodError::Store(e.to_string()))?;
        self.blocks_changed.notify_waiters();
        Ok(())
    }

    pub(crate) async fn del(&self, a: &pb::Args) -> Result<(), PodError> {
        let att = attachment(a)?;
        let _slot = self.slot().await?;
        let _busy = self.claim(&att)?;
        let stored = self.lock().attachments.get(&att).cloned();
        match stored {
            Some(s) => {
                self.undo(&s).await?;
                info!(pod = %format!("{}/{}", s.pod_namespace, s.pod_name), veth = %s.host_ifname, "pod detached");
            }
            // Nothing recorded under this container: a pod adopted without its container id
            // is found by its veth; a veth of a lost record is still ours to remove.
            None => {
                let host = podnet::host_ifname(&att.container_id, &att.ifname);
                let adopted = self
                    .lock()
                    .attachments
                    .values()
                    .find(|s| s.host_ifname == host)
                    .cloned();
                if let Some(s) = adopted {
                    // The leak GC may be at the same record.
                    let _adopted_busy = self.claim(&s.attachment())?;
                    if self.lock().attachments.get(&s.attachment()) != Some(&s) {
                        return Ok(());
                    }
                    self.undo(&s).await?;
                    info!(pod = %format!("{}/{}", s.pod_namespace, s.pod_name), veth = %host, "adopted pod detached");
                    return Ok(());
                }
                if let Some(d) = podnet::teardown(host.clone(), Vec::new())
                    .await
                    .map_err(PodError::Net)?
                {
                    self.deleting(&a.netns, d);
                    info!(veth = %host, "removed a veth with no record");
                }
            }
        }
        Ok(())
    }

    pub(crate) async fn check(&self, a: &pb::Args) -> Result<(), PodError> {
        let att = attachment(a)?;
        let _slot = self.slot().await?;
        let _busy = self.claim(&att)?;
        let stored = self.lock().attachments.get(&att).cloned().ok_or_else(|| {
            PodError::NotAsRecorded(format!(
                "no attachment of container {} interface {} is recorded on this node",
                att.container_id, att.ifname
            ))
        })?;
        let link = PodLink {
            netns: PathBuf::from(if a.netns.is_empty() {
                &stored.netns
            } else {
                &a.netns
            }),
            ifname: stored.ifname.clone(),
            host_ifname: stored.host_ifname.clone(),
            addresses: stored.addresses.iter().map(|s| s.ip).collect(),
            gateways: self.gateways().await?,
        };
        podnet::check(link).await.map_err(|e| match e {
            NetError::Check(m) | NetError::NoLink(m) => PodError::NotAsRecorded(m),
            other => PodError::Net(other),
        })
    }
}

/// The CNI network's `name` in a configuration as `sart-cni` received it (empty if none).
pub(crate) fn network_name(conf: &str) -> String {
    serde_json::from_str::<serde_json::Value>(conf)
        .ok()
        .and_then(|v| v["name"].as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// CNI_ARGS as key/value pairs: split by our sart-cni, else (sart's) as the runtime wrote them.
fn cni_args(a: &pb::Args) -> std::collections::HashMap<String, String> {
    if !a.args_map.is_empty() {
        return a.args_map.clone();
    }
    a.args
        .split(';')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

fn attachment(a: &pb::Args) -> Result<Attachment, PodError> {
    if a.container_id.is_empty() || a.ifname.is_empty() {
        return Err(PodError::BadRequest(
            "CNI_CONTAINERID and CNI_IFNAME are required".into(),
        ));
    }
    Ok(Attachment {
        container_id: a.container_id.clone(),
        ifname: a.ifname.clone(),
    })
}

/// The ADD result: the host veth, the pod's interface (index 1), each address with its gateway,
/// and a default route per family.
fn result(link: &PodLink, made: &podnet::Made) -> pb::CniResult {
    let ips = link
        .addresses
        .iter()
        .map(|ip| pb::IpConf {
            interface: 1,
            address: format!("{ip}/{}", if ip.is_ipv4() { 32 } else { 128 }),
            gateway: link.gateways.for_ip(*ip).to_string(),
        })
        .collect();
    let routes = link
        .addresses
        .iter()
        .map(|ip| pb::RouteConf {
            dst: if ip.is_ipv4() { "0.0.0.0/0" } else { "::/0" }.into(),
            gw: link.gateways.for_ip(*ip).to_string(),
            mtu: 0,
            advmss: 0,
        })
        .collect();
    pb::CniResult {
        interfaces: vec![
            pb::Interface {
                name: link.host_ifname.clone(),
                mac: made.host_mac.clone(),
                sandbox: String::new(),
                mtu: 0,
            },
            pb::Interface {
                name: link.ifname.clone(),
                mac: made.pod_mac.clone(),
                sandbox: link.netns.to_string_lossy().into_owned(),
                mtu: 0,
            },
        ],
        ips,
        routes,
        dns: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cni_args_from_our_pairs_or_sarts_string() {
        let ours = pb::Args {
            args: "K8S_POD_NAME=ignored".into(),
            args_map: [("K8S_POD_NAME".to_owned(), "web-0".to_owned())].into(),
            ..Default::default()
        };
        assert_eq!(cni_args(&ours)["K8S_POD_NAME"], "web-0");
        let sarts = pb::Args {
            args: "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0;junk".into(),
            ..Default::default()
        };
        let a = cni_args(&sarts);
        assert_eq!(a["K8S_POD_NAMESPACE"], "default");
        assert_eq!(a["K8S_POD_NAME"], "web-0");
        assert_eq!(a.len(), 3);
    }
}
