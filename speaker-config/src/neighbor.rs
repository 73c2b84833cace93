//! One neighbour: [`NeighborInput`] as it is written — in YAML, the gRPC API or a BGPPeer, every
//! field optional and unchecked — and [`Neighbor`], what [`NeighborInput::validate`] makes of it:
//! checked once, defaults filled in. The speaker and the BGPPeer webhook both go through it.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::str::FromStr;

use bgp::Family;
use bgp::fsm::Restart;
use bgp::rib::{Action, Export, PrefixList, PrefixRule};
use ipnet::IpNet;
use serde::Deserialize;

use super::{ConfigError, err, ipv4};

/// A neighbour as written. YAML reads into it directly (unknown keys are errors); the gRPC API
/// and the BGPPeer webhook fill it in field by field.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NeighborInput {
    pub name: Option<String>,
    pub asn: Option<u32>,
    pub address: Option<String>,
    pub router_id: Option<String>,
    pub passive: Option<bool>,
    pub hold_time: Option<u32>,
    pub keepalive_time: Option<u32>,
    pub send_hold_time: Option<u32>,
    pub families: Option<Vec<String>>,
    pub local_address: Option<String>,
    pub ebgp_multihop: Option<u32>,
    pub ttl_security: Option<bool>,
    pub max_prefix: Option<MaxPrefixInput>,
    pub export: Option<String>,
    pub import: Option<Vec<PrefixRuleInput>>,
    pub route_reflector_client: Option<bool>,
    pub password: Option<String>,
    pub graceful_restart: Option<GracefulRestartInput>,
    pub bfd: Option<BfdInput>,
}

/// `max_prefix: 1000`, or with the limit's options.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum MaxPrefixInput {
    Limit(u32),
    Full {
        limit: u32,
        #[serde(default)]
        warning_only: bool,
        restart_after: Option<u32>,
    },
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrefixRuleInput {
    pub prefix: String,
    pub ge: Option<u32>,
    pub le: Option<u32>,
    pub action: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GracefulRestartInput {
    pub restart_time: Option<u32>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BfdInput {
    pub interval_ms: Option<u32>,
    pub multiplier: Option<u32>,
    pub multihop: Option<bool>,
    pub auth: Option<BfdAuthInput>,
}

/// `auth: {type: meticulous-keyed-sha1, key_id: 1, password: "…"}`
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BfdAuthInput {
    #[serde(rename = "type")]
    pub method: String,
    pub key_id: u32,
    pub password: String,
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

/// A neighbour's hold and keepalive time that no speaker could use. The caller names the field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
enum TimerError {
    #[error("{0} s: must be 0 or 3-65535 (RFC 4271 §4.2)")]
    Hold(u32),
    #[error("{k} s exceeds a third of the hold time ({hold} s)")]
    Keepalive { k: u32, hold: u16 },
    #[error("{0} s: too large")]
    KeepaliveTooLarge(u32),
}

/// The hold time (absent: [`DEFAULT_HOLD_TIME`]) and keepalive time of a neighbour.
fn timers(hold: Option<u32>, keepalive: Option<u32>) -> Result<(u16, Option<u16>), TimerError> {
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

impl NeighborInput {
    /// The one place a neighbour's values are checked and its defaults filled in, whether it
    /// came from YAML, the gRPC API or a BGPPeer. Errors name the field as YAML does.
    pub fn validate(self) -> Result<Neighbor, ConfigError> {
        let n = self;
        let asn = n.asn.ok_or_else(|| err("asn", "missing"))?;
        if asn == 0 {
            return Err(err("asn", "AS 0 is reserved (RFC 7607)"));
        }
        let addr_s = n.address.ok_or_else(|| err("address", "missing"))?;
        let address = IpAddr::from_str(&addr_s)
            .map_err(|_| err("address", format!("{addr_s:?} is not an IP address")))?;
        let router_id = n
            .router_id
            .as_deref()
            .map(|s| ipv4("router_id", s))
            .transpose()?;
        let (hold_time, keepalive_time) = timers(n.hold_time, n.keepalive_time).map_err(|e| {
            let field = match e {
                TimerError::Hold(_) => "hold_time",
                TimerError::Keepalive { .. } | TimerError::KeepaliveTooLarge(_) => "keepalive_time",
            };
            err(field, e.to_string())
        })?;
        let send_hold_time = match n.send_hold_time {
            None => None,
            Some(t @ 1..=65535) => Some(t as u16),
            Some(t) => {
                return Err(err(
                    "send_hold_time",
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
            Some(v) if v.is_empty() => return Err(err("families", "empty list")),
            Some(v) => v
                .iter()
                .enumerate()
                .map(|(j, f)| {
                    Family::from_name(f).ok_or_else(|| {
                        err(
                            format!("families[{j}]"),
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
                IpAddr::from_str(s)
                    .map_err(|_| err("local_address", format!("{s:?} is not an IP address")))
            })
            .transpose()?;
        if let Some(l) = local_address
            && l.is_ipv4() != address.is_ipv4()
        {
            return Err(err(
                "local_address",
                "must be of the same family as address",
            ));
        }
        let ttl = match (n.ebgp_multihop, n.ttl_security.unwrap_or(false)) {
            (None, false) => Ttl::Default,
            (None, true) => Ttl::Security,
            (Some(_), true) => {
                return Err(err(
                    "ttl_security",
                    "excludes ebgp_multihop: GTSM is for directly connected peers",
                ));
            }
            (Some(t @ 1..=255), false) => Ttl::Fixed(t as u8),
            (Some(t), false) => {
                return Err(err("ebgp_multihop", format!("TTL {t} is not in 1-255")));
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
                        MaxPrefixInput::Limit(l) => (l, false, None),
                        MaxPrefixInput::Full {
                            limit,
                            warning_only,
                            restart_after,
                        } => (limit, warning_only, restart_after),
                    };
                    MaxPrefix::new(limit, warning_only, restart_after)
                        .map_err(|e| err("max_prefix", e))
                })
                .transpose()?,
            export: n
                .export
                .as_deref()
                .map(|e| export_from_name(e).map_err(|e| err("export", e)))
                .transpose()?
                .unwrap_or_default(),
            import: PrefixList::new(
                n.import
                    .unwrap_or_default()
                    .iter()
                    .enumerate()
                    .map(|(j, r)| {
                        prefix_rule(&r.prefix, r.ge, r.le, r.action.as_deref())
                            .map_err(|e| err(format!("import[{j}]"), e))
                    })
                    .collect::<Result<_, _>>()?,
            ),
            route_reflector_client: n.route_reflector_client.unwrap_or(false),
            password: n
                .password
                .map(|p| Password::new(p).map_err(|e| err("password", e)))
                .transpose()?,
            graceful_restart: n
                .graceful_restart
                .map(|g| graceful_restart("graceful_restart", g))
                .transpose()?,
            bfd: n.bfd.map(|b| bfd("bfd", b)).transpose()?,
        })
    }
}

pub(super) fn graceful_restart(
    key: &str,
    g: GracefulRestartInput,
) -> Result<GracefulRestart, ConfigError> {
    GracefulRestart::new(g.restart_time).map_err(|e| err(format!("{key}.restart_time"), e))
}

fn bfd(key: &str, b: BfdInput) -> Result<BfdConfig, ConfigError> {
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
