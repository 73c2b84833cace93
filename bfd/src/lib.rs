//! Bidirectional Forwarding Detection, asynchronous mode (RFC 5880), for single-hop IP
//! sessions (RFC 5881) and multihop ones (RFC 5883). Pure: [`packet`] is the control packet
//! codec, [`auth`] its SHA1 authentication, [`session`] the state machine driven by received
//! packets and by the caller's clock (microseconds on any monotonic scale), [`Hops`] the rules
//! that differ between the two kinds. Sockets, TTL checks and timers belong to the daemon.

pub mod auth;
pub mod packet;
pub mod session;

pub use auth::{Auth, AuthError, Key, Method};
pub use packet::{DecodeError, Diagnostic, Packet, State, Wire};
pub use session::{Config, Session, Transition};

/// UDP port of single-hop control packets (RFC 5881 §4).
pub const CONTROL_PORT: u16 = 3784;
/// UDP port of multihop control packets (RFC 5883 §5): a different port, so a system can tell
/// which rules apply before it has found the session.
pub const MULTIHOP_CONTROL_PORT: u16 = 4784;
/// Source ports of control packets are taken from this range (RFC 5881 §4).
pub const SOURCE_PORTS: std::ops::RangeInclusive<u16> = 49152..=65535;
/// Sent with, and required on receipt (GTSM, RFC 5881 §5).
pub const TTL: u8 = 255;

/// Whether routers lie between the two systems. It decides the port and the receive check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Hops {
    /// Directly connected (RFC 5881).
    #[default]
    Single,
    /// Across routers, e.g. between loopbacks (RFC 5883).
    Multi,
}

impl Hops {
    /// The destination port of control packets.
    pub fn port(self) -> u16 {
        match self {
            Hops::Single => CONTROL_PORT,
            Hops::Multi => MULTIHOP_CONTROL_PORT,
        }
    }

    /// Whether a packet that arrived with this TTL (hop limit) may be processed. Single hop:
    /// only 255, which no remote sender can forge (RFC 5881 §5). Multihop packets cross
    /// routers, so the TTL proves nothing and is not checked (RFC 5883 §6); an unknown TTL is
    /// refused on single-hop sessions only.
    pub fn accepts_ttl(self, ttl: Option<u8>) -> bool {
        match self {
            Hops::Single => ttl == Some(TTL),
            Hops::Multi => true,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Hops::Single => "single-hop",
            Hops::Multi => "multihop",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_hop_demands_ttl_255_and_multihop_does_not() {
        assert!(Hops::Single.accepts_ttl(Some(255)));
        for ttl in [None, Some(254), Some(1), Some(0)] {
            assert!(!Hops::Single.accepts_ttl(ttl), "{ttl:?}");
        }
        for ttl in [None, Some(255), Some(254), Some(1)] {
            assert!(Hops::Multi.accepts_ttl(ttl), "{ttl:?}");
        }
    }

    #[test]
    fn the_two_kinds_use_different_ports() {
        assert_eq!(Hops::Single.port(), 3784);
        assert_eq!(Hops::Multi.port(), 4784);
        assert_eq!(Hops::default(), Hops::Single);
    }
}
