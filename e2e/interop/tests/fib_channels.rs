//! `sartd fib` (sart's FIB process) with FRR, in network namespaces, as sart's manifests run it
//! beside `sartd bgp --fib 127.0.0.1:5010`: one channel carries the speaker's best routes into
//! two kernel tables, another redistributes a kernel table into BGP with the attributes the
//! channel sets.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;
use common::*;

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::Duration;

use interop::frr::Frr;
use interop::sartd::{Sartd, sartd_binary};
use interop::{
    BgpConfig, Community, Daemon, Link, Neighbor, Netns, Pending, Route, holds_for, wait_route,
    wait_route_gone, wait_session, wait_until,
};
use rustix::process::Signal;

fn wait_tables(
    ns: &Netns,
    prefix: &str,
    what: &str,
    want: Option<IpAddr>,
    fib: &interop::process::Proc,
) {
    wait_until(what, ROUTE, Duration::from_millis(50), || {
        let got: Vec<_> = ["main", "8"]
            .iter()
            .map(|t| kernel_route(ns, t, prefix, "bgp"))
            .collect();
        let ok = got.iter().all(|r| match want {
            Some(nh) => r
                .as_ref()
                .is_some_and(|(n, m)| *n == BTreeSet::from([nh]) && *m == 20),
            None => r.is_none(),
        });
        if ok {
            Ok(())
        } else {
            Err(Pending(format!("{prefix}: {got:?}")))
        }
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", interop::process::tail(fib.log(), 40)));
}

#[test]
fn channels_carry_bgp_into_two_tables_and_a_table_into_bgp() {
    require_root();
    let dut_ns = Netns::new("fibch").unwrap();
    let frr_ns = Netns::new("fibchfrr").unwrap();
    let l = Link::veth(&dut_ns, &frr_ns, 86).unwrap();
    let (dut_as, frr_as) = (65086, 65087);
    let frr_v4: IpAddr = l.b.ipv4().into();
    let frr_v6: IpAddr = l.b.ipv6().into();
    let dut_cfg = BgpConfig::new(dut_as, l.a.ipv4())
        .neighbor(Neighbor::new(frr_v4, frr_as, &V4).hold_time(9))
        .neighbor(
            Neighbor::new(frr_v6, frr_as, &V6)
                .router_id(l.b.ipv4())
                .hold_time(9),
        );
    // sart's manifests: the speaker sends to the sidecar's BGP subscriber.
    let dut = Sartd::start_with(
        &dut_ns,
        "sartd",
        dut_cfg,
        5000,
        "fib_endpoint: 127.0.0.1:5010\n",
    )
    .unwrap();
    let config = dut_ns.dir().join("fib-config.yaml");
    std::fs::write(
        &config,
        "endpoint: 127.0.0.1:5001\nchannels:\n  - name: bgp-to-kernel\n    subscribers:\n      \
         - protocol: bgp\n        endpoint: 127.0.0.1:5010\n    publishers:\n      \
         - protocol: kernel\n        tables: [254, 8]\n  - name: kernel-to-bgp\n    ip_version: ipv4\n    \
         subscribers:\n      - protocol: kernel\n        tables: [10]\n    publishers:\n      \
         - protocol: bgp\n        endpoint: 127.0.0.1:5000\n        \
         attributes: {med: 50, communities: ['65086:10']}\n",
    )
    .unwrap();
    let bin = sartd_binary();
    let argv = [bin.to_str().unwrap(), "fib", "-f", config.to_str().unwrap()];
    let log = dut_ns.dir().join("fib.log");
    let mut fib = dut_ns.spawn("sartd-fib", &argv, &log).unwrap();
    let mut frr = Frr::start(
        &frr_ns,
        "frr",
        BgpConfig::new(frr_as, l.b.ipv4())
            .neighbor(Neighbor::new(l.a.ipv4().into(), dut_as, &V4).hold_time(9))
            .neighbor(Neighbor::new(l.a.ipv6().into(), dut_as, &V6).hold_time(9))
            .route(Route::new(net("198.18.186.0/24")))
            .route(Route::new(net("198.18.187.0/24")))
            .route(Route::new(net("fd00:186::/64"))),
    )
    .unwrap();
    for a in [frr_v4, frr_v6] {
        wait_session(&dut, a, true, UP).unwrap_or_else(|e| panic!("{e}\n{}", dut.logs()));
    }

    // BGP → kernel tables 254 and 8, both families, protocol 186 with the eBGP metric.
    wait_tables(
        &dut_ns,
        "198.18.186.0/24",
        "v4 route in both tables",
        Some(frr_v4),
        &fib,
    );
    wait_tables(
        &dut_ns,
        "198.18.187.0/24",
        "second route in both tables",
        Some(frr_v4),
        &fib,
    );
    wait_tables(
        &dut_ns,
        "fd00:186::/64",
        "v6 route in both tables",
        Some(frr_v6),
        &fib,
    );

    // Kernel table 10 → BGP, with the channel's MED and community; the IPv4-only channel
    // leaves an IPv6 route of the table alone.
    let via = l.b.ipv4().to_string();
    dut_ns
        .exec(&[
            "ip",
            "route",
            "add",
            "198.18.188.0/24",
            "via",
            &via,
            "table",
            "10",
            "proto",
            "static",
        ])
        .unwrap();
    dut_ns
        .exec(&[
            "ip",
            "-6",
            "route",
            "add",
            "fd00:188::/64",
            "via",
            &frr_v6.to_string(),
            "table",
            "10",
        ])
        .unwrap();
    let p = wait_route(&frr, net("198.18.188.0/24"), ROUTE, |p| {
        p.med == Some(50) && p.communities.contains(&Community(65086, 10))
    })
    .unwrap_or_else(|e| panic!("{e}\n{}\n{}", dut.logs(), interop::process::tail(&log, 40)));
    assert_eq!(p.as_path, [dut_as]);
    holds_for(
        "the IPv6 route stays out",
        Duration::from_secs(1),
        Duration::from_millis(200),
        || match frr
            .rib(interop::Family::Ipv6Unicast)?
            .contains(&net("fd00:188::/64"))
        {
            false => Ok(()),
            true => Err(Pending("fd00:188::/64 reached FRR".into())),
        },
    )
    .unwrap();
    // What the kernel-to-bgp channel wrote into BGP does not come back into tables 254 and 8:
    // the speaker does not install its own paths.
    assert_eq!(kernel_route(&dut_ns, "8", "198.18.188.0/24", "bgp"), None);
    dut_ns
        .exec(&["ip", "route", "del", "198.18.188.0/24", "table", "10"])
        .unwrap();
    wait_route_gone(&frr, net("198.18.188.0/24"), ROUTE).unwrap();

    // The sidecar crashes; a route is withdrawn meanwhile (the speaker cannot tell it); the
    // next run keeps forwarding through the tables and then drops just that route.
    fib.signal(Signal::KILL).unwrap();
    frr.withdraw(net("198.18.187.0/24")).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    fib = dut_ns.spawn("sartd-fib", &argv, &log).unwrap();
    holds_for(
        "the first route stays",
        Duration::from_secs(1),
        Duration::from_millis(50),
        || match kernel_route(&dut_ns, "8", "198.18.186.0/24", "bgp") {
            Some(_) => Ok(()),
            None => Err(Pending("198.18.186.0/24 left table 8".into())),
        },
    )
    .unwrap();
    wait_tables(
        &dut_ns,
        "198.18.187.0/24",
        "withdrawn route gone after restart",
        None,
        &fib,
    );
    wait_tables(&dut_ns, "198.18.186.0/24", "kept route", Some(frr_v4), &fib);

    // A table route announced, then a clean stop: the channel's paths are withdrawn; the
    // tables keep theirs for the next run.
    dut_ns
        .exec(&[
            "ip",
            "route",
            "add",
            "198.18.189.0/24",
            "via",
            &via,
            "table",
            "10",
        ])
        .unwrap();
    wait_route(&frr, net("198.18.189.0/24"), ROUTE, |p| p.med == Some(50)).unwrap();
    fib.stop(Duration::from_secs(10));
    wait_route_gone(&frr, net("198.18.189.0/24"), ROUTE).unwrap();
    assert!(kernel_route(&dut_ns, "8", "198.18.186.0/24", "bgp").is_some());
}
