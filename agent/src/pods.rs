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
//! - The kernel: [`podnet`], always on a thread of its own.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::reflector::{self, ObjectRef};
use kube::{Client, ResourceExt};
use serde_json::json;
use tokio::sync::Semaphore;
use tonic::Status;
use tracing::{debug, info, warn};

use super::pod_ipam::{Allocation, Attachment, IpamError, NodeIpam};
use super::pod_pool::{self, ChoiceError};
use super::pod_store::{Store, Stored, StoredAddress};
use super::podnet::{self, Gateways, NetError, PodLink};
use k8s::crd::address_block::{AGENT_FINALIZER, LENDER_LABEL, Loan, LoanAnswer};
use k8s::crd::address_block::{REQUEST_ANNOTATION, host_block_name};
use k8s::crd::{
    AddressBlock, AddressPool, AddressReservation, AddressReservationSpec, AddressType,
    BlockRequest, BlockRequestSpec,
};
use k8s::pools;
use proto::v1 as pb;

/// How long an ADD waits for a new block before the runtime is told to try again.
const BLOCK_WAIT: Duration = Duration::from_secs(30);
/// A borrowed address whose pod is gone is given back after this long (a pod recreated at
/// once keeps it).
const HOST_RELEASE_AFTER: Duration = Duration::from_secs(5);
/// How long a request waits for one of the `parallel` slots before "try again later".
const SLOT_WAIT: Duration = Duration::from_secs(10);
/// After asking ahead failed (e.g. the pool is exhausted), how long before a pool is asked
/// ahead for again: an ADD per pod must not become a refused BlockRequest per pod.
const AHEAD_BACKOFF: Duration = Duration::from_secs(30);

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
    metrics: super::metrics::Metrics,
}

/// What an ADD must get onto this node before it can try again.
enum Missing {
    /// Another block of this pool.
    Block(String),
    /// A static address (of this pool): its block, or the address lent.
    Address(String, IpAddr),
}

/// Why a lender did not lend.
enum Refused {
    /// A pod of the lending node (namespace/name, when it said) holds the address.
    Holder(Option<String>),
    /// No answer from this node in time.
    NoAnswer(String),
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

fn ipam_status(e: &IpamError) -> Status {
    match e {
        IpamError::Taken { .. } | IpamError::NotOnThisNode { .. } => {
            Status::already_exists(e.to_string())
        }
        _ => Status::internal(e.to_string()),
    }
}

fn choice_status(e: &ChoiceError) -> Status {
    match e {
        ChoiceError::OutsidePools(_) => Status::already_exists(e.to_string()),
        ChoiceError::NoPool => Status::out_of_range(e.to_string()),
        _ => Status::invalid_argument(e.to_string()),
    }
}

fn net_status(e: &NetError) -> Status {
    match e {
        NetError::Netns { .. } | NetError::Setns { .. } => Status::invalid_argument(e.to_string()),
        _ => Status::internal(e.to_string()),
    }
}

fn kube_status(what: &str, e: kube::Error) -> Status {
    Status::unavailable(format!("{what}: {e}"))
}

impl PodNetwork {
    pub(crate) fn new(
        opts: PodOptions,
        client: Client,
        caches: Caches,
        metrics: super::metrics::Metrics,
    ) -> Result<PodNetwork, super::pod_store::StoreError> {
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

    /// Brings the allocator's blocks in line with the cache: new blocks are added, deleting
    /// ones drain. Nothing is removed here (see [`Self::tend_blocks`]).
    fn sync_blocks(&self, st: &mut State) {
        for b in self.cached_blocks() {
            let name = b.name_any();
            let Ok(cidr) = b.spec.cidr.parse::<ipnet::IpNet>() else {
                warn!(block = %name, cidr = %b.spec.cidr, "block CIDR unreadable");
                continue;
            };
            let added = if b.spec.lent_from.is_some() {
                let lent = b
                    .status
                    .as_ref()
                    .and_then(|s| s.loan.as_ref())
                    .is_some_and(|l| l.lent);
                st.ipam
                    .add_borrowed(&name, &b.spec.pool_ref, cidr.addr(), lent)
            } else {
                st.ipam.add_block(&name, &b.spec.pool_ref, cidr)
            };
            if let Err(e) = added {
                warn!(block = %name, error = %e, "block not usable");
                continue;
            }
            if b.metadata.deletion_timestamp.is_some() {
                st.ipam.drain(&name, true);
            }
        }
        self.sync_reservations(st);
        self.sync_loans(st);
    }

    /// Keeps the reserved addresses of this node's blocks from anyone but their pods.
    fn sync_reservations(&self, st: &mut State) {
        let want: BTreeSet<IpAddr> = self
            .reservations
            .state()
            .iter()
            .flat_map(|r| r.spec.addresses.iter().filter_map(|a| a.parse().ok()))
            .collect();
        let gone: Vec<IpAddr> = st.ipam.reserved().difference(&want).copied().collect();
        for ip in gone {
            st.ipam.unreserve(ip);
        }
        for ip in want {
            // False when no block of this node holds it: another node keeps it.
            st.ipam.reserve(ip);
        }
    }

    /// Lends what other nodes' host blocks ask of this node's blocks, and takes back what
    /// went. An answer, once given, stands for the host block's life.
    fn sync_loans(&self, st: &mut State) {
        let asking: BTreeMap<String, Arc<AddressBlock>> = self
            .lent
            .state()
            .into_iter()
            .filter(|h| h.metadata.deletion_timestamp.is_none())
            .map(|h| (h.name_any(), h))
            .collect();
        let gone: Vec<String> = st
            .ipam
            .loans()
            .keys()
            .filter(|h| !asking.contains_key(*h))
            .cloned()
            .collect();
        for h in gone {
            if let Some(l) = st.ipam.end_loan(&h) {
                info!(host_block = %h, ip = %l.ip, block = %l.block, "loan ended");
            }
        }
        st.loan_answers.retain(|h, _| asking.contains_key(h));
        for (name, h) in &asking {
            if st.loan_answers.contains_key(name) {
                continue;
            }
            let (Some(from), Ok(cidr)) = (&h.spec.lent_from, h.spec.cidr.parse::<ipnet::IpNet>())
            else {
                continue;
            };
            let answer = match st.ipam.lend(name, from, cidr.addr()) {
                Ok(()) => {
                    info!(host_block = %name, ip = %cidr.addr(), block = %from, "address lent");
                    Ok(())
                }
                // Not ours (yet): our cache may be behind; look again at the next change.
                Err(IpamError::NotOnThisNode { .. }) => continue,
                Err(_) => {
                    let holder = st.ipam.holder(cidr.addr()).and_then(|a| {
                        st.attachments
                            .get(a)
                            .map(|s| format!("{}/{}", s.pod_namespace, s.pod_name))
                    });
                    info!(host_block = %name, ip = %cidr.addr(), holder = ?holder, "address not lent: in use");
                    Err(holder)
                }
            };
            st.loan_answers.insert(name.clone(), answer);
        }
    }

    /// Takes the records of an earlier run back (after the caches are ready).
    pub(crate) fn restore(&self) -> Result<usize, super::pod_store::StoreError> {
        let (records, bad) = self.store.load()?;
        for e in bad {
            warn!(error = %e, "CNI record unreadable; left on disk");
        }
        let mut st = self.lock();
        self.sync_blocks(&mut st);
        let mut n = 0;
        for s in records {
            let att = s.attachment();
            match st.ipam.restore(att.clone(), s.record()) {
                Ok(()) => {
                    st.attachments.insert(att, s);
                    n += 1;
                }
                Err(e) => {
                    warn!(container = %s.container_id, error = %e, "CNI record not restored; left on disk")
                }
            }
        }
        Ok(n)
    }

    /// Records the running pods of this node that no record names, with the addresses the API
    /// shows for them (see [`super::adopt`]), and moves sart's routes of those pods into the
    /// main table. How many pods were taken in.
    pub(crate) async fn adopt(&self) -> Result<usize, NetError> {
        if let Err(e) = k8s::cache::ready(&self.pods).await {
            warn!(error = %e, "pods of this node unknown: none adopted");
            return Ok(0);
        }
        let routes = podnet::pod_routes().await?;
        let running: Vec<super::adopt::RunningPod> = self
            .pods
            .state()
            .iter()
            .filter_map(|p| running_pod(p))
            .collect();
        let plan = {
            let st = self.lock();
            let recorded: BTreeSet<IpAddr> = st
                .attachments
                .values()
                .flat_map(|s| s.addresses.iter().map(|a| a.ip))
                .collect();
            let recorded_pods: BTreeSet<(String, String)> = st
                .attachments
                .values()
                .map(|s| (s.pod_namespace.clone(), s.pod_name.clone()))
                .collect();
            super::adopt::plan(
                &running,
                &recorded,
                &recorded_pods,
                &routes,
                |ip| st.ipam.block_of(ip).map(str::to_owned),
                unix_now(),
            )
        };
        let mut n = 0;
        for a in plan {
            let s = a.stored;
            let pod = format!("{}/{}", s.pod_namespace, s.pod_name);
            let att = s.attachment();
            {
                let mut st = self.lock();
                if let Err(e) = st.ipam.restore(att.clone(), s.record()) {
                    warn!(pod = %pod, error = %e, "running pod not adopted");
                    continue;
                }
                st.attachments.insert(att, s.clone());
            }
            if let Err(e) = self.save(&s).await {
                // Still held in memory for this run; the next start adopts it again.
                warn!(pod = %pod, error = %e, "adopted pod's record not written");
            }
            if !a.migrate.is_empty()
                && let Err(e) = podnet::migrate(s.host_ifname.clone(), a.migrate.clone()).await
            {
                warn!(pod = %pod, error = %e, "moving sart's routes of an adopted pod");
            }
            let addresses: Vec<String> = s.addresses.iter().map(|a| a.ip.to_string()).collect();
            info!(pod = %pod, addresses = ?addresses, veth = %s.host_ifname, container = %s.container_id,
                "adopted a running pod no record named");
            n += 1;
        }
        match podnet::drop_sart_rule().await {
            Ok(_) => {}
            Err(e) => warn!(error = %e, "removing sart's rule for table 120"),
        }
        Ok(n)
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

    /// Deletes veths of ours that no record names (an agent killed between a DEL and the end
    /// of its veth's deletion leaves one).
    pub(crate) async fn sweep(&self) -> Result<usize, NetError> {
        let mut known = self.store.names();
        known.extend(self.attachments().into_iter().map(|s| s.host_ifname));
        podnet::sweep(known).await
    }

    async fn slot(&self) -> Result<tokio::sync::SemaphorePermit<'_>, Status> {
        match tokio::time::timeout(SLOT_WAIT, self.slots.acquire()).await {
            Ok(Ok(p)) => Ok(p),
            _ => Err(Status::resource_exhausted(format!(
                "{} CNI operations are in progress on this node",
                self.opts.parallel
            ))),
        }
    }

    fn claim(&self, att: &Attachment) -> Result<BusyGuard<'_>, Status> {
        if !self.lock().busy.insert(att.clone()) {
            return Err(Status::unavailable(format!(
                "another operation on container {} interface {} is in progress",
                att.container_id, att.ifname
            )));
        }
        Ok(BusyGuard {
            net: self,
            att: att.clone(),
        })
    }

    async fn gateways(&self) -> Result<Gateways, Status> {
        if let Some(g) = *self.gateways.lock().unwrap_or_else(|p| p.into_inner()) {
            return Ok(g);
        }
        let api: Api<Node> = Api::all(self.client.clone());
        let node = api
            .get(&self.opts.node)
            .await
            .map_err(|e| kube_status(&format!("reading Node {}", self.opts.node), e))?;
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

    pub(crate) async fn add(&self, a: &pb::Args) -> Result<pb::CniResult, Status> {
        let att = attachment(a)?;
        if a.netns.is_empty() {
            return Err(Status::invalid_argument("CNI_NETNS is required for ADD"));
        }
        // Refused before an address is taken (the kernel work would fail on it anyway).
        if !std::path::Path::new(&a.netns).exists() {
            return Err(Status::invalid_argument(format!(
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
                    warn!(container = %att.container_id, error = %u.message(), "undoing a failed set-up");
                }
                Err(net_status(&e))
            }
        }
    }

    /// Chooses and takes the attachment's addresses and records them.
    async fn allocate(&self, a: &pb::Args, att: &Attachment) -> Result<Stored, Status> {
        let cni_args = cni_args(a);
        let (ns, name) = match (
            cni_args.get("K8S_POD_NAMESPACE"),
            cni_args.get("K8S_POD_NAME"),
        ) {
            (Some(ns), Some(name)) if !ns.is_empty() && !name.is_empty() => (ns, name),
            _ => {
                return Err(Status::invalid_argument(
                    "CNI_ARGS must name the pod (K8S_POD_NAMESPACE and K8S_POD_NAME)",
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
                    .map_err(|e| kube_status(&format!("reading pod {ns}/{name}"), e))?
                    .ok_or_else(|| Status::not_found(format!("pod {ns}/{name} does not exist")))?,
            ),
        };
        if let Some(u) = uid
            && pod.metadata.uid.as_ref() != Some(u)
        {
            return Err(Status::not_found(format!(
                "pod {ns}/{name} with uid {u} does not exist (the pod of that name has another)"
            )));
        }
        let namespace = match self.namespaces.get(&ObjectRef::new(ns)) {
            Some(n) => Some(n),
            None => Api::<Namespace>::all(self.client.clone())
                .get_opt(ns)
                .await
                .map_err(|e| kube_status(&format!("reading namespace {ns}"), e))?
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
        .map_err(|e| choice_status(&e))?;
        // An address reserved for another pod is that pod's, wherever it runs next.
        if let pod_pool::Choice::Static(ips) = &choice {
            for (ip, _) in ips {
                if let Some(other) = self.reserved_for(*ip).filter(|o| *o != key) {
                    let by = other
                        .split_once('/')
                        .filter(|(other_ns, _)| *other_ns == ns.as_str())
                        .map(|_| format!(" pod {other}"))
                        .unwrap_or_else(|| " another pod".to_owned());
                    return Err(Status::already_exists(format!(
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

    /// The pod (namespace/name) an address is reserved for.
    fn reserved_for(&self, ip: IpAddr) -> Option<String> {
        let text = ip.to_string();
        self.reservations
            .state()
            .iter()
            .find(|r| r.spec.addresses.contains(&text))
            .map(|r| format!("{}/{}", r.namespace().unwrap_or_default(), r.name_any()))
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
    ) -> Result<Stored, Status> {
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
                                return Err(Status::unavailable(format!(
                                    "address {ip} is still lent to the node this pod ran on (AddressBlock {host}); try again"
                                )));
                            }
                            return Err(Status::already_exists(format!(
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
                        return Err(Status::already_exists(format!(
                            "address {ip} is taken{by} on this node"
                        )));
                    }
                    Err(e) => return Err(ipam_status(&e)),
                };
                if let Allocation::NeedBlock(pool) = out {
                    break 'pick Err(Missing::Block(pool));
                }
                let record = st
                    .ipam
                    .record(att)
                    .cloned()
                    .unwrap_or(super::pod_ipam::Record {
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
                        return Err(Status::internal(e));
                    }
                    return Ok(stored);
                }
                Err(Missing::Block(pool)) => self.request_block(&pool, false).await?,
                Err(Missing::Address(pool, ip)) => self.request_address(&pool, ip, ns).await?,
            }
        }
        Err(Status::unavailable(
            "the node's blocks filled up faster than new ones came; try again",
        ))
    }

    async fn save(&self, s: &Stored) -> Result<(), String> {
        let store = self.store.clone();
        let s = s.clone();
        tokio::task::spawn_blocking(move || store.save(&s))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())
    }

    /// Releases an attachment's addresses in memory.
    fn forget(&self, s: &Stored) {
        let mut st = self.lock();
        let att = s.attachment();
        st.ipam.release(&att);
        st.attachments.remove(&att);
    }

    /// Removes whatever an attachment has: its veth, its addresses, its record.
    async fn undo(&self, s: &Stored) -> Result<(), Status> {
        let deletion = podnet::teardown(
            s.host_ifname.clone(),
            s.addresses.iter().map(|a| a.ip).collect(),
        )
        .await
        .map_err(|e| net_status(&e))?;
        if let Some(d) = deletion {
            self.deleting(&s.netns, d);
        }
        self.forget(s);
        let store = self.store.clone();
        let h = s.host_ifname.clone();
        tokio::task::spawn_blocking(move || store.remove(&h))
            .await
            .map_err(|e| Status::internal(e.to_string()))?
            .map_err(|e| Status::internal(e.to_string()))?;
        self.blocks_changed.notify_waiters();
        Ok(())
    }

    pub(crate) async fn del(&self, a: &pb::Args) -> Result<(), Status> {
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
                    .map_err(|e| net_status(&e))?
                {
                    self.deleting(&a.netns, d);
                    info!(veth = %host, "removed a veth with no record");
                }
            }
        }
        Ok(())
    }

    pub(crate) async fn check(&self, a: &pb::Args) -> Result<(), Status> {
        let att = attachment(a)?;
        let _slot = self.slot().await?;
        let _busy = self.claim(&att)?;
        let stored = self.lock().attachments.get(&att).cloned().ok_or_else(|| {
            Status::failed_precondition(format!(
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
            NetError::Check(m) | NetError::NoLink(m) => Status::failed_precondition(m),
            other => net_status(&other),
        })
    }

    /// Frees every attachment of `network` that is not in `valid`.
    pub(crate) async fn gc(
        &self,
        network: &str,
        valid: &BTreeSet<Attachment>,
    ) -> Result<usize, Status> {
        let _slot = self.slot().await?;
        let stale: Vec<Stored> = self
            .lock()
            .attachments
            .values()
            .filter(|s| s.network == network && !valid.contains(&s.attachment()))
            .cloned()
            .collect();
        let mut n = 0;
        for s in stale {
            let Ok(_busy) = self.claim(&s.attachment()) else {
                continue;
            };
            self.undo(&s).await?;
            info!(container = %s.container_id, veth = %s.host_ifname, "GC: attachment freed");
            n += 1;
        }
        Ok(n)
    }

    /// Frees the attachments of pods that no longer exist (or were made again under the same
    /// name), or whose network namespace is gone: the runtime never said DEL for them, and would
    /// not now. Attachments younger than
    /// `min_age` are left alone (their pod may be on its way). How many were freed.
    pub(crate) async fn collect_leaks(&self, min_age: Duration) -> usize {
        let cutoff = unix_now().saturating_sub(min_age.as_secs());
        let old: Vec<Stored> = self
            .lock()
            .attachments
            .values()
            .filter(|s| s.created <= cutoff)
            .cloned()
            .collect();
        let mut n = 0;
        for s in old {
            // A namespace that is gone means a sandbox that is gone (a node restart, a runtime
            // that lost track of it).
            let netns_gone = !s.netns.is_empty() && !std::path::Path::new(&s.netns).exists();
            let api: Api<Pod> = Api::namespaced(self.client.clone(), &s.pod_namespace);
            let gone = netns_gone
                || match api.get_opt(&s.pod_name).await {
                    Ok(None) => true,
                    Ok(Some(p)) => {
                        !s.pod_uid.is_empty()
                            && p.metadata.uid.as_deref() != Some(s.pod_uid.as_str())
                    }
                    // Unsure: keep it.
                    Err(e) => {
                        debug!(error = %e, "leak GC: reading a pod");
                        false
                    }
                };
            if !gone {
                continue;
            }
            let Ok(_busy) = self.claim(&s.attachment()) else {
                continue;
            };
            // Still the same attachment (a DEL may have come meanwhile).
            if self.lock().attachments.get(&s.attachment()) != Some(&s) {
                continue;
            }
            match self.undo(&s).await {
                Ok(()) => {
                    warn!(pod = %format!("{}/{}", s.pod_namespace, s.pod_name), container = %s.container_id, "leak GC: the pod is gone; its addresses are freed");
                    n += 1;
                }
                Err(e) => warn!(container = %s.container_id, error = %e.message(), "leak GC"),
            }
        }
        n
    }

    /// Queues the pools that are running low for [`Self::ask_ahead`]; whether any was queued.
    fn queue_ahead(&self, st: &mut State, pools: &[String]) -> bool {
        let now = Instant::now();
        let mut queued = false;
        for pool in pools {
            let quiet = st.ahead_quiet.get(pool).is_some_and(|until| now < *until);
            if !quiet
                && !st.ahead.contains(pool)
                && st.ipam.running_low(pool, self.opts.prefetch_percent)
            {
                st.ahead.insert(pool.clone());
                st.ahead_queue.push(pool.clone());
                queued = true;
            }
        }
        queued
    }

    /// Asks ahead for the blocks [`Self::queue_ahead`] queued, each pool in a task of its own so
    /// a slow or refused request for one never holds up another.
    pub(crate) async fn ask_ahead(self: Arc<Self>) {
        let mut tasks = tokio::task::JoinSet::new();
        loop {
            tokio::select! {
                _ = self.ahead_wanted.notified() => {
                    let queued = std::mem::take(&mut self.lock().ahead_queue);
                    for pool in queued {
                        let net = self.clone();
                        tasks.spawn(async move {
                            let r = net.request_block(&pool, true).await;
                            let mut st = net.lock();
                            st.ahead.remove(&pool);
                            if let Err(e) = r {
                                warn!(pool, error = %e.message(), "asking ahead for a block");
                                st.ahead_quiet.insert(pool, Instant::now() + AHEAD_BACKOFF);
                            }
                        });
                    }
                }
                Some(_) = tasks.join_next() => {}
            }
        }
    }

    /// Asks the controller for one more block of `pool` and waits until it is here: because
    /// an ADD found its blocks full, or `ahead` of that because they are running low.
    async fn request_block(&self, pool: &str, ahead: bool) -> Result<(), Status> {
        let lock = self
            .requesting
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(pool.to_owned())
            .or_default()
            .clone();
        let _held = lock.lock().await;
        // Another ADD, or asking ahead, may have brought a block while this one waited for the
        // lock.
        {
            let mut st = self.lock();
            self.sync_blocks(&mut st);
            let enough = if ahead {
                !st.ipam.running_low(pool, self.opts.prefetch_percent)
            } else {
                st.ipam.has_room(pool)
            };
            if enough {
                return Ok(());
            }
        }
        let name = format!("{pool}-{}", self.opts.node);
        let spec = BlockRequestSpec {
            pool: pool.to_owned(),
            node: self.opts.node.clone(),
            cidr: None,
        };
        let r = self
            .ask(&name, spec, |b, uid| {
                b.annotations().get(REQUEST_ANNOTATION).map(String::as_str) == Some(uid)
            })
            .await;
        self.metrics.block_request(ahead, r.is_ok());
        r.map(|_| ())
    }

    /// Gets `ip` (a static address of `pool`) onto this node: the block holding it if no node
    /// has that block, else the address alone, lent by the node that has it.
    async fn request_address(&self, pool: &str, ip: IpAddr, pod_ns: &str) -> Result<(), Status> {
        let lock = self
            .requesting
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(format!("{pool}/{ip}"))
            .or_default()
            .clone();
        let _held = lock.lock().await;
        let name = format!("{}-{}", host_block_name(pool, ip), self.opts.node);
        let spec = BlockRequestSpec {
            pool: pool.to_owned(),
            node: self.opts.node.clone(),
            cidr: Some(ipnet::IpNet::from(ip).to_string()),
        };
        let block = self
            .ask(&name, spec, |b, _| {
                b.metadata.deletion_timestamp.is_none()
                    && b.spec
                        .cidr
                        .parse::<ipnet::IpNet>()
                        .is_ok_and(|c| c.contains(&ip))
            })
            .await?;
        if block.spec.lent_from.is_none() {
            return Ok(());
        }
        let host = block.name_any();
        let from = block.spec.lent_from.clone().unwrap_or_default();
        let lender = block
            .labels()
            .get(LENDER_LABEL)
            .cloned()
            .unwrap_or_default();
        let refused = match self.wait_lent(&host, &from, &lender).await {
            Ok(()) => return Ok(()),
            Err(e) => e,
        };
        // Nobody else may have it either: give the host block back.
        let api: Api<AddressBlock> = Api::all(self.client.clone());
        if let Err(e) = api.delete(&host, &DeleteParams::default()).await {
            debug!(host_block = %host, error = %e, "giving back a host block not lent");
        }
        Err(match refused {
            Refused::Holder(holder) => {
                let by = holder
                    .filter(|h| h.split_once('/').is_some_and(|(ns, _)| ns == pod_ns))
                    .map(|h| format!(" by pod {h}"))
                    .unwrap_or_default();
                Status::already_exists(format!(
                    "address {ip} is taken{by} on the node holding its block"
                ))
            }
            Refused::NoAnswer(node) => Status::unavailable(format!(
                "node {node} did not lend address {ip} within {BLOCK_WAIT:?} (is its agent running?)"
            )),
        })
    }

    /// Waits until the lender answers host block `host` (in the status of its block `from`),
    /// and records a loan in the host block's status.
    async fn wait_lent(&self, host: &str, from: &str, lender: &str) -> Result<(), Refused> {
        let api: Api<AddressBlock> = Api::all(self.client.clone());
        let deadline = tokio::time::Instant::now() + BLOCK_WAIT;
        loop {
            let mine = self
                .cached_blocks()
                .into_iter()
                .find(|b| b.name_any() == host);
            if mine
                .as_ref()
                .and_then(|b| b.status.as_ref())
                .and_then(|s| s.loan.as_ref())
                .is_some_and(|l| l.lent)
            {
                let mut st = self.lock();
                self.sync_blocks(&mut st);
                return Ok(());
            }
            let answer = match api.get_opt(from).await {
                Ok(b) => b
                    .and_then(|b| b.status)
                    .and_then(|s| s.loans)
                    .and_then(|l| l.into_iter().find(|a| a.host_block == host)),
                Err(e) => {
                    debug!(block = %from, error = %e, "reading the lender's block");
                    None
                }
            };
            match answer {
                Some(a) if !a.lent => return Err(Refused::Holder(a.holder)),
                // Recorded where this node's IPAM reads it (and finds it after a restart); the
                // index the controller writes first (it is required).
                Some(_) if mine.as_ref().is_some_and(|b| b.status.is_some()) => {
                    let loan = Loan {
                        lent: true,
                        holder: None,
                    };
                    let patch = json!({"status": {"loan": loan}});
                    if let Err(e) = api
                        .patch_status(host, &PatchParams::default(), &Patch::Merge(&patch))
                        .await
                    {
                        debug!(host_block = %host, error = %e, "recording a loan");
                    }
                }
                _ => {}
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(Refused::NoAnswer(lender.to_owned()));
            }
            let _ =
                tokio::time::timeout(Duration::from_millis(500), self.blocks_changed.notified())
                    .await;
        }
    }

    /// Creates BlockRequest `name`, waits until one of this node's blocks `answers` it (given
    /// the request's uid) or the controller refuses it, then deletes the request.
    async fn ask(
        &self,
        name: &str,
        spec: BlockRequestSpec,
        answers: impl Fn(&AddressBlock, &str) -> bool,
    ) -> Result<Arc<AddressBlock>, Status> {
        let api: Api<BlockRequest> = Api::all(self.client.clone());
        let req = BlockRequest::new(name, spec);
        let created = match api.create(&PostParams::default(), &req).await {
            Ok(r) => Ok(r),
            // One left by an earlier run: it may have been served with a block that is full
            // by now. Ask afresh.
            Err(kube::Error::Api(e)) if e.code == 409 => {
                let _ = api.delete(name, &DeleteParams::default()).await;
                tokio::time::sleep(Duration::from_millis(100)).await;
                api.create(&PostParams::default(), &req).await
            }
            Err(e) => Err(e),
        };
        let created =
            created.map_err(|e| kube_status(&format!("creating BlockRequest {name}"), e))?;
        let uid = created.uid().unwrap_or_default();
        info!(request = %name, pool = %req.spec.pool, cidr = ?req.spec.cidr, "asked for a block");
        let r = self.wait_served(&api, name, |b| answers(b, &uid)).await;
        match api.delete(name, &DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => debug!(request = %name, error = %e, "deleting a served BlockRequest"),
        }
        r
    }

    async fn wait_served(
        &self,
        api: &Api<BlockRequest>,
        name: &str,
        answers: impl Fn(&AddressBlock) -> bool,
    ) -> Result<Arc<AddressBlock>, Status> {
        let deadline = tokio::time::Instant::now() + BLOCK_WAIT;
        let mut last_look = tokio::time::Instant::now();
        loop {
            if let Some(b) = self.cached_blocks().into_iter().find(|b| answers(b)) {
                let mut st = self.lock();
                self.sync_blocks(&mut st);
                return Ok(b);
            }
            // A refusal is a condition on the request: look now and then.
            if last_look.elapsed() > Duration::from_secs(1) {
                last_look = tokio::time::Instant::now();
                if let Ok(r) = api.get(name).await
                    && let Some(c) = r
                        .status
                        .and_then(|s| s.conditions)
                        .and_then(|c| c.into_iter().find(|c| c.type_ == "Ready"))
                    && c.status == "False"
                    // A pool or Node the controller has not seen yet, though we have (we chose
                    // the pool from our cache, and run on the Node): its cache is behind and it
                    // looks again when they arrive. A block changing hands is asked for again
                    // by the controller. Keep waiting rather than fail the ADD.
                    && !matches!(
                        c.reason.as_str(),
                        "PoolNotFound" | "NodeNotFound" | "BlockMoving"
                    )
                {
                    // The rest stand until someone changes the pool: the runtime retries.
                    return Err(match c.reason.as_str() {
                        "PoolExhausted" => Status::out_of_range(c.message),
                        "AddressTaken" => Status::already_exists(c.message),
                        _ => Status::unavailable(format!("BlockRequest {name}: {}", c.message)),
                    });
                }
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(Status::unavailable(format!(
                    "BlockRequest {name} was not served within {BLOCK_WAIT:?}"
                )));
            }
            let _ =
                tokio::time::timeout(Duration::from_millis(250), self.blocks_changed.notified())
                    .await;
        }
    }

    pub(crate) fn leak_gc_interval(&self) -> Duration {
        self.opts.leak_gc_interval.max(Duration::from_secs(1))
    }

    /// Called on every block cache change.
    pub(crate) fn blocks_changed(&self) {
        self.blocks_changed.notify_waiters();
    }

    /// Keeps this node's blocks: our finalizer on each, deleting blocks let go once empty, empty
    /// blocks released after the grace period.
    pub(crate) async fn tend_blocks(&self) {
        let cached = self.cached_blocks();
        let cached_names: BTreeSet<String> = cached.iter().map(|b| b.name_any()).collect();
        let (let_go, release) = {
            let mut st = self.lock();
            self.sync_blocks(&mut st);
            let usage = st.ipam.usage();
            // Borrowed: host blocks lent (announced as host routes from then on).
            self.metrics.host_addresses(
                usage.iter().filter(|u| u.borrowed == Some(true)).count(),
                st.ipam.loans().len(),
            );
            let now = Instant::now();
            let mut let_go = Vec::new();
            let mut release = Vec::new();
            for u in &usage {
                if u.allocated > 0 {
                    st.empty_since.remove(&u.name);
                    continue;
                }
                let deleting = cached
                    .iter()
                    .any(|b| b.name_any() == u.name && b.metadata.deletion_timestamp.is_some());
                if deleting || !cached_names.contains(&u.name) {
                    let _ = st.ipam.remove_block(&u.name);
                    st.empty_since.remove(&u.name);
                    if deleting {
                        let_go.push(u.name.clone());
                    }
                    continue;
                }
                let since = *st.empty_since.entry(u.name.clone()).or_insert(now);
                let (after, spare) = match u.borrowed {
                    None => (
                        self.opts.release_after,
                        st.ipam.keep_as_spare(&u.name, self.opts.prefetch_percent),
                    ),
                    Some(true) => (HOST_RELEASE_AFTER, false),
                    // Not lent (yet): the ADD that asked waits for the answer and deletes the
                    // block if refused; one is left over only if that ADD never finished.
                    Some(false) => (BLOCK_WAIT * 2, false),
                };
                // A draining block that is not deleting yet was released by us already.
                if !u.draining && now.duration_since(since) >= after && !spare {
                    // Nothing new from it while it goes.
                    st.ipam.drain(&u.name, true);
                    release.push(u.name.clone());
                }
            }
            (let_go, release)
        };
        let api: Api<AddressBlock> = Api::all(self.client.clone());
        for b in &cached {
            let name = b.name_any();
            let has = b.finalizers().iter().any(|f| f == AGENT_FINALIZER);
            // A deleting block keeps ours while pods hold its addresses (and none can be
            // added to an object being deleted).
            let want = if b.metadata.deletion_timestamp.is_some() {
                has && !let_go.contains(&name)
            } else {
                true
            };
            if has != want
                && let Err(e) = k8s::finalizer::set(&api, &**b, AGENT_FINALIZER, want).await
            {
                debug!(block = %name, error = %e, "agent finalizer");
            }
        }
        self.answer_loans(&api).await;
        // Each block's use in its status, when it changed (at most once a tend, not per pod).
        let usage: BTreeMap<String, (u128, u128, u128)> = self
            .usage()
            .into_iter()
            .map(|u| (u.name, (u.allocated, u.capacity, u.reserved)))
            .collect();
        for b in &cached {
            let Some((used, cap, reserved)) = usage.get(&b.name_any()) else {
                continue;
            };
            let reserved = i64::try_from(*reserved).unwrap_or(i64::MAX);
            let used = i64::try_from(*used).unwrap_or(i64::MAX);
            let free = i64::try_from(cap.saturating_sub(u128::try_from(used).unwrap_or(0)))
                .unwrap_or(i64::MAX);
            // No status yet means no index yet: the controller writes it first (it is required).
            let Some(st) = &b.status else { continue };
            // Reserved: kept for sticky pods (counted in `used` too); absent when none.
            let reserved = (reserved > 0).then_some(reserved);
            if st.used == Some(used) && st.free == Some(free) && st.reserved == reserved {
                continue;
            }
            let patch = json!({"status": {"used": used, "free": free, "reserved": reserved}});
            if let Err(e) = api
                .patch_status(
                    &b.name_any(),
                    &PatchParams::default(),
                    &Patch::Merge(&patch),
                )
                .await
            {
                debug!(block = %b.name_any(), error = %e, "block usage");
            }
        }
        for name in release {
            info!(block = %name, after = ?self.opts.release_after, "releasing an empty block");
            if let Err(e) = api.delete(&name, &DeleteParams::default()).await {
                warn!(block = %name, error = %e, "releasing an empty block");
                self.lock().ipam.drain(&name, false);
            }
        }
    }

    /// Writes this node's answers to host blocks into the status of its blocks they ask of
    /// (each agent writes only its own node's objects; the borrower reads them there).
    async fn answer_loans(&self, api: &Api<AddressBlock>) {
        let answers = self.lock().loan_answers.clone();
        let asking: BTreeMap<String, String> = self
            .lent
            .state()
            .iter()
            .filter_map(|h| Some((h.name_any(), h.spec.lent_from.clone()?)))
            .collect();
        for b in self.cached_blocks() {
            if b.spec.lent_from.is_some() {
                continue;
            }
            let name = b.name_any();
            let mut want: Vec<LoanAnswer> = answers
                .iter()
                .filter(|(h, _)| asking.get(*h) == Some(&name))
                .map(|(h, a)| LoanAnswer {
                    host_block: h.clone(),
                    lent: a.is_ok(),
                    holder: a.as_ref().err().cloned().flatten(),
                })
                .collect();
            want.sort();
            // No status yet means no index yet: the controller writes it first (it is required).
            let Some(st) = &b.status else { continue };
            if st.loans.clone().unwrap_or_default() == want {
                continue;
            }
            let patch = json!({"status": {"loans": want}});
            if let Err(e) = api
                .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                debug!(block = %name, error = %e, "loan answers");
            }
        }
    }

    /// What the egress NAT table should hold now.
    pub(crate) fn nat_want(&self) -> super::nat::Want {
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
        super::nat::Want::new(&pod_pools, &self.opts.no_masquerade)
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
    pub(crate) fn usage(&self) -> Vec<super::pod_ipam::BlockUse> {
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

/// The CNI network's `name` in a configuration as `sart-cni` received it (empty if none).
pub(crate) fn network_name(conf: &str) -> String {
    serde_json::from_str::<serde_json::Value>(conf)
        .ok()
        .and_then(|v| v["name"].as_str().map(str::to_owned))
        .unwrap_or_default()
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A pod of this node whose addresses are in use: not host-network, not finished.
fn running_pod(p: &Pod) -> Option<super::adopt::RunningPod> {
    let spec = p.spec.as_ref()?;
    if spec.host_network == Some(true) || p.metadata.deletion_timestamp.is_some() {
        return None;
    }
    let status = p.status.as_ref()?;
    if matches!(status.phase.as_deref(), Some("Succeeded" | "Failed")) {
        return None;
    }
    let ips: Vec<IpAddr> = status
        .pod_ips
        .iter()
        .flatten()
        .filter_map(|i| i.ip.parse().ok())
        .collect();
    (!ips.is_empty()).then(|| super::adopt::RunningPod {
        namespace: p.namespace().unwrap_or_default(),
        name: p.name_any(),
        uid: p.metadata.uid.clone().unwrap_or_default(),
        ips,
    })
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

fn attachment(a: &pb::Args) -> Result<Attachment, Status> {
    if a.container_id.is_empty() || a.ifname.is_empty() {
        return Err(Status::invalid_argument(
            "CNI_CONTAINERID and CNI_IFNAME are required",
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
