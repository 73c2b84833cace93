//! The node's blocks: in step with the cache (reservations and loans too), asked for from the
//! controller when full or running low, an address asked for from the node whose block holds
//! it, and the node's own blocks tended: finalizer, usage in the status, released once empty.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kube::ResourceExt;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;
use tracing::{debug, info, warn};

use crate::pod_ipam::IpamError;
use k8s::crd::address_block::{AGENT_FINALIZER, LENDER_LABEL, Loan, LoanAnswer};
use k8s::crd::address_block::{REQUEST_ANNOTATION, host_block_name};
use k8s::crd::{AddressBlock, BlockRequest, BlockRequestSpec};

use super::{PodError, PodNetwork, State};

/// How long an ADD waits for a new block before the runtime is told to try again.
const BLOCK_WAIT: Duration = Duration::from_secs(30);
/// A borrowed address whose pod is gone is given back after this long (a pod recreated at
/// once keeps it).
const HOST_RELEASE_AFTER: Duration = Duration::from_secs(5);
/// After asking ahead failed (e.g. the pool is exhausted), how long before a pool is asked
/// ahead for again: an ADD per pod must not become a refused BlockRequest per pod.
const AHEAD_BACKOFF: Duration = Duration::from_secs(30);

/// Why a lender did not lend.
enum Refused {
    /// A pod of the lending node (namespace/name, when it said) holds the address.
    Holder(Option<String>),
    /// No answer from this node in time.
    NoAnswer(String),
}

impl PodNetwork {
    /// Brings the allocator's blocks in line with the cache: new blocks are added, deleting
    /// ones drain. Nothing is removed here (see [`Self::tend_blocks`]).
    pub(super) fn sync_blocks(&self, st: &mut State) {
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

    /// Queues the pools that are running low for [`Self::ask_ahead`]; whether any was queued.
    pub(super) fn queue_ahead(&self, st: &mut State, pools: &[String]) -> bool {
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
                                warn!(pool, error = %e, "asking ahead for a block");
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
    pub(super) async fn request_block(&self, pool: &str, ahead: bool) -> Result<(), PodError> {
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
    pub(super) async fn request_address(
        &self,
        pool: &str,
        ip: IpAddr,
        pod_ns: &str,
    ) -> Result<(), PodError> {
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
                PodError::Taken(format!(
                    "address {ip} is taken{by} on the node holding its block"
                ))
            }
            Refused::NoAnswer(node) => PodError::TryAgain(format!(
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
    ) -> Result<Arc<AddressBlock>, PodError> {
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
            created.map_err(|e| PodError::kube(&format!("creating BlockRequest {name}"), e))?;
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
    ) -> Result<Arc<AddressBlock>, PodError> {
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
                        "PoolExhausted" => PodError::Exhausted(c.message),
                        "AddressTaken" => PodError::Taken(c.message),
                        _ => PodError::TryAgain(format!("BlockRequest {name}: {}", c.message)),
                    });
                }
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(PodError::TryAgain(format!(
                    "BlockRequest {name} was not served within {BLOCK_WAIT:?}"
                )));
            }
            let _ =
                tokio::time::timeout(Duration::from_millis(250), self.blocks_changed.notified())
                    .await;
        }
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
}
