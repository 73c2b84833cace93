//! Update groups: peers with the same outbound view share one computed set of changes.
//!
//! Two established peers are in the same group when everything export depends on is equal: the
//! peer's role (eBGP, iBGP, route-reflector client), for eBGP its AS (the sender-side loop check
//! and "not back into the AS it came from" depend on it), the next-hop-self addresses, the
//! families, and the send [`Context`] (4-octet AS, add-path, extended messages), which fixes
//! the bytes. The daemon encodes each [`OutUpdate`] of a group once and writes the same bytes to
//! every member except [`OutUpdate::except`]: the peer a route was learned from, which must not
//! get it back (only possible in a route-reflector-client group; eBGP and iBGP non-client groups
//! filter such routes for the whole group). The few per-peer corrections that exclusion needs
//! come separately, addressed to that peer.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use ipnet::{Ipv4Net, Ipv6Net};

use super::path::PeerKind;
use super::path::{Attrs, PeerId};
use super::policy::Export;
use crate::attribute::{Ipv6NextHop, MpReach, MpUnreach, NextHop};
use crate::context::Context;
use crate::family::{Family, FamilySet};
use crate::prefix::Nlri;
use crate::update::Update;

/// An update group, as handed out by [`Rib::establish`](super::Rib::establish).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupId(pub(crate) u32);

impl GroupId {
    pub fn get(self) -> u32 {
        self.0
    }
}

/// What a session's export depends on besides the peer's role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportParams {
    /// How UPDATEs to this peer are encoded.
    pub send: Context,
    /// Negotiated families; others are not sent.
    pub families: FamilySet,
    /// Next hop self for IPv4 routes: our session address, or an IPv6 one with RFC 8950.
    pub next_hop_v4: Option<NextHop>,
    /// Next hop self for IPv6 routes.
    pub next_hop_v6: Option<Ipv6NextHop>,
    /// RFC 8950 was negotiated: IPv4 routes may keep an IPv6 next hop.
    pub extended_next_hop: bool,
    /// Set next hop self on routes sent to this iBGP peer too (always done toward eBGP).
    pub next_hop_self: bool,
    /// Which routes the peer is sent.
    pub export: Export,
}

// By hand: `Context` is not `Hash`. Hashes every field `Eq` compares.
impl Hash for ExportParams {
    fn hash<H: Hasher>(&self, h: &mut H) {
        let Context {
            four_octet_as,
            add_path,
            extended_message,
        } = &self.send;
        (four_octet_as, add_path, extended_message).hash(h);
        self.families.hash(h);
        self.next_hop_v4.hash(h);
        self.next_hop_v6.hash(h);
        self.extended_next_hop.hash(h);
        self.next_hop_self.hash(h);
        self.export.hash(h);
    }
}

/// Everything export depends on: equal keys, equal outbound views.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct GroupKey {
    pub kind: PeerKind,
    /// The peer AS for eBGP groups; 0 for iBGP ones (all share our AS).
    pub asn: u32,
    pub params: ExportParams,
}

#[derive(Debug, Clone)]
pub(crate) struct Group {
    pub key: GroupKey,
    /// Sorted.
    pub members: Vec<PeerId>,
}

impl Group {
    pub fn has(&self, p: PeerId) -> bool {
        self.members.binary_search(&p).is_ok()
    }
}

#[derive(Debug, Default)]
pub(crate) struct Groups {
    by_key: HashMap<GroupKey, GroupId>,
    pub groups: HashMap<GroupId, Group>,
    next: u32,
}

impl Groups {
    pub fn join(&mut self, key: GroupKey, peer: PeerId) -> GroupId {
        let id = match self.by_key.get(&key) {
            Some(id) => *id,
            None => {
                let id = GroupId(self.next);
                self.next = self.next.wrapping_add(1);
                self.by_key.insert(key.clone(), id);
                self.groups.insert(
                    id,
                    Group {
                        key,
                        members: Vec::new(),
                    },
                );
                id
            }
        };
        if let Some(g) = self.groups.get_mut(&id)
            && let Err(at) = g.members.binary_search(&peer)
        {
            g.members.insert(at, peer);
        }
        id
    }

    pub fn leave(&mut self, id: GroupId, peer: PeerId) {
        let Some(g) = self.groups.get_mut(&id) else {
            return;
        };
        g.members.retain(|&m| m != peer);
        if g.members.is_empty() {
            self.by_key.remove(&g.key);
            self.groups.remove(&id);
        }
    }

    pub fn members(&self, id: GroupId) -> &[PeerId] {
        self.groups.get(&id).map_or(&[], |g| &g.members)
    }
}

/// Prefixes of one family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Prefixes {
    V4(Vec<Ipv4Net>),
    V6(Vec<Ipv6Net>),
}

impl Prefixes {
    pub fn family(&self) -> Family {
        match self {
            Prefixes::V4(_) => Family::IPV4_UNICAST,
            Prefixes::V6(_) => Family::IPV6_UNICAST,
        }
    }

    pub fn len(&self) -> usize {
        match self {
            Prefixes::V4(v) => v.len(),
            Prefixes::V6(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One outbound change set: announce `prefixes` with `attrs`, or withdraw them when `attrs` is
/// `None`. Meant to be turned into UPDATEs with [`OutUpdate::to_update`] and
/// [`Update::encode_split`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutUpdate {
    /// The attributes as sent (next hop resolved), or `None` for a withdrawal.
    pub attrs: Option<Arc<Attrs>>,
    pub prefixes: Prefixes,
    /// For a group: the member that must not receive this announcement (it is the source).
    pub except: Option<PeerId>,
}

impl OutUpdate {
    /// This change as complete messages: [`OutUpdate::to_update`] encoded with
    /// [`Update::encode_split`], byte for byte.
    pub fn encode_split(&self, ctx: &Context) -> Result<Vec<Vec<u8>>, crate::EncodeError> {
        // The common case, IPv4 with an IPv4 next hop in one message, straight from the shared
        // attributes.
        if let (Some(a), Prefixes::V4(v)) = (&self.attrs, &self.prefixes)
            && !matches!(a.next_hop, Some(NextHop::V6(_)))
        {
            let nh = nh_or_unspecified(a.next_hop);
            if let Some(m) = Update::encode_ipv4_announcement(&a.attrs, nh, v, ctx)? {
                return Ok(vec![m]);
            }
        }
        self.to_update().encode_split(ctx)
    }

    /// The UPDATE carrying this change: classic fields for IPv4 with an IPv4 next hop, MP_REACH
    /// for IPv4 with an IPv6 next hop (RFC 8950) and for IPv6, MP_UNREACH for IPv6 withdrawals.
    pub fn to_update(&self) -> Update {
        let Some(a) = &self.attrs else {
            return match &self.prefixes {
                Prefixes::V4(v) => Update {
                    withdrawn: v.iter().copied().map(Nlri::new).collect(),
                    ..Update::default()
                },
                Prefixes::V6(v) => Update {
                    mp_unreach: Some(MpUnreach::Ipv6Unicast(
                        v.iter().copied().map(Nlri::new).collect(),
                    )),
                    ..Update::default()
                },
            };
        };
        let mut attributes = a.attrs.clone();
        match (&self.prefixes, a.next_hop) {
            (Prefixes::V4(v), Some(NextHop::V4(_)) | None) => {
                attributes.next_hop = Some(nh_or_unspecified(a.next_hop));
                Update {
                    attributes,
                    nlri: v.iter().copied().map(Nlri::new).collect(),
                    ..Update::default()
                }
            }
            (Prefixes::V4(v), Some(NextHop::V6(nh))) => Update {
                attributes,
                mp_reach: Some(MpReach::Ipv4Unicast {
                    next_hop: NextHop::V6(nh),
                    nlri: v.iter().copied().map(Nlri::new).collect(),
                }),
                ..Update::default()
            },
            (Prefixes::V6(v), nh) => Update {
                attributes,
                mp_reach: Some(MpReach::Ipv6Unicast {
                    next_hop: match nh {
                        Some(NextHop::V6(n)) => n,
                        // An IPv4 next hop for IPv6 routes: its IPv4-mapped form (RFC 4798 §2).
                        Some(NextHop::V4(a)) => Ipv6NextHop {
                            global: a.to_ipv6_mapped(),
                            link_local: None,
                        },
                        None => Ipv6NextHop {
                            global: std::net::Ipv6Addr::UNSPECIFIED,
                            link_local: None,
                        },
                    },
                    nlri: v.iter().copied().map(Nlri::new).collect(),
                }),
                ..Update::default()
            },
        }
    }
}

fn nh_or_unspecified(nh: Option<NextHop>) -> std::net::Ipv4Addr {
    match nh {
        Some(NextHop::V4(a)) => a,
        _ => std::net::Ipv4Addr::UNSPECIFIED,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::attribute::{AsPath, LargeCommunity, Origin, PathAttributes};
    use std::net::Ipv4Addr;

    /// Encoding straight from the shared attributes gives the bytes of the UPDATE built from
    /// them, in every context and whether or not the prefixes fit in one message.
    #[test]
    fn encoding_without_building_the_update_gives_the_same_bytes() {
        let attrs = |next_hop: Option<NextHop>| {
            Arc::new(Attrs {
                next_hop,
                prepend: 0,
                attrs: PathAttributes {
                    origin: Some(Origin::Igp),
                    as_path: Some(AsPath::sequence([64512, 4_200_000_000])),
                    med: Some(7),
                    large_communities: vec![LargeCommunity {
                        global: 64512,
                        local1: 1,
                        local2: 2,
                    }],
                    // Stale in the shared copy: the resolved next hop replaces it.
                    next_hop: Some(Ipv4Addr::new(192, 0, 2, 9)),
                    ..PathAttributes::default()
                },
            })
        };
        let v4 = |n: u32| Ipv4Net::new(Ipv4Addr::from(0x0a00_0000 + (n << 8)), 24).unwrap();
        let mut with_add_path = Context::four_octet();
        with_add_path.add_path.insert(Family::IPV4_UNICAST);
        let extended = Context {
            extended_message: true,
            ..Context::four_octet()
        };
        let contexts = [
            Context::four_octet(),
            Context::default(),
            with_add_path,
            extended,
        ];
        for nh in [Some(NextHop::V4(Ipv4Addr::new(198, 18, 0, 1))), None] {
            for n in [1, 2, 900, 2_000] {
                let out = OutUpdate {
                    attrs: Some(attrs(nh)),
                    prefixes: Prefixes::V4((0..n).map(v4).collect()),
                    except: None,
                };
                for ctx in &contexts {
                    let fast = out.encode_split(ctx).unwrap();
                    assert_eq!(
                        fast,
                        out.to_update().encode_split(ctx).unwrap(),
                        "{n} {ctx:?}"
                    );
                    assert!(!fast.is_empty());
                }
            }
        }
    }
}
