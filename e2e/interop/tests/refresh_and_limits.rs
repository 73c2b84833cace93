//! `sartd bgp` interop on route refresh (RFC 2918, enhanced RFC 7313) and max-prefix (RFC 4486),
//! against FRR and ExaBGP.
//! Needs root and the `sartd` and `sart` binaries (`cargo build -p sartd -p sart`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;
use common::*;

use std::net::IpAddr;
use std::time::Duration;

use interop::exabgp::Exabgp;
use interop::frr::Frr;
use interop::sartd::Sartd;
use interop::wait::POLL;
use interop::{
    BgpConfig, Daemon, Family, Link, Neighbor, Netns, Pending, Route, holds_for, wait_route,
    wait_route_gone, wait_session, wait_until,
};
use serde_json::Value;

fn counter(v: &Value, dir: &str, what: &str) -> u64 {
    v[dir][what].as_u64().unwrap_or(0)
}

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
