//! Nodes → NodeBGPs → BGPPeers. For each Node, [`plan`](super::node_bgp_plan::plan) says what
//! its NodeBGP and peers should be; this applies it. Ownership does the garbage collection: a
//! NodeBGP is owned by its Node, the BGPPeers we make are owned by their NodeBGP, so deleting a
//! node removes both. BGPPeers a user made (no `clusterBGPRef`) are never touched.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::runtime::reflector;
use kube::{Client, Resource, ResourceExt};
use serde_json::json;
use tracing::{info, warn};

use super::Error;
use super::context::{Events, Refresh};
use super::node_bgp_plan::{self, Plan};
use k8s::crd::bgp_peer::NODE_LABEL as PEER_NODE_LABEL;
use k8s::crd::{
    BGPPeer, BGPPeerTemplate, BGPPeerTemplateSpec, ClusterBGP, ClusterBGPStatus, NodeBGP,
};

/// The Node (NodeBGP, BGPPeers) and ClusterBGP controllers'.
pub(crate) struct NodeContext {
    pub(crate) client: Client,
    pub(crate) events: Arc<Events>,
    pub(crate) refresh: Refresh,
    pub(crate) caches: NodeCaches,
}

pub(crate) struct NodeCaches {
    pub(crate) nodes: reflector::Store<Node>,
    pub(crate) cluster_bgps: reflector::Store<ClusterBGP>,
    pub(crate) templates: reflector::Store<BGPPeerTemplate>,
}

const MANAGER: &str = "sart-controller";

fn templates(ctx: &NodeContext) -> BTreeMap<String, BGPPeerTemplateSpec> {
    ctx.caches
        .templates
        .state()
        .iter()
        .map(|t: &Arc<BGPPeerTemplate>| (t.name_any(), t.spec.clone()))
        .collect()
}

fn cluster_bgps(ctx: &NodeContext) -> Vec<ClusterBGP> {
    ctx.caches
        .cluster_bgps
        .state()
        .iter()
        .map(|c| (**c).clone())
        .collect()
}

pub(crate) async fn reconcile(node: Arc<Node>, ctx: Arc<NodeContext>) -> Result<Action, Error> {
    let name = node.name_any();
    let node_bgps: Api<NodeBGP> = Api::all(ctx.client.clone());
    let peers: Api<BGPPeer> = Api::all(ctx.client.clone());
    ctx.refresh.cluster_bgps();
    if node.meta().deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let plan = match node_bgp_plan::plan(&node, &cluster_bgps(&ctx), &templates(&ctx)) {
        Ok(p) => p,
        Err(e) => {
            warn!(node = %name, error = %e, "no NodeBGP");
            ctx.events
                .event(
                    &*node,
                    EventType::Warning,
                    "InvalidBGPConfig",
                    "Configure",
                    &e.to_string(),
                )
                .await;
            // Leave what exists: a typo in a ClusterBGP must not tear down working sessions.
            return Ok(Action::requeue(Duration::from_secs(60)));
        }
    };
    let wanted: BTreeSet<String> = plan
        .as_ref()
        .and_then(|p| p.spec.peers.as_ref())
        .into_iter()
        .flatten()
        .map(|p| p.name.clone())
        .collect();
    if let Some(plan) = &plan {
        apply(&node, plan, &node_bgps, &peers).await?;
    } else if node_bgps
        .get_opt(&name)
        .await
        .map_err(Error::Kube)?
        .is_some()
    {
        info!(node = %name, "no ClusterBGP selects the node: NodeBGP removed");
        node_bgps
            .delete(&name, &DeleteParams::default())
            .await
            .map_err(Error::Kube)?;
    }
    // Our BGPPeers of this node that the plan no longer has.
    let lp = ListParams::default().labels(&format!("{PEER_NODE_LABEL}={name}"));
    for p in peers.list(&lp).await.map_err(Error::Kube)?.items {
        if p.spec.cluster_bgp_ref.is_some() && !wanted.contains(&p.name_any()) {
            info!(peer = %p.name_any(), node = %name, "BGPPeer no longer configured: removed");
            peers
                .delete(&p.name_any(), &DeleteParams::default())
                .await
                .map_err(Error::Kube)?;
        }
    }
    Ok(Action::await_change())
}

async fn apply(
    node: &Node,
    plan: &Plan,
    node_bgps: &Api<NodeBGP>,
    peers: &Api<BGPPeer>,
) -> Result<(), Error> {
    let name = node.name_any();
    let pp = PatchParams::apply(MANAGER).force();
    let owner = node.controller_owner_ref(&()).map(|mut o| {
        // The node is not deleted on our behalf; we only follow it.
        o.controller = Some(false);
        // Blocking the node's deletion would need nodes/finalizers rights; nothing needs it.
        o.block_owner_deletion = None;
        o
    });
    let mut nb = NodeBGP::new(&name, plan.spec.clone());
    nb.metadata.labels = Some(node.labels().clone());
    nb.metadata.owner_references = owner.map(|o| vec![o]);
    let nb = node_bgps
        .patch(&name, &pp, &Patch::Apply(&nb))
        .await
        .map_err(Error::Kube)?;
    let refs = json!({"status": {"clusterBgpRefs": plan.cluster_bgps}});
    if nb.status.as_ref().and_then(|s| s.cluster_bgp_refs.as_ref()) != Some(&plan.cluster_bgps) {
        node_bgps
            .patch_status(&name, &PatchParams::default(), &Patch::Merge(&refs))
            .await
            .map_err(Error::Kube)?;
    }
    let owner = nb.controller_owner_ref(&());
    for p in plan.spec.peers.iter().flatten() {
        let mut bp = BGPPeer::new(&p.name, p.spec.clone());
        bp.metadata.labels = Some(BTreeMap::from([(PEER_NODE_LABEL.to_owned(), name.clone())]));
        bp.metadata.owner_references = owner.clone().map(|o| vec![o]);
        peers
            .patch(&p.name, &pp, &Patch::Apply(&bp))
            .await
            .map_err(Error::Kube)?;
    }
    Ok(())
}

/// ClusterBGP status: the nodes it selects (`desiredNodes`) and those whose NodeBGP could be
/// made (`nodes`).
pub(crate) async fn reconcile_cluster_bgp(
    c: Arc<ClusterBGP>,
    ctx: Arc<NodeContext>,
) -> Result<Action, Error> {
    if c.meta().deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let all = cluster_bgps(&ctx);
    let templates = templates(&ctx);
    let mut desired = Vec::new();
    let mut nodes = Vec::new();
    for n in ctx.caches.nodes.state() {
        if node_bgp_plan::selecting(&n, std::slice::from_ref(&c)).is_empty() {
            continue;
        }
        desired.push(n.name_any());
        if node_bgp_plan::plan(&n, &all, &templates).is_ok_and(|p| p.is_some()) {
            nodes.push(n.name_any());
        }
    }
    desired.sort();
    nodes.sort();
    let status = ClusterBGPStatus {
        desired_nodes: Some(desired),
        nodes: Some(nodes),
    };
    if c.status.as_ref() != Some(&status) {
        let api: Api<ClusterBGP> = Api::all(ctx.client.clone());
        api.patch_status(
            &c.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&json!({ "status": status })),
        )
        .await
        .map_err(Error::Kube)?;
    }
    Ok(Action::await_change())
}
