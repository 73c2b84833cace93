//! Helpers the `sartd bgp` interop binaries share: FRR's view of a neighbour, a daemon's whole
//! log, and a sartd-ExaBGP pair recording raw messages.

#![allow(clippy::expect_used, clippy::panic)] // test code

use super::*;

use std::net::IpAddr;

use interop::exabgp::{Exabgp, ExabgpOptions};
use interop::frr::Frr;
use interop::sartd::Sartd;
use interop::{BgpConfig, Daemon, Link, Neighbor, Netns, Route, wait_route, wait_session};
use serde_json::Value;

/// `show bgp neighbors ADDR json`, the neighbour's object.
pub fn frr_neighbor(frr: &Frr, addr: IpAddr) -> Value {
    let out = frr
        .vtysh(&[&format!("show bgp neighbors {addr} json")])
        .unwrap();
    let v: Value = serde_json::from_str(&out).unwrap();
    v[addr.to_string()].clone()
}

/// The whole text of a daemon's log files (not only the tail `logs()` shows), without ANSI
/// colour sequences (sartd colours `key=value` fields).
pub fn full_log(d: &dyn Daemon) -> String {
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

pub const RAW: ExabgpOptions = ExabgpOptions {
    asn4: true,
    packets: true,
};

/// sartd (AS 65760) and ExaBGP (AS 65761, raw messages recorded) with one static route
/// 198.18.N.0/25 at ExaBGP, established, the route at sartd.
pub fn exabgp_pair(n: u8) -> (Netns, Netns, Link, Sartd, Exabgp) {
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
