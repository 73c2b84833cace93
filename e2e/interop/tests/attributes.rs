//! `sartd bgp` interop on path attributes as ExaBGP and FRR send them: RFC 7606 error handling,
//! unknown optional attributes, 2-octet peers and AS4_PATH (RFC 6793).
//! Needs root and the `sartd` and `sart` binaries (`cargo build -p sartd -p sart`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;
use common::*;

use std::net::IpAddr;
use std::time::Duration;

use interop::exabgp::{Exabgp, ExabgpOptions};
use interop::frr::Frr;
use interop::sartd::Sartd;
use interop::wait::POLL;
use interop::{
    BgpConfig, Daemon, Family, Link, Neighbor, Netns, Pending, Route, holds_for, wait_route,
    wait_route_gone, wait_session, wait_until,
};

/// AS_TRANS (RFC 6793).
const AS_TRANS: u32 = 23456;

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
