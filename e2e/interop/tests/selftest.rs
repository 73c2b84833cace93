//! Self-tests of the harness with real daemons only (FRR, BIRD 2, GoBGP, ExaBGP). Each test
//! builds its own namespaces; run as root: `cargo test -p sart-interop`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::*;

use std::net::IpAddr;
use std::time::{Duration, Instant};

use interop::bird::Bird;
use interop::exabgp::Exabgp;
use interop::frr::Frr;
use interop::gobgp::Gobgp;
use interop::netns::list_harness_namespaces;
use interop::process::pid_alive;
use interop::sartd::Sartd;
use interop::{
    BgpConfig, Community, Daemon, Error, Family, LargeCommunity, Link, Neighbor, Netns, Route,
    holds_for, wait_route, wait_route_gone, wait_session, wait_until,
};

/// What a test made, to check after everything is dropped that nothing is left behind.
struct Footprint {
    namespaces: Vec<String>,
    pids: Vec<u32>,
}

impl Footprint {
    fn of(namespaces: &[&Netns], daemons: &[&dyn Daemon]) -> Footprint {
        let mut pids = Vec::new();
        for ns in namespaces {
            pids.extend(ns.pids());
        }
        for d in daemons {
            pids.extend(d.bgp_pid());
        }
        Footprint {
            namespaces: namespaces.iter().map(|n| n.name().to_owned()).collect(),
            pids,
        }
    }

    fn assert_gone(&self) {
        let left = list_harness_namespaces();
        for n in &self.namespaces {
            assert!(!left.contains(n), "namespace {n} still exists");
            assert!(
                !std::env::temp_dir().join(n).exists() || std::env::var("SARTI_KEEP").is_ok(),
                "scratch dir of {n} still exists"
            );
        }
        for pid in &self.pids {
            assert!(!pid_alive(*pid), "pid {pid} still running");
        }
    }
}

/// FRR (AS65001) <-> BIRD (AS65002): one eBGP session over IPv4 for IPv4 unicast and one over
/// IPv6 for IPv6 unicast; routes both ways with communities, large communities and MED.
#[test]
fn frr_bird_ebgp_dual_stack_routes_and_attributes() {
    require_root();
    let (a, b) = (Netns::new("frr").unwrap(), Netns::new("bird").unwrap());
    let link = Link::veth(&a, &b, 1).unwrap();
    let (a4, b4): (IpAddr, IpAddr) = (link.a.ipv4().into(), link.b.ipv4().into());
    let (a6, b6): (IpAddr, IpAddr) = (link.a.ipv6().into(), link.b.ipv6().into());

    let frr = Frr::start(
        &a,
        "frr",
        BgpConfig::new(65001, link.a.ipv4())
            .neighbor(Neighbor::new(b4, 65002, &V4))
            .neighbor(Neighbor::new(b6, 65002, &V6))
            .route(
                Route::new(net("198.18.100.0/24"))
                    .community(65001, 100)
                    .community(65001, 200)
                    .large_community(65001, 1, 2)
                    .med(10),
            )
            .route(Route::new(net("fd00:100::/64")).community(65001, 600)),
    )
    .unwrap();
    let bird = Bird::start(
        &b,
        "bird",
        BgpConfig::new(65002, link.b.ipv4())
            .neighbor(Neighbor::new(a4, 65001, &V4).passive())
            .neighbor(Neighbor::new(a6, 65001, &V6).passive())
            .route(
                Route::new(net("198.18.200.0/24"))
                    .community(65002, 300)
                    .large_community(65002, 4, 5)
                    .med(20),
            )
            .route(Route::new(net("fd00:200::/64")).large_community(65002, 6, 6)),
    )
    .unwrap();

    for peer in [b4, b6] {
        let s = wait_session(&frr, peer, true, UP).unwrap();
        assert_eq!(s.remote_as, Some(65002));
    }
    for peer in [a4, a6] {
        let s = wait_session(&bird, peer, true, UP).unwrap();
        assert_eq!(s.remote_as, Some(65001));
        assert_eq!(s.remote_router_id, Some(link.a.ipv4()));
    }

    // BIRD -> FRR
    // FRR lists a received path before its best-path run marks it: wait for both, so the
    // `best` below is not a sample of that moment.
    let p = wait_route(&frr, net("198.18.200.0/24"), ROUTE, |p| {
        p.peer == Some(b4) && p.best
    })
    .unwrap();
    assert_eq!(p.as_path, vec![65002]);
    assert_eq!(p.next_hops, vec![b4]);
    assert_eq!(p.med, Some(20));
    assert_eq!(p.communities, vec![Community(65002, 300)]);
    assert_eq!(p.large_communities, vec![LargeCommunity(65002, 4, 5)]);
    assert!(p.best);
    let p = wait_route(&frr, net("fd00:200::/64"), ROUTE, |p| p.peer == Some(b6)).unwrap();
    assert_eq!(p.as_path, vec![65002]);
    assert!(p.next_hops.contains(&b6), "{:?}", p.next_hops);
    assert!(p.has_large_community(LargeCommunity(65002, 6, 6)));

    // FRR -> BIRD
    let p = wait_route(&bird, net("198.18.100.0/24"), ROUTE, |p| p.peer == Some(a4)).unwrap();
    assert_eq!(p.as_path, vec![65001]);
    assert_eq!(p.next_hops, vec![a4]);
    assert_eq!(p.med, Some(10));
    assert_eq!(
        p.communities,
        vec![Community(65001, 100), Community(65001, 200)]
    );
    assert_eq!(p.large_communities, vec![LargeCommunity(65001, 1, 2)]);
    let p = wait_route(&bird, net("fd00:100::/64"), ROUTE, |p| p.peer == Some(a6)).unwrap();
    assert_eq!(p.as_path, vec![65001]);
    assert_eq!(p.next_hops.first(), Some(&a6));
    assert!(p.has_community(Community(65001, 600)));

    // Local routes are visible as local.
    let rib = frr.rib(Family::Ipv4Unicast).unwrap();
    assert!(rib.best(&net("198.18.100.0/24")).unwrap().is_local());
    let rib = bird.rib(Family::Ipv6Unicast).unwrap();
    assert!(rib.best(&net("fd00:200::/64")).unwrap().is_local());

    let footprint = Footprint::of(&[&a, &b], &[&frr, &bird]);
    drop((frr, bird, link, a, b));
    footprint.assert_gone();
}

/// GoBGP <-> FRR iBGP (AS65010): LOCAL_PREF set by the originator arrives on the other side.
#[test]
fn gobgp_frr_ibgp_local_pref() {
    require_root();
    let (a, b) = (Netns::new("gobgp").unwrap(), Netns::new("frr").unwrap());
    let link = Link::veth(&a, &b, 2).unwrap();
    let (a4, b4): (IpAddr, IpAddr) = (link.a.ipv4().into(), link.b.ipv4().into());

    let gobgp = Gobgp::start(
        &a,
        "gobgp",
        BgpConfig::new(65010, link.a.ipv4())
            .neighbor(Neighbor::new(b4, 65010, &V4))
            .route(
                Route::new(net("198.18.50.0/24"))
                    .local_pref(300)
                    .community(65010, 50),
            ),
    )
    .unwrap();
    let frr = Frr::start(
        &b,
        "frr",
        BgpConfig::new(65010, link.b.ipv4())
            .neighbor(Neighbor::new(a4, 65010, &V4))
            .route(Route::new(net("198.18.60.0/24")).local_pref(250).med(7)),
    )
    .unwrap();

    let s = wait_session(&gobgp, b4, true, UP).unwrap();
    assert_eq!(s.remote_as, Some(65010));
    wait_session(&frr, a4, true, UP).unwrap();

    let p = wait_route(&frr, net("198.18.50.0/24"), ROUTE, |p| p.peer == Some(a4)).unwrap();
    assert_eq!(p.local_pref, Some(300));
    assert!(
        p.as_path.is_empty(),
        "iBGP keeps the AS path empty: {:?}",
        p.as_path
    );
    assert_eq!(p.next_hops, vec![a4]);
    assert!(p.has_community(Community(65010, 50)));

    let p = wait_route(&gobgp, net("198.18.60.0/24"), ROUTE, |p| p.peer == Some(b4)).unwrap();
    assert_eq!(p.local_pref, Some(250));
    assert_eq!(p.med, Some(7));
    assert!(p.as_path.is_empty());
    assert_eq!(p.next_hops, vec![b4]);

    // GoBGP's own route is local in its RIB.
    let rib = gobgp.rib(Family::Ipv4Unicast).unwrap();
    assert!(rib.best(&net("198.18.50.0/24")).unwrap().is_local());

    let footprint = Footprint::of(&[&a, &b], &[&gobgp, &frr]);
    drop((gobgp, frr, link, a, b));
    footprint.assert_gone();
}

/// ExaBGP announces to FRR at runtime through its API, then withdraws; ExaBGP's own view of
/// what FRR sent comes from its JSON messages.
#[test]
fn exabgp_runtime_announce_and_withdraw_to_frr() {
    require_root();
    let (a, b) = (Netns::new("exabgp").unwrap(), Netns::new("frr").unwrap());
    let link = Link::veth(&a, &b, 3).unwrap();
    let (a4, b4): (IpAddr, IpAddr) = (link.a.ipv4().into(), link.b.ipv4().into());
    let both = [Family::Ipv4Unicast, Family::Ipv6Unicast];

    let mut exa = Exabgp::start(
        &a,
        "exabgp",
        BgpConfig::new(65020, link.a.ipv4()).neighbor(Neighbor::new(b4, 65021, &both)),
    )
    .unwrap();
    let frr = Frr::start(
        &b,
        "frr",
        BgpConfig::new(65021, link.b.ipv4())
            .neighbor(Neighbor::new(a4, 65020, &both).passive())
            .route(Route::new(net("198.18.120.0/24")).large_community(65021, 12, 0))
            .route(Route::new(net("fd00:120::/64")).community(65021, 6)),
    )
    .unwrap();
    wait_session(&exa, b4, true, UP).unwrap();
    wait_session(&frr, a4, true, UP).unwrap();

    // What FRR sends, as ExaBGP parsed it.
    let p = wait_route(&exa, net("198.18.120.0/24"), ROUTE, |_| true).unwrap();
    assert_eq!(p.peer, Some(b4));
    assert_eq!(p.as_path, vec![65021]);
    assert_eq!(p.next_hops, vec![b4]);
    assert_eq!(p.large_communities, vec![LargeCommunity(65021, 12, 0)]);
    let p = wait_route(&exa, net("fd00:120::/64"), ROUTE, |_| true).unwrap();
    assert!(p.has_community(Community(65021, 6)));

    let r = Route::new(net("198.18.151.0/24"))
        .community(65020, 151)
        .large_community(65020, 1, 151)
        .med(151)
        .prepend(&[65099]);
    exa.announce(r).unwrap();
    let v6 = Route::new(net("fd00:151::/64")).next_hop(link.a.ipv6().into());
    exa.announce(v6).unwrap();
    let p = wait_route(&frr, net("198.18.151.0/24"), ROUTE, |p| p.peer == Some(a4)).unwrap();
    assert_eq!(p.as_path, vec![65020, 65099]);
    assert_eq!(p.med, Some(151));
    assert_eq!(p.communities, vec![Community(65020, 151)]);
    assert_eq!(p.large_communities, vec![LargeCommunity(65020, 1, 151)]);
    assert_eq!(p.next_hops, vec![a4]);
    let p = wait_route(&frr, net("fd00:151::/64"), ROUTE, |p| p.peer == Some(a4)).unwrap();
    assert!(
        p.next_hops.contains(&link.a.ipv6().into()),
        "{:?}",
        p.next_hops
    );

    exa.withdraw(net("198.18.151.0/24")).unwrap();
    wait_route_gone(&frr, net("198.18.151.0/24"), ROUTE).unwrap();
    // The other route stays.
    assert!(
        frr.rib(Family::Ipv6Unicast)
            .unwrap()
            .contains(&net("fd00:151::/64"))
    );

    let footprint = Footprint::of(&[&a, &b], &[&exa, &frr]);
    drop((exa, frr, link, a, b));
    footprint.assert_gone();
}

/// Hold time 3 s: SIGSTOP one side and the other declares the session dead within the hold
/// time; SIGCONT and the session comes back.
#[test]
fn hold_timer_expires_when_peer_is_frozen() {
    require_root();
    let (a, b) = (Netns::new("frr").unwrap(), Netns::new("bird").unwrap());
    let link = Link::veth(&a, &b, 4).unwrap();
    let (a4, b4): (IpAddr, IpAddr) = (link.a.ipv4().into(), link.b.ipv4().into());
    let frr = Frr::start(
        &a,
        "frr",
        BgpConfig::new(65041, link.a.ipv4()).neighbor(Neighbor::new(b4, 65042, &V4).hold_time(3)),
    )
    .unwrap();
    let bird = Bird::start(
        &b,
        "bird",
        BgpConfig::new(65042, link.b.ipv4())
            .neighbor(Neighbor::new(a4, 65041, &V4).hold_time(3))
            .route(Route::new(net("198.18.140.0/24"))),
    )
    .unwrap();
    let s = wait_session(&frr, b4, true, UP).unwrap();
    assert_eq!(s.hold_time, Some(Duration::from_secs(3)));
    wait_route(&frr, net("198.18.140.0/24"), ROUTE, |_| true).unwrap();

    bird.freeze().unwrap();
    let frozen = Instant::now();
    wait_session(&frr, b4, false, Duration::from_secs(8)).unwrap();
    let took = frozen.elapsed();
    assert!(
        took >= Duration::from_secs(2),
        "went down after {took:?}, before the hold time could expire"
    );
    wait_route_gone(&frr, net("198.18.140.0/24"), ROUTE).unwrap();

    bird.unfreeze().unwrap();
    wait_session(&frr, b4, true, UP).unwrap();
    wait_session(&bird, a4, true, UP).unwrap();
    wait_route(&frr, net("198.18.140.0/24"), ROUTE, |_| true).unwrap();

    let footprint = Footprint::of(&[&a, &b], &[&frr, &bird]);
    drop((frr, bird, link, a, b));
    footprint.assert_gone();
}

/// An nftables cut on the link takes the session down on both sides (hold timer 3 s), the
/// learned route goes; restoring the link brings both back.
#[test]
fn link_cut_takes_session_down_and_restore_brings_it_back() {
    require_root();
    let (a, b) = (Netns::new("gobgp").unwrap(), Netns::new("bird").unwrap());
    let link = Link::veth(&a, &b, 5).unwrap();
    let (a4, b4): (IpAddr, IpAddr) = (link.a.ipv4().into(), link.b.ipv4().into());
    let gobgp = Gobgp::start(
        &a,
        "gobgp",
        BgpConfig::new(65051, link.a.ipv4())
            .neighbor(Neighbor::new(b4, 65052, &V4).hold_time(3))
            .route(Route::new(net("198.18.150.0/24")).community(65051, 1)),
    )
    .unwrap();
    let bird = Bird::start(
        &b,
        "bird",
        BgpConfig::new(65052, link.b.ipv4()).neighbor(Neighbor::new(a4, 65051, &V4).hold_time(3)),
    )
    .unwrap();
    wait_session(&gobgp, b4, true, UP).unwrap();
    wait_route(&bird, net("198.18.150.0/24"), ROUTE, |p| p.peer == Some(a4)).unwrap();
    // Up and steady before the cut.
    holds_for(
        "session up",
        Duration::from_secs(1),
        Duration::from_millis(250),
        || {
            if bird.is_established(a4)? {
                Ok(())
            } else {
                Err("down".into())
            }
        },
    )
    .unwrap();

    link.cut().unwrap();
    assert!(link.a.netns.is_cut(&link.a.ifname));
    assert!(
        !a.tcp_reachable(b4, 9, Duration::from_secs(1)),
        "a cut link carried packets"
    );
    wait_session(&bird, a4, false, Duration::from_secs(8)).unwrap();
    wait_session(&gobgp, b4, false, Duration::from_secs(8)).unwrap();
    wait_route_gone(&bird, net("198.18.150.0/24"), ROUTE).unwrap();

    link.restore().unwrap();
    assert!(
        a.tcp_reachable(b4, 9, Duration::from_secs(2)),
        "restored link carries nothing"
    );
    wait_session(&bird, a4, true, UP).unwrap();
    wait_session(&gobgp, b4, true, UP).unwrap();
    wait_route(&bird, net("198.18.150.0/24"), ROUTE, |p| p.peer == Some(a4)).unwrap();

    let footprint = Footprint::of(&[&a, &b], &[&gobgp, &bird]);
    drop((gobgp, bird, link, a, b));
    footprint.assert_gone();
}

/// FRR with multipath learns the same prefix from two eBGP peers (different ASes, equal
/// length): both next hops are in the ECMP set. Also exercises runtime announce on BIRD and
/// GoBGP, and restart.
#[test]
fn frr_ecmp_from_two_peers_and_restart() {
    require_root();
    let (a, b, c) = (
        Netns::new("frr").unwrap(),
        Netns::new("bird").unwrap(),
        Netns::new("gobgp").unwrap(),
    );
    let ab = Link::veth(&a, &b, 6).unwrap();
    let ac = Link::veth(&a, &c, 7).unwrap();
    let (b4, c4): (IpAddr, IpAddr) = (ab.b.ipv4().into(), ac.b.ipv4().into());
    let mut frr = Frr::start(
        &a,
        "frr",
        BgpConfig::new(65060, ab.a.ipv4())
            .multipath(true)
            .neighbor(Neighbor::new(b4, 65061, &V4))
            .neighbor(Neighbor::new(c4, 65062, &V4)),
    )
    .unwrap();
    let mut bird = Bird::start(
        &b,
        "bird",
        BgpConfig::new(65061, ab.b.ipv4()).neighbor(Neighbor::new(ab.a.ipv4().into(), 65060, &V4)),
    )
    .unwrap();
    let mut gobgp = Gobgp::start(
        &c,
        "gobgp",
        BgpConfig::new(65062, ac.b.ipv4()).neighbor(Neighbor::new(ac.a.ipv4().into(), 65060, &V4)),
    )
    .unwrap();
    wait_session(&frr, b4, true, UP).unwrap();
    wait_session(&frr, c4, true, UP).unwrap();

    let anycast = net("198.18.160.0/24");
    bird.announce(Route::new(anycast)).unwrap();
    gobgp.announce(Route::new(anycast)).unwrap();
    let ecmp = wait_until(
        "two ECMP next hops on FRR",
        ROUTE,
        Duration::from_millis(200),
        || {
            let rib = frr.rib(Family::Ipv4Unicast)?;
            let nh = rib.ecmp_next_hops(&anycast);
            if nh.len() == 2 {
                Ok(nh)
            } else {
                Err(rib.summary().into())
            }
        },
    )
    .unwrap();
    assert_eq!(ecmp, vec![b4, c4]);

    // GoBGP withdraws: one next hop left.
    gobgp.withdraw(anycast).unwrap();
    wait_until(
        "one next hop on FRR",
        ROUTE,
        Duration::from_millis(200),
        || {
            let rib = frr.rib(Family::Ipv4Unicast)?;
            if rib.ecmp_next_hops(&anycast) == vec![b4] {
                Ok(())
            } else {
                Err(rib.summary().into())
            }
        },
    )
    .unwrap();

    // BIRD restarts with the announced route in its config; FRR sees it come back.
    let old_pid = bird.bgp_pid().unwrap();
    bird.restart().unwrap();
    assert_ne!(bird.bgp_pid(), Some(old_pid));
    assert!(!interop::process::pid_alive(old_pid));
    wait_session(&frr, b4, true, UP).unwrap();
    wait_route(&frr, anycast, ROUTE, |p| p.peer == Some(b4)).unwrap();

    // And FRR itself restarts.
    frr.restart().unwrap();
    wait_session(&frr, c4, true, UP).unwrap();
    wait_route(&frr, anycast, ROUTE, |p| p.peer == Some(b4)).unwrap();

    let footprint = Footprint::of(&[&a, &b, &c], &[&frr, &bird, &gobgp]);
    drop((frr, bird, gobgp, ab, ac, a, b, c));
    footprint.assert_gone();
}

/// Namespaces, links and loopback aliases; a panic while daemons run leaves nothing behind.
#[test]
fn namespaces_links_aliases_and_cleanup_on_panic() {
    require_root();
    let a = Netns::new("alias").unwrap();
    let aliases: Vec<ipnet::IpNet> = (0..200u32)
        .map(|i| net(&format!("198.19.{}.{}/32", i / 100, i % 100 + 1)))
        .chain((1..=20u32).map(|i| net(&format!("127.1.0.{i}/32"))))
        .collect();
    a.add_loopback_addrs(&aliases).unwrap();
    let have = a.addrs("lo").unwrap();
    for x in &aliases {
        assert!(have.contains(x), "{x} missing on lo");
    }
    assert!(a.tcp_reachable(ip("198.19.1.50"), 9, Duration::from_secs(1)));
    drop(a);

    let names = std::sync::Mutex::new(Vec::<String>::new());
    let pids = std::sync::Mutex::new(Vec::<u32>::new());
    let result = std::thread::scope(|s| {
        s.spawn(|| {
            let (a, b) = (Netns::new("panic").unwrap(), Netns::new("panic").unwrap());
            let link = Link::veth(&a, &b, 9).unwrap();
            assert!(link.a.link_local().unwrap().segments()[0] == 0xfe80);
            let frr = Frr::start(
                &a,
                "frr",
                BgpConfig::new(65090, link.a.ipv4()).neighbor(Neighbor::new(
                    link.b.ipv4().into(),
                    65091,
                    &V4,
                )),
            )
            .unwrap();
            let gobgp = Gobgp::start(
                &b,
                "gobgp",
                BgpConfig::new(65091, link.b.ipv4()).neighbor(Neighbor::new(
                    link.a.ipv4().into(),
                    65090,
                    &V4,
                )),
            )
            .unwrap();
            names
                .lock()
                .unwrap()
                .extend([a.name().to_owned(), b.name().to_owned()]);
            pids.lock().unwrap().extend(a.pids());
            pids.lock().unwrap().extend(b.pids());
            assert!(frr.is_running() && gobgp.is_running());
            panic!("deliberate panic with daemons running");
        })
        .join()
    });
    assert!(result.is_err());
    let names = names.into_inner().unwrap();
    let pids = pids.into_inner().unwrap();
    assert_eq!(names.len(), 2);
    assert!(pids.len() >= 3, "zebra, bgpd, gobgpd: {pids:?}");
    Footprint {
        namespaces: names,
        pids,
    }
    .assert_gone();
}

/// `sartd bgp` as a daemon: if it cannot start, the error carries its own words (logs); if it
/// runs, state queries give typed answers or say plainly what is missing.
#[test]
fn sartd_starts_or_fails_with_its_logs() {
    require_root();
    let a = Netns::new("sartd").unwrap();
    let cfg = BgpConfig::new(65000, "198.18.0.1".parse().unwrap()).neighbor(Neighbor::new(
        ip("198.18.0.2"),
        65001,
        &V4,
    ));
    match Sartd::start(&a, "sartd", cfg) {
        Err(Error::Startup { reason, logs, .. }) => {
            assert!(
                logs.contains("sartd.out") || reason.contains("cargo build"),
                "{reason}\n{logs}"
            );
        }
        Err(e) => panic!("unexpected error kind: {e}"),
        Ok(s) => match s.sessions() {
            Ok(_) | Err(Error::NotAvailable { .. } | Error::Command { .. }) => {}
            Err(e) => panic!("unexpected error kind: {e}"),
        },
    }
}

/// The first interop test of the device under test (`make test` builds `sartd` and `sart`
/// first); the full set is in tests/sartd.rs.
#[test]
fn sartd_exchanges_routes_with_frr() {
    require_root();
    let (a, b) = (Netns::new("sartd").unwrap(), Netns::new("frr").unwrap());
    let link = Link::veth(&a, &b, 20).unwrap();
    let (a4, b4): (IpAddr, IpAddr) = (link.a.ipv4().into(), link.b.ipv4().into());
    let mut dut = Sartd::start(
        &a,
        "sartd",
        BgpConfig::new(65200, link.a.ipv4())
            .neighbor(Neighbor::new(b4, 65201, &V4).hold_time(9))
            .route(
                Route::new(net("198.18.220.0/24"))
                    .community(65200, 1)
                    .local_pref(200),
            ),
    )
    .unwrap();
    let frr = Frr::start(
        &b,
        "frr",
        BgpConfig::new(65201, link.b.ipv4())
            .neighbor(Neighbor::new(a4, 65200, &V4).hold_time(9))
            .route(Route::new(net("198.18.221.0/24")).large_community(65201, 2, 1)),
    )
    .unwrap();
    wait_session(&frr, a4, true, UP).unwrap();
    wait_session(&dut, b4, true, UP).unwrap();
    let p = wait_route(&frr, net("198.18.220.0/24"), ROUTE, |p| p.peer == Some(a4)).unwrap();
    assert_eq!(p.as_path, vec![65200]);
    assert!(p.has_community(Community(65200, 1)));
    let p = wait_route(&dut, net("198.18.221.0/24"), ROUTE, |p| p.peer == Some(b4)).unwrap();
    assert_eq!(p.as_path, vec![65201]);
    dut.announce(Route::new(net("198.18.222.0/24")).med(5))
        .unwrap();
    let p = wait_route(&frr, net("198.18.222.0/24"), ROUTE, |p| p.peer == Some(a4)).unwrap();
    assert_eq!(p.med, Some(5));
    dut.withdraw(net("198.18.222.0/24")).unwrap();
    wait_route_gone(&frr, net("198.18.222.0/24"), ROUTE).unwrap();
}

/// The pattern a `sartd bgp` test follows, with FRR standing in for the device under test:
/// one hub, and every reference implementation as a peer (built through `DaemonKind`).
#[test]
fn every_peer_kind_exchanges_routes_with_a_hub() {
    require_root();
    let hub_ns = Netns::new("hub").unwrap();
    let mut spokes = Vec::new();
    let mut hub_cfg = BgpConfig::new(65100, "198.18.169.1".parse().unwrap())
        .route(Route::new(net("198.18.169.0/24")).community(65100, 169));
    for (i, kind) in interop::DaemonKind::PEERS.into_iter().enumerate() {
        let i = u8::try_from(i).unwrap();
        let ns = Netns::new(&format!("{kind:?}")).unwrap();
        let link = Link::veth(&hub_ns, &ns, 10 + i).unwrap();
        let asn = 65101 + u32::from(i);
        hub_cfg = hub_cfg.neighbor(Neighbor::new(link.b.ipv4().into(), asn, &V4));
        let cfg = BgpConfig::new(asn, link.b.ipv4())
            .neighbor(Neighbor::new(link.a.ipv4().into(), 65100, &V4))
            .route(
                Route::new(net(&format!("198.18.{}.0/24", 170 + i)))
                    .community(u16::try_from(asn).unwrap(), 1),
            );
        spokes.push((kind, asn, link, ns, cfg));
    }
    let hub = Frr::start(&hub_ns, "hub", hub_cfg).unwrap();
    let peers: Vec<Box<dyn Daemon>> = spokes
        .iter()
        .map(|(kind, _, _, ns, cfg)| kind.start(ns, "peer", cfg.clone()).unwrap())
        .collect();
    for ((kind, asn, link, _, _), peer) in spokes.iter().zip(&peers) {
        let addr: IpAddr = link.b.ipv4().into();
        wait_session(&hub, addr, true, UP).unwrap();
        let prefix = peer.config().routes[0].prefix;
        let p = wait_route(&hub, prefix, ROUTE, |p| p.peer == Some(addr))
            .unwrap_or_else(|e| panic!("{kind:?}: {e}"));
        assert_eq!(p.as_path, vec![*asn], "{kind:?}");
        assert!(
            p.has_community(Community(u16::try_from(*asn).unwrap(), 1)),
            "{kind:?}"
        );
        let p = wait_route(peer.as_ref(), net("198.18.169.0/24"), ROUTE, |_| true)
            .unwrap_or_else(|e| panic!("{kind:?}: {e}"));
        assert_eq!(p.as_path, vec![65100], "{kind:?}");
        assert!(p.has_community(Community(65100, 169)), "{kind:?}");
    }
}

/// The optional neighbour settings generate configs FRR and BIRD accept and act on: TCP MD5,
/// graceful restart, BFD (config only: no bfdd), max prefix, extended next hop.
#[test]
fn frr_bird_md5_graceful_restart_and_options() {
    require_root();
    let (a, b) = (Netns::new("frr").unwrap(), Netns::new("bird").unwrap());
    let link = Link::veth(&a, &b, 8).unwrap();
    let (a4, b4): (IpAddr, IpAddr) = (link.a.ipv4().into(), link.b.ipv4().into());
    let with_options = |n: Neighbor| {
        let mut n = n;
        n.md5_password = Some("sart-secret".into());
        n.graceful_restart = Some(interop::GracefulRestart { restart_time: 30 });
        n.max_prefix = Some(100);
        n.extended_next_hop = true;
        n
    };
    let mut frr_n = with_options(Neighbor::new(b4, 65082, &V4));
    frr_n.bfd = true;
    let frr = Frr::start(
        &a,
        "frr",
        BgpConfig::new(65081, link.a.ipv4())
            .neighbor(frr_n)
            .route(Route::new(net("198.18.180.0/24"))),
    )
    .unwrap();
    let bird = Bird::start(
        &b,
        "bird",
        BgpConfig::new(65082, link.b.ipv4()).neighbor(with_options(Neighbor::new(a4, 65081, &V4))),
    )
    .unwrap();
    wait_session(&frr, b4, true, UP).unwrap();
    wait_session(&bird, a4, true, UP).unwrap();
    wait_route(&bird, net("198.18.180.0/24"), ROUTE, |p| p.peer == Some(a4)).unwrap();
    let gr = frr
        .vtysh(&[&format!("show bgp neighbors {b4} json")])
        .unwrap();
    assert!(
        gr.contains("\"gracefulRestart\":\"advertisedAndReceived\""),
        "{gr}"
    );
}
