//! RIB scenarios (relay, iBGP split horizon, route reflection, treat-as-withdraw, add-path,
//! max-prefix, RFC 8950, local origination) and property tests of selection and export.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::num::NonZeroUsize;
use std::sync::Arc;

use bgp::attribute::{Community, Ipv6NextHop, MpReach, MpUnreach, NextHop};
use bgp::error::ErrorKind;
use bgp::rib::{
    Attrs, BestReport, DecisionConfig, ExportParams, GroupId, LocalRoute, OutUpdate, PeerConfig,
    PeerId, Prefixes, Rib, RibConfig, Step,
};
use bgp::{
    AsPath, Context, ErrorAction, Family, FamilySet, Message, Nlri, Origin, PathAttributes, Update,
    UpdateError,
};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use proptest::prelude::*;

const LOCAL_AS: u32 = 65000;
const ROUTER_ID: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 254);

fn rib_with(decision: DecisionConfig) -> Rib {
    Rib::new(RibConfig {
        asn: LOCAL_AS,
        router_id: ROUTER_ID,
        cluster_id: None,
        decision,
    })
}

fn rib() -> Rib {
    rib_with(DecisionConfig::default())
}

fn v4(s: &str) -> Ipv4Net {
    s.parse().unwrap()
}

fn params(local: [u8; 4]) -> ExportParams {
    ExportParams {
        send: Context::four_octet(),
        families: [Family::IPV4_UNICAST, Family::IPV6_UNICAST]
            .into_iter()
            .collect::<FamilySet>(),
        next_hop_v4: Some(NextHop::V4(Ipv4Addr::from(local))),
        next_hop_v6: Some(Ipv6NextHop {
            global: "2001:db8::fe".parse().unwrap(),
            link_local: None,
        }),
        extended_next_hop: false,
        next_hop_self: false,
        export: Default::default(),
    }
}

/// Adds and establishes a peer with id 10.0.0.n at 192.0.2.n, local address 192.0.2.254.
fn peer(rib: &mut Rib, asn: u32, n: u8, rr_client: bool) -> (PeerId, GroupId) {
    let id = rib
        .add_peer(PeerConfig {
            asn,
            address: IpAddr::V4(Ipv4Addr::new(192, 0, 2, n)),
            rr_client,
            max_prefixes: None,
            import: Default::default(),
        })
        .unwrap();
    let g = rib
        .establish(id, Ipv4Addr::new(10, 0, 0, n), params([192, 0, 2, 254]))
        .unwrap();
    (id, g)
}

fn attrs(path: &[u32], nh: [u8; 4]) -> PathAttributes {
    PathAttributes {
        origin: Some(Origin::Igp),
        as_path: Some(AsPath::sequence(path.iter().copied())),
        next_hop: Some(Ipv4Addr::from(nh)),
        ..Default::default()
    }
}

fn announce(prefixes: &[&str], a: PathAttributes) -> Update {
    Update {
        attributes: a,
        nlri: prefixes.iter().map(|p| Nlri::new(v4(p))).collect(),
        ..Default::default()
    }
}

fn withdraw(prefixes: &[&str]) -> Update {
    Update {
        withdrawn: prefixes.iter().map(|p| Nlri::new(v4(p))).collect(),
        ..Default::default()
    }
}

fn group_updates(d: &bgp::rib::Drained, g: GroupId) -> Vec<OutUpdate> {
    d.groups
        .iter()
        .find(|(id, _)| *id == g)
        .map(|(_, v)| v.clone())
        .unwrap_or_default()
}

fn v4s(p: &Prefixes) -> Vec<Ipv4Net> {
    match p {
        Prefixes::V4(v) => {
            let mut v = v.clone();
            v.sort();
            v
        }
        Prefixes::V6(_) => panic!("expected IPv4"),
    }
}

#[test]
fn ebgp_to_ebgp_relay_prepends_and_sets_next_hop_self() {
    let mut rib = rib();
    let (a, ga) = peer(&mut rib, 65001, 1, false);
    let (_b, gb) = peer(&mut rib, 65002, 2, false);
    assert_ne!(ga, gb);
    let mut at = attrs(&[65001, 65100], [192, 0, 2, 1]);
    at.med = Some(50);
    at.local_pref = Some(999);
    let r = rib
        .receive(a, announce(&["198.51.100.0/24", "203.0.113.0/24"], at), 1)
        .unwrap();
    assert_eq!(r.announced, 2);
    let d = rib.drain();
    assert_eq!(d.best.len(), 2);
    // Nothing back to AS 65001.
    assert!(group_updates(&d, ga).is_empty());
    let out = group_updates(&d, gb);
    assert_eq!(out.len(), 1);
    let u = &out[0];
    assert_eq!(
        v4s(&u.prefixes),
        vec![v4("198.51.100.0/24"), v4("203.0.113.0/24")]
    );
    let sent = u.attrs.as_ref().unwrap();
    assert_eq!(
        sent.attrs.as_path,
        Some(AsPath::sequence([LOCAL_AS, 65001, 65100]))
    );
    assert_eq!(
        sent.next_hop,
        Some(NextHop::V4(Ipv4Addr::new(192, 0, 2, 254)))
    );
    assert_eq!(sent.attrs.local_pref, None);
    assert_eq!(sent.attrs.med, None);

    // The UPDATE the daemon sends decodes back to the same facts.
    let ctx = Context::four_octet();
    let msgs = u.to_update().encode_split(&ctx).unwrap();
    assert_eq!(msgs.len(), 1);
    let Message::Update(back) = Message::decode(&msgs[0], &ctx).unwrap() else {
        panic!()
    };
    assert_eq!(
        back.attributes.next_hop,
        Some(Ipv4Addr::new(192, 0, 2, 254))
    );
    assert_eq!(back.nlri.len(), 2);

    // Withdrawal is relayed too.
    rib.receive(a, withdraw(&["203.0.113.0/24"]), 2).unwrap();
    let d = rib.drain();
    let out = group_updates(&d, gb);
    assert_eq!(out.len(), 1);
    assert!(out[0].attrs.is_none());
    assert_eq!(v4s(&out[0].prefixes), vec![v4("203.0.113.0/24")]);
    assert_eq!(d.best.len(), 1);
    assert_eq!(d.best[0].best, None);
}

/// A drain that only counts best-path changes sends the same UPDATEs and counts what a full
/// report lists.
#[test]
fn counting_drain_counts_what_a_full_one_reports() {
    let run = |report: BestReport| {
        let mut rib = rib();
        let (a, _) = peer(&mut rib, 65001, 1, false);
        let (b, gb) = peer(&mut rib, 65002, 2, false);
        let at = attrs(&[65001], [192, 0, 2, 1]);
        rib.receive(a, announce(&["198.51.100.0/24", "203.0.113.0/24"], at), 1)
            .unwrap();
        let first = rib.drain_reporting(report);
        // One prefix goes, the other gets a second path that does not win: one change.
        rib.receive(a, withdraw(&["203.0.113.0/24"]), 2).unwrap();
        let longer = attrs(&[65002, 65100], [192, 0, 2, 2]);
        rib.receive(b, announce(&["198.51.100.0/24"], longer), 2)
            .unwrap();
        let second = rib.drain_reporting(report);
        (first, second, gb)
    };
    let (f1, s1, g) = run(BestReport::Changes);
    let (f2, s2, _) = run(BestReport::Count);
    assert_eq!((f1.best.len(), f1.best_changed), (2, 2));
    assert_eq!((s1.best.len(), s1.best_changed), (1, 1));
    assert_eq!((f2.best.len(), f2.best_changed), (0, 2));
    assert_eq!((s2.best.len(), s2.best_changed), (0, 1));
    assert_eq!(group_updates(&f1, g), group_updates(&f2, g));
    assert_eq!(group_updates(&s1, g), group_updates(&s2, g));
    assert!(!s2.is_empty());
}

#[test]
fn ebgp_local_pref_is_ignored_and_default_applies() {
    let mut rib = rib_with(DecisionConfig {
        ebgp_local_pref: 70,
        ..DecisionConfig::default()
    });
    let (a, _) = peer(&mut rib, 65001, 1, false);
    let (i, gi) = peer(&mut rib, LOCAL_AS, 3, false);
    let mut at = attrs(&[65001], [192, 0, 2, 1]);
    at.local_pref = Some(500);
    rib.receive(a, announce(&["198.51.100.0/24"], at), 1)
        .unwrap();
    let route = rib.lookup(IpNet::V4(v4("198.51.100.0/24"))).unwrap();
    assert_eq!(route.paths[0].attrs.attrs.local_pref, None);
    let d = rib.drain();
    let out = group_updates(&d, gi);
    let sent = out[0].attrs.as_ref().unwrap();
    // To iBGP: LOCAL_PREF present with the configured eBGP default, next hop unchanged.
    assert_eq!(sent.attrs.local_pref, Some(70));
    assert_eq!(
        sent.next_hop,
        Some(NextHop::V4(Ipv4Addr::new(192, 0, 2, 1)))
    );
    assert_eq!(sent.attrs.as_path, Some(AsPath::sequence([65001])));
    // An iBGP path with LOCAL_PREF 80 beats it on local-pref.
    let mut at = attrs(&[65009], [192, 0, 2, 3]);
    at.local_pref = Some(80);
    rib.receive(i, announce(&["198.51.100.0/24"], at), 2)
        .unwrap();
    let route = rib.lookup(IpNet::V4(v4("198.51.100.0/24"))).unwrap();
    assert_eq!(route.paths[0].peer, i);
    assert_eq!(route.paths[0].reason, Some(Step::LocalPref));
}

#[test]
fn ibgp_full_mesh_split_horizon() {
    let mut rib = rib();
    let (i1, g1) = peer(&mut rib, LOCAL_AS, 1, false);
    let (i2, g2) = peer(&mut rib, LOCAL_AS, 2, false);
    let (_e, ge) = peer(&mut rib, 65002, 3, false);
    // Same role and export parameters: one group.
    assert_eq!(g1, g2);
    assert_eq!(rib.group_members(g1), &[i1, i2]);
    let mut at = attrs(&[65100], [192, 0, 2, 1]);
    at.local_pref = Some(200);
    rib.receive(i1, announce(&["198.51.100.0/24"], at), 1)
        .unwrap();
    let d = rib.drain();
    assert!(group_updates(&d, g1).is_empty(), "iBGP-learned to iBGP");
    let out = group_updates(&d, ge);
    assert_eq!(
        out[0].attrs.as_ref().unwrap().attrs.as_path,
        Some(AsPath::sequence([LOCAL_AS, 65100]))
    );
    assert!(d.peers.is_empty());
    assert!(rib.peer_table(i2).unwrap().is_empty());
}

#[test]
fn route_reflector_reflects_client_routes_to_everyone() {
    let mut rib = Rib::new(RibConfig {
        asn: LOCAL_AS,
        router_id: ROUTER_ID,
        cluster_id: Some(Ipv4Addr::new(10, 255, 0, 1)),
        decision: DecisionConfig::default(),
    });
    let (c1, gc) = peer(&mut rib, LOCAL_AS, 1, true);
    let (c2, gc2) = peer(&mut rib, LOCAL_AS, 2, true);
    let (n, gn) = peer(&mut rib, LOCAL_AS, 3, false);
    assert_eq!(gc, gc2);
    assert_ne!(gc, gn);

    rib.receive(
        c1,
        announce(&["198.51.100.0/24"], attrs(&[], [192, 0, 2, 1])),
        1,
    )
    .unwrap();
    let d = rib.drain();
    // To the non-client: reflected, with ORIGINATOR_ID and CLUSTER_LIST.
    let out = group_updates(&d, gn);
    let sent = out[0].attrs.as_ref().unwrap();
    assert_eq!(sent.attrs.originator_id, Some(Ipv4Addr::new(10, 0, 0, 1)));
    assert_eq!(sent.attrs.cluster_list, vec![Ipv4Addr::new(10, 255, 0, 1)]);
    assert_eq!(sent.attrs.local_pref, Some(100));
    // To the clients' group: everyone but the source.
    let out = group_updates(&d, gc);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].except, Some(c1));
    assert!(
        rib.adj_rib_out(c1, Family::IPV4_UNICAST)
            .unwrap()
            .is_empty()
    );
    assert_eq!(rib.adj_rib_out(c2, Family::IPV4_UNICAST).unwrap().len(), 1);

    // A non-client's route goes to clients only.
    rib.receive(
        n,
        announce(&["203.0.113.0/24"], attrs(&[], [192, 0, 2, 3])),
        2,
    )
    .unwrap();
    let d = rib.drain();
    assert!(group_updates(&d, gn).is_empty());
    assert_eq!(group_updates(&d, gc).len(), 1);
    assert_eq!(group_updates(&d, gc)[0].except, None);

    // c2 now wins 198.51.100.0/24: c2 must lose the route it had from c1 (a per-peer
    // correction), c1 gets c2's route through the group update.
    let mut better = attrs(&[], [192, 0, 2, 2]);
    better.local_pref = Some(300);
    rib.receive(c2, announce(&["198.51.100.0/24"], better), 3)
        .unwrap();
    let d = rib.drain();
    let out = group_updates(&d, gc);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].except, Some(c2));
    assert_eq!(d.peers.len(), 1);
    assert_eq!(d.peers[0].0, c2);
    assert!(d.peers[0].1[0].attrs.is_none());

    // Loops: our cluster id in CLUSTER_LIST, our router id as ORIGINATOR_ID.
    let mut looped = attrs(&[], [192, 0, 2, 3]);
    looped.cluster_list = vec![Ipv4Addr::new(10, 255, 0, 1)];
    looped.originator_id = Some(Ipv4Addr::new(10, 0, 0, 9));
    let r = rib
        .receive(n, announce(&["192.0.2.128/25"], looped), 4)
        .unwrap();
    assert_eq!(r.rejected, 1);
    let mut looped = attrs(&[], [192, 0, 2, 3]);
    looped.originator_id = Some(ROUTER_ID);
    let r = rib
        .receive(n, announce(&["192.0.2.128/25"], looped), 4)
        .unwrap();
    assert_eq!(r.rejected, 1);
    assert!(rib.lookup(IpNet::V4(v4("192.0.2.128/25"))).is_none());
}

#[test]
fn as_path_loop_is_a_withdrawal() {
    let mut rib = rib();
    let (a, _) = peer(&mut rib, 65001, 1, false);
    rib.receive(
        a,
        announce(&["198.51.100.0/24"], attrs(&[65001], [192, 0, 2, 1])),
        1,
    )
    .unwrap();
    let r = rib
        .receive(
            a,
            announce(
                &["198.51.100.0/24"],
                attrs(&[65001, LOCAL_AS], [192, 0, 2, 1]),
            ),
            2,
        )
        .unwrap();
    assert_eq!((r.rejected, r.withdrawn), (1, 1));
    assert!(rib.lookup(IpNet::V4(v4("198.51.100.0/24"))).is_none());
}

#[test]
fn treat_as_withdraw_removes_the_prefixes() {
    let mut rib = rib();
    let (a, _) = peer(&mut rib, 65001, 1, false);
    rib.receive(
        a,
        announce(&["198.51.100.0/24"], attrs(&[65001], [192, 0, 2, 1])),
        1,
    )
    .unwrap();
    rib.drain();
    let mut u = announce(&["198.51.100.0/24"], attrs(&[65001], [192, 0, 2, 1]));
    u.errors.push(UpdateError {
        offset: 23,
        action: ErrorAction::TreatAsWithdraw,
        kind: ErrorKind::MalformedAsPath("bad segment"),
    });
    let r = rib.receive(a, u, 2).unwrap();
    assert_eq!((r.rejected, r.withdrawn), (1, 1));
    assert_eq!(rib.prefix_count(Family::IPV4_UNICAST), 0);
    let d = rib.drain();
    assert_eq!(d.best.len(), 1);
    assert_eq!(rib.interned_count(), 0);
}

#[test]
fn end_of_rib_is_not_a_route() {
    let mut rib = rib();
    let (a, _) = peer(&mut rib, 65001, 1, false);
    let r = rib
        .receive(a, Update::end_of_rib(Family::IPV6_UNICAST), 1)
        .unwrap();
    assert_eq!(r.end_of_rib, Some(Family::IPV6_UNICAST));
    assert!(rib.drain().is_empty());
}

#[test]
fn add_path_ids_are_distinct_paths() {
    let mut rib = rib_with(DecisionConfig {
        max_paths: NonZeroUsize::new(4).unwrap(),
        ..DecisionConfig::default()
    });
    let (a, _) = peer(&mut rib, 65001, 1, false);
    let p = v4("198.51.100.0/24");
    let one = Update {
        attributes: attrs(&[65001], [192, 0, 2, 1]),
        nlri: vec![Nlri::with_path_id(p, 1)],
        ..Default::default()
    };
    let two = Update {
        attributes: attrs(&[65001], [192, 0, 2, 11]),
        nlri: vec![Nlri::with_path_id(p, 2)],
        ..Default::default()
    };
    rib.receive(a, one, 1).unwrap();
    rib.receive(a, two, 1).unwrap();
    let route = rib.lookup(IpNet::V4(p)).unwrap();
    assert_eq!(route.paths.len(), 2);
    assert_eq!(route.paths[0].path_id, 1);
    assert!(route.paths.iter().all(|p| p.multipath));
    assert_eq!(rib.adj_rib_in(a, Family::IPV4_UNICAST).len(), 2);
    let d = rib.drain();
    let best = d.best[0].best.as_ref().unwrap();
    assert_eq!(best.next_hops.len(), 2);
    let w = Update {
        withdrawn: vec![Nlri::with_path_id(p, 1)],
        ..Default::default()
    };
    rib.receive(a, w, 2).unwrap();
    let route = rib.lookup(IpNet::V4(p)).unwrap();
    assert_eq!(route.paths.len(), 1);
    assert_eq!(route.paths[0].path_id, 2);
    assert_eq!(rib.path_count(a), 1);
}

#[test]
fn max_prefix_is_signalled() {
    let mut rib = rib();
    let a = rib
        .add_peer(PeerConfig {
            asn: 65001,
            address: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
            rr_client: false,
            max_prefixes: Some(2),
            import: Default::default(),
        })
        .unwrap();
    rib.establish(a, Ipv4Addr::new(10, 0, 0, 1), params([192, 0, 2, 254]))
        .unwrap();
    let at = || attrs(&[65001], [192, 0, 2, 1]);
    let r = rib
        .receive(a, announce(&["198.51.100.0/24", "203.0.113.0/24"], at()), 1)
        .unwrap();
    assert!(!r.max_prefix_exceeded);
    // Re-announcing held prefixes does not count twice.
    let r = rib
        .receive(a, announce(&["198.51.100.0/24"], at()), 1)
        .unwrap();
    assert!(!r.max_prefix_exceeded);
    let r = rib
        .receive(a, announce(&["192.0.2.0/25"], at()), 1)
        .unwrap();
    assert!(r.max_prefix_exceeded);
    // The daemon sends Cease/1 and closes: everything from the peer goes.
    assert_eq!(rib.close(a).unwrap(), 3);
    assert_eq!(rib.prefix_count(Family::IPV4_UNICAST), 0);
    rib.drain();
    assert_eq!(rib.interned_count(), 0);
}

#[test]
fn import_list_denies_before_counting() {
    use bgp::rib::{Action, PrefixList, PrefixRule};
    let mut rib = rib();
    let rule = |p: &str, ge, le, a| PrefixRule::new(p.parse().unwrap(), ge, le, a).unwrap();
    let a = rib
        .add_peer(PeerConfig {
            asn: 65001,
            address: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
            rr_client: false,
            max_prefixes: Some(1),
            import: PrefixList::new(vec![
                rule("198.51.100.0/24", None, Some(32), Action::Deny),
                rule("198.18.0.0/15", Some(24), Some(24), Action::Permit),
            ]),
        })
        .unwrap();
    let (_b, gb) = peer(&mut rib, 65002, 2, false);
    rib.establish(a, Ipv4Addr::new(10, 0, 0, 1), params([192, 0, 2, 254]))
        .unwrap();
    let at = || attrs(&[65001], [192, 0, 2, 1]);
    let r = rib
        .receive(
            a,
            announce(
                &[
                    "198.18.1.0/24",
                    "198.18.2.0/25",
                    "198.51.100.0/24",
                    "203.0.113.0/24",
                ],
                at(),
            ),
            1,
        )
        .unwrap();
    assert_eq!((r.announced, r.filtered), (1, 3));
    // Only the permitted prefix counts: one path, at the limit, not over it.
    assert!(!r.max_prefix_exceeded);
    assert_eq!(rib.path_count(a), 1);
    assert_eq!(rib.prefix_count(Family::IPV4_UNICAST), 1);
    let d = rib.drain();
    let out = group_updates(&d, gb);
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(v4s(&out[0].prefixes), vec![v4("198.18.1.0/24")]);
}

#[test]
fn ipv4_with_ipv6_next_hop_and_ipv6_routes() {
    let mut rib = rib();
    let (a, _) = peer(&mut rib, 65001, 1, false);
    let (_b, gb) = peer(&mut rib, 65002, 2, false);
    let nh = Ipv6NextHop {
        global: "2001:db8::1".parse().unwrap(),
        link_local: Some("fe80::1".parse().unwrap()),
    };
    let mut at = attrs(&[65001], [0, 0, 0, 0]);
    at.next_hop = None;
    let u = Update {
        attributes: at.clone(),
        mp_reach: Some(MpReach::Ipv4Unicast {
            next_hop: NextHop::V6(nh),
            nlri: vec![Nlri::new(v4("198.51.100.0/24"))],
        }),
        ..Default::default()
    };
    rib.receive(a, u, 1).unwrap();
    let p6: Ipv6Net = "2001:db8:100::/48".parse().unwrap();
    rib.receive(a, Update::announce_ipv6(at, nh, vec![Nlri::new(p6)]), 1)
        .unwrap();
    let d = rib.drain();
    assert_eq!(d.best.len(), 2);
    for c in &d.best {
        assert_eq!(c.best.as_ref().unwrap().next_hops, vec![NextHop::V6(nh)]);
    }
    let out = group_updates(&d, gb);
    assert_eq!(out.len(), 2);
    let v6 = out
        .iter()
        .find(|u| u.prefixes.family() == Family::IPV6_UNICAST)
        .unwrap();
    let upd = v6.to_update();
    let Some(MpReach::Ipv6Unicast { next_hop, .. }) = upd.mp_reach else {
        panic!()
    };
    assert_eq!(next_hop.global, "2001:db8::fe".parse::<Ipv6Addr>().unwrap());
    // MP_UNREACH withdraws the IPv6 route.
    let w = Update {
        mp_unreach: Some(MpUnreach::Ipv6Unicast(vec![Nlri::new(p6)])),
        ..Default::default()
    };
    assert_eq!(rib.receive(a, w, 2).unwrap().withdrawn, 1);
    assert_eq!(rib.prefix_count(Family::IPV6_UNICAST), 0);
}

#[test]
fn local_routes_are_preferred_exported_and_withdrawn() {
    let mut rib = rib();
    let (a, ga) = peer(&mut rib, 65001, 1, false);
    let (_i, gi) = peer(&mut rib, LOCAL_AS, 3, false);
    let p = IpNet::V4(v4("198.51.100.0/24"));
    rib.receive(
        a,
        announce(&["198.51.100.0/24"], attrs(&[65001], [192, 0, 2, 1])),
        1,
    )
    .unwrap();
    rib.originate(
        p,
        LocalRoute {
            med: Some(7),
            prepend: 2,
            communities: vec![Community::new(65000, 1)],
            ..LocalRoute::default()
        },
        2,
    );
    let route = rib.lookup(p).unwrap();
    assert!(route.paths[0].peer.is_local());
    assert_eq!(route.paths[0].reason, Some(Step::LocallyOriginated));
    let d = rib.drain();
    let sent = group_updates(&d, ga)[0].attrs.clone().unwrap();
    assert_eq!(sent.attrs.as_path, Some(AsPath::sequence([LOCAL_AS; 3])));
    assert_eq!(sent.attrs.med, Some(7));
    let sent = group_updates(&d, gi)[0].attrs.clone().unwrap();
    assert_eq!(sent.attrs.as_path, Some(AsPath::default()));
    assert_eq!(sent.attrs.local_pref, Some(100));
    assert_eq!(
        sent.next_hop,
        Some(NextHop::V4(Ipv4Addr::new(192, 0, 2, 254)))
    );
    // The FIB has nothing to install for a local route without a next hop.
    assert!(d.best[0].best.as_ref().unwrap().next_hops.is_empty());

    assert!(rib.withdraw_local(p));
    assert!(!rib.withdraw_local(p));
    let d = rib.drain();
    // Back to the peer's path: withdrawn from AS 65001, replaced for iBGP.
    assert!(group_updates(&d, ga)[0].attrs.is_none());
    assert_eq!(
        group_updates(&d, gi)[0]
            .attrs
            .as_ref()
            .unwrap()
            .attrs
            .as_path,
        Some(AsPath::sequence([65001]))
    );
}

#[test]
fn no_export_stays_inside_the_as() {
    let mut rib = rib();
    let (a, _) = peer(&mut rib, 65001, 1, false);
    let (_b, gb) = peer(&mut rib, 65002, 2, false);
    let (_i, gi) = peer(&mut rib, LOCAL_AS, 3, false);
    let mut at = attrs(&[65001], [192, 0, 2, 1]);
    at.communities = vec![Community::NO_EXPORT];
    rib.receive(a, announce(&["198.51.100.0/24"], at), 1)
        .unwrap();
    let d = rib.drain();
    assert!(group_updates(&d, gb).is_empty());
    assert_eq!(group_updates(&d, gi).len(), 1);
}

#[test]
fn ecmp_over_two_ebgp_peers_of_one_as() {
    let mut rib = rib_with(DecisionConfig {
        max_paths: NonZeroUsize::new(2).unwrap(),
        ..DecisionConfig::default()
    });
    let (a, _) = peer(&mut rib, 65001, 1, false);
    let (b, _) = peer(&mut rib, 65001, 2, false);
    let (c, _) = peer(&mut rib, 65001, 3, false);
    for (p, n) in [(a, 1), (b, 2), (c, 3)] {
        rib.receive(
            p,
            announce(&["198.51.100.0/24"], attrs(&[65001], [192, 0, 2, n])),
            1,
        )
        .unwrap();
    }
    let route = rib.lookup(IpNet::V4(v4("198.51.100.0/24"))).unwrap();
    assert_eq!(route.paths[0].peer, a);
    assert_eq!(route.paths[0].reason, Some(Step::RouterId));
    assert_eq!(route.paths.iter().filter(|p| p.multipath).count(), 2);
    let d = rib.drain();
    let best = d.best[0].best.as_ref().unwrap();
    assert_eq!(
        best.next_hops,
        vec![
            NextHop::V4(Ipv4Addr::new(192, 0, 2, 1)),
            NextHop::V4(Ipv4Addr::new(192, 0, 2, 2))
        ]
    );
    // The best peer goes away: the set moves up, one event.
    rib.close(a).unwrap();
    let d = rib.drain();
    assert_eq!(d.best.len(), 1);
    assert_eq!(d.best[0].best.as_ref().unwrap().peer, b);
}

#[test]
fn new_session_gets_the_table_as_of_the_last_drain() {
    let mut rib = rib();
    let (a, _) = peer(&mut rib, 65001, 1, false);
    rib.receive(
        a,
        announce(&["198.51.100.0/24"], attrs(&[65001], [192, 0, 2, 1])),
        1,
    )
    .unwrap();
    rib.drain();
    // A change is pending when the new peer comes up.
    rib.receive(
        a,
        announce(&["203.0.113.0/24"], attrs(&[65001], [192, 0, 2, 1])),
        2,
    )
    .unwrap();
    let (b, gb) = peer(&mut rib, 65002, 2, false);
    let table = rib.peer_table(b).unwrap();
    assert_eq!(table.len(), 1);
    assert_eq!(v4s(&table[0].prefixes), vec![v4("198.51.100.0/24")]);
    assert_eq!(rib.group_table(gb).unwrap(), table);
    // The drain brings it up to date.
    let d = rib.drain();
    assert_eq!(
        v4s(&group_updates(&d, gb)[0].prefixes),
        vec![v4("203.0.113.0/24")]
    );
    assert_eq!(rib.adj_rib_out(b, Family::IPV4_UNICAST).unwrap().len(), 2);
    // Route refresh: same table again.
    assert_eq!(rib.peer_table(b).unwrap()[0].prefixes.len(), 2);
}

#[test]
fn errors_for_unknown_and_idle_peers() {
    let mut rib = rib();
    let a = rib
        .add_peer(PeerConfig {
            asn: 65001,
            address: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
            rr_client: false,
            max_prefixes: None,
            import: Default::default(),
        })
        .unwrap();
    assert!(rib.receive(a, Update::default(), 0).is_err());
    assert!(rib.peer_table(a).is_err());
    assert!(
        rib.add_peer(PeerConfig {
            asn: 65001,
            address: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2)),
            rr_client: true,
            max_prefixes: None,
            import: Default::default(),
        })
        .is_err()
    );
    rib.remove_peer(a).unwrap();
    assert!(rib.establish(a, ROUTER_ID, params([1, 1, 1, 1])).is_err());
}

// ---------------------------------------------------------------------------------------------
// Property tests.

/// Peers 1..=6: 1, 2 eBGP AS 65001; 3 eBGP AS 65002; 4 iBGP; 5, 6 route-reflector clients.
/// RFC 4724 §4.2, receiving speaker: a restarting peer's routes stay (stale, still best and
/// still exported) through the restart; what it re-announces is fresh again; its End-of-RIB
/// removes what it did not re-announce, and only that.
#[test]
fn graceful_restart_keeps_stale_paths_until_end_of_rib() {
    let mut rib = rib();
    let (a, _) = peer(&mut rib, 65001, 1, false);
    let (_b, gb) = peer(&mut rib, 65002, 2, false);
    rib.receive(
        a,
        announce(
            &["198.18.1.0/24", "198.18.2.0/24"],
            attrs(&[65001], [192, 0, 2, 1]),
        ),
        1,
    )
    .unwrap();
    let d = rib.drain();
    assert_eq!(group_updates(&d, gb).len(), 1);

    let v4only: FamilySet = [Family::IPV4_UNICAST].into_iter().collect();
    assert_eq!(rib.close_graceful(a, &v4only).unwrap(), 2);
    assert_eq!(rib.stale_count(a), 2);
    // Nothing changes for the other peers: no withdrawal goes out.
    let d = rib.drain();
    assert!(group_updates(&d, gb).is_empty(), "{:?}", d.groups);
    let r = rib.lookup(IpNet::V4(v4("198.18.1.0/24"))).unwrap();
    assert!(r.paths[0].best && r.paths[0].stale);
    // Receiving needs a session: stale paths are not an Adj-RIB-In to write to.
    assert!(rib.receive(a, withdraw(&["198.18.1.0/24"]), 2).is_err());

    // Back: one route refreshed, the other not; End-of-RIB sweeps the other.
    rib.establish(a, Ipv4Addr::new(10, 0, 0, 1), params([192, 0, 2, 254]))
        .unwrap();
    rib.receive(
        a,
        announce(&["198.18.1.0/24"], attrs(&[65001], [192, 0, 2, 1])),
        3,
    )
    .unwrap();
    assert_eq!(rib.stale_count(a), 1);
    let r = rib.lookup(IpNet::V4(v4("198.18.1.0/24"))).unwrap();
    assert!(!r.paths[0].stale, "a re-announced path is fresh");
    let _ = rib.drain();
    let eor = rib
        .receive(a, Update::end_of_rib(Family::IPV4_UNICAST), 4)
        .unwrap();
    assert_eq!(eor.end_of_rib, Some(Family::IPV4_UNICAST));
    assert_eq!(rib.sweep_stale(a, Some(Family::IPV4_UNICAST)).unwrap(), 1);
    assert_eq!(rib.stale_count(a), 0);
    assert!(rib.lookup(IpNet::V4(v4("198.18.2.0/24"))).is_none());
    assert!(rib.lookup(IpNet::V4(v4("198.18.1.0/24"))).is_some());
    let d = rib.drain();
    let outs = group_updates(&d, gb);
    let withdrawn: Vec<Ipv4Net> = outs
        .iter()
        .filter(|o| o.attrs.is_none())
        .flat_map(|o| v4s(&o.prefixes))
        .collect();
    assert_eq!(withdrawn, vec![v4("198.18.2.0/24")]);
    assert_eq!(rib.path_count(a), 1);
}

/// Families the peer did not preserve are withdrawn at once; a sweep of everything (restart
/// timer expired) removes the rest, and competing paths take over.
#[test]
fn graceful_restart_families_and_timeout() {
    let mut rib = rib();
    let (a, _) = peer(&mut rib, 65001, 1, false);
    let (b, _) = peer(&mut rib, 65002, 2, false);
    rib.receive(
        a,
        announce(&["198.18.1.0/24"], attrs(&[65001], [192, 0, 2, 1])),
        1,
    )
    .unwrap();
    rib.receive(
        b,
        announce(&["198.18.1.0/24"], attrs(&[65002, 65009], [192, 0, 2, 2])),
        1,
    )
    .unwrap();
    let v6 = Update {
        attributes: attrs(&[65001], [192, 0, 2, 1]),
        mp_reach: Some(MpReach::Ipv6Unicast {
            next_hop: Ipv6NextHop {
                global: "2001:db8::1".parse().unwrap(),
                link_local: None,
            },
            nlri: vec![Nlri::new("fd00:1::/64".parse::<Ipv6Net>().unwrap())],
        }),
        ..Default::default()
    };
    rib.receive(a, v6, 1).unwrap();
    let v4only: FamilySet = [Family::IPV4_UNICAST].into_iter().collect();
    assert_eq!(rib.close_graceful(a, &v4only).unwrap(), 1);
    assert!(rib.lookup("fd00:1::/64".parse().unwrap()).is_none());
    let best = |rib: &Rib| {
        rib.lookup(IpNet::V4(v4("198.18.1.0/24")))
            .unwrap()
            .paths
            .into_iter()
            .find(|p| p.best)
            .unwrap()
            .peer
    };
    assert_eq!(best(&rib), a, "the stale path still wins on AS path length");
    assert_eq!(rib.sweep_stale(a, None).unwrap(), 1);
    assert_eq!(best(&rib), b);
    assert_eq!(rib.path_count(a), 0);
}

fn mesh(decision: DecisionConfig) -> (Rib, Vec<PeerId>) {
    let mut rib = rib_with(decision);
    let spec = [
        (65001, false),
        (65001, false),
        (65002, false),
        (LOCAL_AS, false),
        (LOCAL_AS, true),
        (LOCAL_AS, true),
    ];
    let ids = spec
        .iter()
        .enumerate()
        .map(|(i, (asn, rr))| peer(&mut rib, *asn, i as u8 + 1, *rr).0)
        .collect();
    (rib, ids)
}

#[derive(Debug, Clone)]
struct Ann {
    peer: usize,
    prefix: u8,
    path_id: u32,
    local_pref: Option<u32>,
    path: Vec<u32>,
    origin: Origin,
    med: Option<u32>,
}

fn ann() -> impl Strategy<Value = Ann> {
    (
        0usize..6,
        0u8..4,
        0u32..2,
        proptest::option::of(prop_oneof![Just(100u32), Just(200)]),
        proptest::collection::vec(prop_oneof![Just(65001u32), Just(65002), Just(65003)], 0..3),
        prop_oneof![Just(Origin::Igp), Just(Origin::Incomplete)],
        proptest::option::of(0u32..3),
    )
        .prop_map(
            |(peer, prefix, path_id, local_pref, path, origin, med)| Ann {
                peer,
                prefix,
                path_id,
                local_pref,
                path,
                origin,
                med,
            },
        )
}

fn prefix(n: u8) -> Ipv4Net {
    Ipv4Net::new(Ipv4Addr::new(198, 51, 100, n * 16), 28).unwrap()
}

fn apply(rib: &mut Rib, ids: &[PeerId], a: &Ann) {
    let mut path = a.path.clone();
    // eBGP peers put their own AS first, as real ones do.
    if a.peer < 3 {
        path.insert(0, if a.peer < 2 { 65001 } else { 65002 });
    }
    let u = Update {
        attributes: PathAttributes {
            origin: Some(a.origin),
            as_path: Some(AsPath::sequence(path)),
            next_hop: Some(Ipv4Addr::new(192, 0, 2, a.peer as u8 + 1)),
            local_pref: a.local_pref,
            med: a.med,
            ..Default::default()
        },
        nlri: vec![Nlri::with_path_id(prefix(a.prefix), a.path_id)],
        ..Default::default()
    };
    rib.receive(ids[a.peer], u, a.path_id).unwrap();
}

/// (best peer and path id, multipath set) per prefix.
type View = BTreeMap<IpNet, ((PeerId, u32), Vec<(PeerId, u32)>)>;

fn view(rib: &Rib) -> View {
    rib.routes(Family::IPV4_UNICAST)
        .into_iter()
        .map(|r| {
            let best = r.paths.iter().find(|p| p.best).unwrap();
            let mut mp: Vec<_> = r
                .paths
                .iter()
                .filter(|p| p.multipath)
                .map(|p| (p.peer, p.path_id))
                .collect();
            mp.sort();
            (r.prefix, ((best.peer, best.path_id), mp))
        })
        .collect()
}

/// What each peer holds, built only from drained outputs.
type Sent = HashMap<PeerId, HashMap<Ipv4Net, Arc<Attrs>>>;

fn deliver(rib: &Rib, d: &bgp::rib::Drained, sent: &mut Sent) {
    let mut apply = |peer: PeerId, u: &OutUpdate| {
        let Prefixes::V4(ps) = &u.prefixes else {
            return;
        };
        let s = sent.entry(peer).or_default();
        for p in ps {
            match &u.attrs {
                Some(a) => s.insert(*p, Arc::clone(a)),
                None => s.remove(p),
            };
        }
    };
    for (g, ups) in &d.groups {
        for u in ups {
            for m in rib.group_members(*g) {
                if u.except != Some(*m) {
                    apply(*m, u);
                }
            }
        }
    }
    for (p, ups) in &d.peers {
        for u in ups {
            apply(*p, u);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn best_path_is_independent_of_insertion_order(
        anns in proptest::collection::vec(ann(), 1..16),
        seed in any::<u64>(),
        compare_med in any::<bool>(),
        oldest in any::<bool>(),
    ) {
        let cfg = DecisionConfig {
            always_compare_med: compare_med,
            prefer_oldest: oldest,
            max_paths: NonZeroUsize::new(3).unwrap(),
            ..DecisionConfig::default()
        };
        // Keep one announcement per (peer, prefix, path id): the last one wins anyway.
        let mut uniq: BTreeMap<(usize, u8, u32), Ann> = BTreeMap::new();
        for a in anns {
            uniq.insert((a.peer, a.prefix, a.path_id), a);
        }
        let anns: Vec<Ann> = uniq.into_values().collect();
        let mut shuffled = anns.clone();
        let mut s = seed;
        for i in (1..shuffled.len()).rev() {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            shuffled.swap(i, (s >> 33) as usize % (i + 1));
        }
        let (mut r1, ids) = mesh(cfg);
        let (mut r2, _) = mesh(cfg);
        for a in &anns { apply(&mut r1, &ids, a); }
        for a in &shuffled { apply(&mut r2, &ids, a); }
        let v = view(&r1);
        prop_assert_eq!(&v, &view(&r2));
        for (_, (best, mp)) in v {
            prop_assert!(mp.len() <= 3);
            prop_assert!(mp.contains(&best));
        }
    }

    #[test]
    fn exports_are_consistent_and_never_echo_or_break_split_horizon(
        rounds in proptest::collection::vec(
            proptest::collection::vec((ann(), any::<bool>()), 1..8), 1..6),
    ) {
        let (mut rib, ids) = mesh(DecisionConfig::default());
        let mut sent: Sent = HashMap::new();
        // The best path per prefix, built only from drained best-path changes (as the FIB is).
        let mut fib: BTreeMap<IpNet, (PeerId, u32)> = BTreeMap::new();
        for round in &rounds {
            for (a, is_withdraw) in round {
                if *is_withdraw {
                    let w = Update {
                        withdrawn: vec![Nlri::with_path_id(prefix(a.prefix), a.path_id)],
                        ..Default::default()
                    };
                    rib.receive(ids[a.peer], w, 0).unwrap();
                } else {
                    apply(&mut rib, &ids, a);
                }
            }
            let d = rib.drain();
            deliver(&rib, &d, &mut sent);
            let mut seen = std::collections::BTreeSet::new();
            for c in &d.best {
                // A prefix changed many times between drains is reported once.
                prop_assert!(seen.insert(c.prefix), "{} twice", c.prefix);
                match &c.best {
                    Some(b) => fib.insert(c.prefix, (b.peer, b.path_id)),
                    None => fib.remove(&c.prefix),
                };
            }
            let want: BTreeMap<IpNet, (PeerId, u32)> =
                view(&rib).into_iter().map(|(n, (best, _))| (n, best)).collect();
            prop_assert_eq!(&fib, &want);
            for (i, &p) in ids.iter().enumerate() {
                let got = sent.get(&p).cloned().unwrap_or_default();
                // What the deltas built equals the table the RIB would send now.
                let want: HashMap<Ipv4Net, Arc<Attrs>> = rib
                    .adj_rib_out(p, Family::IPV4_UNICAST)
                    .unwrap()
                    .into_iter()
                    .map(|(n, a)| match n { IpNet::V4(n) => (n, a), IpNet::V6(_) => unreachable!() })
                    .collect();
                prop_assert_eq!(got.len(), want.len(), "peer {}", i);
                for (n, a) in &want {
                    prop_assert_eq!(got.get(n).map(|x| &**x), Some(&**a));
                }
                for n in got.keys() {
                    let route = rib.lookup(IpNet::V4(*n)).unwrap();
                    let best = route.paths.iter().find(|x| x.best).unwrap();
                    // Never back to the source.
                    prop_assert_ne!(best.peer, p);
                    // iBGP non-client to iBGP non-client: never.
                    prop_assert!(!(i == 3 && best.peer == ids[3]));
                    // Never into the AS it came from.
                    if i < 3 {
                        let peer_as = if i < 2 { 65001 } else { 65002 };
                        let path = got[n].attrs.as_path.clone().unwrap();
                        let looped = path.contains(peer_as);
                        prop_assert!(!looped);
                    }
                }
            }
        }
    }

    #[test]
    fn withdrawing_everything_empties_the_rib_and_the_interner(
        anns in proptest::collection::vec(ann(), 1..24),
        close in any::<bool>(),
    ) {
        let (mut rib, ids) = mesh(DecisionConfig {
            max_paths: NonZeroUsize::new(2).unwrap(),
            ..DecisionConfig::default()
        });
        for a in &anns { apply(&mut rib, &ids, a); }
        let views = rib.drain();
        drop(views);
        for a in &anns {
            if close {
                rib.close(ids[a.peer]).unwrap();
            } else {
                let w = Update {
                    withdrawn: vec![Nlri::with_path_id(prefix(a.prefix), a.path_id)],
                    ..Default::default()
                };
                rib.receive(ids[a.peer], w, 0).unwrap();
            }
        }
        prop_assert_eq!(rib.prefix_count(Family::IPV4_UNICAST), 0);
        let d = rib.drain();
        prop_assert!(d.best.iter().all(|c| c.best.is_none()));
        drop(d);
        prop_assert_eq!(rib.interned_count(), 0);
        for p in ids { prop_assert_eq!(rib.path_count(p), 0); }
    }
}
