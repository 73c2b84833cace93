//! The BFD control packet (RFC 5880 §4.1) and its reception checks (§6.8.6, those that need
//! no session).

use std::fmt;

use crate::auth::{Method, SECTION_AT, SHA1_SECTION_LEN, Section};

/// Session states (RFC 5880 §4.1 "Sta").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    AdminDown,
    Down,
    Init,
    Up,
}

impl State {
    fn from_bits(b: u8) -> State {
        match b & 3 {
            0 => State::AdminDown,
            1 => State::Down,
            2 => State::Init,
            _ => State::Up,
        }
    }

    fn bits(self) -> u8 {
        match self {
            State::AdminDown => 0,
            State::Down => 1,
            State::Init => 2,
            State::Up => 3,
        }
    }
}

impl State {
    /// As RFC 5880 spells it.
    pub fn name(self) -> &'static str {
        match self {
            State::AdminDown => "AdminDown",
            State::Down => "Down",
            State::Init => "Init",
            State::Up => "Up",
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Diagnostic codes (RFC 5880 §4.1 "Diag").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Diagnostic {
    None,
    ControlDetectionTimeExpired,
    EchoFunctionFailed,
    NeighborSignaledSessionDown,
    ForwardingPlaneReset,
    PathDown,
    ConcatenatedPathDown,
    AdministrativelyDown,
    ReverseConcatenatedPathDown,
    Other(u8),
}

impl Diagnostic {
    fn from_bits(b: u8) -> Diagnostic {
        match b & 0x1f {
            0 => Diagnostic::None,
            1 => Diagnostic::ControlDetectionTimeExpired,
            2 => Diagnostic::EchoFunctionFailed,
            3 => Diagnostic::NeighborSignaledSessionDown,
            4 => Diagnostic::ForwardingPlaneReset,
            5 => Diagnostic::PathDown,
            6 => Diagnostic::ConcatenatedPathDown,
            7 => Diagnostic::AdministrativelyDown,
            8 => Diagnostic::ReverseConcatenatedPathDown,
            n => Diagnostic::Other(n),
        }
    }

    fn bits(self) -> u8 {
        match self {
            Diagnostic::None => 0,
            Diagnostic::ControlDetectionTimeExpired => 1,
            Diagnostic::EchoFunctionFailed => 2,
            Diagnostic::NeighborSignaledSessionDown => 3,
            Diagnostic::ForwardingPlaneReset => 4,
            Diagnostic::PathDown => 5,
            Diagnostic::ConcatenatedPathDown => 6,
            Diagnostic::AdministrativelyDown => 7,
            Diagnostic::ReverseConcatenatedPathDown => 8,
            Diagnostic::Other(n) => n & 0x1f,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Diagnostic::None => "none",
            Diagnostic::ControlDetectionTimeExpired => "control detection time expired",
            Diagnostic::EchoFunctionFailed => "echo function failed",
            Diagnostic::NeighborSignaledSessionDown => "neighbor signaled session down",
            Diagnostic::ForwardingPlaneReset => "forwarding plane reset",
            Diagnostic::PathDown => "path down",
            Diagnostic::ConcatenatedPathDown => "concatenated path down",
            Diagnostic::AdministrativelyDown => "administratively down",
            Diagnostic::ReverseConcatenatedPathDown => "reverse concatenated path down",
            Diagnostic::Other(_) => "unknown",
        }
    }
}

/// A control packet. Intervals are in microseconds, as on the wire. `auth` is the SHA1
/// authentication section (the A bit); [`Packet::encode`] gives back exactly the octets a
/// decoded packet came in, which is what its digest covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet {
    pub diag: Diagnostic,
    pub state: State,
    pub poll: bool,
    pub final_: bool,
    /// C bit: forwarding does not share fate with the control plane.
    pub control_plane_independent: bool,
    pub demand: bool,
    pub detect_mult: u8,
    pub my_discriminator: u32,
    pub your_discriminator: u32,
    pub desired_min_tx: u32,
    pub required_min_rx: u32,
    pub required_min_echo_rx: u32,
    pub auth: Option<Section>,
}

/// The mandatory section's length; without authentication it is the whole packet.
pub const LEN: usize = 24;
// The authentication code signs and checks the section it expects here.
const _: () = assert!(SECTION_AT == LEN);
/// With a SHA1 authentication section.
pub const MAX_LEN: usize = LEN + SHA1_SECTION_LEN as usize;

/// An encoded packet.
#[derive(Clone, Copy)]
pub struct Wire {
    buf: [u8; MAX_LEN],
    len: usize,
}

impl std::ops::Deref for Wire {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl std::ops::DerefMut for Wire {
    fn deref_mut(&mut self) -> &mut [u8] {
        &mut self.buf[..self.len]
    }
}

impl fmt::Debug for Wire {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02x?}", &**self)
    }
}
const VERSION: u8 = 1;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("{0} octets: shorter than a control packet")]
    Short(usize),
    #[error("version {0}, not 1")]
    Version(u8),
    #[error("length field {length} with {received} octets received")]
    Length { length: u8, received: usize },
    #[error("detect multiplier 0")]
    ZeroDetectMult,
    #[error("multipoint bit set")]
    Multipoint,
    #[error("my discriminator 0")]
    ZeroMyDiscriminator,
    #[error("your discriminator 0 in state {0}")]
    ZeroYourDiscriminator(State),
    #[error("authentication type {0}: only keyed SHA1 (4) and meticulous keyed SHA1 (5)")]
    AuthType(u8),
    #[error("authentication section of {0} octets, not 28")]
    AuthLength(usize),
}

impl Packet {
    pub fn encode(&self) -> Wire {
        let len = if self.auth.is_some() { MAX_LEN } else { LEN };
        let mut w = Wire {
            buf: [0u8; MAX_LEN],
            len,
        };
        let b = &mut w.buf;
        b[0] = (VERSION << 5) | self.diag.bits();
        b[1] = (self.state.bits() << 6)
            | (u8::from(self.poll) << 5)
            | (u8::from(self.final_) << 4)
            | (u8::from(self.control_plane_independent) << 3)
            | (u8::from(self.auth.is_some()) << 2)
            | (u8::from(self.demand) << 1);
        b[2] = self.detect_mult;
        b[3] = len as u8;
        b[4..8].copy_from_slice(&self.my_discriminator.to_be_bytes());
        b[8..12].copy_from_slice(&self.your_discriminator.to_be_bytes());
        b[12..16].copy_from_slice(&self.desired_min_tx.to_be_bytes());
        b[16..20].copy_from_slice(&self.required_min_rx.to_be_bytes());
        b[20..24].copy_from_slice(&self.required_min_echo_rx.to_be_bytes());
        if let Some(a) = &self.auth {
            a.write(&mut b[LEN..]);
        }
        w
    }

    /// Decodes and applies the checks of RFC 5880 §6.8.6 that need no session.
    pub fn decode(b: &[u8]) -> Result<Packet, DecodeError> {
        let Some(h) = b.get(..LEN) else {
            return Err(DecodeError::Short(b.len()));
        };
        let word = |i: usize| u32::from_be_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]);
        let version = h[0] >> 5;
        if version != VERSION {
            return Err(DecodeError::Version(version));
        }
        let length = h[3];
        let auth = h[1] & 0x04 != 0;
        let min = if auth { LEN + 2 } else { LEN };
        if usize::from(length) < min || usize::from(length) > b.len() {
            return Err(DecodeError::Length {
                length,
                received: b.len(),
            });
        }
        let auth = if auth {
            // RFC 5880 §4.1: Length covers the authentication section, whose own length is its
            // second octet; a SHA1 one is exactly 28.
            let section = &b[LEN..usize::from(length)];
            let method = section[0];
            if Method::from_code(method).is_none() {
                return Err(DecodeError::AuthType(method));
            }
            if section.len() != usize::from(SHA1_SECTION_LEN) || section[1] != SHA1_SECTION_LEN {
                return Err(DecodeError::AuthLength(section.len()));
            }
            Section::read(section)
        } else {
            None
        };
        let p = Packet {
            diag: Diagnostic::from_bits(h[0]),
            state: State::from_bits(h[1] >> 6),
            poll: h[1] & 0x20 != 0,
            final_: h[1] & 0x10 != 0,
            control_plane_independent: h[1] & 0x08 != 0,
            demand: h[1] & 0x02 != 0,
            detect_mult: h[2],
            my_discriminator: word(4),
            your_discriminator: word(8),
            desired_min_tx: word(12),
            required_min_rx: word(16),
            required_min_echo_rx: word(20),
            auth,
        };
        if p.detect_mult == 0 {
            return Err(DecodeError::ZeroDetectMult);
        }
        if h[1] & 0x01 != 0 {
            return Err(DecodeError::Multipoint);
        }
        if p.my_discriminator == 0 {
            return Err(DecodeError::ZeroMyDiscriminator);
        }
        if p.your_discriminator == 0 && !matches!(p.state, State::Down | State::AdminDown) {
            return Err(DecodeError::ZeroYourDiscriminator(p.state));
        }
        Ok(p)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    /// A Down packet laid out by hand from RFC 5880 §4.1, with the timers FRR's bfdd uses
    /// before a session is up: version 1, diag 0, state Down, mult 3, my discriminator
    /// 0x2d1f5a0b, your 0, 1 s desired tx, 300 ms required rx, 50 ms echo.
    const FRR_DOWN: [u8; 24] = [
        0x20, 0x40, 0x03, 0x18, 0x2d, 0x1f, 0x5a, 0x0b, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0f, 0x42,
        0x40, 0x00, 0x04, 0x93, 0xe0, 0x00, 0x00, 0xc3, 0x50,
    ];

    #[test]
    fn decodes_a_down_packet() {
        let p = Packet::decode(&FRR_DOWN).unwrap();
        assert_eq!(p.state, State::Down);
        assert_eq!(p.detect_mult, 3);
        assert_eq!(p.my_discriminator, 0x2d1f_5a0b);
        assert_eq!(p.your_discriminator, 0);
        assert_eq!(p.desired_min_tx, 1_000_000);
        assert_eq!(p.required_min_rx, 300_000);
        assert_eq!(p.required_min_echo_rx, 50_000);
        assert_eq!(&*p.encode(), &FRR_DOWN[..]);
    }

    #[test]
    fn refuses_what_6_8_6_discards() {
        let mut b = FRR_DOWN;
        b[0] = 0x40;
        assert_eq!(Packet::decode(&b), Err(DecodeError::Version(2)));
        let mut b = FRR_DOWN;
        b[2] = 0;
        assert_eq!(Packet::decode(&b), Err(DecodeError::ZeroDetectMult));
        let mut b = FRR_DOWN;
        b[1] |= 1;
        assert_eq!(Packet::decode(&b), Err(DecodeError::Multipoint));
        let mut b = FRR_DOWN;
        b[1] = 0xc0; // Up with your discriminator 0
        assert!(matches!(
            Packet::decode(&b),
            Err(DecodeError::ZeroYourDiscriminator(State::Up))
        ));
        let mut b = FRR_DOWN;
        b[4..8].fill(0);
        assert_eq!(Packet::decode(&b), Err(DecodeError::ZeroMyDiscriminator));
        let mut b = FRR_DOWN;
        b[3] = 30;
        assert!(matches!(
            Packet::decode(&b),
            Err(DecodeError::Length { .. })
        ));
        let mut b = FRR_DOWN;
        b[1] |= 0x04;
        assert!(Packet::decode(&b).is_err());
        // Simple password (1) and MD5 (2) sections are not ours; a SHA1 one must be 28 octets.
        let mut b = FRR_DOWN.to_vec();
        b[1] |= 0x04;
        b[3] = 24 + 28;
        b.extend_from_slice(&[2, 28]);
        b.resize(52, 0);
        assert_eq!(Packet::decode(&b), Err(DecodeError::AuthType(2)));
        b[24] = 4;
        b[25] = 24;
        assert_eq!(Packet::decode(&b), Err(DecodeError::AuthLength(28)));
        b[3] = 24 + 24;
        assert_eq!(Packet::decode(&b), Err(DecodeError::AuthLength(24)));
        assert_eq!(Packet::decode(&FRR_DOWN[..10]), Err(DecodeError::Short(10)));
    }

    proptest! {
        #[test]
        fn decode_never_panics(b in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = Packet::decode(&b);
        }

        #[test]
        fn round_trips(diag in 0u8..9, st in 0u8..4, flags in 0u8..16, mult in 1u8.., my in 1u32..,
                       your in any::<u32>(), tx in any::<u32>(), rx in any::<u32>(), echo in any::<u32>()) {
            let state = State::from_bits(st);
            let your = if matches!(state, State::Up | State::Init) { your.max(1) } else { your };
            let p = Packet {
                diag: Diagnostic::from_bits(diag), state,
                poll: flags & 1 != 0, final_: flags & 2 != 0,
                control_plane_independent: flags & 4 != 0, demand: flags & 8 != 0,
                detect_mult: mult, my_discriminator: my, your_discriminator: your,
                desired_min_tx: tx, required_min_rx: rx, required_min_echo_rx: echo,
                auth: None,
            };
            prop_assert_eq!(Packet::decode(&p.encode()), Ok(p));
        }

        /// Whatever decodes encodes to the octets it came in (the first Length of them): what a
        /// digest was computed over is what it is checked over.
        #[test]
        fn decoded_packets_encode_to_their_octets(b in proptest::collection::vec(any::<u8>(), 24..60),
                                                  sha1 in any::<bool>(), method in 4u8..6) {
            let mut b = b;
            b[0] = 0x20 | (b[0] & 0x1f);
            if sha1 && b.len() >= 52 {
                b[1] |= 0x04;
                b[3] = 52;
                b[24] = method;
                b[25] = 28;
            } else {
                b[1] &= !0x04;
                b[3] = 24;
            }
            if let Ok(p) = Packet::decode(&b) {
                prop_assert_eq!(&*p.encode(), &b[..usize::from(b[3])]);
            }
        }
    }
}
