//! Set-up shared by the interop test binaries. Each binary uses a subset of it.

#![allow(dead_code, clippy::unwrap_used)] // test code

use std::net::IpAddr;
use std::time::Duration;

use interop::Family;

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
