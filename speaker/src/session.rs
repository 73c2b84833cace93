//! One task per neighbour: owns the FSM, the TCP connection and the timers, and carries out the
//! FSM's actions. It reads the socket itself, one message per wake-up, framed in place
//! ([`Inbox`]): while the speaker is slow to take UPDATEs it reads nothing, which pushes back
//! on the peer. A writer task writes the session's own messages first (OPEN, KEEPALIVE,
//! NOTIFICATION, ROUTE-REFRESH) and then the connection's [`Output`], which the speaker fills
//! without ever waiting: a peer that stops reading holds up nobody, costs memory bounded by its
//! table ([`Outbox`]), and is dropped by the send hold timer (RFC 9687).

use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bgp::fsm::{Action, DownReason, Event, Fsm, SessionConfig, State, Timer, keep_on_collision};
use bgp::{Context, Message, MessageType, Negotiated, Notification, Update};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use super::inbox::{IDLE_IO, Inbox, Read};
use super::log_limit::LogLimit;
use super::mailbox::{self, Receiver, Sender};
use super::outbox::{self, Outbox};
use super::timers::Timers;
use speaker_config::{Password, Ttl};

/// Octets the writer gathers into one write.
const WRITE_CHUNK: usize = 64 * 1024;
/// How long a closing connection may take to write its NOTIFICATION.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// Commands to a session task.
#[derive(Debug)]
pub(crate) enum ToSession {
    Start,
    Stop(Option<String>),
    /// Close with this NOTIFICATION and start again as `Restart` says.
    Close(Notification, bgp::fsm::Restart),
    /// The listener accepted a connection from this neighbour.
    Accepted(TcpStream),
    /// Ask the peer to resend its routes of a family (ROUTE-REFRESH, RFC 2918).
    RequestRefresh(bgp::Family),
}

/// What a session reports to the speaker.
#[derive(Debug)]
pub(crate) enum FromSession {
    Established {
        peer: IpAddr,
        negotiated: Box<Negotiated>,
        local: SocketAddr,
        /// Where the speaker puts what this connection is to send.
        output: Arc<Output>,
    },
    /// UPDATEs that arrived together, in order (at most [`BATCH_MESSAGES`] of them).
    Updates {
        peer: IpAddr,
        updates: Vec<Update>,
    },
    RouteRefresh {
        peer: IpAddr,
        family: bgp::Family,
    },
    Down {
        peer: IpAddr,
        reason: DownReason,
    },
}

/// Message counters by type, for the API and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Counters {
    pub open: u64,
    pub update: u64,
    pub notification: u64,
    pub keepalive: u64,
    pub route_refresh: u64,
}

impl Counters {
    fn count(&mut self, t: MessageType) {
        match t {
            MessageType::Open => self.open += 1,
            MessageType::Update => self.update += 1,
            MessageType::Notification => self.notification += 1,
            MessageType::Keepalive => self.keepalive += 1,
            MessageType::RouteRefresh => self.route_refresh += 1,
        }
    }
}

/// Live view of a session for the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Status {
    pub state: State,
    /// Unix seconds when the session last became Established.
    pub established_at: Option<u64>,
    pub sent: Counters,
    pub received: Counters,
    pub negotiated: Option<Negotiated>,
    pub last_error: Option<String>,
    /// Sessions dropped because the peer stopped reading (RFC 9687), since the start.
    pub send_hold_expired: u64,
    /// Attribute errors in received UPDATEs, handled per RFC 7606, since the start.
    pub update_errors: u64,
}

impl Default for Status {
    fn default() -> Self {
        Status {
            state: State::Idle,
            established_at: None,
            sent: Counters::default(),
            received: Counters::default(),
            negotiated: None,
            last_error: None,
            send_hold_expired: 0,
            update_errors: 0,
        }
    }
}

/// A session's [`Status`], written by its task and read by the speaker when it samples:
/// nobody waits on a change, so a lock is all it needs.
#[derive(Debug, Default)]
pub(crate) struct StatusCell(Mutex<Status>);

impl StatusCell {
    fn lock(&self) -> MutexGuard<'_, Status> {
        // Plain data changed under the lock by one closure: a poisoned lock's data is sound.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn modify(&self, f: impl FnOnce(&mut Status)) {
        f(&mut self.lock());
    }

    pub(crate) fn get(&self) -> Status {
        self.lock().clone()
    }

    pub(crate) fn state(&self) -> State {
        self.lock().state
    }
}

/// Messages the writer took from a connection's output (the speaker's), by type.
#[derive(Debug, Default)]
struct Written {
    update: AtomicU64,
    route_refresh: AtomicU64,
}

impl Written {
    fn count(&self, msgs: &[Arc<Vec<u8>>]) {
        for m in msgs {
            // The type octet follows the marker and the length (RFC 4271 §4.1).
            match m.get(18).copied().and_then(MessageType::from_u8) {
                Some(MessageType::RouteRefresh) => &self.route_refresh,
                _ => &self.update,
            }
            .fetch_add(1, Ordering::Relaxed);
        }
    }

    fn add_to(&self, c: &mut Counters) {
        c.update += self.update.load(Ordering::Relaxed);
        c.route_refresh += self.route_refresh.load(Ordering::Relaxed);
    }
}

/// One connection's output, shared by the session (which opens it once Established and closes
/// it with the connection), the speaker (which fills it) and the writer (which empties it).
/// Nobody waits on it: the lock is held only to queue or take.
#[derive(Debug)]
pub(crate) struct Output {
    outbox: Mutex<Option<Outbox>>,
    ready: Notify,
}

impl Output {
    pub(super) fn new() -> Arc<Output> {
        Arc::new(Output {
            outbox: Mutex::new(None),
            ready: Notify::new(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Outbox>> {
        // Plain data changed whole under the lock: a poisoned lock's data is still sound.
        self.outbox.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn open(&self, ctx: Context) {
        self.open_with_limit(ctx, outbox::DEFAULT_LIMIT);
    }

    /// `limit`: octets of encoded UPDATEs queued before changes are coalesced instead.
    pub(super) fn open_with_limit(&self, ctx: Context, limit: usize) {
        *self.lock() = Some(Outbox::new(ctx, limit));
    }

    fn close(&self) {
        *self.lock() = None;
        self.ready.notify_one();
    }

    /// Runs `f` on the outbox if the connection is open (and then wakes the writer); `None`
    /// once it closed, when whatever was meant for it no longer matters.
    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut Outbox) -> R) -> Option<R> {
        let r = self.lock().as_mut().map(f);
        self.ready.notify_one();
        r
    }

    /// Octets queued and prefixes coalesced, for metrics.
    pub(crate) fn backlog(&self) -> (usize, usize) {
        self.lock()
            .as_ref()
            .map_or((0, 0), |o| (o.queued_octets(), o.coalesced_prefixes()))
    }

    pub(super) fn take(&self, max_octets: usize) -> Vec<Arc<Vec<u8>>> {
        self.lock()
            .as_mut()
            .map(|o| o.take(max_octets))
            .unwrap_or_default()
    }
}

/// How to reach the neighbour.
#[derive(Debug, Clone)]
pub(crate) struct Endpoint {
    pub address: IpAddr,
    pub port: u16,
    pub local_address: Option<IpAddr>,
    pub ttl: Ttl,
    /// The neighbour's BGP identifier if configured, for collision resolution before its OPEN.
    pub router_id: Option<std::net::Ipv4Addr>,
    /// TCP MD5 key for the connections we open (the listener has it too).
    pub password: Option<Password>,
}

pub(crate) struct SessionHandle {
    /// Commands are few and never wait: a session is always free to take them.
    pub tx: Sender<ToSession>,
    pub status: Arc<StatusCell>,
    pub task: JoinHandle<()>,
}

/// Starts the task of one neighbour.
pub(crate) fn spawn(
    config: SessionConfig,
    endpoint: Endpoint,
    out: mpsc::Sender<FromSession>,
) -> SessionHandle {
    let (tx, rx) = mailbox::mailbox();
    let status = Arc::new(StatusCell::default());
    let task = tokio::spawn(Session::new(config, endpoint, out, status.clone()).run(rx));
    SessionHandle { tx, status, task }
}

struct Connection {
    /// The session's own messages, written before the output.
    control: Sender<Arc<Vec<u8>>>,
    output: Arc<Output>,
    written: Arc<Written>,
    writer: JoinHandle<()>,
    read: OwnedReadHalf,
    inbox: Inbox,
    local: SocketAddr,
    /// Unix millis of the last write that made progress, for the send hold timer (RFC 9687).
    last_write: Arc<AtomicU64>,
    we_initiated: bool,
}

struct Session {
    fsm: Fsm,
    endpoint: Endpoint,
    out: mpsc::Sender<FromSession>,
    status: Arc<StatusCell>,
    timers: Timers,
    /// Boxed: most configured neighbours of a large speaker wait unconnected.
    conn: Option<Box<Connection>>,
    /// The connection attempt in flight (RFC 4271 §8.2.2, Connect state).
    connecting: Option<JoinHandle<std::io::Result<TcpStream>>>,
    ctx: Context,
    sent: Counters,
    received: Counters,
    /// Log lines about the peer's UPDATE errors: the peer decides how many there are.
    error_log: LogLimit,
    /// UPDATEs decoded from what one read brought, not yet handed to the speaker. They go
    /// together: one hand-over (and one wake-up of the speaker) per read instead of per
    /// message, which is what a peer sending one route per UPDATE needs.
    batch: Vec<Update>,
}

/// At most this many UPDATEs, and about [`BATCH_PREFIXES`] prefixes, go to the speaker in one
/// hand-over: the speaker's queue holds 1,024 hand-overs, so this bounds what it holds.
pub(crate) const BATCH_MESSAGES: usize = 32;
const BATCH_PREFIXES: usize = 1024;

enum Wake {
    Command(Option<ToSession>),
    Timer(Timer),
    /// A message is buffered, or the socket is readable.
    Inbound(std::io::Result<()>),
    Connected(std::io::Result<TcpStream>),
}

fn now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl Session {
    fn new(
        config: SessionConfig,
        endpoint: Endpoint,
        out: mpsc::Sender<FromSession>,
        status: Arc<StatusCell>,
    ) -> Session {
        Session {
            fsm: Fsm::new(config),
            endpoint,
            out,
            status,
            timers: Timers::default(),
            conn: None,
            connecting: None,
            ctx: Context::default(),
            sent: Counters::default(),
            received: Counters::default(),
            error_log: LogLimit::new(Duration::from_secs(60), 5),
            batch: Vec::new(),
        }
    }

    async fn run(mut self, mut rx: Receiver<ToSession>) {
        loop {
            let wake = {
                let next = self.timers.next();
                let sleep = async {
                    match next {
                        Some((_, at)) => tokio::time::sleep_until(at).await,
                        None => std::future::pending().await,
                    }
                };
                let conn = self.conn.as_mut();
                let inbound = async {
                    match conn {
                        Some(c) if c.inbox.has_message() => Ok(()),
                        Some(c) if !c.inbox.is_broken() => {
                            c.inbox.settle();
                            c.read.readable().await
                        }
                        _ => std::future::pending().await,
                    }
                };
                let connecting = self.connecting.as_mut();
                let connected = async {
                    match connecting {
                        Some(attempt) => attempt.await.unwrap_or_else(|e| {
                            Err(std::io::Error::other(format!("connect task: {e}")))
                        }),
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    c = rx.recv() => Wake::Command(c),
                    () = sleep => Wake::Timer(next.map_or(Timer::Hold, |(t, _)| t)),
                    r = inbound => Wake::Inbound(r),
                    r = connected => Wake::Connected(r),
                }
            };
            if !Box::pin(self.wake(wake)).await {
                return;
            }
        }
    }

    /// Handles one wake-up; `false` when the session is over. The caller boxes it, so an idle
    /// session's task keeps no room for what handling awaits (1.8 KB instead of 3 KB).
    async fn wake(&mut self, wake: Wake) -> bool {
        match wake {
            Wake::Command(None) => {
                // The speaker is gone: stop quietly.
                self.apply(Event::ManualStop(None)).await;
                return false;
            }
            Wake::Command(Some(cmd)) => self.command(cmd).await,
            Wake::Timer(t) => {
                self.timers.fire(t);
                let event = match t {
                    Timer::ConnectRetry => {
                        // The FSM abandons an attempt still in flight and starts another:
                        // that attempt failed too, even though its own timeout never fired.
                        if self.connecting.is_some() {
                            let after = self.fsm.config().connect_retry;
                            self.connect_failed(&format!("no answer within {after:?}"));
                        }
                        Event::ConnectRetryTimerExpires
                    }
                    Timer::Hold => Event::HoldTimerExpires,
                    Timer::Keepalive => Event::KeepaliveTimerExpires,
                    Timer::IdleHold => Event::IdleHoldTimerExpires,
                    Timer::SendHold => {
                        // Only expire if no write made progress for the whole period.
                        let last = self
                            .conn
                            .as_ref()
                            .map_or(0, |c| c.last_write.load(Ordering::Relaxed));
                        let period = self
                            .fsm
                            .config()
                            .send_hold(self.fsm.negotiated().map_or(0, |n| n.hold_time));
                        let since = Duration::from_millis(now_millis().saturating_sub(last));
                        if since < period {
                            self.timers.start(Timer::SendHold, period - since);
                            return true;
                        }
                        warn!(peer = %self.endpoint.address, ?period, "the peer has read nothing for the send hold time: closing (RFC 9687)");
                        self.status.modify(|s| s.send_hold_expired += 1);
                        Event::SendHoldTimerExpires
                    }
                };
                self.apply(event).await;
            }
            Wake::Inbound(ready) => self.inbound(ready).await,
            Wake::Connected(r) => {
                self.connecting = None;
                match r {
                    Ok(stream)
                        if matches!(self.fsm.state(), State::Connect | State::Active)
                            && self.conn.is_none() =>
                    {
                        self.attach(stream, true);
                        self.apply(Event::TcpCrAcked).await;
                    }
                    Ok(_) => {} // Lost the race to an inbound connection.
                    Err(e) => {
                        self.connect_failed(&e);
                        self.apply(Event::TcpConnectionFails).await;
                    }
                }
            }
        }
        true
    }

    async fn command(&mut self, cmd: ToSession) {
        match cmd {
            ToSession::Start => self.apply(Event::ManualStart).await,
            ToSession::Stop(msg) => self.apply(Event::ManualStop(msg)).await,
            ToSession::Close(n, restart) => self.apply(Event::AutomaticStop(n, restart)).await,
            ToSession::RequestRefresh(family) => {
                if self.fsm.state() == State::Established {
                    self.write_message(&Message::RouteRefresh(bgp::RouteRefresh::request(family)));
                }
            }
            ToSession::Accepted(stream) => self.accepted(stream).await,
        }
    }

    /// An inbound connection: adopt it, or resolve the collision with the one we have (§6.8).
    async fn accepted(&mut self, stream: TcpStream) {
        let state = self.fsm.state();
        match state {
            State::Idle if self.fsm.admin_down() => {
                // Stopped by the operator: refuse.
                drop(stream);
            }
            State::Idle => {
                // Waiting to restart after a failure: the peer is back first, take its connection.
                self.apply(Event::AutomaticStart).await;
                if let Some(c) = self.connecting.take() {
                    c.abort();
                }
                self.attach(stream, false);
                self.apply(Event::TcpConnectionConfirmed).await;
            }
            State::Connect | State::Active => {
                if let Some(c) = self.connecting.take() {
                    c.abort();
                }
                self.attach(stream, false);
                self.apply(Event::TcpConnectionConfirmed).await;
            }
            State::OpenSent | State::OpenConfirm | State::Established => {
                let remote_id = self
                    .fsm
                    .negotiated()
                    .map(|n| n.peer_id)
                    .or(self.endpoint.router_id);
                let existing_ours = self.conn.as_ref().is_some_and(|c| c.we_initiated);
                let keep_existing = state == State::Established
                    || match remote_id {
                        Some(id) => {
                            keep_on_collision(self.fsm.config().local_id, id, existing_ours)
                        }
                        None => true,
                    };
                if keep_existing {
                    info!(peer = %self.endpoint.address, "connection collision: keeping the existing connection");
                    close_with_cease(stream).await;
                } else {
                    info!(peer = %self.endpoint.address, "connection collision: switching to the peer's connection");
                    self.apply(Event::OpenCollisionDump).await;
                    self.apply(Event::AutomaticStart).await;
                    if let Some(c) = self.connecting.take() {
                        c.abort();
                    }
                    self.attach(stream, false);
                    self.apply(Event::TcpConnectionConfirmed).await;
                }
            }
        }
    }

    /// Reads if nothing is buffered, then handles the next message, if whole.
    async fn inbound(&mut self, ready: std::io::Result<()>) {
        let Some(c) = self.conn.as_mut() else {
            return;
        };
        let read = match ready {
            Ok(()) if c.inbox.has_message() => Ok(Read::Data),
            Ok(()) => c.inbox.read_from(&c.read),
            Err(e) => Err(e),
        };
        let error = match read {
            Ok(Read::Data) => None,
            Ok(Read::Nothing) => return,
            Ok(Read::Closed) => Some("closed by the peer".to_string()),
            Err(e) => Some(e.to_string()),
        };
        if let Some(e) = error {
            self.set_error(format!("connection: {e}"));
            self.apply(Event::TcpConnectionFails).await;
            return;
        }
        // Every message the read completed, up to a batch. Decoded in place: the message owns
        // what it keeps.
        let mut prefixes = 0;
        while self.batch.len() < BATCH_MESSAGES && prefixes < BATCH_PREFIXES {
            let Some(c) = self.conn.as_mut() else { break };
            let decoded = match c.inbox.next() {
                Some(raw) => Message::decode(raw, &self.ctx),
                None => break,
            };
            if let Ok(Message::Update(u)) = &decoded {
                prefixes += u.prefix_count();
            }
            self.message(decoded).await;
        }
        self.hand_over_updates().await;
    }

    /// Sends the batched UPDATEs to the speaker; before anything else goes to it, so it sees
    /// what the peer sent in order.
    async fn hand_over_updates(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        let updates = std::mem::take(&mut self.batch);
        let peer = self.endpoint.address;
        let _ = self.out.send(FromSession::Updates { peer, updates }).await;
    }

    async fn tell_speaker(&mut self, event: FromSession) {
        self.hand_over_updates().await;
        let _ = self.out.send(event).await;
    }

    async fn message(&mut self, decoded: Result<Message, bgp::DecodeError>) {
        let msg = match decoded {
            Ok(m) => m,
            Err(e) => {
                warn!(peer = %self.endpoint.address, error = %e, "malformed message");
                self.set_error(format!("received malformed message: {e}"));
                self.apply(Event::MessageError(e)).await;
                return;
            }
        };
        self.received.count(msg.message_type());
        let peer = self.endpoint.address;
        let event = match msg {
            Message::Open(o) => Event::BgpOpen(Box::new(o)),
            Message::Keepalive => Event::KeepAliveMsg,
            Message::Notification(n) => {
                info!(peer = %peer, code = n.code, subcode = n.subcode, message = n.shutdown_message().unwrap_or(""),
                    "NOTIFICATION received: {}", n.description());
                self.set_error(format!(
                    "received NOTIFICATION {}/{} {}",
                    n.code,
                    n.subcode,
                    n.description()
                ));
                Event::NotifMsg(n)
            }
            Message::Update(u) => {
                if self.fsm.state() == State::Established {
                    if !u.errors.is_empty() {
                        let n = u.errors.len() as u64;
                        self.status.modify(|s| s.update_errors += n);
                    }
                    for e in &u.errors {
                        if let Some(held) = self.error_log.allow(std::time::Instant::now()) {
                            warn!(peer = %peer, action = ?e.action, error = %e.kind, held_back = held,
                                "UPDATE error handled per RFC 7606 (at most 5 such lines a minute per peer; all in sart_bgp_update_errors_total)");
                        }
                    }
                    self.batch.push(u);
                }
                Event::UpdateMsg
            }
            Message::RouteRefresh(r) => {
                if self.fsm.state() == State::Established
                    && matches!(r.subtype, bgp::RefreshSubtype::Request)
                {
                    self.tell_speaker(FromSession::RouteRefresh {
                        peer,
                        family: r.family,
                    })
                    .await;
                }
                Event::RouteRefreshMsg
            }
        };
        self.apply(event).await;
    }

    /// Feeds the FSM and carries out its actions.
    async fn apply(&mut self, event: Event) {
        let before = self.fsm.state();
        let actions = self.fsm.handle(event);
        for a in actions {
            match a {
                Action::Connect => {
                    if self.conn.is_none() && self.connecting.is_none() {
                        let ep = self.endpoint.clone();
                        let timeout = self.fsm.config().connect_retry;
                        self.connecting = Some(tokio::spawn(async move {
                            match tokio::time::timeout(timeout, connect(&ep)).await {
                                Ok(r) => r,
                                Err(_) => Err(std::io::Error::new(
                                    std::io::ErrorKind::TimedOut,
                                    "connect timed out",
                                )),
                            }
                        }));
                    }
                }
                Action::Disconnect => {
                    if let Some(c) = self.connecting.take() {
                        c.abort();
                    }
                    if let Some(c) = self.conn.take() {
                        // What the speaker queued no longer matters. Dropping `control` lets the
                        // writer write what is left of it (a NOTIFICATION) and close, unless the
                        // peer does not read: then it is stopped, and the socket closes with it.
                        c.output.close();
                        c.written.add_to(&mut self.sent);
                        drop(c.control);
                        let writer = c.writer;
                        tokio::spawn(async move {
                            tokio::time::sleep(CLOSE_GRACE).await;
                            writer.abort();
                        });
                    }
                    self.ctx = Context::default();
                }
                Action::SendOpen(o) => self.write_message(&Message::Open(*o)),
                Action::SendKeepalive => self.write_message(&Message::Keepalive),
                Action::SendNotification(n) => {
                    self.set_error(format!(
                        "sent NOTIFICATION {}/{} {}",
                        n.code,
                        n.subcode,
                        n.description()
                    ));
                    info!(peer = %self.endpoint.address, code = n.code, subcode = n.subcode, "NOTIFICATION sent: {}", n.description());
                    self.write_message(&Message::Notification(n))
                }
                Action::StartTimer(t, d) => self.timers.start(t, d),
                Action::StopTimer(t) => self.timers.stop(t),
                Action::Established(n) => {
                    self.ctx = n.receive.clone();
                    // A new session starts with a clean record.
                    self.status.modify(|st| st.last_error = None);
                    if let Some(c) = &self.conn {
                        c.output.open(n.send.clone());
                        let (local, output) = (c.local, c.output.clone());
                        info!(peer = %self.endpoint.address, asn = n.peer_asn, id = %n.peer_id, hold = n.hold_time, "session established");
                        self.tell_speaker(FromSession::Established {
                            peer: self.endpoint.address,
                            negotiated: n,
                            local,
                            output,
                        })
                        .await;
                    }
                }
                Action::SessionDown(reason) => {
                    info!(peer = %self.endpoint.address, ?reason, "session down");
                    self.tell_speaker(FromSession::Down {
                        peer: self.endpoint.address,
                        reason,
                    })
                    .await;
                }
            }
        }
        let after = self.fsm.state();
        if before != after {
            debug!(peer = %self.endpoint.address, from = before.name(), to = after.name(), "state change");
        }
        self.publish();
    }

    fn attach(&mut self, stream: TcpStream, we_initiated: bool) {
        let local = stream
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
        match self.endpoint.ttl {
            Ttl::Default => {}
            Ttl::Fixed(ttl) => {
                let _ = stream.set_ttl(u32::from(ttl));
            }
            // Accepted connections get it here; ours had it before connecting.
            Ttl::Security => {
                if let Err(e) = sockopt::set_gtsm(stream.as_fd(), local.is_ipv6()) {
                    warn!(peer = %self.endpoint.address, error = %e, "GTSM on the connection");
                }
            }
        }
        let _ = stream.set_nodelay(true);
        let (r, w) = stream.into_split();
        let (control, control_rx) = mailbox::mailbox();
        let output = Output::new();
        let written = Arc::new(Written::default());
        let last_write = Arc::new(AtomicU64::new(now_millis()));
        let writer = tokio::spawn(write_loop(
            w,
            control_rx,
            (output.clone(), written.clone()),
            last_write.clone(),
        ));
        self.conn = Some(Box::new(Connection {
            control,
            output,
            written,
            writer,
            read: r,
            inbox: Inbox::default(),
            local,
            last_write,
            we_initiated,
        }));
    }

    /// Queues one of the session's own messages; never waits.
    fn write_message(&mut self, m: &Message) {
        // Keepalives, OPENs and NOTIFICATIONs always fit the 4096-octet limit.
        match m.encode(&self.ctx) {
            Ok(bytes) => {
                if let Some(c) = &self.conn
                    && c.control.send(Arc::new(bytes))
                {
                    self.sent.count(m.message_type());
                }
            }
            Err(e) => warn!(peer = %self.endpoint.address, error = %e, "could not encode message"),
        }
    }

    /// Records a failed connection attempt. With MD5 a wrong password is silence (the peer's
    /// kernel drops our SYNs): say so, without the key.
    fn connect_failed(&mut self, e: &dyn std::fmt::Display) {
        let hint = if self.endpoint.password.is_some() {
            " (TCP MD5 is on: a password mismatch with the peer looks like this)"
        } else {
            ""
        };
        if hint.is_empty() {
            debug!(peer = %self.endpoint.address, error = %e, "connect failed");
        } else {
            warn!(peer = %self.endpoint.address, error = %e, "connect failed{hint}");
        }
        self.set_error(format!("connect: {e}{hint}"));
    }

    fn set_error(&mut self, e: String) {
        self.status.modify(|s| s.last_error = Some(e));
    }

    fn publish(&mut self) {
        let state = self.fsm.state();
        let (mut sent, received) = (self.sent, self.received);
        if let Some(c) = &self.conn {
            c.written.add_to(&mut sent);
        }
        let fsm = &self.fsm;
        self.status.modify(|s| {
            if state == State::Established && s.state != State::Established {
                s.established_at = Some(now_millis() / 1000);
            }
            if state != State::Established {
                s.established_at = None;
            }
            // What was negotiated changes only with the state: not copied for every message.
            if s.state != state {
                s.negotiated = fsm.negotiated().cloned();
            }
            s.state = state;
            s.sent = sent;
            s.received = received;
        });
    }
}

async fn connect(ep: &Endpoint) -> std::io::Result<TcpStream> {
    let remote = SocketAddr::new(ep.address, ep.port);
    let socket = if ep.address.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    if let Some(pw) = &ep.password {
        sockopt::set_tcp_md5(
            socket.as_fd(),
            ep.address,
            ep.address.is_ipv6(),
            pw.expose(),
        )?;
    }
    if ep.ttl == Ttl::Security {
        sockopt::set_gtsm(socket.as_fd(), ep.address.is_ipv6())?;
    }
    if let Some(local) = ep.local_address {
        socket.bind(SocketAddr::new(local, 0))?;
    }
    socket.connect(remote).await
}

/// Refuses a colliding connection politely (Cease, connection collision resolution).
async fn close_with_cease(mut stream: TcpStream) {
    let n = Notification::new(
        bgp::error::code::CEASE,
        bgp::error::cease_subcode::CONNECTION_COLLISION_RESOLUTION,
    );
    if let Ok(bytes) = Message::Notification(n).encode(&Context::default()) {
        let _ = tokio::time::timeout(Duration::from_secs(1), stream.write_all(&bytes)).await;
    }
    let _ = stream.shutdown().await;
}

/// Writes the session's own messages first, then the output; gathers small messages into one
/// write; records every write that makes progress (the send hold timer's clock). Ends when the
/// session drops `control`, after writing what is left of it (a NOTIFICATION).
async fn write_loop(
    mut w: OwnedWriteHalf,
    mut control: Receiver<Arc<Vec<u8>>>,
    (output, written): (Arc<Output>, Arc<Written>),
    last_write: Arc<AtomicU64>,
) {
    let mut buf: Vec<u8> = Vec::new();
    loop {
        let mut msgs = Vec::new();
        let mut closing = control.take_all(&mut msgs);
        if !closing {
            let taken = output.take(WRITE_CHUNK);
            written.count(&taken);
            msgs.extend(taken);
        }
        if msgs.is_empty() {
            tokio::select! {
                m = control.recv() => match m {
                    Some(m) => msgs.push(m),
                    None => closing = true,
                },
                () = output.ready.notified() => continue,
            }
        }
        let batch: usize = msgs.iter().map(|m| m.len()).sum();
        buf.reserve(batch.min(WRITE_CHUNK));
        for m in &msgs {
            buf.extend_from_slice(m);
            if buf.len() >= WRITE_CHUNK && write_out(&mut w, &mut buf, &last_write).await.is_err() {
                return;
            }
        }
        if write_out(&mut w, &mut buf, &last_write).await.is_err() {
            return;
        }
        // As the reader: an idle session keeps no buffer between KEEPALIVEs.
        if batch < IDLE_IO {
            buf = Vec::new();
        }
        if closing {
            let _ = tokio::time::timeout(CLOSE_GRACE, w.shutdown()).await;
            return;
        }
    }
}

async fn write_out(
    w: &mut OwnedWriteHalf,
    buf: &mut Vec<u8>,
    last_write: &AtomicU64,
) -> std::io::Result<()> {
    let mut off = 0;
    while off < buf.len() {
        match w.write(&buf[off..]).await? {
            0 => return Err(std::io::ErrorKind::WriteZero.into()),
            n => {
                off += n;
                last_write.store(now_millis(), Ordering::Relaxed);
            }
        }
    }
    buf.clear();
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::net::Ipv4Addr;

    /// Every configured neighbour has a task, connected or not: what handling a wake-up awaits
    /// is boxed, so the task of an idle one holds the session and its wait, and little more.
    #[test]
    fn an_idle_session_task_stays_small() {
        let (out, _out) = mpsc::channel(1);
        let status = Arc::new(StatusCell::default());
        let (_tx, rx) = mailbox::mailbox();
        let endpoint = Endpoint {
            address: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: 179,
            local_address: None,
            ttl: Ttl::default(),
            router_id: None,
            password: None,
        };
        let config = SessionConfig::new(65000, Ipv4Addr::LOCALHOST, 65001);
        let task = Session::new(config, endpoint, out, status).run(rx);
        // 2,984 bytes when the handling was awaited inline; 1,728 with it and the connection
        // boxed.
        let size = std::mem::size_of_val(&task);
        assert!(size < 2048, "{size} bytes");
    }

    /// Reads one whole message from a hand-played peer's socket.
    async fn read_message(s: &mut TcpStream, buf: &mut Vec<u8>) -> Message {
        use tokio::io::AsyncReadExt;
        let ctx = Context::default();
        loop {
            if let Some(len) = Message::frame(buf, &ctx).unwrap() {
                let m = Message::decode(&buf[..len], &ctx).unwrap();
                buf.drain(..len);
                return m;
            }
            let mut chunk = [0u8; 4096];
            let n = s.read(&mut chunk).await.unwrap();
            assert!(n > 0, "closed");
            buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// UPDATEs that one read brings reach the speaker in a few hand-overs, in order, and all
    /// of them before the session's end.
    #[tokio::test]
    async fn updates_read_together_reach_the_speaker_together_and_in_order() {
        use tokio::io::AsyncWriteExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (out, mut from) = mpsc::channel(1024);
        let endpoint = Endpoint {
            address: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port,
            local_address: None,
            ttl: Ttl::default(),
            router_id: None,
            password: None,
        };
        let config = SessionConfig::new(65000, Ipv4Addr::new(198, 18, 0, 1), 65001);
        let h = spawn(config, endpoint, out);
        assert!(h.tx.send(ToSession::Start));
        let (mut s, _) = listener.accept().await.unwrap();
        let mut buf = Vec::new();
        assert!(matches!(
            read_message(&mut s, &mut buf).await,
            Message::Open(_)
        ));
        let ctx = Context::four_octet();
        let open = bgp::Open::new(65001, 90, Ipv4Addr::new(198, 18, 0, 2), Vec::new());
        let mut bytes = Message::Open(open).encode(&ctx).unwrap();
        bytes.extend(Message::Keepalive.encode(&ctx).unwrap());
        s.write_all(&bytes).await.unwrap();
        loop {
            if let Some(FromSession::Established { .. }) = from.recv().await {
                break;
            }
        }
        // 100 UPDATEs, one route each, then a NOTIFICATION: one write.
        let prefix = |i: u32| ipnet::Ipv4Net::new(Ipv4Addr::from(0x0a00_0000 + (i << 8)), 24);
        let mut bytes = Vec::new();
        for i in 0..100u32 {
            let u = Update {
                attributes: bgp::PathAttributes {
                    origin: Some(bgp::Origin::Igp),
                    as_path: Some(bgp::AsPath::sequence([65001])),
                    next_hop: Some(Ipv4Addr::new(198, 18, 0, 2)),
                    med: Some(i),
                    ..Default::default()
                },
                nlri: vec![bgp::Nlri::new(prefix(i).unwrap())],
                ..Default::default()
            };
            bytes.extend(Message::Update(u).encode(&ctx).unwrap());
        }
        let cease = bgp::Notification::new(6, 2);
        bytes.extend(Message::Notification(cease).encode(&ctx).unwrap());
        s.write_all(&bytes).await.unwrap();
        let (mut seen, mut handovers) = (Vec::new(), 0);
        loop {
            match from.recv().await {
                Some(FromSession::Updates { updates, .. }) => {
                    assert!(updates.len() <= BATCH_MESSAGES);
                    handovers += 1;
                    seen.extend(updates.into_iter().map(|u| u.nlri[0].prefix));
                }
                Some(FromSession::Down { .. }) | None => break,
                Some(_) => {}
            }
        }
        let sent: Vec<_> = (0..100).map(|i| prefix(i).unwrap()).collect();
        assert_eq!(seen, sent, "every UPDATE, in order, before the end");
        // 6 KB in one write: read at once, unless the kernel split it.
        assert!(handovers <= 8, "{handovers} hand-overs");
        h.task.abort();
    }
}
