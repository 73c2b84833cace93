//! The BGP session finite state machine (RFC 4271 §8), as a pure function of (state, event).
//!
//! One `Fsm` drives one TCP connection attempt to one peer. The I/O shell feeds it [`Event`]s —
//! timers firing, the connection coming up or failing, decoded messages — and carries out the
//! [`Action`]s it returns: connect, send, start or stop a timer, report the session up or down.
//! Nothing here touches a socket or a clock.
//!
//! Beyond RFC 4271: the send hold timer (RFC 9687), BGP role checks (RFC 9234), idle-hold backoff
//! for automatic restarts (RFC 4271 §8.1.1 "DampPeerOscillations"), and connection collision
//! resolution (§6.8) as a pure helper for the shell, which owns both connections.

use std::net::Ipv4Addr;
use std::time::Duration;

use crate::capability::{Capability, Role};
use crate::context::{Negotiated, negotiate};
use crate::error::{DecodeError, cease_subcode, code, fsm_subcode, open_subcode};
use crate::notification::Notification;
use crate::open::Open;

/// RFC 4271 §8.2.2 states. The numbers are those of the `sart.v1` API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    Idle,
    Connect,
    Active,
    OpenSent,
    OpenConfirm,
    Established,
}

impl State {
    pub fn name(self) -> &'static str {
        match self {
            State::Idle => "Idle",
            State::Connect => "Connect",
            State::Active => "Active",
            State::OpenSent => "OpenSent",
            State::OpenConfirm => "OpenConfirm",
            State::Established => "Established",
        }
    }

    /// `sart.v1.Peer.State` numbering.
    pub fn api_number(self) -> i32 {
        match self {
            State::Idle => 1,
            State::Connect => 2,
            State::Active => 3,
            State::OpenSent => 4,
            State::OpenConfirm => 5,
            State::Established => 6,
        }
    }
}

/// The timers of one session (RFC 4271 §8.1.3, RFC 9687).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Timer {
    ConnectRetry,
    Hold,
    Keepalive,
    /// Automatic restart after a failure, with backoff.
    IdleHold,
    /// RFC 9687: how long we tolerate being unable to send.
    SendHold,
}

/// RFC 4271 §8.1 events by name (administrative, timer, TCP and message events).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Event 1.
    ManualStart,
    /// Event 2, with an optional shutdown communication (RFC 9003).
    ManualStop(Option<String>),
    /// Event 3: restart after the idle hold timer, or at daemon start.
    AutomaticStart,
    /// Event 8: the speaker closes the session with this NOTIFICATION (e.g. Cease / maximum
    /// number of prefixes reached) and restarts it as [`Restart`] says.
    AutomaticStop(Notification, Restart),
    /// Event 9.
    ConnectRetryTimerExpires,
    /// Event 10.
    HoldTimerExpires,
    /// Event 11.
    KeepaliveTimerExpires,
    /// Event 13.
    IdleHoldTimerExpires,
    /// RFC 9687.
    SendHoldTimerExpires,
    /// Event 16: our outgoing connection is up.
    TcpCrAcked,
    /// Event 17: we accepted the peer's connection.
    TcpConnectionConfirmed,
    /// Event 18.
    TcpConnectionFails,
    /// Event 19.
    BgpOpen(Box<Open>),
    /// Events 21, 22 and 28: a message that does not decode. The error says which NOTIFICATION.
    MessageError(DecodeError),
    /// Event 23: the shell resolved a collision against this connection.
    OpenCollisionDump,
    /// Event 25.
    NotifMsg(Notification),
    /// Event 26.
    KeepAliveMsg,
    /// Event 27: the shell hands the UPDATE itself to the RIB.
    UpdateMsg,
    /// RFC 2918; the shell answers it.
    RouteRefreshMsg,
}

/// When a session closed by [`Event::AutomaticStop`] starts again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Restart {
    /// After the idle hold time, as after any failure.
    IdleHold,
    /// After this long; connections from the peer are refused meanwhile.
    After(Duration),
    /// Only on ManualStart (an operator's reset); connections from the peer are refused.
    Never,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Open a TCP connection to the peer (not for passive peers).
    Connect,
    /// Close the TCP connection.
    Disconnect,
    SendOpen(Box<Open>),
    SendKeepalive,
    SendNotification(Notification),
    StartTimer(Timer, Duration),
    StopTimer(Timer),
    /// The session is up: announce the RIB (with End-of-RIB) and accept UPDATEs.
    Established(Box<Negotiated>),
    /// The session left Established: withdraw the peer's routes (or mark them stale for GR).
    SessionDown(DownReason),
}

/// Why an established session ended, for logs, metrics and the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DownReason {
    Stopped,
    HoldTimerExpired,
    SendHoldTimerExpired,
    ConnectionLost,
    /// We sent this NOTIFICATION.
    Sent(Notification),
    /// The peer sent this NOTIFICATION.
    Received(Notification),
}

/// What the session needs to know about both ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionConfig {
    pub local_asn: u32,
    pub local_id: Ipv4Addr,
    /// The AS the peer must announce (RFC 4271 §6.2 Bad Peer AS).
    pub peer_asn: u32,
    /// Proposed hold time; 0 turns keepalives and the hold timer off. RFC 4271 §10 suggests 90.
    pub hold_time: u16,
    /// Keepalive interval; `None` means a third of the negotiated hold time.
    pub keepalive_time: Option<u16>,
    /// Time between connection attempts while Connect/Active.
    pub connect_retry: Duration,
    /// Never initiate a connection; wait for the peer's.
    pub passive: bool,
    /// Capabilities to send (4-octet AS is always added).
    pub capabilities: Vec<Capability>,
    /// RFC 9234 local role, and whether the peer must announce its own.
    pub role: Option<Role>,
    pub strict_role: bool,
    /// First idle-hold delay after a failure; doubles per consecutive failure up to `idle_hold_max`.
    pub idle_hold_base: Duration,
    pub idle_hold_max: Duration,
    /// RFC 9687 send hold time: how long the peer may stop reading before the session is
    /// dropped. `None`: the RFC's default, twice the hold time and at least 8 minutes.
    pub send_hold_time: Option<Duration>,
}

impl SessionConfig {
    pub fn new(local_asn: u32, local_id: Ipv4Addr, peer_asn: u32) -> Self {
        SessionConfig {
            local_asn,
            local_id,
            peer_asn,
            hold_time: 90,
            keepalive_time: None,
            connect_retry: Duration::from_secs(5),
            passive: false,
            capabilities: Vec::new(),
            role: None,
            strict_role: false,
            idle_hold_base: Duration::from_secs(1),
            idle_hold_max: Duration::from_secs(60),
            send_hold_time: None,
        }
    }

    /// The keepalive interval for a session that negotiated hold time `hold` (non-zero): the
    /// configured one if the hold time allows it, else a third of the hold time.
    pub fn keepalive_interval(&self, hold: u16) -> Duration {
        let k = match self.keepalive_time {
            Some(k) if k > 0 && k <= hold / 3 => k,
            _ => (hold / 3).max(1),
        };
        Duration::from_secs(k.into())
    }

    /// The send hold time for a session that negotiated hold time `hold` (RFC 9687 §3).
    pub fn send_hold(&self, hold: u16) -> Duration {
        self.send_hold_time
            .unwrap_or_else(|| Duration::from_secs(u64::from(hold) * 2).max(SEND_HOLD_MIN))
    }

    fn open(&self) -> Open {
        let mut caps = self.capabilities.clone();
        if let Some(r) = self.role {
            caps.retain(|c| !matches!(c, Capability::Role(_)));
            caps.push(Capability::Role(r));
        }
        Open::new(self.local_asn, self.hold_time, self.local_id, caps)
    }
}

/// RFC 4271 §8: "a large value" for the hold timer while waiting for the peer's OPEN.
pub const OPEN_HOLD_TIME: Duration = Duration::from_secs(240);

/// RFC 9687 §3: the default send hold time is at least 8 minutes.
const SEND_HOLD_MIN: Duration = Duration::from_secs(480);

#[derive(Debug, Clone)]
pub struct Fsm {
    config: SessionConfig,
    state: State,
    /// RFC 4271 §8.1.2 ConnectRetryCounter: consecutive failures, drives the idle-hold backoff.
    connect_retry_counter: u32,
    /// Whether to restart by itself after a failure (false after ManualStop).
    auto_restart: bool,
    /// Held down by [`Restart::After`]: the idle hold timer, when it fires, starts again.
    restart_pending: bool,
    negotiated: Option<Negotiated>,
}

impl Fsm {
    pub fn new(config: SessionConfig) -> Self {
        Fsm {
            config,
            state: State::Idle,
            connect_retry_counter: 0,
            auto_restart: false,
            restart_pending: false,
            negotiated: None,
        }
    }

    pub fn state(&self) -> State {
        self.state
    }

    pub fn config(&self) -> &SessionConfig {
        &self.config
    }

    /// What the OPEN exchange agreed, once past OpenSent.
    pub fn negotiated(&self) -> Option<&Negotiated> {
        self.negotiated.as_ref()
    }

    /// Stopped by the operator (ManualStop): no automatic restart, incoming connections refused.
    pub fn admin_down(&self) -> bool {
        !self.auto_restart
    }

    pub fn connect_retry_counter(&self) -> u32 {
        self.connect_retry_counter
    }

    /// The idle-hold delay for the current failure count (exponential backoff).
    pub fn idle_hold_delay(&self) -> Duration {
        let exp = self.connect_retry_counter.saturating_sub(1).min(16);
        self.config
            .idle_hold_base
            .saturating_mul(1u32 << exp)
            .min(self.config.idle_hold_max)
    }

    /// Feeds one event and returns what to do, in order.
    pub fn handle(&mut self, event: Event) -> Vec<Action> {
        let mut a = Vec::new();
        match (self.state, event) {
            // --- administrative events, any state -------------------------------------------
            (State::Idle, Event::ManualStart | Event::AutomaticStart) => {
                self.auto_restart = true;
                self.start(&mut a);
            }
            (State::Idle, Event::IdleHoldTimerExpires) => {
                // A late timer after ManualStop must not bring the session back.
                if self.auto_restart || self.restart_pending {
                    self.auto_restart = true;
                    self.restart_pending = false;
                    self.start(&mut a);
                }
            }
            (State::Idle, Event::ManualStop(_)) => {
                self.auto_restart = false;
                self.restart_pending = false;
                self.connect_retry_counter = 0;
                a.push(Action::StopTimer(Timer::IdleHold));
            }
            (State::Idle, _) => {}
            (_, Event::ManualStop(msg)) => {
                self.auto_restart = false;
                self.restart_pending = false;
                self.connect_retry_counter = 0;
                if matches!(
                    self.state,
                    State::OpenSent | State::OpenConfirm | State::Established
                ) {
                    let n = msg
                        .as_deref()
                        .and_then(|m| Notification::shutdown(m, false).ok())
                        .unwrap_or_else(|| {
                            Notification::new(code::CEASE, cease_subcode::ADMINISTRATIVE_SHUTDOWN)
                        });
                    a.push(Action::SendNotification(n));
                }
                self.go_idle(&mut a, DownReason::Stopped, false);
            }
            (_, Event::ManualStart | Event::AutomaticStart | Event::IdleHoldTimerExpires) => {}
            (_, Event::AutomaticStop(n, restart)) => {
                if matches!(
                    self.state,
                    State::OpenSent | State::OpenConfirm | State::Established
                ) {
                    a.push(Action::SendNotification(n.clone()));
                }
                self.connect_retry_counter += 1;
                match restart {
                    Restart::IdleHold => self.go_idle(&mut a, DownReason::Sent(n), true),
                    Restart::After(d) => {
                        self.go_idle(&mut a, DownReason::Sent(n), false);
                        self.auto_restart = false;
                        self.restart_pending = true;
                        a.push(Action::StartTimer(Timer::IdleHold, d));
                    }
                    Restart::Never => {
                        self.go_idle(&mut a, DownReason::Sent(n), false);
                        self.auto_restart = false;
                    }
                }
            }

            // --- Connect and Active (§8.2.2) ------------------------------------------------
            (State::Connect | State::Active, Event::ConnectRetryTimerExpires) => {
                a.push(Action::Disconnect);
                a.push(Action::StartTimer(
                    Timer::ConnectRetry,
                    self.config.connect_retry,
                ));
                if self.config.passive {
                    self.state = State::Active;
                } else {
                    a.push(Action::Connect);
                    self.state = State::Connect;
                }
            }
            (State::Connect | State::Active, Event::TcpCrAcked | Event::TcpConnectionConfirmed) => {
                a.push(Action::StopTimer(Timer::ConnectRetry));
                a.push(Action::SendOpen(Box::new(self.config.open())));
                a.push(Action::StartTimer(Timer::Hold, OPEN_HOLD_TIME));
                self.state = State::OpenSent;
            }
            (State::Connect | State::Active, Event::TcpConnectionFails) => {
                // RFC 4271 goes Idle here; like FRR and BIRD we keep listening in Active and retry
                // when the ConnectRetry timer fires, so a peer that connects to us is not refused.
                a.push(Action::Disconnect);
                if self.state == State::Connect {
                    a.push(Action::StartTimer(
                        Timer::ConnectRetry,
                        self.config.connect_retry,
                    ));
                }
                self.state = State::Active;
            }
            (State::Connect | State::Active, _) => {
                self.connect_retry_counter += 1;
                self.go_idle(&mut a, DownReason::ConnectionLost, true);
            }

            // --- OpenSent ---------------------------------------------------------------------
            (State::OpenSent, Event::BgpOpen(open)) => match self.check_open(&open) {
                Ok(n) => {
                    let hold = n.hold_time;
                    a.push(Action::SendKeepalive);
                    if hold > 0 {
                        a.push(Action::StartTimer(
                            Timer::Keepalive,
                            self.keepalive_interval(hold),
                        ));
                        a.push(Action::StartTimer(
                            Timer::Hold,
                            Duration::from_secs(hold.into()),
                        ));
                    } else {
                        a.push(Action::StopTimer(Timer::Hold));
                    }
                    self.negotiated = Some(n);
                    self.state = State::OpenConfirm;
                }
                Err(n) => self.fail_with(&mut a, n),
            },
            (State::OpenSent, Event::TcpConnectionFails) => {
                // §8.2.2: back to Active and keep listening.
                a.push(Action::Disconnect);
                a.push(Action::StopTimer(Timer::Hold));
                a.push(Action::StartTimer(
                    Timer::ConnectRetry,
                    self.config.connect_retry,
                ));
                self.state = State::Active;
            }

            // --- OpenConfirm ------------------------------------------------------------------
            (State::OpenConfirm, Event::KeepaliveTimerExpires) => {
                a.push(Action::SendKeepalive);
                self.restart_keepalive(&mut a);
            }
            (State::OpenConfirm, Event::KeepAliveMsg) => {
                self.connect_retry_counter = 0;
                if let Some(n) = &self.negotiated {
                    if n.hold_time > 0 {
                        a.push(Action::StartTimer(
                            Timer::Hold,
                            Duration::from_secs(n.hold_time.into()),
                        ));
                        a.push(Action::StartTimer(
                            Timer::SendHold,
                            self.config.send_hold(n.hold_time),
                        ));
                    }
                    a.push(Action::Established(Box::new(n.clone())));
                }
                self.state = State::Established;
            }

            // --- Established ------------------------------------------------------------------
            (State::Established, Event::KeepaliveTimerExpires) => {
                a.push(Action::SendKeepalive);
                self.restart_keepalive(&mut a);
            }
            (
                State::Established,
                Event::KeepAliveMsg | Event::UpdateMsg | Event::RouteRefreshMsg,
            ) => {
                self.restart_hold(&mut a);
            }

            // --- shared by OpenSent, OpenConfirm and Established ------------------------------
            (_, Event::HoldTimerExpires) => {
                let n = Notification::new(code::HOLD_TIMER_EXPIRED, 0);
                a.push(Action::SendNotification(n));
                self.connect_retry_counter += 1;
                self.go_idle(&mut a, DownReason::HoldTimerExpired, true);
            }
            (_, Event::SendHoldTimerExpires) => {
                // RFC 9687 §4: try to send the NOTIFICATION (code 8), but do not wait for it.
                a.push(Action::SendNotification(Notification::new(
                    code::SEND_HOLD_TIMER_EXPIRED,
                    0,
                )));
                self.connect_retry_counter += 1;
                self.go_idle(&mut a, DownReason::SendHoldTimerExpired, true);
            }
            (_, Event::MessageError(e)) => self.fail_with(&mut a, e.notification()),
            (_, Event::OpenCollisionDump) => {
                let n =
                    Notification::new(code::CEASE, cease_subcode::CONNECTION_COLLISION_RESOLUTION);
                a.push(Action::SendNotification(n.clone()));
                self.go_idle(&mut a, DownReason::Sent(n), true);
            }
            (_, Event::NotifMsg(n)) => {
                // A NOTIFICATION about our version (2/1) does not count as a failure (§8.2.2 event 24).
                if !(n.code == code::OPEN_MESSAGE && n.subcode == open_subcode::UNSUPPORTED_VERSION)
                {
                    self.connect_retry_counter += 1;
                }
                self.go_idle(&mut a, DownReason::Received(n), true);
            }
            (_, Event::TcpConnectionFails) => {
                self.connect_retry_counter += 1;
                self.go_idle(&mut a, DownReason::ConnectionLost, true);
            }
            (state, _) => {
                // Anything else is an FSM error (RFC 6608 subcodes say where it happened).
                let sub = match state {
                    State::OpenSent => fsm_subcode::UNEXPECTED_IN_OPEN_SENT,
                    State::OpenConfirm => fsm_subcode::UNEXPECTED_IN_OPEN_CONFIRM,
                    State::Established => fsm_subcode::UNEXPECTED_IN_ESTABLISHED,
                    _ => fsm_subcode::UNSPECIFIED,
                };
                self.fail_with(&mut a, Notification::new(code::FSM, sub));
            }
        }
        a
    }

    fn start(&mut self, a: &mut Vec<Action>) {
        a.push(Action::StopTimer(Timer::IdleHold));
        a.push(Action::StartTimer(
            Timer::ConnectRetry,
            self.config.connect_retry,
        ));
        if self.config.passive {
            self.state = State::Active;
        } else {
            a.push(Action::Connect);
            self.state = State::Connect;
        }
    }

    /// Sends `n`, counts a failure and goes Idle.
    fn fail_with(&mut self, a: &mut Vec<Action>, n: Notification) {
        a.push(Action::SendNotification(n.clone()));
        self.connect_retry_counter += 1;
        self.go_idle(a, DownReason::Sent(n), true);
    }

    /// Releases everything; reports SessionDown if we were Established; schedules the automatic
    /// restart when allowed.
    fn go_idle(&mut self, a: &mut Vec<Action>, reason: DownReason, restart: bool) {
        let was_established = self.state == State::Established;
        a.push(Action::Disconnect);
        for t in [
            Timer::ConnectRetry,
            Timer::Hold,
            Timer::Keepalive,
            Timer::SendHold,
        ] {
            a.push(Action::StopTimer(t));
        }
        if was_established {
            a.push(Action::SessionDown(reason));
        }
        self.negotiated = None;
        self.state = State::Idle;
        if restart && self.auto_restart {
            a.push(Action::StartTimer(Timer::IdleHold, self.idle_hold_delay()));
        }
    }

    fn keepalive_interval(&self, hold: u16) -> Duration {
        self.config.keepalive_interval(hold)
    }

    fn restart_keepalive(&self, a: &mut Vec<Action>) {
        if let Some(n) = &self.negotiated
            && n.hold_time > 0
        {
            a.push(Action::StartTimer(
                Timer::Keepalive,
                self.keepalive_interval(n.hold_time),
            ));
        }
    }

    fn restart_hold(&self, a: &mut Vec<Action>) {
        if let Some(n) = &self.negotiated
            && n.hold_time > 0
        {
            a.push(Action::StartTimer(
                Timer::Hold,
                Duration::from_secs(n.hold_time.into()),
            ));
        }
    }

    /// RFC 4271 §6.2 OPEN checks that need the configuration, then capability negotiation.
    fn check_open(&self, open: &Open) -> Result<Negotiated, Notification> {
        let err = |sub: u8, data: Vec<u8>| Notification {
            code: code::OPEN_MESSAGE,
            subcode: sub,
            data,
        };
        if open.asn() != self.config.peer_asn {
            return Err(err(
                open_subcode::BAD_PEER_AS,
                open.my_as.to_be_bytes().to_vec(),
            ));
        }
        // RFC 6286 §2.2: identifiers must differ within an AS.
        if open.asn() == self.config.local_asn && open.bgp_id == self.config.local_id {
            return Err(err(open_subcode::BAD_BGP_IDENTIFIER, Vec::new()));
        }
        if let Some(local) = self.config.role {
            let theirs = open.capabilities.iter().find_map(|c| match c {
                Capability::Role(r) => Some(*r),
                _ => None,
            });
            match theirs {
                Some(r) if Some(r) != local.expected_peer_role() => {
                    return Err(err(open_subcode::ROLE_MISMATCH, Vec::new()));
                }
                None if self.config.strict_role => {
                    return Err(err(open_subcode::ROLE_MISMATCH, Vec::new()));
                }
                _ => {}
            }
        }
        Ok(negotiate(&self.config.open(), open))
    }
}

/// RFC 4271 §6.8 collision resolution: of two connections with the same peer, keep the one
/// initiated by the speaker with the higher BGP identifier. Returns true when the connection
/// `we_initiated` (or not) must be kept.
pub fn keep_on_collision(local_id: Ipv4Addr, remote_id: Ipv4Addr, we_initiated: bool) -> bool {
    if u32::from(local_id) > u32::from(remote_id) {
        we_initiated
    } else {
        !we_initiated
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> SessionConfig {
        SessionConfig::new(65001, Ipv4Addr::new(198, 18, 0, 1), 65002)
    }

    fn peer_open(asn: u32, hold: u16) -> Box<Open> {
        Box::new(Open::new(
            asn,
            hold,
            Ipv4Addr::new(198, 18, 0, 2),
            vec![Capability::RouteRefresh],
        ))
    }

    fn established(fsm: &mut Fsm) -> Vec<Action> {
        fsm.handle(Event::ManualStart);
        fsm.handle(Event::TcpCrAcked);
        fsm.handle(Event::BgpOpen(peer_open(65002, 30)));
        fsm.handle(Event::KeepAliveMsg)
    }

    #[test]
    fn active_open_reaches_established() {
        let mut f = Fsm::new(cfg());
        let a = f.handle(Event::ManualStart);
        assert!(a.contains(&Action::Connect));
        assert_eq!(f.state(), State::Connect);
        let a = f.handle(Event::TcpCrAcked);
        assert!(matches!(a[1], Action::SendOpen(_)));
        assert!(a.contains(&Action::StartTimer(Timer::Hold, OPEN_HOLD_TIME)));
        let a = f.handle(Event::BgpOpen(peer_open(65002, 30)));
        assert_eq!(f.state(), State::OpenConfirm);
        // Hold min(90, 30) = 30, keepalive 10.
        assert!(a.contains(&Action::StartTimer(
            Timer::Keepalive,
            Duration::from_secs(10)
        )));
        assert!(a.contains(&Action::StartTimer(Timer::Hold, Duration::from_secs(30))));
        let a = f.handle(Event::KeepAliveMsg);
        assert_eq!(f.state(), State::Established);
        assert!(
            a.iter()
                .any(|x| matches!(x, Action::Established(n) if n.hold_time == 30))
        );
        assert!(a.contains(&Action::StartTimer(
            Timer::SendHold,
            Duration::from_secs(480)
        )));
    }

    #[test]
    fn send_hold_time_is_configurable() {
        let c = cfg();
        // RFC 9687 default: twice the hold time, at least 8 minutes.
        assert_eq!(c.send_hold(30), Duration::from_secs(480));
        assert_eq!(c.send_hold(600), Duration::from_secs(1200));
        let mut f = Fsm::new(SessionConfig {
            send_hold_time: Some(Duration::from_secs(20)),
            ..cfg()
        });
        let a = established(&mut f);
        assert!(a.contains(&Action::StartTimer(
            Timer::SendHold,
            Duration::from_secs(20)
        )));
        let a = f.handle(Event::SendHoldTimerExpires);
        assert_eq!(f.state(), State::Idle);
        assert!(a.contains(&Action::SendNotification(Notification::new(
            code::SEND_HOLD_TIMER_EXPIRED,
            0
        ))));
        assert!(a.contains(&Action::SessionDown(DownReason::SendHoldTimerExpired)));
    }

    #[test]
    fn passive_peer_never_connects() {
        let mut f = Fsm::new(SessionConfig {
            passive: true,
            ..cfg()
        });
        let a = f.handle(Event::ManualStart);
        assert!(!a.contains(&Action::Connect));
        assert_eq!(f.state(), State::Active);
        let a = f.handle(Event::ConnectRetryTimerExpires);
        assert!(!a.contains(&Action::Connect));
        f.handle(Event::TcpConnectionConfirmed);
        assert_eq!(f.state(), State::OpenSent);
    }

    #[test]
    fn wrong_peer_as_is_refused_with_bad_peer_as() {
        let mut f = Fsm::new(cfg());
        f.handle(Event::ManualStart);
        f.handle(Event::TcpCrAcked);
        let a = f.handle(Event::BgpOpen(peer_open(65099, 90)));
        assert_eq!(f.state(), State::Idle);
        let n = a
            .iter()
            .find_map(|x| match x {
                Action::SendNotification(n) => Some(n),
                _ => None,
            })
            .unwrap();
        assert_eq!((n.code, n.subcode), (2, 2));
        assert!(
            a.iter()
                .any(|x| matches!(x, Action::StartTimer(Timer::IdleHold, _)))
        );
    }

    #[test]
    fn same_identifier_in_ibgp_is_refused() {
        let mut f = Fsm::new(SessionConfig::new(
            65001,
            Ipv4Addr::new(198, 18, 0, 2),
            65001,
        ));
        f.handle(Event::ManualStart);
        f.handle(Event::TcpCrAcked);
        let a = f.handle(Event::BgpOpen(peer_open(65001, 90)));
        assert!(a.contains(&Action::SendNotification(Notification::new(2, 3))));
    }

    #[test]
    fn role_mismatch() {
        let mut f = Fsm::new(SessionConfig {
            role: Some(Role::Customer),
            ..cfg()
        });
        f.handle(Event::ManualStart);
        f.handle(Event::TcpCrAcked);
        let mut o = peer_open(65002, 90);
        o.capabilities.push(Capability::Role(Role::Customer));
        let a = f.handle(Event::BgpOpen(o));
        assert!(a.contains(&Action::SendNotification(Notification::new(2, 11))));
    }

    #[test]
    fn hold_timer_expiry_tears_down_and_schedules_restart() {
        let mut f = Fsm::new(cfg());
        established(&mut f);
        let a = f.handle(Event::HoldTimerExpires);
        assert_eq!(f.state(), State::Idle);
        assert_eq!(a[0], Action::SendNotification(Notification::new(4, 0)));
        assert!(a.contains(&Action::SessionDown(DownReason::HoldTimerExpired)));
        assert!(a.contains(&Action::StartTimer(Timer::IdleHold, Duration::from_secs(1))));
        // The restart goes through Connect again.
        f.handle(Event::IdleHoldTimerExpires);
        assert_eq!(f.state(), State::Connect);
    }

    #[test]
    fn backoff_doubles_and_caps() {
        let mut f = Fsm::new(cfg());
        f.handle(Event::ManualStart);
        let mut delays = vec![];
        for _ in 0..9 {
            f.handle(Event::TcpCrAcked);
            let a = f.handle(Event::HoldTimerExpires);
            delays.extend(a.iter().filter_map(|x| match x {
                Action::StartTimer(Timer::IdleHold, d) => Some(d.as_secs()),
                _ => None,
            }));
            f.handle(Event::IdleHoldTimerExpires);
        }
        assert_eq!(delays, vec![1, 2, 4, 8, 16, 32, 60, 60, 60]);
        // Established resets the count.
        f.handle(Event::TcpCrAcked);
        f.handle(Event::BgpOpen(peer_open(65002, 90)));
        f.handle(Event::KeepAliveMsg);
        assert_eq!(f.connect_retry_counter(), 0);
    }

    #[test]
    fn failed_connect_keeps_listening_in_active() {
        let mut f = Fsm::new(cfg());
        f.handle(Event::ManualStart);
        let a = f.handle(Event::TcpConnectionFails);
        assert_eq!(f.state(), State::Active);
        assert!(a.contains(&Action::StartTimer(
            Timer::ConnectRetry,
            Duration::from_secs(5)
        )));
        // The peer connects to us meanwhile.
        f.handle(Event::TcpConnectionConfirmed);
        assert_eq!(f.state(), State::OpenSent);
        // An accepted connection that dies before OPEN: back to Active, not Idle.
        f.handle(Event::TcpConnectionFails);
        assert_eq!(f.state(), State::Active);
        let a = f.handle(Event::ConnectRetryTimerExpires);
        assert!(a.contains(&Action::Connect));
        assert_eq!(f.state(), State::Connect);
    }

    #[test]
    fn manual_stop_sends_shutdown_communication_and_stays_down() {
        let mut f = Fsm::new(cfg());
        established(&mut f);
        let a = f.handle(Event::ManualStop(Some("maintenance".into())));
        let n = Notification::shutdown("maintenance", false).unwrap();
        assert_eq!(a[0], Action::SendNotification(n));
        assert!(a.contains(&Action::SessionDown(DownReason::Stopped)));
        assert!(
            !a.iter()
                .any(|x| matches!(x, Action::StartTimer(Timer::IdleHold, _)))
        );
        assert!(f.handle(Event::IdleHoldTimerExpires).is_empty());
        assert_eq!(f.state(), State::Idle);
        // Stopping while waiting to restart cancels the restart.
        let mut f = Fsm::new(cfg());
        f.handle(Event::ManualStart);
        f.handle(Event::TcpCrAcked);
        f.handle(Event::HoldTimerExpires);
        let a = f.handle(Event::ManualStop(None));
        assert_eq!(a, vec![Action::StopTimer(Timer::IdleHold)]);
        assert!(f.handle(Event::IdleHoldTimerExpires).is_empty());
    }

    #[test]
    fn unexpected_message_is_an_fsm_error_with_rfc6608_subcode() {
        let mut f = Fsm::new(cfg());
        f.handle(Event::ManualStart);
        f.handle(Event::TcpCrAcked);
        let a = f.handle(Event::UpdateMsg);
        assert!(a.contains(&Action::SendNotification(Notification::new(5, 1))));
        let mut f = Fsm::new(cfg());
        established(&mut f);
        let a = f.handle(Event::BgpOpen(peer_open(65002, 90)));
        assert!(a.contains(&Action::SendNotification(Notification::new(5, 3))));
    }

    #[test]
    fn hold_time_zero_disables_keepalives() {
        let mut f = Fsm::new(SessionConfig {
            hold_time: 0,
            ..cfg()
        });
        f.handle(Event::ManualStart);
        f.handle(Event::TcpCrAcked);
        let a = f.handle(Event::BgpOpen(peer_open(65002, 90)));
        assert!(
            !a.iter()
                .any(|x| matches!(x, Action::StartTimer(Timer::Keepalive | Timer::Hold, _)))
        );
        let a = f.handle(Event::KeepAliveMsg);
        assert!(!a.iter().any(|x| matches!(x, Action::StartTimer(_, _))));
        assert_eq!(f.state(), State::Established);
    }

    #[test]
    fn configured_keepalive_is_used_when_it_fits() {
        let mut f = Fsm::new(SessionConfig {
            keepalive_time: Some(5),
            ..cfg()
        });
        f.handle(Event::ManualStart);
        f.handle(Event::TcpCrAcked);
        let a = f.handle(Event::BgpOpen(peer_open(65002, 90)));
        assert!(a.contains(&Action::StartTimer(
            Timer::Keepalive,
            Duration::from_secs(5)
        )));
    }

    #[test]
    fn automatic_stop_sends_its_notification_and_restarts_later() {
        let mut f = Fsm::new(cfg());
        established(&mut f);
        let n = Notification::new(6, 1);
        let a = f.handle(Event::AutomaticStop(n.clone(), Restart::IdleHold));
        assert_eq!(a[0], Action::SendNotification(n.clone()));
        assert!(a.contains(&Action::SessionDown(DownReason::Sent(n))));
        assert!(
            a.iter()
                .any(|x| matches!(x, Action::StartTimer(Timer::IdleHold, _)))
        );
        f.handle(Event::IdleHoldTimerExpires);
        assert_eq!(f.state(), State::Connect);
    }

    #[test]
    fn automatic_stop_can_hold_the_session_down() {
        let n = Notification::new(6, 1);
        // Until the operator starts it again; the peer's connections are refused meanwhile.
        let mut f = Fsm::new(cfg());
        established(&mut f);
        let a = f.handle(Event::AutomaticStop(n.clone(), Restart::Never));
        assert_eq!(a[0], Action::SendNotification(n.clone()));
        assert!(
            !a.iter()
                .any(|x| matches!(x, Action::StartTimer(Timer::IdleHold, _)))
        );
        assert!(f.admin_down());
        f.handle(Event::IdleHoldTimerExpires);
        assert_eq!(f.state(), State::Idle);
        f.handle(Event::ManualStart);
        assert_eq!(f.state(), State::Connect);
        // For a while: refused meanwhile, started when the timer fires.
        let mut f = Fsm::new(cfg());
        established(&mut f);
        let a = f.handle(Event::AutomaticStop(
            n.clone(),
            Restart::After(Duration::from_secs(60)),
        ));
        assert!(a.contains(&Action::StartTimer(
            Timer::IdleHold,
            Duration::from_secs(60)
        )));
        assert!(f.admin_down());
        f.handle(Event::IdleHoldTimerExpires);
        assert_eq!(f.state(), State::Connect);
        assert!(!f.admin_down());
        // A ManualStop meanwhile cancels the restart.
        let mut f = Fsm::new(cfg());
        established(&mut f);
        f.handle(Event::AutomaticStop(
            n,
            Restart::After(Duration::from_secs(60)),
        ));
        f.handle(Event::ManualStop(None));
        f.handle(Event::IdleHoldTimerExpires);
        assert_eq!(f.state(), State::Idle);
    }

    #[test]
    fn collision_keeps_the_higher_identifiers_connection() {
        let lo = Ipv4Addr::new(198, 18, 0, 1);
        let hi = Ipv4Addr::new(198, 18, 0, 2);
        assert!(keep_on_collision(hi, lo, true));
        assert!(!keep_on_collision(hi, lo, false));
        assert!(keep_on_collision(lo, hi, false));
        let mut f = Fsm::new(cfg());
        f.handle(Event::ManualStart);
        f.handle(Event::TcpCrAcked);
        f.handle(Event::BgpOpen(peer_open(65002, 90)));
        let a = f.handle(Event::OpenCollisionDump);
        assert!(a.contains(&Action::SendNotification(Notification::new(6, 7))));
        assert_eq!(f.state(), State::Idle);
    }
}
