//! `sartd bgp` as the device under test, against real FRR, BIRD, GoBGP and ExaBGP in network
//! namespaces. Needs root and the `sartd` and `sart` binaries (`make test` builds them first).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;
use common::*;

use std::net::IpAddr;
use std::time::{Duration, Instant};

use interop::frr::Frr;
use interop::sartd::Sartd;
use interop::{
    BgpConfig, Community, Daemon, DaemonKind, LargeCommunity, Link, Neighbor, Netns, Route,
    wait_route, wait_route_gone, wait_session,
};

/// sartd is a hub with one eBGP neighbour of each kind: every neighbour's route reaches sartd
/// with its attributes, sartd's own route reaches every neighbour, and routes are relayed from
/// one neighbour to the others with sartd's AS prepended (next hop self). One neighbour uses a
/// 4-octet AS number.
#[test]
fn hub_exchanges_and_relays_routes_with_every_daemon() {
    require_root();
    let hub_ns = Netns::new("sartd").unwrap();
    let hub_as = 65300;
    let mut hub_cfg = BgpConfig::new(hub_as, "198.18.30.1".parse().unwrap()).route(
        Route::new(net("198.18.130.0/24"))
            .community(65300, 130)
            .large_community(65300, 1, 2)
            .med(7),
    );
    let mut spokes = Vec::new();
    for (i, kind) in DaemonKind::PEERS.into_iter().enumerate() {
        let i = u8::try_from(i).unwrap();
        let ns = Netns::new(&format!("{kind:?}")).unwrap();
        let link = Link::veth(&hub_ns, &ns, 31 + i).unwrap();
        // FRR gets a 4-octet AS number (RFC 6793).
        let asn = if kind == DaemonKind::Frr {
            4_200_000_001
        } else {
            65301 + u32::from(i)
        };
        hub_cfg = hub_cfg.neighbor(Neighbor::new(link.b.ipv4().into(), asn, &V4).hold_time(9));
        let cfg = BgpConfig::new(asn, link.b.ipv4())
            .neighbor(Neighbor::new(link.a.ipv4().into(), hub_as, &V4).hold_time(9))
            .route(
                Route::new(net(&format!("198.18.{}.0/24", 131 + i)))
                    .community(65000 + u16::from(i), 1)
                    .large_community(asn, 9, 9),
            );
        spokes.push((kind, asn, link, ns, cfg));
    }
    let hub = Sartd::start(&hub_ns, "sartd", hub_cfg).unwrap();
    let peers: Vec<Box<dyn Daemon>> = spokes
        .iter()
        .map(|(kind, _, _, ns, cfg)| kind.start(ns, "peer", cfg.clone()).unwrap())
        .collect();

    for ((kind, asn, link, _, cfg), peer) in spokes.iter().zip(&peers) {
        let addr: IpAddr = link.b.ipv4().into();
        wait_session(&hub, addr, true, UP)
            .unwrap_or_else(|e| panic!("{kind:?}: {e}\n{}\n{}", hub.logs(), peer.logs()));
        let prefix = cfg.routes[0].prefix;
        let p = wait_route(&hub, prefix, ROUTE, |p| p.peer == Some(addr))
            .unwrap_or_else(|e| panic!("{kind:?} -> sartd: {e}"));
        assert_eq!(p.as_path, vec![*asn], "{kind:?}");
        assert!(
            p.has_large_community(LargeCommunity(*asn, 9, 9)),
            "{kind:?}: {p:?}"
        );
        let p = wait_route(peer.as_ref(), net("198.18.130.0/24"), ROUTE, |_| true)
            .unwrap_or_else(|e| panic!("sartd -> {kind:?}: {e}"));
        assert_eq!(p.as_path, vec![hub_as], "{kind:?}");
        assert!(p.has_community(Community(65300, 130)), "{kind:?}: {p:?}");
        assert!(
            p.has_large_community(LargeCommunity(65300, 1, 2)),
            "{kind:?}: {p:?}"
        );
        assert_eq!(
            p.next_hops.first(),
            Some(&IpAddr::from(link.a.ipv4())),
            "{kind:?}: next hop self"
        );
    }
    // Relay: every spoke's route reaches every other spoke through sartd, AS path [hub, origin].
    for (j, (kind, _, _, _, _)) in spokes.iter().enumerate() {
        for (k, (_, asn, _, _, cfg)) in spokes.iter().enumerate() {
            if j == k {
                continue;
            }
            let prefix = cfg.routes[0].prefix;
            let p = wait_route(peers[j].as_ref(), prefix, ROUTE, |_| true)
                .unwrap_or_else(|e| panic!("relay to {kind:?}: {e}"));
            assert_eq!(p.as_path, vec![hub_as, *asn], "relay to {kind:?}");
        }
    }
    // A withdrawal at the source reaches the others.
    let (_, _, _, _, frr_cfg) = &spokes[0];
    let frr_prefix = frr_cfg.routes[0].prefix;
    let mut peers = peers;
    peers[0].withdraw(frr_prefix).unwrap();
    wait_route_gone(&hub, frr_prefix, ROUTE).unwrap();
    wait_route_gone(peers[1].as_ref(), frr_prefix, ROUTE).unwrap();
}

/// iBGP with LOCAL_PREF to one FRR, IPv6 unicast over an IPv6 eBGP session to another; runtime
/// announce and withdraw through the API reach the peer.
#[test]
fn ibgp_ipv6_and_runtime_paths_with_frr() {
    require_root();
    let a = Netns::new("sartd").unwrap();
    let (b, c) = (Netns::new("frr").unwrap(), Netns::new("frr6").unwrap());
    let link = Link::veth(&a, &b, 41).unwrap();
    let link6 = Link::veth(&a, &c, 42).unwrap();
    let (a4, b4): (IpAddr, IpAddr) = (link.a.ipv4().into(), link.b.ipv4().into());
    let (a6, c6): (IpAddr, IpAddr) = (link6.a.ipv6().into(), link6.b.ipv6().into());
    let mut dut = Sartd::start(
        &a,
        "sartd",
        BgpConfig::new(65400, link.a.ipv4())
            .neighbor(Neighbor::new(b4, 65400, &V4).hold_time(9))
            .neighbor(
                Neighbor::new(c6, 65401, &V6)
                    .hold_time(9)
                    .router_id(link6.b.ipv4()),
            )
            .route(Route::new(net("198.18.141.0/24")).local_pref(250))
            .route(Route::new(net("fd00:141::/64")).community(65400, 6)),
    )
    .unwrap();
    let frr = Frr::start(
        &b,
        "frr",
        BgpConfig::new(65400, link.b.ipv4())
            .neighbor(Neighbor::new(a4, 65400, &V4).hold_time(9))
            .route(Route::new(net("198.18.142.0/24")).local_pref(120)),
    )
    .unwrap();
    let frr6 = Frr::start(
        &c,
        "frr6",
        BgpConfig::new(65401, link6.b.ipv4())
            .neighbor(Neighbor::new(a6, 65400, &V6).hold_time(9))
            .route(Route::new(net("fd00:142::/64"))),
    )
    .unwrap();

    wait_session(&frr, a4, true, UP).unwrap();
    // iBGP: LOCAL_PREF travels both ways, no AS prepended.
    let p = wait_route(&frr, net("198.18.141.0/24"), ROUTE, |p| p.peer == Some(a4)).unwrap();
    assert_eq!(p.local_pref, Some(250));
    assert!(p.as_path.is_empty(), "{p:?}");
    let p = wait_route(&dut, net("198.18.142.0/24"), ROUTE, |p| p.peer == Some(b4)).unwrap();
    assert_eq!(p.local_pref, Some(120));

    // IPv6 unicast in MP_REACH over the IPv6 session.
    wait_session(&dut, c6, true, UP).unwrap();
    let p = wait_route(&frr6, net("fd00:141::/64"), ROUTE, |_| true).unwrap();
    assert_eq!(p.as_path, vec![65400]);
    assert!(p.has_community(Community(65400, 6)), "{p:?}");
    wait_route(&dut, net("fd00:142::/64"), ROUTE, |p| p.peer == Some(c6)).unwrap();
    dut.announce(Route::new(net("fd00:143::/64")).med(3))
        .unwrap();
    wait_route(&frr6, net("fd00:143::/64"), ROUTE, |p| p.med == Some(3)).unwrap();
    dut.withdraw(net("fd00:143::/64")).unwrap();
    wait_route_gone(&frr6, net("fd00:143::/64"), ROUTE).unwrap();
}

/// The hold timer fires when the peer freezes (SIGSTOP), the session comes back when it thaws,
/// and again after the peer restarts; the peer's routes follow the session.
#[test]
fn hold_timer_expiry_and_peer_restart() {
    require_root();
    let (a, b) = (Netns::new("sartd").unwrap(), Netns::new("frr").unwrap());
    let link = Link::veth(&a, &b, 43).unwrap();
    let (a4, b4): (IpAddr, IpAddr) = (link.a.ipv4().into(), link.b.ipv4().into());
    let dut = Sartd::start(
        &a,
        "sartd",
        BgpConfig::new(65500, link.a.ipv4()).neighbor(Neighbor::new(b4, 65501, &V4).hold_time(3)),
    )
    .unwrap();
    let mut frr = Frr::start(
        &b,
        "frr",
        BgpConfig::new(65501, link.b.ipv4())
            .neighbor(Neighbor::new(a4, 65500, &V4).hold_time(3))
            .route(Route::new(net("198.18.150.0/24"))),
    )
    .unwrap();
    wait_session(&dut, b4, true, UP).unwrap();
    wait_route(&dut, net("198.18.150.0/24"), ROUTE, |_| true).unwrap();

    frr.freeze().unwrap();
    let t = Instant::now();
    wait_session(&dut, b4, false, Duration::from_secs(10)).unwrap();
    let down = t.elapsed();
    assert!(
        down >= Duration::from_secs(1) && down <= Duration::from_secs(6),
        "hold 3 s, down after {down:?}"
    );
    wait_route_gone(&dut, net("198.18.150.0/24"), ROUTE).unwrap();
    frr.unfreeze().unwrap();
    wait_session(&dut, b4, true, UP).unwrap();
    wait_route(&dut, net("198.18.150.0/24"), ROUTE, |_| true).unwrap();

    frr.restart().unwrap();
    wait_session(&dut, b4, true, UP).unwrap();
    wait_route(&dut, net("198.18.150.0/24"), ROUTE, |_| true).unwrap();
}

/// Prometheus metrics describe the session, then SIGTERM closes it with a Cease /
/// Administrative Shutdown that FRR records.
#[test]
fn metrics_then_sigterm_sends_administrative_shutdown() {
    require_root();
    let (a, b) = (Netns::new("sartd").unwrap(), Netns::new("frr").unwrap());
    let link = Link::veth(&a, &b, 44).unwrap();
    let (a4, b4): (IpAddr, IpAddr) = (link.a.ipv4().into(), link.b.ipv4().into());
    let mut dut = Sartd::start(
        &a,
        "sartd",
        BgpConfig::new(65600, link.a.ipv4()).neighbor(Neighbor::new(b4, 65601, &V4)),
    )
    .unwrap();
    let frr = Frr::start(
        &b,
        "frr",
        BgpConfig::new(65601, link.b.ipv4())
            .neighbor(Neighbor::new(a4, 65600, &V4))
            .route(Route::new(net("198.18.160.0/24"))),
    )
    .unwrap();
    wait_session(&frr, a4, true, UP).unwrap();
    wait_route(&dut, net("198.18.160.0/24"), ROUTE, |_| true).unwrap();
    // The metrics snapshot is refreshed every 200 ms.
    std::thread::sleep(Duration::from_millis(500));
    let m = a
        .exec(&["curl", "-sf", "http://127.0.0.1:7472/metrics"])
        .unwrap();
    let has = |line: &str| m.lines().any(|l| l == line);
    assert!(has(r#"sart_bgp_sessions{state="Established"} 1"#), "{m}");
    assert!(
        m.lines().any(
            |l| l.starts_with(&format!(r#"sart_bgp_peer_state{{peer="{b4}","#))
                && l.ends_with(" 6")
        ),
        "{m}"
    );
    assert!(
        has(&format!(r#"sart_bgp_prefixes_received{{peer="{b4}"}} 1"#)),
        "{m}"
    );
    assert!(
        m.lines().any(|l| l.starts_with(&format!(
            r#"sart_bgp_messages_received_total{{peer="{b4}",type="update"}} "#
        ))),
        "{m}"
    );
    assert!(
        m.lines()
            .any(|l| l.starts_with("sart_bgp_update_processing_seconds_count ")),
        "{m}"
    );
    assert!(
        m.lines()
            .any(|l| l.starts_with("sart_bgp_best_path_changes_total ")),
        "{m}"
    );
    let t = Instant::now();
    dut.stop();
    assert!(
        t.elapsed() < Duration::from_secs(3),
        "sartd took {:?} to exit",
        t.elapsed()
    );
    wait_session(&frr, a4, false, Duration::from_secs(5)).unwrap();
    let js = frr
        .vtysh(&[&format!("show bgp neighbors {a4} json")])
        .unwrap();
    assert!(
        js.contains("Administrative Shutdown") || js.contains("Admin. shutdown"),
        "FRR did not record an administrative shutdown: {js}"
    );
}

/// `sart bgp watch` streams session state and best-path changes as they happen.
#[test]
fn watch_streams_peer_and_path_changes() {
    require_root();
    let (a, b) = (Netns::new("sartd").unwrap(), Netns::new("frr").unwrap());
    let link = Link::veth(&a, &b, 45).unwrap();
    let (a4, b4): (IpAddr, IpAddr) = (link.a.ipv4().into(), link.b.ipv4().into());
    let dut = Sartd::start(
        &a,
        "sartd",
        BgpConfig::new(65700, link.a.ipv4()).neighbor(Neighbor::new(b4, 65701, &V4)),
    )
    .unwrap();
    let log = a.dir().join("watch.jsonl");
    let bin = interop::sartd::sart_binary();
    let argv = [
        bin.to_string_lossy().to_string(),
        "-o".into(),
        "json".into(),
        "bgp".into(),
        "-e".into(),
        dut.api_addr(),
        "watch".into(),
    ];
    let watch = a.spawn("watch", &argv, &log).unwrap();
    let mut frr = Frr::start(
        &b,
        "frr",
        BgpConfig::new(65701, link.b.ipv4())
            .neighbor(Neighbor::new(a4, 65700, &V4))
            .route(Route::new(net("198.18.170.0/24"))),
    )
    .unwrap();
    let lines = || -> Vec<serde_json::Value> {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    };
    let seen = |pred: &dyn Fn(&serde_json::Value) -> bool| {
        let t = Instant::now();
        while t.elapsed() < ROUTE + UP {
            if lines().iter().any(pred) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    };
    let addr = b4.to_string();
    assert!(
        seen(&|v| v["type"] == "peer"
            && v["address"] == addr.as_str()
            && v["state"] == "Established"),
        "no Established event: {:?}",
        lines()
    );
    assert!(
        seen(&|v| v["type"] == "path"
            && v["prefix"] == "198.18.170.0/24"
            && v["nextHops"][0] == addr.as_str()),
        "no best-path event: {:?}",
        lines()
    );
    frr.withdraw(net("198.18.170.0/24")).unwrap();
    assert!(
        seen(&|v| v["type"] == "path"
            && v["prefix"] == "198.18.170.0/24"
            && v["withdrawn"] == true),
        "no withdrawal event: {:?}",
        lines()
    );
    drop(watch);
}

/// `sart bgp neighbor reset`: soft-in sends FRR a ROUTE-REFRESH, hard closes the session with
/// a Cease / Administrative Reset and it comes back with the routes.
#[test]
fn soft_and_hard_reset() {
    require_root();
    let (a, b) = (Netns::new("sartd").unwrap(), Netns::new("frr").unwrap());
    let link = Link::veth(&a, &b, 46).unwrap();
    let (a4, b4): (IpAddr, IpAddr) = (link.a.ipv4().into(), link.b.ipv4().into());
    let dut = Sartd::start(
        &a,
        "sartd",
        BgpConfig::new(65800, link.a.ipv4()).neighbor(Neighbor::new(b4, 65801, &V4)),
    )
    .unwrap();
    let frr = Frr::start(
        &b,
        "frr",
        BgpConfig::new(65801, link.b.ipv4())
            .neighbor(Neighbor::new(a4, 65800, &V4))
            .route(Route::new(net("198.18.180.0/24"))),
    )
    .unwrap();
    wait_session(&frr, a4, true, UP).unwrap();
    wait_route(&dut, net("198.18.180.0/24"), ROUTE, |_| true).unwrap();
    let stats = || -> serde_json::Value {
        let js = frr
            .vtysh(&[&format!("show bgp neighbors {a4} json")])
            .unwrap();
        let v: serde_json::Value = serde_json::from_str(&js).unwrap();
        v[a4.to_string()]["messageStats"].clone()
    };
    let before = stats()["routeRefreshRecv"].as_u64().unwrap_or(0);
    dut.sart(&["neighbor", "reset", &b4.to_string(), "soft-in"])
        .unwrap();
    let t = Instant::now();
    while stats()["routeRefreshRecv"].as_u64().unwrap_or(0) <= before {
        assert!(t.elapsed() < ROUTE, "FRR got no ROUTE-REFRESH: {}", stats());
        std::thread::sleep(Duration::from_millis(100));
    }
    wait_route(&dut, net("198.18.180.0/24"), ROUTE, |_| true).unwrap();

    dut.sart(&["neighbor", "reset", &b4.to_string(), "hard"])
        .unwrap();
    wait_session(&frr, a4, false, Duration::from_secs(5)).unwrap();
    let js = frr
        .vtysh(&[&format!("show bgp neighbors {a4} json")])
        .unwrap();
    assert!(js.contains("Administrative Reset"), "{js}");
    wait_session(&frr, a4, true, UP).unwrap();
    wait_route(&dut, net("198.18.180.0/24"), ROUTE, |_| true).unwrap();
    // An unknown neighbour is an error with a non-zero exit, not silence.
    assert!(
        dut.sart(&["neighbor", "reset", "198.18.46.99", "hard"])
            .is_err()
    );
}
