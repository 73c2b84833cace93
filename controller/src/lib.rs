//! `sartd controller`: AddressPools, LoadBalancer Services and per-node BGP, built on kube-rs'
//! runtime, and the admission webhooks that keep sart's CRs valid. One replica leads (a Lease); it waits for the pools, records every address the
//! cluster already shows, and only then starts giving out new ones, so that a restart changes
//! nothing.

#![warn(unreachable_pub)]

mod address_pool;
mod ads;
mod advertise;
mod condition;
mod lease;
pub mod metrics;
mod node_bgp;
mod node_bgp_plan;
mod pod_block;
mod pod_block_plan;

mod recent;
mod reservations;
pub mod service;
mod service_gone;
pub mod takeover;
pub mod webhook;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Node, Service};
use kube::Client;
use kube::Resource;
use kube::ResourceExt;
use kube::api::{Api, ListParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tracing::{debug, info, warn};

use k8s::cache::{self, Task};
use k8s::crd::{
    AddressBlock, AddressPool, AddressType, BGPAdvertisement, BGPPeer, BGPPeerTemplate,
    BlockRequest, ClusterBGP,
};
use k8s::pools;
use k8s_openapi::api::discovery::v1::EndpointSlice;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("kubernetes API: {0}")]
    Kube(#[source] kube::Error),
    #[error("waiting for the AddressPool cache: {0}")]
    Cache(String),
    #[error(transparent)]
    Lease(#[from] crate::lease::Error),
    /// A compare-and-swap lost to another writer (an agent, or our own cache being behind).
    #[error("{0} changed meanwhile")]
    Conflict(String),
}

/// What every reconciler shares.
pub struct Context {
    pub client: Client,
    alloc: Mutex<ipam::Allocator>,
    pools: reflector::Store<AddressPool>,
    /// Our status as last written on each Service: a reconcile that sees the object from before
    /// that write skips it, and a repeated condition keeps its time.
    written: Mutex<std::collections::HashMap<ipam::ServiceKey, service::Written>>,
    /// Advertisements just created (namespace, name), which the cache may not show yet.
    ads_created: recent::Recent<(String, String), ()>,
    /// The service pools last given to the allocator.
    synced: Mutex<Vec<ipam::LbPool>>,
    recorder: Recorder,
    /// This replica's name, as Events report it.
    instance: String,
    /// Set once every Service's addresses are recorded; pools are not let go before.
    restored: AtomicBool,
    /// Asks the pool controller to refresh every pool's status (counts, use).
    pool_refresh: mpsc::Sender<()>,
    /// Asks the Service controller to look at every Service again (pools changed).
    service_refresh: mpsc::Sender<()>,
    /// Asks the ClusterBGP controller to recompute every status.
    cluster_bgp_refresh: mpsc::Sender<()>,
    /// Pod pools' writes the caches may not show yet.
    pod: pod_block::Memory,
    metrics: crate::metrics::Metrics,
    caches: Caches,
}

/// Read-only views of the cluster the reconcilers consult.
struct Caches {
    nodes: reflector::Store<Node>,
    cluster_bgps: reflector::Store<ClusterBGP>,
    templates: reflector::Store<BGPPeerTemplate>,
    peers: reflector::Store<BGPPeer>,
    slices: reflector::Store<EndpointSlice>,
    ads: reflector::Store<BGPAdvertisement>,
    blocks: reflector::Store<AddressBlock>,
    /// Their labels decide which pools their Services may use.
    namespaces: reflector::Store<Namespace>,
    /// Every Service (slimmed and trimmed): what the Service controller reconciles, and what
    /// tells a gone Service from a live one.
    services: reflector::Store<Service>,
}

/// Locks a mutex even if a panic poisoned it: a panic while holding one would be a bug
/// elsewhere, and what every lock here guards stays consistent (each method leaves it so).
fn locked<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The controller's name in the Events it records.
const CONTROLLER_NAME: &str = "sart-controller";

impl Context {
    fn lock(&self) -> MutexGuard<'_, ipam::Allocator> {
        locked(&self.alloc)
    }

    /// Valid service pools. A pool being deleted gives out nothing new (its holders keep what
    /// they have until they move; its deletion waits for them).
    fn valid_service_pools(&self) -> Vec<pools::ValidPool> {
        let all: Vec<AddressPool> = self.pools.state().iter().map(|p| (**p).clone()).collect();
        let deleting: std::collections::BTreeSet<String> = all
            .iter()
            .filter(|p| p.metadata.deletion_timestamp.is_some())
            .map(|p| p.name_any())
            .collect();
        pools::validate(&all)
            .into_values()
            .filter_map(Result::ok)
            .filter(|v| !deleting.contains(&v.name))
            .filter(|v| v.kind == AddressType::Service)
            .collect()
    }

    /// Gives the allocator the current pools; whether they changed.
    fn sync_pools(&self) -> bool {
        self.sync_pools_from(&self.valid_service_pools())
    }

    /// As [`Context::sync_pools`], with the valid service pools already read.
    fn sync_pools_from(&self, valid: &[pools::ValidPool]) -> bool {
        let now: Vec<ipam::LbPool> = valid
            .iter()
            .map(|v| ipam::LbPool {
                name: v.name.clone(),
                cidr: v.pool.cidr(),
                auto_assign: v.auto_assign,
                selective: v.namespaces != pools::Namespaces::All,
            })
            .collect();
        let mut synced = locked(&self.synced);
        if *synced == now {
            return false;
        }
        match self.lock().set_pools(now.clone()) {
            Ok(()) => {
                *synced = now;
                true
            }
            Err(e) => {
                warn!(error = %e, "service pools not usable");
                false
            }
        }
    }

    fn pools_changed(&self) {
        // Full means a refresh is already pending.
        let _ = self.pool_refresh.try_send(());
    }

    fn services_changed(&self) {
        let _ = self.service_refresh.try_send(());
    }

    fn cluster_bgp_changed(&self) {
        let _ = self.cluster_bgp_refresh.try_send(());
    }

    fn restored(&self) -> bool {
        self.restored.load(Ordering::Acquire)
    }
}

/// Settings of one controller instance.
#[derive(Clone, Debug)]
pub struct Options {
    /// Lease namespace and name; `None` runs without leader election (tests, one replica).
    pub lease: Option<(String, String)>,
    /// This replica's identity (the pod name).
    pub identity: String,
    /// Handle LoadBalancer Services (`--mode lb|dual`).
    pub services: bool,
    /// Hand out pod blocks (`--mode cni|dual`).
    pub pods: bool,
    pub metrics: crate::metrics::Metrics,
}

/// Adds or removes one finalizer ([`k8s::finalizer::set`]); a conflict is
/// reported as one.
async fn set_finalizer<K>(api: &Api<K>, obj: &K, finalizer: &str, present: bool) -> Result<K, Error>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
    K::DynamicType: Default,
{
    let name = obj.name_any();
    k8s::finalizer::set(api, obj, finalizer, present)
        .await
        .map_err(|e| conflict(e, format!("{} {name}", K::kind(&K::DynamicType::default()))))
}

impl Context {
    /// Records an Event on `obj`; failing to record one is logged, never fatal.
    async fn event<K>(&self, obj: &K, type_: EventType, reason: &str, action: &str, note: &str)
    where
        K: Resource<DynamicType = ()>,
    {
        let ev = Event {
            type_,
            reason: reason.into(),
            note: Some(note.into()),
            action: action.into(),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&ev, &obj.object_ref(&())).await {
            warn!(error = %e, "publishing an event");
        }
    }

    /// A Normal Event that happens once per object (an address given): created as is. The
    /// recorder keeps every Event it sent for minutes, to count repeats, and sweeps that whole
    /// cache on each send; for a burst of 10,000 Services that is memory and time for nothing.
    async fn event_once<K>(&self, obj: &K, reason: &str, action: &str, note: &str)
    where
        K: Resource<DynamicType = ()>,
    {
        use k8s_openapi::api::events::v1::Event as K8sEvent;
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
        let regarding = obj.object_ref(&());
        let now = k8s_openapi::jiff::Timestamp::now();
        let ns = regarding
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        let ev = K8sEvent {
            metadata: ObjectMeta {
                // As kube's recorder names them: the object's name and the time.
                name: Some(format!(
                    "{}.{:x}",
                    obj.meta().name.as_deref().unwrap_or("sart"),
                    now.as_nanosecond()
                )),
                namespace: Some(ns.clone()),
                ..ObjectMeta::default()
            },
            action: Some(action.into()),
            reason: Some(reason.into()),
            note: Some(note.into()),
            type_: Some("Normal".into()),
            event_time: Some(MicroTime(now)),
            reporting_controller: Some(CONTROLLER_NAME.into()),
            reporting_instance: Some(self.instance.clone()),
            regarding: Some(regarding),
            ..K8sEvent::default()
        };
        let api: Api<K8sEvent> = Api::namespaced(self.client.clone(), &ns);
        if let Err(e) = api.create(&Default::default(), &ev).await {
            warn!(error = %e, "publishing an event");
        }
    }
}

/// A 409 from a compare-and-swap write is a [`Error::Conflict`], retried quickly and quietly.
fn conflict(e: kube::Error, what: String) -> Error {
    match e {
        kube::Error::Api(s) if s.code == 409 => Error::Conflict(what),
        e => Error::Kube(e),
    }
}

fn error_policy<K>(_obj: Arc<K>, e: &Error, _ctx: Arc<Context>) -> Action {
    if let Error::Conflict(what) = e {
        debug!(%what, "changed meanwhile; reconciling again");
        return Action::requeue(Duration::from_millis(500));
    }
    warn!(error = %e, "reconcile failed; retrying");
    Action::requeue(Duration::from_secs(5))
}

/// Counts each reconcile's outcome under `controller`.
fn counted<T, E>(
    metrics: &crate::metrics::Metrics,
    controller: &'static str,
) -> impl FnMut(Result<T, E>) -> futures::future::Ready<()> + use<T, E> {
    let m = metrics.clone();
    move |r| {
        m.reconciled(controller, r.is_ok());
        futures::future::ready(())
    }
}

/// Runs the controller until the process ends or leadership is lost (an error).
pub async fn run(client: Client, opts: Options) -> Result<(), Error> {
    let elector = opts.lease.as_ref().map(|(ns, name)| {
        crate::lease::Elector::new(
            Api::namespaced(client.clone(), ns),
            name,
            &opts.identity,
            Duration::from_secs(15),
        )
    });
    let metrics = opts.metrics.clone();
    let Some(elector) = elector else {
        metrics.leader(true);
        return serve(client, opts).await;
    };
    elector.acquire().await?;
    metrics.leader(true);
    // Renewal runs from the first moment: filling the caches of a large cluster may take longer
    // than the Lease lasts.
    let r = tokio::select! {
        e = elector.keep() => Err(Error::Lease(e)),
        r = serve(client, opts) => r,
    };
    metrics.leader(false);
    r
}

/// The controllers, until one of them stops.
async fn serve(client: Client, opts: Options) -> Result<(), Error> {
    let (pool_tx, pool_rx) = mpsc::channel(1);
    let (svc_tx, svc_rx) = mpsc::channel(1);
    let (node_tx, node_rx) = mpsc::channel(1);
    let (cbgp_tx, cbgp_rx) = mpsc::channel(1);

    let pool_ctl = Controller::new(
        Api::<AddressPool>::all(client.clone()),
        watcher::Config::default(),
    );
    let node_ctl = Controller::new(Api::<Node>::all(client.clone()), watcher::Config::default());
    let cbgp_ctl = Controller::new(
        Api::<ClusterBGP>::all(client.clone()),
        watcher::Config::default(),
    );
    // ClusterBGPs and templates change what every node should have.
    // Our own status writes on a ClusterBGP must not wake every node again.
    let (cluster_bgps, _cbgp_cache) = cache::watch_relevant(
        Api::<ClusterBGP>::all(client.clone()),
        watcher::Config::default(),
        node_tx.clone(),
        |c: &ClusterBGP| (c.spec.clone(), c.metadata.deletion_timestamp.is_some()),
    );
    let (templates, _tmpl_cache) = cache::watch(
        Api::<BGPPeerTemplate>::all(client.clone()),
        watcher::Config::default(),
        node_tx,
    );
    // Peers and endpoints change who announces each Service address; a peer's session state
    // (the agents write it often) changes nothing about that.
    let (peers, _peer_cache) = cache::watch_relevant(
        Api::<BGPPeer>::all(client.clone()),
        watcher::Config::default(),
        svc_tx.clone(),
        |p: &BGPPeer| (p.spec.clone(), p.metadata.deletion_timestamp.is_some()),
    );
    // An EndpointSlice change concerns its own Service only (`.watches` below); this cache is
    // what the reconcile reads.
    let (slices_tx, _) = mpsc::channel(1);
    let (slices, _slice_cache) = cache::watch_trimmed(
        Api::<EndpointSlice>::all(client.clone()),
        watcher::Config::default().labels(service::SERVICE_NAME_LABEL),
        slices_tx,
        |s: &EndpointSlice| s.metadata.resource_version.clone(),
        advertise::trim_slice,
    );
    // A namespace's labels decide which pools its Services may use: a change looks at every
    // Service again.
    let (namespaces, _ns_cache) = cache::watch_relevant(
        Api::<Namespace>::all(client.clone()),
        watcher::Config::default(),
        svc_tx.clone(),
        |n: &Namespace| n.labels().clone(),
    );
    let (ads_tx, _) = mpsc::channel(1);
    let (ads, _ad_cache) = cache::watch(
        Api::<BGPAdvertisement>::all(client.clone()),
        watcher::Config::default(),
        ads_tx,
    );
    // Blocks of a node are looked at again when the node or its peers change.
    let block_ctl = Controller::new(
        Api::<AddressBlock>::all(client.clone()),
        watcher::Config::default(),
    );
    let blocks = block_ctl.store();
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
    let (by_node, by_peer) = (of_node(blocks.clone()), of_node(blocks.clone()));
    let block_ctl = block_ctl
        .watches(
            Api::<Node>::all(client.clone()),
            watcher::Config::default(),
            move |n| by_node(&n.name_any()),
        )
        .watches(
            Api::<BGPPeer>::all(client.clone()),
            watcher::Config::default(),
            move |p| by_peer(&p.spec.node_bgp_ref),
        );
    let (svc_store, svc_writer) = reflector::store();
    let ctx = Arc::new(Context {
        client: client.clone(),
        alloc: Mutex::new(ipam::Allocator::default()),
        pools: pool_ctl.store(),
        synced: Mutex::new(Vec::new()),
        written: Mutex::new(std::collections::HashMap::new()),
        ads_created: recent::Recent::default(),
        instance: opts.identity.clone(),
        recorder: Recorder::new(
            client.clone(),
            Reporter {
                controller: CONTROLLER_NAME.into(),
                instance: Some(opts.identity.clone()),
            },
        ),
        restored: AtomicBool::new(false),
        pool_refresh: pool_tx,
        service_refresh: svc_tx,
        cluster_bgp_refresh: cbgp_tx,
        pod: pod_block::Memory::default(),
        metrics: opts.metrics.clone(),
        caches: Caches {
            nodes: node_ctl.store(),
            cluster_bgps,
            templates,
            peers,
            slices,
            ads,
            blocks,
            namespaces,
            services: svc_store.clone(),
        },
    });

    let mut pool_task = Task(tokio::spawn(
        pool_ctl
            // Counts change with every assignment: write them at most about once a second.
            .with_config(
                kube::runtime::controller::Config::default().debounce(Duration::from_secs(1)),
            )
            .reconcile_all_on(ReceiverStream::new(pool_rx))
            .run(address_pool::reconcile, error_policy, ctx.clone())
            .for_each(counted(&opts.metrics, "addresspool")),
    ));
    // Nothing is decided before the caches hold the whole cluster: an empty view would read as
    // "no pools" or "no ClusterBGP" and undo what exists.
    cache::ready(&ctx.pools)
        .await
        .map_err(|e| Error::Cache(e.to_string()))?;
    cache::ready(&ctx.caches.cluster_bgps)
        .await
        .map_err(|e| Error::Cache(e.to_string()))?;
    cache::ready(&ctx.caches.templates)
        .await
        .map_err(|e| Error::Cache(e.to_string()))?;
    cache::ready(&ctx.caches.peers)
        .await
        .map_err(|e| Error::Cache(e.to_string()))?;
    cache::ready(&ctx.caches.slices)
        .await
        .map_err(|e| Error::Cache(e.to_string()))?;
    cache::ready(&ctx.caches.ads)
        .await
        .map_err(|e| Error::Cache(e.to_string()))?;
    cache::ready(&ctx.caches.namespaces)
        .await
        .map_err(|e| Error::Cache(e.to_string()))?;
    // Pod blocks are looked after in every mode: a block of a gone node is released even when
    // no one asks for new ones.
    let mut block_task = Task(tokio::spawn(
        block_ctl
            .run(pod_block::reconcile_block, error_policy, ctx.clone())
            .for_each(counted(&opts.metrics, "addressblock")),
    ));
    cache::ready(&ctx.caches.blocks)
        .await
        .map_err(|e| Error::Cache(e.to_string()))?;
    debug!("caches ready");
    ctx.sync_pools();
    let svc_api: Api<Service> = Api::all(client.clone());
    let existing = svc_api
        .list(&ListParams::default())
        .await
        .map_err(Error::Kube)?;
    {
        let mut alloc = ctx.lock();
        for (k, e) in service::restore_all(&mut alloc, &existing.items) {
            warn!(service = %k, error = %e, "address held twice; the older Service keeps it");
        }
        info!(
            services = alloc.services().count(),
            "addresses restored from the cluster"
        );
    }
    ctx.restored.store(true, Ordering::Release);
    ctx.pools_changed();

    // The Service cache holds every Service of the cluster: without their field ownership
    // (`slim`), which no decision reads and which is most of a Service's size. Deletions and
    // relists, once the cache has applied them, go to the task that gives back what gone
    // Services held.
    let (gone_tx, gone_rx) = mpsc::unbounded_channel();
    let svc_stream = watcher(svc_api, watcher::Config::default())
        .default_backoff()
        .modify(|s| {
            cache::slim(s);
            service::trim(s);
        })
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
            watcher::Config::default().labels(service::SERVICE_NAME_LABEL),
            |es| {
                let ns = es.namespace()?;
                let name = es.labels().get(service::SERVICE_NAME_LABEL)?.clone();
                Some(reflector::ObjectRef::<Service>::new(&name).within(&ns))
            },
        )
        .reconcile_all_on(ReceiverStream::new(svc_rx))
        .run(service::reconcile, error_policy, ctx.clone())
        .for_each(counted(&opts.metrics, "service"));
    let (services, pods) = (opts.services, opts.pods);
    let gone_task = service_gone::run(ctx.clone(), gone_rx);
    let mut svc_task = Task(tokio::spawn(async move {
        if services {
            futures::join!(svc_ctl, gone_task);
        } else {
            std::future::pending::<()>().await;
        }
    }));
    // Requests are served only once every block is in the cache (else one could be handed out
    // twice).
    let req_ctl = Controller::new(
        Api::<BlockRequest>::all(client.clone()),
        watcher::Config::default(),
    );
    // A request refused for a pool this controller has not seen yet (created a moment before)
    // is looked at again as soon as the pool arrives or changes, not at the next requeue.
    let requests = req_ctl.store();
    let req_ctl = req_ctl
        .watches(
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
        .run(pod_block::reconcile_request, error_policy, ctx.clone())
        .for_each(counted(&opts.metrics, "blockrequest"));
    let mut req_task = Task(tokio::spawn(async move {
        if pods {
            req_ctl.await;
        } else {
            std::future::pending::<()>().await;
        }
    }));
    let mut node_task = Task(tokio::spawn(
        node_ctl
            .reconcile_all_on(ReceiverStream::new(node_rx))
            .run(node_bgp::reconcile, error_policy, ctx.clone())
            .for_each(counted(&opts.metrics, "node")),
    ));
    let mut cbgp_task = Task(tokio::spawn(
        cbgp_ctl
            .reconcile_all_on(ReceiverStream::new(cbgp_rx))
            .run(node_bgp::reconcile_cluster_bgp, error_policy, ctx.clone())
            .for_each(counted(&opts.metrics, "clusterbgp")),
    ));

    let mut reservation_task = Task(tokio::spawn({
        let client = client.clone();
        async move {
            if pods {
                reservations::run(client).await;
            } else {
                std::future::pending::<()>().await;
            }
        }
    }));

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
