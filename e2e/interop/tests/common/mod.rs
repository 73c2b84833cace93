//! Set-up shared by the interop test binaries. Each binary uses a subset of it.

#![allow(dead_code, clippy::unwrap_used)] // test code

use std::net::IpAddr;
use std::time::Duration;

use interop::Family;

mod peers;
#[allow(unused_imports)] // each test binary uses some
pub use peers::*;

pub const V4: [Family; 1] = [Family::Ipv4Unicast];
pub const V6: [Family; 1] = [Family::Ipv6Unicast];
pub const V4V6: [Family; 2] = [Family::Ipv4Unicast, Family::Ipv6Unicast];
/// How long a session may take to come up.
pub const UP: Duration = Duration::from_secs(20);
/// How long a route may take to arrive or go.
pub const ROUTE: Duration = Duration::from_secs(15);

pub fn require_root() {
    assert!(
        interop::is_root(),
        "interop tests create network namespaces and need root (CI runs them as root)"
    );
}

pub fn net(s: &str) -> ipnet::IpNet {
    s.parse().unwrap()
}

pub fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// `ip route show table TABLE proto PROTO PREFIX` in `ns`: the next hops and metric of the first
/// route, if any.
pub fn kernel_route(
    ns: &interop::Netns,
    table: &str,
    prefix: &str,
    proto: &str,
) -> Option<(std::collections::BTreeSet<IpAddr>, u64)> {
    let fam = if prefix.contains(':') { "-6" } else { "-4" };
    let out = ns
        .exec(&[
            "ip", "-j", fam, "route", "show", "table", table, "proto", proto, prefix,
        ])
        .ok()?;
    let v: serde_json::Value = serde_json::from_str(&out).ok()?;
    let r = v.as_array()?.first()?;
    let mut nhs = std::collections::BTreeSet::new();
    if let Some(g) = r["gateway"].as_str() {
        nhs.insert(g.parse().ok()?);
    }
    for h in r["nexthops"].as_array().into_iter().flatten() {
        nhs.insert(h["gateway"].as_str()?.parse().ok()?);
    }
    Some((nhs, r["metric"].as_u64().unwrap_or(0)))
}
