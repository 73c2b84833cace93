//! `sartd bgp` interop on which paths win and where they go: ECMP over two upstreams, RFC 8950
//! (IPv4 over an IPv6 session), iBGP split horizon and route reflection, own AS in AS_PATH.
//! Needs root and the `sartd` and `sart` binaries (`cargo build -p sartd -p sart`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;
use common::*;

use std::net::IpAddr;
use std::time::Duration;

use interop::bird::Bird;
use interop::frr::Frr;
use interop::sartd::Sartd;
use interop::wait::POLL;
use interop::{
    BgpConfig, Daemon, Family, Link, Neighbor, Netns, Origin, Pending, Route, holds_for,
    wait_route, wait_session, wait_until,
};
use serde_json::Value;

/// The raw JSON paths sartd shows for `prefix` (`sart -o json bgp global rib get`).
fn sartd_paths(dut: &Sartd, prefix: &str) -> Vec<Value> {
    let afi = if prefix.contains(':') { "ipv6" } else { "ipv4" };
    let v = dut.sart_json(&["global", "rib", "get", "-a", afi]).unwrap();
    v["paths"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["nlri"].as_str() == Some(prefix))
        .cloned()
        .collect()
}

/// Two eBGP upstreams in the same AS (FRR and BIRD) announce one prefix with equal attributes.
/// With `multi_path: true` sartd marks one path best and the other multipath (two next hops);
/// after `sart bgp global set --multi-path false` only the best path is left flagged.
#[test]
fn ecmp_over_two_upstreams_in_the_same_as() {
    require_root();
    let dut_ns = Netns::new("sartd").unwrap();
    let (ns1, ns2) = (Netns::new("frr").unwrap(), Netns::new("bird").unwrap());
    let l1 = Link::veth(&dut_ns, &ns1, 61).unwrap();
    let l2 = Link::veth(&dut_ns, &ns2, 62).unwrap();
    let (u1, u2): (IpAddr, IpAddr) = (l1.b.ipv4().into(), l2.b.ipv4().into());
    let prefix = "198.18.160.0/24";
    let dut = Sartd::start(
        &dut_ns,
        "sartd",
        BgpConfig::new(65700, l1.a.ipv4())
            .multipath(true)
            .neighbor(Neighbor::new(u1, 65701, &V4).hold_time(9))
            .neighbor(Neighbor::new(u2, 65701, &V4).hold_time(9)),
    )
    .unwrap();
    let route = Route::new(net(prefix)).origin(Origin::Igp);
    let mut frr = Frr::start(
        &ns1,
        "frr",
        BgpConfig::new(65701, l1.b.ipv4())
            .neighbor(Neighbor::new(l1.a.ipv4().into(), 65700, &V4).hold_time(9))
            .route(route.clone()),
    )
    .unwrap();
    let _bird = Bird::start(
        &ns2,
        "bird",
        BgpConfig::new(65701, l2.b.ipv4())
            .neighbor(Neighbor::new(l2.a.ipv4().into(), 65700, &V4).hold_time(9))
            .route(route),
    )
    .unwrap();
    wait_session(&dut, u1, true, UP).unwrap();
    wait_session(&dut, u2, true, UP).unwrap();
    wait_route(&dut, net(prefix), ROUTE, |p| p.peer == Some(u1)).unwrap();
    wait_route(&dut, net(prefix), ROUTE, |p| p.peer == Some(u2)).unwrap();

    let rib = dut.rib(Family::Ipv4Unicast).unwrap();
    for p in rib.paths(&net(prefix)) {
        assert_eq!(p.as_path, vec![65701], "{}", rib.summary());
        assert_eq!(p.origin, Some(Origin::Igp), "{}", rib.summary());
    }
    // Raw flags: exactly one best, the other one multipath.
    let ecmp = wait_until("sartd to use both paths", ROUTE, POLL, || {
        let paths = sartd_paths(&dut, prefix);
        let best = paths.iter().filter(|p| p["best"] == true).count();
        let multi = paths
            .iter()
            .filter(|p| p["best"] == false && p["multipath"] == true)
            .count();
        if paths.len() == 2 && best == 1 && multi == 1 {
            Ok(paths)
        } else {
            Err(Pending(format!("{paths:?}")))
        }
    })
    .unwrap();
    let mut hops: Vec<&str> = ecmp
        .iter()
        .flat_map(|p| p["nextHops"].as_array().unwrap())
        .filter_map(Value::as_str)
        .collect();
    hops.sort_unstable();
    let mut want = vec![u1.to_string(), u2.to_string()];
    want.sort();
    assert_eq!(hops, want, "{ecmp:?}");
    assert_eq!(
        dut.rib(Family::Ipv4Unicast)
            .unwrap()
            .ecmp_next_hops(&net(prefix)),
        vec![u1, u2]
    );

    // One upstream withdraws: the other path is left, best; back again: ECMP again.
    frr.withdraw(net(prefix)).unwrap();
    wait_until("the BIRD path alone", ROUTE, POLL, || {
        let paths = sartd_paths(&dut, prefix);
        let alone = paths.len() == 1
            && paths[0]["best"] == true
            && paths[0]["peerAddr"].as_str() == Some(&u2.to_string());
        if alone {
            Ok(())
        } else {
            Err(Pending(format!("{paths:?}")))
        }
    })
    .unwrap();
    frr.announce(Route::new(net(prefix)).origin(Origin::Igp))
        .unwrap();
    wait_until("ECMP again", ROUTE, POLL, || {
        let hops = dut.rib(Family::Ipv4Unicast)?.ecmp_next_hops(&net(prefix));
        if hops == vec![u1, u2] {
            Ok(())
        } else {
            Err(Pending(format!("{hops:?}")))
        }
    })
    .unwrap();

    // Multipath off at runtime: one best path, nothing else in the ECMP set.
    dut.sart(&["global", "set", "--multi-path", "false"])
        .unwrap();
    let info = dut.sart_json(&["global", "get"]).unwrap();
    assert_eq!(info["multiPath"], false, "{info}");
    wait_until("sartd to use one path only", UP, POLL, || {
        let paths = sartd_paths(&dut, prefix);
        let best = paths.iter().filter(|p| p["best"] == true).count();
        let multi = paths.iter().filter(|p| p["multipath"] == true).count();
        if paths.len() == 2
            && best == 1
            && multi <= 1
            && paths
                .iter()
                .all(|p| p["best"] == true || p["multipath"] == false)
        {
            Ok(())
        } else {
            Err(Pending(format!("{paths:?}")))
        }
    })
    .unwrap();
}

/// Without `multi_path` the same two equal paths give one best path and no multipath.
#[test]
fn no_ecmp_without_multipath() {
    require_root();
    let dut_ns = Netns::new("sartd").unwrap();
    let (ns1, ns2) = (Netns::new("frr1").unwrap(), Netns::new("frr2").unwrap());
    let l1 = Link::veth(&dut_ns, &ns1, 63).unwrap();
    let l2 = Link::veth(&dut_ns, &ns2, 64).unwrap();
    let (u1, u2): (IpAddr, IpAddr) = (l1.b.ipv4().into(), l2.b.ipv4().into());
    let prefix = "198.18.161.0/24";
    let dut = Sartd::start(
        &dut_ns,
        "sartd",
        BgpConfig::new(65710, l1.a.ipv4())
            .neighbor(Neighbor::new(u1, 65711, &V4).hold_time(9))
            .neighbor(Neighbor::new(u2, 65711, &V4).hold_time(9)),
    )
    .unwrap();
    let mut upstreams = Vec::new();
    for (ns, l) in [(&ns1, &l1), (&ns2, &l2)] {
        upstreams.push(
            Frr::start(
                ns,
                "frr",
                BgpConfig::new(65711, l.b.ipv4())
                    .neighbor(Neighbor::new(l.a.ipv4().into(), 65710, &V4).hold_time(9))
                    .route(Route::new(net(prefix))),
            )
            .unwrap(),
        );
    }
    wait_route(&dut, net(prefix), UP, |p| p.peer == Some(u1)).unwrap();
    wait_route(&dut, net(prefix), ROUTE, |p| p.peer == Some(u2)).unwrap();
    holds_for(
        "one best path, no multipath",
        Duration::from_secs(2),
        POLL,
        || {
            let paths = sartd_paths(&dut, prefix);
            let best = paths.iter().filter(|p| p["best"] == true).count();
            let multi = paths
                .iter()
                .filter(|p| p["best"] == false && p["multipath"] == true)
                .count();
            if paths.len() == 2 && best == 1 && multi == 0 {
                Ok(())
            } else {
                Err(Pending(format!("{paths:?}")))
            }
        },
    )
    .unwrap();
    assert_eq!(
        dut.rib(Family::Ipv4Unicast)
            .unwrap()
            .ecmp_next_hops(&net(prefix))
            .len(),
        1
    );
}

/// RFC 8950 between sartd (AS `asn`, announcing `ours`) and a peer (AS `asn + 1`, announcing
/// `theirs`, started by `start` in its namespace): one IPv6 session (global addresses) carries
/// IPv4 and IPv6 unicast, and IPv4 routes travel with IPv6 next hops both ways. `check` then
/// looks at what only that peer shows, given sartd's IPv6 address.
fn rfc8950_both_ways<D: Daemon>(
    kind: &str,
    link_id: u8,
    asn: u32,
    ours: [&str; 2],
    theirs: [&str; 2],
    start: impl FnOnce(&Netns, BgpConfig) -> D,
    check: impl FnOnce(&D, IpAddr),
) {
    require_root();
    let (a, b) = (Netns::new("sartd").unwrap(), Netns::new(kind).unwrap());
    let link = Link::veth(&a, &b, link_id).unwrap();
    let (a6, b6): (IpAddr, IpAddr) = (link.a.ipv6().into(), link.b.ipv6().into());
    let dut = Sartd::start(
        &a,
        "sartd",
        BgpConfig::new(asn, link.a.ipv4())
            .neighbor(
                Neighbor::new(b6, asn + 1, &V4V6)
                    .hold_time(9)
                    .router_id(link.b.ipv4()),
            )
            .route(Route::new(net(ours[0])))
            .route(Route::new(net(ours[1]))),
    )
    .unwrap();
    let mut peer = Neighbor::new(a6, asn, &V4V6).hold_time(9);
    peer.extended_next_hop = true;
    let other = start(
        &b,
        BgpConfig::new(asn + 1, link.b.ipv4())
            .neighbor(peer)
            .route(Route::new(net(theirs[0])))
            .route(Route::new(net(theirs[1]))),
    );
    wait_session(&dut, b6, true, UP).unwrap_or_else(|e| panic!("{e}\n{}", other.logs()));

    // sartd -> peer: an IPv4 route with sartd's IPv6 address as its only next hop.
    let p = wait_route(&other, net(ours[0]), ROUTE, |p| p.next_hops.contains(&a6))
        .unwrap_or_else(|e| panic!("{e}\n{}\n{}", dut.logs(), other.logs()));
    assert!(
        p.next_hops.iter().all(IpAddr::is_ipv6),
        "next hops {:?}",
        p.next_hops
    );
    assert_eq!(p.as_path, vec![asn]);
    wait_route(&other, net(ours[1]), ROUTE, |p| p.next_hops.contains(&a6)).unwrap();

    // Peer -> sartd: an IPv4 route with the peer's IPv6 address as next hop.
    let p = wait_route(&dut, net(theirs[0]), ROUTE, |p| p.peer == Some(b6)).unwrap();
    assert_eq!(p.next_hops, vec![b6], "{p:?}");
    assert_eq!(p.as_path, vec![asn + 1]);
    let p = wait_route(&dut, net(theirs[1]), ROUTE, |p| p.peer == Some(b6)).unwrap();
    assert_eq!(p.next_hops, vec![b6], "{p:?}");
    check(&other, a6);
}

/// With FRR (`capability extended-nexthop`; sartd offers it by itself): both sides say so, and
/// FRR takes sartd's IPv4 route as usable (best) over its IPv6 next hop.
#[test]
fn rfc8950_ipv4_routes_over_an_ipv6_session_with_frr() {
    rfc8950_both_ways(
        "frr",
        66,
        65720,
        ["198.18.170.0/24", "fd00:170::/64"],
        ["198.18.171.0/24", "fd00:171::/64"],
        |ns, config| Frr::start(ns, "frr", config).unwrap(),
        |frr, a6| {
            let caps = frr_neighbor(frr, a6);
            let enhe = caps["neighborCapabilities"]["extendedNexthop"].to_string();
            assert!(
                enhe.contains("advertisedAndReceived"),
                "FRR: extended next hop not negotiated: {enhe}"
            );
            wait_route(frr, net("198.18.170.0/24"), ROUTE, |p| p.best).unwrap();
        },
    );
}

/// With BIRD (`extended next hop on` in its IPv4 channel).
#[test]
fn rfc8950_ipv4_routes_over_an_ipv6_session_with_bird() {
    rfc8950_both_ways(
        "bird",
        78,
        65722,
        ["198.18.178.0/25", "fd00:178::/64"],
        ["198.18.178.128/25", "fd00:179::/64"],
        |ns, config| Bird::start(ns, "bird", config).unwrap(),
        |_, _| {},
    );
}

/// A route whose AS_PATH already holds sartd's AS is not installed (RFC 4271 §9.1.2); the
/// session stays up and other routes are accepted.
#[test]
fn route_with_own_as_in_path_is_ignored() {
    require_root();
    let (_a, _b, link, dut, exa) = exabgp_pair(84);
    let (a4, b4): (IpAddr, IpAddr) = (link.a.ipv4().into(), link.b.ipv4().into());
    exa.command(&format!(
        "neighbor {a4} announce route 198.18.184.0/25 next-hop self as-path [ 65761 65760 65000 ]"
    ))
    .unwrap();
    exa.command(&format!(
        "neighbor {a4} announce route 198.18.184.128/25 next-hop self as-path [ 65761 65000 ]"
    ))
    .unwrap();
    let p = wait_route(&dut, net("198.18.184.128/25"), ROUTE, |p| {
        p.peer == Some(b4)
    })
    .unwrap();
    assert_eq!(p.as_path, vec![65761, 65000]);
    holds_for(
        "the looped route stays out",
        Duration::from_secs(2),
        POLL,
        || {
            let rib = dut.rib(Family::Ipv4Unicast)?;
            if !rib.contains(&net("198.18.184.0/25")) && dut.is_established(b4)? {
                Ok(())
            } else {
                Err(Pending(rib.summary()))
            }
        },
    )
    .unwrap();
}

/// `show bgp ipv4 unicast PREFIX json`: the first path's object.
fn frr_path_json(frr: &Frr, prefix: &str) -> Value {
    let out = frr
        .vtysh(&[&format!("show bgp ipv4 unicast {prefix} json")])
        .unwrap();
    let v: Value = serde_json::from_str(&out).unwrap();
    v["paths"][0].clone()
}

/// sartd in AS 65850 with three iBGP FRRs: two plain (`n1`, `n2`) and one route reflector
/// client (`c`). A route from one plain peer does not reach the other (RFC 4271 §9.2), but is
/// reflected to the client with ORIGINATOR_ID and CLUSTER_LIST (RFC 4456); the client's route
/// is reflected to both plain peers; next hops are left alone.
#[test]
fn ibgp_split_horizon_and_route_reflection() {
    require_root();
    let dut_ns = Netns::new("sartd").unwrap();
    let names = ["n1", "n2", "c"];
    let nss: Vec<Netns> = names.iter().map(|n| Netns::new(n).unwrap()).collect();
    let links: Vec<Link> = nss
        .iter()
        .enumerate()
        .map(|(i, ns)| Link::veth(&dut_ns, ns, 85 + u8::try_from(i).unwrap()).unwrap())
        .collect();
    let addr = |i: usize| -> IpAddr { links[i].b.ipv4().into() };
    let asn = 65850;
    let dut_id = links[0].a.ipv4();
    let mut cfg = BgpConfig::new(asn, dut_id).route(Route::new(net("198.18.185.0/24")));
    for i in 0..3 {
        let mut n = Neighbor::new(addr(i), asn, &V4).hold_time(9);
        n.route_reflector_client = i == 2;
        cfg = cfg.neighbor(n);
    }
    let dut = Sartd::start(&dut_ns, "sartd", cfg).unwrap();
    let frrs: Vec<Frr> = (0..3)
        .map(|i| {
            Frr::start(
                &nss[i],
                names[i],
                BgpConfig::new(asn, links[i].b.ipv4())
                    .neighbor(Neighbor::new(links[i].a.ipv4().into(), asn, &V4).hold_time(9))
                    .route(Route::new(net(&format!("198.18.{}.0/24", 186 + i)))),
            )
            .unwrap()
        })
        .collect();
    for (i, frr) in frrs.iter().enumerate() {
        wait_session(&dut, addr(i), true, UP).unwrap();
        // sartd's own route reaches everybody.
        wait_route(frr, net("198.18.185.0/24"), ROUTE, |_| true).unwrap();
        wait_route(&dut, net(&format!("198.18.{}.0/24", 186 + i)), ROUTE, |p| {
            p.peer == Some(addr(i))
        })
        .unwrap();
    }
    // Client's route reflected to both plain peers, next hop unchanged.
    for (frr, name) in frrs.iter().zip(names).take(2) {
        let p = wait_route(frr, net("198.18.188.0/24"), ROUTE, |_| true)
            .unwrap_or_else(|e| panic!("reflection to {name}: {e}\n{}", full_log(&dut)));
        assert_eq!(p.next_hops.first(), Some(&addr(2)), "{p:?}");
        let j = frr_path_json(frr, "198.18.188.0/24");
        assert_eq!(j["originatorId"], links[2].b.ipv4().to_string(), "{j}");
        assert!(
            j["clusterList"].to_string().contains(&dut_id.to_string()),
            "{j}"
        );
    }
    // Plain peer 1's route reflected to the client, not to plain peer 2.
    let p = wait_route(&frrs[2], net("198.18.186.0/24"), ROUTE, |_| true).unwrap();
    assert_eq!(p.next_hops.first(), Some(&addr(0)), "{p:?}");
    let j = frr_path_json(&frrs[2], "198.18.186.0/24");
    assert_eq!(j["originatorId"], links[0].b.ipv4().to_string(), "{j}");
    holds_for(
        "no iBGP route from n1 at n2",
        Duration::from_secs(2),
        POLL,
        || {
            let rib = frrs[1].rib(Family::Ipv4Unicast)?;
            if rib.contains(&net("198.18.186.0/24")) {
                Err(Pending(rib.summary()))
            } else {
                Ok(())
            }
        },
    )
    .unwrap();
}
