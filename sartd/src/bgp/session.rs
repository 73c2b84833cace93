//! One task per neighbour: owns the FSM, the TCP connection and the timers, and carries out the
//! FSM's actions. Messages are framed by a reader task and written by a writer task, both bounded,
//! so a slow peer pushes back on the RIB instead of growing memory.

use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bgp::fsm::{Action, DownReason, Event, Fsm, SessionConfig, State, Timer, keep_on_collision};
use bgp::{Context, Message, MessageType, Negotiated, Notification, Update};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use super::config::Password;
use super::timers::Timers;

/// Bound of the per-connection queues (messages).
const QUEUE: usize = 256;

/// Commands to a session task.
#[derive(Debug)]
pub enum ToSession {
    Start,
    Stop(Option<String>),
    /// Close with this NOTIFICATION and restart after the idle hold time.
    Close(Notification),
    /// The listener accepted a connection from this neighbour.
    Accepted(TcpStream),
    /// Encoded messages to write, in order (shared by an update group).
    Send(Arc<Vec<u8>>),
    /// Ask the peer to resend its routes of a family (ROUTE-REFRESH, RFC 2918).
    RequestRefresh(bgp::Family),
}

/// What a session reports to the speaker.
#[derive(Debug)]
pub enum FromSession {
    Established {
        peer: IpAddr,
        negotiated: Box<Negotiated>,
        local: SocketAddr,
    },
    Update {
        peer: IpAddr,
        update: Box<Update>,
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
pub struct Counters {
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
pub struct Status {
    pub state: State,
    /// Unix seconds when the session last became Established.
    pub established_at: Option<u64>,
    pub sent: Counters,
    pub received: Counters,
    pub negotiated: Option<Negotiated>,
    pub last_error: Option<String>,
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
        }
    }
}

/// How to reach the neighbour.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub address: IpAddr,
    pub port: u16,
    pub local_address: Option<IpAddr>,
    pub ttl: Option<u8>,
    /// The neighbour's BGP identifier if configured, for collision resolution before its OPEN.
    pub router_id: Option<std::net::Ipv4Addr>,
    /// TCP MD5 key for the connections we open (the listener has it too).
    pub password: Option<Password>,
}

pub struct SessionHandle {
    pub tx: mpsc::Sender<ToSession>,
    pub status: watch::Receiver<Status>,
    pub task: JoinHandle<()>,
}

/// Starts the task of one neighbour.
pub fn spawn(
    config: SessionConfig,
    endpoint: Endpoint,
    out: mpsc::Sender<FromSession>,
) -> SessionHandle {
    let (tx, rx) = mpsc::channel(QUEUE);
    let (status_tx, status) = watch::channel(Status::default());
    let s = Session {
        fsm: Fsm::new(config),
        endpoint,
        out,
        status: status_tx,
        timers: Timers::default(),
        conn: None,
        connecting: None,
        ctx: Context::default(),
        sent: Counters::default(),
        received: Counters::default(),
    };
    let task = tokio::spawn(s.run(rx));
    SessionHandle { tx, status, task }
}

struct Connection {
    writer: mpsc::Sender<Arc<Vec<u8>>>,
    reader: JoinHandle<()>,
    inbound: mpsc::Receiver<Result<Vec<u8>, String>>,
    local: SocketAddr,
    /// Unix millis of the last completed write, for the send hold timer (RFC 9687).
    last_write: Arc<AtomicU64>,
    we_initiated: bool,
}

struct Session {
    fsm: Fsm,
    endpoint: Endpoint,
    out: mpsc::Sender<FromSession>,
    status: watch::Sender<Status>,
    timers: Timers,
    conn: Option<Connection>,
    connecting: Option<JoinHandle<()>>,
    ctx: Context,
    sent: Counters,
    received: Counters,
}

enum Wake {
    Command(Option<ToSession>),
    Timer(Timer),
    Inbound(Option<Result<Vec<u8>, String>>),
    Connected(std::io::Result<TcpStream>),
}

fn now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl Session {
    async fn run(mut self, mut rx: mpsc::Receiver<ToSession>) {
        let (conn_tx, mut conn_rx) = mpsc::channel::<std::io::Result<TcpStream>>(1);
        loop {
            let wake = {
                let next = self.timers.next();
                let sleep = async {
                    match next {
                        Some((_, at)) => tokio::time::sleep_until(at).await,
                        None => std::future::pending().await,
                    }
                };
                let inbound = async {
                    match self.conn.as_mut() {
                        Some(c) => c.inbound.recv().await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    c = rx.recv() => Wake::Command(c),
                    () = sleep => Wake::Timer(next.map_or(Timer::Hold, |(t, _)| t)),
                    m = inbound => Wake::Inbound(m),
                    Some(r) = conn_rx.recv() => Wake::Connected(r),
                }
            };
            match wake {
                Wake::Command(None) => {
                    // The speaker is gone: stop quietly.
                    self.apply(Event::ManualStop(None), &conn_tx).await;
                    return;
                }
                Wake::Command(Some(cmd)) => self.command(cmd, &conn_tx).await,
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
                            // Only expire if nothing could be written for the whole period.
                            let last = self
                                .conn
                                .as_ref()
                                .map_or(0, |c| c.last_write.load(Ordering::Relaxed));
                            let period = self
                                .fsm
                                .negotiated()
                                .map_or(480, |n| u64::from(n.hold_time) * 2)
                                .max(480);
                            if now_millis().saturating_sub(last) < period * 1000 {
                                self.timers
                                    .start(Timer::SendHold, Duration::from_secs(period));
                                continue;
                            }
                            Event::SendHoldTimerExpires
                        }
                    };
                    self.apply(event, &conn_tx).await;
                }
                Wake::Inbound(Some(Ok(raw))) => self.message(raw, &conn_tx).await,
                Wake::Inbound(other) => {
                    let e = match other {
                        Some(Err(e)) => e,
                        _ => "closed by the peer".to_string(),
                    };
                    self.set_error(format!("connection: {e}"));
                    self.apply(Event::TcpConnectionFails, &conn_tx).await;
                }
                Wake::Connected(r) => {
                    self.connecting = None;
                    match r {
                        Ok(stream)
                            if matches!(self.fsm.state(), State::Connect | State::Active)
                                && self.conn.is_none() =>
                        {
                            self.attach(stream, true);
                            self.apply(Event::TcpCrAcked, &conn_tx).await;
                        }
                        Ok(_) => {} // Lost the race to an inbound connection.
                        Err(e) => {
                            self.connect_failed(&e);
                            self.apply(Event::TcpConnectionFails, &conn_tx).await;
                        }
                    }
                }
            }
        }
    }

    async fn command(
        &mut self,
        cmd: ToSession,
        conn_tx: &mpsc::Sender<std::io::Result<TcpStream>>,
    ) {
        match cmd {
            ToSession::Start => self.apply(Event::ManualStart, conn_tx).await,
            ToSession::Stop(msg) => self.apply(Event::ManualStop(msg), conn_tx).await,
            ToSession::Close(n) => self.apply(Event::AutomaticStop(n), conn_tx).await,
            ToSession::Send(bytes) => {
                if self.fsm.state() == State::Established {
                    // Mostly UPDATEs; route refresh markers too. The type octet says which.
                    let t = bytes
                        .get(18)
                        .and_then(|b| MessageType::from_u8(*b))
                        .unwrap_or(MessageType::Update);
                    self.write(bytes, t).await;
                }
            }
            ToSession::RequestRefresh(family) => {
                if self.fsm.state() == State::Established {
                    self.write_message(&Message::RouteRefresh(bgp::RouteRefresh::request(family)))
                        .await;
                }
            }
            ToSession::Accepted(stream) => self.accepted(stream, conn_tx).await,
        }
    }

    /// An inbound connection: adopt it, or resolve the collision with the one we have (§6.8).
    async fn accepted(
        &mut self,
        stream: TcpStream,
        conn_tx: &mpsc::Sender<std::io::Result<TcpStream>>,
    ) {
        let state = self.fsm.state();
        match state {
            State::Idle if self.fsm.admin_down() => {
                // Stopped by the operator: refuse.
                drop(stream);
            }
            State::Idle => {
                // Waiting to restart after a failure: the peer is back first, take its connection.
                self.apply(Event::AutomaticStart, conn_tx).await;
                if let Some(c) = self.connecting.take() {
                    c.abort();
                }
                self.attach(stream, false);
                self.apply(Event::TcpConnectionConfirmed, conn_tx).await;
            }
            State::Connect | State::Active => {
                if let Some(c) = self.connecting.take() {
                    c.abort();
                }
                self.attach(stream, false);
                self.apply(Event::TcpConnectionConfirmed, conn_tx).await;
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
                    self.apply(Event::OpenCollisionDump, conn_tx).await;
                    self.apply(Event::AutomaticStart, conn_tx).await;
                    if let Some(c) = self.connecting.take() {
                        c.abort();
                    }
                    self.attach(stream, false);
                    self.apply(Event::TcpConnectionConfirmed, conn_tx).await;
                }
            }
        }
    }

    async fn message(&mut self, raw: Vec<u8>, conn_tx: &mpsc::Sender<std::io::Result<TcpStream>>) {
        let msg = match Message::decode(&raw, &self.ctx) {
            Ok(m) => m,
            Err(e) => {
                warn!(peer = %self.endpoint.address, error = %e, "malformed message");
                self.set_error(format!("received malformed message: {e}"));
                self.apply(Event::MessageError(e), conn_tx).await;
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
                    for e in &u.errors {
                        warn!(peer = %peer, action = ?e.action, error = %e.kind, "UPDATE error handled per RFC 7606");
                    }
                    if self
                        .out
                        .send(FromSession::Update {
                            peer,
                            update: Box::new(u),
                        })
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
                Event::UpdateMsg
            }
            Message::RouteRefresh(r) => {
                if self.fsm.state() == State::Established
                    && matches!(r.subtype, bgp::RefreshSubtype::Request)
                {
                    let _ = self
                        .out
                        .send(FromSession::RouteRefresh {
                            peer,
                            family: r.family,
                        })
                        .await;
                }
                Event::RouteRefreshMsg
            }
        };
        self.apply(event, conn_tx).await;
    }

    /// Feeds the FSM and carries out its actions.
    async fn apply(&mut self, event: Event, conn_tx: &mpsc::Sender<std::io::Result<TcpStream>>) {
        let before = self.fsm.state();
        let actions = self.fsm.handle(event);
        for a in actions {
            match a {
                Action::Connect => {
                    if self.conn.is_none() && self.connecting.is_none() {
                        let ep = self.endpoint.clone();
                        let timeout = self.fsm.config().connect_retry;
                        let tx = conn_tx.clone();
                        self.connecting = Some(tokio::spawn(async move {
                            let r = match tokio::time::timeout(timeout, connect(&ep)).await {
                                Ok(r) => r,
                                Err(_) => Err(std::io::Error::new(
                                    std::io::ErrorKind::TimedOut,
                                    "connect timed out",
                                )),
                            };
                            let _ = tx.send(r).await;
                        }));
                    }
                }
                Action::Disconnect => {
                    if let Some(c) = self.connecting.take() {
                        c.abort();
                    }
                    if let Some(c) = self.conn.take() {
                        // Dropping the writer's sender lets it flush what is queued (a NOTIFICATION)
                        // and close; the reader stops with the socket.
                        c.reader.abort();
                    }
                    self.ctx = Context::default();
                }
                Action::SendOpen(o) => self.write_message(&Message::Open(*o)).await,
                Action::SendKeepalive => self.write_message(&Message::Keepalive).await,
                Action::SendNotification(n) => {
                    self.set_error(format!(
                        "sent NOTIFICATION {}/{} {}",
                        n.code,
                        n.subcode,
                        n.description()
                    ));
                    info!(peer = %self.endpoint.address, code = n.code, subcode = n.subcode, "NOTIFICATION sent: {}", n.description());
                    self.write_message(&Message::Notification(n)).await
                }
                Action::StartTimer(t, d) => self.timers.start(t, d),
                Action::StopTimer(t) => self.timers.stop(t),
                Action::Established(n) => {
                    self.ctx = n.receive.clone();
                    let local = self.conn.as_ref().map(|c| c.local);
                    // A new session starts with a clean record.
                    self.status.send_modify(|st| st.last_error = None);
                    if let Some(local) = local {
                        info!(peer = %self.endpoint.address, asn = n.peer_asn, id = %n.peer_id, hold = n.hold_time, "session established");
                        let _ = self
                            .out
                            .send(FromSession::Established {
                                peer: self.endpoint.address,
                                negotiated: n,
                                local,
                            })
                            .await;
                    }
                }
                Action::SessionDown(reason) => {
                    info!(peer = %self.endpoint.address, ?reason, "session down");
                    let _ = self
                        .out
                        .send(FromSession::Down {
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
        if let Some(ttl) = self.endpoint.ttl {
            let _ = stream.set_ttl(u32::from(ttl));
        }
        let _ = stream.set_nodelay(true);
        let (r, w) = stream.into_split();
        let (in_tx, inbound) = mpsc::channel(QUEUE);
        let (writer, w_rx) = mpsc::channel(QUEUE);
        let last_write = Arc::new(AtomicU64::new(now_millis()));
        tokio::spawn(write_loop(w, w_rx, last_write.clone()));
        let reader = tokio::spawn(read_loop(r, in_tx));
        self.conn = Some(Connection {
            writer,
            reader,
            inbound,
            local,
            last_write,
            we_initiated,
        });
    }

    async fn write_message(&mut self, m: &Message) {
        // Keepalives, OPENs and NOTIFICATIONs always fit the 4096-octet limit.
        match m.encode(&self.ctx) {
            Ok(bytes) => self.write(Arc::new(bytes), m.message_type()).await,
            Err(e) => warn!(peer = %self.endpoint.address, error = %e, "could not encode message"),
        }
    }

    async fn write(&mut self, bytes: Arc<Vec<u8>>, t: MessageType) {
        if let Some(c) = &self.conn
            && c.writer.send(bytes).await.is_ok()
        {
            self.sent.count(t);
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
        self.status.send_modify(|s| s.last_error = Some(e));
    }

    fn publish(&mut self) {
        let state = self.fsm.state();
        let negotiated = self.fsm.negotiated().cloned();
        let (sent, received) = (self.sent, self.received);
        self.status.send_modify(|s| {
            if state == State::Established && s.state != State::Established {
                s.established_at = Some(now_millis() / 1000);
            }
            if state != State::Established {
                s.established_at = None;
            }
            s.state = state;
            s.negotiated = negotiated;
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

/// Splits the byte stream into messages. Framing errors end the connection: the session layer
/// sees them as a malformed message first.
async fn read_loop(mut r: OwnedReadHalf, tx: mpsc::Sender<Result<Vec<u8>, String>>) {
    // Frame with the largest limit; the session decodes with the negotiated one.
    let frame_ctx = Context {
        extended_message: true,
        ..Context::default()
    };
    let mut buf: Vec<u8> = Vec::with_capacity(64 * 1024);
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        loop {
            match Message::frame(&buf, &frame_ctx) {
                Ok(Some(len)) => {
                    let rest = buf.split_off(len);
                    let msg = std::mem::replace(&mut buf, rest);
                    if tx.send(Ok(msg)).await.is_err() {
                        return;
                    }
                }
                Ok(None) => break,
                Err(_) => {
                    // Hand the broken bytes over: decoding them yields the right NOTIFICATION.
                    let msg = std::mem::take(&mut buf);
                    let _ = tx.send(Ok(msg)).await;
                    return;
                }
            }
        }
        match r.read(&mut chunk).await {
            Ok(0) => {
                let _ = tx.send(Err("closed by the peer".into())).await;
                return;
            }
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) => {
                let _ = tx.send(Err(e.to_string())).await;
                return;
            }
        }
    }
}

async fn write_loop(
    mut w: OwnedWriteHalf,
    mut rx: mpsc::Receiver<Arc<Vec<u8>>>,
    last_write: Arc<AtomicU64>,
) {
    while let Some(bytes) = rx.recv().await {
        if w.write_all(&bytes).await.is_err() {
            return;
        }
        last_write.store(now_millis(), Ordering::Relaxed);
    }
    // Sender dropped (Disconnect): everything queued is written; close our side.
    let _ = tokio::time::timeout(Duration::from_secs(1), w.shutdown()).await;
}
