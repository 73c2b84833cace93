//! The controllers wired together: the caches they read, what wakes which, and the order they
//! start in. Nothing is decided before the caches hold the whole cluster (an empty view would
//! read as "no pools" or "no ClusterBGP" and undo what exists), and no address is given out
//! before every Service's are recorded.

use std::sync::{Arc, Mutex};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Node};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, ListParams};
use kube::runtime::controller::Controller;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kube::{Client, ResourceExt};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tracing::{debug, info, warn};

use super::address_pool::PoolContext;
use super::cached_ad::CachedAd;
use super::context::{Addresses, Ads, Events, Refresh};
use super::lb_service::LbService;
use super::node_bgp::{NodeCaches, NodeContext};
use super::pod_block::{BlockCaches, BlockContext};
use super::service::{ServiceCaches, ServiceContext};
use super::{
    CONTROLLER_NAME, Error, Options, address_pool, counted, error_policy, node_bgp, pod_block,
    recent, reservations, service, service_gone, takeover,
};
use k8s::cache::{self, Task};
use k8s::crd::{
    AddressBlock, AddressPool, BGPPeer, BGPPeerTemplate, BlockRequest, ClusterBGP,
    SERVICE_NAME_LABEL,
};

/// The caches only read (no controller of their own), each watched for as long as this lives.
struct Watched {
    cluster_bgps: reflector::Store<ClusterBGP>,
    templates: reflector::Store<BGPPeerTemplate>,
    peers: reflector::Store<BGPPeer>,
    slices: reflector::Store<EndpointSlice>,
    namespaces: reflector::Store<Namespace>,
    ads: reflector::Store<CachedAd>,
    _tasks: Vec<Task>,
}

impl Watched {
    /// `nodes` is poked when what every node should have changes, `services` when who may
    /// use or announce a Service address does.
    fn start(client: &Client, nodes: mpsc::Sender<()>, services: &mpsc::Sender<()>) -> Watched {
        let all = || watcher::Config::default();
        // ClusterBGPs and templates change what every node should have. Our own status writes
        // on a ClusterBGP must not wake every node again.
        let (cluster_bgps, t1) = cache::watch_relevant(
            Api::<ClusterBGP>::all(client.clone()),
            all(),
            nodes.clone(),
            |c: &ClusterBGP| (c.spec.clone(), c.metadata.deletion_timestamp.is_some()),
        );
        let (templates, t2) =
            cache::watch(Api::<BGPPeerTemplate>::all(client.clone()), all(), nodes);
        // Peers and endpoints change who announces each Service address; a peer's session
        // state (the agents write it often) changes nothing about that.
        let (peers, t3) = cache::watch_relevant(
            Api::<BGPPeer>::all(client.clone()),
            all(),
            services.clone(),
            |p: &BGPPeer| (p.spec.clone(), p.metadata.deletion_timestamp.is_some()),
        );
        // An EndpointSlice change concerns its own Service only (the Service controller
        // watches them); this cache is what the reconcile reads.
        let (slices, t4) = cache::mirror(
            Api::<EndpointSlice>::all(client.clone()),
            all().labels(SERVICE_NAME_LABEL),
            super::advertise::trim_slice,
        );
        // A namespace's labels decide which pools its Services may use: a change looks at
        // every Service again.
        let (namespaces, t5) = cache::watch_relevant(
            Api::<Namespace>::all(client.clone()),
            all(),
            services.clone(),
            |n: &Namespace| n.labels().clone(),
        );
        // Read by the reconciles that write advertisements; the agents' status writes wake none.
        let (ads, t6) = cache::mirror(Api::<CachedAd>::all(client.clone()), all(), |_| {});
        Watched {
            cluster_bgps,
            templates,
            peers,
            slices,
            namespaces,
            ads,
            _tasks: vec![t1, t2, t3, t4, t5, t6],
        }
    }

    async fn ready(&self) -> Result<(), Error> {
        ready(cache::ready(&self.cluster_bgps).await)?;
        ready(cache::ready(&self.templates).await)?;
        ready(cache::ready(&self.peers).await)?;
        ready(cache::ready(&self.slices).await)?;
        ready(cache::ready(&self.ads).await)?;
        ready(cache::ready(&self.namespaces).await)
    }
}

fn ready(r: Result<(), reflector::store::WriterDropped>) -> Result<(), Error> {
    r.map_err(|e| Error::Cache(e.to_string()))
}

/// Every controller's own context, built over the shared parts.
struct Contexts {
    pool: Arc<PoolContext>,
    service: Arc<ServiceContext>,
    block: Arc<BlockContext>,
    node: Arc<NodeContext>,
    addresses: Arc<Addresses>,
}

impl Contexts {
    fn new(
        client: &Client,
        opts: &Options,
        refresh: Refresh,
        stores: (
            reflector::Store<AddressPool>,
            reflector::Store<AddressBlock>,
        ),
        nodes: reflector::Store<Node>,
        services: reflector::Store<LbService>,
        watched: &Watched,
    ) -> Contexts {
        let (pools, blocks) = stores;
        let events = Arc::new(Events {
            client: client.clone(),
            recorder: Recorder::new(
                client.clone(),
                Reporter {
                    controller: CONTROLLER_NAME.into(),
                    instance: Some(opts.identity.clone()),
                },
            ),
            instance: opts.identity.clone(),
        });
        let addresses = Arc::new(Addresses::new(pools.clone()));
        let ads = Arc::new(Ads {
            client: client.clone(),
            created: recent::Recent::default(),
        });
        Contexts {
            pool: Arc::new(PoolContext {
                client: client.clone(),
                events: events.clone(),
                metrics: opts.metrics.clone(),
                addresses: addresses.clone(),
                refresh: refresh.clone(),
                pools: pools.clone(),
                blocks: blocks.clone(),
            }),
            service: Arc::new(ServiceContext {
                client: client.clone(),
                events: events.clone(),
                addresses: addresses.clone(),
                refresh: refresh.clone(),
                ads: ads.clone(),
                written: Mutex::new(std::collections::HashMap::new()),
                caches: ServiceCaches {
                    slices: watched.slices.clone(),
                    ads: watched.ads.clone(),
                    peers: watched.peers.clone(),
                    namespaces: watched.namespaces.clone(),
                    services,
                },
            }),
            block: Arc::new(BlockContext {
                client: client.clone(),
                events: events.clone(),
                refresh: refresh.clone(),
                ads,
                pools,
                pod: pod_block::Memory::default(),
                caches: BlockCaches {
                    blocks,
                    ads: watched.ads.clone(),
                },
            }),
            node: Arc::new(NodeContext {
                client: client.clone(),
                events,
                refresh,
                caches: NodeCaches {
                    nodes,
                    cluster_bgps: watched.cluster_bgps.clone(),
                    templates: watched.templates.clone(),
                },
            }),
            addresses,
        }
    }
}

/// The AddressBlock controller: a node's blocks are looked at again when the node or its
/// peers change.
fn block_controller(client: &Client) -> Controller<AddressBlock> {
    let ctl = Controller::new(
        Api::<AddressBlock>::all(client.clone()),
        watcher::Config::default(),
    );
    let of_node = |store: reflector::Store<AddressBlock>| {
        move |node: &str| -> Vec<reflector::ObjectRef<AddressBlock>> {
            store
                .state()
                .iter()
                .filter(|b| b.spec.node_ref.as_deref() == Some(node))
                .map(|b| reflector::ObjectRef::from_obj(&**b))
                .collect()
        }
    };
    let (by_node, by_peer) = (of_node(ctl.store()), of_node(ctl.store()));
    ctl.watches(
        Api::<Node>::all(client.clone()),
        watcher::Config::default(),
        move |n| by_node(&n.name_any()),
    )
    .watches(
        Api::<BGPPeer>::all(client.clone()),
        watcher::Config::default(),
        move |p| by_peer(&p.spec.node_bgp_ref),
    )
}

/// The BlockRequest controller. A request refused for a pool this controller has not seen yet
/// (created a moment before) is looked at again as soon as the pool arrives or changes, not at
/// the next requeue.
fn request_controller(client: &Client) -> Controller<BlockRequest> {
    let ctl = Controller::new(
        Api::<BlockRequest>::all(client.clone()),
        watcher::Config::default(),
    );
    let requests = ctl.store();
    ctl.watches(
        Api::<AddressPool>::all(client.clone()),
        watcher::Config::default(),
        move |pool: AddressPool| {
            let name = pool.name_any();
            requests
                .state()
                .iter()
                .filter(|r| r.spec.pool == name)
                .map(|r| reflector::ObjectRef::from_obj(&**r))
                .collect::<Vec<_>>()
        },
    )
}

/// Records every address the cluster's Services already show, before any is given out.
async fn restore(client: &Client, addresses: &Addresses) -> Result<(), Error> {
    addresses.sync_pools();
    let existing = Api::<LbService>::all(client.clone())
        .list(&ListParams::default())
        .await
        .map_err(Error::Kube)?;
    let mut alloc = addresses.lock();
    for (k, e) in service::restore_all(&mut alloc, &existing.items) {
        warn!(service = %k, error = %e, "address held twice; the older Service keeps it");
    }
    info!(
        services = alloc.services().count(),
        "addresses restored from the cluster"
    );
    drop(alloc);
    addresses.set_restored();
    Ok(())
}

/// A task that runs `f` when `on`, else waits forever (a mode that does not need it).
fn spawn_if<F>(on: bool, f: F) -> Task
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    Task(tokio::spawn(async move {
        if on {
            f.await;
        } else {
            std::future::pending::<()>().await;
        }
    }))
}

/// The controllers, until one of them stops.
pub(crate) async fn serve(client: Client, opts: Options) -> Result<(), Error> {
    let (pool_tx, pool_rx) = mpsc::channel(1);
    let (svc_tx, svc_rx) = mpsc::channel(1);
    let (node_tx, node_rx) = mpsc::channel(1);
    let (cbgp_tx, cbgp_rx) = mpsc::channel(1);
    let all = || watcher::Config::default();

    let pool_ctl = Controller::new(Api::<AddressPool>::all(client.clone()), all());
    let node_ctl = Controller::new(Api::<Node>::all(client.clone()), all());
    let cbgp_ctl = Controller::new(Api::<ClusterBGP>::all(client.clone()), all());
    let block_ctl = block_controller(&client);
    let watched = Watched::start(&client, node_tx, &svc_tx);
    let (svc_store, svc_writer) = reflector::store();
    let refresh = Refresh {
        pools: pool_tx,
        services: svc_tx,
        cluster_bgps: cbgp_tx,
    };
    let ctx = Contexts::new(
        &client,
        &opts,
        refresh,
        (pool_ctl.store(), block_ctl.store()),
        node_ctl.store(),
        svc_store.clone(),
        &watched,
    );

    let mut pool_task = Task(tokio::spawn(
        pool_ctl
            // Counts change with every assignment: write them at most about once a second.
            .with_config(
                kube::runtime::controller::Config::default()
                    .debounce(std::time::Duration::from_secs(1)),
            )
            .reconcile_all_on(ReceiverStream::new(pool_rx))
            .run(address_pool::reconcile, error_policy, ctx.pool.clone())
            .for_each(counted(&opts.metrics, "addresspool")),
    ));
    ready(cache::ready(&ctx.pool.pools).await)?;
    watched.ready().await?;
    // Pod blocks are looked after in every mode: a block of a gone node is released even when
    // no one asks for new ones.
    let mut block_task = Task(tokio::spawn(
        block_ctl
            .run(pod_block::reconcile_block, error_policy, ctx.block.clone())
            .for_each(counted(&opts.metrics, "addressblock")),
    ));
    ready(cache::ready(&ctx.block.caches.blocks).await)?;
    debug!("caches ready");
    restore(&client, &ctx.addresses).await?;
    ctx.pool.refresh.pools();

    // The Service cache holds every Service of the cluster, as `LbService`: what is read of
    // it, not the object. Deletions and relists, once the cache has applied them, go to the task
    // that gives back what gone Services held.
    let (gone_tx, gone_rx) = mpsc::unbounded_channel();
    let svc_stream = watcher(Api::<LbService>::all(client.clone()), all())
        .default_backoff()
        .reflect(svc_writer)
        .inspect(move |ev| {
            if let Some(g) = ev.as_ref().ok().and_then(service_gone::gone) {
                let _ = gone_tx.send(g);
            }
        })
        .applied_objects();
    let svc_ctl = Controller::for_stream(svc_stream, svc_store)
        .watches(
            Api::<EndpointSlice>::all(client.clone()),
            all().labels(SERVICE_NAME_LABEL),
            |es| {
                let ns = es.namespace()?;
                let name = es.labels().get(SERVICE_NAME_LABEL)?.clone();
                Some(reflector::ObjectRef::<LbService>::new(&name).within(&ns))
            },
        )
        .reconcile_all_on(ReceiverStream::new(svc_rx))
        .run(service::reconcile, error_policy, ctx.service.clone())
        .for_each(counted(&opts.metrics, "service"));
    let gone_task = service_gone::run(ctx.service.clone(), gone_rx);
    let mut svc_task = spawn_if(opts.services, async move {
        futures::join!(svc_ctl, gone_task);
    });
    // Requests are served only once every block is in the cache (else one could be handed out
    // twice).
    let mut req_task = spawn_if(
        opts.pods,
        request_controller(&client)
            .run(
                pod_block::reconcile_request,
                error_policy,
                ctx.block.clone(),
            )
            .for_each(counted(&opts.metrics, "blockrequest")),
    );
    let mut node_task = Task(tokio::spawn(
        node_ctl
            .reconcile_all_on(ReceiverStream::new(node_rx))
            .run(node_bgp::reconcile, error_policy, ctx.node.clone())
            .for_each(counted(&opts.metrics, "node")),
    ));
    let mut cbgp_task = Task(tokio::spawn(
        cbgp_ctl
            .reconcile_all_on(ReceiverStream::new(cbgp_rx))
            .run(
                node_bgp::reconcile_cluster_bgp,
                error_policy,
                ctx.node.clone(),
            )
            .for_each(counted(&opts.metrics, "clusterbgp")),
    ));
    let mut reservation_task = spawn_if(opts.pods, reservations::run(client.clone()));
    // What an earlier sart left (its finalizers, its Service blocks).
    let mut takeover_task = Task(tokio::spawn(takeover::run(client.clone())));

    tokio::select! {
        _ = &mut takeover_task.0 => Ok(()),
        _ = &mut reservation_task.0 => Ok(()),
        _ = &mut pool_task.0 => Ok(()),
        _ = &mut svc_task.0 => Ok(()),
        _ = &mut node_task.0 => Ok(()),
        _ = &mut cbgp_task.0 => Ok(()),
        _ = &mut block_task.0 => Ok(()),
        _ = &mut req_task.0 => Ok(()),
    }
}
