//! The speaker task: a thin driver around [`Core`]. It owns what does I/O — the session tasks,
//! the listener's socket options, the BFD and FIB channels, the API's watchers — feeds the core
//! every input and carries out the effects it returns. It awaits only the BFD and FIB tasks,
//! never a session.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bgp::fsm::State;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tracing::{debug, warn};

use super::bfd::{BfdEvent, BfdHandle};
use super::core::{Core, Effect};
use super::metrics::{Metrics, PeerSample};
use super::request::{ApiError, NeighborView, Request, WatchEvent};
use super::session::{self, FromSession, SessionHandle, ToSession};
use speaker_config::{Config, Neighbor, Ttl};

/// A running session task and the state last published for it.
struct Session {
    handle: SessionHandle,
    published: State,
}

pub(crate) struct Speaker {
    core: Core,
    sessions: HashMap<IpAddr, Session>,
    /// Tasks of forgotten sessions, awaited only when the speaker stops them all.
    closing: Vec<JoinHandle<()>>,
    to_speaker: mpsc::Sender<FromSession>,
    watchers: Vec<mpsc::Sender<WatchEvent>>,
    metrics: Metrics,
    /// For neighbours' TCP MD5 keys and GTSM; `None` in tests without one.
    listener: Option<Arc<TcpListener>>,
    /// The kernel FIB, when on.
    fib: Option<mpsc::Sender<crate::fib::Command>>,
    bfd: Option<BfdHandle>,
}

impl Speaker {
    pub(crate) fn new(
        config: Config,
        port: u16,
        to_speaker: mpsc::Sender<FromSession>,
        metrics: Metrics,
        listener: Option<Arc<TcpListener>>,
    ) -> Speaker {
        Speaker {
            core: Core::new(config, port, metrics.clone(), Instant::now()),
            sessions: HashMap::new(),
            closing: Vec::new(),
            to_speaker,
            watchers: Vec::new(),
            metrics,
            listener,
            fib: None,
            bfd: None,
        }
    }

    /// BFD sessions for neighbours with `bfd` go through this task.
    pub(crate) fn set_bfd(&mut self, bfd: BfdHandle) {
        self.bfd = Some(bfd);
    }

    /// Hands best-route changes to the kernel FIB from now on.
    pub(crate) fn set_fib(&mut self, fib: mpsc::Sender<crate::fib::Command>) {
        self.fib = Some(fib);
        self.core.set_fib();
    }

    /// Starts the configured neighbours (once AS and router id are known).
    pub(crate) async fn start(&mut self) {
        if !self.core.ready() {
            tracing::info!("AS number or router id not set: sessions wait for SetAS/SetRouterId");
            return;
        }
        for n in self.core.configured_neighbors() {
            if let Err(e) = self.add_neighbor(n).await {
                warn!(?e, "neighbour not added");
            }
        }
    }

    async fn add_neighbor(&mut self, n: Neighbor) -> Result<(), ApiError> {
        self.core.admit(&n)?;
        if let (Some(l), Ttl::Security) = (&self.listener, n.ttl) {
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
        let (addr, md5) = (n.address, n.password.is_some());
        if let Err(e) = self.core.add_neighbor(n, Instant::now()) {
            if let (Some(l), true) = (&self.listener, md5) {
                let _ = super::listener::set_password(l, addr, None);
            }
            return Err(e);
        }
        self.execute().await;
        Ok(())
    }

    /// Carries out what the core decided, in order.
    async fn execute(&mut self) {
        for effect in self.core.take_effects() {
            match effect {
                Effect::Spawn { config, endpoint } => {
                    let addr = endpoint.address;
                    let handle = session::spawn(*config, endpoint, self.to_speaker.clone());
                    self.sessions.insert(
                        addr,
                        Session {
                            handle,
                            published: State::Idle,
                        },
                    );
                }
                Effect::Session(addr, cmd) => {
                    if let Some(s) = self.sessions.get(&addr) {
                        let _ = s.handle.tx.send(cmd);
                    }
                }
                Effect::Abort(addr) => {
                    if let Some(s) = self.sessions.get(&addr) {
                        s.handle.task.abort();
                    }
                }
                Effect::Forget { peer, had_password } => {
                    if let Some(s) = self.sessions.remove(&peer) {
                        // Without its command channel the task ends once it has done what it
                        // was told last.
                        drop(s.handle.tx);
                        self.closing.push(s.handle.task);
                    }
                    if let (Some(l), true) = (&self.listener, had_password) {
                        let _ = super::listener::set_password(l, peer, None);
                    }
                }
                Effect::BfdAdd {
                    peer,
                    local,
                    config,
                } => {
                    if let Some(b) = &self.bfd {
                        let add = super::bfd::Command::Add {
                            peer,
                            local,
                            config,
                        };
                        let _ = b.tx.send(add).await;
                    }
                }
                Effect::BfdRemove(peer) => {
                    if let Some(b) = &self.bfd {
                        let _ = b.tx.send(super::bfd::Command::Remove(peer)).await;
                    }
                }
                Effect::FibRoutes(changes) => {
                    if let Some(f) = &self.fib {
                        let _ = f.send(crate::fib::Command::Routes(changes)).await;
                    }
                }
                Effect::FibConverged => {
                    if let Some(f) = &self.fib {
                        let _ = f.send(crate::fib::Command::Converged).await;
                    }
                }
                Effect::Watch(ev) => self.notify(ev),
            }
        }
    }

    /// Waits, two seconds at most, for forgotten sessions to send their NOTIFICATIONs.
    async fn wait_closed(&mut self) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
        for task in self.closing.drain(..) {
            let _ = tokio::time::timeout_at(deadline, task).await;
        }
    }

    pub(crate) async fn bfd_event(&mut self, ev: BfdEvent) {
        self.core.bfd_changed(ev.peer, ev.up, ev.diag.name());
        self.execute().await;
    }

    pub(crate) async fn session_event(&mut self, ev: FromSession) {
        self.core.session_event(ev, Instant::now());
        self.execute().await;
    }

    pub(crate) async fn accepted(&mut self, stream: TcpStream, from: IpAddr) {
        match self.sessions.get(&from) {
            Some(s) => {
                let _ = s.handle.tx.send(ToSession::Accepted(stream));
            }
            None => debug!(%from, "connection from an unknown address refused"),
        }
    }

    /// Drops stale paths whose restart or stale-path timer ran out. Returns whether any went.
    pub(crate) fn expire_stale(&mut self, now: Instant) -> bool {
        self.core.expire_stale(now)
    }

    pub(crate) async fn check_converged(&mut self) {
        self.core.check_converged(Instant::now());
        self.execute().await;
    }

    /// Writes what the RIB produced since the last drain, and tells watchers.
    pub(crate) async fn flush(&mut self) {
        self.publish_peer_states();
        self.closing.clear();
        self.core.flush(!self.watchers.is_empty());
        self.execute().await;
    }

    /// The process is exiting. Sessions that negotiated graceful restart are dropped without a
    /// NOTIFICATION, so those peers keep our routes and forwarding until we are back (RFC 4724
    /// §4.1); the others get a Cease with `message`.
    pub(crate) async fn exit(&mut self, message: &str) {
        let keep = self.core.keep_fib_routes();
        self.core.stop_all(message, true);
        self.execute().await;
        self.wait_closed().await;
        // Leaves the kernel routes in place with graceful restart (so forwarding goes on
        // while we restart), removes them without.
        let Some(f) = self.fib.take() else { return };
        let (done, wait) = oneshot::channel();
        if f.send(crate::fib::Command::Exit { keep, done })
            .await
            .is_ok()
        {
            let _ = tokio::time::timeout(Duration::from_secs(10), wait).await;
        }
    }

    fn notify(&mut self, ev: WatchEvent) {
        // A watcher that cannot keep up is dropped rather than stalling the speaker.
        self.watchers.retain(|w| w.try_send(ev.clone()).is_ok());
    }

    fn peer_event(&self, addr: IpAddr, state: State) -> Option<WatchEvent> {
        let n = self.core.neighbor(addr)?;
        Some(WatchEvent::Peer {
            name: n.name.clone(),
            address: addr,
            asn: n.asn,
            state,
        })
    }

    fn publish_peer_states(&mut self) {
        let mut events = Vec::new();
        for (addr, s) in &mut self.sessions {
            let state = s.handle.status.state();
            if state != s.published {
                s.published = state;
                events.push((*addr, state));
            }
        }
        for (addr, state) in events {
            if let Some(ev) = self.peer_event(addr, state) {
                self.notify(ev);
            }
        }
    }

    /// True when some session changed state since it was last published (the run loop polls).
    pub(crate) fn peer_state_changed(&self) -> bool {
        self.sessions
            .values()
            .any(|s| s.handle.status.state() != s.published)
    }

    fn bfd_view(&self, addr: IpAddr) -> Option<super::request::BfdView> {
        self.bfd
            .as_ref()
            .and_then(|b| b.status.borrow().get(&addr).cloned())
    }

    /// Refreshes the per-session metrics snapshot.
    pub(crate) fn sample_metrics(&self) {
        let samples = self
            .core
            .peers()
            .filter_map(|p| {
                let addr = p.neighbor.address;
                let st = self.sessions.get(&addr)?.handle.status.get();
                let bfd = self.bfd_view(addr);
                Some(PeerSample {
                    name: p.neighbor.name.clone(),
                    address: addr.to_string(),
                    state: st.state,
                    sent: st.sent,
                    received: st.received,
                    prefixes_received: p.prefixes_received as u64,
                    stale_paths: p.stale_paths as u64,
                    bfd_up: bfd.as_ref().map(|b| b.state == "Up"),
                    bfd_up_transitions: bfd.map_or(0, |b| b.up_transitions),
                    output_octets: p.backlog.0 as u64,
                    output_prefixes: p.backlog.1 as u64,
                    send_hold_expired: st.send_hold_expired,
                    update_errors: st.update_errors,
                    max_prefix_exceeded: p.max_prefix_exceeded,
                })
            })
            .collect();
        self.metrics.set_peers(samples);
    }

    fn neighbors(&self) -> Vec<NeighborView> {
        let mut v: Vec<NeighborView> = self
            .core
            .peers()
            .map(|p| {
                let addr = p.neighbor.address;
                NeighborView {
                    config: p.neighbor.clone(),
                    status: self
                        .sessions
                        .get(&addr)
                        .map(|s| s.handle.status.get())
                        .unwrap_or_default(),
                    prefixes_received: p.prefixes_received,
                    stale_paths: p.stale_paths,
                    bfd: self.bfd_view(addr),
                }
            })
            .collect();
        v.sort_by_key(|n| n.config.address);
        v
    }

    fn state(&self, addr: IpAddr) -> State {
        self.sessions
            .get(&addr)
            .map_or(State::Idle, |s| s.handle.status.state())
    }

    /// After a speaker-wide change: every session was told to stop with a Cease (RFC 8203);
    /// give them a moment to send it, then start them again on the new RIB.
    async fn restart(&mut self, changed: Result<bool, ApiError>) -> Result<(), ApiError> {
        if changed? {
            self.execute().await;
            self.wait_closed().await;
            self.start().await;
        }
        Ok(())
    }

    pub(crate) async fn request(&mut self, req: Request) {
        match req {
            Request::Info(tx) => {
                let _ = tx.send(self.core.info());
            }
            Request::Neighbors(tx) => {
                let _ = tx.send(self.neighbors());
            }
            Request::AddNeighbor(n, tx) => {
                let _ = tx.send(self.add_neighbor(*n).await);
            }
            Request::DeleteNeighbor(a, tx) => {
                let r = self.core.delete_neighbor(a);
                self.execute().await;
                let _ = tx.send(r);
            }
            Request::AddPaths(prefixes, spec, tx) => {
                self.core.add_paths(prefixes, &spec);
                let _ = tx.send(Ok(()));
            }
            Request::DeletePaths(prefixes, tx) => {
                self.core.delete_paths(prefixes);
                let _ = tx.send(Ok(()));
            }
            Request::SetAs(asn, tx) => {
                let changed = self.core.set_as(asn);
                let _ = tx.send(self.restart(changed).await);
            }
            Request::SetRouterId(id, tx) => {
                let changed = self.core.set_router_id(id);
                let _ = tx.send(self.restart(changed).await);
            }
            Request::SetMaxPaths(n, tx) => {
                let changed = self.core.set_max_paths(n);
                let _ = tx.send(self.restart(changed).await);
            }
            Request::Routes(family, tx) => {
                let _ = tx.send(self.core.routes(family));
            }
            Request::Lookup(prefix, tx) => {
                let _ = tx.send(self.core.lookup(prefix));
            }
            Request::AdjRibIn(addr, family, tx) => {
                let _ = tx.send(self.core.adj_rib_in(addr, family));
            }
            Request::AdjRibOut(addr, family, tx) => {
                let _ = tx.send(self.core.adj_rib_out(addr, family));
            }
            Request::Reset(addr, kind, tx) => {
                let r = self.core.reset(addr, kind, self.state(addr));
                self.execute().await;
                let _ = tx.send(r);
            }
            Request::Watch(tx) => {
                // Current state first, then changes.
                for (addr, s) in &self.sessions {
                    let state = s.handle.status.state();
                    if let Some(ev) = self.peer_event(*addr, state) {
                        let _ = tx.try_send(ev);
                    }
                }
                self.watchers.push(tx);
            }
        }
    }
}
