//! The speaker's YAML configuration: sart's format (`asn`, `router_id`, `neighbors`, `multi_path`,
//! `paths`, `fib_endpoint`, `fib_table`, `exporter`) plus optional per-neighbour keys.
//!
//! Parsing is two steps: serde reads the YAML into loose `Raw*` types and [`NeighborInput`]s
//! (unknown keys are errors), then `validate` turns them into typed values, naming the key of
//! anything wrong.

#![warn(unreachable_pub)]

mod neighbor;

use std::collections::BTreeSet;
use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use bgp::attribute::{Community, ExtCommunity, LargeCommunity};
use ipnet::IpNet;
use serde::Deserialize;

use neighbor::graceful_restart;
pub use neighbor::{
    BfdAuth, BfdAuthInput, BfdConfig, BfdInput, DEFAULT_HOLD_TIME, DEFAULT_RESTART_TIME,
    GracefulRestart, GracefulRestartInput, MaxPrefix, MaxPrefixInput, Neighbor, NeighborInput,
    Password, PrefixRuleInput, Ttl, prefix_rule,
};

/// A configuration error: the key (as a path into the file) and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub key: String,
    pub reason: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.reason)
    }
}

impl std::error::Error for ConfigError {}

impl ConfigError {
    /// The same error, its key inside `parent`.
    pub fn under(self, parent: &str) -> ConfigError {
        err(format!("{parent}.{}", self.key), self.reason)
    }
}

fn err(key: impl Into<String>, reason: impl Into<String>) -> ConfigError {
    ConfigError {
        key: key.into(),
        reason: reason.into(),
    }
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    asn: Option<u32>,
    router_id: Option<String>,
    multi_path: Option<MultiPath>,
    fib_endpoint: Option<String>,
    fib_table: Option<u32>,
    exporter: Option<String>,
    graceful_restart: Option<GracefulRestartInput>,
    #[serde(default)]
    neighbors: Vec<NeighborInput>,
    #[serde(default)]
    paths: Vec<RawPath>,
}

/// `multi_path: true` (sart) or a maximum number of paths.
#[derive(Debug, Deserialize, Clone, Copy)]
#[serde(untagged)]
enum MultiPath {
    Enabled(bool),
    Max(u32),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPath {
    #[serde(default)]
    prefixes: Vec<String>,
    #[serde(default)]
    attributes: RawAttributes,
}

/// Path attributes as YAML writes them (the speaker's `paths`, a `sartd fib` BGP publisher's
/// `attributes`); [`path_attributes`] checks them.
#[derive(Debug, Deserialize, Default, Clone, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RawAttributes {
    origin: Option<OriginValue>,
    local_pref: Option<u32>,
    med: Option<u32>,
    #[serde(default)]
    communities: Vec<String>,
    #[serde(default)]
    large_communities: Vec<String>,
    #[serde(default)]
    ext_communities: Vec<String>,
    as_path_prepend: Option<u32>,
}

/// `origin: igp|egp|incomplete` or 0-2, as sart accepts.
#[derive(Debug, Deserialize, Clone, PartialEq, Eq)]
#[serde(untagged)]
enum OriginValue {
    Name(String),
    Number(u32),
}

/// ECMP default when `multi_path: true` gives no number.
pub const DEFAULT_MAX_PATHS: usize = 8;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// 0 until set (by file, flag or the API's SetAS), as in sart.
    pub asn: u32,
    pub router_id: Ipv4Addr,
    /// Maximum ECMP paths; 1 disables multipath.
    pub max_paths: usize,
    pub fib_endpoint: Option<String>,
    pub fib_table: Option<u32>,
    pub exporter: Option<String>,
    /// The speaker's own restart time, advertised to graceful-restart neighbours, and how long
    /// the FIB keeps a previous run's routes while the RIB converges.
    pub graceful_restart: Option<GracefulRestart>,
    pub neighbors: Vec<Neighbor>,
    pub paths: Vec<OriginatedPaths>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            asn: 0,
            router_id: Ipv4Addr::UNSPECIFIED,
            max_paths: 1,
            fib_endpoint: None,
            fib_table: None,
            exporter: None,
            graceful_restart: None,
            neighbors: Vec::new(),
            paths: Vec::new(),
        }
    }
}

/// Locally originated prefixes with their attributes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginatedPaths {
    pub prefixes: Vec<IpNet>,
    pub attributes: PathSpec,
}

/// Attributes a locally originated path may carry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PathSpec {
    pub origin: bgp::Origin,
    pub local_pref: Option<u32>,
    pub med: Option<u32>,
    pub communities: Vec<Community>,
    pub large_communities: Vec<LargeCommunity>,
    pub ext_communities: Vec<ExtCommunity>,
    pub as_path_prepend: u8,
}

/// Parses and validates a YAML document.
pub fn parse(yaml: &str) -> Result<Config, ConfigError> {
    let raw: RawConfig = serde_saphyr::from_str(yaml).map_err(|e| err("config", e.to_string()))?;
    validate(raw)
}

fn ipv4(key: &str, s: &str) -> Result<Ipv4Addr, ConfigError> {
    Ipv4Addr::from_str(s).map_err(|_| err(key, format!("{s:?} is not an IPv4 address")))
}

fn validate(raw: RawConfig) -> Result<Config, ConfigError> {
    let router_id = match &raw.router_id {
        Some(s) => ipv4("router_id", s)?,
        None => Ipv4Addr::UNSPECIFIED,
    };
    let max_paths = match raw.multi_path {
        None | Some(MultiPath::Enabled(false)) => 1,
        Some(MultiPath::Enabled(true)) => DEFAULT_MAX_PATHS,
        Some(MultiPath::Max(0)) => {
            return Err(err(
                "multi_path",
                "the maximum number of paths must be at least 1",
            ));
        }
        Some(MultiPath::Max(n)) => n as usize,
    };
    if let Some(t) = raw.fib_table
        && t == 0
    {
        return Err(err("fib_table", "table 0 is not a routing table"));
    }
    let mut neighbors = Vec::new();
    let mut seen = BTreeSet::new();
    for (i, n) in raw.neighbors.into_iter().enumerate() {
        let neighbor = n
            .validate()
            .map_err(|e| e.under(&format!("neighbors[{i}]")))?;
        if !seen.insert(neighbor.address) {
            return Err(err(
                format!("neighbors[{i}].address"),
                format!("{} is configured twice", neighbor.address),
            ));
        }
        neighbors.push(neighbor);
    }
    let mut paths = Vec::new();
    for (i, p) in raw.paths.into_iter().enumerate() {
        paths.push(originated(&format!("paths[{i}]"), p)?);
    }
    let graceful_restart = raw
        .graceful_restart
        .map(|g| graceful_restart("graceful_restart", g))
        .transpose()?;
    Ok(Config {
        asn: raw.asn.unwrap_or(0),
        router_id,
        max_paths,
        fib_endpoint: raw.fib_endpoint,
        fib_table: raw.fib_table,
        exporter: raw.exporter,
        graceful_restart,
        neighbors,
        paths,
    })
}

fn originated(key: &str, p: RawPath) -> Result<OriginatedPaths, ConfigError> {
    if p.prefixes.is_empty() {
        return Err(err(format!("{key}.prefixes"), "empty list"));
    }
    let prefixes = p
        .prefixes
        .iter()
        .enumerate()
        .map(|(j, s)| {
            IpNet::from_str(s).map(|n| n.trunc()).map_err(|_| {
                err(
                    format!("{key}.prefixes[{j}]"),
                    format!("{s:?} is not a prefix (CIDR)"),
                )
            })
        })
        .collect::<Result<_, _>>()?;
    Ok(OriginatedPaths {
        prefixes,
        attributes: path_attributes(p.attributes, key)?,
    })
}

/// Checks attributes written under `key` (for error messages).
pub fn path_attributes(a: RawAttributes, key: &str) -> Result<PathSpec, ConfigError> {
    let origin_text = match &a.origin {
        None => None,
        Some(OriginValue::Name(s)) => Some(s.clone()),
        Some(OriginValue::Number(n)) => Some(n.to_string()),
    };
    let origin = match origin_text {
        None => bgp::Origin::Igp,
        Some(t) => t.parse().map_err(|e: bgp::attribute::ParseOriginError| {
            err(format!("{key}.attributes.origin"), e.to_string())
        })?,
    };
    let communities = a
        .communities
        .iter()
        .enumerate()
        .map(|(j, s)| {
            s.parse()
                .map_err(|e: bgp::attribute::community::ParseCommunityError| {
                    err(format!("{key}.attributes.communities[{j}]"), e.to_string())
                })
        })
        .collect::<Result<_, _>>()?;
    let large_communities = a
        .large_communities
        .iter()
        .enumerate()
        .map(|(j, s)| {
            s.parse()
                .map_err(|e: bgp::attribute::community::ParseCommunityError| {
                    err(
                        format!("{key}.attributes.large_communities[{j}]"),
                        e.to_string(),
                    )
                })
        })
        .collect::<Result<_, _>>()?;
    let ext_communities = a
        .ext_communities
        .iter()
        .enumerate()
        .map(|(j, s)| {
            s.parse()
                .map_err(|e: bgp::attribute::community::ParseCommunityError| {
                    err(
                        format!("{key}.attributes.ext_communities[{j}]"),
                        e.to_string(),
                    )
                })
        })
        .collect::<Result<_, _>>()?;
    let as_path_prepend = match a.as_path_prepend {
        None => 0,
        Some(n @ 0..=32) => n as u8,
        Some(n) => {
            return Err(err(
                format!("{key}.attributes.as_path_prepend"),
                format!("{n}: at most 32"),
            ));
        }
    };
    Ok(PathSpec {
        origin,
        local_pref: a.local_pref,
        med: a.med,
        communities,
        large_communities,
        ext_communities,
        as_path_prepend,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use bgp::Family;
    use bgp::fsm::Restart;
    use bgp::rib::Export;

    const SART_SAMPLE: &str = r#"
asn: 65000
router_id: 10.0.0.1
multi_path: true
neighbors:
  - name: frr
    asn: 65001
    address: 10.0.0.2
    router_id: 10.0.0.2
  - asn: 65002
    address: "fd00::2"
    router_id: 10.0.0.3
    passive: true
    hold_time: 9
    keepalive_time: 3
    send_hold_time: 20
    families: [ipv4-unicast, ipv6-unicast]
    max_prefix: 1000
paths:
  - prefixes: [10.1.0.0/24, "fd00:1::/64"]
    attributes:
      origin: igp
      local_pref: 200
      med: 10
      communities: ["65000:1"]
      large_communities: ["65000:1:2"]
"#;

    #[test]
    fn reads_sart_format_with_additions() {
        let c = parse(SART_SAMPLE).unwrap();
        assert_eq!(c.asn, 65000);
        assert_eq!(c.max_paths, DEFAULT_MAX_PATHS);
        assert_eq!(c.neighbors[0].name, "frr");
        assert_eq!(c.neighbors[0].families, vec![Family::IPV4_UNICAST]);
        assert_eq!(c.neighbors[1].name, "65002/fd00::2");
        assert!(c.neighbors[1].passive);
        assert_eq!(c.neighbors[1].keepalive_time, Some(3));
        assert_eq!(c.neighbors[1].send_hold_time, Some(20));
        assert_eq!(c.neighbors[0].send_hold_time, None);
        assert_eq!(c.paths[0].prefixes.len(), 2);
        assert_eq!(c.paths[0].attributes.local_pref, Some(200));
    }

    /// sart's names: per-neighbour `password`, `graceful_restart` and `bfd` (present =
    /// enabled, defaults filled in), top-level `graceful_restart`; a password never shows in
    /// `Debug`.
    #[test]
    fn resilience_keys() {
        let c = parse(
            r#"
asn: 65000
router_id: 10.0.0.1
graceful_restart: {restart_time: 30}
neighbors:
  - {asn: 65001, address: 10.0.0.2, password: "s3cret", graceful_restart: {}, bfd: {}}
  - {asn: 65002, address: 10.0.0.3, graceful_restart: {restart_time: 90}, bfd: {interval_ms: 100, multiplier: 5, multihop: true, auth: {type: meticulous-keyed-sha1, key_id: 7, password: "bfd-s3cret"}}}
  - {asn: 65003, address: 10.0.0.4, ttl_security: true}
"#,
        )
        .unwrap();
        assert_eq!(
            c.graceful_restart,
            Some(GracefulRestart { restart_time: 30 })
        );
        let [a, b, plain] = &c.neighbors[..] else {
            panic!("{:?}", c.neighbors)
        };
        assert_eq!(
            a.password.as_ref().map(|p| p.expose()),
            Some(&b"s3cret"[..])
        );
        assert!(!format!("{a:?}").contains("s3cret"));
        assert!(!format!("{b:?}").contains("s3cret"));
        assert_eq!((a.ttl, plain.ttl), (Ttl::Default, Ttl::Security));
        assert_eq!(
            a.graceful_restart,
            Some(GracefulRestart {
                restart_time: DEFAULT_RESTART_TIME
            })
        );
        assert_eq!(a.bfd, Some(BfdConfig::default()));
        assert_eq!(
            b.graceful_restart,
            Some(GracefulRestart { restart_time: 90 })
        );
        assert_eq!(
            b.bfd,
            Some(BfdConfig {
                interval_ms: 100,
                multiplier: 5,
                hops: bfd::Hops::Multi,
                auth: Some(BfdAuth {
                    method: bfd::Method::MeticulousKeyedSha1,
                    key: bfd::Key::new(7, b"bfd-s3cret").unwrap(),
                }),
            })
        );
        assert!(
            plain.password.is_none() && plain.graceful_restart.is_none() && plain.bfd.is_none()
        );
    }

    #[test]
    fn policy_keys() {
        let c = parse(
            r#"
asn: 65000
router_id: 10.0.0.1
neighbors:
  - asn: 65001
    address: 10.0.0.2
    max_prefix: {limit: 10, warning_only: true}
    export: originated
    import:
      - {prefix: 10.2.0.0/16, le: 32, action: deny}
      - {prefix: 10.0.0.0/8, ge: 24, le: 24}
  - {asn: 65002, address: 10.0.0.3, max_prefix: {limit: 5, restart_after: 0}}
  - {asn: 65003, address: 10.0.0.4, max_prefix: {limit: 5, restart_after: 30}}
  - {asn: 65004, address: 10.0.0.5, max_prefix: 7}
"#,
        )
        .unwrap();
        let n = &c.neighbors;
        assert_eq!(
            n[0].max_prefix,
            Some(MaxPrefix::new(10, true, None).unwrap())
        );
        assert_eq!(n[0].export, Export::Originated);
        assert_eq!(n[0].import.rules().len(), 2);
        assert!(n[0].import.permits("10.1.0.0/24".parse::<IpNet>().unwrap()));
        assert!(!n[0].import.permits("10.2.0.0/24".parse::<IpNet>().unwrap()));
        assert_eq!(n[1].max_prefix.map(|m| m.restart), Some(Restart::Never));
        assert_eq!(
            n[2].max_prefix.map(|m| m.restart),
            Some(Restart::After(std::time::Duration::from_secs(30)))
        );
        assert_eq!(n[2].max_prefix.and_then(|m| m.restart_after()), Some(30));
        // The short form keeps its old meaning: restart after the idle hold time.
        assert_eq!(
            n[3].max_prefix.map(|m| (m.limit, m.restart)),
            Some((7, Restart::IdleHold))
        );
        assert_eq!(n[3].export, Export::All);
        assert!(n[3].import.is_empty());
    }

    #[test]
    fn errors_name_the_key() {
        let cases = [
            ("router_id: 300.0.0.1", "router_id"),
            (
                "neighbors: [{asn: 65001, address: 10.0.0.256}]",
                "neighbors[0].address",
            ),
            ("neighbors: [{address: 10.0.0.2}]", "neighbors[0].asn"),
            (
                "neighbors: [{asn: 1, address: 10.0.0.2, hold_time: 2}]",
                "neighbors[0].hold_time",
            ),
            (
                "neighbors: [{asn: 1, address: 10.0.0.2, hold_time: 9, keepalive_time: 4}]",
                "neighbors[0].keepalive_time",
            ),
            (
                "neighbors: [{asn: 1, address: 10.0.0.2, send_hold_time: 0}]",
                "neighbors[0].send_hold_time",
            ),
            (
                "neighbors: [{asn: 1, address: 10.0.0.2, max_prefix: 0}]",
                "neighbors[0].max_prefix",
            ),
            (
                "neighbors: [{asn: 1, address: 10.0.0.2, export: transit}]",
                "neighbors[0].export",
            ),
            (
                "neighbors: [{asn: 1, address: 10.0.0.2, import: [{prefix: 10.0.0.0/8}, {prefix: 10.0.0.0/8, ge: 4}]}]",
                "neighbors[0].import[1]",
            ),
            (
                "neighbors: [{asn: 1, address: 10.0.0.2, import: [{prefix: 10.0.0.0/8, action: allow}]}]",
                "neighbors[0].import[0]",
            ),
            (
                "neighbors: [{asn: 1, address: 10.0.0.2, families: [ipv5]}]",
                "neighbors[0].families[0]",
            ),
            (
                "neighbors: [{asn: 1, address: 10.0.0.2}, {asn: 2, address: 10.0.0.2}]",
                "neighbors[1].address",
            ),
            ("paths: [{prefixes: [10.0.0.0/33]}]", "paths[0].prefixes[0]"),
            (
                "paths: [{prefixes: [10.0.0.0/8], attributes: {origin: bogus}}]",
                "paths[0].attributes.origin",
            ),
            (
                "paths: [{prefixes: [10.0.0.0/8], attributes: {communities: ['1:2:3']}}]",
                "paths[0].attributes.communities[0]",
            ),
            ("multi_path: 0", "multi_path"),
            (
                "neighbors: [{asn: 1, address: 10.0.0.2, password: ''}]",
                "neighbors[0].password",
            ),
            (
                "neighbors: [{asn: 1, address: 10.0.0.2, graceful_restart: {restart_time: 4096}}]",
                "neighbors[0].graceful_restart.restart_time",
            ),
            (
                "neighbors: [{asn: 1, address: 10.0.0.2, bfd: {interval_ms: 5}}]",
                "neighbors[0].bfd.interval_ms",
            ),
            (
                "neighbors: [{asn: 1, address: 10.0.0.2, bfd: {multiplier: 0}}]",
                "neighbors[0].bfd.multiplier",
            ),
            (
                "neighbors: [{asn: 1, address: 10.0.0.2, bfd: {auth: {type: md5, key_id: 1, password: x}}}]",
                "neighbors[0].bfd.auth.type",
            ),
            (
                "neighbors: [{asn: 1, address: 10.0.0.2, ebgp_multihop: 2, ttl_security: true}]",
                "neighbors[0].ttl_security",
            ),
            (
                "neighbors: [{asn: 1, address: 10.0.0.2, bfd: {auth: {type: keyed-sha1, key_id: 256, password: x}}}]",
                "neighbors[0].bfd.auth.key_id",
            ),
            (
                "neighbors: [{asn: 1, address: 10.0.0.2, bfd: {auth: {type: keyed-sha1, key_id: 1, password: 123456789012345678901}}}]",
                "neighbors[0].bfd.auth.password",
            ),
            (
                "graceful_restart: {restart_time: 0}",
                "graceful_restart.restart_time",
            ),
        ];
        for (yaml, key) in cases {
            let e = parse(yaml).unwrap_err();
            assert_eq!(e.key, key, "{yaml}: {e}");
        }
        let e = parse("asn: 1\nbogus_key: 2").unwrap_err();
        assert!(e.reason.contains("bogus_key"), "{e}");
    }
}
