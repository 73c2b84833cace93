//! From the RIB to the outside, without I/O: what each session's outbox gets (the full table
//! when it comes up, group changes after each drain, a refreshed table) and what the kernel
//! should hold. Nothing here waits: an outbox that is not read only grows its coalesced set.

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::Arc;

use bgp::attribute::{Ipv6NextHop, NextHop};
use bgp::rib::{BestChange, Export, ExportParams, GroupId, OutUpdate, PeerId, Rib};
use bgp::{Family, Negotiated, RefreshSubtype, Update};
use ipnet::IpNet;

use super::outbox::{self, Outbox};
use super::session::Output;
use crate::fib::plan::{METRIC_EBGP, METRIC_IBGP, Want};

/// What the RIB needs to know to export to a session that just came up: next hops from the
/// local address of its connection (RFC 4271 §5.1.3, RFC 8950) and what the peer may get.
pub(crate) fn params(n: &Negotiated, local: IpAddr, export: Export) -> ExportParams {
    let local = local.to_canonical();
    let ext_nh = n
        .extended_next_hop
        .iter()
        .any(|e| e.family == Family::IPV4_UNICAST);
    let (next_hop_v4, next_hop_v6) = match local {
        IpAddr::V4(a) => (
            Some(NextHop::V4(a)),
            // No IPv6 address on an IPv4 session: the IPv4-mapped form, as FRR sends.
            Some(Ipv6NextHop {
                global: a.to_ipv6_mapped(),
                link_local: None,
            }),
        ),
        IpAddr::V6(a) => {
            let nh6 = Ipv6NextHop {
                global: a,
                link_local: None,
            };
            (ext_nh.then_some(NextHop::V6(nh6)), Some(nh6))
        }
    };
    ExportParams {
        send: n.send.clone(),
        families: n.families.clone(),
        next_hop_v4,
        next_hop_v6,
        extended_next_hop: ext_nh,
        next_hop_self: false,
        export,
    }
}

fn push_message(o: &mut Outbox, m: bgp::Message) {
    if let Ok(bytes) = m.encode(o.context()) {
        o.push_message(Arc::new(bytes));
    }
}

/// A session came up: the full table, then End-of-RIB for every family (RFC 4724 §2).
pub(crate) fn initial_table(output: &Output, table: &[OutUpdate], families: &[Family]) {
    output.with(|o| {
        for out in table {
            o.push_own(out);
        }
        for f in families {
            push_message(o, bgp::Message::Update(Update::end_of_rib(*f)));
        }
    });
}

/// The table of one family again, after the peer asked for it (RFC 2918). With enhanced route
/// refresh it is bracketed by BoRR/EoRR, so the peer can drop what we no longer advertise (RFC
/// 7313 §4). Returns false when a refresh of that family is still on its way.
pub(crate) fn refreshed_table(
    output: &Output,
    family: Family,
    enhanced: bool,
    table: &[OutUpdate],
) -> bool {
    output
        .with(|o| {
            if !o.start_refresh(family) {
                return false;
            }
            let marker = |o: &mut Outbox, subtype| {
                push_message(
                    o,
                    bgp::Message::RouteRefresh(bgp::RouteRefresh { family, subtype }),
                )
            };
            if enhanced {
                marker(o, RefreshSubtype::BeginningOfRefresh);
            }
            for out in table {
                o.push_own(out);
            }
            if enhanced {
                marker(o, RefreshSubtype::EndOfRefresh);
            }
            o.end_refresh(family);
            true
        })
        .unwrap_or(true)
}

/// The table again without asking the peer anything (soft reset out).
pub(crate) fn table_again(output: &Output, table: &[OutUpdate]) {
    output.with(|o| {
        for out in table {
            o.push_own(out);
        }
    });
}

/// One established session as the drain sees it.
pub(crate) struct Member<'a> {
    pub send: &'a bgp::Context,
    pub output: &'a Output,
}

/// Puts a drain's changes into the members' outboxes. A group's change is encoded once, when
/// its first member needs the bytes, and shared; a member whose outbox is full coalesces it by
/// prefix instead, so the others are written to as fast as they read.
pub(crate) fn write_drained(
    groups: Vec<(GroupId, Vec<OutUpdate>)>,
    peers: Vec<(PeerId, Vec<OutUpdate>)>,
    rib: &Rib,
    members: &HashMap<PeerId, Member<'_>>,
) {
    for (group, outs) in groups {
        let ids = rib.group_members(group);
        let Some(ctx) = ids.iter().find_map(|m| members.get(m).map(|m| m.send)) else {
            continue;
        };
        for out in &outs {
            let mut msgs: Option<Vec<Arc<Vec<u8>>>> = None;
            for id in ids.iter().filter(|m| Some(**m) != out.except) {
                if let Some(m) = members.get(id) {
                    m.output.with(|o| {
                        o.push(out, |_| {
                            msgs.get_or_insert_with(|| outbox::encode(out, ctx)).clone()
                        })
                    });
                }
            }
        }
    }
    for (peer, outs) in peers {
        if let Some(m) = members.get(&peer) {
            m.output.with(|o| {
                for out in &outs {
                    o.push_own(out);
                }
            });
        }
    }
}

/// What the kernel should hold for each changed prefix: the ECMP next hops of a learned best
/// path, with the metric of its session's kind. Local paths are not installed; `peer_asn`
/// names the AS of a RIB peer.
pub(crate) fn fib_changes(
    best: &[BestChange],
    local_asn: u32,
    peer_asn: impl Fn(PeerId) -> Option<u32>,
) -> Vec<(IpNet, Option<Want>)> {
    best.iter()
        .map(|b| {
            let want = b.best.as_ref().and_then(|r| {
                let asn = peer_asn(r.peer)?;
                let next_hops: BTreeSet<IpAddr> = r
                    .next_hops
                    .iter()
                    .filter_map(|nh| match nh {
                        NextHop::V4(a) => Some(IpAddr::V4(*a)),
                        // A link-local-only next hop would need the interface: not installed.
                        NextHop::V6(v) if !v.global.is_unspecified() => Some(IpAddr::V6(v.global)),
                        NextHop::V6(_) => None,
                    })
                    .collect();
                (!next_hops.is_empty()).then_some(Want {
                    next_hops,
                    metric: if asn == local_asn {
                        METRIC_IBGP
                    } else {
                        METRIC_EBGP
                    },
                })
            });
            (b.prefix, want)
        })
        .collect()
}
