//! Peers as the RIB sees them: static configuration, plus the session facts (BGP identifier,
//! update group) while established.

use std::net::{IpAddr, Ipv4Addr};

use super::group::GroupId;
use super::path::{PeerId, PeerKind, SourceInfo, SourceKind};
use super::policy::PrefixList;

/// Configuration of a peer that matters to the RIB.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerConfig {
    pub asn: u32,
    pub address: IpAddr,
    /// The peer is our route-reflector client (RFC 4456); only meaningful for iBGP peers.
    pub rr_client: bool,
    /// Maximum number of paths accepted from this peer; exceeding it is reported so the daemon
    /// can send Cease / Maximum Number of Prefixes Reached (RFC 4486 §4).
    pub max_prefixes: Option<u32>,
    /// Announcements this list denies are treated as withdrawals and never counted.
    pub import: PrefixList,
}

#[derive(Debug, Clone)]
pub(crate) struct Session {
    pub group: GroupId,
}

#[derive(Debug, Clone)]
pub(crate) struct PeerSlot {
    pub config: PeerConfig,
    pub kind: PeerKind,
    /// The peer's BGP identifier; unspecified until the first session.
    pub router_id: Ipv4Addr,
    pub session: Option<Session>,
    /// Paths currently held from this peer (all families), for max-prefix.
    pub paths: u32,
    /// Removed peers keep their slot so pending changes can still describe their paths.
    pub removed: bool,
}

/// All peers, indexed by `PeerId`; slot 0 is the speaker itself.
#[derive(Debug, Clone)]
pub(crate) struct Peers {
    local: SourceInfo,
    slots: Vec<Option<PeerSlot>>,
}

impl Peers {
    pub fn new(asn: u32, router_id: Ipv4Addr) -> Peers {
        Peers {
            local: SourceInfo {
                peer: PeerId::LOCAL,
                kind: SourceKind::Local,
                asn,
                router_id,
                address: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            },
            slots: vec![None],
        }
    }

    pub fn add(&mut self, slot: PeerSlot) -> Option<PeerId> {
        let id = PeerId(u32::try_from(self.slots.len()).ok()?);
        self.slots.push(Some(slot));
        Some(id)
    }

    pub fn get(&self, id: PeerId) -> Option<&PeerSlot> {
        self.slots
            .get(id.0 as usize)
            .and_then(Option::as_ref)
            .filter(|p| !p.removed)
    }

    pub fn get_mut(&mut self, id: PeerId) -> Option<&mut PeerSlot> {
        self.slots
            .get_mut(id.0 as usize)
            .and_then(Option::as_mut)
            .filter(|p| !p.removed)
    }

    /// Source facts for a path from `id`, also for a removed peer.
    pub fn source(&self, id: PeerId) -> SourceInfo {
        match self.slots.get(id.0 as usize).and_then(Option::as_ref) {
            Some(p) => SourceInfo {
                peer: id,
                kind: p.kind.into(),
                asn: p.config.asn,
                router_id: p.router_id,
                address: p.config.address,
            },
            None => self.local,
        }
    }
}
