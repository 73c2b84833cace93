//! Routing-plane resilience of `sartd bgp` against real daemons in network namespaces: TCP MD5
//! with FRR, BIRD and GoBGP; the kernel FIB (ECMP, drift repair, other protocols' routes left
//! alone); graceful restart in both roles, measured with pings through FRR.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;
use common::*;

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use interop::frr::Frr;
use interop::ping::Pinger;
use interop::sartd::Sartd;
use interop::{
    BgpConfig, Daemon, DaemonKind, GracefulRestart, Link, Neighbor, Netns, Pending, Route,
    holds_for, wait_route, wait_route_gone, wait_session, wait_until,
};

/// Every daemon with the right password establishes; with a wrong one the session stays down,
/// sartd keeps running and says why.
#[test]
fn md5_right_and_wrong_password_with_frr_bird_gobgp() {
    require_root();
    let hub_ns = Netns::new("md5").unwrap();
    let hub_as = 65400;
    let mut hub_cfg = BgpConfig::new(hub_as, "198.18.60.1".parse().unwrap());
    let mut spokes = Vec::new();
    let kinds = [DaemonKind::Frr, DaemonKind::Bird, DaemonKind::Gobgp];
    for (i, kind) in kinds.into_iter().enumerate() {
        for wrong in [false, true] {
            let n = 61 + u8::try_from(i * 2).unwrap() + u8::from(wrong);
            let ns = Netns::new(&format!("{kind:?}{}", if wrong { "bad" } else { "ok" })).unwrap();
            let link = Link::veth(&hub_ns, &ns, n).unwrap();
            let asn = 65401 + u32::from(n);
            let mut ours = Neighbor::new(link.b.ipv4().into(), asn, &V4).hold_time(9);
            ours.md5_password = Some(format!("sart-{n}"));
            hub_cfg = hub_cfg.neighbor(ours);
            let mut theirs = Neighbor::new(link.a.ipv4().into(), hub_as, &V4).hold_time(9);
            theirs.md5_password = Some(if wrong {
                format!("not-sart-{n}")
            } else {
                format!("sart-{n}")
            });
            let cfg = BgpConfig::new(asn, link.b.ipv4()).neighbor(theirs);
            spokes.push((kind, wrong, link, ns, cfg));
        }
    }
    let hub = Sartd::start(&hub_ns, "sartd", hub_cfg).unwrap();
    let peers: Vec<Box<dyn Daemon>> = spokes
        .iter()
        .map(|(kind, _, _, ns, cfg)| kind.start(ns, "peer", cfg.clone()).unwrap())
        .collect();
    for ((kind, wrong, link, _, _), peer) in spokes.iter().zip(&peers) {
        if *wrong {
            continue;
        }
        let addr: IpAddr = link.b.ipv4().into();
        wait_session(&hub, addr, true, UP)
            .unwrap_or_else(|e| panic!("{kind:?} right password: {e}\n{}", peer.logs()));
    }
    // Wrong passwords: never up, sartd alive, and the neighbour's last error says what to check.
    for (kind, wrong, link, _, _) in &spokes {
        if !*wrong {
            continue;
        }
        let addr: IpAddr = link.b.ipv4().into();
        wait_until(
            &format!("{kind:?}: a last error naming TCP MD5"),
            Duration::from_secs(30),
            Duration::from_millis(500),
            || {
                let v = hub.neighbor(addr).map_err(|e| Pending(e.to_string()))?;
                let err = v["lastError"].as_str().unwrap_or("").to_owned();
                if err.contains("TCP MD5") {
                    Ok(())
                } else {
                    Err(Pending(format!("lastError {err:?}, state {}", v["state"])))
                }
            },
        )
        .unwrap();
        assert!(
            !hub.is_established(addr).unwrap(),
            "{kind:?} wrong password"
        );
    }
    assert!(hub.is_running(), "{}", hub.logs());
    let logs = hub.logs();
    for (_, _, _, _, cfg) in &spokes {
        for n in &cfg.neighbors {
            let pw = n.md5_password.as_deref().unwrap();
            assert!(!logs.contains(pw), "a password reached the log");
        }
    }
}

fn kernel_route(ns: &Netns, prefix: &str, proto: &str) -> Option<(BTreeSet<IpAddr>, u64)> {
    common::kernel_route(ns, "main", prefix, proto)
}

fn wait_kernel(
    ns: &Netns,
    prefix: &str,
    what: &str,
    timeout: Duration,
    want: impl Fn(Option<&(BTreeSet<IpAddr>, u64)>) -> bool,
) -> Duration {
    let t0 = Instant::now();
    wait_until(what, timeout, Duration::from_millis(20), || {
        let r = kernel_route(ns, prefix, "186");
        if want(r.as_ref()) {
            Ok(())
        } else {
            Err(Pending(format!("{prefix}: {r:?}")))
        }
    })
    .unwrap();
    t0.elapsed()
}

/// Two FRR upstreams of one AS: a prefix both announce is one multipath route; IPv4 and IPv6
/// routes get their next hops and the eBGP metric; a route deleted or changed behind sartd's
/// back is back within 1 s; a static route of the same destination and metric is left alone;
/// withdrawals remove routes; a clean stop without graceful restart removes ours.
#[test]
fn fib_installs_ecmp_repairs_drift_and_leaves_other_protocols_alone() {
    require_root();
    let dut_ns = Netns::new("fib").unwrap();
    let (n1, n2) = (Netns::new("up1").unwrap(), Netns::new("up2").unwrap());
    let l1 = Link::veth(&dut_ns, &n1, 71).unwrap();
    let l2 = Link::veth(&dut_ns, &n2, 72).unwrap();
    let up_as = 65071;
    let (u1, u2): (IpAddr, IpAddr) = (l1.b.ipv4().into(), l2.b.ipv4().into());
    let u1v6: IpAddr = l1.b.ipv6().into();
    // The static route the FIB must not touch: same destination and metric as a BGP one.
    dut_ns
        .exec(&[
            "ip",
            "route",
            "add",
            "198.18.172.0/24",
            "via",
            &u2.to_string(),
            "proto",
            "static",
            "metric",
            "20",
        ])
        .unwrap();
    let dut_cfg = BgpConfig::new(65070, "198.18.70.1".parse().unwrap())
        .multipath(true)
        .neighbor(Neighbor::new(u1, up_as, &V4).hold_time(9))
        .neighbor(Neighbor::new(u2, up_as, &V4).hold_time(9))
        .neighbor(
            Neighbor::new(u1v6, up_as, &V6)
                .router_id(l1.b.ipv4())
                .hold_time(9),
        );
    let mut dut = Sartd::start_with(&dut_ns, "sartd", dut_cfg, 5000, "fib_table: 254\n").unwrap();
    let frr1 = Frr::start(
        &n1,
        "frr",
        BgpConfig::new(up_as, l1.b.ipv4())
            .neighbor(Neighbor::new(l1.a.ipv4().into(), 65070, &V4).hold_time(9))
            .neighbor(Neighbor::new(l1.a.ipv6().into(), 65070, &V6).hold_time(9))
            .route(Route::new(net("198.18.170.0/24")))
            .route(Route::new(net("198.18.171.0/24")))
            .route(Route::new(net("fd00:171::/64"))),
    )
    .unwrap();
    let mut frr2 = Frr::start(
        &n2,
        "frr",
        BgpConfig::new(up_as, l2.b.ipv4())
            .neighbor(Neighbor::new(l2.a.ipv4().into(), 65070, &V4).hold_time(9))
            .route(Route::new(net("198.18.170.0/24")))
            .route(Route::new(net("198.18.172.0/24"))),
    )
    .unwrap();
    for a in [u1, u2, u1v6] {
        wait_session(&dut, a, true, UP)
            .unwrap_or_else(|e| panic!("{e}\n{}\n{}", dut.logs(), frr1.logs()));
    }
    let ecmp: BTreeSet<IpAddr> = [u1, u2].into();
    wait_kernel(&dut_ns, "198.18.170.0/24", "ECMP route", ROUTE, |r| {
        r.is_some_and(|(nh, m)| *nh == ecmp && *m == 20)
    });
    wait_kernel(&dut_ns, "198.18.171.0/24", "single route", ROUTE, |r| {
        r.is_some_and(|(nh, _)| *nh == BTreeSet::from([u1]))
    });
    wait_kernel(&dut_ns, "fd00:171::/64", "IPv6 route", ROUTE, |r| {
        r.is_some_and(|(nh, m)| *nh == BTreeSet::from([u1v6]) && *m == 20)
    });
    // 198.18.172.0/24 is wanted but held by the static route: no route of ours, static intact.
    holds_for(
        "static route left alone",
        Duration::from_secs(2),
        Duration::from_millis(200),
        || match (
            kernel_route(&dut_ns, "198.18.172.0/24", "186"),
            kernel_route(&dut_ns, "198.18.172.0/24", "static"),
        ) {
            (None, Some((nh, 20))) if nh == BTreeSet::from([u2]) => Ok(()),
            other => Err(Pending(format!("{other:?}"))),
        },
    )
    .unwrap();

    // Drift: deleted, then changed, behind sartd's back.
    dut_ns
        .exec(&[
            "ip",
            "route",
            "del",
            "198.18.171.0/24",
            "proto",
            "186",
            "metric",
            "20",
        ])
        .unwrap();
    let t = wait_kernel(
        &dut_ns,
        "198.18.171.0/24",
        "deleted route restored",
        Duration::from_secs(1),
        |r| r.is_some_and(|(nh, _)| *nh == BTreeSet::from([u1])),
    );
    eprintln!("deleted route restored in {t:?}");
    dut_ns
        .exec(&[
            "ip",
            "route",
            "replace",
            "198.18.171.0/24",
            "via",
            &u2.to_string(),
            "proto",
            "186",
            "metric",
            "20",
        ])
        .unwrap();
    let t = wait_kernel(
        &dut_ns,
        "198.18.171.0/24",
        "changed route restored",
        Duration::from_secs(1),
        |r| r.is_some_and(|(nh, _)| *nh == BTreeSet::from([u1])),
    );
    eprintln!("changed route restored in {t:?}");

    // Withdrawals: ECMP shrinks to one next hop, then goes.
    frr2.withdraw(net("198.18.170.0/24")).unwrap();
    wait_kernel(
        &dut_ns,
        "198.18.170.0/24",
        "one next hop left",
        ROUTE,
        |r| r.is_some_and(|(nh, _)| *nh == BTreeSet::from([u1])),
    );
    drop(frr1);
    wait_kernel(&dut_ns, "198.18.170.0/24", "route gone", ROUTE, |r| {
        r.is_none()
    });
    wait_kernel(&dut_ns, "fd00:171::/64", "IPv6 route gone", ROUTE, |r| {
        r.is_none()
    });

    // A clean stop without graceful restart takes our routes along; the static one stays.
    frr2.announce(Route::new(net("198.18.173.0/24"))).unwrap();
    wait_kernel(&dut_ns, "198.18.173.0/24", "new route", ROUTE, |r| {
        r.is_some()
    });
    dut.stop();
    wait_kernel(
        &dut_ns,
        "198.18.173.0/24",
        "removed at stop",
        Duration::from_secs(5),
        |r| r.is_none(),
    );
    assert!(kernel_route(&dut_ns, "198.18.172.0/24", "static").is_some());
}

/// client ── FRR ── sartd: the client pings an address in sartd's advertised prefix every
/// 20 ms while sartd restarts.
struct RestartLab<R: Daemon> {
    client_ns: Netns,
    dut_ns: Netns,
    router: R,
    dut: Sartd,
    target: IpAddr,
    dut_addr: IpAddr,
}

fn restart_lab<R: Daemon>(
    label: &str,
    n: u8,
    graceful: bool,
    start_router: impl FnOnce(&Netns, BgpConfig) -> R,
) -> RestartLab<R> {
    let client_ns = Netns::new(&format!("{label}cl")).unwrap();
    let frr_ns = Netns::new(&format!("{label}frr")).unwrap();
    let dut_ns = Netns::new(&format!("{label}dut")).unwrap();
    let lc = Link::veth(&client_ns, &frr_ns, n).unwrap();
    let ld = Link::veth(&frr_ns, &dut_ns, n + 1).unwrap();
    client_ns
        .exec(&[
            "ip",
            "route",
            "add",
            "default",
            "via",
            &lc.b.ipv4().to_string(),
        ])
        .unwrap();
    dut_ns
        .exec(&[
            "ip",
            "route",
            "add",
            "default",
            "via",
            &ld.a.ipv4().to_string(),
        ])
        .unwrap();
    let served = format!("198.18.{}.0/24", 100 + n);
    let target: IpAddr = format!("198.18.{}.1", 100 + n).parse().unwrap();
    dut_ns
        .add_loopback_addrs(&[format!("{target}/32").parse().unwrap()])
        .unwrap();
    let gr = graceful.then_some(GracefulRestart { restart_time: 30 });
    let mut to_frr = Neighbor::new(ld.a.ipv4().into(), 65080, &V4).hold_time(9);
    to_frr.graceful_restart = gr;
    let dut = Sartd::start_with(
        &dut_ns,
        "sartd",
        BgpConfig::new(65081, ld.b.ipv4())
            .neighbor(to_frr)
            .route(Route::new(net(&served))),
        5000,
        if graceful {
            "graceful_restart: {restart_time: 30}\n"
        } else {
            ""
        },
    )
    .unwrap();
    let mut to_dut = Neighbor::new(ld.b.ipv4().into(), 65081, &V4).hold_time(9);
    to_dut.graceful_restart = gr;
    let router = start_router(&frr_ns, BgpConfig::new(65080, ld.a.ipv4()).neighbor(to_dut));
    let dut_addr: IpAddr = ld.b.ipv4().into();
    wait_session(&router, dut_addr, true, UP).unwrap_or_else(|e| panic!("{e}\n{}", dut.logs()));
    wait_route(&router, net(&served), ROUTE, |_| true).unwrap();
    let r = RestartLab {
        client_ns,
        dut_ns,
        router,
        dut,
        target,
        dut_addr,
    };
    // The data path works before anything happens.
    wait_until(
        "client reaches the target",
        ROUTE,
        Duration::from_millis(200),
        || {
            r.client_ns
                .exec(&["ping", "-c1", "-W1", &target.to_string()])
                .map(|_| ())
                .map_err(|e| Pending(e.to_string()))
        },
    )
    .unwrap();
    r
}

/// Kills (or stops) sartd, waits, starts it again and waits for the session; returns pings
/// (sent, lost) across it.
fn restart_under_ping<R: Daemon>(lab: &mut RestartLab<R>, kill: bool) -> (u64, u64) {
    let pinger = Pinger::start(&lab.client_ns, lab.target, Duration::from_millis(20)).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    if kill {
        lab.dut.kill();
    } else {
        lab.dut.stop();
    }
    std::thread::sleep(Duration::from_secs(2));
    lab.dut.start().unwrap();
    wait_session(&lab.router, lab.dut_addr, true, UP)
        .unwrap_or_else(|e| panic!("{e}\n{}", lab.dut.logs()));
    std::thread::sleep(Duration::from_secs(2));
    pinger.finish().unwrap()
}

/// Graceful restart, sartd restarting: FRR keeps forwarding to sartd's prefix while sartd is
/// killed (SIGKILL) or stopped (SIGTERM) and started again: no ping is lost. The control
/// without graceful restart loses pings, so the measurement can fail.
#[test]
fn graceful_restart_sartd_restart_loses_no_packets() {
    require_root();
    let frr = |ns: &Netns, cfg| Frr::start(ns, "frr", cfg).unwrap();
    let mut lab = restart_lab("gr", 81, true, frr);
    let (sent, lost) = restart_under_ping(&mut lab, true);
    eprintln!("SIGKILL with graceful restart: {lost} of {sent} pings lost");
    assert!(sent > 100, "{sent}");
    assert_eq!(
        lost,
        0,
        "SIGKILL with GR\n{}\n{}",
        lab.dut.logs(),
        lab.router.logs()
    );
    let (sent, lost) = restart_under_ping(&mut lab, false);
    eprintln!("SIGTERM with graceful restart: {lost} of {sent} pings lost");
    assert_eq!(
        lost,
        0,
        "SIGTERM with GR\n{}\n{}",
        lab.dut.logs(),
        lab.router.logs()
    );
    // The stale marking ended: FRR's path is not stale after sartd's End-of-RIB.
    let v = lab
        .router
        .vtysh(&["show bgp ipv4 unicast 198.18.181.0/24 json"])
        .unwrap();
    assert!(!v.contains("\"stale\":true"), "{v}");

    let mut plain = restart_lab("nogr", 83, false, frr);
    let (sent, lost) = restart_under_ping(&mut plain, false);
    eprintln!("SIGTERM without graceful restart: {lost} of {sent} pings lost");
    assert!(
        lost > 0,
        "without GR the route is withdrawn, so pings must be lost"
    );
    drop(plain);
    drop(lab.dut_ns);
}

/// Graceful restart, sartd helping: FRR's bgpd is killed; sartd keeps its routes (stale, in
/// the RIB and the kernel) for FRR's restart time; when FRR is back without one of them, its
/// End-of-RIB removes that one and only that one.
#[test]
fn graceful_restart_helper_keeps_frr_routes_until_end_of_rib() {
    require_root();
    let dut_ns = Netns::new("help").unwrap();
    let frr_ns = Netns::new("helpfrr").unwrap();
    let l = Link::veth(&dut_ns, &frr_ns, 85).unwrap();
    let gr = Some(GracefulRestart { restart_time: 60 });
    let mut to_frr = Neighbor::new(l.b.ipv4().into(), 65085, &V4).hold_time(9);
    to_frr.graceful_restart = gr;
    let dut = Sartd::start_with(
        &dut_ns,
        "sartd",
        BgpConfig::new(65086, l.a.ipv4()).neighbor(to_frr),
        5000,
        "fib_table: 254\n",
    )
    .unwrap();
    let mut to_dut = Neighbor::new(l.a.ipv4().into(), 65086, &V4).hold_time(9);
    to_dut.graceful_restart = gr;
    let frr_cfg = BgpConfig::new(65085, l.b.ipv4())
        .neighbor(to_dut)
        .route(Route::new(net("198.18.185.0/24")))
        .route(Route::new(net("198.18.186.0/24")));
    let mut frr = Frr::start(&frr_ns, "frr", frr_cfg.clone()).unwrap();
    let peer: IpAddr = l.b.ipv4().into();
    wait_session(&dut, peer, true, UP).unwrap();
    for p in ["198.18.185.0/24", "198.18.186.0/24"] {
        wait_route(&dut, net(p), ROUTE, |_| true).unwrap();
        wait_kernel(&dut_ns, p, "installed", ROUTE, |r| r.is_some());
    }
    // bgpd dies without a NOTIFICATION.
    let pid = frr.bgp_pid().unwrap();
    interop::process::signal(pid, rustix::process::Signal::KILL).unwrap();
    wait_session(&dut, peer, false, UP).unwrap();
    holds_for(
        "stale routes kept while FRR is away",
        Duration::from_secs(5),
        Duration::from_millis(250),
        || {
            let v = dut.neighbor(peer).map_err(|e| Pending(e.to_string()))?;
            let stale = v["gracefulRestartStatus"]["stalePaths"]
                .as_u64()
                .unwrap_or(0);
            let kernel = kernel_route(&dut_ns, "198.18.185.0/24", "186").is_some();
            if stale == 2 && kernel {
                Ok(())
            } else {
                Err(Pending(format!("stale {stale}, kernel {kernel}: {v}")))
            }
        },
    )
    .unwrap();
    // Back, without 198.18.186.0/24.
    frr.stop();
    let mut cfg = frr_cfg;
    cfg.routes.retain(|r| r.prefix != net("198.18.186.0/24"));
    drop(frr);
    let frr = Frr::start(&frr_ns, "frr2", cfg).unwrap();
    wait_session(&dut, peer, true, UP).unwrap_or_else(|e| panic!("{e}\n{}", frr.logs()));
    wait_route_gone(&dut, net("198.18.186.0/24"), ROUTE).unwrap();
    wait_kernel(
        &dut_ns,
        "198.18.186.0/24",
        "swept from the kernel",
        ROUTE,
        |r| r.is_none(),
    );
    let p = wait_route(&dut, net("198.18.185.0/24"), ROUTE, |_| true).unwrap();
    assert_eq!(p.peer, Some(peer));
    let v = dut.neighbor(peer).unwrap();
    assert_eq!(
        v["gracefulRestartStatus"]["stalePaths"].as_u64(),
        Some(0),
        "{v}"
    );
    assert!(kernel_route(&dut_ns, "198.18.185.0/24", "186").is_some());
}

/// Polls until `gone` holds; returns how long it took.
fn time_until(what: &str, timeout: Duration, mut gone: impl FnMut() -> bool) -> Duration {
    let t0 = Instant::now();
    wait_until(what, timeout, Duration::from_millis(10), || {
        if gone() {
            Ok(())
        } else {
            Err(Pending(format!("after {:?}", t0.elapsed())))
        }
    })
    .unwrap();
    t0.elapsed()
}

fn bfd_state(dut: &Sartd, peer: IpAddr) -> String {
    dut.neighbor(peer)
        .ok()
        .and_then(|v| v["bfdStatus"]["state"].as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// BFD with FRR's bfdd and BIRD's BFD protocol, 100 ms x 3: sessions come up on both ends;
/// cutting a link makes the router drop sartd's route within a second (BFD, not the 9 s hold
/// timer), and sartd tears its BGP session down just as fast.
#[test]
fn bfd_with_frr_and_bird_link_cut_detected_within_a_second() {
    require_root();
    let dut_ns = Netns::new("bfd").unwrap();
    let (fns, bns) = (
        Netns::new("bfdfrr").unwrap(),
        Netns::new("bfdbird").unwrap(),
    );
    let lf = Link::veth(&dut_ns, &fns, 91).unwrap();
    let lb = Link::veth(&dut_ns, &bns, 92).unwrap();
    let (f, b): (IpAddr, IpAddr) = (lf.b.ipv4().into(), lb.b.ipv4().into());
    let dut = Sartd::start(
        &dut_ns,
        "sartd",
        BgpConfig::new(65090, lf.a.ipv4())
            .neighbor(Neighbor::new(f, 65091, &V4).hold_time(9).bfd())
            .neighbor(Neighbor::new(b, 65092, &V4).hold_time(9).bfd())
            .route(Route::new(net("198.18.190.0/24"))),
    )
    .unwrap();
    let frr = Frr::start(
        &fns,
        "frr",
        BgpConfig::new(65091, lf.b.ipv4()).neighbor(
            Neighbor::new(lf.a.ipv4().into(), 65090, &V4)
                .hold_time(9)
                .bfd(),
        ),
    )
    .unwrap();
    let bird = DaemonKind::Bird
        .start(
            &bns,
            "bird",
            BgpConfig::new(65092, lb.b.ipv4()).neighbor(
                Neighbor::new(lb.a.ipv4().into(), 65090, &V4)
                    .hold_time(9)
                    .bfd(),
            ),
        )
        .unwrap();
    let prefix = net("198.18.190.0/24");
    for (peer, d) in [(f, &frr as &dyn Daemon), (b, bird.as_ref())] {
        wait_session(&dut, peer, true, UP).unwrap_or_else(|e| panic!("{e}\n{}", d.logs()));
        wait_route(d, prefix, ROUTE, |_| true).unwrap();
        wait_until(
            "BFD up at sartd",
            ROUTE,
            Duration::from_millis(100),
            || match bfd_state(&dut, peer).as_str() {
                "Up" => Ok(()),
                s => Err(Pending(s.to_owned())),
            },
        )
        .unwrap_or_else(|e| panic!("{e}\n{}\n{}", dut.logs(), d.logs()));
    }
    let peers = frr.vtysh_on("bfdd", &["show bfd peers json"]).unwrap();
    assert!(peers.contains("\"status\":\"up\""), "{peers}");

    // Cut FRR's link: FRR's bfdd sees our packets stop and bgpd drops the route.
    lf.b.cut().unwrap();
    let t = time_until("FRR drops sartd's route", Duration::from_secs(5), || {
        frr.rib(interop::Family::Ipv4Unicast)
            .is_ok_and(|r| r.paths(&prefix).is_empty())
    });
    eprintln!("FRR: route gone {t:?} after the cut");
    assert!(t < Duration::from_secs(1), "{t:?}");
    time_until("sartd: BGP with FRR down", Duration::from_secs(2), || {
        !dut.is_established(f).unwrap_or(true)
    });
    assert_eq!(bfd_state(&dut, f), "Down");

    lb.b.cut().unwrap();
    let t = time_until("BIRD drops sartd's route", Duration::from_secs(5), || {
        bird.rib(interop::Family::Ipv4Unicast)
            .is_ok_and(|r| r.paths(&prefix).is_empty())
    });
    eprintln!("BIRD: route gone {t:?} after the cut");
    assert!(t < Duration::from_secs(1), "{t:?}");
    assert!(dut.is_running());
}

/// Multihop BFD (RFC 5883) with BIRD, iBGP between loopbacks that share no subnet (each end
/// routes the other's /32 over the link): both ends come up multihop; a cut makes BIRD drop the
/// session within a second. Then sartd is restarted with single-hop BFD against the same BIRD:
/// the sessions cannot agree, and sartd says which setting to change.
#[test]
fn multihop_bfd_with_bird_between_loopbacks() {
    require_root();
    let dut_ns = Netns::new("mhbfd").unwrap();
    let bns = Netns::new("mhbird").unwrap();
    let l = Link::veth(&dut_ns, &bns, 93).unwrap();
    let (dut_lo, bird_lo): (IpAddr, IpAddr) = (
        "198.18.196.1".parse().unwrap(),
        "198.18.196.2".parse().unwrap(),
    );
    dut_ns
        .add_loopback_addrs(&[net("198.18.196.1/32")])
        .unwrap();
    bns.add_loopback_addrs(&[net("198.18.196.2/32")]).unwrap();
    dut_ns
        .exec(&[
            "ip",
            "route",
            "add",
            "198.18.196.2/32",
            "via",
            &l.b.ipv4().to_string(),
        ])
        .unwrap();
    bns.exec(&[
        "ip",
        "route",
        "add",
        "198.18.196.1/32",
        "via",
        &l.a.ipv4().to_string(),
    ])
    .unwrap();
    let sartd_config = |n: Neighbor| {
        BgpConfig::new(65093, "198.18.196.1".parse().unwrap())
            .neighbor(n.local_address(dut_lo).hold_time(9))
            .route(Route::new(net("198.18.197.0/24")))
    };
    let mut dut = Sartd::start(
        &dut_ns,
        "sartd",
        sartd_config(Neighbor::new(bird_lo, 65093, &V4).bfd_multihop()),
    )
    .unwrap();
    let bird = interop::bird::Bird::start(
        &bns,
        "bird",
        BgpConfig::new(65093, "198.18.196.2".parse().unwrap()).neighbor(
            Neighbor::new(dut_lo, 65093, &V4)
                .local_address(bird_lo)
                .bfd_multihop()
                .hold_time(9),
        ),
    )
    .unwrap();
    wait_session(&dut, bird_lo, true, UP).unwrap_or_else(|e| panic!("{e}\n{}", bird.logs()));
    wait_until(
        "multihop BFD up at sartd",
        ROUTE,
        Duration::from_millis(100),
        || match bfd_state(&dut, bird_lo).as_str() {
            "Up" => Ok(()),
            s => Err(Pending(s.to_owned())),
        },
    )
    .unwrap_or_else(|e| panic!("{e}\n{}\n{}", dut.logs(), bird.logs()));
    let sessions = bird.birdc(&["show", "bfd", "sessions"]).unwrap();
    assert!(
        sessions.contains("198.18.196.1") && sessions.contains("Up"),
        "{sessions}"
    );

    // Cut the link: BIRD's BFD notices within 300 ms and its BGP session goes.
    l.b.cut().unwrap();
    let t = time_until("BIRD: BGP with sartd down", Duration::from_secs(5), || {
        !bird.is_established(dut_lo).unwrap_or(true)
    });
    eprintln!("BIRD: multihop session down {t:?} after the cut");
    assert!(t < Duration::from_secs(1), "{t:?}");
    l.b.restore().unwrap();
    wait_session(&dut, bird_lo, true, UP).unwrap();

    // sartd single-hop, BIRD multihop: BIRD's packets come to port 4784, the session is for
    // 3784. BFD stays down, and the log names the setting.
    dut.stop();
    drop(dut);
    let dut = Sartd::start(
        &dut_ns,
        "sartd2",
        sartd_config(Neighbor::new(bird_lo, 65093, &V4).bfd()),
    )
    .unwrap();
    wait_until(
        "sartd's mismatch hint",
        ROUTE,
        Duration::from_millis(200),
        || {
            if dut
                .logs()
                .contains("multihop packets to a single-hop session")
            {
                Ok(())
            } else {
                Err(Pending(bfd_state(&dut, bird_lo)))
            }
        },
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", dut.logs()));
    assert_ne!(bfd_state(&dut, bird_lo), "Up");
}

/// Graceful restart with BIRD in both roles. BIRD as the helper: it keeps forwarding to sartd's
/// prefix across a SIGKILL restart of sartd (0 pings lost through BIRD's kernel routes). BIRD
/// restarting (`birdc graceful restart`, then `bird -R`): sartd keeps BIRD's routes stale in its
/// RIB and kernel until BIRD's End-of-RIB, which removes the one BIRD no longer has.
#[test]
fn graceful_restart_with_bird_both_roles() {
    require_root();
    let bird = |ns: &Netns, cfg: BgpConfig| {
        let cfg = cfg
            .route(Route::new(net("198.18.195.0/24")))
            .route(Route::new(net("198.18.196.0/24")));
        interop::bird::Bird::start(ns, "bird", cfg).unwrap()
    };
    let mut lab = restart_lab("grb", 87, true, bird);
    let (sent, lost) = restart_under_ping(&mut lab, true);
    eprintln!("BIRD helping, sartd SIGKILL: {lost} of {sent} pings lost");
    assert!(sent > 100, "{sent}");
    assert_eq!(lost, 0, "{}\n{}", lab.dut.logs(), lab.router.logs());

    // BIRD restarts gracefully, coming back without 198.18.196.0/24.
    let bird_addr = {
        let v = lab.dut.sart_json(&["neighbor", "list"]).unwrap();
        let a = v["peers"][0]["address"].as_str().unwrap().to_owned();
        a.parse::<IpAddr>().unwrap()
    };
    for p in ["198.18.195.0/24", "198.18.196.0/24"] {
        wait_route(&lab.dut, net(p), ROUTE, |_| true).unwrap();
    }
    let mut cfg = lab.router.config().clone();
    cfg.routes.retain(|r| r.prefix != net("198.18.196.0/24"));
    lab.router.graceful_restart(cfg).unwrap();
    wait_session(&lab.dut, bird_addr, true, UP)
        .unwrap_or_else(|e| panic!("{e}\n{}\n{}", lab.dut.logs(), lab.router.logs()));
    wait_route_gone(&lab.dut, net("198.18.196.0/24"), ROUTE)
        .unwrap_or_else(|e| panic!("{e}\n{}", lab.dut.logs()));
    let p = wait_route(&lab.dut, net("198.18.195.0/24"), ROUTE, |_| true).unwrap();
    assert_eq!(p.peer, Some(bird_addr));
    let logs = lab.dut.logs();
    assert!(
        logs.contains("its routes are kept as stale") && logs.contains("End-of-RIB: stale routes"),
        "sartd did not help BIRD's restart:\n{logs}"
    );
}

/// GoBGP as the receiving speaker: while sartd is dead (SIGKILL) GoBGP keeps sartd's route
/// (it would drop it at once without graceful restart), and still has it after sartd is back.
#[test]
fn graceful_restart_gobgp_keeps_sartd_routes() {
    require_root();
    let dut_ns = Netns::new("grgo").unwrap();
    let go_ns = Netns::new("grgopeer").unwrap();
    let l = Link::veth(&dut_ns, &go_ns, 89).unwrap();
    let gr = Some(GracefulRestart { restart_time: 30 });
    let mut to_go = Neighbor::new(l.b.ipv4().into(), 65089, &V4).hold_time(9);
    to_go.graceful_restart = gr;
    let mut dut = Sartd::start(
        &dut_ns,
        "sartd",
        BgpConfig::new(65088, l.a.ipv4())
            .neighbor(to_go)
            .route(Route::new(net("198.18.189.0/24"))),
    )
    .unwrap();
    let mut to_dut = Neighbor::new(l.a.ipv4().into(), 65088, &V4).hold_time(9);
    to_dut.graceful_restart = gr;
    let go = DaemonKind::Gobgp
        .start(
            &go_ns,
            "gobgp",
            BgpConfig::new(65089, l.b.ipv4()).neighbor(to_dut),
        )
        .unwrap();
    let dut_addr: IpAddr = l.a.ipv4().into();
    let prefix = net("198.18.189.0/24");
    wait_session(go.as_ref(), dut_addr, true, UP).unwrap();
    wait_route(go.as_ref(), prefix, ROUTE, |_| true).unwrap();
    dut.kill();
    wait_session(go.as_ref(), dut_addr, false, UP).unwrap();
    holds_for(
        "GoBGP keeps sartd's route",
        Duration::from_secs(3),
        Duration::from_millis(200),
        || match go.rib(interop::Family::Ipv4Unicast) {
            Ok(r) if !r.paths(&prefix).is_empty() => Ok(()),
            other => Err(Pending(format!("{other:?}"))),
        },
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", go.logs()));
    dut.start().unwrap();
    wait_session(go.as_ref(), dut_addr, true, UP).unwrap();
    holds_for(
        "route still there after the restart",
        Duration::from_secs(3),
        Duration::from_millis(200),
        || match go.rib(interop::Family::Ipv4Unicast) {
            Ok(r) if !r.paths(&prefix).is_empty() => Ok(()),
            other => Err(Pending(format!("{other:?}"))),
        },
    )
    .unwrap();
}

/// A restart keeps the kernel forwarding: sartd is killed, a route of ours that nothing will
/// re-learn is left in the table (as a previous run would leave a route withdrawn while it was
/// down), and FRR is frozen so the RIB cannot converge. The learned route never leaves the
/// kernel, the leftover stays while the RIB converges, and goes once FRR's End-of-RIB arrives.
#[test]
fn fib_keeps_a_previous_runs_routes_until_the_rib_converges() {
    require_root();
    let dut_ns = Netns::new("fibrs").unwrap();
    let frr_ns = Netns::new("fibrsfrr").unwrap();
    let l = Link::veth(&dut_ns, &frr_ns, 93).unwrap();
    let gr = Some(GracefulRestart { restart_time: 30 });
    let up: IpAddr = l.b.ipv4().into();
    let mut to_frr = Neighbor::new(up, 65093, &V4).hold_time(9);
    to_frr.graceful_restart = gr;
    let mut dut = Sartd::start_with(
        &dut_ns,
        "sartd",
        BgpConfig::new(65094, l.a.ipv4()).neighbor(to_frr),
        5000,
        "fib_table: 254\ngraceful_restart: {restart_time: 30}\n",
    )
    .unwrap();
    let mut to_dut = Neighbor::new(l.a.ipv4().into(), 65094, &V4).hold_time(9);
    to_dut.graceful_restart = gr;
    let frr = Frr::start(
        &frr_ns,
        "frr",
        BgpConfig::new(65093, l.b.ipv4())
            .neighbor(to_dut)
            .route(Route::new(net("198.18.193.0/24"))),
    )
    .unwrap();
    wait_kernel(&dut_ns, "198.18.193.0/24", "learned route", ROUTE, |r| {
        r.is_some()
    });

    dut.kill();
    dut_ns
        .exec(&[
            "ip",
            "route",
            "add",
            "198.18.194.0/24",
            "via",
            &up.to_string(),
            "proto",
            "186",
            "metric",
            "20",
        ])
        .unwrap();
    frr.freeze().unwrap();
    dut.start().unwrap();
    holds_for(
        "both routes kept while the RIB cannot converge",
        Duration::from_secs(3),
        Duration::from_millis(50),
        || match (
            kernel_route(&dut_ns, "198.18.193.0/24", "186"),
            kernel_route(&dut_ns, "198.18.194.0/24", "186"),
        ) {
            (Some(_), Some(_)) => Ok(()),
            other => Err(Pending(format!("{other:?}"))),
        },
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", dut.logs()));
    frr.unfreeze().unwrap();
    wait_session(&dut, up, true, UP).unwrap();
    let _ = wait_kernel(
        &dut_ns,
        "198.18.194.0/24",
        "leftover removed after convergence",
        ROUTE,
        |r| r.is_none(),
    );
    assert!(
        kernel_route(&dut_ns, "198.18.193.0/24", "186").is_some(),
        "the learned route stays"
    );
    assert!(dut.logs().contains("RIB converged after start"));
}

/// BFD authentication (RFC 5880 §6.7.4) with BIRD, which implements it: one BIRD with Keyed
/// SHA1, one with Meticulous Keyed SHA1, single hop. Both sessions come up, the key is shown
/// nowhere. sartd restarted with the wrong keys (another password for one, another key id for
/// the other) never brings BFD up: it counts the packets it drops, and BIRD says why it drops
/// sartd's.
#[test]
fn bfd_authentication_keyed_and_meticulous_sha1_with_bird() {
    require_root();
    let dut_ns = Netns::new("bfdauth").unwrap();
    let (kns, mns) = (
        Netns::new("bfdkeyed").unwrap(),
        Netns::new("bfdmeti").unwrap(),
    );
    let lk = Link::veth(&dut_ns, &kns, 96).unwrap();
    let lm = Link::veth(&dut_ns, &mns, 97).unwrap();
    let (k, m): (IpAddr, IpAddr) = (lk.b.ipv4().into(), lm.b.ipv4().into());
    let dut_config = |keyed: (u8, &str), meticulous: (u8, &str)| {
        BgpConfig::new(65096, lk.a.ipv4())
            .neighbor(
                Neighbor::new(k, 65097, &V4)
                    .hold_time(9)
                    .bfd()
                    .bfd_auth(false, keyed.0, keyed.1),
            )
            .neighbor(Neighbor::new(m, 65098, &V4).hold_time(9).bfd().bfd_auth(
                true,
                meticulous.0,
                meticulous.1,
            ))
    };
    let mut dut = Sartd::start(
        &dut_ns,
        "sartd",
        dut_config((3, "keyed-secret"), (9, "meticulous-secret")),
    )
    .unwrap();
    let keyed = interop::bird::Bird::start(
        &kns,
        "keyed",
        BgpConfig::new(65097, lk.b.ipv4()).neighbor(
            Neighbor::new(lk.a.ipv4().into(), 65096, &V4)
                .hold_time(9)
                .bfd()
                .bfd_auth(false, 3, "keyed-secret"),
        ),
    )
    .unwrap();
    let meti = interop::bird::Bird::start(
        &mns,
        "meticulous",
        BgpConfig::new(65098, lm.b.ipv4()).neighbor(
            Neighbor::new(lm.a.ipv4().into(), 65096, &V4)
                .hold_time(9)
                .bfd()
                .bfd_auth(true, 9, "meticulous-secret"),
        ),
    )
    .unwrap();
    for (peer, b, method) in [
        (k, &keyed, "keyed-sha1"),
        (m, &meti, "meticulous-keyed-sha1"),
    ] {
        wait_session(&dut, peer, true, UP).unwrap_or_else(|e| panic!("{e}\n{}", b.logs()));
        wait_until(
            "authenticated BFD up at sartd",
            ROUTE,
            Duration::from_millis(100),
            || match bfd_state(&dut, peer).as_str() {
                "Up" => Ok(()),
                s => Err(Pending(s.to_owned())),
            },
        )
        .unwrap_or_else(|e| panic!("{e}\n{}\n{}", dut.logs(), b.logs()));
        let sessions = b.birdc(&["show", "bfd", "sessions"]).unwrap();
        assert!(
            sessions
                .lines()
                .any(|l| l.split_whitespace().nth(2) == Some("Up")),
            "{sessions}"
        );
        let v = dut.neighbor(peer).unwrap();
        assert_eq!(v["bfd"]["auth"]["type"], method, "{v}");
        assert_eq!(v["bfdStatus"]["authFailures"], 0, "{v}");
        assert!(!v.to_string().contains("secret"), "{v}");
    }
    assert!(!dut.logs().contains("keyed-secret") && !dut.logs().contains("meticulous-secret"));

    // The wrong keys: BFD never comes up again, on either side.
    dut.stop();
    drop(dut);
    let dut = Sartd::start(
        &dut_ns,
        "sartd-wrong",
        dut_config((3, "not-the-secret"), (8, "meticulous-secret")),
    )
    .unwrap();
    for (peer, b, why) in [
        (k, &keyed, "wrong authentication code"),
        (m, &meti, "no suitable password found"),
    ] {
        wait_until(
            "sartd drops the peer's packets",
            ROUTE,
            Duration::from_millis(200),
            || {
                let v = dut.neighbor(peer).map_err(|e| Pending(e.to_string()))?;
                if v["bfdStatus"]["authFailures"].as_u64() > Some(3) {
                    Ok(())
                } else {
                    Err(Pending(v.to_string()))
                }
            },
        )
        .unwrap_or_else(|e| panic!("{e}\n{}", dut.logs()));
        assert_ne!(bfd_state(&dut, peer), "Up");
        wait_until("BIRD says why", ROUTE, Duration::from_millis(200), || {
            if b.logs().contains(why) {
                Ok(())
            } else {
                Err(Pending(String::new()))
            }
        })
        .unwrap_or_else(|e| panic!("{e}\n{}", b.logs()));
    }
}

/// GTSM (RFC 5082) with FRR (`ttl-security hops 1`) and BIRD (`ttl security on`): both sessions
/// come up and carry routes, the one with BIRD through sartd's listener (passive). A third peer, FRR without it (eBGP from FRR leaves with TTL 1),
/// never gets a session, whichever side opens the connection: sartd takes nothing that
/// arrives with less than 255.
#[test]
fn gtsm_with_frr_and_bird_and_a_peer_without_it_refused() {
    require_root();
    let dut_ns = Netns::new("gtsm").unwrap();
    let (fns, bns, pns) = (
        Netns::new("gtsmfrr").unwrap(),
        Netns::new("gtsmbird").unwrap(),
        Netns::new("gtsmplain").unwrap(),
    );
    let lf = Link::veth(&dut_ns, &fns, 94).unwrap();
    let lb = Link::veth(&dut_ns, &bns, 98).unwrap();
    let lp = Link::veth(&dut_ns, &pns, 99).unwrap();
    let (f, b, p): (IpAddr, IpAddr, IpAddr) =
        (lf.b.ipv4().into(), lb.b.ipv4().into(), lp.b.ipv4().into());
    let dut = Sartd::start(
        &dut_ns,
        "sartd",
        BgpConfig::new(65094, lf.a.ipv4())
            .neighbor(Neighbor::new(f, 65095, &V4).hold_time(9).ttl_security())
            // BIRD connects to us: GTSM on the listener's side too.
            .neighbor(
                Neighbor::new(b, 65096, &V4)
                    .hold_time(9)
                    .ttl_security()
                    .passive(),
            )
            .neighbor(Neighbor::new(p, 65097, &V4).hold_time(9).ttl_security())
            .route(Route::new(net("198.18.191.0/24"))),
    )
    .unwrap();
    let frr = Frr::start(
        &fns,
        "frr",
        BgpConfig::new(65095, lf.b.ipv4()).neighbor(
            Neighbor::new(lf.a.ipv4().into(), 65094, &V4)
                .hold_time(9)
                .ttl_security(),
        ),
    )
    .unwrap();
    let bird = DaemonKind::Bird
        .start(
            &bns,
            "bird",
            BgpConfig::new(65096, lb.b.ipv4()).neighbor(
                Neighbor::new(lb.a.ipv4().into(), 65094, &V4)
                    .hold_time(9)
                    .ttl_security(),
            ),
        )
        .unwrap();
    let plain = Frr::start(
        &pns,
        "plain",
        BgpConfig::new(65097, lp.b.ipv4())
            .neighbor(Neighbor::new(lp.a.ipv4().into(), 65094, &V4).hold_time(9)),
    )
    .unwrap();
    let prefix = net("198.18.191.0/24");
    for (peer, d) in [(f, &frr as &dyn Daemon), (b, bird.as_ref())] {
        wait_session(&dut, peer, true, UP).unwrap_or_else(|e| panic!("{e}\n{}", d.logs()));
        wait_route(d, prefix, ROUTE, |_| true).unwrap();
    }
    let v = dut.neighbor(f).unwrap();
    assert_eq!(v["configured"]["ttlSecurity"], true, "{v}");
    holds_for(
        "no session with the peer without GTSM",
        Duration::from_secs(6),
        Duration::from_millis(200),
        || match dut.is_established(p) {
            Ok(false) => Ok(()),
            other => Err(Pending(format!("{other:?}"))),
        },
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", plain.logs()));
    assert!(
        plain
            .rib(interop::Family::Ipv4Unicast)
            .unwrap()
            .paths(&prefix)
            .is_empty()
    );
}
