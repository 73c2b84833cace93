//! The common typed description every daemon's config is generated from, and the typed state
//! every daemon's query results are parsed into.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use ipnet::IpNet;

// ------------------------------------------------------------------------------------ config

/// Address families the harness configures and queries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Family {
    Ipv4Unicast,
    Ipv6Unicast,
}

impl Family {
    pub const ALL: [Family; 2] = [Family::Ipv4Unicast, Family::Ipv6Unicast];

    /// The family of a prefix.
    pub fn of(prefix: &IpNet) -> Family {
        match prefix {
            IpNet::V4(_) => Family::Ipv4Unicast,
            IpNet::V6(_) => Family::Ipv6Unicast,
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Family::Ipv4Unicast => "ipv4-unicast",
            Family::Ipv6Unicast => "ipv6-unicast",
        })
    }
}

/// A standard community (RFC 1997), `asn:value`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Community(pub u16, pub u16);

impl Community {
    pub fn from_u32(v: u32) -> Community {
        Community((v >> 16) as u16, (v & 0xffff) as u16)
    }
}

impl fmt::Display for Community {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.0, self.1)
    }
}

/// A large community (RFC 8092), `global:local1:local2`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LargeCommunity(pub u32, pub u32, pub u32);

impl fmt::Display for LargeCommunity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.0, self.1, self.2)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Origin {
    Igp,
    Egp,
    Incomplete,
}

impl Origin {
    pub(crate) fn parse(s: &str) -> Option<Origin> {
        match s.trim().to_ascii_lowercase().as_str() {
            "igp" | "i" | "0" => Some(Origin::Igp),
            "egp" | "e" | "1" => Some(Origin::Egp),
            "incomplete" | "?" | "2" => Some(Origin::Incomplete),
            _ => None,
        }
    }

    pub(crate) fn word(self) -> &'static str {
        match self {
            Origin::Igp => "igp",
            Origin::Egp => "egp",
            Origin::Incomplete => "incomplete",
        }
    }
}

/// Attributes of a route a daemon originates.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Attributes {
    pub origin: Option<Origin>,
    pub local_pref: Option<u32>,
    pub med: Option<u32>,
    pub communities: Vec<Community>,
    pub large_communities: Vec<LargeCommunity>,
    /// ASNs prepended after the local AS (FRR `set as-path prepend`, BIRD `bgp_path.prepend`).
    pub as_path_prepend: Vec<u32>,
}

/// A route a daemon originates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    pub prefix: IpNet,
    /// `None`: the daemon's own address ("next hop self").
    pub next_hop: Option<IpAddr>,
    pub attrs: Attributes,
}

impl Route {
    pub fn new(prefix: IpNet) -> Route {
        Route {
            prefix,
            next_hop: None,
            attrs: Attributes::default(),
        }
    }

    pub fn next_hop(mut self, nh: IpAddr) -> Route {
        self.next_hop = Some(nh);
        self
    }

    pub fn community(mut self, asn: u16, value: u16) -> Route {
        self.attrs.communities.push(Community(asn, value));
        self
    }

    pub fn large_community(mut self, g: u32, l1: u32, l2: u32) -> Route {
        self.attrs.large_communities.push(LargeCommunity(g, l1, l2));
        self
    }

    pub fn local_pref(mut self, lp: u32) -> Route {
        self.attrs.local_pref = Some(lp);
        self
    }

    pub fn med(mut self, med: u32) -> Route {
        self.attrs.med = Some(med);
        self
    }

    pub fn origin(mut self, origin: Origin) -> Route {
        self.attrs.origin = Some(origin);
        self
    }

    pub fn prepend(mut self, asns: &[u32]) -> Route {
        self.attrs.as_path_prepend.extend_from_slice(asns);
        self
    }

    pub fn family(&self) -> Family {
        Family::of(&self.prefix)
    }
}

/// ADD-PATH (RFC 7911) per neighbour.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AddPath {
    pub send: bool,
    pub receive: bool,
}

/// Graceful restart (RFC 4724).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GracefulRestart {
    pub restart_time: u16,
}

/// One BGP neighbour of a daemon.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Neighbor {
    /// Protocol / peer name where the daemon uses one (BIRD, sartd); derived from the address
    /// when empty.
    pub name: String,
    pub address: IpAddr,
    pub remote_as: u32,
    /// Router id of the peer (sartd's config wants it); `None`: the peer's address if IPv4.
    pub router_id: Option<Ipv4Addr>,
    /// Interface the neighbour is reached on; required for link-local neighbour addresses.
    pub interface: Option<String>,
    pub local_address: Option<IpAddr>,
    pub passive: bool,
    /// Hold time; keepalive is `hold/3` unless given.
    pub hold_time: Option<u16>,
    pub keepalive_time: Option<u16>,
    /// Seconds between connection attempts; the harness default is short so tests are quick.
    pub connect_retry: u16,
    pub families: Vec<Family>,
    pub extended_next_hop: bool,
    pub add_path: AddPath,
    pub md5_password: Option<String>,
    pub graceful_restart: Option<GracefulRestart>,
    pub bfd: bool,
    /// BFD across routers (RFC 5883), for sessions between loopbacks; implies `bfd`.
    pub bfd_multihop: bool,
    /// BFD packets signed with SHA1 (RFC 5880 §6.7.4). BIRD has one setting per BFD protocol,
    /// so its config takes the first neighbour's.
    pub bfd_auth: Option<BfdAuth>,
    /// GTSM (RFC 5082): TTL 255 sent and required.
    pub ttl_security: bool,
    pub route_reflector_client: bool,
    pub max_prefix: Option<u32>,
    /// RFC 9687 send hold time in seconds (sartd only; the others keep their defaults).
    pub send_hold_time: Option<u16>,
    /// Keys of sartd's neighbour YAML written as given (`export: originated`, `import: [...]`):
    /// policy no other daemon's config here shares. Others ignore them.
    pub sartd_keys: Vec<String>,
}

/// RFC 5880 Keyed SHA1 (4) or Meticulous Keyed SHA1 (5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BfdAuth {
    pub meticulous: bool,
    pub key_id: u8,
    pub password: String,
}

impl Neighbor {
    /// A neighbour for `families` with harness defaults (connect retry 1 s).
    pub fn new(address: IpAddr, remote_as: u32, families: &[Family]) -> Neighbor {
        Neighbor {
            name: String::new(),
            address,
            remote_as,
            router_id: None,
            interface: None,
            local_address: None,
            passive: false,
            hold_time: None,
            keepalive_time: None,
            connect_retry: 1,
            families: families.to_vec(),
            extended_next_hop: false,
            add_path: AddPath::default(),
            md5_password: None,
            graceful_restart: None,
            bfd: false,
            bfd_multihop: false,
            bfd_auth: None,
            ttl_security: false,
            route_reflector_client: false,
            max_prefix: None,
            send_hold_time: None,
            sartd_keys: Vec::new(),
        }
    }

    /// One `key: value` line for sartd's neighbour (see [`Neighbor::sartd_keys`]).
    pub fn sartd_key(mut self, line: &str) -> Neighbor {
        self.sartd_keys.push(line.to_owned());
        self
    }

    pub fn router_id(mut self, id: Ipv4Addr) -> Neighbor {
        self.router_id = Some(id);
        self
    }

    pub fn passive(mut self) -> Neighbor {
        self.passive = true;
        self
    }

    pub fn hold_time(mut self, hold: u16) -> Neighbor {
        self.hold_time = Some(hold);
        self
    }

    pub fn send_hold_time(mut self, secs: u16) -> Neighbor {
        self.send_hold_time = Some(secs);
        self
    }

    /// Single-hop BFD (RFC 5881) with this neighbour.
    pub fn bfd(mut self) -> Neighbor {
        self.bfd = true;
        self
    }

    /// SHA1-authenticated BFD (keyed, or meticulous keyed) with this key id and password.
    pub fn bfd_auth(mut self, meticulous: bool, key_id: u8, password: &str) -> Neighbor {
        self.bfd_auth = Some(BfdAuth {
            meticulous,
            key_id,
            password: password.to_owned(),
        });
        self
    }

    /// GTSM (RFC 5082) with this neighbour.
    pub fn ttl_security(mut self) -> Neighbor {
        self.ttl_security = true;
        self
    }

    /// Multihop BFD (RFC 5883) with this neighbour.
    pub fn bfd_multihop(mut self) -> Neighbor {
        self.bfd_multihop = true;
        self.bfd()
    }

    pub fn local_address(mut self, a: IpAddr) -> Neighbor {
        self.local_address = Some(a);
        self
    }

    pub fn interface(mut self, ifname: &str) -> Neighbor {
        self.interface = Some(ifname.to_owned());
        self
    }

    pub fn named(mut self, name: &str) -> Neighbor {
        self.name = name.to_owned();
        self
    }

    /// The keepalive time that goes with the hold time (explicit, else hold/3, at least 1).
    pub fn effective_keepalive(&self) -> Option<u16> {
        self.keepalive_time
            .or(self.hold_time.map(|h| (h / 3).max(1)))
    }

    /// A name usable as an identifier in every daemon's config (`n_198_18_0_2`).
    pub fn ident(&self) -> String {
        if !self.name.is_empty() {
            return self
                .name
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                .collect();
        }
        let addr: String = self
            .address
            .to_string()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        format!("n_{addr}")
    }

    pub fn is_ibgp(&self, local_as: u32) -> bool {
        self.remote_as == local_as
    }

    /// True if the neighbour address is an IPv6 link-local address.
    pub fn is_link_local(&self) -> bool {
        matches!(self.address, IpAddr::V6(v6) if v6.segments()[0] & 0xffc0 == 0xfe80)
    }
}

/// The common description of one BGP speaker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BgpConfig {
    pub asn: u32,
    pub router_id: Ipv4Addr,
    pub neighbors: Vec<Neighbor>,
    /// Routes originated at start.
    pub routes: Vec<Route>,
    /// ECMP over equal paths (FRR `maximum-paths`, GoBGP `use-multiple-paths`, sartd
    /// `multi_path`, BIRD kernel `merge paths`).
    pub multipath: bool,
}

impl BgpConfig {
    pub fn new(asn: u32, router_id: Ipv4Addr) -> BgpConfig {
        BgpConfig {
            asn,
            router_id,
            neighbors: Vec::new(),
            routes: Vec::new(),
            multipath: false,
        }
    }

    pub fn neighbor(mut self, n: Neighbor) -> BgpConfig {
        self.neighbors.push(n);
        self
    }

    pub fn route(mut self, r: Route) -> BgpConfig {
        self.routes.push(r);
        self
    }

    pub fn multipath(mut self, on: bool) -> BgpConfig {
        self.multipath = on;
        self
    }

    /// The neighbour with this address.
    pub fn find_neighbor(&self, address: IpAddr) -> Option<&Neighbor> {
        self.neighbors.iter().find(|n| n.address == address)
    }

    /// Families used by any neighbour or any route.
    pub fn families(&self) -> Vec<Family> {
        let mut f: Vec<Family> = self
            .neighbors
            .iter()
            .flat_map(|n| n.families.iter().copied())
            .chain(self.routes.iter().map(Route::family))
            .collect();
        f.sort();
        f.dedup();
        f
    }
}

// ------------------------------------------------------------------------------------- state

/// BGP FSM state (RFC 4271 §8.2.2) as a daemon reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SessionState {
    Idle,
    Connect,
    Active,
    OpenSent,
    OpenConfirm,
    Established,
    /// Anything else the daemon says (e.g. BIRD "Down", ExaBGP "never seen").
    Other(String),
}

impl SessionState {
    /// Parses the common spellings (FRR "OpenSent", BIRD "OpenSent", GoBGP numbers are mapped
    /// by the GoBGP module).
    pub fn parse(s: &str) -> SessionState {
        match s.trim().to_ascii_lowercase().as_str() {
            "idle" => SessionState::Idle,
            "connect" => SessionState::Connect,
            "active" => SessionState::Active,
            "opensent" | "open_sent" | "open-sent" => SessionState::OpenSent,
            "openconfirm" | "open_confirm" | "open-confirm" => SessionState::OpenConfirm,
            "established" => SessionState::Established,
            _ => SessionState::Other(s.trim().to_owned()),
        }
    }
}

/// One neighbour's session as a daemon reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    pub peer: IpAddr,
    pub remote_as: Option<u32>,
    pub state: SessionState,
    /// Negotiated hold time if the daemon reports it.
    pub hold_time: Option<Duration>,
    pub remote_router_id: Option<Ipv4Addr>,
}

impl Session {
    pub fn is_established(&self) -> bool {
        self.state == SessionState::Established
    }
}

/// One path for a prefix in a daemon's RIB.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Path {
    /// Next hops as the daemon shows them (for IPv6 often global then link-local).
    pub next_hops: Vec<IpAddr>,
    /// AS path flattened (AS_SET members in order of appearance).
    pub as_path: Vec<u32>,
    pub origin: Option<Origin>,
    pub local_pref: Option<u32>,
    pub med: Option<u32>,
    pub communities: Vec<Community>,
    pub large_communities: Vec<LargeCommunity>,
    /// Selected as best.
    pub best: bool,
    /// Part of the ECMP set (the best path included) where the daemon shows it.
    pub multipath: bool,
    /// Neighbour it was learned from; `None` for locally originated paths.
    pub peer: Option<IpAddr>,
}

impl Path {
    pub fn is_local(&self) -> bool {
        self.peer.is_none()
    }

    pub fn has_community(&self, c: Community) -> bool {
        self.communities.contains(&c)
    }

    pub fn has_large_community(&self, c: LargeCommunity) -> bool {
        self.large_communities.contains(&c)
    }
}

/// A daemon's routes of one family: prefix -> paths.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rib {
    pub routes: BTreeMap<IpNet, Vec<Path>>,
}

impl Rib {
    pub fn paths(&self, prefix: &IpNet) -> &[Path] {
        self.routes.get(prefix).map(Vec::as_slice).unwrap_or(&[])
    }

    pub fn contains(&self, prefix: &IpNet) -> bool {
        !self.paths(prefix).is_empty()
    }

    /// The best path (or the only one if the daemon marks none).
    pub fn best(&self, prefix: &IpNet) -> Option<&Path> {
        let paths = self.paths(prefix);
        paths.iter().find(|p| p.best).or(if paths.len() == 1 {
            paths.first()
        } else {
            None
        })
    }

    /// A path learned from `peer`.
    pub fn from_peer(&self, prefix: &IpNet, peer: IpAddr) -> Option<&Path> {
        self.paths(prefix).iter().find(|p| p.peer == Some(peer))
    }

    /// Next hops of the ECMP set: every best or multipath path's next hops, deduplicated.
    pub fn ecmp_next_hops(&self, prefix: &IpNet) -> Vec<IpAddr> {
        let mut v: Vec<IpAddr> = self
            .paths(prefix)
            .iter()
            .filter(|p| p.best || p.multipath)
            .flat_map(|p| p.next_hops.iter().copied())
            .collect();
        v.sort();
        v.dedup();
        v
    }

    /// Prefixes with at least one path learned from a neighbour.
    pub fn received(&self) -> Vec<IpNet> {
        self.routes
            .iter()
            .filter(|(_, paths)| paths.iter().any(|p| p.peer.is_some()))
            .map(|(p, _)| *p)
            .collect()
    }

    pub(crate) fn push(&mut self, prefix: IpNet, path: Path) {
        self.routes.entry(prefix).or_default().push(path);
    }

    /// A one-line-per-prefix summary for failure messages.
    pub fn summary(&self) -> String {
        if self.routes.is_empty() {
            return "(empty RIB)".into();
        }
        let mut s = String::new();
        for (prefix, paths) in &self.routes {
            for p in paths {
                let nh: Vec<String> = p.next_hops.iter().map(ToString::to_string).collect();
                let peer = p.peer.map_or("local".to_owned(), |a| a.to_string());
                s.push_str(&format!(
                    "{prefix}{} via [{}] from {peer} as_path {:?} lp {:?} med {:?} comm [{}] lcomm [{}]\n",
                    if p.best { " *" } else { "" },
                    nh.join(" "),
                    p.as_path,
                    p.local_pref,
                    p.med,
                    p.communities.iter().map(ToString::to_string).collect::<Vec<_>>().join(" "),
                    p.large_communities.iter().map(ToString::to_string).collect::<Vec<_>>().join(" "),
                ));
            }
        }
        s
    }
}

/// Parses "65001:100" style communities.
/// Well-known names (RFC 1997, RFC 7999, RFC 8326) in the spellings FRR, BIRD and GoBGP use.
pub(crate) fn parse_community(s: &str) -> Option<Community> {
    let word = s.trim().to_ascii_lowercase().replace(['-', '_'], "");
    match word.as_str() {
        "noexport" => return Some(Community(65535, 65281)),
        "noadvertise" => return Some(Community(65535, 65282)),
        "noexportsubconfed" | "localas" => return Some(Community(65535, 65283)),
        "blackhole" => return Some(Community(65535, 666)),
        "gracefulshutdown" | "gshut" => return Some(Community(65535, 0)),
        _ => {}
    }
    let (a, b) = s.trim().split_once(':')?;
    Some(Community(a.trim().parse().ok()?, b.trim().parse().ok()?))
}

/// Parses "65001:1:2" style large communities.
pub(crate) fn parse_large_community(s: &str) -> Option<LargeCommunity> {
    let mut it = s.trim().split(':').map(|x| x.trim().parse::<u32>());
    let (Some(Ok(a)), Some(Ok(b)), Some(Ok(c)), None) =
        (it.next(), it.next(), it.next(), it.next())
    else {
        return None;
    };
    Some(LargeCommunity(a, b, c))
}

/// Flattens an AS path string like "65001 {65003,65004} 65002" into numbers.
pub(crate) fn parse_as_path_text(s: &str) -> Vec<u32> {
    s.split(|c: char| !c.is_ascii_digit())
        .filter(|t| !t.is_empty())
        .filter_map(|t| t.parse().ok())
        .collect()
}
