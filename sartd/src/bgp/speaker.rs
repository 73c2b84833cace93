//! The speaker task: the one owner of the RIB and of the neighbour table. Sessions, the listener
//! and the API talk to it over bounded channels; after each batch of events it drains the RIB and
//! writes each update group's UPDATEs once, sharing the bytes among the group's sessions.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr};
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bgp::attribute::{Ipv6NextHop, NextHop};
use bgp::error::{cease_subcode, code};
use bgp::fsm::{Restart, SessionConfig, State};
use bgp::rib::{
    DecisionConfig, Drained, Export, ExportParams, LocalRoute, OutUpdate, PeerConfig, PeerId, Rib,
    RibConfig, Route,
};
use bgp::{Family, Negotiated, Notification, Update};
use ipnet::IpNet;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, info, warn};

use super::config::{Config, Neighbor, PathSpec};
use super::graceful::{OnDown, Stale};
use super::metrics::{Metrics, PeerSample};
use super::outbox::{self, Outbox};
use super::session::{self, Endpoint, FromSession, Output, SessionHandle, Status, ToSession};

/// Requests from the API, each with its reply channel.
#[derive(Debug)]
pub enum Request {
    Info(oneshot::Sender<Info>),
    Neighbors(oneshot::Sender<Vec<NeighborView>>),
    AddNeighbor(Box<Neighbor>, oneshot::Sender<Result<(), ApiError>>),
    DeleteNeighbor(IpAddr, oneshot::Sender<Result<(), ApiError>>),
    AddPaths(
        Vec<IpNet>,
        Box<PathSpec>,
        oneshot::Sender<Result<(), ApiError>>,
    ),
    DeletePaths(Vec<IpNet>, oneshot::Sender<Result<(), ApiError>>),
    SetAs(u32, oneshot::Sender<Result<(), ApiError>>),
    SetRouterId(Ipv4Addr, oneshot::Sender<Result<(), ApiError>>),
    SetMaxPaths(usize, oneshot::Sender<Result<(), ApiError>>),
    Routes(Family, oneshot::Sender<Vec<RouteView>>),
    Lookup(IpNet, oneshot::Sender<Vec<RouteView>>),
    AdjRibIn(
        IpAddr,
        Family,
        oneshot::Sender<Result<Vec<RouteView>, ApiError>>,
    ),
    AdjRibOut(
        IpAddr,
        Family,
        oneshot::Sender<Result<Vec<RouteView>, ApiError>>,
    ),
    Watch(mpsc::Sender<WatchEvent>),
    Reset(IpAddr, ResetKind, oneshot::Sender<Result<(), ApiError>>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResetKind {
    SoftIn,
    SoftOut,
    Hard,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiError {
    NotFound(String),
    InvalidArgument(String),
    FailedPrecondition(String),
}

#[derive(Debug, Clone)]
pub struct Info {
    pub asn: u32,
    pub router_id: Ipv4Addr,
    pub port: u16,
    pub max_paths: usize,
}

#[derive(Debug, Clone)]
pub struct NeighborView {
    pub config: Neighbor,
    pub status: Status,
    pub prefixes_received: usize,
    pub stale_paths: usize,
    pub bfd: Option<BfdView>,
}

/// A BFD session as the API shows it.
#[derive(Debug, Clone)]
pub struct BfdView {
    pub state: &'static str,
    pub remote_diagnostic: &'static str,
    pub detect_time_ms: u32,
    pub up_transitions: u64,
    pub auth_failures: u64,
}

/// One path as the API shows it.
#[derive(Debug, Clone)]
pub struct RouteView {
    pub prefix: IpNet,
    pub path_id: u32,
    pub peer: Option<IpAddr>,
    pub peer_asn: u32,
    pub attrs: bgp::PathAttributes,
    pub next_hop: Option<NextHop>,
    pub best: bool,
    pub multipath: bool,
    pub reason: Option<&'static str>,
    pub since: u32,
}

/// Events for `Watch` subscribers.
#[derive(Debug, Clone)]
pub enum WatchEvent {
    Peer {
        name: String,
        address: IpAddr,
        asn: u32,
        state: State,
    },
    Best {
        prefix: IpNet,
        next_hops: Vec<String>,
    },
}

struct Peer {
    neighbor: Neighbor,
    id: PeerId,
    session: SessionHandle,
    /// What the session negotiated, while established.
    negotiated: Option<Negotiated>,
    /// Where this peer's UPDATEs go, while established.
    output: Option<Arc<Output>>,
    last_state: State,
    /// Graceful restart as the receiving speaker (RFC 4724 §4.2).
    stale: Stale,
    /// Past the max-prefix limit in this session (a warning-only limit warns once).
    over_limit: bool,
    max_prefix_exceeded: u64,
}

pub struct Speaker {
    config: Config,
    port: u16,
    rib: Rib,
    peers: HashMap<IpAddr, Peer>,
    local: BTreeMap<IpNet, LocalRoute>,
    to_speaker: mpsc::Sender<FromSession>,
    watchers: Vec<mpsc::Sender<WatchEvent>>,
    metrics: Metrics,
    /// For neighbours' TCP MD5 keys; `None` in tests without one.
    listener: Option<Arc<TcpListener>>,
    started: Instant,
    /// The kernel FIB, when on.
    fib: Option<mpsc::Sender<crate::fib::Command>>,
    /// (peer, family) End-of-RIBs received since start, until the FIB is told the RIB converged.
    eor_seen: std::collections::HashSet<(IpAddr, Family)>,
    converged: bool,
    bfd: Option<super::bfd::BfdHandle>,
}

fn now() -> u32 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as u32)
        .unwrap_or(0)
}

fn rib_config(c: &Config) -> RibConfig {
    RibConfig {
        asn: c.asn,
        router_id: c.router_id,
        cluster_id: None,
        decision: DecisionConfig {
            max_paths: NonZeroUsize::new(c.max_paths).unwrap_or(NonZeroUsize::MIN),
            ..DecisionConfig::default()
        },
    }
}

pub fn local_route(spec: &PathSpec) -> LocalRoute {
    LocalRoute {
        origin: spec.origin,
        local_pref: spec.local_pref,
        med: spec.med,
        communities: spec.communities.clone(),
        ext_communities: spec.ext_communities.clone(),
        large_communities: spec.large_communities.clone(),
        prepend: spec.as_path_prepend,
        next_hop: None,
    }
}

impl Speaker {
    pub fn new(
        config: Config,
        port: u16,
        to_speaker: mpsc::Sender<FromSession>,
        metrics: Metrics,
        listener: Option<Arc<TcpListener>>,
    ) -> Speaker {
        let rib = Rib::new(rib_config(&config));
        let mut s = Speaker {
            port,
            rib,
            peers: HashMap::new(),
            local: BTreeMap::new(),
            to_speaker,
            watchers: Vec::new(),
            metrics,
            listener,
            started: Instant::now(),
            fib: None,
            eor_seen: Default::default(),
            converged: false,
            bfd: None,
            config,
        };
        for p in s.config.paths.clone() {
            let route = local_route(&p.attributes);
            for prefix in p.prefixes {
                s.local.insert(prefix, route.clone());
            }
        }
        s.reoriginate();
        s
    }

    /// BFD sessions for neighbours with `bfd` go through this task.
    pub fn set_bfd(&mut self, bfd: super::bfd::BfdHandle) {
        self.bfd = Some(bfd);
    }

    /// BFD says the path to a neighbour went (or came back). Down tears the BGP session down
    /// at once (RFC 5882 §4.3), with Cease/BFD Down (RFC 9384), so its routes are withdrawn
    /// instead of waiting out the hold timer.
    pub async fn bfd_event(&mut self, ev: super::bfd::BfdEvent) {
        let Some(p) = self.peers.get(&ev.peer) else {
            return;
        };
        if ev.up {
            info!(peer = %ev.peer, "BFD up");
            return;
        }
        warn!(peer = %ev.peer, diag = ev.diag.name(), "BFD down: closing the BGP session");
        let n = Notification::new(code::CEASE, cease_subcode::BFD_DOWN);
        let _ = p.session.tx.send(ToSession::Close(n, Restart::IdleHold));
    }

    /// A scan of the table, so only for peers that have stale paths at all.
    fn stale_count(&self, p: &Peer) -> usize {
        if p.stale.is_empty() {
            0
        } else {
            self.rib.stale_count(p.id)
        }
    }

    /// Hands best-route changes to the kernel FIB from now on.
    pub fn set_fib(&mut self, fib: mpsc::Sender<crate::fib::Command>) {
        self.fib = Some(fib);
    }

    /// How long a previous run's kernel routes wait for End-of-RIB from every neighbour.
    fn convergence_timeout(&self) -> Duration {
        Duration::from_secs(u64::from(
            self.config
                .graceful_restart
                .map_or(super::config::DEFAULT_RESTART_TIME, |g| g.restart_time),
        ))
    }

    /// Tells the FIB once the RIB has converged after start: every neighbour is established and
    /// every graceful-restart one sent End-of-RIB for every family it negotiated (RFC 4724
    /// §4.1), or the speaker's restart time passed.
    pub async fn check_converged(&mut self) {
        if self.converged || self.fib.is_none() {
            return;
        }
        // Peers without graceful restart may never send End-of-RIB (FRR sends it only to
        // GR-capable peers): for them an established session is all there is to wait for.
        let all_eor = !self.peers.is_empty()
            && self.peers.values().all(|p| {
                p.negotiated.as_ref().is_some_and(|n| {
                    p.neighbor.graceful_restart.is_none()
                        || n.peer_graceful_restart.is_none()
                        || n.families
                            .iter()
                            .all(|f| self.eor_seen.contains(&(p.neighbor.address, f)))
                })
            });
        let timed_out = self.started.elapsed() >= self.convergence_timeout();
        if all_eor || timed_out {
            self.converged = true;
            self.eor_seen.clear();
            info!(all_eor, timed_out, "RIB converged after start");
            if let Some(f) = &self.fib {
                let _ = f.send(crate::fib::Command::Converged).await;
            }
        }
    }

    /// Leaves the kernel routes in place with graceful restart (so forwarding goes on while we
    /// restart), removes them without.
    pub async fn exit_fib(&mut self) {
        let Some(f) = self.fib.take() else { return };
        let keep = self.config.graceful_restart.is_some()
            || self
                .peers
                .values()
                .any(|p| p.neighbor.graceful_restart.is_some());
        let (done, wait) = oneshot::channel();
        if f.send(crate::fib::Command::Exit { keep, done })
            .await
            .is_ok()
        {
            let _ = tokio::time::timeout(Duration::from_secs(10), wait).await;
        }
    }

    /// Starts the configured neighbours (once AS and router id are known).
    /// Whether AS number and router id are known, so sessions can run.
    fn ready(&self) -> bool {
        self.config.asn != 0 && !self.config.router_id.is_unspecified()
    }

    pub async fn start(&mut self) {
        if !self.ready() {
            info!("AS number or router id not set: sessions wait for SetAS/SetRouterId");
            return;
        }
        for n in self.config.neighbors.clone() {
            if let Err(e) = self.add_neighbor(n).await {
                warn!(?e, "neighbour not added");
            }
        }
    }

    fn reoriginate(&mut self) {
        let t = now();
        for (prefix, route) in &self.local {
            self.rib.originate(*prefix, route.clone(), t);
        }
    }

    async fn add_neighbor(&mut self, n: Neighbor) -> Result<(), ApiError> {
        if self.peers.contains_key(&n.address) {
            return Err(ApiError::InvalidArgument(format!(
                "neighbor {} already exists",
                n.address
            )));
        }
        if !self.ready() {
            return Err(ApiError::FailedPrecondition(
                "set the AS number and router id first".into(),
            ));
        }
        if let (Some(l), super::config::Ttl::Security) = (&self.listener, n.ttl) {
            super::listener::send_with_ttl_255(l).map_err(|e| {
                ApiError::FailedPrecondition(format!(
                    "neighbor {}: GTSM on the listener: {e}",
                    n.address
                ))
            })?;
        }
        if let (Some(l), Some(pw)) = (&self.listener, &n.password) {
            super::listener::set_password(l, n.address, Some(pw.expose())).map_err(|e| {
                ApiError::FailedPrecondition(format!(
                    "neighbor {}: installing its TCP MD5 key: {e}",
                    n.address
                ))
            })?;
        }
        let id = self
            .rib
            .add_peer(PeerConfig {
                asn: n.asn,
                address: n.address,
                rr_client: n.route_reflector_client,
                max_prefixes: n.max_prefix.map(|m| m.limit),
                import: n.import.clone(),
            })
            .map_err(|e| ApiError::InvalidArgument(e.to_string()))?;
        let mut sc = SessionConfig::new(self.config.asn, self.config.router_id, n.asn);
        sc.hold_time = n.hold_time;
        sc.keepalive_time = n.keepalive_time;
        sc.send_hold_time = n.send_hold_time.map(|t| Duration::from_secs(t.into()));
        sc.passive = n.passive;
        // R bit (RFC 4724 §3): set for the sessions of a speaker that has just started, so
        // peers that kept our routes do not wait for our End-of-RIB before sending theirs.
        let restarting = self.started.elapsed()
            < Duration::from_secs(n.graceful_restart.map_or(0, |g| u64::from(g.restart_time)));
        sc.capabilities = capabilities(&n, restarting);
        let endpoint = Endpoint {
            address: n.address,
            port: self.port,
            local_address: n.local_address,
            ttl: n.ttl,
            router_id: n.router_id,
            password: n.password.clone(),
        };
        if let (Some(b), Some(cfg)) = (&self.bfd, n.bfd) {
            let _ =
                b.tx.send(super::bfd::Command::Add {
                    peer: n.address,
                    local: n.local_address,
                    config: cfg,
                })
                .await;
        }
        let session = session::spawn(sc, endpoint, self.to_speaker.clone());
        let _ = session.tx.send(ToSession::Start);
        info!(peer = %n.address, asn = n.asn, name = %n.name, "neighbour added");
        self.peers.insert(
            n.address,
            Peer {
                neighbor: n,
                id,
                session,
                negotiated: None,
                output: None,
                last_state: State::Idle,
                stale: Stale::default(),
                over_limit: false,
                max_prefix_exceeded: 0,
            },
        );
        Ok(())
    }

    async fn delete_neighbor(&mut self, addr: IpAddr) -> Result<(), ApiError> {
        let p = self
            .peers
            .remove(&addr)
            .ok_or_else(|| ApiError::NotFound(format!("no neighbor {addr}")))?;
        let _ = p
            .session
            .tx
            .send(ToSession::Stop(Some("neighbor removed".into())));
        drop(p.session.tx);
        if let (Some(l), Some(_)) = (&self.listener, &p.neighbor.password) {
            let _ = super::listener::set_password(l, addr, None);
        }
        if let (Some(b), Some(_)) = (&self.bfd, p.neighbor.bfd) {
            let _ = b.tx.send(super::bfd::Command::Remove(addr)).await;
        }
        let _ = self.rib.remove_peer(p.id);
        info!(peer = %addr, "neighbour removed");
        Ok(())
    }

    /// Stops every session with a Cease carrying `message` (RFC 8203) and waits briefly for the
    /// NOTIFICATIONs to go out.
    pub async fn shutdown(&mut self, message: &str) {
        self.stop_sessions(message, false).await;
    }

    /// The process is exiting. Sessions that negotiated graceful restart are dropped without a
    /// NOTIFICATION, so those peers keep our routes and forwarding until we are back (RFC 4724
    /// §4.1); the others get a Cease with `message`.
    pub async fn exit(&mut self, message: &str) {
        self.stop_sessions(message, true).await;
    }

    async fn stop_sessions(&mut self, message: &str, keep_graceful: bool) {
        for p in self.peers.values() {
            let graceful = keep_graceful
                && p.neighbor.graceful_restart.is_some()
                && p.negotiated
                    .as_ref()
                    .is_some_and(|n| n.peer_graceful_restart.is_some());
            if graceful {
                info!(peer = %p.neighbor.address, "leaving without a NOTIFICATION: the peer keeps our routes (graceful restart)");
                p.session.task.abort();
                continue;
            }
            let _ = p
                .session
                .tx
                .send(ToSession::Stop(Some(message.to_string())));
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
        for (_, p) in self.peers.drain() {
            drop(p.session.tx);
            let _ = tokio::time::timeout_at(deadline, p.session.task).await;
        }
    }

    pub async fn accepted(&mut self, stream: TcpStream, from: IpAddr) {
        match self.peers.get(&from) {
            Some(p) => {
                let _ = p.session.tx.send(ToSession::Accepted(stream));
            }
            None => debug!(%from, "connection from an unknown address refused"),
        }
    }

    pub async fn session_event(&mut self, ev: FromSession) {
        match ev {
            FromSession::Established {
                peer,
                negotiated,
                local,
                output,
            } => {
                let Some(p) = self.peers.get_mut(&peer) else {
                    return;
                };
                let mut params = export_params(&negotiated, local.ip());
                params.export = p.neighbor.export;
                match self.rib.establish(p.id, negotiated.peer_id, params) {
                    Ok(_) => {}
                    Err(e) => {
                        warn!(%peer, error = %e, "RIB refused the session");
                        return;
                    }
                }
                for f in p.stale.established(&negotiated, Instant::now()) {
                    let n = self.rib.sweep_stale(p.id, Some(f)).unwrap_or(0);
                    info!(%peer, family = %f, removed = n, "restarted peer did not preserve forwarding: stale routes removed");
                }
                let families: Vec<Family> = negotiated.families.iter().collect();
                p.negotiated = Some(*negotiated);
                p.output = Some(output.clone());
                // The full table, then End-of-RIB for every family (RFC 4724 §2).
                let table = self.rib.peer_table(p.id).unwrap_or_default();
                output.with(|o| {
                    for out in &table {
                        o.push_own(out);
                    }
                    for f in families {
                        if let Ok(m) =
                            bgp::Message::Update(Update::end_of_rib(f)).encode(o.context())
                        {
                            o.push_message(Arc::new(m));
                        }
                    }
                });
            }
            FromSession::Update { peer, update } => {
                let Some(p) = self.peers.get_mut(&peer) else {
                    return;
                };
                let started = std::time::Instant::now();
                let received = self.rib.receive(p.id, *update, now());
                self.metrics
                    .update_seconds
                    .observe(started.elapsed().as_secs_f64());
                match received {
                    Ok(r) if r.max_prefix_exceeded => {
                        let Some(m) = p.neighbor.max_prefix else {
                            return;
                        };
                        if m.warning_only {
                            if !p.over_limit {
                                warn!(%peer, limit = m.limit, "maximum number of prefixes exceeded (warning only: the session stays)");
                                p.max_prefix_exceeded += 1;
                            }
                            p.over_limit = true;
                            return;
                        }
                        warn!(%peer, limit = m.limit, "maximum number of prefixes exceeded");
                        p.max_prefix_exceeded += 1;
                        let mut n = Notification::new(code::CEASE, cease_subcode::MAX_PREFIXES);
                        // RFC 4486 §4: AFI, SAFI and the limit.
                        n.data = [&[0u8, 1, 1][..], &m.limit.to_be_bytes()].concat();
                        let _ = p.session.tx.send(ToSession::Close(n, m.restart));
                    }
                    Ok(r) => {
                        if let Some(f) = r.end_of_rib {
                            self.end_of_rib(peer, f);
                        }
                    }
                    Err(e) => warn!(%peer, error = %e, "UPDATE not processed"),
                }
            }
            FromSession::RouteRefresh { peer, family } => {
                let Some(p) = self.peers.get(&peer) else {
                    return;
                };
                let (Some(n), Some(output)) = (p.negotiated.as_ref(), p.output.as_ref()) else {
                    return;
                };
                if !n.families.contains(family) {
                    // RFC 2918 §4: ignore a refresh for a family that was not negotiated.
                    return;
                }
                let enhanced = n.enhanced_route_refresh;
                let table: Vec<OutUpdate> = self
                    .rib
                    .peer_table(p.id)
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|o| o.prefixes.family() == family)
                    .collect();
                output.with(|o| {
                    if !o.start_refresh(family) {
                        debug!(%peer, %family, "route refresh: the table is on its way already");
                        return;
                    }
                    let marker = |o: &mut Outbox, subtype| {
                        if let Ok(m) =
                            bgp::Message::RouteRefresh(bgp::RouteRefresh { family, subtype })
                                .encode(o.context())
                        {
                            o.push_message(Arc::new(m));
                        }
                    };
                    // RFC 7313 §4: with enhanced route refresh, bracket the table with BoRR/EoRR
                    // so the peer can drop what we no longer advertise.
                    if enhanced {
                        marker(o, bgp::RefreshSubtype::BeginningOfRefresh);
                    }
                    for out in &table {
                        o.push_own(out);
                    }
                    if enhanced {
                        marker(o, bgp::RefreshSubtype::EndOfRefresh);
                    }
                    o.end_refresh(family);
                });
            }
            FromSession::Down { peer, reason } => {
                let Some(p) = self.peers.get_mut(&peer) else {
                    return;
                };
                let negotiated = p.negotiated.take();
                p.output = None;
                p.over_limit = false;
                match p.stale.down(
                    p.neighbor.graceful_restart.is_some(),
                    negotiated.as_ref(),
                    &reason,
                    Instant::now(),
                ) {
                    OnDown::Keep {
                        families,
                        restart_time,
                    } => {
                        let kept = self.rib.close_graceful(p.id, &families).unwrap_or(0);
                        info!(%peer, kept, restart_time,
                            "connection lost: the peer may be restarting; its routes are kept as stale (graceful restart)");
                    }
                    OnDown::Withdraw => {
                        let removed = self.rib.close(p.id).unwrap_or(0);
                        info!(%peer, ?reason, removed, "session closed; its routes are withdrawn");
                    }
                }
            }
        }
    }

    /// The peer finished sending a family: its stale paths there were not refreshed, drop them.
    fn end_of_rib(&mut self, peer: IpAddr, family: Family) {
        if !self.converged {
            self.eor_seen.insert((peer, family));
        }
        let Some(p) = self.peers.get_mut(&peer) else {
            return;
        };
        if !p.stale.end_of_rib(family) {
            return;
        }
        let removed = self.rib.sweep_stale(p.id, Some(family)).unwrap_or(0);
        info!(%peer, %family, removed, "End-of-RIB: stale routes not refreshed are removed");
    }

    /// Drops stale paths whose restart or stale-path timer ran out. Returns whether any went.
    pub fn expire_stale(&mut self, now: Instant) -> bool {
        let mut any = false;
        for (addr, p) in &mut self.peers {
            if p.stale.expire(now) {
                let removed = self.rib.sweep_stale(p.id, None).unwrap_or(0);
                warn!(peer = %addr, removed, "graceful restart timer expired: stale routes removed");
                any = true;
            }
        }
        any
    }

    /// Writes what the RIB produced since the last drain, and tells watchers.
    pub async fn flush(&mut self) {
        self.publish_peer_states();
        let Drained {
            best,
            groups,
            peers,
        } = self.rib.drain();
        self.metrics.best_path_changes.inc_by(best.len() as u64);
        let by_id: HashMap<PeerId, &Peer> = self.peers.values().map(|p| (p.id, p)).collect();
        if let Some(fib) = &self.fib
            && !best.is_empty()
        {
            let changes = fib_changes(&by_id, self.config.asn, &best);
            let _ = fib.send(crate::fib::Command::Routes(changes)).await;
        }
        // Into each member's outbox, never waiting on one: a member that does not read keeps
        // its changes coalesced, the others are written to as fast as they read.
        for (group, outs) in groups {
            let members = self.rib.group_members(group);
            let Some(ctx) = members.iter().find_map(|m| {
                by_id
                    .get(m)
                    .and_then(|p| p.negotiated.as_ref())
                    .map(|n| n.send.clone())
            }) else {
                continue;
            };
            for out in &outs {
                // Encoded once for the group, when a member first needs it.
                let mut msgs: Option<Vec<Arc<Vec<u8>>>> = None;
                for m in members.iter().filter(|m| Some(**m) != out.except) {
                    if let Some(o) = by_id.get(m).and_then(|p| p.output.as_ref()) {
                        o.with(|o| {
                            o.push(out, |_| {
                                msgs.get_or_insert_with(|| outbox::encode(out, &ctx))
                                    .clone()
                            })
                        });
                    }
                }
            }
        }
        for (peer, outs) in peers {
            let Some(o) = by_id.get(&peer).and_then(|p| p.output.as_ref()) else {
                continue;
            };
            o.with(|o| {
                for out in &outs {
                    o.push_own(out);
                }
            });
        }
        if !self.watchers.is_empty() {
            for b in best {
                let ev = WatchEvent::Best {
                    prefix: b.prefix,
                    next_hops: b
                        .best
                        .map(|r| r.next_hops.iter().map(next_hop_text).collect())
                        .unwrap_or_default(),
                };
                self.notify(ev);
            }
        }
    }

    fn notify(&mut self, ev: WatchEvent) {
        // A watcher that cannot keep up is dropped rather than stalling the speaker.
        self.watchers.retain(|w| w.try_send(ev.clone()).is_ok());
    }

    fn publish_peer_states(&mut self) {
        let mut events = Vec::new();
        for p in self.peers.values_mut() {
            let state = p.session.status.borrow().state;
            if state != p.last_state {
                p.last_state = state;
                events.push(WatchEvent::Peer {
                    name: p.neighbor.name.clone(),
                    address: p.neighbor.address,
                    asn: p.neighbor.asn,
                    state,
                });
            }
        }
        for e in events {
            self.notify(e);
        }
    }

    /// Refreshes the per-session metrics snapshot.
    pub fn sample_metrics(&self) {
        let samples = self
            .peers
            .values()
            .map(|p| {
                let st = p.session.status.borrow();
                let output = p.output.as_ref().map_or((0, 0), |o| o.backlog());
                let bfd = self
                    .bfd
                    .as_ref()
                    .and_then(|b| b.status.borrow().get(&p.neighbor.address).cloned());
                PeerSample {
                    name: p.neighbor.name.clone(),
                    address: p.neighbor.address.to_string(),
                    state: st.state,
                    sent: st.sent,
                    received: st.received,
                    prefixes_received: self.rib.path_count(p.id) as u64,
                    stale_paths: self.stale_count(p) as u64,
                    bfd_up: bfd.as_ref().map(|b| b.state == "Up"),
                    bfd_up_transitions: bfd.map_or(0, |b| b.up_transitions),
                    output_octets: output.0 as u64,
                    output_prefixes: output.1 as u64,
                    send_hold_expired: st.send_hold_expired,
                    update_errors: st.update_errors,
                    max_prefix_exceeded: p.max_prefix_exceeded,
                }
            })
            .collect();
        self.metrics.set_peers(samples);
    }

    /// True when some session changed state since it was last published (the run loop polls).
    pub fn peer_state_changed(&self) -> bool {
        self.peers
            .values()
            .any(|p| p.session.status.borrow().state != p.last_state)
    }

    pub async fn request(&mut self, req: Request) {
        match req {
            Request::Info(tx) => {
                let _ = tx.send(Info {
                    asn: self.config.asn,
                    router_id: self.config.router_id,
                    port: self.port,
                    max_paths: self.config.max_paths,
                });
            }
            Request::Neighbors(tx) => {
                let mut v: Vec<NeighborView> = self
                    .peers
                    .values()
                    .map(|p| NeighborView {
                        config: p.neighbor.clone(),
                        status: p.session.status.borrow().clone(),
                        prefixes_received: self.rib.path_count(p.id),
                        stale_paths: self.stale_count(p),
                        bfd: self
                            .bfd
                            .as_ref()
                            .and_then(|b| b.status.borrow().get(&p.neighbor.address).cloned()),
                    })
                    .collect();
                v.sort_by_key(|n| n.config.address);
                let _ = tx.send(v);
            }
            Request::AddNeighbor(n, tx) => {
                let _ = tx.send(self.add_neighbor(*n).await);
            }
            Request::DeleteNeighbor(a, tx) => {
                let _ = tx.send(self.delete_neighbor(a).await);
            }
            Request::AddPaths(prefixes, spec, tx) => {
                let route = local_route(&spec);
                let t = now();
                for p in prefixes {
                    self.local.insert(p, route.clone());
                    self.rib.originate(p, route.clone(), t);
                }
                let _ = tx.send(Ok(()));
            }
            Request::DeletePaths(prefixes, tx) => {
                for p in prefixes {
                    self.local.remove(&p);
                    self.rib.withdraw_local(p);
                }
                let _ = tx.send(Ok(()));
            }
            Request::SetAs(asn, tx) => {
                let r = self.reconfigure(|c| c.asn = asn).await;
                let _ = tx.send(r);
            }
            Request::SetRouterId(id, tx) => {
                let r = self.reconfigure(|c| c.router_id = id).await;
                let _ = tx.send(r);
            }
            Request::SetMaxPaths(n, tx) => {
                let r = self.reconfigure(|c| c.max_paths = n).await;
                let _ = tx.send(r);
            }
            Request::Routes(family, tx) => {
                let _ = tx.send(self.route_views(self.rib.routes(family)));
            }
            Request::Lookup(prefix, tx) => {
                let _ = tx.send(self.route_views(self.rib.lookup(prefix).into_iter().collect()));
            }
            Request::AdjRibIn(addr, family, tx) => {
                let sources = self.sources();
                let r = match self.peers.get(&addr) {
                    None => Err(ApiError::NotFound(format!("no neighbor {addr}"))),
                    Some(p) => Ok(self.rib.adj_rib_in(p.id, family)),
                }
                .map(|v| {
                    v.into_iter()
                        .map(|(prefix, path)| view(&sources, prefix, &path))
                        .collect()
                });
                let _ = tx.send(r);
            }
            Request::AdjRibOut(addr, family, tx) => {
                let r = match self.peers.get(&addr) {
                    None => Err(ApiError::NotFound(format!("no neighbor {addr}"))),
                    Some(p) => Ok(self.rib.adj_rib_out(p.id, family).unwrap_or_default()),
                }
                .map(|v| {
                    v.into_iter()
                        .map(|(prefix, attrs)| RouteView {
                            prefix,
                            path_id: 0,
                            peer: None,
                            peer_asn: 0,
                            next_hop: attrs.next_hop,
                            attrs: attrs.attrs.clone(),
                            best: true,
                            multipath: false,
                            reason: None,
                            since: 0,
                        })
                        .collect()
                });
                let _ = tx.send(r);
            }
            Request::Reset(addr, kind, tx) => {
                let _ = tx.send(self.reset(addr, kind).await);
            }
            Request::Watch(tx) => {
                // Current state first, then changes.
                for p in self.peers.values() {
                    let _ = tx.try_send(WatchEvent::Peer {
                        name: p.neighbor.name.clone(),
                        address: p.neighbor.address,
                        asn: p.neighbor.asn,
                        state: p.session.status.borrow().state,
                    });
                }
                self.watchers.push(tx);
            }
        }
    }

    async fn reset(&mut self, addr: IpAddr, kind: ResetKind) -> Result<(), ApiError> {
        let p = self
            .peers
            .get(&addr)
            .ok_or_else(|| ApiError::NotFound(format!("no neighbor {addr}")))?;
        if kind == ResetKind::Hard {
            // A session held down (e.g. past its max-prefix limit) is started again; a
            // running one restarts after the idle hold time.
            if p.session.status.borrow().state == State::Idle {
                let _ = p.session.tx.send(ToSession::Start);
            } else {
                let n = Notification::new(code::CEASE, cease_subcode::ADMINISTRATIVE_RESET);
                let _ = p.session.tx.send(ToSession::Close(n, Restart::IdleHold));
            }
            return Ok(());
        }
        let n = p.negotiated.as_ref().ok_or_else(|| {
            ApiError::FailedPrecondition(format!("the session with {addr} is not established"))
        })?;
        let families: Vec<Family> = n.families.iter().collect();
        match kind {
            ResetKind::SoftIn => {
                if !n.route_refresh {
                    return Err(ApiError::FailedPrecondition(format!(
                        "{addr} did not negotiate route refresh: use a hard reset"
                    )));
                }
                for f in families {
                    let _ = p.session.tx.send(ToSession::RequestRefresh(f));
                }
            }
            ResetKind::SoftOut | ResetKind::Hard => {
                let table = self.rib.peer_table(p.id).unwrap_or_default();
                if let Some(o) = &p.output {
                    o.with(|o| {
                        for out in &table {
                            o.push_own(out);
                        }
                    });
                }
            }
        }
        Ok(())
    }

    /// AS, router id and multipath are speaker-wide: changing one restarts every session on a
    /// fresh RIB (a router cannot change its AS under live sessions).
    async fn reconfigure(&mut self, change: impl FnOnce(&mut Config)) -> Result<(), ApiError> {
        let mut c = self.config.clone();
        change(&mut c);
        if c == self.config {
            return Ok(());
        }
        if c.asn == 0 {
            return Err(ApiError::InvalidArgument("AS 0 is reserved".into()));
        }
        if c.max_paths == 0 {
            return Err(ApiError::InvalidArgument(
                "max paths must be at least 1".into(),
            ));
        }
        // Before AS and router id are known no session was started: keep the configured ones.
        // Afterwards the running set (with API additions and deletions) is the truth.
        let neighbors: Vec<Neighbor> = if !self.ready() {
            self.config.neighbors.clone()
        } else {
            self.peers.values().map(|p| p.neighbor.clone()).collect()
        };
        self.shutdown("configuration change").await;
        c.neighbors = neighbors;
        self.config = c;
        self.rib = Rib::new(rib_config(&self.config));
        self.reoriginate();
        self.start().await;
        Ok(())
    }

    fn route_views(&self, routes: Vec<Route>) -> Vec<RouteView> {
        let sources = self.sources();
        routes
            .into_iter()
            .flat_map(|r| {
                let prefix = r.prefix;
                r.paths.into_iter().map(move |p| (prefix, p))
            })
            .map(|(prefix, p)| view(&sources, prefix, &p))
            .collect()
    }

    /// Address and AS of each peer by RIB id, for showing where paths came from.
    fn sources(&self) -> HashMap<PeerId, (IpAddr, u32)> {
        self.peers
            .values()
            .map(|p| (p.id, (p.neighbor.address, p.neighbor.asn)))
            .collect()
    }
}

fn view(
    sources: &HashMap<PeerId, (IpAddr, u32)>,
    prefix: IpNet,
    p: &bgp::rib::PathView,
) -> RouteView {
    let peer = sources.get(&p.peer);
    RouteView {
        prefix,
        path_id: p.path_id,
        peer: peer.map(|x| x.0),
        peer_asn: peer.map_or(0, |x| x.1),
        attrs: p.attrs.attrs.clone(),
        next_hop: p.attrs.next_hop,
        best: p.best,
        multipath: p.multipath,
        reason: p.reason.map(|s| s.name()),
        since: p.since,
    }
}

/// What the kernel should hold for each changed prefix: the ECMP next hops of a learned best
/// path, with the metric of its session's kind. Local paths are not installed.
fn fib_changes(
    by_id: &HashMap<PeerId, &Peer>,
    local_asn: u32,
    best: &[bgp::rib::BestChange],
) -> Vec<(IpNet, Option<crate::fib::plan::Want>)> {
    use crate::fib::plan::{METRIC_EBGP, METRIC_IBGP, Want};
    best.iter()
        .map(|b| {
            let want = b.best.as_ref().and_then(|r| {
                let asn = by_id.get(&r.peer)?.neighbor.asn;
                let next_hops: std::collections::BTreeSet<IpAddr> = r
                    .next_hops
                    .iter()
                    .filter_map(|nh| match nh {
                        NextHop::V4(a) => Some(IpAddr::V4(*a)),
                        // A link-local-only next hop would need the interface: not installed.
                        NextHop::V6(v) if !v.global.is_unspecified() => Some(IpAddr::V6(v.global)),
                        NextHop::V6(_) => None,
                    })
                    .collect();
                (!next_hops.is_empty()).then_some(Want {
                    next_hops,
                    metric: if asn == local_asn {
                        METRIC_IBGP
                    } else {
                        METRIC_EBGP
                    },
                })
            });
            (b.prefix, want)
        })
        .collect()
}

pub fn next_hop_text(nh: &NextHop) -> String {
    match nh {
        NextHop::V4(a) => a.to_string(),
        NextHop::V6(v) => v.global.to_string(),
    }
}

fn capabilities(n: &Neighbor, restarting: bool) -> Vec<bgp::Capability> {
    use bgp::Capability;
    let mut caps: Vec<Capability> = n
        .families
        .iter()
        .map(|f| Capability::Multiprotocol(*f))
        .collect();
    if let Some(gr) = n.graceful_restart {
        // Forwarding state is preserved for every family: the kernel keeps forwarding to what we
        // advertise (pod blocks, VIPs, installed routes) while sartd restarts.
        caps.push(Capability::GracefulRestart(
            bgp::capability::GracefulRestart {
                restarting,
                notification: false,
                restart_time: gr.restart_time,
                families: n
                    .families
                    .iter()
                    .map(|f| bgp::capability::GracefulRestartFamily {
                        family: *f,
                        forwarding_preserved: true,
                    })
                    .collect(),
            },
        ));
    }
    caps.push(Capability::RouteRefresh);
    caps.push(Capability::EnhancedRouteRefresh);
    // IPv4 routes over an IPv6 session need IPv6 next hops (RFC 8950).
    if n.address.is_ipv6() && n.families.contains(&Family::IPV4_UNICAST) {
        caps.push(Capability::ExtendedNextHop(vec![
            bgp::capability::ExtendedNextHop {
                family: Family::IPV4_UNICAST,
                next_hop_afi: bgp::Afi::IPV6,
            },
        ]));
    }
    caps
}

fn export_params(n: &Negotiated, local: IpAddr) -> ExportParams {
    let local = local.to_canonical();
    let ext_nh = n
        .extended_next_hop
        .iter()
        .any(|e| e.family == Family::IPV4_UNICAST);
    let (next_hop_v4, next_hop_v6) = match local {
        IpAddr::V4(a) => (
            Some(NextHop::V4(a)),
            // No IPv6 address on an IPv4 session: the IPv4-mapped form, as FRR sends.
            Some(Ipv6NextHop {
                global: a.to_ipv6_mapped(),
                link_local: None,
            }),
        ),
        IpAddr::V6(a) => {
            let nh6 = Ipv6NextHop {
                global: a,
                link_local: None,
            };
            (ext_nh.then_some(NextHop::V6(nh6)), Some(nh6))
        }
    };
    ExportParams {
        send: n.send.clone(),
        families: n.families.clone(),
        next_hop_v4,
        next_hop_v6,
        extended_next_hop: ext_nh,
        next_hop_self: false,
        export: Export::All,
    }
}
