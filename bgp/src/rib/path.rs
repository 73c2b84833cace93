//! What the RIB stores per route: a small [`Path`] pointing at interned [`Attrs`].
//!
//! A path is 24 bytes: the attribute pointer, the peer and add-path identifier as `u32`s, the
//! time it was received and flag bits. Everything that many routes share (the attributes and
//! the next hop) lives behind the `Arc`, once per distinct value.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use crate::attribute::{NextHop, PathAttributes};

/// A peer as the RIB knows it: a small index handed out by [`Rib::add_peer`](super::Rib::add_peer).
/// Identifiers are never reused, so a stale id cannot name a newer peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerId(pub(crate) u32);

impl PeerId {
    /// The speaker itself: the source of locally originated paths.
    pub const LOCAL: PeerId = PeerId(0);

    pub fn get(self) -> u32 {
        self.0
    }

    pub fn is_local(self) -> bool {
        self == PeerId::LOCAL
    }
}

impl fmt::Display for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "peer#{}", self.0)
    }
}

/// Where a path came from, as far as route selection and export rules care.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SourceKind {
    /// Originated by this speaker (API or config).
    Local,
    /// An external peer (different AS).
    Ebgp,
    /// An internal peer that is not a route-reflector client.
    Ibgp,
    /// An internal peer that is our route-reflector client (RFC 4456 §4).
    RrClient,
}

/// The role of a peer, derived from its AS and configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PeerKind {
    Ebgp,
    Ibgp,
    RrClient,
}

impl From<PeerKind> for SourceKind {
    fn from(k: PeerKind) -> SourceKind {
        match k {
            PeerKind::Ebgp => SourceKind::Ebgp,
            PeerKind::Ibgp => SourceKind::Ibgp,
            PeerKind::RrClient => SourceKind::RrClient,
        }
    }
}

impl SourceKind {
    pub fn is_ibgp(self) -> bool {
        matches!(self, SourceKind::Ibgp | SourceKind::RrClient)
    }
}

/// The facts about a path's source that selection and export need. `Copy`, so a pending change
/// can keep them after the peer is gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SourceInfo {
    pub peer: PeerId,
    pub kind: SourceKind,
    pub asn: u32,
    /// The peer's BGP identifier from its OPEN (our own router id for local paths).
    pub router_id: Ipv4Addr,
    /// The peer's address (unspecified for local paths).
    pub address: IpAddr,
}

/// The interned part of a route: its path attributes plus its next hop.
///
/// The next hop is kept here rather than in `attrs.next_hop`, because an IPv4 route's next hop
/// may come from NEXT_HOP or MP_REACH (IPv4 or IPv6, RFC 8950) and an IPv6 route's from MP_REACH
/// only; the RIB always keeps `attrs.next_hop` empty, so one value has one representation.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Attrs {
    /// `None` for a locally originated path without an explicit next hop: next hop self.
    pub next_hop: Option<NextHop>,
    /// AS_PATH prepends of a locally originated path, applied only toward eBGP peers (an iBGP
    /// peer would see its own AS and drop the route).
    pub prepend: u8,
    /// Path attributes, with `next_hop` always `None`.
    pub attrs: PathAttributes,
}

impl Attrs {
    /// Builds from decoded attributes, moving a classic NEXT_HOP into `next_hop` unless an
    /// MP_REACH next hop is given.
    pub fn new(mut attrs: PathAttributes, mp_next_hop: Option<NextHop>) -> Attrs {
        let classic = attrs.next_hop.take().map(NextHop::V4);
        Attrs {
            next_hop: mp_next_hop.or(classic),
            prepend: 0,
            attrs,
        }
    }
}

/// Flag bits of a [`Path`].
pub(crate) mod flag {
    pub const BEST: u8 = 1;
    pub const MULTIPATH: u8 = 2;
    /// Kept from a session that went down while the peer restarts (RFC 4724 §4.2).
    pub const STALE: u8 = 4;
    /// The prefix has a snapshot in its table's change list since the last drain. Set on
    /// every path of the prefix or on none, so one look at any path answers for the prefix.
    pub const CHANGED: u8 = 8;
}

/// One path to a prefix: from one peer, with one add-path identifier (0 without add-path).
#[derive(Debug, Clone)]
pub(crate) struct Path {
    pub attrs: Arc<Attrs>,
    pub peer: PeerId,
    pub path_id: u32,
    /// When it was received, in the caller's seconds (see [`Rib::receive`](super::Rib::receive)).
    pub since: u32,
    pub flags: u8,
}

impl Path {
    pub fn is_best(&self) -> bool {
        self.flags & flag::BEST != 0
    }

    pub fn is_multipath(&self) -> bool {
        self.flags & flag::MULTIPATH != 0
    }

    pub fn is_stale(&self) -> bool {
        self.flags & flag::STALE != 0
    }

    pub fn is_changed(&self) -> bool {
        self.flags & flag::CHANGED != 0
    }

    /// The identity of a path inside one prefix.
    pub fn key(&self) -> (PeerId, u32) {
        (self.peer, self.path_id)
    }
}

/// A path as the read API shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathView {
    pub peer: PeerId,
    pub path_id: u32,
    pub attrs: Arc<Attrs>,
    pub since: u32,
    pub best: bool,
    /// Member of the ECMP set (the best path is too).
    pub multipath: bool,
    /// Kept while its peer restarts gracefully (RFC 4724).
    pub stale: bool,
    /// For the best path: the decision step that ranked it above the runner-up (`None` when it
    /// is the only path). For another path: the step at which the best path beat it.
    pub reason: Option<super::step::Step>,
}
