//! Pod pools: a node agent's BlockRequest becomes an AddressBlock for that node, each block gets
//! a BGPAdvertisement for the node's peers, and the blocks of a Node that no longer exists are
//! deleted (so are their advertisements, by our finalizer). The decisions are in
//! [`super::pod_block_plan`].

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::runtime::reflector::{self, ObjectRef};
use kube::{Client, Resource, ResourceExt};
use serde_json::json;
use tracing::{info, warn};

use super::cached_ad::CachedAd;
use super::context::{Ads, Events, Refresh};
use super::pod_block_plan::{self as plan, Decision, NewBlock, PoolView};
use super::recent::Recent;
use super::{Error, ads, condition, conflict, set_finalizer};
use k8s::crd::address_block::REQUEST_ANNOTATION;
use k8s::crd::address_block::{AGENT_FINALIZER, CONTROLLER_FINALIZER, LENDER_LABEL, NODE_LABEL};
use k8s::crd::bgp_advertisement::POD_ADVERTISEMENT_NAMESPACE;
use k8s::crd::bgp_peer::NODE_LABEL as PEER_NODE_LABEL;
use k8s::crd::{
    ADDRESS_POOL_LABEL, AddressBlock, AddressBlockSpec, AddressPool, AddressType, BGPAdvertisement,
    BGPAdvertisementSpec, BGPPeer, BlockRequest, Protocol,
};
use k8s::pools;

/// The BlockRequest and AddressBlock controllers'.
pub(crate) struct BlockContext {
    pub(crate) client: Client,
    pub(crate) events: Arc<Events>,
    pub(crate) refresh: Refresh,
    pub(crate) ads: Arc<Ads>,
    pub(crate) pools: reflector::Store<AddressPool>,
    /// Pod pools' writes the caches may not show yet.
    pub(crate) pod: Memory,
    pub(crate) caches: BlockCaches,
}

pub(crate) struct BlockCaches {
    pub(crate) blocks: reflector::Store<AddressBlock>,
    pub(crate) ads: reflector::Store<CachedAd>,
}

/// What pod pools remember between reconciles.
#[derive(Default)]
pub(crate) struct Memory {
    /// (pool, index) of blocks just created, or found taken by a name we did not expect.
    claims: Recent<(String, u128), ()>,
    /// Request uid → the block made for it.
    served: Recent<String, String>,
}

pub(crate) async fn reconcile_request(
    req: Arc<BlockRequest>,
    ctx: Arc<BlockContext>,
) -> Result<Action, Error> {
    if req.meta().deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let uid = req.uid().unwrap_or_default();
    if let Some((_, block)) = ctx
        .pod
        .served
        .entries()
        .into_iter()
        .find(|(u, _)| *u == uid)
    {
        write_condition(&ctx, &req, Ok(&block)).await?;
        return Ok(Action::await_change());
    }
    let pool_name = &req.spec.pool;
    let all: Vec<AddressPool> = ctx.pools.state().iter().map(|p| (**p).clone()).collect();
    let verdicts = pools::validate(&all);
    let view = PoolView {
        verdict: verdicts.get(pool_name).map(Result::as_ref),
        deleting: all
            .iter()
            .any(|p| p.name_any() == *pool_name && p.metadata.deletion_timestamp.is_some()),
    };
    let node = live_node(&ctx, &req.spec.node).await?;
    let blocks: Vec<AddressBlock> = ctx
        .caches
        .blocks
        .state()
        .iter()
        .map(|b| (**b).clone())
        .collect();
    // A claim the cache shows is the cache's to track from now on (and the index is free again
    // once that block goes).
    let shown: BTreeSet<(String, u128)> = all
        .iter()
        .filter_map(|p| Some((p.name_any(), verdicts.get(&p.name_any())?.as_ref().ok()?)))
        .flat_map(|(name, v)| {
            blocks
                .iter()
                .filter(move |b| b.spec.pool_ref == name)
                .filter_map(|b| Some((b.spec.pool_ref.clone(), plan::index_of(v, b)?)))
        })
        .collect();
    ctx.pod.claims.forget(|k| shown.contains(k));
    let claimed: BTreeSet<u128> = ctx
        .pod
        .claims
        .entries()
        .into_iter()
        .filter(|((p, _), _)| p == pool_name)
        .map(|((_, i), _)| i)
        .collect();
    match plan::decide(&req, view, node.is_some(), &blocks, &claimed) {
        Decision::Served(block) => {
            write_condition(&ctx, &req, Ok(&block)).await?;
            Ok(Action::await_change())
        }
        Decision::Refuse(r) => {
            if write_condition(&ctx, &req, Err(&r)).await? {
                warn!(request = %req.name_any(), refusal = %r, "block request refused");
                ctx.events
                    .event(
                        &*req,
                        EventType::Warning,
                        r.reason(),
                        "Allocate",
                        &r.to_string(),
                    )
                    .await;
            }
            // Pools and nodes come and go; look again.
            Ok(Action::requeue(Duration::from_secs(10)))
        }
        Decision::Create(nb) => {
            create_block(&ctx, &req, &nb, node.as_ref()).await?;
            write_condition(&ctx, &req, Ok(&nb.name)).await?;
            Ok(Action::await_change())
        }
    }
}

async fn create_block(
    ctx: &BlockContext,
    req: &BlockRequest,
    nb: &NewBlock,
    node: Option<&Node>,
) -> Result<(), Error> {
    let api: Api<AddressBlock> = Api::all(ctx.client.clone());
    let mut block = AddressBlock::new(
        &nb.name,
        AddressBlockSpec {
            cidr: nb.cidr.to_string(),
            block_type: AddressType::Pod,
            pool_ref: nb.pool.clone(),
            node_ref: Some(nb.node.clone()),
            auto_assign: nb.auto_assign,
            lent_from: nb.lent.as_ref().map(|l| l.block.clone()),
        },
    );
    let mut labels: std::collections::BTreeMap<String, String> = [
        (ADDRESS_POOL_LABEL.to_owned(), nb.pool.clone()),
        (NODE_LABEL.to_owned(), nb.node.clone()),
    ]
    .into();
    if let Some(l) = &nb.lent {
        // The lender's agent watches for this label.
        labels.insert(LENDER_LABEL.to_owned(), l.node.clone());
    }
    block.metadata.labels = Some(labels);
    block.metadata.annotations =
        Some([(REQUEST_ANNOTATION.to_owned(), req.uid().unwrap_or_default())].into());
    block.metadata.finalizers = Some(vec![CONTROLLER_FINALIZER.into()]);
    // The Node owns its blocks: the garbage collector removes them too if we are not running.
    if let Some(node) = node {
        block.metadata.owner_references = node.controller_owner_ref(&()).map(|mut o| {
            o.block_owner_deletion = None;
            vec![o]
        });
    }
    // Taken either way: by us now, or by a block the cache does not show yet. (A host block's
    // index is its lender's, taken already.)
    if nb.lent.is_none() {
        ctx.pod.claims.insert((nb.pool.clone(), nb.index), ());
    }
    let created = api
        .create(&PostParams::default(), &block)
        .await
        .map_err(|e| conflict(e, format!("AddressBlock {}", nb.name)))?;
    ctx.pod
        .served
        .insert(req.uid().unwrap_or_default(), nb.name.clone());
    write_index(&api, &created, nb.index).await?;
    info!(block = %nb.name, cidr = %nb.cidr, node = %nb.node, "block allocated");
    ctx.events
        .event(
            req,
            EventType::Normal,
            "BlockAllocated",
            "Allocate",
            &match &nb.lent {
                None => format!(
                    "AddressBlock {} ({}) for node {}",
                    nb.name, nb.cidr, nb.node
                ),
                Some(l) => format!(
                    "AddressBlock {} ({}) for node {}, lent from {} of node {}",
                    nb.name, nb.cidr, nb.node, l.block, l.node
                ),
            },
        )
        .await;
    ctx.refresh.pools();
    Ok(())
}

async fn write_index(
    api: &Api<AddressBlock>,
    block: &AddressBlock,
    index: u128,
) -> Result<(), Error> {
    // The API's field is an int64: past that the CIDR alone says where the block is.
    let Ok(index) = i64::try_from(index).and_then(u64::try_from) else {
        return Ok(());
    };
    if block.status.as_ref().map(|s| s.index) == Some(index) {
        return Ok(());
    }
    let patch = json!({ "status": { "index": index } });
    api.patch_status(
        &block.name_any(),
        &PatchParams::default(),
        &Patch::Merge(&patch),
    )
    .await
    .map_err(Error::Kube)?;
    Ok(())
}

/// Writes the request's `Ready` condition; whether it changed.
async fn write_condition(
    ctx: &BlockContext,
    req: &BlockRequest,
    outcome: Result<&str, &plan::Refusal>,
) -> Result<bool, Error> {
    let (status, reason, message) = match outcome {
        Ok(block) => ("True", "Served", format!("AddressBlock {block}")),
        Err(r) => ("False", r.reason(), r.to_string()),
    };
    let old = req
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Ready"));
    if old.is_some_and(|c| condition::says(c, status, reason, &message)) {
        return Ok(false);
    }
    let c = condition::new("Ready", status, reason, message, req.metadata.generation);
    let api: Api<BlockRequest> = Api::all(ctx.client.clone());
    let patch = json!({ "status": { "conditions": [c] } });
    match api
        .patch_status(
            &req.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
    {
        Ok(_) => Ok(true),
        // The agent deleted the request once it saw the block: nothing to tell.
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(false),
        Err(e) => Err(Error::Kube(e)),
    }
}

/// The Node, unless it is gone or going. Asks the API server, not a cache: deleting a node's
/// blocks must not follow a stale view.
async fn live_node(ctx: &BlockContext, node: &str) -> Result<Option<Node>, Error> {
    let api: Api<Node> = Api::all(ctx.client.clone());
    api.get_opt(node)
        .await
        .map(|n| n.filter(|n| n.metadata.deletion_timestamp.is_none()))
        .map_err(Error::Kube)
}

pub(crate) async fn reconcile_block(
    block: Arc<AddressBlock>,
    ctx: Arc<BlockContext>,
) -> Result<Action, Error> {
    if block.spec.block_type != AddressType::Pod {
        return Ok(Action::await_change());
    }
    let name = block.name_any();
    let api: Api<AddressBlock> = Api::all(ctx.client.clone());
    let node = block.spec.node_ref.clone().unwrap_or_default();
    let node_alive = !node.is_empty() && live_node(&ctx, &node).await?.is_some();
    let ours = block.finalizers().iter().any(|f| f == CONTROLLER_FINALIZER);

    if block.meta().deletion_timestamp.is_some() {
        if !ours {
            return Ok(Action::await_change());
        }
        // A live node's agent moves its pods' addresses off the block first; its finalizer
        // going wakes us again. The agent of a gone node cannot: the addresses went with it.
        let agent_holds = block.finalizers().iter().any(|f| f == AGENT_FINALIZER);
        if node_alive && agent_holds {
            return Ok(Action::await_change());
        }
        ads::delete(&ctx.ads, POD_ADVERTISEMENT_NAMESPACE, &name).await?;
        let keep: Vec<String> = block
            .finalizers()
            .iter()
            .filter(|f| *f != CONTROLLER_FINALIZER && *f != AGENT_FINALIZER)
            .cloned()
            .collect();
        k8s::finalizer::replace(&api, &*block, &keep)
            .await
            .map_err(|e| conflict(e, format!("AddressBlock {name}")))?;
        info!(block = %name, node = %node, "block released");
        ctx.refresh.pools();
        return Ok(Action::await_change());
    }
    if !node_alive {
        info!(block = %name, node = %node, "node is gone: releasing its block");
        match api.delete(&name, &Default::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(Error::Kube(e)),
        }
        return Ok(Action::await_change());
    }
    if !ours {
        set_finalizer(&api, &*block, CONTROLLER_FINALIZER, true).await?;
        return Ok(Action::await_change());
    }
    let all: Vec<AddressPool> = ctx.pools.state().iter().map(|p| (**p).clone()).collect();
    if let Some(Ok(pool)) = pools::validate(&all).get(&block.spec.pool_ref)
        && let Some(index) = plan::index_of(pool, &block)
    {
        write_index(&api, &block, index).await?;
    }
    // A host block is announced only once its address is lent, as the lender itself says in
    // its block's status (not only the borrower): before, the lender's pod may still hold it,
    // and a /32 from here would take its traffic.
    if let Some(from) = &block.spec.lent_from {
        let claimed = block
            .status
            .as_ref()
            .and_then(|s| s.loan.as_ref())
            .is_some_and(|l| l.lent);
        let lender = ctx.caches.blocks.get(&ObjectRef::new(from));
        let confirmed = lender
            .as_ref()
            .and_then(|b| b.status.as_ref())
            .and_then(|s| s.loans.as_ref())
            .is_some_and(|l| l.iter().any(|a| a.host_block == name && a.lent));
        if !claimed {
            return Ok(Action::await_change());
        }
        if !confirmed {
            // Our cache of the lender's block may be behind the borrower's.
            return Ok(Action::requeue(Duration::from_secs(2)));
        }
    }
    advertise_block(&ctx, &block, &node).await?;
    Ok(Action::await_change())
}

/// The block's advertisement, announced by every peer of its node.
async fn advertise_block(
    ctx: &BlockContext,
    block: &AddressBlock,
    node: &str,
) -> Result<(), Error> {
    let name = block.name_any();
    let protocol = if block.spec.cidr.contains(':') {
        Protocol::Ipv6
    } else {
        Protocol::Ipv4
    };
    let mut want = BGPAdvertisement::new(
        &name,
        BGPAdvertisementSpec {
            cidr: block.spec.cidr.clone(),
            ad_type: AddressType::Pod,
            protocol,
            attrs: None,
        },
    );
    want.metadata.namespace = Some(POD_ADVERTISEMENT_NAMESPACE.into());
    want.metadata.labels = Some(
        [
            (ADDRESS_POOL_LABEL.to_owned(), block.spec.pool_ref.clone()),
            (NODE_LABEL.to_owned(), node.to_owned()),
        ]
        .into(),
    );
    want.metadata.owner_references = block.controller_owner_ref(&()).map(|o| vec![o]);
    // Asked of the API server, not the peers cache: a new peer wakes this reconcile through the
    // controller's own watch, which may run ahead of that cache, and nothing would wake it again.
    // The webhook labels every BGPPeer with its node; the agents select theirs by it too.
    let by_node = ListParams::default().labels(&format!("{PEER_NODE_LABEL}={node}"));
    let peers = Api::<BGPPeer>::all(ctx.client.clone())
        .list(&by_node)
        .await
        .map_err(Error::Kube)?
        .items;
    let targets = plan::block_peers(node, &peers);
    let found = ctx
        .caches
        .ads
        .get(&ObjectRef::new(&name).within(POD_ADVERTISEMENT_NAMESPACE));
    ads::ensure(&ctx.ads, found.as_deref(), &want, &targets).await
}
