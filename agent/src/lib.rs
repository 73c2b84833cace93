//! `sartd agent`: makes the node's speaker match the cluster. It watches the node's NodeBGP, its
//! BGPPeers and every BGPAdvertisement; on any change, on a speaker (re)connect and every
//! `resync`, it reads the speaker, applies the [`plan`](plan::plan), and writes BGPPeer and
//! BGPAdvertisement status. Peer state changes arrive on the speaker's Watch stream, so
//! `kubectl get bgppeer` follows sessions without polling.

#![warn(unreachable_pub)]

mod adopt;
mod cni;
mod forwarding;
mod guard;
pub mod install_cni;
mod metrics;
mod nat;
mod plan;
mod pod_ipam;
mod pod_pool;
mod pod_store;
mod podnet;
mod pods;
mod speaker;

pub use pods::PodOptions;

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::{reflector, watcher};
use kube::{Client, ResourceExt};
use proto::v1;
use serde_json::json;
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use k8s::cache::{self, Task};
use k8s::crd::address_block::{LENDER_LABEL, NODE_LABEL as BLOCK_NODE_LABEL};
use k8s::crd::bgp_peer::NODE_LABEL as PEER_NODE_LABEL;
use k8s::crd::bgp_peer_template::PasswordSecretRef;
use k8s::crd::{
    AddressBlock, AddressPool, AddressReservation, AdvertiseStatus, BGPAdvertisement, BGPPeer,
    BGPPeerCondition, NodeBGP, PeerState,
};
use speaker::{Secrets, Speaker, SpeakerError};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("kubernetes API: {0}")]
    Kube(#[source] kube::Error),
    #[error(transparent)]
    Speaker(#[from] SpeakerError),
    #[error("{0}")]
    Plan(#[from] plan::PlanError),
    #[error("waiting for the caches: {0}")]
    Cache(String),
    #[error(transparent)]
    Cni(#[from] cni::Error),
    #[error("CNI records: {0}")]
    Store(#[from] pod_store::StoreError),
    #[error(transparent)]
    Net(#[from] podnet::NetError),
    #[error(transparent)]
    Guard(#[from] guard::GuardError),
    #[error(transparent)]
    Forwarding(#[from] forwarding::SysctlError),
    #[error("{0}")]
    Task(String),
    #[error("HTTP address {addr}: {source}")]
    Http {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
}

/// Where the speaker is when neither `--speaker` nor the NodeBGP says.
pub const DEFAULT_SPEAKER: &str = "127.0.0.1:5000";

#[derive(Clone, Debug)]
pub struct Options {
    pub node: String,
    /// The speaker's API (`--speaker`): used whatever the NodeBGP says. `None`: the NodeBGP's
    /// `speaker.path`, else [`DEFAULT_SPEAKER`].
    pub speaker: Option<String>,
    /// Full resynchronisation period.
    pub resync: Duration,
    /// Serve `sart-cni` on this unix socket (`--mode cni|dual`), with these pod settings.
    pub cni: Option<(std::path::PathBuf, pods::PodOptions)>,
    /// Where `/metrics`, `/healthz` and `/readyz` are served.
    pub http: std::net::SocketAddr,
    /// The only namespace BGPPeer passwords and BFD keys are read from.
    pub password_namespace: String,
}

/// What the loops report besides doing their work: CNI readiness, the probes, the metrics.
#[derive(Clone)]
struct Report {
    ready: std::sync::Arc<cni::Readiness>,
    health: std::sync::Arc<daemon::health::Health>,
    metrics: metrics::Metrics,
    /// Whether the last sync with the speaker succeeded.
    synced: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// Serving the CNI (`--mode cni|dual`).
    cni: bool,
}

impl Report {
    /// A sync ended with this many sessions Established, or failed.
    fn synced(&self, established: Option<usize>) {
        self.ready.established(established.unwrap_or(0));
        self.metrics.synced(established);
        self.synced
            .store(established.is_some(), std::sync::atomic::Ordering::Release);
        self.update();
    }

    /// `/readyz` from what is known now.
    fn update(&self) {
        let synced = self.synced.load(std::sync::atomic::Ordering::Acquire);
        match readiness(synced, self.cni.then(|| self.ready.pods_restored())) {
            Ok(()) => self.health.set_ready(),
            Err(why) => self.health.set_not_ready(why),
        }
    }
}

/// The agent is ready once its speaker matches the cluster and, serving the CNI, it has its pod
/// records back. Sessions are not required: a node may have no peers on purpose.
fn readiness(synced: bool, pods_restored: Option<bool>) -> Result<(), &'static str> {
    if !synced {
        Err(
            "the speaker does not match the cluster yet: no sync has succeeded since the last failure",
        )
    } else if pods_restored == Some(false) {
        Err("restoring the pods' CNI records")
    } else {
        Ok(())
    }
}

/// Conditions kept on a BGPPeer (the last one is its state).
const CONDITIONS_KEPT: usize = 8;

struct Caches {
    node_bgps: reflector::Store<NodeBGP>,
    peers: reflector::Store<BGPPeer>,
    ads: reflector::Store<BGPAdvertisement>,
    pools: reflector::Store<AddressPool>,
    /// Advertisements refused at the last sync (logged when this changes, not every sync).
    outside_pools: std::sync::Mutex<BTreeSet<String>>,
}

pub async fn run(client: Client, opts: Options) -> Result<(), Error> {
    let ready = std::sync::Arc::new(cni::Readiness::default());
    // The sync loop turns at least every resync: six missed turns is a stuck agent.
    let health = daemon::health::Health::new((opts.resync * 6).max(Duration::from_secs(60)));
    health.set_not_ready("reading the cluster");
    let metrics = metrics::Metrics::default();
    let http = metrics::serve(opts.http, metrics.clone(), &health)
        .await
        .map_err(|source| Error::Http {
            addr: opts.http,
            source,
        })?;
    let _http = Task(tokio::spawn(async move {
        if let Err(e) = http.await {
            warn!(error = %e, "HTTP server stopped");
        }
    }));
    let report = Report {
        ready: ready.clone(),
        health,
        metrics: metrics.clone(),
        synced: Default::default(),
        cni: opts.cni.is_some(),
    };
    let Some((path, pod_opts)) = opts.cni.clone() else {
        return sync_loop(client, opts, report).await;
    };
    // IPv4 now; IPv6 once the pools are known (pods_loop).
    let marker = forwarding::marker(&path);
    tokio::task::spawn_blocking({
        let marker = marker.clone();
        move || forwarding::apply(&marker, None)
    })
    .await
    .map_err(|e| Error::Task(e.to_string()))??;
    // No pod runs unguarded: without the table the agent does not start.
    tokio::task::spawn_blocking(guard::apply)
        .await
        .map_err(|e| Error::Task(e.to_string()))??;
    let (blocks_tx, blocks_changed) = mpsc::channel(1);
    let (pools, t1) = cache::watch(
        Api::<AddressPool>::all(client.clone()),
        watcher::Config::default(),
        blocks_tx.clone(),
    );
    let (blocks, t2) = cache::watch(
        Api::<AddressBlock>::all(client.clone()),
        watcher::Config::default().labels(&format!("{BLOCK_NODE_LABEL}={}", opts.node)),
        blocks_tx.clone(),
    );
    // Other nodes' host blocks asking this node to lend one of its addresses.
    let (lent, t5) = cache::watch(
        Api::<AddressBlock>::all(client.clone()),
        watcher::Config::default().labels(&format!("{LENDER_LABEL}={}", opts.node)),
        blocks_tx.clone(),
    );
    // Sticky pods' reservations: their addresses in this node's blocks are kept.
    let (reservations, t6) = cache::watch(
        Api::<AddressReservation>::all(client.clone()),
        watcher::Config::default(),
        blocks_tx,
    );
    // Pods of this node and every namespace: an ADD reads their annotations from here rather
    // than from the API server (a pod not in the cache yet is read from the API server).
    let (unread, _) = mpsc::channel(1);
    let (pod_cache, t3) = cache::watch(
        Api::<Pod>::all(client.clone()),
        watcher::Config::default().fields(&format!("spec.nodeName={}", opts.node)),
        unread.clone(),
    );
    let (ns_cache, t4) = cache::watch(
        Api::<Namespace>::all(client.clone()),
        watcher::Config::default(),
        unread,
    );
    let _watchers = [t1, t2, t3, t4, t5, t6];
    let net = std::sync::Arc::new(pods::PodNetwork::new(
        pod_opts,
        client.clone(),
        pods::Caches {
            pools: pools.clone(),
            blocks: blocks.clone(),
            lent,
            pods: pod_cache,
            namespaces: ns_cache,
            reservations,
        },
        metrics.clone(),
    )?);
    // Listening from the start: STATUS says "not ready" rather than nothing at all.
    tokio::select! {
        r = cni::serve(path, ready.clone(), net.clone(), metrics) => r.map_err(Error::from),
        r = sync_loop(client, opts, report.clone()) => r,
        r = pods_loop(net.clone(), report, pools, blocks, blocks_changed, marker) => r,
        () = net.ask_ahead() => Ok(()),
    }
}

/// Restores the pods' records once the pool and block caches are full, then tends the node's
/// blocks on every change and every 10 s.
async fn pods_loop(
    net: std::sync::Arc<pods::PodNetwork>,
    report: Report,
    pools: reflector::Store<AddressPool>,
    blocks: reflector::Store<AddressBlock>,
    mut changed: mpsc::Receiver<()>,
    marker: std::path::PathBuf,
) -> Result<(), Error> {
    cache::ready(&pools)
        .await
        .map_err(|e| Error::Cache(e.to_string()))?;
    cache::ready(&blocks)
        .await
        .map_err(|e| Error::Cache(e.to_string()))?;
    let n = net.restore()?;
    info!(attachments = n, "CNI records restored");
    // Before any ADD: addresses of running pods no record names stay theirs.
    match net.adopt().await {
        Ok(0) => {}
        Ok(adopted) => info!(pods = adopted, "running pods adopted"),
        Err(e) => warn!(error = %e, "looking for running pods with no record"),
    }
    // After adoption: the veths of adopted pods are named by their records now.
    match net.sweep().await {
        Ok(0) => {}
        Ok(swept) => info!(veths = swept, "removed veths no record names"),
        Err(e) => warn!(error = %e, "looking for veths no record names"),
    }
    if let Err(e) = tokio::task::spawn_blocking({
        let (v6, marker) = (net.ipv6_pool(), marker.clone());
        move || forwarding::apply(&marker, Some(v6))
    })
    .await
    .map_err(|e| Error::Task(e.to_string()))?
    {
        warn!(error = %e, "IPv6 forwarding");
    }
    report.ready.pods_ready();
    report.update();
    let mut tick = tokio::time::interval(Duration::from_secs(10));
    let gc_every = net.leak_gc_interval();
    let mut gc = tokio::time::interval(gc_every);
    // The NAT table is rewritten when what it should hold changes, and every minute (someone
    // may have flushed it).
    let mut nat_applied: Option<(nat::Want, tokio::time::Instant)> = None;
    loop {
        net.tend_blocks().await;
        let want = net.nat_want();
        let due = nat_applied
            .as_ref()
            .is_none_or(|(w, at)| *w != want || at.elapsed() > Duration::from_secs(60));
        if due {
            // Rewritten with the NAT table, in case someone flushed the ruleset.
            if let Ok(Err(e)) = tokio::task::spawn_blocking(guard::apply).await {
                warn!(error = %e, "source validation of pod interfaces");
            }
            let (v6, marker) = (net.ipv6_pool(), marker.clone());
            if let Ok(Err(e)) =
                tokio::task::spawn_blocking(move || forwarding::apply(&marker, Some(v6))).await
            {
                warn!(error = %e, "IPv6 forwarding");
            }
            let w = want.clone();
            match tokio::task::spawn_blocking(move || nat::apply(&w)).await {
                Ok(Ok(())) => {
                    if nat_applied.as_ref().is_none_or(|(w, _)| *w != want) {
                        info!(masquerade = ?want.masquerade, "egress NAT table written");
                    }
                    nat_applied = Some((want, tokio::time::Instant::now()));
                }
                // Tried again in a minute (or when the pools change), not on every tick.
                Ok(Err(e)) => {
                    warn!(error = %e, "egress NAT");
                    nat_applied = Some((want, tokio::time::Instant::now()));
                }
                Err(e) => warn!(error = %e, "egress NAT"),
            }
        }
        tokio::select! {
            _ = changed.recv() => net.blocks_changed(),
            _ = tick.tick() => {}
            _ = gc.tick() => {
                let n = net.collect_leaks(gc_every).await;
                if n > 0 {
                    info!(freed = n, "leak GC");
                }
            }
        }
    }
}

async fn sync_loop(client: Client, opts: Options, report: Report) -> Result<(), Error> {
    let (changed_tx, mut changed) = mpsc::channel(1);
    let node_sel = format!("metadata.name={}", opts.node);
    let (node_bgps, t1) = cache::watch(
        Api::<NodeBGP>::all(client.clone()),
        watcher::Config::default().fields(&node_sel),
        changed_tx.clone(),
    );
    let (peers, t2) = cache::watch(
        Api::<BGPPeer>::all(client.clone()),
        watcher::Config::default().labels(&format!("{PEER_NODE_LABEL}={}", opts.node)),
        changed_tx.clone(),
    );
    let (ads, t3) = cache::watch(
        Api::<BGPAdvertisement>::all(client.clone()),
        watcher::Config::default(),
        changed_tx.clone(),
    );
    // Which prefixes may be announced at all.
    let (pools, t4) = cache::watch(
        Api::<AddressPool>::all(client.clone()),
        watcher::Config::default(),
        changed_tx.clone(),
    );
    let _watchers = [t1, t2, t3, t4];
    // Held only to be dropped (which stops it) when the speaker changes.
    let mut _follower: Option<Task> = None;
    let caches = Caches {
        node_bgps,
        peers,
        ads,
        pools,
        outside_pools: Default::default(),
    };
    cache::ready(&caches.node_bgps)
        .await
        .map_err(|e| Error::Cache(e.to_string()))?;
    cache::ready(&caches.peers)
        .await
        .map_err(|e| Error::Cache(e.to_string()))?;
    cache::ready(&caches.ads)
        .await
        .map_err(|e| Error::Cache(e.to_string()))?;
    cache::ready(&caches.pools)
        .await
        .map_err(|e| Error::Cache(e.to_string()))?;
    info!(node = %opts.node, "agent caches ready");
    report.ready.caches_ready();

    let mut speaker: Option<Speaker> = None;
    let (events_tx, mut events) = mpsc::channel::<(IpAddr, PeerState)>(256);
    let mut tick = tokio::time::interval(opts.resync);
    let mut backoff = Duration::from_millis(500);
    loop {
        report.health.beat();
        let endpoint = caches
            .node_bgps
            .get(&reflector::ObjectRef::new(&opts.node))
            .map(|nb| nb.spec.speaker.path.clone());
        let endpoint = opts
            .speaker
            .clone()
            .or(endpoint)
            .unwrap_or_else(|| DEFAULT_SPEAKER.to_owned());
        let timeout = caches
            .node_bgps
            .get(&reflector::ObjectRef::new(&opts.node))
            .and_then(|nb| nb.spec.speaker.timeout)
            .unwrap_or(10);
        if speaker.as_ref().is_none_or(|s| s.endpoint() != endpoint) {
            match Speaker::new(&endpoint, Duration::from_secs(timeout)) {
                Ok(s) => {
                    // One watch per speaker (the old one stops); its end (a speaker restart)
                    // forces a full sync.
                    _follower = Some(Task(tokio::spawn(follow(
                        s.clone(),
                        events_tx.clone(),
                        changed_tx.clone(),
                    ))));
                    speaker = Some(s);
                }
                Err(e) => {
                    // A bad NodeBGP must not crash-loop the agent: wait for it to change.
                    warn!(error = %e, "speaker endpoint unusable");
                    report.synced(None);
                    speaker = None;
                    _follower = None;
                    tokio::select! {
                        _ = changed.recv() => {}
                        _ = tick.tick() => {}
                    }
                    continue;
                }
            }
        }
        let Some(sp) = speaker.clone() else { continue };
        match sync(&client, &opts, &caches, &sp).await {
            Ok(established) => {
                report.synced(Some(established));
                backoff = Duration::from_millis(500);
            }
            Err(e) => {
                report.synced(None);
                warn!(error = %e, "sync failed; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(30));
                continue;
            }
        }
        tokio::select! {
            _ = changed.recv() => {}
            _ = tick.tick() => {}
            Some((addr, state)) = events.recv() => {
                let peers = peer_names(&caches);
                if let Some(name) = peers.get(&addr) {
                    let _ = set_peer_state(&client, &caches, name, state).await;
                }
            }
        }
    }
}

/// Follows the speaker's peer state changes; on any break, asks for a full sync and retries.
async fn follow(sp: Speaker, events: mpsc::Sender<(IpAddr, PeerState)>, changed: mpsc::Sender<()>) {
    let mut backoff = Duration::from_millis(500);
    loop {
        match sp.watch().await {
            Ok(mut stream) => {
                backoff = Duration::from_millis(500);
                let _ = changed.try_send(());
                while let Some(Ok(ev)) = stream.next().await {
                    if let Some(v1::watch_event::Event::Peer(p)) = ev.event
                        && let Ok(addr) = p.address.parse()
                    {
                        let _ = events.send((addr, speaker::peer_state(p.state))).await;
                    }
                }
                debug!("speaker watch ended");
                let _ = changed.try_send(());
            }
            Err(e) => debug!(error = %e, "speaker watch"),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(10));
    }
}

/// BGPPeer name by address, as in [`plan::want_peers`].
fn peer_names(c: &Caches) -> BTreeMap<IpAddr, String> {
    let all: Vec<BGPPeer> = c.peers.state().iter().map(|p| (**p).clone()).collect();
    plan::want_peers(&all)
        .into_iter()
        .map(|(a, w)| (a, w.name))
        .collect()
}

/// One synchronisation; how many of the node's sessions are Established.
async fn sync(client: &Client, opts: &Options, c: &Caches, sp: &Speaker) -> Result<usize, Error> {
    let Some(nb) = c.node_bgps.get(&reflector::ObjectRef::new(&opts.node)) else {
        // No NodeBGP (never had one, or the Node was deleted): the cluster asks for nothing,
        // so the speaker keeps no sessions and announces nothing.
        let (have, _) = sp.read().await?;
        let steps = plan::unconfigure(&have);
        if steps.is_empty() {
            debug!(node = %opts.node, "no NodeBGP for this node: nothing to configure");
        }
        for s in &steps {
            info!(step = ?s, "speaker (no NodeBGP for this node)");
            sp.apply(s, Secrets::default()).await?;
        }
        return Ok(0);
    };
    let all_peers: Vec<BGPPeer> = c.peers.state().iter().map(|p| (**p).clone()).collect();
    let want_peers = plan::want_peers(&all_peers);
    let names: BTreeSet<String> = want_peers.values().map(|w| w.name.clone()).collect();
    let ads: Vec<BGPAdvertisement> = c.ads.state().iter().map(|a| (**a).clone()).collect();
    let all_pools: Vec<AddressPool> = c.pools.state().iter().map(|p| (**p).clone()).collect();
    let pools: Vec<(ipnet::IpNet, k8s::crd::AddressType)> = k8s::pools::validate(&all_pools)
        .into_values()
        .flatten()
        .map(|p| (p.pool.cidr(), p.kind))
        .collect();
    let plan::Paths {
        want: want_paths,
        outside_pools,
    } = plan::want_paths(&ads, &names, &pools);
    {
        let mut last = c.outside_pools.lock().unwrap_or_else(|p| p.into_inner());
        if *last != outside_pools {
            for a in outside_pools.difference(&last) {
                warn!(advertisement = %a, "not announcing a BGPAdvertisement whose prefix is in no AddressPool of its type");
            }
            *last = outside_pools;
        }
    }
    let (have, states) = sp.read().await?;
    let steps = plan::plan(&nb.spec, &want_peers, &want_paths, &have)?;
    // Peers the speaker refused (a value out of range): reported on the BGPPeer; the rest of the
    // node's configuration goes on without them.
    let mut refused: BTreeMap<String, String> = BTreeMap::new();
    for s in &steps {
        info!(step = ?s, "speaker");
        let secrets = match s {
            plan::Step::AddPeer(w) => {
                let refs = [
                    ("passwordSecretRef", w.password_secret_ref.as_ref()),
                    (
                        "bfd.authentication.passwordSecretRef",
                        w.bfd
                            .as_ref()
                            .and_then(|b| b.authentication.as_ref())
                            .map(|a| &a.password_secret_ref),
                    ),
                ];
                let mut read = [None, None];
                let mut wait = false;
                for ((field, r), out) in refs.into_iter().zip(&mut read) {
                    let Some(r) = r else { continue };
                    if let Err(why) = password_namespace(r, &opts.password_namespace) {
                        warn!(peer = %w.name, error = %why, "BGPPeer {field} refused");
                        refused.insert(
                            w.name.clone(),
                            format!("refused by the agent on {}: {field}: {why}", opts.node),
                        );
                        wait = true;
                        break;
                    }
                    match read_password(client, r, &opts.password_namespace).await {
                        Ok(p) => *out = Some(p),
                        Err(e) => {
                            // The other peers still get configured; this one waits for the Secret.
                            warn!(peer = %w.name, secret = %r.name, namespace = %opts.password_namespace, error = %e,
                                "BGPPeer {field}: not configuring the peer until its password can be read");
                            wait = true;
                            break;
                        }
                    }
                }
                if wait {
                    continue;
                }
                let [md5, bfd] = read;
                Secrets { md5, bfd }
            }
            _ => Secrets::default(),
        };
        match sp.apply(s, secrets).await {
            Ok(()) => {}
            Err(SpeakerError::Call { status, .. })
                if matches!(s, plan::Step::AddPeer(_)) && refusal(&status) =>
            {
                if let plan::Step::AddPeer(w) = s {
                    warn!(peer = %w.name, error = %status.message(), "the speaker refused the BGPPeer: the node's other peers are configured without it");
                    refused.insert(
                        w.name.clone(),
                        format!(
                            "refused by the speaker on {}: {}",
                            opts.node,
                            status.message()
                        ),
                    );
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
    let (have, states) = if steps.is_empty() {
        (have, states)
    } else {
        sp.read().await?
    };
    // BGPPeer status from the speaker.
    let state_of: BTreeMap<IpAddr, PeerState> = states.into_iter().collect();
    let mut established = BTreeMap::new();
    for (addr, w) in &want_peers {
        let st = state_of.get(addr).copied().unwrap_or(PeerState::Unknown);
        established.insert(w.name.clone(), st == PeerState::Established);
        match refused.get(&w.name) {
            Some(why) => set_peer_refused(client, c, opts, &w.name, why).await?,
            None => set_peer_state(client, c, &w.name, st).await?,
        }
    }
    // BGPAdvertisement status for our peers.
    for ad in &ads {
        let Ok(prefix) = ad.spec.cidr.parse::<ipnet::IpNet>() else {
            continue;
        };
        let originated = have.paths.contains(&prefix.trunc());
        if let Some(next) = plan::advertisement_status(ad, &established, originated) {
            write_ad_status(client, ad, &next).await?;
        }
    }
    Ok(established.values().filter(|e| **e).count())
}

/// The speaker refused the peer itself (its values), rather than failing to answer.
fn refusal(status: &tonic::Status) -> bool {
    matches!(
        status.code(),
        tonic::Code::InvalidArgument | tonic::Code::FailedPrecondition
    )
}

/// The refusal as the BGPPeer's latest condition, with a Warning Event the first time.
async fn set_peer_refused(
    client: &Client,
    c: &Caches,
    opts: &Options,
    name: &str,
    why: &str,
) -> Result<(), Error> {
    let Some(p) = c.peers.get(&reflector::ObjectRef::new(name)) else {
        return Ok(());
    };
    let reason = why.to_owned();
    let mut status = p.status.clone().unwrap_or_default();
    let mut conds = status.conditions.take().unwrap_or_default();
    if conds.last().is_some_and(|c| c.reason == reason) {
        return Ok(());
    }
    conds.push(BGPPeerCondition {
        status: PeerState::Idle,
        reason: reason.clone(),
    });
    let skip = conds.len().saturating_sub(CONDITIONS_KEPT);
    conds.drain(..skip);
    let api: Api<BGPPeer> = Api::all(client.clone());
    let patch = json!({"status": {"backoff": status.backoff, "conditions": conds}});
    match api
        .patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 404 => return Ok(()),
        Err(e) => return Err(Error::Kube(e)),
    }
    let recorder = kube::runtime::events::Recorder::new(
        client.clone(),
        kube::runtime::events::Reporter {
            controller: "sart-agent".into(),
            instance: Some(opts.node.clone()),
        },
    );
    let ev = kube::runtime::events::Event {
        type_: kube::runtime::events::EventType::Warning,
        reason: "PeerRefused".into(),
        note: Some(reason),
        action: "AddPeer".into(),
        secondary: None,
    };
    if let Err(e) = recorder
        .publish(&ev, &kube::Resource::object_ref(&*p, &()))
        .await
    {
        warn!(peer = %name, error = %e, "publishing an event");
    }
    Ok(())
}

/// Passwords come from one namespace, the only one the agent may read Secrets in: naming another
/// would read nothing there, and must not read anything elsewhere if RBAC were wider.
fn password_namespace(r: &PasswordSecretRef, allowed: &str) -> Result<(), String> {
    match r.namespace_or(allowed) {
        ns if ns == allowed => Ok(()),
        ns => Err(format!(
            "namespace {ns:?}: the agent reads BGP passwords only from {allowed:?} (sartd agent --password-namespace)"
        )),
    }
}

/// The TCP MD5 password a BGPPeer names, from the passwords namespace.
async fn read_password(
    client: &Client,
    r: &PasswordSecretRef,
    namespace: &str,
) -> Result<String, String> {
    let api: kube::Api<k8s_openapi::api::core::v1::Secret> =
        kube::Api::namespaced(client.clone(), namespace);
    let secret = api.get(&r.name).await.map_err(|e| e.to_string())?;
    let bytes = secret
        .data
        .as_ref()
        .and_then(|d| d.get(r.key()))
        .ok_or_else(|| format!("the Secret has no key {:?}", r.key()))?;
    String::from_utf8(bytes.0.clone()).map_err(|_| format!("key {:?} is not UTF-8", r.key()))
}

async fn set_peer_state(
    client: &Client,
    c: &Caches,
    name: &str,
    state: PeerState,
) -> Result<(), Error> {
    let Some(p) = c.peers.get(&reflector::ObjectRef::new(name)) else {
        return Ok(());
    };
    let mut status = p.status.clone().unwrap_or_default();
    let mut conds = status.conditions.take().unwrap_or_default();
    if conds.last().map(|c| c.status) == Some(state) {
        return Ok(());
    }
    conds.push(BGPPeerCondition {
        status: state,
        reason: format!("{state:?} at {}", Timestamp::now()),
    });
    let skip = conds.len().saturating_sub(CONDITIONS_KEPT);
    conds.drain(..skip);
    info!(peer = %name, ?state, "BGPPeer state");
    let api: Api<BGPPeer> = Api::all(client.clone());
    let patch = json!({"status": {"backoff": status.backoff, "conditions": conds}});
    match api
        .patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(e) => Err(Error::Kube(e)),
    }
}

/// `status.peers` as computed; keys that went become nulls (merge patch deletion), and the
/// resourceVersion makes it a compare-and-swap against the controller's writes.
async fn write_ad_status(
    client: &Client,
    ad: &BGPAdvertisement,
    next: &BTreeMap<String, AdvertiseStatus>,
) -> Result<(), Error> {
    let mut peers = serde_json::Map::new();
    let current = ad
        .status
        .as_ref()
        .and_then(|s| s.peers.clone())
        .unwrap_or_default();
    for k in current.keys() {
        if !next.contains_key(k) {
            peers.insert(k.clone(), serde_json::Value::Null);
        }
    }
    for (k, v) in next {
        peers.insert(k.clone(), json!(v));
    }
    let patch = json!({
        "metadata": {"resourceVersion": ad.resource_version()},
        "status": {"peers": peers},
    });
    let api: Api<BGPAdvertisement> =
        Api::namespaced(client.clone(), &ad.namespace().unwrap_or_default());
    match api
        .patch_status(
            &ad.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
    {
        // Someone else wrote first: the next sync sees their version.
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 409 || e.code == 404 => Ok(()),
        Err(e) => Err(Error::Kube(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::{PasswordSecretRef, password_namespace, readiness};

    #[test]
    fn passwords_only_from_their_namespace() {
        let r = |ns: Option<&str>| PasswordSecretRef {
            name: "tor-md5".into(),
            namespace: ns.map(Into::into),
            key: None,
        };
        assert_eq!(password_namespace(&r(None), "sart-bgp-secrets"), Ok(()));
        assert_eq!(
            password_namespace(&r(Some("sart-bgp-secrets")), "sart-bgp-secrets"),
            Ok(())
        );
        let e = password_namespace(&r(Some("kube-system")), "sart-bgp-secrets").unwrap_err();
        assert!(
            e.contains("\"kube-system\"") && e.contains("\"sart-bgp-secrets\""),
            "{e}"
        );
    }

    #[test]
    fn ready_after_a_sync_and_with_the_pods_records() {
        assert!(readiness(false, None).is_err());
        assert!(readiness(false, Some(true)).is_err());
        assert!(
            readiness(true, Some(false))
                .unwrap_err()
                .contains("records")
        );
        assert_eq!(readiness(true, Some(true)), Ok(()));
        // lb mode has no pods: a sync is enough.
        assert_eq!(readiness(true, None), Ok(()));
    }
}
