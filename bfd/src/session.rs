//! One BFD session in asynchronous mode (RFC 5880 §6.8), without demand mode or echo, with
//! optional SHA1 authentication (§6.7.4). Time is the caller's, in microseconds on a monotonic scale: the session
//! says when it next needs attention ([`Session::deadline`]) and what to send.

use crate::auth::Auth;
use crate::packet::{Diagnostic, Packet, State};

/// Per-session parameters. Intervals in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    pub desired_min_tx: u32,
    pub required_min_rx: u32,
    pub detect_mult: u8,
}

/// While not Up the transmit interval is at least a second (RFC 5880 §6.8.3).
const SLOW_TX: u32 = 1_000_000;

/// A state change, for the daemon to act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    pub from: State,
    pub to: State,
    pub diag: Diagnostic,
}

#[derive(Debug, Clone)]
pub struct Session {
    config: Config,
    local_discr: u32,
    remote_discr: u32,
    state: State,
    remote_state: State,
    diag: Diagnostic,
    /// The remote's last Diag, for the API.
    remote_diag: Diagnostic,
    remote_min_rx: u32,
    remote_desired_min_tx: u32,
    remote_detect_mult: u8,
    /// bfd.DesiredMinTxInterval as advertised now: slow until Up.
    desired_min_tx: u32,
    poll: bool,
    /// A Poll was received: the next packet carries Final.
    send_final: bool,
    next_tx: u64,
    detect_deadline: Option<u64>,
    rng: u32,
    up_transitions: u64,
    auth: Option<Auth>,
    /// Packets for this session dropped by authentication (§6.8.6: the A bit must match the
    /// session, and §6.7.4).
    auth_failures: u64,
}

impl Session {
    /// A session in Down state, sending its first packet at `now`. `local_discr` must be
    /// non-zero and unique among the daemon's sessions.
    pub fn new(config: Config, local_discr: u32, now: u64) -> Session {
        Session {
            config,
            local_discr,
            remote_discr: 0,
            state: State::Down,
            remote_state: State::Down,
            diag: Diagnostic::None,
            remote_diag: Diagnostic::None,
            // Until the remote says otherwise, one packet per second (§6.8.1 bfd.RemoteMinRxInterval = 1).
            remote_min_rx: 1,
            remote_desired_min_tx: 0,
            remote_detect_mult: 0,
            desired_min_tx: SLOW_TX.max(config.desired_min_tx),
            poll: false,
            send_final: false,
            next_tx: now,
            detect_deadline: None,
            rng: local_discr | 1,
            up_transitions: 0,
            auth: None,
            auth_failures: 0,
        }
    }

    /// Sends authenticated packets, and takes only those (§6.8.6).
    pub fn with_auth(mut self, auth: Auth) -> Session {
        self.auth = Some(auth);
        self
    }

    pub fn auth(&self) -> Option<&Auth> {
        self.auth.as_ref()
    }

    pub fn auth_failures(&self) -> u64 {
        self.auth_failures
    }

    /// Whether `p` is from someone who holds the session's key (any packet, if it has none):
    /// packets that are not are not worth a log line.
    pub fn from_a_key_holder(&self, p: &Packet) -> bool {
        match &self.auth {
            None => p.auth.is_none(),
            Some(a) => a.signed_with_key(p.auth.as_ref(), &p.encode()),
        }
    }

    pub fn state(&self) -> State {
        self.state
    }

    pub fn local_discriminator(&self) -> u32 {
        self.local_discr
    }

    pub fn remote_discriminator(&self) -> u32 {
        self.remote_discr
    }

    pub fn remote_diagnostic(&self) -> Diagnostic {
        self.remote_diag
    }

    pub fn up_transitions(&self) -> u64 {
        self.up_transitions
    }

    /// The detection time in effect (§6.8.4): the remote's multiplier times the larger of our
    /// required receive interval and its desired transmit interval.
    pub fn detection_time(&self) -> u64 {
        u64::from(self.remote_detect_mult)
            * u64::from(self.config.required_min_rx.max(self.remote_desired_min_tx))
    }

    /// When [`Session::poll_timers`] must be called next.
    pub fn deadline(&self) -> u64 {
        match self.detect_deadline {
            Some(d) => d.min(self.next_tx),
            None => self.next_tx,
        }
    }

    fn set_state(&mut self, to: State, diag: Diagnostic) -> Option<Transition> {
        if to == self.state {
            return None;
        }
        let from = self.state;
        self.state = to;
        self.diag = diag;
        if to == State::Up {
            self.up_transitions += 1;
            // Faster now: a decrease takes effect at once, and a Poll tells the remote
            // (§6.8.3).
            self.desired_min_tx = self.config.desired_min_tx;
            self.poll = true;
        } else if from == State::Up {
            self.desired_min_tx = SLOW_TX.max(self.config.desired_min_tx);
            self.poll = true;
        }
        if to == State::Down {
            self.remote_discr = 0;
            self.detect_deadline = None;
        }
        Some(Transition { from, to, diag })
    }

    /// A packet for this session (the daemon demultiplexed it by discriminator or address and
    /// checked its TTL). Returns the state change, if any (§6.8.6).
    ///
    /// §6.8.6 lets a packet whose Your Discriminator is zero pick its session by source
    /// address, which is all anyone who can send from that address needs to take a session
    /// down (a pod on the node, one hop away, passes the TTL check). Once the session is Init
    /// or Up the peer has our discriminator and echoes it, so such packets are ignored here, as
    /// are packets naming another discriminator or, while Up, coming from another remote
    /// discriminator. A peer that really lost its state is caught by the detection time.
    pub fn receive(&mut self, p: &Packet, now: u64) -> Option<Transition> {
        if !self.accepts(p) {
            return None;
        }
        let forget_after = 2 * self.detection_time().max(1);
        let authentic = match (&mut self.auth, &p.auth) {
            (None, None) => true,
            (None, Some(_)) => false,
            (Some(a), section) => a
                .check(
                    section.as_ref(),
                    &p.encode(),
                    p.detect_mult,
                    now,
                    forget_after,
                )
                .is_ok(),
        };
        if !authentic {
            self.auth_failures += 1;
            return None;
        }
        self.remote_discr = p.my_discriminator;
        self.remote_state = p.state;
        self.remote_diag = p.diag;
        self.remote_min_rx = p.required_min_rx;
        self.remote_desired_min_tx = p.desired_min_tx;
        self.remote_detect_mult = p.detect_mult;
        if p.final_ {
            self.poll = false;
        }
        if p.poll {
            self.send_final = true;
            // Answer at once rather than at the next periodic transmission (§6.8.7).
            self.next_tx = now;
        }
        if self.state == State::AdminDown {
            return None;
        }
        let t = if p.state == State::AdminDown {
            if self.state != State::Down {
                self.set_state(State::Down, Diagnostic::NeighborSignaledSessionDown)
            } else {
                None
            }
        } else {
            match (self.state, p.state) {
                (State::Down, State::Down) => self.set_state(State::Init, Diagnostic::None),
                (State::Down, State::Init) => self.set_state(State::Up, Diagnostic::None),
                (State::Init, State::Init | State::Up) => {
                    self.set_state(State::Up, Diagnostic::None)
                }
                (State::Up, State::Down) => {
                    self.set_state(State::Down, Diagnostic::NeighborSignaledSessionDown)
                }
                _ => None,
            }
        };
        if matches!(self.state, State::Init | State::Up) {
            self.detect_deadline = Some(now + self.detection_time());
        }
        if t.is_some() {
            self.next_tx = now;
        }
        t
    }

    /// Whether `p` may touch this session at all (see [`Session::receive`]).
    pub fn accepts(&self, p: &Packet) -> bool {
        if p.your_discriminator != 0 && p.your_discriminator != self.local_discr {
            return false;
        }
        match self.state {
            State::Init | State::Up if p.your_discriminator == 0 => false,
            State::Up => p.my_discriminator == self.remote_discr,
            _ => true,
        }
    }

    /// Runs the timers at `now`: the detection timer (§6.8.4) and periodic transmission
    /// (§6.8.7). Returns a state change and the packet to send, if any.
    pub fn poll_timers(&mut self, now: u64) -> (Option<Transition>, Option<Packet>) {
        let mut t = None;
        if let Some(d) = self.detect_deadline
            && now >= d
            && matches!(self.state, State::Init | State::Up)
        {
            t = self.set_state(State::Down, Diagnostic::ControlDetectionTimeExpired);
            self.next_tx = now;
        }
        if now < self.next_tx {
            return (t, None);
        }
        // A remote asking for no packets (RequiredMinRxInterval 0) gets none (§6.8.7), unless
        // it polled us.
        if self.remote_min_rx == 0 && !self.send_final {
            self.next_tx = now + u64::from(SLOW_TX);
            return (t, None);
        }
        let p = self.packet();
        self.send_final = false;
        self.next_tx = now + self.jittered_interval();
        (t, Some(p))
    }

    /// The next control packet as the session stands, signed if the session authenticates
    /// (which advances the sequence number: call it once per packet sent).
    pub fn packet(&mut self) -> Packet {
        let mut p = self.unsigned();
        if let Some(a) = &mut self.auth {
            p.auth = Some(crate::auth::Section {
                method: a.method(),
                key_id: a.key_id(),
                reserved: 0,
                sequence: 0,
                digest: [0; 20],
            });
            let mut wire = p.encode();
            p.auth = Some(a.sign(&mut wire));
        }
        p
    }

    fn unsigned(&self) -> Packet {
        Packet {
            diag: self.diag,
            state: self.state,
            poll: self.poll && !self.send_final,
            final_: self.send_final,
            control_plane_independent: false,
            demand: false,
            detect_mult: self.config.detect_mult,
            my_discriminator: self.local_discr,
            your_discriminator: self.remote_discr,
            desired_min_tx: self.desired_min_tx,
            required_min_rx: self.config.required_min_rx,
            required_min_echo_rx: 0,
            auth: None,
        }
    }

    /// max(bfd.DesiredMinTxInterval, bfd.RemoteMinRxInterval), reduced by 0-25 % of jitter
    /// (10-25 % with a multiplier of 1) (§6.8.7).
    fn jittered_interval(&mut self) -> u64 {
        let base = u64::from(self.desired_min_tx.max(self.remote_min_rx));
        // xorshift32: cheap, deterministic per session, and good enough for jitter.
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 17;
        self.rng ^= self.rng << 5;
        let min_cut = if self.config.detect_mult == 1 { 10 } else { 0 };
        let cut = min_cut + u64::from(self.rng) % (26 - min_cut);
        base * (100 - cut) / 100
    }

    /// Takes the session administratively down (§6.8.16): the remote is told, and
    /// [`Session::receive`] changes nothing until it is started again.
    pub fn admin_down(&mut self, now: u64) -> Option<Transition> {
        let t = self.set_state(State::AdminDown, Diagnostic::AdministrativelyDown);
        self.detect_deadline = None;
        self.next_tx = now;
        t
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const MS: u64 = 1000;

    fn cfg(ms: u32) -> Config {
        Config {
            desired_min_tx: ms * 1000,
            required_min_rx: ms * 1000,
            detect_mult: 3,
        }
    }

    /// Two sessions wired back to back: every packet one sends, the other receives at once.
    fn exchange(a: &mut Session, b: &mut Session, now: u64) -> Vec<(char, Transition)> {
        let mut ts = Vec::new();
        for _ in 0..4 {
            let (ta, pa) = a.poll_timers(now);
            ts.extend(ta.map(|t| ('a', t)));
            if let Some(p) = pa {
                let p = Packet::decode(&p.encode()).unwrap();
                ts.extend(b.receive(&p, now).map(|t| ('b', t)));
            }
            let (tb, pb) = b.poll_timers(now);
            ts.extend(tb.map(|t| ('b', t)));
            if let Some(p) = pb {
                let p = Packet::decode(&p.encode()).unwrap();
                ts.extend(a.receive(&p, now).map(|t| ('a', t)));
            }
        }
        ts
    }

    #[test]
    fn three_way_handshake_then_detection() {
        let mut a = Session::new(cfg(100), 11, 0);
        let mut b = Session::new(cfg(300), 22, 0);
        exchange(&mut a, &mut b, 0);
        assert_eq!((a.state(), b.state()), (State::Up, State::Up));
        assert_eq!(a.remote_discriminator(), 22);
        // Detection time at a: b's multiplier × max(a's rx 100 ms, b's tx 300 ms).
        assert_eq!(a.detection_time(), 900 * MS);
        // Keep exchanging for a while: stays up, and a's tx interval respects b's rx (300 ms).
        let mut now = 0;
        let mut sent = 0;
        while now < 3000 * MS {
            now += 10 * MS;
            let (t, p) = a.poll_timers(now);
            assert!(t.is_none());
            if let Some(p) = p {
                sent += 1;
                b.receive(&p, now);
            }
            let (t, p) = b.poll_timers(now);
            assert!(t.is_none());
            if let Some(p) = p {
                a.receive(&p, now);
            }
        }
        assert!(
            (10..=14).contains(&sent),
            "{sent} packets in 3 s at 300 ms minus jitter"
        );
        // b goes silent: a detects it after 900 ms, not before.
        let last = now;
        let mut down_at = None;
        while down_at.is_none() {
            now += MS;
            let (t, _) = a.poll_timers(now);
            if let Some(t) = t {
                assert_eq!(t.to, State::Down);
                assert_eq!(t.diag, Diagnostic::ControlDetectionTimeExpired);
                down_at = Some(now);
            }
        }
        let took = down_at.unwrap() - last;
        assert!(took <= 900 * MS && took > 500 * MS, "{took}");
        // Down again, a sends slowly with your discriminator 0.
        let (_, p) = a.poll_timers(now + 2000 * MS);
        let p = p.unwrap();
        assert_eq!((p.state, p.your_discriminator), (State::Down, 0));
        assert_eq!(p.desired_min_tx, 1_000_000);
    }

    #[test]
    fn remote_down_and_admin_down() {
        let mut a = Session::new(cfg(100), 1, 0);
        let mut b = Session::new(cfg(100), 2, 0);
        exchange(&mut a, &mut b, 0);
        assert_eq!(a.state(), State::Up);
        let t = b.admin_down(10 * MS).unwrap();
        assert_eq!(t.to, State::AdminDown);
        let ts = exchange(&mut a, &mut b, 10 * MS);
        assert!(
            ts.contains(&(
                'a',
                Transition {
                    from: State::Up,
                    to: State::Down,
                    diag: Diagnostic::NeighborSignaledSessionDown
                }
            )),
            "{ts:?}"
        );
        assert_eq!(b.state(), State::AdminDown);
    }

    #[test]
    fn forged_packets_leave_an_up_session_alone() {
        let mut a = Session::new(cfg(100), 1, 0);
        let mut b = Session::new(cfg(100), 2, 0);
        exchange(&mut a, &mut b, 0);
        assert_eq!(a.state(), State::Up);
        let real = b.packet();
        let forged = |state, my, your| Packet {
            state,
            my_discriminator: my,
            your_discriminator: your,
            diag: Diagnostic::None,
            ..real
        };
        for p in [
            // Your Discriminator 0, selected by address: what a forger without our
            // discriminator can send.
            forged(State::Down, 2, 0),
            forged(State::AdminDown, 2, 0),
            forged(State::Down, 77, 0),
            // Someone else's discriminator, and ours from another remote.
            forged(State::Down, 2, 9),
            forged(State::Down, 77, 1),
            forged(State::AdminDown, 77, 1),
        ] {
            assert!(!a.accepts(&p), "{p:?}");
            assert_eq!(a.receive(&p, 5 * MS), None, "{p:?}");
            assert_eq!(a.state(), State::Up, "{p:?}");
            assert_eq!(a.remote_discriminator(), 2);
        }
        // Forged packets do not keep the session alive either: b's silence is still detected.
        let mut now = 5 * MS;
        loop {
            now += 10 * MS;
            a.receive(&forged(State::Up, 77, 0), now);
            if let (Some(t), _) = a.poll_timers(now) {
                assert_eq!(t.diag, Diagnostic::ControlDetectionTimeExpired);
                break;
            }
            assert!(now < 2000 * MS, "never detected");
        }
        // The real peer's Down, with our discriminator, still counts.
        let (mut a, mut b) = (Session::new(cfg(100), 1, 0), Session::new(cfg(100), 2, 0));
        exchange(&mut a, &mut b, 0);
        assert_eq!(a.state(), State::Up);
        let t = a.receive(&forged(State::Down, 2, 1), 5 * MS).unwrap();
        assert_eq!(t.to, State::Down);
    }

    #[test]
    fn poll_gets_final() {
        let mut a = Session::new(cfg(100), 1, 0);
        let mut b = Session::new(cfg(100), 2, 0);
        exchange(&mut a, &mut b, 0);
        let mut p = a.packet();
        p.poll = true;
        b.receive(&p, 5 * MS);
        let (_, reply) = b.poll_timers(5 * MS);
        let reply = reply.unwrap();
        assert!(reply.final_ && !reply.poll);
    }

    fn sha1(method: crate::Method, key: &[u8], seq: u32) -> Auth {
        Auth::new(method, crate::Key::new(7, key).unwrap(), seq)
    }

    #[test]
    fn authenticated_sessions_come_up_and_take_only_authentic_packets() {
        use crate::Method::{KeyedSha1, MeticulousKeyedSha1};
        for method in [KeyedSha1, MeticulousKeyedSha1] {
            let mut a = Session::new(cfg(100), 1, 0).with_auth(sha1(method, b"secret", 10));
            let mut b = Session::new(cfg(100), 2, 0).with_auth(sha1(method, b"secret", u32::MAX));
            exchange(&mut a, &mut b, 0);
            assert_eq!((a.state(), b.state()), (State::Up, State::Up), "{method:?}");
            let real = b.packet();
            assert!(
                real.auth
                    .is_some_and(|s| s.method == method && s.key_id == 7)
            );
            // The peer's Down with both discriminators right, as anyone one hop away could
            // send it: unsigned, signed with another key, or with a digest left over.
            let down = Packet {
                state: State::Down,
                diag: Diagnostic::NeighborSignaledSessionDown,
                ..real
            };
            let wrong_key = {
                let mut other = Session::new(cfg(100), 2, 0).with_auth(sha1(method, b"guess", 11));
                Packet {
                    state: State::Down,
                    your_discriminator: 1,
                    ..other.packet()
                }
            };
            for p in [Packet { auth: None, ..down }, down, wrong_key] {
                assert!(a.accepts(&p));
                assert_eq!(a.receive(&p, 5 * MS), None, "{method:?} {p:?}");
                assert_eq!(a.state(), State::Up);
            }
            assert_eq!(a.auth_failures(), 3);
            // The real peer's AdminDown, signed, still counts.
            b.admin_down(6 * MS);
            let bye = b.packet();
            let t = a.receive(&bye, 6 * MS).unwrap();
            assert_eq!(t.diag, Diagnostic::NeighborSignaledSessionDown);
        }
    }

    #[test]
    fn replays_keyed_takes_the_latest_again_meticulous_nothing() {
        use crate::Method::{KeyedSha1, MeticulousKeyedSha1};
        for method in [KeyedSha1, MeticulousKeyedSha1] {
            let mut a = Session::new(cfg(100), 1, 0).with_auth(sha1(method, b"secret", 1));
            let mut b = Session::new(cfg(100), 2, 0).with_auth(sha1(method, b"secret", 1));
            exchange(&mut a, &mut b, 0);
            let (old, latest) = (b.packet(), b.packet());
            a.receive(&latest, 5 * MS);
            assert_eq!(a.auth_failures(), 0, "{method:?}");
            // Behind the last number seen: refused by both.
            a.receive(&old, 6 * MS);
            assert_eq!(a.auth_failures(), 1, "{method:?}");
            // The last number again: within Keyed's window, never Meticulous'.
            a.receive(&latest, 7 * MS);
            let want = if method == KeyedSha1 { 1 } else { 2 };
            assert_eq!(a.auth_failures(), want, "{method:?}");
            assert_eq!(a.state(), State::Up);
        }
    }

    #[test]
    fn an_unauthenticated_session_drops_signed_packets() {
        let mut a = Session::new(cfg(100), 1, 0);
        let mut b = Session::new(cfg(100), 2, 0).with_auth(sha1(crate::Method::KeyedSha1, b"k", 0));
        exchange(&mut a, &mut b, 0);
        assert_eq!(a.state(), State::Down);
        assert!(a.auth_failures() > 0 && b.auth_failures() > 0);
    }
}
