//! Pod networking on one node: the agent's side of ADD, DEL, CHECK and GC.
//!
//! - Addresses: [`NodeIpam`] over the node's AddressBlocks (from a cache), one [`Stored`] record
//!   per attachment on disk, written before the kernel is touched.
//! - Blocks: when a pool's blocks are full, one BlockRequest per pool is made and waited for
//!   (`<pool>-<node>`, deleted once served). ADDs for other pools go on meanwhile: the only
//!   lock held across an await is that pool's.
//! - Asking ahead: an ADD that leaves its pool with at most `prefetch_percent` of a block free
//!   has the next block asked for in the background, so a burst of ADDs rarely waits for the
//!   controller. An empty block that is the pool's only headroom is kept, not released.
//! - Blocks of this node carry the agent's finalizer: a block being deleted gives out nothing
//!   new and goes once its last pod does. An empty block is released after `release_after`.
//! - The kernel: [`podnet`](crate::podnet), always on a thread of its own.
//!
//! The operations the runtime asks for are in [`ops`], the blocks they need in [`blocks`],
//! what is left behind in [`gc`], and an earlier run's pods in [`recover`]. Each says why it
//! failed with a [`PodError`], which only the CNI server turns into a gRPC status.

mod blocks;
mod error;
mod gc;
mod ops;
mod recover;

pub(crate) use error::PodError;
pub(crate) use ops::network_name;

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use kube::api::Api;
use kube::runtime::reflector;
use kube::{Client, ResourceExt};
use tokio::sync::Semaphore;

use crate::pod_ipam::{Attachment, NodeIpam};
use crate::pod_store::{Store, Stored};
use crate::podnet::{self, Gateways};
use k8s::crd::{AddressBlock, AddressPool, AddressReservation, AddressType};
use k8s::pools;

/// How long a request waits for one of the `parallel` slots before "try again later".
const SLOT_WAIT: Duration = Duration::from_secs(10);

#[derive(Clone, Debug)]
pub struct PodOptions {
    pub node: String,
    pub state_dir: PathBuf,
    /// At most this many ADD/DEL/CHECK/GC at once.
    pub parallel: usize,
    /// An empty block is released after this long.
    pub release_after: Duration,
    /// How often attachments of pods that no longer exist are looked for.
    pub leak_gc_interval: Duration,
    /// Destinations never masqueraded to (besides every pod pool), e.g. the Service CIDR.
    pub no_masquerade: Vec<ipnet::IpNet>,
    /// The next block of a pool is asked for once its free addresses here are at most this
    /// share (percent) of one block; 0 asks only when a block is full.
    pub prefetch_percent: u32,
}

#[derive(Default)]
struct State {
    ipam: NodeIpam,
    attachments: BTreeMap<Attachment, Stored>,
    /// Attachments with an operation in flight (a second one for the same is told to retry).
    busy: BTreeSet<Attachment>,
    /// Since when each block has been empty.
    empty_since: BTreeMap<String, Instant>,
    /// Pools whose next block is being asked for ahead of need (queued or under way).
    ahead: BTreeSet<String>,
    /// Of those, the ones no task has taken yet.
    ahead_queue: Vec<String>,
    /// Pools not asked ahead for until then (the last try failed).
    ahead_quiet: BTreeMap<String, Instant>,
    /// This node's answer to each host block asking for one of its addresses: lent, or
    /// refused because a pod (namespace/name) holds it.
    loan_answers: BTreeMap<String, Result<(), Option<String>>>,
}

/// What the agent's pod side reads from the cluster.
pub(crate) struct Caches {
    pub pools: reflector::Store<AddressPool>,
    /// This node's AddressBlocks.
    pub blocks: reflector::Store<AddressBlock>,
    /// Host blocks of other nodes with addresses lent by this one.
    pub lent: reflector::Store<AddressBlock>,
    /// This node's pods.
    pub pods: reflector::Store<Pod>,
    pub namespaces: reflector::Store<Namespace>,
    /// Every sticky pod's reservation.
    pub reservations: reflector::Store<AddressReservation>,
}

pub(crate) struct PodNetwork {
    opts: PodOptions,
    client: Client,
    store: Store,
    pools: reflector::Store<AddressPool>,
    blocks: reflector::Store<AddressBlock>,
    lent: reflector::Store<AddressBlock>,
    pods: reflector::Store<Pod>,
    namespaces: reflector::Store<Namespace>,
    reservations: reflector::Store<AddressReservation>,
    state: Mutex<State>,
    slots: Semaphore,
    /// One lock per pool, held while that pool's block is asked for.
    requesting: Mutex<BTreeMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Poked when the block cache changes.
    blocks_changed: tokio::sync::Notify,
    /// Poked when a pool is queued in `ahead_queue`.
    ahead_wanted: tokio::sync::Notify,
    /// Veth deletions under way, by the pod's network namespace.
    pending: Mutex<BTreeMap<String, podnet::Deletion>>,
    gateways: Mutex<Option<Gateways>>,
    metrics: crate::metrics::Metrics,
}

/// Frees the attachment's busy mark however the operation ends.
struct BusyGuard<'a> {
    net: &'a PodNetwork,
    att: Attachment,
}

impl Drop for BusyGuard<'_> {
    fn drop(&mut self) {
        self.net.lock().busy.remove(&self.att);
    }
}

impl PodNetwork {
    pub(crate) fn new(
        opts: PodOptions,
        client: Client,
        caches: Caches,
        metrics: crate::metrics::Metrics,
    ) -> Result<PodNetwork, crate::pod_store::StoreError> {
        let store = Store::open(&opts.state_dir)?;
        Ok(PodNetwork {
            slots: Semaphore::new(opts.parallel.max(1)),
            opts,
            client,
            store,
            pools: caches.pools,
            blocks: caches.blocks,
            lent: caches.lent,
            pods: caches.pods,
            namespaces: caches.namespaces,
            reservations: caches.reservations,
            state: Mutex::new(State::default()),
            requesting: Mutex::new(BTreeMap::new()),
            blocks_changed: tokio::sync::Notify::new(),
            ahead_wanted: tokio::sync::Notify::new(),
            pending: Mutex::new(BTreeMap::new()),
            gateways: Mutex::new(None),
            metrics,
        })
    }

    /// The state, even after a panic elsewhere poisoned the lock (it holds plain data whose
    /// every change is made whole under the lock).
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// This node's pod blocks as the cache has them.
    fn cached_blocks(&self) -> Vec<Arc<AddressBlock>> {
        self.blocks
            .state()
            .into_iter()
            .filter(|b| {
                b.spec.block_type == AddressType::Pod
                    && b.spec.node_ref.as_deref() == Some(self.opts.node.as_str())
            })
            .collect()
    }

    async fn slot(&self) -> Result<tokio::sync::SemaphorePermit<'_>, PodError> {
        match tokio::time::timeout(SLOT_WAIT, self.slots.acquire()).await {
            Ok(Ok(p)) => Ok(p),
            _ => Err(PodError::TooMany(format!(
                "{} CNI operations are in progress on this node",
                self.opts.parallel
            ))),
        }
    }

    fn claim(&self, att: &Attachment) -> Result<BusyGuard<'_>, PodError> {
        if !self.lock().busy.insert(att.clone()) {
            return Err(PodError::TryAgain(format!(
                "another operation on container {} interface {} is in progress",
                att.container_id, att.ifname
            )));
        }
        Ok(BusyGuard {
            net: self,
            att: att.clone(),
        })
    }

    async fn gateways(&self) -> Result<Gateways, PodError> {
        if let Some(g) = *self.gateways.lock().unwrap_or_else(|p| p.into_inner()) {
            return Ok(g);
        }
        let api: Api<Node> = Api::all(self.client.clone());
        let node = api
            .get(&self.opts.node)
            .await
            .map_err(|e| PodError::kube(&format!("reading Node {}", self.opts.node), e))?;
        let addrs: Vec<IpAddr> = node
            .status
            .and_then(|s| s.addresses)
            .unwrap_or_default()
            .into_iter()
            .filter(|a| a.type_ == "InternalIP")
            .filter_map(|a| a.address.parse().ok())
            .collect();
        let g = Gateways::from_node(&addrs);
        *self.gateways.lock().unwrap_or_else(|p| p.into_inner()) = Some(g);
        Ok(g)
    }

    /// The pod (namespace/name) an address is reserved for.
    fn reserved_for(&self, ip: IpAddr) -> Option<String> {
        let text = ip.to_string();
        self.reservations
            .state()
            .iter()
            .find(|r| r.spec.addresses.contains(&text))
            .map(|r| format!("{}/{}", r.namespace().unwrap_or_default(), r.name_any()))
    }

    /// Notes a veth deletion under way in `netns` (an ADD into the same namespace waits for it:
    /// the pod side's name is taken until then); forgets finished ones.
    fn deleting(&self, netns: &str, d: podnet::Deletion) {
        let mut p = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        p.retain(|_, d| !*d.borrow());
        if !netns.is_empty() {
            p.insert(netns.to_owned(), d);
        }
    }

    /// Waits (a while at most) for a veth deletion under way in `netns`.
    async fn settled(&self, netns: &str) {
        let pending = self
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(netns)
            .cloned();
        if let Some(mut d) = pending {
            let _ = tokio::time::timeout(Duration::from_secs(5), d.wait_for(|gone| *gone)).await;
        }
    }

    pub(crate) fn leak_gc_interval(&self) -> Duration {
        self.opts.leak_gc_interval.max(Duration::from_secs(1))
    }

    /// Called on every block cache change.
    pub(crate) fn blocks_changed(&self) {
        self.blocks_changed.notify_waiters();
    }

    /// What the egress NAT table should hold now.
    pub(crate) fn nat_want(&self) -> crate::nat::Want {
        let all: Vec<AddressPool> = self.pools.state().iter().map(|p| (**p).clone()).collect();
        let verdicts = pools::validate(&all);
        let pod_pools: Vec<(ipnet::IpNet, bool)> = all
            .iter()
            .filter_map(|p| {
                let v = verdicts.get(&p.name_any())?.as_ref().ok()?;
                (v.kind == AddressType::Pod)
                    .then(|| (v.pool.cidr(), p.spec.nat_outgoing.unwrap_or(false)))
            })
            .collect();
        crate::nat::Want::new(&pod_pools, &self.opts.no_masquerade)
    }

    /// Whether a valid IPv6 AddressPool exists, of either type (the node forwards IPv6 only
    /// then: for pods, and for Service addresses whose endpoints are elsewhere).
    pub(crate) fn ipv6_pool(&self) -> bool {
        let all: Vec<AddressPool> = self.pools.state().iter().map(|p| (**p).clone()).collect();
        pools::validate(&all)
            .into_values()
            .flatten()
            .any(|v| v.pool.family() == ipam::IpFamily::Ipv6)
    }

    /// Blocks and their use, for the CLI.
    pub(crate) fn usage(&self) -> Vec<crate::pod_ipam::BlockUse> {
        self.lock().ipam.usage()
    }

    pub(crate) fn attachments(&self) -> Vec<Stored> {
        self.lock().attachments.values().cloned().collect()
    }

    /// Addresses of this node's blocks held for someone not here: (address, "lent" or
    /// "reserved", the host block or the sticky pod).
    pub(crate) fn held(&self) -> Vec<(IpAddr, &'static str, String)> {
        let (loans, reserved) = {
            let st = self.lock();
            let loans: Vec<(IpAddr, String)> = st
                .ipam
                .loans()
                .iter()
                .map(|(h, l)| (l.ip, h.clone()))
                .collect();
            // Reserved and neither a pod's here nor lent.
            let reserved: Vec<IpAddr> = st
                .ipam
                .reserved()
                .iter()
                .copied()
                .filter(|ip| st.ipam.holder(*ip).is_none() && !loans.iter().any(|l| l.0 == *ip))
                .collect();
            (loans, reserved)
        };
        let mut out: Vec<(IpAddr, &'static str, String)> =
            loans.into_iter().map(|(ip, h)| (ip, "lent", h)).collect();
        out.extend(
            reserved
                .into_iter()
                .map(|ip| (ip, "reserved", self.reserved_for(ip).unwrap_or_default())),
        );
        out
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
