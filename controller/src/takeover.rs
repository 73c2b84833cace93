//! Taking over a cluster that ran sart before this one. sart put finalizers on every Node,
//! EndpointSlice and Service and on its own ClusterBGPs, NodeBGPs, BGPPeers, BGPAdvertisements
//! and BlockRequests; nothing here acts on them, so each of those objects would hang in Terminating
//! when deleted. sart also kept a `type: service` AddressBlock per Service pool, which nothing
//! here uses. A sweep at start, and again every [`PERIOD`] while sart's agents may still be
//! running on nodes not yet upgraded, removes those finalizers (and only those) and deletes the
//! Service blocks.
//!
//! The controller patches Nodes and EndpointSlices only for this; the admission policy
//! `sart-controller-finalizers-only` (manifests/base/controller-policy.yaml) lets its account
//! change nothing else of them.

use std::fmt::Debug;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, ListParams};
use kube::core::PartialObjectMeta;
use kube::core::{ClusterResourceScope, NamespaceResourceScope};
use kube::{Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use tracing::{info, warn};

use k8s::crd::address_block::{AGENT_FINALIZER, CONTROLLER_FINALIZER};
use k8s::crd::{
    AddressBlock, AddressType, BGPAdvertisement, BGPPeer, BlockRequest, ClusterBGP, NodeBGP,
    bgp_advertisement, bgp_peer, block_request, cluster_bgp, node_bgp,
};
use k8s::finalizer;

/// How often the sweep runs again after start.
pub(crate) const PERIOD: Duration = Duration::from_secs(600);

pub const NODE_FINALIZER: &str = "node.sart.terassyi.net/finalizer";
pub const ENDPOINTSLICE_FINALIZER: &str = "endpointslice.sart.terassyi.net/finalizer";

/// Finalizers sart set that nothing here removes: on kinds this controller never finalizes.
pub(crate) const SART_FINALIZERS: [&str; 8] = [
    NODE_FINALIZER,
    ENDPOINTSLICE_FINALIZER,
    super::service::FINALIZER,
    cluster_bgp::FINALIZER,
    node_bgp::FINALIZER,
    bgp_peer::FINALIZER,
    bgp_advertisement::FINALIZER,
    block_request::FINALIZER,
];

/// The finalizers to keep, when some of sart's are among them.
pub(crate) fn without_sarts(finalizers: &[String]) -> Option<Vec<String>> {
    let kept: Vec<String> = finalizers
        .iter()
        .filter(|f| !SART_FINALIZERS.contains(&f.as_str()))
        .cloned()
        .collect();
    (kept.len() != finalizers.len()).then_some(kept)
}

/// Whether an AddressBlock is one of sart's Service blocks (ours are all `type: pod`).
pub(crate) fn is_service_block(b: &AddressBlock) -> bool {
    b.spec.block_type == AddressType::Service
}

/// What a sweep changed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Swept {
    pub finalizers: usize,
    pub service_blocks: usize,
}

/// Removes sart's finalizers from every object of one kind, a page at a time, each patch
/// guarded by the object's resourceVersion (a conflict is left for the next sweep). `api` lists
/// the whole cluster; `at` is the API for one object's namespace (`None` for cluster objects).
async fn sweep_kind<K>(
    api: &Api<K>,
    at: impl Fn(Option<&str>) -> Api<K>,
) -> Result<usize, kube::Error>
where
    K: Resource + Clone + DeserializeOwned + Debug,
    K::DynamicType: Default,
{
    let mut removed = 0;
    let mut lp = ListParams::default().limit(500);
    loop {
        let page = api.list_metadata(&lp).await?;
        for m in &page.items {
            if let Some(kept) = without_sarts(m.finalizers()) {
                let ns = m.namespace();
                removed += patch_finalizers(&at(ns.as_deref()), m, &kept).await?;
            }
        }
        match page.metadata.continue_ {
            Some(c) if !c.is_empty() => lp = lp.continue_token(&c),
            _ => return Ok(removed),
        }
    }
}

async fn sweep_cluster<K>(c: &Client) -> Result<usize, kube::Error>
where
    K: Resource<Scope = ClusterResourceScope> + Clone + DeserializeOwned + Debug,
    K::DynamicType: Default,
{
    sweep_kind(&Api::<K>::all(c.clone()), |_| Api::all(c.clone())).await
}

async fn sweep_namespaced<K>(c: &Client) -> Result<usize, kube::Error>
where
    K: Resource<Scope = NamespaceResourceScope> + Clone + DeserializeOwned + Debug,
    K::DynamicType: Default,
{
    sweep_kind(&Api::<K>::all(c.clone()), |ns| {
        Api::namespaced(c.clone(), ns.unwrap_or_default())
    })
    .await
}

async fn patch_finalizers<K>(
    api: &Api<K>,
    m: &PartialObjectMeta<K>,
    kept: &[String],
) -> Result<usize, kube::Error>
where
    K: Resource + Clone + DeserializeOwned + Debug,
{
    match finalizer::replace(api, m, kept).await {
        Ok(_) => Ok(1),
        Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => Ok(0),
        Err(e) => Err(e),
    }
}

/// Deletes sart's Service blocks, after taking off the finalizers that would keep them.
async fn sweep_service_blocks(api: &Api<AddressBlock>) -> Result<usize, kube::Error> {
    let mut n = 0;
    for b in api.list(&ListParams::default()).await?.items {
        if !is_service_block(&b) {
            continue;
        }
        let name = b.name_any();
        let kept: Vec<String> = b
            .finalizers()
            .iter()
            .filter(|f| *f != CONTROLLER_FINALIZER && *f != AGENT_FINALIZER)
            .cloned()
            .collect();
        if kept.len() != b.finalizers().len() {
            match finalizer::replace(api, &b, &kept).await {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => continue,
                Err(e) => return Err(e),
            }
        }
        if b.metadata.deletion_timestamp.is_none() {
            match api.delete(&name, &Default::default()).await {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 404 => continue,
                Err(e) => return Err(e),
            }
        }
        info!(block = %name, pool = %b.spec.pool_ref, "removed sart's Service AddressBlock");
        n += 1;
    }
    Ok(n)
}

/// One sweep over every kind; a kind that fails (e.g. no permission) is logged and skipped.
pub(crate) async fn sweep(client: &Client) -> Swept {
    let mut s = Swept::default();
    let mut add = |kind: &str, r: Result<usize, kube::Error>| match r {
        Ok(0) => {}
        Ok(n) => {
            info!(kind, objects = n, "removed sart's finalizers");
            s.finalizers += n;
        }
        Err(e) => warn!(kind, error = %e, "could not remove sart's finalizers"),
    };
    add("Node", sweep_cluster::<Node>(client).await);
    add(
        "EndpointSlice",
        sweep_namespaced::<EndpointSlice>(client).await,
    );
    // Also taken off in the Service reconcile; this covers a controller without Services
    // (`--mode cni`).
    add("Service", sweep_namespaced::<Service>(client).await);
    add("ClusterBGP", sweep_cluster::<ClusterBGP>(client).await);
    add("NodeBGP", sweep_cluster::<NodeBGP>(client).await);
    add("BGPPeer", sweep_cluster::<BGPPeer>(client).await);
    add(
        "BGPAdvertisement",
        sweep_namespaced::<BGPAdvertisement>(client).await,
    );
    add("BlockRequest", sweep_cluster::<BlockRequest>(client).await);
    match sweep_service_blocks(&Api::all(client.clone())).await {
        Ok(n) => s.service_blocks = n,
        Err(e) => warn!(error = %e, "could not remove sart's Service AddressBlocks"),
    }
    s
}

/// Sweeps now and every [`PERIOD`].
pub(crate) async fn run(client: Client) {
    let mut tick = tokio::time::interval(PERIOD);
    loop {
        tick.tick().await;
        sweep(&client).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_sarts_finalizers_go() {
        let f = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(without_sarts(&f(&["example.com/keep"])), None);
        assert_eq!(without_sarts(&[]), None);
        assert_eq!(
            without_sarts(&f(&[NODE_FINALIZER, "example.com/keep"])),
            Some(f(&["example.com/keep"]))
        );
        assert_eq!(
            without_sarts(&f(&[bgp_peer::FINALIZER, ENDPOINTSLICE_FINALIZER])),
            Some(vec![])
        );
        // Ours, shared by name with sart, stay: the controller and agent still act on them.
        assert_eq!(
            without_sarts(&f(&[CONTROLLER_FINALIZER, AGENT_FINALIZER])),
            None
        );
    }
}
