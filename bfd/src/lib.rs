//! Bidirectional Forwarding Detection, asynchronous mode (RFC 5880), for single-hop IP
//! sessions (RFC 5881). Pure: [`packet`] is the control packet codec, [`session`] the state
//! machine driven by received packets and by the caller's clock (microseconds on any
//! monotonic scale). Sockets, TTL checks and timers belong to the daemon.

pub mod packet;
pub mod session;

pub use packet::{DecodeError, Diagnostic, Packet, State};
pub use session::{Config, Session, Transition};

/// UDP port of single-hop control packets (RFC 5881 §4).
pub const CONTROL_PORT: u16 = 3784;
/// Source ports of control packets are taken from this range (RFC 5881 §4).
pub const SOURCE_PORTS: std::ops::RangeInclusive<u16> = 49152..=65535;
/// Sent with, and required on receipt (GTSM, RFC 5881 §5).
pub const TTL: u8 = 255;
