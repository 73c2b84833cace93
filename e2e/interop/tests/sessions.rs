//! `sartd bgp` interop on sessions: connection collisions (RFC 4271 §6.8), the last
//! NOTIFICATION, the negotiated hold time, and a speaker configured without an AS.
//! Needs root and the `sartd` and `sart` binaries (`cargo build -p sartd -p sart`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;
use common::*;

use std::net::IpAddr;
use std::time::{Duration, Instant};

use interop::frr::Frr;
use interop::hand_peer::HandPeer;
use interop::sartd::Sartd;
use interop::wait::POLL;
use interop::{
    BgpConfig, Daemon, Link, Neighbor, Netns, Pending, Route, holds_for, wait_route, wait_session,
    wait_until,
};

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

/// A stream that cannot be framed (here a header without the all-ones marker, after a good
/// KEEPALIVE) ends the session with Message Header Error / Connection Not Synchronized (RFC
/// 4271 §6.1), and sartd says so.
#[test]
fn a_stream_that_cannot_be_framed_gets_a_header_error() {
    require_root();
    let (a, b) = (Netns::new("sartd").unwrap(), Netns::new("hand").unwrap());
    let link = Link::veth(&a, &b, 87).unwrap();
    let b4 = link.b.ipv4();
    let dut = Sartd::start(
        &a,
        "sartd",
        BgpConfig::new(65870, link.a.ipv4())
            .neighbor(Neighbor::new(b4.into(), 65871, &V4).hold_time(9).passive()),
    )
    .unwrap();
    let ctx = bgp::Context::default();
    let keepalive = bgp::Message::Keepalive.encode(&ctx).unwrap();
    let mut unframed = keepalive.clone();
    unframed[3] = 0;
    let peer = HandPeer::connect(
        &b,
        link.a.ipv4().into(),
        65871,
        b4,
        vec![[keepalive, unframed].concat()],
    )
    .unwrap();
    peer.drain_input().unwrap();
    wait_session(&dut, b4.into(), true, UP).unwrap();
    peer.go();
    wait_session(&dut, b4.into(), false, Duration::from_secs(10)).unwrap();
    let log = full_log(&dut);
    assert!(
        log.contains("NOTIFICATION sent: Message Header Error / Connection Not Synchronized"),
        "sartd did not send 1/1:\n{log}"
    );
    let n = dut.neighbor(b4.into()).unwrap();
    assert_eq!(n["sendCounter"]["notification"], 1, "{n}");
}

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
