//! The speaker's YAML configuration: sart's format (`asn`, `router_id`, `neighbors`, `multi_path`,
//! `paths`, `fib_endpoint`, `fib_table`, `exporter`) plus optional per-neighbour keys.
//!
//! Parsing is two steps: serde reads the YAML into loose `Raw*` types (unknown keys are errors),
//! then `validate` turns them into typed values, naming the key of anything wrong.

use std::collections::BTreeSet;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::str::FromStr;

use bgp::Family;
use bgp::attribute::{Community, ExtCommunity, LargeCommunity};
use bgp::fsm::Restart;
use bgp::rib::{Action, Export, PrefixList, PrefixRule};
use ipnet::IpNet;
use serde::Deserialize;

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
    graceful_restart: Option<RawGracefulRestart>,
    #[serde(default)]
    neighbors: Vec<RawNeighbor>,
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
struct RawNeighbor {
    name: Option<String>,
    asn: Option<u32>,
    address: Option<String>,
    router_id: Option<String>,
    passive: Option<bool>,
    hold_time: Option<u32>,
    keepalive_time: Option<u32>,
    send_hold_time: Option<u32>,
    families: Option<Vec<String>>,
    local_address: Option<String>,
    ebgp_multihop: Option<u32>,
    ttl_security: Option<bool>,
    max_prefix: Option<RawMaxPrefix>,
    export: Option<String>,
    import: Option<Vec<RawPrefixRule>>,
    route_reflector_client: Option<bool>,
    password: Option<String>,
    graceful_restart: Option<RawGracefulRestart>,
    bfd: Option<RawBfd>,
}

/// `max_prefix: 1000`, or with the limit's options.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawMaxPrefix {
    Limit(u32),
    Full {
        limit: u32,
        #[serde(default)]
        warning_only: bool,
        restart_after: Option<u32>,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPrefixRule {
    prefix: String,
    ge: Option<u32>,
    le: Option<u32>,
    action: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGracefulRestart {
    restart_time: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBfd {
    interval_ms: Option<u32>,
    multiplier: Option<u32>,
    multihop: Option<bool>,
    auth: Option<RawBfdAuth>,
}

/// `auth: {type: meticulous-keyed-sha1, key_id: 1, password: "…"}`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBfdAuth {
    #[serde(rename = "type")]
    method: String,
    key_id: u32,
    password: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPath {
    #[serde(default)]
    prefixes: Vec<String>,
    #[serde(default)]
    attributes: RawAttributes,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawAttributes {
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
#[derive(Debug, Deserialize, Clone)]
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

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Neighbor {
    pub name: String,
    pub asn: u32,
    pub address: IpAddr,
    pub router_id: Option<Ipv4Addr>,
    pub passive: bool,
    pub hold_time: u16,
    pub keepalive_time: Option<u16>,
    /// Seconds the peer may read nothing before the session is dropped (RFC 9687); `None`:
    /// twice the hold time, at least 8 minutes.
    pub send_hold_time: Option<u16>,
    pub families: Vec<Family>,
    pub local_address: Option<IpAddr>,
    pub ttl: Ttl,
    pub max_prefix: Option<MaxPrefix>,
    /// What the peer is sent: everything selected, or only what this speaker originates.
    pub export: Export,
    /// Which of the peer's routes are accepted; empty: all.
    pub import: PrefixList,
    pub route_reflector_client: bool,
    /// TCP MD5 signature key (RFC 2385).
    pub password: Option<Password>,
    /// Graceful restart (RFC 4724) with this neighbour; present = enabled.
    pub graceful_restart: Option<GracefulRestart>,
    /// A BFD session (RFC 5880/5881) tied to this BGP session; present = enabled.
    pub bfd: Option<BfdConfig>,
}

/// The IP TTL (hop limit) of a session's packets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Ttl {
    /// The system's.
    #[default]
    Default,
    /// `ebgp_multihop: N`: sent with N.
    Fixed(u8),
    /// `ttl_security: true` (GTSM, RFC 5082): sent with 255, and only segments that arrive with
    /// 255 are taken, so only a directly connected peer reaches the session, whatever it
    /// forges.
    Security,
}

/// A limit on the routes accepted from a peer (after the import list): past it, Cease / Maximum
/// Number of Prefixes Reached (RFC 4486 §4), or only a warning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaxPrefix {
    pub limit: u32,
    /// Log and count it; keep the session.
    pub warning_only: bool,
    /// When the closed session starts again.
    pub restart: Restart,
}

impl MaxPrefix {
    /// From the limit and the seconds before a restart: absent, after the idle hold time (as
    /// after any failure); 0, only when reset by an operator (FRR's default); else that long.
    pub fn new(
        limit: u32,
        warning_only: bool,
        restart_after: Option<u32>,
    ) -> Result<MaxPrefix, String> {
        if limit == 0 {
            return Err("limit 0 would refuse every route: at least 1".into());
        }
        let restart = match restart_after {
            None => Restart::IdleHold,
            Some(0) => Restart::Never,
            Some(s @ 1..=86_400) => Restart::After(std::time::Duration::from_secs(s.into())),
            Some(s) => return Err(format!("restart after {s} s: at most 86400 (a day)")),
        };
        Ok(MaxPrefix {
            limit,
            warning_only,
            restart,
        })
    }

    /// The seconds form [`MaxPrefix::new`] takes.
    pub fn restart_after(&self) -> Option<u32> {
        match self.restart {
            Restart::IdleHold => None,
            Restart::Never => Some(0),
            Restart::After(d) => Some(u32::try_from(d.as_secs()).unwrap_or(u32::MAX)),
        }
    }
}

/// `originated` or `all`.
fn export_from_name(s: &str) -> Result<Export, String> {
    match s {
        "all" => Ok(Export::All),
        "originated" => Ok(Export::Originated),
        _ => Err(format!("{s:?} is not one of all, originated")),
    }
}

/// One prefix-list rule as YAML, gRPC and BGPPeer write it; `action` is `permit` (default)
/// or `deny`.
pub fn prefix_rule(
    prefix: &str,
    ge: Option<u32>,
    le: Option<u32>,
    action: Option<&str>,
) -> Result<PrefixRule, String> {
    let net = IpNet::from_str(prefix).map_err(|_| format!("{prefix:?} is not a CIDR prefix"))?;
    let len = |v: Option<u32>, what: &str| {
        v.map(|n| u8::try_from(n).map_err(|_| format!("{prefix}: {what} {n} is too large")))
            .transpose()
    };
    let action = match action {
        None | Some("permit") => Action::Permit,
        Some("deny") => Action::Deny,
        Some(a) => return Err(format!("action {a:?} is not one of permit, deny")),
    };
    PrefixRule::new(net, len(ge, "ge")?, len(le, "le")?, action).map_err(|e| e.to_string())
}

/// RFC 4724 restart time: how long a peer should keep our routes while we restart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GracefulRestart {
    /// Seconds, 1-4095 (12 bits in the capability).
    pub restart_time: u16,
}

/// RFC 4271 §10's suggested hold time, as FRR, BIRD and GoBGP use.
pub const DEFAULT_HOLD_TIME: u16 = 90;

/// A neighbour's hold and keepalive time that no speaker could use. Callers name the field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TimerError {
    #[error("{0} s: must be 0 or 3-65535 (RFC 4271 §4.2)")]
    Hold(u32),
    #[error("{k} s exceeds a third of the hold time ({hold} s)")]
    Keepalive { k: u32, hold: u16 },
    #[error("{0} s: too large")]
    KeepaliveTooLarge(u32),
}

/// The hold time (absent: [`DEFAULT_HOLD_TIME`]) and keepalive time of a neighbour, checked
/// once for YAML, the gRPC API and the BGPPeer webhook.
pub fn timers(hold: Option<u32>, keepalive: Option<u32>) -> Result<(u16, Option<u16>), TimerError> {
    let hold = match hold {
        None => DEFAULT_HOLD_TIME,
        Some(h) if h == 1 || h == 2 || h > 65535 => return Err(TimerError::Hold(h)),
        Some(h) => h as u16,
    };
    let keepalive = match keepalive {
        None => None,
        Some(k) if hold > 0 && k > u32::from(hold) / 3 => {
            return Err(TimerError::Keepalive { k, hold });
        }
        Some(k) => Some(u16::try_from(k).map_err(|_| TimerError::KeepaliveTooLarge(k))?),
    };
    Ok((hold, keepalive))
}

/// Default restart time, as FRR and BIRD use.
pub const DEFAULT_RESTART_TIME: u16 = 120;

/// BFD timers: desired transmit and required receive interval, and the detect multiplier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BfdConfig {
    pub interval_ms: u32,
    pub multiplier: u8,
    /// Multihop (RFC 5883) for peers that are not directly connected, such as a router's
    /// loopback: FRR picks it for iBGP over loopbacks, BIRD for every `multihop` BGP peer.
    pub hops: bfd::Hops,
    /// RFC 5880 §6.7.4; `None`: unauthenticated.
    pub auth: Option<BfdAuth>,
}

/// The key's `Debug` never shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BfdAuth {
    pub method: bfd::Method,
    pub key: bfd::Key,
}

impl BfdAuth {
    /// Errors name the key.
    pub fn new(
        method: bfd::Method,
        key_id: u32,
        password: &str,
    ) -> Result<BfdAuth, (&'static str, String)> {
        let id = u8::try_from(key_id)
            .map_err(|_| ("key_id", format!("{key_id}: must be 0-255 (RFC 5880 §4.4)")))?;
        let key =
            bfd::Key::new(id, password.as_bytes()).map_err(|e| ("password", e.to_string()))?;
        Ok(BfdAuth { method, key })
    }
}

impl Default for BfdConfig {
    fn default() -> Self {
        BfdConfig {
            interval_ms: 300,
            multiplier: 3,
            hops: bfd::Hops::Single,
            auth: None,
        }
    }
}

/// A TCP MD5 key. Its `Debug` never shows the secret, so it cannot reach a log line.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    /// Longest key the kernel takes (`TCP_MD5SIG_MAXKEYLEN`).
    pub const MAX_LEN: usize = 80;

    pub fn new(s: impl Into<String>) -> Result<Password, String> {
        let s = s.into();
        if s.is_empty() {
            return Err("empty password".into());
        }
        if s.len() > Password::MAX_LEN {
            return Err(format!(
                "{} octets: TCP MD5 keys are at most {} octets",
                s.len(),
                Password::MAX_LEN
            ));
        }
        Ok(Password(s))
    }

    pub fn expose(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(****)")
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
        let neighbor = neighbor(&format!("neighbors[{i}]"), n)?;
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

fn neighbor(key: &str, n: RawNeighbor) -> Result<Neighbor, ConfigError> {
    let asn = n.asn.ok_or_else(|| err(format!("{key}.asn"), "missing"))?;
    if asn == 0 {
        return Err(err(format!("{key}.asn"), "AS 0 is reserved (RFC 7607)"));
    }
    let addr_s = n
        .address
        .ok_or_else(|| err(format!("{key}.address"), "missing"))?;
    let address = IpAddr::from_str(&addr_s).map_err(|_| {
        err(
            format!("{key}.address"),
            format!("{addr_s:?} is not an IP address"),
        )
    })?;
    let router_id = n
        .router_id
        .as_deref()
        .map(|s| ipv4(&format!("{key}.router_id"), s))
        .transpose()?;
    let (hold_time, keepalive_time) = timers(n.hold_time, n.keepalive_time).map_err(|e| {
        let field = match e {
            TimerError::Hold(_) => "hold_time",
            TimerError::Keepalive { .. } | TimerError::KeepaliveTooLarge(_) => "keepalive_time",
        };
        err(format!("{key}.{field}"), e.to_string())
    })?;
    let send_hold_time = match n.send_hold_time {
        None => None,
        Some(t @ 1..=65535) => Some(t as u16),
        Some(t) => {
            return Err(err(
                format!("{key}.send_hold_time"),
                format!("{t} s: must be 1-65535 (RFC 9687)"),
            ));
        }
    };
    let families = match n.families {
        None => vec![if address.is_ipv4() {
            Family::IPV4_UNICAST
        } else {
            Family::IPV6_UNICAST
        }],
        Some(v) if v.is_empty() => return Err(err(format!("{key}.families"), "empty list")),
        Some(v) => v
            .iter()
            .enumerate()
            .map(|(j, f)| {
                Family::from_name(f).ok_or_else(|| {
                    err(
                        format!("{key}.families[{j}]"),
                        format!("{f:?} is not one of ipv4-unicast, ipv6-unicast"),
                    )
                })
            })
            .collect::<Result<_, _>>()?,
    };
    let local_address = n
        .local_address
        .as_deref()
        .map(|s| {
            IpAddr::from_str(s).map_err(|_| {
                err(
                    format!("{key}.local_address"),
                    format!("{s:?} is not an IP address"),
                )
            })
        })
        .transpose()?;
    if let Some(l) = local_address
        && l.is_ipv4() != address.is_ipv4()
    {
        return Err(err(
            format!("{key}.local_address"),
            "must be of the same family as address",
        ));
    }
    let ttl = match (n.ebgp_multihop, n.ttl_security.unwrap_or(false)) {
        (None, false) => Ttl::Default,
        (None, true) => Ttl::Security,
        (Some(_), true) => {
            return Err(err(
                format!("{key}.ttl_security"),
                "excludes ebgp_multihop: GTSM is for directly connected peers",
            ));
        }
        (Some(t @ 1..=255), false) => Ttl::Fixed(t as u8),
        (Some(t), false) => {
            return Err(err(
                format!("{key}.ebgp_multihop"),
                format!("TTL {t} is not in 1-255"),
            ));
        }
    };
    Ok(Neighbor {
        name: n.name.unwrap_or_else(|| format!("{asn}/{address}")),
        asn,
        address,
        router_id,
        passive: n.passive.unwrap_or(false),
        hold_time,
        keepalive_time,
        send_hold_time,
        families,
        local_address,
        ttl,
        max_prefix: n
            .max_prefix
            .map(|m| {
                let (limit, warning_only, restart_after) = match m {
                    RawMaxPrefix::Limit(l) => (l, false, None),
                    RawMaxPrefix::Full {
                        limit,
                        warning_only,
                        restart_after,
                    } => (limit, warning_only, restart_after),
                };
                MaxPrefix::new(limit, warning_only, restart_after)
                    .map_err(|e| err(format!("{key}.max_prefix"), e))
            })
            .transpose()?,
        export: n
            .export
            .as_deref()
            .map(|e| export_from_name(e).map_err(|e| err(format!("{key}.export"), e)))
            .transpose()?
            .unwrap_or_default(),
        import: PrefixList::new(
            n.import
                .unwrap_or_default()
                .iter()
                .enumerate()
                .map(|(j, r)| {
                    prefix_rule(&r.prefix, r.ge, r.le, r.action.as_deref())
                        .map_err(|e| err(format!("{key}.import[{j}]"), e))
                })
                .collect::<Result<_, _>>()?,
        ),
        route_reflector_client: n.route_reflector_client.unwrap_or(false),
        password: n
            .password
            .map(|p| Password::new(p).map_err(|e| err(format!("{key}.password"), e)))
            .transpose()?,
        graceful_restart: n
            .graceful_restart
            .map(|g| graceful_restart(&format!("{key}.graceful_restart"), g))
            .transpose()?,
        bfd: n.bfd.map(|b| bfd(&format!("{key}.bfd"), b)).transpose()?,
    })
}

fn graceful_restart(key: &str, g: RawGracefulRestart) -> Result<GracefulRestart, ConfigError> {
    GracefulRestart::new(g.restart_time).map_err(|e| err(format!("{key}.restart_time"), e))
}

fn bfd(key: &str, b: RawBfd) -> Result<BfdConfig, ConfigError> {
    let mut c = BfdConfig::new(b.interval_ms, b.multiplier, b.multihop)
        .map_err(|(k, e)| err(format!("{key}.{k}"), e))?;
    if let Some(a) = b.auth {
        let method = bfd::Method::from_name(&a.method).ok_or_else(|| {
            err(
                format!("{key}.auth.type"),
                format!("{:?}: keyed-sha1 or meticulous-keyed-sha1", a.method),
            )
        })?;
        c.auth = Some(
            BfdAuth::new(method, a.key_id, &a.password)
                .map_err(|(k, e)| err(format!("{key}.auth.{k}"), e))?,
        );
    }
    Ok(c)
}

impl GracefulRestart {
    /// `None` is the default restart time.
    pub fn new(restart_time: Option<u32>) -> Result<GracefulRestart, String> {
        match restart_time {
            None => Ok(GracefulRestart {
                restart_time: DEFAULT_RESTART_TIME,
            }),
            Some(t @ 1..=4095) => Ok(GracefulRestart {
                restart_time: t as u16,
            }),
            Some(t) => Err(format!("{t} s: must be 1-4095 (RFC 4724 §3)")),
        }
    }
}

impl BfdConfig {
    /// `None`s are the defaults. Intervals below 10 ms would flood the peer; above a minute BFD
    /// detects nothing BGP's hold timer would not. Errors name the key.
    pub fn new(
        interval_ms: Option<u32>,
        multiplier: Option<u32>,
        multihop: Option<bool>,
    ) -> Result<BfdConfig, (&'static str, String)> {
        let d = BfdConfig::default();
        let interval_ms = match interval_ms {
            None => d.interval_ms,
            Some(i @ 10..=60_000) => i,
            Some(i) => return Err(("interval_ms", format!("{i} ms: must be 10-60000"))),
        };
        let multiplier = match multiplier {
            None => d.multiplier,
            Some(m @ 1..=255) => m as u8,
            Some(m) => return Err(("multiplier", format!("{m}: must be 1-255 (RFC 5880 §4.1)"))),
        };
        Ok(BfdConfig {
            interval_ms,
            multiplier,
            hops: if multihop.unwrap_or(false) {
                bfd::Hops::Multi
            } else {
                bfd::Hops::Single
            },
            auth: None,
        })
    }
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
    let a = p.attributes;
    let origin = match a.origin {
        None => bgp::Origin::Igp,
        Some(OriginValue::Name(s)) => match s.as_str() {
            "igp" | "0" => bgp::Origin::Igp,
            "egp" | "1" => bgp::Origin::Egp,
            "incomplete" | "2" => bgp::Origin::Incomplete,
            _ => {
                return Err(err(
                    format!("{key}.attributes.origin"),
                    format!("{s:?}: use igp, egp or incomplete"),
                ));
            }
        },
        Some(OriginValue::Number(0)) => bgp::Origin::Igp,
        Some(OriginValue::Number(1)) => bgp::Origin::Egp,
        Some(OriginValue::Number(2)) => bgp::Origin::Incomplete,
        Some(OriginValue::Number(n)) => {
            return Err(err(
                format!("{key}.attributes.origin"),
                format!("{n}: use 0-2"),
            ));
        }
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
            parse_ext_community(s).ok_or_else(|| {
                err(
                    format!("{key}.attributes.ext_communities[{j}]"),
                    format!("{s:?}: use rt:ASN:VALUE or 16 hex digits"),
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
    Ok(OriginatedPaths {
        prefixes,
        attributes: PathSpec {
            origin,
            local_pref: a.local_pref,
            med: a.med,
            communities,
            large_communities,
            ext_communities,
            as_path_prepend,
        },
    })
}

/// `rt:65000:100` (2-octet AS route target) or 16 hex digits.
pub fn parse_ext_community(s: &str) -> Option<ExtCommunity> {
    if let Some(rest) = s.strip_prefix("rt:") {
        let (a, v) = rest.split_once(':')?;
        return Some(ExtCommunity::route_target(a.parse().ok()?, v.parse().ok()?));
    }
    let hex = s.strip_prefix("0x").unwrap_or(s);
    if hex.len() != 16 {
        return None;
    }
    let n = u64::from_str_radix(hex, 16).ok()?;
    Some(ExtCommunity(n.to_be_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

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
