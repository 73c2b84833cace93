//! Routing policy per neighbour, against FRR: an import prefix list (first match decides, no
//! match denies), export of only what sartd originates (no transit between its peers), and a
//! max-prefix limit that closes with Cease / Maximum Number of Prefixes Reached (RFC 4486)
//! and holds the session down until an operator resets it.
//!
//! sartd (AS 64600) peers with three FRRs: A sends routes, B is set to `export: originated`,
//! C keeps the default (`all`) and so shows what B would have got without it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;
use common::*;

use std::net::IpAddr;
use std::time::Duration;

use interop::frr::Frr;
use interop::sartd::Sartd;
use interop::{
    BgpConfig, Daemon, Family, Link, Neighbor, Netns, Pending, Route, holds_for, wait_route,
    wait_route_gone, wait_session, wait_until,
};

const DUT_AS: u32 = 64600;

#[test]
fn import_list_no_transit_and_max_prefix_against_frr() {
    require_root();
    let dut_ns = Netns::new("dut").unwrap();
    let (a_ns, b_ns, c_ns) = (
        Netns::new("a").unwrap(),
        Netns::new("b").unwrap(),
        Netns::new("c").unwrap(),
    );
    let (la, lb, lc) = (
        Link::veth(&dut_ns, &a_ns, 121).unwrap(),
        Link::veth(&dut_ns, &b_ns, 122).unwrap(),
        Link::veth(&dut_ns, &c_ns, 123).unwrap(),
    );
    let ip_of = |l: &Link| -> (IpAddr, IpAddr) { (l.a.ipv4().into(), l.b.ipv4().into()) };
    let ((dut_a, a), (dut_b, b), (dut_c, c)) = (ip_of(&la), ip_of(&lb), ip_of(&lc));

    let own = net("198.19.100.0/24");
    let cfg = BgpConfig::new(DUT_AS, la.a.ipv4())
        .neighbor(
            Neighbor::new(a, 65001, &V4)
                .hold_time(9)
                .sartd_key(
                    "import: [{prefix: 198.19.0.0/24, le: 32, action: deny}, \
                     {prefix: 198.19.0.0/16, ge: 24, le: 24}]",
                )
                .sartd_key("max_prefix: {limit: 3, restart_after: 0}"),
        )
        .neighbor(
            Neighbor::new(b, 65002, &V4)
                .hold_time(9)
                .sartd_key("export: originated"),
        )
        .neighbor(Neighbor::new(c, 65003, &V4).hold_time(9))
        .route(Route::new(own));
    let dut = Sartd::start(&dut_ns, "dut", cfg).unwrap();
    let frr = |ns: &Netns, name: &str, asn: u32, peer: IpAddr, id| {
        Frr::start(
            ns,
            name,
            BgpConfig::new(asn, id).neighbor(Neighbor::new(peer, DUT_AS, &V4).hold_time(9)),
        )
        .unwrap()
    };
    let mut fa = frr(&a_ns, "a", 65001, dut_a, la.b.ipv4());
    let fb = frr(&b_ns, "b", 65002, dut_b, lb.b.ipv4());
    let fc = frr(&c_ns, "c", 65003, dut_c, lc.b.ipv4());
    for p in [a, b, c] {
        wait_session(&dut, p, true, UP).unwrap();
    }

    // Import: denied by the first rule, permitted, too long for the second rule, permitted.
    for p in [
        "198.19.0.0/24",
        "198.19.1.0/24",
        "198.19.2.0/25",
        "198.19.3.0/24",
    ] {
        fa.announce(Route::new(net(p))).unwrap();
    }
    let accepted = [net("198.19.1.0/24"), net("198.19.3.0/24")];
    // C (export all) gets what sartd accepted from A, and sartd's own route.
    for p in accepted.iter().chain([&own]) {
        wait_route(&fc, *p, ROUTE, |_| true).unwrap();
    }
    let mut got = dut.rib(Family::Ipv4Unicast).unwrap().received();
    got.sort();
    assert_eq!(got, accepted, "sartd accepted from A");
    let c_rib = fc.rib(Family::Ipv4Unicast).unwrap();
    for p in ["198.19.0.0/24", "198.19.2.0/25"] {
        assert!(!c_rib.contains(&net(p)), "{p} passed the import list");
    }
    // B (export originated) gets sartd's own route and nothing learned, by now or later.
    wait_route(&fb, own, ROUTE, |_| true).unwrap();
    holds_for(
        "B gets no learned route",
        Duration::from_secs(3),
        Duration::from_millis(300),
        || {
            let rib = fb.rib(Family::Ipv4Unicast)?;
            match accepted.iter().find(|p| rib.contains(p)) {
                Some(p) => Err(Pending(format!("B got {p}: {}", rib.summary()))),
                None => Ok(()),
            }
        },
    )
    .unwrap();

    // Max prefix: two more permitted routes make four, over the limit of three.
    let b_opens = dut.neighbor(b).unwrap()["receiveCounter"]["open"].clone();
    for p in ["198.19.4.0/24", "198.19.5.0/24"] {
        fa.announce(Route::new(net(p))).unwrap();
    }
    wait_until(
        "FRR A to record Cease / Maximum Number of Prefixes Reached",
        UP,
        Duration::from_millis(300),
        || {
            let out = fa
                .vtysh(&[&format!("show bgp neighbors {dut_a} json")])
                .map_err(|e| Pending(e.to_string()))?;
            if out.contains("Maximum Number of Prefixes Reached") {
                Ok(())
            } else {
                Err(Pending(out))
            }
        },
    )
    .unwrap();
    // Held down: FRR retries every second and is refused; A's routes are gone from C.
    for p in accepted {
        wait_route_gone(&fc, p, ROUTE).unwrap();
    }
    holds_for(
        "the session stays down until reset",
        Duration::from_secs(5),
        Duration::from_millis(500),
        || match dut.neighbor(a)?["state"].as_str() {
            Some("Idle") => Ok(()),
            s => Err(Pending(format!("state {s:?}"))),
        },
    )
    .unwrap();
    let n = dut.neighbor(a).unwrap();
    assert!(
        n["lastError"].as_str().unwrap_or("").contains("6/1"),
        "sartd's last error: {n}"
    );
    // The others never noticed.
    assert_eq!(dut.neighbor(b).unwrap()["receiveCounter"]["open"], b_opens);
    wait_session(&dut, c, true, Duration::from_secs(1)).unwrap();

    // Back under the limit, a hard reset brings the session back with its routes.
    for p in ["198.19.4.0/24", "198.19.5.0/24"] {
        fa.withdraw(net(p)).unwrap();
    }
    dut.sart(&["neighbor", "reset", &a.to_string(), "hard"])
        .unwrap();
    wait_session(&dut, a, true, UP).unwrap();
    for p in accepted {
        wait_route(&fc, p, ROUTE, |_| true).unwrap();
    }
    // The configured policy shows in the API, next to the negotiated timers.
    let n = dut.neighbor(b).unwrap();
    assert_eq!(n["configured"]["export"], "originated", "{n}");
    let n = dut.neighbor(a).unwrap();
    assert_eq!(n["configured"]["maxPrefix"]["limit"], 3, "{n}");
    assert_eq!(n["configured"]["importPrefixes"][1]["ge"], 24, "{n}");
    assert_eq!(n["holdTime"], 9, "{n}");
}
