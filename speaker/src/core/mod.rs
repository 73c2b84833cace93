//! The speaker's decisions, without I/O: the neighbour table, the RIB and the routes we
//! originate. Each input (a session's event, an API change, a timer) changes this state and
//! queues [`Effect`]s for the driver (`speaker.rs`) to carry out; outboxes are filled in place
//! and never waited on. Nothing here awaits, so one peer cannot hold up another, and replaying
//! a sequence of inputs shows every decision.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr};
use std::num::NonZeroUsize;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bgp::error::{cease_subcode, code};
use bgp::fsm::{Restart, SessionConfig, State};
use bgp::rib::{
    BestReport, DecisionConfig, Drained, LocalRoute, OutUpdate, PathView, PeerConfig, PeerId, Rib,
    RibConfig, Route,
};
use bgp::{Family, Notification};
use ipnet::IpNet;
use tracing::{debug, info, warn};

use super::export::{self, Member};
use super::graceful::OnDown;
use super::metrics::Metrics;
use super::neighbors::{self, Peer, Up};
use super::request::{ApiError, Info, ResetKind, RouteView, WatchEvent, next_hop_text};
use super::session::{Endpoint, FromSession, ToSession};
use crate::fib::plan::Want;
use speaker_config::{Config, Neighbor, PathSpec};

/// What the driver is to do, in order.
#[derive(Debug)]
pub(crate) enum Effect {
    /// Start a session task for a neighbour just added, and start it.
    Spawn {
        config: Box<SessionConfig>,
        endpoint: Endpoint,
    },
    Session(IpAddr, ToSession),
    /// Drop the session without a NOTIFICATION: the peer keeps our routes (RFC 4724 §4.1).
    Abort(IpAddr),
    /// The neighbour left the table; its session ends once it has sent what it was told.
    Forget {
        peer: IpAddr,
        had_password: bool,
    },
    BfdAdd {
        peer: IpAddr,
        local: Option<IpAddr>,
        config: speaker_config::BfdConfig,
    },
    BfdRemove(IpAddr),
    FibRoutes(Vec<(IpNet, Option<Want>)>),
    /// The RIB converged after start: the previous run's leftover kernel routes may go.
    FibConverged,
    Watch(WatchEvent),
}

/// A neighbour's counts, for the API and metrics.
pub(crate) struct PeerCounts<'a> {
    pub neighbor: &'a Neighbor,
    pub prefixes_received: usize,
    pub stale_paths: usize,
    pub max_prefix_exceeded: u64,
    /// Octets queued and prefixes coalesced in its outbox.
    pub backlog: (usize, usize),
}

pub(crate) struct Core {
    config: Config,
    port: u16,
    rib: Rib,
    /// Boxed: a table has up to twice as many slots as entries, and a `Peer` is ~500 bytes.
    peers: HashMap<IpAddr, Box<Peer>>,
    local: BTreeMap<IpNet, LocalRoute>,
    metrics: Metrics,
    started: Instant,
    /// Whether the kernel FIB takes best-route changes.
    fib: bool,
    /// (peer, family) End-of-RIBs received since start, until the FIB is told the RIB converged.
    eor_seen: HashSet<(IpAddr, Family)>,
    converged: bool,
    effects: Vec<Effect>,
}

fn unix_now() -> u32 {
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

pub(crate) fn local_route(spec: &PathSpec) -> LocalRoute {
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

fn view(sources: &HashMap<PeerId, (IpAddr, u32)>, prefix: IpNet, p: &PathView) -> RouteView {
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

impl Core {
    /// `started`: when this speaker started, for the R bit and the convergence deadline.
    pub(crate) fn new(config: Config, port: u16, metrics: Metrics, started: Instant) -> Core {
        let mut c = Core {
            rib: Rib::new(rib_config(&config)),
            port,
            peers: HashMap::new(),
            local: BTreeMap::new(),
            metrics,
            started,
            fib: false,
            eor_seen: HashSet::new(),
            converged: false,
            effects: Vec::new(),
            config,
        };
        for p in c.config.paths.clone() {
            let route = local_route(&p.attributes);
            for prefix in p.prefixes {
                c.local.insert(prefix, route.clone());
            }
        }
        c.reoriginate();
        c
    }

    /// What the driver is to do after the inputs since the last call.
    pub(crate) fn take_effects(&mut self) -> Vec<Effect> {
        std::mem::take(&mut self.effects)
    }

    /// Best-route changes go to the kernel from now on.
    pub(crate) fn set_fib(&mut self) {
        self.fib = true;
    }

    /// Whether AS number and router id are known, so sessions can run.
    pub(crate) fn ready(&self) -> bool {
        self.config.asn != 0 && !self.config.router_id.is_unspecified()
    }

    pub(crate) fn info(&self) -> Info {
        Info {
            asn: self.config.asn,
            router_id: self.config.router_id,
            port: self.port,
            max_paths: self.config.max_paths,
        }
    }

    /// The neighbours to start with, from the configuration.
    pub(crate) fn configured_neighbors(&self) -> Vec<Neighbor> {
        self.config.neighbors.clone()
    }

    pub(crate) fn neighbor(&self, addr: IpAddr) -> Option<&Neighbor> {
        self.peers.get(&addr).map(|p| &p.neighbor)
    }

    pub(crate) fn peers(&self) -> impl Iterator<Item = PeerCounts<'_>> {
        self.peers.values().map(|p| PeerCounts {
            neighbor: &p.neighbor,
            prefixes_received: self.rib.path_count(p.id),
            // A scan of the table, so only for peers that have stale paths at all.
            stale_paths: if p.stale.is_empty() {
                0
            } else {
                self.rib.stale_count(p.id)
            },
            max_prefix_exceeded: p.max_prefix_exceeded,
            backlog: p.up.as_ref().map_or((0, 0), |u| u.output.backlog()),
        })
    }

    fn reoriginate(&mut self) {
        let t = unix_now();
        for (prefix, route) in &self.local {
            self.rib.originate(*prefix, route.clone(), t);
        }
    }

    /// Whether `n` may join the table (checked again by `add_neighbor`): the driver asks
    /// before it sets the listener's socket options for it.
    pub(crate) fn admit(&self, n: &Neighbor) -> Result<(), ApiError> {
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
        Ok(())
    }

    pub(crate) fn add_neighbor(&mut self, n: Neighbor, now: Instant) -> Result<(), ApiError> {
        self.admit(&n)?;
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
        // R bit (RFC 4724 §3): set for the sessions of a speaker that has just started, so
        // peers that kept our routes do not wait for our End-of-RIB before sending theirs.
        let restarting = now.saturating_duration_since(self.started)
            < Duration::from_secs(n.graceful_restart.map_or(0, |g| u64::from(g.restart_time)));
        let sc = neighbors::session_config(self.config.asn, self.config.router_id, &n, restarting);
        if let Some(cfg) = n.bfd {
            self.effects.push(Effect::BfdAdd {
                peer: n.address,
                local: n.local_address,
                config: cfg,
            });
        }
        self.effects.push(Effect::Spawn {
            config: Box::new(sc),
            endpoint: neighbors::endpoint(&n, self.port),
        });
        self.effects
            .push(Effect::Session(n.address, ToSession::Start));
        info!(peer = %n.address, asn = n.asn, name = %n.name, "neighbour added");
        self.peers.insert(n.address, Box::new(Peer::new(n, id)));
        Ok(())
    }

    pub(crate) fn delete_neighbor(&mut self, addr: IpAddr) -> Result<(), ApiError> {
        let p = self
            .peers
            .remove(&addr)
            .ok_or_else(|| ApiError::no_neighbor(addr))?;
        self.effects.push(Effect::Session(
            addr,
            ToSession::Stop(Some("neighbor removed".into())),
        ));
        self.effects.push(Effect::Forget {
            peer: addr,
            had_password: p.neighbor.password.is_some(),
        });
        if p.neighbor.bfd.is_some() {
            self.effects.push(Effect::BfdRemove(addr));
        }
        let _ = self.rib.remove_peer(p.id);
        info!(peer = %addr, "neighbour removed");
        Ok(())
    }

    /// Ends every session: with a Cease carrying `message` (RFC 8203), or, with
    /// `keep_graceful`, silently where the peer keeps our routes while we restart (RFC 4724
    /// §4.1). The table is empty afterwards.
    pub(crate) fn stop_all(&mut self, message: &str, keep_graceful: bool) {
        for (addr, p) in self.peers.drain() {
            if keep_graceful && p.keeps_our_routes() {
                info!(peer = %addr, "leaving without a NOTIFICATION: the peer keeps our routes (graceful restart)");
                self.effects.push(Effect::Abort(addr));
            } else {
                self.effects.push(Effect::Session(
                    addr,
                    ToSession::Stop(Some(message.to_string())),
                ));
            }
            self.effects.push(Effect::Forget {
                peer: addr,
                had_password: p.neighbor.password.is_some(),
            });
        }
    }

    /// Whether the kernel routes stay when sartd exits: with graceful restart, forwarding goes
    /// on while we restart.
    pub(crate) fn keep_fib_routes(&self) -> bool {
        self.config.graceful_restart.is_some()
            || self
                .peers
                .values()
                .any(|p| p.neighbor.graceful_restart.is_some())
    }

    /// BFD says the path to a neighbour went (or came back). Down tears the BGP session down
    /// at once (RFC 5882 §4.3), with Cease/BFD Down (RFC 9384), so its routes are withdrawn
    /// instead of waiting out the hold timer.
    pub(crate) fn bfd_changed(&mut self, peer: IpAddr, up: bool, diag: &str) {
        if !self.peers.contains_key(&peer) {
            return;
        }
        if up {
            info!(%peer, "BFD up");
            return;
        }
        warn!(%peer, diag, "BFD down: closing the BGP session");
        let n = Notification::new(code::CEASE, cease_subcode::BFD_DOWN);
        self.effects.push(Effect::Session(
            peer,
            ToSession::Close(n, Restart::IdleHold),
        ));
    }

    pub(crate) fn session_event(&mut self, ev: FromSession, now: Instant) {
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
                let params = export::params(&negotiated, local.ip(), p.neighbor.export);
                if let Err(e) = self.rib.establish(p.id, negotiated.peer_id, params) {
                    warn!(%peer, error = %e, "RIB refused the session");
                    return;
                }
                for f in p.stale.established(&negotiated, now) {
                    let n = self.rib.sweep_stale(p.id, Some(f)).unwrap_or(0);
                    info!(%peer, family = %f, removed = n, "restarted peer did not preserve forwarding: stale routes removed");
                }
                let families: Vec<Family> = negotiated.families.iter().collect();
                let table = self.rib.peer_table(p.id).unwrap_or_default();
                export::initial_table(&output, &table, &families);
                p.up = Some(Up {
                    negotiated: *negotiated,
                    output,
                });
            }
            FromSession::Updates { peer, updates } => {
                for u in updates {
                    self.update(peer, u);
                }
            }
            FromSession::RouteRefresh { peer, family } => self.route_refresh(peer, family),
            FromSession::Down { peer, reason } => {
                let Some(p) = self.peers.get_mut(&peer) else {
                    return;
                };
                let up = p.up.take();
                p.over_limit = false;
                let gr = p.neighbor.graceful_restart.is_some();
                match p
                    .stale
                    .down(gr, up.as_ref().map(|u| &u.negotiated), &reason, now)
                {
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

    fn update(&mut self, peer: IpAddr, update: bgp::Update) {
        let Some(p) = self.peers.get_mut(&peer) else {
            return;
        };
        let started = std::time::Instant::now();
        let received = self.rib.receive(p.id, update, unix_now());
        self.metrics
            .update_seconds
            .observe(started.elapsed().as_secs_f64());
        let r = match received {
            Ok(r) => r,
            Err(e) => {
                warn!(%peer, error = %e, "UPDATE not processed");
                return;
            }
        };
        if !r.max_prefix_exceeded {
            if let Some(f) = r.end_of_rib {
                self.end_of_rib(peer, f);
            }
            return;
        }
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
        self.effects
            .push(Effect::Session(peer, ToSession::Close(n, m.restart)));
    }

    fn route_refresh(&mut self, peer: IpAddr, family: Family) {
        let Some(p) = self.peers.get(&peer) else {
            return;
        };
        let Some(up) = &p.up else {
            return;
        };
        if !up.negotiated.families.contains(family) {
            // RFC 2918 §4: ignore a refresh for a family that was not negotiated.
            return;
        }
        let table: Vec<OutUpdate> = self
            .rib
            .peer_table(p.id)
            .unwrap_or_default()
            .into_iter()
            .filter(|o| o.prefixes.family() == family)
            .collect();
        let enhanced = up.negotiated.enhanced_route_refresh;
        if !export::refreshed_table(&up.output, family, enhanced, &table) {
            debug!(%peer, %family, "route refresh: the table is on its way already");
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
    pub(crate) fn expire_stale(&mut self, now: Instant) -> bool {
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

    /// Tells the FIB once the RIB has converged after start: every neighbour is established and
    /// every graceful-restart one sent End-of-RIB for every family it negotiated (RFC 4724
    /// §4.1), or the speaker's restart time passed.
    pub(crate) fn check_converged(&mut self, now: Instant) {
        if self.converged || !self.fib {
            return;
        }
        // Peers without graceful restart may never send End-of-RIB (FRR sends it only to
        // GR-capable peers): for them an established session is all there is to wait for.
        let all_eor = !self.peers.is_empty()
            && self.peers.values().all(|p| {
                p.negotiated().is_some_and(|n| {
                    p.neighbor.graceful_restart.is_none()
                        || n.peer_graceful_restart.is_none()
                        || n.families
                            .iter()
                            .all(|f| self.eor_seen.contains(&(p.neighbor.address, f)))
                })
            });
        let timeout = Duration::from_secs(u64::from(
            self.config
                .graceful_restart
                .map_or(speaker_config::DEFAULT_RESTART_TIME, |g| g.restart_time),
        ));
        let timed_out = now.saturating_duration_since(self.started) >= timeout;
        if all_eor || timed_out {
            self.converged = true;
            self.eor_seen.clear();
            info!(all_eor, timed_out, "RIB converged after start");
            self.effects.push(Effect::FibConverged);
        }
    }

    /// Hands what the RIB produced since the last drain to the outboxes, the FIB and, when
    /// someone `watches`, the watchers.
    pub(crate) fn flush(&mut self, watched: bool) {
        // Best-path changes are built only for someone who reads them.
        let report = if self.fib || watched {
            BestReport::Changes
        } else {
            BestReport::Count
        };
        let Drained {
            best,
            best_changed,
            groups,
            peers,
        } = self.rib.drain_reporting(report);
        self.metrics.best_path_changes.inc_by(best_changed as u64);
        if self.fib && !best.is_empty() {
            let asn_of: HashMap<PeerId, u32> = self
                .peers
                .values()
                .map(|p| (p.id, p.neighbor.asn))
                .collect();
            let changes =
                export::fib_changes(&best, self.config.asn, |id| asn_of.get(&id).copied());
            self.effects.push(Effect::FibRoutes(changes));
        }
        let members: HashMap<PeerId, Member<'_>> = self
            .peers
            .values()
            .filter_map(|p| {
                let up = p.up.as_ref()?;
                Some((
                    p.id,
                    Member {
                        send: &up.negotiated.send,
                        output: &up.output,
                    },
                ))
            })
            .collect();
        export::write_drained(groups, peers, &self.rib, &members);
        if watched {
            for b in best {
                self.effects.push(Effect::Watch(WatchEvent::Best {
                    prefix: b.prefix,
                    next_hops: b
                        .best
                        .map(|r| r.next_hops.iter().map(next_hop_text).collect())
                        .unwrap_or_default(),
                }));
            }
        }
    }

    pub(crate) fn add_paths(&mut self, prefixes: Vec<IpNet>, spec: &PathSpec) {
        let route = local_route(spec);
        let t = unix_now();
        for p in prefixes {
            self.local.insert(p, route.clone());
            self.rib.originate(p, route.clone(), t);
        }
    }

    pub(crate) fn delete_paths(&mut self, prefixes: Vec<IpNet>) {
        for p in prefixes {
            self.local.remove(&p);
            self.rib.withdraw_local(p);
        }
    }

    /// `state`: where the neighbour's session is now.
    pub(crate) fn reset(
        &mut self,
        addr: IpAddr,
        kind: ResetKind,
        state: State,
    ) -> Result<(), ApiError> {
        let p = self
            .peers
            .get(&addr)
            .ok_or_else(|| ApiError::no_neighbor(addr))?;
        if kind == ResetKind::Hard {
            // A session held down (e.g. past its max-prefix limit) is started again; a
            // running one restarts after the idle hold time.
            let cmd = if state == State::Idle {
                ToSession::Start
            } else {
                let n = Notification::new(code::CEASE, cease_subcode::ADMINISTRATIVE_RESET);
                ToSession::Close(n, Restart::IdleHold)
            };
            self.effects.push(Effect::Session(addr, cmd));
            return Ok(());
        }
        let up = p.up.as_ref().ok_or_else(|| {
            ApiError::FailedPrecondition(format!("the session with {addr} is not established"))
        })?;
        if kind == ResetKind::SoftIn {
            if !up.negotiated.route_refresh {
                return Err(ApiError::FailedPrecondition(format!(
                    "{addr} did not negotiate route refresh: use a hard reset"
                )));
            }
            for f in up.negotiated.families.iter() {
                self.effects
                    .push(Effect::Session(addr, ToSession::RequestRefresh(f)));
            }
        } else {
            let table = self.rib.peer_table(p.id).unwrap_or_default();
            export::table_again(&up.output, &table);
        }
        Ok(())
    }

    /// AS, router id and multipath are speaker-wide: changing one stops every session and
    /// starts over on a fresh RIB (a router cannot change its AS under live sessions). Returns
    /// whether anything changed; the driver then waits for the sessions to end and adds
    /// `configured_neighbors()` again.
    pub(crate) fn reconfigure(
        &mut self,
        change: impl FnOnce(&mut Config),
    ) -> Result<bool, ApiError> {
        let mut c = self.config.clone();
        change(&mut c);
        if c == self.config {
            return Ok(false);
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
        c.neighbors = if self.ready() {
            let mut running: Vec<Neighbor> =
                self.peers.values().map(|p| p.neighbor.clone()).collect();
            running.sort_by_key(|n| n.address);
            running
        } else {
            self.config.neighbors.clone()
        };
        self.stop_all("configuration change", false);
        self.config = c;
        self.rib = Rib::new(rib_config(&self.config));
        self.reoriginate();
        Ok(true)
    }

    pub(crate) fn set_as(&mut self, asn: u32) -> Result<bool, ApiError> {
        self.reconfigure(|c| c.asn = asn)
    }

    pub(crate) fn set_router_id(&mut self, id: Ipv4Addr) -> Result<bool, ApiError> {
        self.reconfigure(|c| c.router_id = id)
    }

    pub(crate) fn set_max_paths(&mut self, n: usize) -> Result<bool, ApiError> {
        self.reconfigure(|c| c.max_paths = n)
    }

    /// Address and AS of each peer by RIB id, for showing where paths came from.
    fn sources(&self) -> HashMap<PeerId, (IpAddr, u32)> {
        self.peers
            .values()
            .map(|p| (p.id, (p.neighbor.address, p.neighbor.asn)))
            .collect()
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

    pub(crate) fn routes(&self, family: Family) -> Vec<RouteView> {
        self.route_views(self.rib.routes(family))
    }

    pub(crate) fn lookup(&self, prefix: IpNet) -> Vec<RouteView> {
        self.route_views(self.rib.lookup(prefix).into_iter().collect())
    }

    pub(crate) fn adj_rib_in(
        &self,
        addr: IpAddr,
        family: Family,
    ) -> Result<Vec<RouteView>, ApiError> {
        let p = self
            .peers
            .get(&addr)
            .ok_or_else(|| ApiError::no_neighbor(addr))?;
        let sources = self.sources();
        Ok(self
            .rib
            .adj_rib_in(p.id, family)
            .into_iter()
            .map(|(prefix, path)| view(&sources, prefix, &path))
            .collect())
    }

    pub(crate) fn adj_rib_out(
        &self,
        addr: IpAddr,
        family: Family,
    ) -> Result<Vec<RouteView>, ApiError> {
        let p = self
            .peers
            .get(&addr)
            .ok_or_else(|| ApiError::no_neighbor(addr))?;
        Ok(self
            .rib
            .adj_rib_out(p.id, family)
            .unwrap_or_default()
            .into_iter()
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
            .collect())
    }
}

#[cfg(test)]
mod replay;
