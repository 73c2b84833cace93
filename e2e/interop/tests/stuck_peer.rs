//! A peer that stops reading holds up nobody: 100,000 routes, each with attributes of its own
//! (one UPDATE each), flow from a source through sartd to a BIRD sink while a fourth peer has
//! its session Established and reads nothing. The sink gets every route, no session drops, the
//! API answers throughout, sartd's memory stays bounded, and the send hold timer (RFC 9687)
//! drops the stuck peer with its NOTIFICATION.
//!
//! The source and the stuck peer are played by hand ([`HandPeer`]): no daemon can be told to
//! stop reading, and a hand-made source sends 100,000 distinct attribute sets faster than any
//! daemon's configuration could describe them.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;
use common::*;

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use interop::bird::Bird;
use interop::hand_peer::{HandPeer, distinct_routes};
use interop::sartd::Sartd;
use interop::{BgpConfig, Daemon, Link, Neighbor, Netns, Pending, wait_session, wait_until};

const ROUTES: u32 = 100_000;
const DUT_AS: u32 = 64512;
const SRC_AS: u32 = 65001;
const SINK_AS: u32 = 65002;
const STUCK_AS: u32 = 65003;
const SEND_HOLD: u16 = 10;

/// `show route count` of BIRD: the routes in its IPv4 table.
fn bird_routes(bird: &Bird) -> u64 {
    let out = bird.birdc(&["show", "route", "count"]).unwrap_or_default();
    out.lines()
        .find_map(|l| {
            let mut w = l.split_whitespace();
            let n = w.next()?.parse().ok()?;
            (w.next() == Some("of")).then_some(n)
        })
        .unwrap_or(0)
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

#[test]
fn a_peer_that_stops_reading_stalls_nothing() {
    require_root();
    let dut_ns = Netns::new("dut").unwrap();
    let src_ns = Netns::new("src").unwrap();
    let sink_ns = Netns::new("sink").unwrap();
    let stuck_ns = Netns::new("stuck").unwrap();
    let to_src = Link::veth(&dut_ns, &src_ns, 81).unwrap();
    let to_sink = Link::veth(&dut_ns, &sink_ns, 82).unwrap();
    let to_stuck = Link::veth(&dut_ns, &stuck_ns, 83).unwrap();
    let (src_ip, sink_ip, stuck_ip) = (to_src.b.ipv4(), to_sink.b.ipv4(), to_stuck.b.ipv4());
    // The kernel's buffers must not absorb the stuck peer's whole backlog, or nothing is ever
    // stuck: hosts differ (tcp_wmem of 16 MiB is common), so both ends get fixed, small
    // buffers in their own namespaces (the sysctls are per namespace), well under the ~6 MB
    // that 100,000 UPDATEs take.
    dut_ns
        .exec(&["sysctl", "-qw", "net.ipv4.tcp_wmem=4096 16384 1048576"])
        .unwrap();
    stuck_ns
        .exec(&["sysctl", "-qw", "net.ipv4.tcp_rmem=4096 65536 65536"])
        .unwrap();

    let mut cfg = BgpConfig::new(DUT_AS, "198.18.80.1".parse().unwrap());
    cfg.neighbors = vec![
        Neighbor::new(src_ip.into(), SRC_AS, &V4)
            .hold_time(9)
            .passive(),
        Neighbor::new(sink_ip.into(), SINK_AS, &V4).hold_time(9),
        Neighbor::new(stuck_ip.into(), STUCK_AS, &V4)
            .hold_time(9)
            .send_hold_time(SEND_HOLD)
            .passive(),
    ];
    let dut = Sartd::start(&dut_ns, "dut", cfg).unwrap();
    let mut sink_cfg = BgpConfig::new(SINK_AS, sink_ip);
    sink_cfg.neighbors = vec![Neighbor::new(to_sink.a.ipv4().into(), DUT_AS, &V4).hold_time(9)];
    let sink = Bird::start(&sink_ns, "sink", sink_cfg).unwrap();

    // 100,000 /24s, one MED each: one UPDATE each.
    let wire = distinct_routes(ROUTES, SRC_AS, src_ip);
    let stuck = HandPeer::connect(
        &stuck_ns,
        to_stuck.a.ipv4().into(),
        STUCK_AS,
        stuck_ip,
        Vec::new(),
    )
    .unwrap();
    let src = HandPeer::connect(&src_ns, to_src.a.ipv4().into(), SRC_AS, src_ip, wire).unwrap();
    // The source reads (and drops) what sartd sends it; the stuck peer reads nothing.
    src.drain_input().unwrap();
    for peer in [src_ip, sink_ip, stuck_ip] {
        wait_session(&dut, peer.into(), true, Duration::from_secs(30)).unwrap();
    }
    // A session that drops and comes back shows as a second OPEN received.
    let opens =
        |peer: Ipv4Addr| dut.neighbor(peer.into()).unwrap()["receiveCounter"]["open"].clone();
    let (src_opens, sink_opens) = (opens(src_ip), opens(sink_ip));
    let pid = dut.bgp_pid().unwrap();
    let rss_before = rss_kib(pid);
    // BIRD's table holds its own routes too (the link's).
    let want = bird_routes(&sink) + u64::from(ROUTES);

    let start = Instant::now();
    src.go();

    // Meanwhile the API answers, and within a second each time.
    let mut slowest_api = Duration::ZERO;
    let mut got = 0;
    while start.elapsed() < Duration::from_secs(120) {
        let t = Instant::now();
        dut.neighbor(src_ip.into()).unwrap();
        slowest_api = slowest_api.max(t.elapsed());
        got = bird_routes(&sink);
        if got == want {
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    let took = start.elapsed();
    let rss_after = rss_kib(pid);
    eprintln!(
        "{got} routes at the sink in {took:?}; slowest API call {slowest_api:?}; sartd RSS {rss_before} -> {rss_after} KiB"
    );
    assert_eq!(got, want, "the sink did not get every route");
    assert!(
        slowest_api < Duration::from_secs(2),
        "the API took {slowest_api:?}"
    );
    // No session dropped on the way.
    assert_eq!(opens(src_ip), src_opens, "the source's session restarted");
    assert_eq!(opens(sink_ip), sink_opens, "the sink's session restarted");
    // Bounded: the stuck peer's backlog is at most its table, coalesced (100,000 routes take
    // about 60 MiB in sartd's RIB; an unbounded queue of UPDATEs for the stuck peer, more).
    assert!(
        rss_after < 256 * 1024,
        "sartd RSS {rss_after} KiB after the load"
    );

    // The stuck peer is dropped once it has read nothing for the send hold time.
    wait_until(
        "the send hold timer drops the stuck peer",
        Duration::from_secs(u64::from(SEND_HOLD) * 3),
        Duration::from_millis(500),
        || {
            let n = dut
                .neighbor(stuck_ip.into())
                .map_err(|e| Pending(e.to_string()))?;
            match n["lastError"].as_str() {
                Some(e) if e.contains("NOTIFICATION 8/0 Send Hold Timer Expired") => Ok(()),
                // What was sent tells a stuck writer from one whose backlog the kernel took.
                e => Err(Pending(format!(
                    "lastError {e:?}, state {}, UPDATEs sent {}",
                    n["state"], n["sendCounter"]["update"]
                ))),
            }
        },
    )
    .unwrap();
    drop(stuck);
    // Still no harm to the others.
    assert_eq!(opens(src_ip), src_opens);
    assert_eq!(bird_routes(&sink), want);
}
