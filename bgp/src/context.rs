//! What the two OPENs negotiated, and the codec context derived from it. Decoding and encoding
//! are pure functions of bytes plus this context.

use std::net::Ipv4Addr;

use crate::capability::{Capability, ExtendedNextHop, GracefulRestart, LlgrFamily};
use crate::family::{Family, FamilySet};
use crate::open::Open;

/// Largest message without RFC 8654 extended messages.
pub const MAX_MESSAGE_LEN: usize = 4096;
/// Largest message with extended messages.
pub const MAX_EXTENDED_MESSAGE_LEN: usize = 65535;

/// How to read or write UPDATEs in one direction of a session.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Context {
    /// AS numbers are 4 octets wide (RFC 6793).
    pub four_octet_as: bool,
    /// Families whose NLRI carry path identifiers in this direction (RFC 7911).
    pub add_path: FamilySet,
    /// Messages may be up to 65535 octets (RFC 8654).
    pub extended_message: bool,
}

impl Context {
    /// The context of a session where both sides sent the 4-octet AS capability and nothing else
    /// changes the wire format: what every modern daemon negotiates.
    pub fn four_octet() -> Self {
        Context {
            four_octet_as: true,
            ..Context::default()
        }
    }

    pub fn max_message_len(&self) -> usize {
        if self.extended_message {
            MAX_EXTENDED_MESSAGE_LEN
        } else {
            MAX_MESSAGE_LEN
        }
    }

    #[inline]
    pub fn add_path(&self, family: Family) -> bool {
        !self.add_path.is_empty() && self.add_path.contains(family)
    }
}

/// The outcome of an OPEN exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    /// For decoding what the peer sends.
    pub receive: Context,
    /// For encoding what we send.
    pub send: Context,
    /// Families both sides announced.
    pub families: FamilySet,
    /// min(local, remote) (RFC 4271 §4.2); 0 disables keepalives and the hold timer.
    pub hold_time: u16,
    pub route_refresh: bool,
    pub enhanced_route_refresh: bool,
    /// IPv4 NLRI families that may use IPv6 next hops (RFC 8950), announced by both sides.
    pub extended_next_hop: Vec<ExtendedNextHop>,
    /// The peer's graceful restart capability, if it sent one.
    pub peer_graceful_restart: Option<GracefulRestart>,
    pub peer_llgr: Vec<LlgrFamily>,
    pub peer_asn: u32,
    pub peer_id: Ipv4Addr,
}

/// A capability is used only when both sides sent it (RFC 5492 §3).
pub fn negotiate(local: &Open, remote: &Open) -> Negotiated {
    let both = |code: u8| local.has(code) && remote.has(code);
    use crate::capability::code;

    let add_paths = |open: &Open| -> Vec<crate::capability::AddPathFamily> {
        open.capabilities
            .iter()
            .filter_map(|c| match c {
                Capability::AddPath(v) => Some(v.clone()),
                _ => None,
            })
            .flatten()
            .collect()
    };
    let (ours, theirs) = (add_paths(local), add_paths(remote));
    let mut receive_ap = FamilySet::new();
    let mut send_ap = FamilySet::new();
    for o in &ours {
        for t in theirs.iter().filter(|t| t.family == o.family) {
            if o.mode.can_receive() && t.mode.can_send() {
                receive_ap.insert(o.family);
            }
            if o.mode.can_send() && t.mode.can_receive() {
                send_ap.insert(o.family);
            }
        }
    }

    let four_octet_as = both(code::FOUR_OCTET_AS);
    let extended_message = both(code::EXTENDED_MESSAGE);
    let remote_families = remote.families();
    let families: FamilySet = local
        .families()
        .into_iter()
        .filter(|f| remote_families.contains(f))
        .collect();

    let enh = |open: &Open| -> Vec<ExtendedNextHop> {
        open.capabilities
            .iter()
            .filter_map(|c| match c {
                Capability::ExtendedNextHop(v) => Some(v.clone()),
                _ => None,
            })
            .flatten()
            .collect()
    };
    let theirs_enh = enh(remote);
    let extended_next_hop = enh(local)
        .into_iter()
        .filter(|e| theirs_enh.contains(e))
        .collect();

    Negotiated {
        receive: Context {
            four_octet_as,
            add_path: receive_ap,
            extended_message,
        },
        send: Context {
            four_octet_as,
            add_path: send_ap,
            extended_message,
        },
        families,
        hold_time: local.hold_time.min(remote.hold_time),
        route_refresh: both(code::ROUTE_REFRESH),
        enhanced_route_refresh: both(code::ENHANCED_ROUTE_REFRESH),
        extended_next_hop,
        peer_graceful_restart: remote.capabilities.iter().find_map(|c| match c {
            Capability::GracefulRestart(g) => Some(g.clone()),
            _ => None,
        }),
        peer_llgr: remote
            .capabilities
            .iter()
            .filter_map(|c| match c {
                Capability::LongLivedGracefulRestart(v) => Some(v.clone()),
                _ => None,
            })
            .flatten()
            .collect(),
        peer_asn: remote.asn(),
        peer_id: remote.bgp_id,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capability::{AddPathFamily, AddPathMode};

    fn open(asn: u32, caps: Vec<Capability>) -> Open {
        Open::new(asn, 90, Ipv4Addr::new(198, 18, 0, 1), caps)
    }

    #[test]
    fn add_path_directions() {
        let local = open(
            65001,
            vec![Capability::AddPath(vec![AddPathFamily {
                family: Family::IPV4_UNICAST,
                mode: AddPathMode::Receive,
            }])],
        );
        let remote = open(
            65002,
            vec![Capability::AddPath(vec![AddPathFamily {
                family: Family::IPV4_UNICAST,
                mode: AddPathMode::Both,
            }])],
        );
        let n = negotiate(&local, &remote);
        assert!(n.receive.add_path(Family::IPV4_UNICAST));
        assert!(!n.send.add_path(Family::IPV4_UNICAST));
        assert!(n.receive.four_octet_as);
    }

    #[test]
    fn capability_needs_both_sides() {
        let mut remote = open(65002, vec![Capability::ExtendedMessage]);
        remote
            .capabilities
            .retain(|c| !matches!(c, Capability::FourOctetAs(_)));
        let local = open(4_200_000_000, vec![Capability::RouteRefresh]);
        let n = negotiate(&local, &remote);
        assert!(!n.receive.four_octet_as);
        assert!(!n.receive.extended_message);
        assert!(!n.route_refresh);
        assert_eq!(n.peer_asn, 65002);
        assert_eq!(
            n.families.iter().collect::<Vec<_>>(),
            vec![Family::IPV4_UNICAST]
        );
    }
}
