//! More `sartd bgp` interop: ECMP, RFC 8950, route refresh, RFC 7606 error handling, connection
//! collisions, 2-octet peers (RFC 6793) and max-prefix, against real FRR, BIRD, GoBGP and ExaBGP
//! in network namespaces. Needs root and the `sartd` and `sart` binaries
//! (`cargo build -p sartd -p sart`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;
use common::*;

use std::net::IpAddr;
use std::time::{Duration, Instant};

use interop::bird::Bird;
use interop::exabgp::{Exabgp, ExabgpOptions};
use interop::frr::Frr;
use interop::sartd::Sartd;
use interop::wait::POLL;
use interop::{
    BgpConfig, Daemon, Family, Link, Neighbor, Netns, Origin, Pending, Route, holds_for,
    wait_route, wait_route_gone, wait_session, wait_until,
};
use serde_json::Value;

/// AS_TRANS (RFC 6793).
const AS_TRANS: u32 = 23456;

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

/// `show bgp neighbors ADDR json`, the neighbour's object.
fn frr_neighbor(frr: &Frr, addr: IpAddr) -> Value {
    let out = frr
        .vtysh(&[&format!("show bgp neighbors {addr} json")])
        .unwrap();
    let v: Value = serde_json::from_str(&out).unwrap();
    v[addr.to_string()].clone()
}

fn counter(v: &Value, dir: &str, what: &str) -> u64 {
    v[dir][what].as_u64().unwrap_or(0)
}

/// The whole text of a daemon's log files (not only the tail `logs()` shows), without ANSI
/// colour sequences (sartd colours `key=value` fields).
fn full_log(d: &dyn Daemon) -> String {
    let text: String = d
        .log_files()
        .iter()
        .filter_map(|f| std::fs::read_to_string(f).ok())
        .collect();
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: ESC [ parameters... final byte in @..~
            for c in chars.by_ref() {
                if ('@'..='~').contains(&c) && c != '[' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

// ----------------------------------------------------------------------------------- ECMP

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

// ----------------------------------------------------------------------------------- RFC 8950

/// One IPv6 session (global addresses) carries IPv4 and IPv6 unicast; IPv4 routes travel with
/// IPv6 next hops both ways (FRR `capability extended-nexthop`, sartd offers it by itself).
#[test]
fn rfc8950_ipv4_routes_over_an_ipv6_session_with_frr() {
    require_root();
    let (a, b) = (Netns::new("sartd").unwrap(), Netns::new("frr").unwrap());
    let link = Link::veth(&a, &b, 66).unwrap();
    let (a6, b6): (IpAddr, IpAddr) = (link.a.ipv6().into(), link.b.ipv6().into());
    let dut = Sartd::start(
        &a,
        "sartd",
        BgpConfig::new(65720, link.a.ipv4())
            .neighbor(
                Neighbor::new(b6, 65721, &V4V6)
                    .hold_time(9)
                    .router_id(link.b.ipv4()),
            )
            .route(Route::new(net("198.18.170.0/24")))
            .route(Route::new(net("fd00:170::/64"))),
    )
    .unwrap();
    let mut peer = Neighbor::new(a6, 65720, &V4V6).hold_time(9);
    peer.extended_next_hop = true;
    let frr = Frr::start(
        &b,
        "frr",
        BgpConfig::new(65721, link.b.ipv4())
            .neighbor(peer)
            .route(Route::new(net("198.18.171.0/24")))
            .route(Route::new(net("fd00:171::/64"))),
    )
    .unwrap();
    wait_session(&dut, b6, true, UP).unwrap();
    let caps = frr_neighbor(&frr, a6);
    let enhe = caps["neighborCapabilities"]["extendedNexthop"].to_string();
    assert!(
        enhe.contains("advertisedAndReceived"),
        "FRR: extended next hop not negotiated: {enhe}"
    );

    // sartd -> FRR: an IPv4 route with sartd's IPv6 address as next hop, usable (best).
    let p = wait_route(&frr, net("198.18.170.0/24"), ROUTE, |p| p.best)
        .unwrap_or_else(|e| panic!("{e}\n{}", dut.logs()));
    assert!(p.next_hops.contains(&a6), "next hops {:?}", p.next_hops);
    assert!(
        p.next_hops.iter().all(IpAddr::is_ipv6),
        "next hops {:?}",
        p.next_hops
    );
    assert_eq!(p.as_path, vec![65720]);
    let p = wait_route(&frr, net("fd00:170::/64"), ROUTE, |p| p.best).unwrap();
    assert!(p.next_hops.contains(&a6), "next hops {:?}", p.next_hops);

    // FRR -> sartd: an IPv4 route with FRR's IPv6 address as next hop.
    let p = wait_route(&dut, net("198.18.171.0/24"), ROUTE, |p| p.peer == Some(b6)).unwrap();
    assert_eq!(p.next_hops, vec![b6], "{p:?}");
    assert_eq!(p.as_path, vec![65721]);
    let p = wait_route(&dut, net("fd00:171::/64"), ROUTE, |p| p.peer == Some(b6)).unwrap();
    assert_eq!(p.next_hops, vec![b6], "{p:?}");
}

/// RFC 8950 with BIRD (`extended next hop on` in its IPv4 channel).
#[test]
fn rfc8950_ipv4_routes_over_an_ipv6_session_with_bird() {
    require_root();
    let (a, b) = (Netns::new("sartd").unwrap(), Netns::new("bird").unwrap());
    let link = Link::veth(&a, &b, 78).unwrap();
    let (a6, b6): (IpAddr, IpAddr) = (link.a.ipv6().into(), link.b.ipv6().into());
    let dut = Sartd::start(
        &a,
        "sartd",
        BgpConfig::new(65722, link.a.ipv4())
            .neighbor(
                Neighbor::new(b6, 65723, &V4V6)
                    .hold_time(9)
                    .router_id(link.b.ipv4()),
            )
            .route(Route::new(net("198.18.178.0/25")))
            .route(Route::new(net("fd00:178::/64"))),
    )
    .unwrap();
    let mut peer = Neighbor::new(a6, 65722, &V4V6).hold_time(9);
    peer.extended_next_hop = true;
    let bird = Bird::start(
        &b,
        "bird",
        BgpConfig::new(65723, link.b.ipv4())
            .neighbor(peer)
            .route(Route::new(net("198.18.178.128/25")))
            .route(Route::new(net("fd00:179::/64"))),
    )
    .unwrap();
    wait_session(&dut, b6, true, UP).unwrap_or_else(|e| panic!("{e}\n{}", bird.logs()));
    let p = wait_route(&bird, net("198.18.178.0/25"), ROUTE, |_| true)
        .unwrap_or_else(|e| panic!("{e}\n{}\n{}", dut.logs(), bird.logs()));
    assert!(p.next_hops.contains(&a6), "next hops {:?}", p.next_hops);
    assert_eq!(p.as_path, vec![65722]);
    wait_route(&bird, net("fd00:178::/64"), ROUTE, |p| {
        p.next_hops.contains(&a6)
    })
    .unwrap();
    let p = wait_route(&dut, net("198.18.178.128/25"), ROUTE, |p| {
        p.peer == Some(b6)
    })
    .unwrap();
    assert_eq!(p.next_hops, vec![b6], "{p:?}");
    assert_eq!(p.as_path, vec![65723]);
    wait_route(&dut, net("fd00:179::/64"), ROUTE, |p| p.peer == Some(b6)).unwrap();
}

// ------------------------------------------------------------------------------ route refresh

/// Starts sartd (two routes) and FRR, eBGP over IPv4, and waits for FRR to have the routes.
fn refresh_pair(n: u8, asn: u32) -> (Netns, Netns, Link, Sartd, Frr) {
    let (a, b) = (Netns::new("sartd").unwrap(), Netns::new("frr").unwrap());
    let link = Link::veth(&a, &b, n).unwrap();
    let (a4, b4): (IpAddr, IpAddr) = (link.a.ipv4().into(), link.b.ipv4().into());
    let dut = Sartd::start(
        &a,
        "sartd",
        BgpConfig::new(asn, link.a.ipv4())
            .neighbor(Neighbor::new(b4, asn + 1, &V4).hold_time(9))
            .route(Route::new(net(&format!("198.18.{n}.0/25"))))
            .route(Route::new(net(&format!("198.18.{n}.128/25"))).med(5)),
    )
    .unwrap();
    let frr = Frr::start(
        &b,
        "frr",
        BgpConfig::new(asn + 1, link.b.ipv4()).neighbor(Neighbor::new(a4, asn, &V4).hold_time(9)),
    )
    .unwrap();
    wait_session(&dut, b4, true, UP).unwrap();
    wait_route(&frr, net(&format!("198.18.{n}.0/25")), ROUTE, |_| true).unwrap();
    wait_route(&frr, net(&format!("198.18.{n}.128/25")), ROUTE, |_| true).unwrap();
    (a, b, link, dut, frr)
}

/// `clear bgp ipv4 unicast X soft in` on FRR sends a ROUTE-REFRESH: sartd counts it and
/// re-advertises its table; FRR keeps the routes and the session stays up.
#[test]
fn route_refresh_request_from_frr_is_answered_with_the_table() {
    require_root();
    let (_a, _b, link, dut, frr) = refresh_pair(67, 65730);
    let (a4, b4): (IpAddr, IpAddr) = (link.a.ipv4().into(), link.b.ipv4().into());
    let rr0 = counter(&dut.neighbor(b4).unwrap(), "receiveCounter", "routeRefresh");
    let upd0 = frr_neighbor(&frr, a4)["messageStats"]["updatesRecv"]
        .as_u64()
        .unwrap();
    frr.vtysh(&[&format!("clear bgp ipv4 unicast {a4} soft in")])
        .unwrap();
    wait_until("sartd to count the ROUTE-REFRESH", ROUTE, POLL, || {
        let v = dut.neighbor(b4)?;
        if counter(&v, "receiveCounter", "routeRefresh") > rr0 {
            Ok(())
        } else {
            Err(Pending(v.to_string()))
        }
    })
    .unwrap();
    wait_until("FRR to receive the table again", ROUTE, POLL, || {
        let s = frr_neighbor(&frr, a4)["messageStats"].clone();
        if s["updatesRecv"].as_u64().unwrap_or(0) > upd0 {
            Ok(())
        } else {
            Err(Pending(s.to_string()))
        }
    })
    .unwrap();
    holds_for(
        "FRR keeps both routes",
        Duration::from_secs(3),
        POLL,
        || {
            let rib = frr.rib(Family::Ipv4Unicast)?;
            let ok = ["198.18.67.0/25", "198.18.67.128/25"]
                .iter()
                .all(|p| rib.from_peer(&net(p), a4).is_some());
            if ok && frr.is_established(a4)? {
                Ok(())
            } else {
                Err(Pending(rib.summary()))
            }
        },
    )
    .unwrap();
    assert!(dut.is_running());
}

/// RFC 7313 §4: sartd offers Enhanced Route Refresh, so its answer to a refresh request from
/// a peer that offered it too must be bracketed by BoRR and EoRR (two more ROUTE-REFRESH
/// messages at FRR).
#[test]
fn enhanced_route_refresh_answer_is_bracketed_by_borr_and_eorr() {
    require_root();
    let (_a, _b, link, dut, frr) = refresh_pair(68, 65735);
    let a4: IpAddr = link.a.ipv4().into();
    let n = frr_neighbor(&frr, a4);
    let err = n["neighborCapabilities"]["enhancedRouteRefresh"].to_string();
    assert!(err.contains("advertisedAndReceived"), "{err}");
    let rr0 = n["messageStats"]["routeRefreshRecv"].as_u64().unwrap_or(0);
    frr.vtysh(&[&format!("clear bgp ipv4 unicast {a4} soft in")])
        .unwrap();
    wait_until("FRR to receive BoRR and EoRR", ROUTE, POLL, || {
        let s = frr_neighbor(&frr, a4)["messageStats"].clone();
        if s["routeRefreshRecv"].as_u64().unwrap_or(0) >= rr0 + 2 {
            Ok(())
        } else {
            Err(Pending(s.to_string()))
        }
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", dut.logs()));
}

// -------------------------------------------------------------------------------- max prefix

/// sartd allows 2 prefixes from FRR, which announces 3: sartd closes with Cease / Maximum
/// Number of Prefixes Reached (RFC 4486) and restarts the session after its idle hold time;
/// once FRR withdraws one prefix the session stays up.
#[test]
fn max_prefix_exceeded_sends_cease_and_the_session_restarts() {
    require_root();
    let (a, b) = (Netns::new("sartd").unwrap(), Netns::new("frr").unwrap());
    let link = Link::veth(&a, &b, 69).unwrap();
    let (a4, b4): (IpAddr, IpAddr) = (link.a.ipv4().into(), link.b.ipv4().into());
    let mut limited = Neighbor::new(b4, 65741, &V4).hold_time(9);
    limited.max_prefix = Some(2);
    let dut = Sartd::start(
        &a,
        "sartd",
        BgpConfig::new(65740, link.a.ipv4()).neighbor(limited),
    )
    .unwrap();
    let mut frr = Frr::start(
        &b,
        "frr",
        BgpConfig::new(65741, link.b.ipv4())
            .neighbor(Neighbor::new(a4, 65740, &V4).hold_time(9))
            .route(Route::new(net("198.18.174.0/24")))
            .route(Route::new(net("198.18.175.0/24")))
            .route(Route::new(net("198.18.176.0/24"))),
    )
    .unwrap();
    let n = wait_until("FRR to record a Cease / max prefix", UP, POLL, || {
        let n = frr_neighbor(&frr, a4);
        let text = n.to_string();
        if text.contains("Maximum Number of Prefixes Reached") {
            Ok(n)
        } else {
            Err(Pending(text))
        }
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", dut.logs()));
    eprintln!(
        "FRR after the Cease: notificationsRecv {} connectionsEstablished {}; sartd: {}",
        n["messageStats"]["notificationsRecv"],
        n["connectionsEstablished"],
        dut.neighbor(b4).unwrap()
    );
    let log = full_log(&dut);
    assert!(
        log.contains("maximum number of prefixes exceeded"),
        "sartd log: {log}"
    );
    // The session comes back (and, with 3 prefixes, goes down again).
    wait_session(&frr, a4, true, UP).unwrap();
    frr.withdraw(net("198.18.176.0/24")).unwrap();
    wait_session(&dut, b4, true, UP).unwrap();
    holds_for(
        "the session with 2 prefixes",
        Duration::from_secs(4),
        POLL,
        || {
            let n = dut.neighbor(b4)?;
            if n["state"] == "Established" {
                Ok(())
            } else {
                Err(Pending(n.to_string()))
            }
        },
    )
    .unwrap();
    let rib = dut.rib(Family::Ipv4Unicast).unwrap();
    assert_eq!(rib.received().len(), 2, "{}", rib.summary());
    assert!(dut.is_running());
}

// ---------------------------------------------------------------------- RFC 7606 (ExaBGP)

const RAW: ExabgpOptions = ExabgpOptions {
    asn4: true,
    packets: true,
};

/// sartd (AS 65760) and ExaBGP (AS 65761, raw messages recorded) with one static route
/// 198.18.N.0/25 at ExaBGP, established, the route at sartd.
fn exabgp_pair(n: u8) -> (Netns, Netns, Link, Sartd, Exabgp) {
    let (a, b) = (Netns::new("sartd").unwrap(), Netns::new("exabgp").unwrap());
    let link = Link::veth(&a, &b, n).unwrap();
    let (a4, b4): (IpAddr, IpAddr) = (link.a.ipv4().into(), link.b.ipv4().into());
    let dut = Sartd::start(
        &a,
        "sartd",
        BgpConfig::new(65760, link.a.ipv4()).neighbor(Neighbor::new(b4, 65761, &V4).hold_time(9)),
    )
    .unwrap();
    let exa = Exabgp::start_with(
        &b,
        "exabgp",
        BgpConfig::new(65761, link.b.ipv4())
            .neighbor(Neighbor::new(a4, 65760, &V4).hold_time(9))
            .route(Route::new(net(&format!("198.18.{n}.0/25")))),
        RAW,
    )
    .unwrap();
    wait_session(&dut, b4, true, UP).unwrap();
    wait_route(&dut, net(&format!("198.18.{n}.0/25")), ROUTE, |p| {
        p.peer == Some(b4)
    })
    .unwrap();
    (a, b, link, dut, exa)
}

/// A COMMUNITIES attribute 5 octets long is "treat-as-withdraw" (RFC 7606 §7.8): the prefix
/// it carries is withdrawn (if sartd had it) or never installed, the session stays up, and a
/// well-formed announcement afterwards is accepted.
#[test]
fn malformed_communities_from_exabgp_is_treat_as_withdraw() {
    require_root();
    let (a, _b, link, dut, mut exa) = exabgp_pair(70);
    let (a4, b4): (IpAddr, IpAddr) = (link.a.ipv4().into(), link.b.ipv4().into());
    let (p1, p2) = ("198.18.70.128/26", "198.18.70.192/26");
    exa.announce(Route::new(net(p1)).med(1)).unwrap();
    wait_route(&dut, net(p1), ROUTE, |p| p.med == Some(1)).unwrap();

    let bad = "next-hop self attribute [ 0x08 0xc0 0x0102030405 ]";
    exa.command(&format!("neighbor {a4} announce route {p1} {bad}"))
        .unwrap();
    exa.command(&format!("neighbor {a4} announce route {p2} {bad}"))
        .unwrap();
    // p1 had a path from ExaBGP: the malformed UPDATE withdraws it.
    wait_route_gone(&dut, net(p1), ROUTE).unwrap_or_else(|e| panic!("{e}\n{}", dut.logs()));
    holds_for(
        "session up, malformed prefixes absent, the good route kept",
        Duration::from_secs(3),
        POLL,
        || {
            let rib = dut.rib(Family::Ipv4Unicast)?;
            let ok = dut.is_established(b4)?
                && !rib.contains(&net(p1))
                && !rib.contains(&net(p2))
                && rib.from_peer(&net("198.18.70.0/25"), b4).is_some();
            if ok {
                Ok(())
            } else {
                Err(Pending(rib.summary()))
            }
        },
    )
    .unwrap();
    assert!(dut.is_running(), "sartd exited:\n{}", dut.logs());
    let log = full_log(&dut);
    assert!(
        log.contains("RFC 7606") && log.contains("TreatAsWithdraw"),
        "sartd did not log the RFC 7606 action:\n{log}"
    );
    assert!(
        !log.contains("NOTIFICATION sent"),
        "sartd reset the session:\n{log}"
    );
    // Counted per peer (the metrics snapshot is refreshed every 200 ms): one error per UPDATE
    // (ExaBGP may pack both prefixes into one).
    let series = format!("sart_bgp_update_errors_total{{peer=\"{b4}\"}} ");
    interop::wait_until("the errors counted", ROUTE, POLL, || {
        let m = a
            .exec(&["curl", "-sf", "http://127.0.0.1:7472/metrics"])
            .map_err(|e| Pending(e.to_string()))?;
        let n: u64 = m
            .lines()
            .find_map(|l| l.strip_prefix(&series)?.parse().ok())
            .unwrap_or(0);
        if (1..=2).contains(&n) {
            Ok(())
        } else {
            Err(Pending(
                m.lines()
                    .filter(|l| l.contains("update_errors"))
                    .collect::<Vec<_>>()
                    .join("\n"),
            ))
        }
    })
    .unwrap();

    // A well-formed announcement of the same prefix is accepted again.
    exa.announce(Route::new(net(p1)).med(2)).unwrap();
    wait_route(&dut, net(p1), ROUTE, |p| {
        p.med == Some(2) && p.peer == Some(b4)
    })
    .unwrap();
    let n = dut.neighbor(b4).unwrap();
    assert_eq!(n["state"], "Established", "{n}");
}

/// An unrecognized well-known attribute (flags 0x40, type 99) is a session reset: sartd sends
/// NOTIFICATION 3/2 (UPDATE Message Error / Unrecognized Well-known Attribute), ExaBGP sees the
/// session go down, and it comes back once ExaBGP no longer sends the attribute.
#[test]
fn unrecognized_well_known_attribute_resets_the_session() {
    require_root();
    let (_a, _b, link, dut, exa) = exabgp_pair(71);
    let (a4, b4): (IpAddr, IpAddr) = (link.a.ipv4().into(), link.b.ipv4().into());
    let bad = "198.18.71.128/25 next-hop self attribute [ 0x63 0x40 0x01 ]";
    exa.command(&format!("neighbor {a4} announce route {bad}"))
        .unwrap();
    let notif = wait_until("ExaBGP to receive a NOTIFICATION", ROUTE, POLL, || {
        let msgs = exa.messages()?;
        msgs.iter()
            .find(|m| m["type"] == "notification")
            .cloned()
            .ok_or_else(|| Pending(format!("{} messages", msgs.len())))
    })
    .unwrap_or_else(|e| panic!("{e}\n{}\n{}", dut.logs(), exa.logs()));
    let n = &notif["neighbor"]["notification"];
    assert_eq!(
        (n["code"].as_u64(), n["subcode"].as_u64()),
        (Some(3), Some(2)),
        "{notif}"
    );
    let log = full_log(&dut);
    assert!(
        log.contains("NOTIFICATION sent") && log.contains("code=3") && log.contains("subcode=2"),
        "sartd log:\n{log}"
    );
    assert!(dut.is_running());
    // ExaBGP still holds the route; take it back so the next session stays up.
    exa.command(&format!("neighbor {a4} withdraw route 198.18.71.128/25"))
        .unwrap();
    wait_session(&dut, b4, true, UP).unwrap_or_else(|e| panic!("{e}\n{}", exa.logs()));
    wait_route(&dut, net("198.18.71.0/25"), ROUTE, |p| p.peer == Some(b4)).unwrap();
    holds_for("the session stays up", Duration::from_secs(3), POLL, || {
        if dut.is_established(b4)? {
            Ok(())
        } else {
            Err(Pending("down".into()))
        }
    })
    .unwrap_or_else(|e| panic!("{e}\n{}\n{}", dut.logs(), exa.logs()));
    assert!(
        !dut.rib(Family::Ipv4Unicast)
            .unwrap()
            .contains(&net("198.18.71.128/25"))
    );
}

// --------------------------------------------------------------------------------- collision

/// Holds back OPENs on `dev`, both directions (TCP segments whose payload starts with a BGP
/// message of type 1: the type octet is payload byte 18). TCP handshakes complete and a
/// NOTIFICATION that opens a connection's data (a collision Cease) still passes, so two
/// speakers that both connect end up with two connections in OpenSent: a connection collision
/// (RFC 4271 §6.8).
fn stall_bgp_messages(ns: &Netns, dev: &str) {
    let rule = "ip protocol tcp tcp dport 179 @ih,144,8 1 drop; ip protocol tcp tcp sport 179 @ih,144,8 1 drop";
    let rules = format!(
        "table netdev sarti_stall {{\n\
         \x20 chain in {{ type filter hook ingress device \"{dev}\" priority -500; {rule}; }}\n\
         \x20 chain out {{ type filter hook egress device \"{dev}\" priority -500; {rule}; }}\n\
         }}\n"
    );
    ns.exec_with_input(&["nft", "-f", "-"], &rules).unwrap();
}

fn release_bgp_messages(ns: &Netns) {
    ns.exec(&["nft", "delete", "table", "netdev", "sarti_stall"])
        .unwrap();
}

/// Local and remote ports of the established BGP connections in a namespace.
fn bgp_connection_ports(ns: &Netns) -> Vec<(u16, u16)> {
    let port = |s: &str| {
        s.rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or(0)
    };
    ns.exec(&[
        "ss",
        "-Htn",
        "state",
        "established",
        "( sport = :179 or dport = :179 )",
    ])
    .unwrap()
    .lines()
    .filter_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        // Recv-Q Send-Q Local:Port Peer:Port
        (f.len() >= 4).then(|| (port(f[2]), port(f[3])))
    })
    .collect()
}

/// sartd (router id `dut_id`) and FRR (router id 198.18.N.2), both active, three rounds.
/// Round 1 starts them at the same moment. Rounds 2 and 3 restart them (FRR just before
/// sartd) with OPENs held back until both sides have connected, so that both
/// connections are in OpenSent when the OPENs arrive. Every
/// round must end with one session, Established on both sides, that stays up, is the only BGP
/// connection, and after a collision is the one the higher router id initiated (§6.8).
fn collision_rounds(n: u8, dut_id: std::net::Ipv4Addr) {
    let (a, b) = (Netns::new("sartd").unwrap(), Netns::new("frr").unwrap());
    let link = Link::veth(&a, &b, n).unwrap();
    let (a4, b4): (IpAddr, IpAddr) = (link.a.ipv4().into(), link.b.ipv4().into());
    let sartd_wins = dut_id > link.b.ipv4();
    let dut_cfg = BgpConfig::new(65770, dut_id)
        .neighbor(Neighbor::new(b4, 65771, &V4).hold_time(9))
        .route(Route::new(net(&format!("198.18.{n}.0/25"))));
    let frr_cfg = BgpConfig::new(65771, link.b.ipv4())
        .neighbor(Neighbor::new(a4, 65770, &V4).hold_time(9))
        .route(Route::new(net(&format!("198.18.{n}.128/25"))));
    let (mut dut, mut frr) = std::thread::scope(|s| {
        let h = s.spawn(|| Sartd::start(&a, "sartd", dut_cfg));
        let f = Frr::start(&b, "frr", frr_cfg).unwrap();
        (h.join().unwrap().unwrap(), f)
    });
    let mut collisions_before = 0;
    for round in 1..=3 {
        let t = Instant::now();
        if round > 1 {
            dut.stop();
            frr.stop();
            stall_bgp_messages(&a, &link.a.ifname);
            // FRR first, so that sartd's first connect succeeds (sartd adopts an inbound
            // connection while it has none up); FRR's next try (every second) collides.
            frr.start().unwrap();
            dut.start().unwrap();
            wait_until(
                "sartd to see the collision",
                Duration::from_secs(5),
                POLL,
                || {
                    let seen = full_log(&dut).matches("connection collision").count();
                    if seen > collisions_before {
                        Ok(())
                    } else {
                        Err(Pending(format!(
                            "connections {:?}",
                            bgp_connection_ports(&a)
                        )))
                    }
                },
            )
            .unwrap_or_else(|e| panic!("round {round}: {e}\n{}", full_log(&dut)));
            std::thread::sleep(Duration::from_millis(300));
            release_bgp_messages(&a);
        }
        let ctx = |e: &dyn std::fmt::Display| {
            format!("round {round}: {e}\n{}\n{}", full_log(&dut), frr.logs())
        };
        wait_until("both sides Established", UP, POLL, || {
            if dut.is_established(b4)? && frr.is_established(a4)? {
                Ok(())
            } else {
                Err(Pending(format!(
                    "{:?} / {:?}",
                    dut.session(b4)?,
                    frr.session(a4)?
                )))
            }
        })
        .unwrap_or_else(|e| panic!("{}", ctx(&e)));
        let up = t.elapsed();
        holds_for(
            "one session, both sides up",
            Duration::from_secs(2),
            POLL,
            || {
                let conns = bgp_connection_ports(&a);
                if dut.is_established(b4)? && frr.is_established(a4)? && conns.len() == 1 {
                    Ok(())
                } else {
                    Err(Pending(format!("connections {conns:?}")))
                }
            },
        )
        .unwrap_or_else(|e| panic!("{}", ctx(&e)));
        let nb = frr_neighbor(&frr, a4);
        assert_eq!(
            (
                nb["connectionsEstablished"].as_u64(),
                nb["connectionsDropped"].as_u64()
            ),
            (Some(1), Some(0)),
            "round {round}: FRR saw the session flap: {nb}"
        );
        let log = full_log(&dut);
        let collisions = log.matches("connection collision").count();
        if round > 1 {
            assert!(
                collisions > collisions_before,
                "round {round}: no collision at sartd:\n{log}"
            );
            // The survivor is the connection the higher router id opened: if sartd opened
            // it, sartd's end is not port 179.
            let conns = bgp_connection_ports(&a);
            let sartd_opened = conns[0].0 != 179;
            assert_eq!(
                sartd_opened,
                sartd_wins,
                "round {round}: connection {conns:?} kept; sartd's id {dut_id} vs FRR's {}",
                link.b.ipv4()
            );
        }
        collisions_before = collisions;
        wait_route(&dut, net(&format!("198.18.{n}.128/25")), ROUTE, |p| {
            p.peer == Some(b4)
        })
        .unwrap();
        wait_route(&frr, net(&format!("198.18.{n}.0/25")), ROUTE, |p| {
            p.peer == Some(a4)
        })
        .unwrap();
        eprintln!("round {round}: up after {up:?}");
    }
}

/// Collisions where sartd has the lower router id: FRR's connection must survive.
#[test]
fn connection_collision_with_frr_lower_router_id() {
    require_root();
    collision_rounds(72, "198.18.72.1".parse().unwrap());
}

/// Collisions where sartd has the higher router id: sartd's connection must survive.
#[test]
fn connection_collision_with_frr_higher_router_id() {
    require_root();
    collision_rounds(75, "198.18.75.200".parse().unwrap());
}

// --------------------------------------------------------------------- 2-octet AS (RFC 6793)

/// "0x0102..." (ExaBGP's form) to bytes.
fn hex_bytes(s: &str) -> Vec<u8> {
    let s = s.trim_start_matches("0x");
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap())
        .collect()
}

/// The path attributes of an UPDATE body (after the 19-octet header): (flags, type, value).
fn path_attributes(body: &[u8]) -> Vec<(u8, u8, Vec<u8>)> {
    let be16 = |i: usize| usize::from(u16::from_be_bytes([body[i], body[i + 1]]));
    let mut out = Vec::new();
    let mut i = 2 + be16(0);
    let end = i + 2 + be16(i);
    i += 2;
    while i < end {
        let (flags, t) = (body[i], body[i + 1]);
        let (len, hdr) = if flags & 0x10 != 0 {
            (be16(i + 2), 4)
        } else {
            (usize::from(body[i + 2]), 3)
        };
        out.push((flags, t, body[i + hdr..i + hdr + len].to_vec()));
        i += hdr + len;
    }
    out
}

/// The value of path attribute `code` in an UPDATE body.
fn path_attribute(body: &[u8], code: u8) -> Option<Vec<u8>> {
    path_attributes(body)
        .into_iter()
        .find(|a| a.1 == code)
        .map(|a| a.2)
}

/// The flags octet of path attribute `code` in an UPDATE body.
fn attribute_flags(body: &[u8], code: u8) -> Option<u8> {
    path_attributes(body)
        .into_iter()
        .find(|a| a.1 == code)
        .map(|a| a.0)
}

/// The AS numbers of an AS_PATH/AS4_PATH value with `width`-octet numbers.
fn as_numbers(v: &[u8], width: usize) -> Vec<u32> {
    let mut out = Vec::new();
    let mut i = 0;
    while i + 2 <= v.len() {
        let count = usize::from(v[i + 1]);
        for k in 0..count {
            let at = i + 2 + k * width;
            out.push(
                v[at..at + width]
                    .iter()
                    .fold(0u32, |acc, b| (acc << 8) | u32::from(*b)),
            );
        }
        i += 2 + count * width;
    }
    out
}

/// The raw UPDATE body ExaBGP received announcing `prefix` (the last one).
fn raw_update_for(exa: &Exabgp, prefix: &str) -> Option<Vec<u8>> {
    exa.messages()
        .ok()?
        .iter()
        .rev()
        .filter(|m| m["type"] == "update")
        .find(|m| {
            m["neighbor"]["message"]["update"]["announce"]["ipv4 unicast"]
                .as_object()
                .into_iter()
                .flat_map(|o| o.values())
                .flat_map(|v| v.as_array().cloned().unwrap_or_default())
                .any(|n| n["nlri"] == prefix)
        })
        .and_then(|m| m["body"].as_str().map(hex_bytes))
}

/// sartd with a 4-octet AS (4200000100) between a 2-octet speaker (ExaBGP, `asn4 disable`)
/// and a 4-octet one (FRR): sartd's OPEN says My AS 23456; the 2-octet peer gets AS_TRANS in
/// AS_PATH plus the real path in AS4_PATH; the 2-octet peer's route, with a 4-octet AS in its
/// path, reaches FRR with the real AS path (RFC 6793 §4.2.3).
#[test]
fn four_octet_as_towards_a_two_octet_peer() {
    require_root();
    let dut_ns = Netns::new("sartd").unwrap();
    let (exa_ns, frr_ns) = (Netns::new("exabgp").unwrap(), Netns::new("frr").unwrap());
    let l1 = Link::veth(&dut_ns, &exa_ns, 73).unwrap();
    let l2 = Link::veth(&dut_ns, &frr_ns, 74).unwrap();
    let (exa_addr, frr_addr): (IpAddr, IpAddr) = (l1.b.ipv4().into(), l2.b.ipv4().into());
    let dut_as = 4_200_000_100;
    let frr_as = 4_200_000_200;
    let dut = Sartd::start(
        &dut_ns,
        "sartd",
        BgpConfig::new(dut_as, l1.a.ipv4())
            .neighbor(Neighbor::new(exa_addr, 65060, &V4).hold_time(9))
            .neighbor(Neighbor::new(frr_addr, frr_as, &V4).hold_time(9))
            .route(Route::new(net("198.18.177.0/24"))),
    )
    .unwrap();
    let exa = Exabgp::start_with(
        &exa_ns,
        "exabgp",
        // A 2-octet speaker knows sartd as AS_TRANS.
        BgpConfig::new(65060, l1.b.ipv4())
            .neighbor(Neighbor::new(l1.a.ipv4().into(), AS_TRANS, &V4).hold_time(9))
            .route(Route::new(net("198.18.178.0/24")).prepend(&[4_200_000_061, 65062])),
        ExabgpOptions {
            asn4: false,
            packets: true,
        },
    )
    .unwrap();
    let frr = Frr::start(
        &frr_ns,
        "frr",
        BgpConfig::new(frr_as, l2.b.ipv4())
            .neighbor(Neighbor::new(l2.a.ipv4().into(), dut_as, &V4).hold_time(9))
            .route(Route::new(net("198.18.179.0/24"))),
    )
    .unwrap();
    wait_session(&dut, exa_addr, true, UP)
        .unwrap_or_else(|e| panic!("{e}\n{}\n{}", dut.logs(), exa.logs()));
    wait_session(&dut, frr_addr, true, UP).unwrap();

    // sartd's OPEN, as ExaBGP read it: My AS is AS_TRANS.
    let msgs = exa.messages().unwrap();
    let open = msgs
        .iter()
        .find(|m| m["type"] == "open")
        .unwrap_or_else(|| panic!("no OPEN recorded: {msgs:?}"));
    assert_eq!(
        open["neighbor"]["open"]["asn"].as_u64(),
        Some(u64::from(AS_TRANS)),
        "{open}"
    );

    // The 2-octet peer's route at sartd and, relayed, at FRR with the real path.
    let p = wait_route(&dut, net("198.18.178.0/24"), ROUTE, |p| {
        p.peer == Some(exa_addr)
    })
    .unwrap();
    assert_eq!(p.as_path, vec![65060, 4_200_000_061, 65062], "{p:?}");
    let p = wait_route(&frr, net("198.18.178.0/24"), ROUTE, |_| true).unwrap();
    assert_eq!(
        p.as_path,
        vec![dut_as, 65060, 4_200_000_061, 65062],
        "{p:?}"
    );

    // sartd's own route and FRR's relayed route at the 2-octet peer: AS_TRANS in AS_PATH,
    // the real numbers in AS4_PATH.
    for (prefix, real) in [
        ("198.18.177.0/24", vec![dut_as]),
        ("198.18.179.0/24", vec![dut_as, frr_as]),
    ] {
        let p = wait_route(&exa, net(prefix), ROUTE, |_| true).unwrap();
        assert_eq!(p.as_path, real, "{prefix}: ExaBGP's merged path");
        let body = wait_until("the raw UPDATE", ROUTE, POLL, || {
            raw_update_for(&exa, prefix).ok_or(Pending("none".into()))
        })
        .unwrap();
        let as_path = as_numbers(&path_attribute(&body, 2).unwrap(), 2);
        let as4_path = path_attribute(&body, 17)
            .map(|v| as_numbers(&v, 4))
            .unwrap_or_else(|| panic!("{prefix}: no AS4_PATH in {body:02x?}"));
        assert_eq!(as_path, vec![AS_TRANS; real.len()], "{prefix}: AS_PATH");
        assert_eq!(as4_path, real, "{prefix}: AS4_PATH");
    }
}

// ------------------------------------------------------------ RFC 7606, attribute by attribute

/// One malformed or unexpected attribute per prefix from ExaBGP, each handled as RFC 7606 (and
/// RFC 8092 for large communities) says, on one session that must stay up throughout:
/// treat-as-withdraw prefixes never show up, attribute-discard and accepted ones do.
#[test]
fn rfc7606_actions_per_attribute_from_exabgp() {
    require_root();
    let (_a, _b, link, dut, exa) = exabgp_pair(76);
    let (a4, b4): (IpAddr, IpAddr) = (link.a.ipv4().into(), link.b.ipv4().into());
    // (attribute [code flags value], installed?, what)
    let cases: [(&str, bool, &str); 8] = [
        ("0x04 0x80 0x000001", false, "MED 3 octets long (§7.4)"),
        (
            "0x20 0xc0 0x0000fde8000000010000ff",
            false,
            "LARGE_COMMUNITY 11 octets long (RFC 8092 §6)",
        ),
        (
            "0x08 0x40 0xfde80001",
            false,
            "COMMUNITIES with well-known flags (§3 c)",
        ),
        (
            "0x10 0xc0 0x0002fde8000000",
            false,
            "EXTENDED_COMMUNITIES 7 octets long (§7.14)",
        ),
        (
            "0x06 0x40 0x01",
            true,
            "ATOMIC_AGGREGATE 1 octet long: discard (§7.6)",
        ),
        (
            "0x07 0xc0 0x0000fde8c6",
            true,
            "AGGREGATOR 5 octets long: discard (§7.7)",
        ),
        (
            "0x05 0x40 0x0000012c",
            true,
            "LOCAL_PREF 300 from an eBGP peer: discard (§7.5)",
        ),
        (
            "0xfb 0x80 0x0102",
            true,
            "unknown optional non-transitive: accepted",
        ),
    ];
    let prefix = |i: usize| net(&format!("198.18.176.{}/28", 16 * i));
    for (i, (attr, _, _)) in cases.iter().enumerate() {
        exa.command(&format!(
            "neighbor {a4} announce route {} next-hop self attribute [ {attr} ]",
            prefix(i)
        ))
        .unwrap();
    }
    // A marker sent last: once it is in, every earlier UPDATE was processed.
    exa.command(&format!(
        "neighbor {a4} announce route 198.18.176.240/28 next-hop self"
    ))
    .unwrap();
    wait_route(&dut, net("198.18.176.240/28"), ROUTE, |p| {
        p.peer == Some(b4)
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", full_log(&dut)));
    let check = || -> Result<(), Pending> {
        let rib = dut.rib(Family::Ipv4Unicast)?;
        let mut wrong = Vec::new();
        for (i, (_, installed, what)) in cases.iter().enumerate() {
            let path = rib.from_peer(&prefix(i), b4);
            if path.is_some() != *installed {
                wrong.push(format!(
                    "{what}: {} {}",
                    prefix(i),
                    if *installed { "missing" } else { "installed" }
                ));
            }
            if what.starts_with("LOCAL_PREF") && path.is_some_and(|p| p.local_pref == Some(300)) {
                wrong.push(format!("{what}: LOCAL_PREF 300 kept"));
            }
        }
        if !dut.is_established(b4)? {
            wrong.push("session down".into());
        }
        if wrong.is_empty() {
            Ok(())
        } else {
            Err(Pending(format!("{}\n{}", wrong.join("\n"), rib.summary())))
        }
    };
    holds_for("RFC 7606 actions", Duration::from_secs(2), POLL, check)
        .unwrap_or_else(|e| panic!("{e}\n{}", full_log(&dut)));
    let log = full_log(&dut);
    assert!(
        !log.contains("NOTIFICATION sent"),
        "sartd reset the session:\n{log}"
    );
    assert!(dut.is_running());
}

/// Max-prefix against ExaBGP: the Cease / Maximum Number of Prefixes Reached carries AFI 1,
/// SAFI 1 and the limit (RFC 4486 §4).
#[test]
fn max_prefix_notification_carries_afi_safi_and_limit() {
    require_root();
    let (a, b) = (Netns::new("sartd").unwrap(), Netns::new("exabgp").unwrap());
    let link = Link::veth(&a, &b, 77).unwrap();
    let (a4, b4): (IpAddr, IpAddr) = (link.a.ipv4().into(), link.b.ipv4().into());
    let mut limited = Neighbor::new(b4, 65781, &V4).hold_time(9);
    limited.max_prefix = Some(3);
    let dut = Sartd::start(
        &a,
        "sartd",
        BgpConfig::new(65780, link.a.ipv4()).neighbor(limited),
    )
    .unwrap();
    let mut cfg =
        BgpConfig::new(65781, link.b.ipv4()).neighbor(Neighbor::new(a4, 65780, &V4).hold_time(9));
    for i in 0..4 {
        cfg = cfg.route(Route::new(net(&format!("198.18.177.{}/26", 64 * i))));
    }
    let exa = Exabgp::start_with(&b, "exabgp", cfg, RAW).unwrap();
    let notif = wait_until("ExaBGP to receive a NOTIFICATION", UP, POLL, || {
        let msgs = exa.messages()?;
        msgs.iter()
            .find(|m| m["type"] == "notification")
            .cloned()
            .ok_or_else(|| Pending(format!("{} messages", msgs.len())))
    })
    .unwrap_or_else(|e| panic!("{e}\n{}\n{}", full_log(&dut), exa.logs()));
    let n = &notif["neighbor"]["notification"];
    assert_eq!(
        (n["code"].as_u64(), n["subcode"].as_u64()),
        (Some(6), Some(1)),
        "{notif}"
    );
    assert_eq!(
        n["data"].as_str().map(str::to_ascii_lowercase).as_deref(),
        Some("0x00010100000003"),
        "AFI 1, SAFI 1, limit 3: {notif}"
    );
    // sartd restarts the session; ExaBGP comes back.
    wait_until("ExaBGP to be up again", UP, POLL, || {
        let msgs = exa.messages()?;
        let last_state = msgs
            .iter()
            .filter(|m| m["type"] == "state")
            .filter_map(|m| m["neighbor"]["state"].as_str())
            .collect::<Vec<_>>();
        let after_notif = msgs
            .iter()
            .skip_while(|m| m["type"] != "notification")
            .any(|m| m["type"] == "state" && m["neighbor"]["state"] == "up");
        if after_notif {
            Ok(())
        } else {
            Err(Pending(format!("{last_state:?}")))
        }
    })
    .unwrap();
    assert!(dut.is_running());
}

// ------------------------------------------------------------------ unknown attributes, relayed

/// Unknown optional attributes from one ExaBGP reach another ExaBGP through sartd as RFC 4271
/// §5 says: a transitive one unchanged with the Partial bit set, a non-transitive one not at all.
#[test]
fn unknown_optional_attributes_are_relayed_per_rfc4271() {
    require_root();
    let dut_ns = Netns::new("sartd").unwrap();
    let (src_ns, dst_ns) = (Netns::new("src").unwrap(), Netns::new("dst").unwrap());
    let l1 = Link::veth(&dut_ns, &src_ns, 79).unwrap();
    let l2 = Link::veth(&dut_ns, &dst_ns, 80).unwrap();
    let (src, dst): (IpAddr, IpAddr) = (l1.b.ipv4().into(), l2.b.ipv4().into());
    let dut = Sartd::start(
        &dut_ns,
        "sartd",
        BgpConfig::new(65790, l1.a.ipv4())
            .neighbor(Neighbor::new(src, 65791, &V4).hold_time(9))
            .neighbor(Neighbor::new(dst, 65792, &V4).hold_time(9)),
    )
    .unwrap();
    let source = Exabgp::start_with(
        &src_ns,
        "src",
        BgpConfig::new(65791, l1.b.ipv4())
            .neighbor(Neighbor::new(l1.a.ipv4().into(), 65790, &V4).hold_time(9)),
        RAW,
    )
    .unwrap();
    let sink = Exabgp::start_with(
        &dst_ns,
        "dst",
        BgpConfig::new(65792, l2.b.ipv4())
            .neighbor(Neighbor::new(l2.a.ipv4().into(), 65790, &V4).hold_time(9)),
        RAW,
    )
    .unwrap();
    wait_session(&dut, src, true, UP).unwrap();
    wait_session(&dut, dst, true, UP).unwrap();
    let to = l1.a.ipv4();
    source
        .command(&format!(
            "neighbor {to} announce route 198.18.179.0/25 next-hop self attribute [ 0xfa 0xc0 0xdeadbeef ]"
        ))
        .unwrap();
    source
        .command(&format!(
            "neighbor {to} announce route 198.18.179.128/25 next-hop self attribute [ 0xfb 0x80 0x0102 ]"
        ))
        .unwrap();
    for prefix in ["198.18.179.0/25", "198.18.179.128/25"] {
        wait_route(&dut, net(prefix), ROUTE, |p| p.peer == Some(src)).unwrap();
        let p = wait_route(&sink, net(prefix), ROUTE, |_| true)
            .unwrap_or_else(|e| panic!("{e}\n{}", full_log(&dut)));
        assert_eq!(p.as_path, vec![65790, 65791], "{prefix}");
    }
    let raw = |prefix: &str| {
        wait_until("the raw UPDATE at the sink", ROUTE, POLL, || {
            raw_update_for(&sink, prefix).ok_or(Pending("none".into()))
        })
        .unwrap()
    };
    let body = raw("198.18.179.0/25");
    let flags = attribute_flags(&body, 0xfa);
    assert_eq!(
        flags,
        Some(0xe0),
        "optional transitive + Partial expected, UPDATE {body:02x?}"
    );
    assert_eq!(
        path_attribute(&body, 0xfa),
        Some(vec![0xde, 0xad, 0xbe, 0xef])
    );
    let body = raw("198.18.179.128/25");
    assert_eq!(
        path_attribute(&body, 0xfb),
        None,
        "non-transitive attribute relayed: {body:02x?}"
    );
}

// ------------------------------------------------------------- AS4_PATH edge cases (RFC 6793)

/// A 2-octet peer (ExaBGP, `asn4 disable`) sends AS4_PATHs that sartd must reconcile per
/// RFC 6793: one longer than AS_PATH is ignored (§4.2.3), a shorter one replaces the tail of
/// AS_PATH, a malformed one is discarded and the route kept (§6). The results reach a 4-octet
/// FRR with sartd's AS in front.
#[test]
fn as4_path_reconciliation_from_a_two_octet_peer() {
    require_root();
    let dut_ns = Netns::new("sartd").unwrap();
    let (exa_ns, frr_ns) = (Netns::new("exabgp").unwrap(), Netns::new("frr").unwrap());
    let l1 = Link::veth(&dut_ns, &exa_ns, 81).unwrap();
    let l2 = Link::veth(&dut_ns, &frr_ns, 82).unwrap();
    let (exa_addr, frr_addr): (IpAddr, IpAddr) = (l1.b.ipv4().into(), l2.b.ipv4().into());
    let dut_as = 4_200_000_100;
    let dut = Sartd::start(
        &dut_ns,
        "sartd",
        BgpConfig::new(dut_as, l1.a.ipv4())
            .neighbor(Neighbor::new(exa_addr, 65060, &V4).hold_time(9))
            .neighbor(Neighbor::new(frr_addr, 4_200_000_200, &V4).hold_time(9)),
    )
    .unwrap();
    let exa = Exabgp::start_with(
        &exa_ns,
        "exabgp",
        BgpConfig::new(65060, l1.b.ipv4())
            .neighbor(Neighbor::new(l1.a.ipv4().into(), AS_TRANS, &V4).hold_time(9)),
        ExabgpOptions {
            asn4: false,
            packets: true,
        },
    )
    .unwrap();
    let frr = Frr::start(
        &frr_ns,
        "frr",
        BgpConfig::new(4_200_000_200, l2.b.ipv4())
            .neighbor(Neighbor::new(l2.a.ipv4().into(), dut_as, &V4).hold_time(9)),
    )
    .unwrap();
    wait_session(&dut, exa_addr, true, UP).unwrap();
    wait_session(&dut, frr_addr, true, UP).unwrap();
    // (prefix, AS_PATH as sent, AS4_PATH value, the real path sartd must see)
    let cases: [(&str, &str, &str, Vec<u32>); 3] = [
        (
            "198.18.181.0/26",
            "65060 65061",
            "0x0203fa56ea01fa56ea02fa56ea03",
            vec![65060, 65061],
        ),
        // (65099 stands in for AS_TRANS: ExaBGP adds an AS4_PATH of its own to a path with
        // 23456 in it, and the second AS4_PATH would be a duplicate.)
        (
            "198.18.181.64/26",
            "65060 65099",
            "0x0201fa56ea3d",
            vec![65060, 4_200_000_061],
        ),
        (
            "198.18.181.128/26",
            "65060 65099",
            "0x0202fa56ea3d",
            vec![65060, 65099],
        ),
    ];
    let to = l1.a.ipv4();
    for (prefix, as_path, as4, _) in &cases {
        exa.command(&format!(
            "neighbor {to} announce route {prefix} next-hop self as-path [ {as_path} ] attribute [ 0x11 0xc0 {as4} ]"
        ))
        .unwrap();
    }
    for (prefix, as_path, _, real) in &cases {
        let p = wait_route(&dut, net(prefix), ROUTE, |p| p.peer == Some(exa_addr))
            .unwrap_or_else(|e| panic!("{prefix}: {e}\n{}", full_log(&dut)));
        assert_eq!(&p.as_path, real, "{prefix} sent as AS_PATH [{as_path}]");
        let p = wait_route(&frr, net(prefix), ROUTE, |_| true).unwrap();
        let mut want = vec![dut_as];
        want.extend(real);
        assert_eq!(p.as_path, want, "{prefix} at FRR");
    }
    assert!(dut.is_established(exa_addr).unwrap());
}

// ------------------------------------------------------------------ max-prefix accounting

/// The max-prefix limit counts prefixes, not announcements: re-announcing a prefix, and
/// withdrawing one to announce another, stay within a limit of 2; a third prefix exceeds it.
#[test]
fn max_prefix_counts_prefixes_not_announcements() {
    require_root();
    let (a, b) = (Netns::new("sartd").unwrap(), Netns::new("exabgp").unwrap());
    let link = Link::veth(&a, &b, 83).unwrap();
    let (a4, b4): (IpAddr, IpAddr) = (link.a.ipv4().into(), link.b.ipv4().into());
    let mut limited = Neighbor::new(b4, 65831, &V4).hold_time(9);
    limited.max_prefix = Some(2);
    let dut = Sartd::start(
        &a,
        "sartd",
        BgpConfig::new(65830, link.a.ipv4()).neighbor(limited),
    )
    .unwrap();
    let (pa, pb, pc, pd) = (
        "198.18.183.0/26",
        "198.18.183.64/26",
        "198.18.183.128/26",
        "198.18.183.192/26",
    );
    let mut exa = Exabgp::start_with(
        &b,
        "exabgp",
        BgpConfig::new(65831, link.b.ipv4())
            .neighbor(Neighbor::new(a4, 65830, &V4).hold_time(9))
            .route(Route::new(net(pa)))
            .route(Route::new(net(pb))),
        RAW,
    )
    .unwrap();
    wait_session(&dut, b4, true, UP).unwrap();
    wait_route(&dut, net(pa), ROUTE, |p| p.peer == Some(b4)).unwrap();
    wait_route(&dut, net(pb), ROUTE, |p| p.peer == Some(b4)).unwrap();
    for med in 1..=3 {
        exa.announce(Route::new(net(pa)).med(med)).unwrap();
    }
    wait_route(&dut, net(pa), ROUTE, |p| p.med == Some(3)).unwrap();
    exa.withdraw(net(pb)).unwrap();
    wait_route_gone(&dut, net(pb), ROUTE).unwrap();
    exa.announce(Route::new(net(pc))).unwrap();
    wait_route(&dut, net(pc), ROUTE, |p| p.peer == Some(b4))
        .unwrap_or_else(|e| panic!("{e}\n{}", full_log(&dut)));
    holds_for("within the limit", Duration::from_secs(2), POLL, || {
        if dut.is_established(b4)? {
            Ok(())
        } else {
            Err(Pending(full_log(&dut)))
        }
    })
    .unwrap();
    assert!(
        !full_log(&dut).contains("NOTIFICATION sent"),
        "{}",
        full_log(&dut)
    );
    exa.announce(Route::new(net(pd))).unwrap();
    let notif = wait_until("the Cease for a third prefix", ROUTE, POLL, || {
        let msgs = exa.messages()?;
        msgs.iter()
            .find(|m| m["type"] == "notification")
            .cloned()
            .ok_or_else(|| Pending(format!("{} messages", msgs.len())))
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", full_log(&dut)));
    let n = &notif["neighbor"]["notification"];
    assert_eq!(
        (n["code"].as_u64(), n["subcode"].as_u64()),
        (Some(6), Some(1)),
        "{notif}"
    );
}

// ------------------------------------------------------------------------- AS path loop

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

// ------------------------------------------------------------------- iBGP and reflection

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

// -------------------------------------------------------------------------------- lastError

/// The API's `lastError` is "the last error (NOTIFICATION sent or received, connection
/// failure)" (proto/sart/v1/bgp.proto): after sartd's hold timer fires on a frozen FRR, it names
/// the Hold Timer Expired NOTIFICATION sartd sent.
#[test]
fn last_error_names_a_sent_notification() {
    require_root();
    let (a, b) = (Netns::new("sartd").unwrap(), Netns::new("frr").unwrap());
    let link = Link::veth(&a, &b, 89).unwrap();
    let (a4, b4): (IpAddr, IpAddr) = (link.a.ipv4().into(), link.b.ipv4().into());
    let dut = Sartd::start(
        &a,
        "sartd",
        BgpConfig::new(65890, link.a.ipv4()).neighbor(Neighbor::new(b4, 65891, &V4).hold_time(3)),
    )
    .unwrap();
    let frr = Frr::start(
        &b,
        "frr",
        BgpConfig::new(65891, link.b.ipv4()).neighbor(Neighbor::new(a4, 65890, &V4).hold_time(3)),
    )
    .unwrap();
    wait_session(&dut, b4, true, UP).unwrap();
    frr.freeze().unwrap();
    wait_session(&dut, b4, false, Duration::from_secs(10)).unwrap();
    let log = full_log(&dut);
    assert!(
        log.contains("NOTIFICATION sent: Hold Timer Expired"),
        "sartd did not send 4/0:\n{log}"
    );
    let n = dut.neighbor(b4).unwrap();
    frr.unfreeze().unwrap();
    let err = n["lastError"].as_str().unwrap_or("");
    assert!(
        err.contains("Hold Timer Expired") || err.contains("4/0"),
        "lastError {err:?} does not name the NOTIFICATION sartd sent: {n}"
    );
}

// ------------------------------------------------------------------------------ hold time

/// Hold time is the smaller of the two OPENs' (RFC 4271 §4.2): sartd 9 s, FRR 3 s gives 3 s on
/// both sides, and sartd shows the keepalive that goes with it (hold / 3 = 1 s).
#[test]
fn negotiated_hold_time_is_the_smaller_one() {
    require_root();
    let (a, b) = (Netns::new("sartd").unwrap(), Netns::new("frr").unwrap());
    let link = Link::veth(&a, &b, 90).unwrap();
    let (a4, b4): (IpAddr, IpAddr) = (link.a.ipv4().into(), link.b.ipv4().into());
    let dut = Sartd::start(
        &a,
        "sartd",
        BgpConfig::new(65900, link.a.ipv4()).neighbor(Neighbor::new(b4, 65901, &V4).hold_time(9)),
    )
    .unwrap();
    let frr = Frr::start(
        &b,
        "frr",
        BgpConfig::new(65901, link.b.ipv4()).neighbor(Neighbor::new(a4, 65900, &V4).hold_time(3)),
    )
    .unwrap();
    let s = wait_session(&dut, b4, true, UP).unwrap();
    assert_eq!(s.hold_time, Some(Duration::from_secs(3)), "{s:?}");
    let s = wait_session(&frr, a4, true, UP).unwrap();
    assert_eq!(s.hold_time, Some(Duration::from_secs(3)), "{s:?}");
    let n = dut.neighbor(b4).unwrap();
    assert_eq!(
        (n["holdTime"].as_u64(), n["keepAliveTime"].as_u64()),
        (Some(3), Some(1)),
        "{n}"
    );
    // Keepalives every second keep FRR's 3 s hold timer from firing.
    holds_for("the session stays up", Duration::from_secs(4), POLL, || {
        if frr.is_established(a4)? {
            Ok(())
        } else {
            Err(Pending("down".into()))
        }
    })
    .unwrap();
}

// ------------------------------------------------------------------------------ AS from the API

/// sart lets the config leave `asn` out, for the agent to set it later with SetAS. Until then no
/// session starts; `sart bgp global set --asn` then starts the neighbours and the paths of the
/// file, and FRR sees the route with the AS that was set.
#[test]
fn config_without_asn_waits_for_set_as() {
    require_root();
    let (a, b) = (Netns::new("sartd").unwrap(), Netns::new("frr").unwrap());
    let link = Link::veth(&a, &b, 91).unwrap();
    let (a4, b4): (IpAddr, IpAddr) = (link.a.ipv4().into(), link.b.ipv4().into());
    let prefix = net("198.18.191.0/24");
    let dut = Sartd::start(
        &a,
        "sartd",
        BgpConfig::new(0, link.a.ipv4())
            .neighbor(Neighbor::new(b4, 65911, &V4))
            .route(Route::new(prefix)),
    )
    .unwrap();
    let frr = Frr::start(
        &b,
        "frr",
        BgpConfig::new(65911, link.b.ipv4()).neighbor(Neighbor::new(a4, 65910, &V4)),
    )
    .unwrap();
    // Without an AS the speaker runs, answers the API and starts nothing.
    let info = dut.sart_json(&["global", "get"]).unwrap();
    assert_eq!(info["asn"].as_u64().unwrap_or(0), 0, "{info}");
    holds_for(
        "no session without an AS",
        Duration::from_secs(3),
        POLL,
        || {
            if frr.is_established(a4)? {
                Err(Pending("FRR has a session".into()))
            } else {
                Ok(())
            }
        },
    )
    .unwrap();

    dut.sart(&["global", "set", "--asn", "65910"]).unwrap();
    wait_session(&dut, b4, true, UP).unwrap();
    let p = wait_route(&frr, prefix, ROUTE, |_| true).unwrap();
    assert_eq!(p.as_path, vec![65910], "{p:?}");
    // The neighbour from the file is listed once, under the AS that was set.
    let list = dut.sart_json(&["neighbor", "list"]).unwrap();
    assert_eq!(list["peers"].as_array().map(Vec::len), Some(1), "{list}");
    assert_eq!(list["peers"][0]["state"], "Established", "{list}");
}
