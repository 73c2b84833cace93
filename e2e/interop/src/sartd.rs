//! `sartd bgp`, the device under test: writes its YAML config (sart format) and runs
//! `sartd bgp -f FILE --api-addr 127.0.0.1:PORT` inside a namespace.
//!
//! State queries and runtime announce/withdraw go through the `sart` CLI
//! (`sart -o json bgp -e ADDR neighbor list`, `global rib get|add|del`); without the CLI binary
//! they return [`Error::NotAvailable`] rather than anything made up. See README.md.

use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;

use crate::daemon::{Daemon, DaemonKind, Instance};
use crate::error::{Error, Result};
use serde_json::Value;

use crate::model::{
    BgpConfig, Family, Neighbor, Origin, Path as RibPath, Rib, Route, Session, SessionState,
    parse_community, parse_large_community,
};
use crate::netns::Netns;

/// Overrides the `sartd` binary.
pub const SARTD_BIN_ENV: &str = "SARTD_BIN";
/// Overrides the `sart` CLI binary.
pub const SART_BIN_ENV: &str = "SART_BIN";
/// sartd's default API port.
pub const DEFAULT_API_PORT: u16 = 5000;
const STARTUP: Duration = Duration::from_secs(15);

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"))
}

/// `$SARTD_BIN`, else `<workspace>/target/debug/sartd` (build it first: `cargo build -p sartd`).
pub fn sartd_binary() -> PathBuf {
    std::env::var_os(SARTD_BIN_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(|| target_dir().join("debug/sartd"))
}

/// `$SART_BIN`, else `<workspace>/target/debug/sart` (`cargo build -p sart`).
pub fn sart_binary() -> PathBuf {
    std::env::var_os(SART_BIN_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(|| target_dir().join("debug/sart"))
}

/// A `sartd bgp` instance.
#[derive(Debug)]
pub struct Sartd {
    inst: Instance,
    api_port: u16,
    /// Top-level YAML lines appended to the rendered config (`fib_table: 254`, ...): sartd's
    /// own knobs the common model has no word for.
    extra: String,
}

impl Sartd {
    pub fn start(netns: &Netns, name: &str, config: BgpConfig) -> Result<Sartd> {
        Sartd::start_with_port(netns, name, config, DEFAULT_API_PORT)
    }

    pub fn start_with_port(
        netns: &Netns,
        name: &str,
        config: BgpConfig,
        api_port: u16,
    ) -> Result<Sartd> {
        Sartd::start_with(netns, name, config, api_port, "")
    }

    /// [`Sartd::start_with_port`] with top-level YAML lines added to the config.
    pub fn start_with(
        netns: &Netns,
        name: &str,
        config: BgpConfig,
        api_port: u16,
        extra: &str,
    ) -> Result<Sartd> {
        let inst = Instance::new(netns, name, config)?;
        let mut s = Sartd {
            inst,
            api_port,
            extra: extra.to_owned(),
        };
        s.start()?;
        Ok(s)
    }

    /// SIGKILL, as a crash would: no NOTIFICATION, no clean-up. `start` brings it back.
    pub fn kill(&mut self) {
        self.inst.kill();
    }

    /// The API address inside the namespace.
    pub fn api_addr(&self) -> String {
        format!("127.0.0.1:{}", self.api_port)
    }

    /// `sart -o json bgp -e ADDR ARGS...` inside the namespace (e.g. `["neighbor", "list"]`).
    pub fn sart(&self, args: &[&str]) -> Result<String> {
        let bin = sart_binary();
        if !bin.exists() {
            return Err(self.not_yet(&format!(
                "`sart bgp {}` ({} not found: `cargo build -p sart` or set {SART_BIN_ENV})",
                args.join(" "),
                bin.display()
            )));
        }
        let addr = self.api_addr();
        let bin = bin.to_string_lossy();
        let mut argv: Vec<&str> = vec![&bin, "-o", "json", "bgp", "-e", &addr];
        argv.extend_from_slice(args);
        self.inst.netns.exec(&argv)
    }

    /// [`Sartd::sart`] parsed as JSON.
    pub fn sart_json(&self, args: &[&str]) -> Result<Value> {
        let out = self.sart(args)?;
        serde_json::from_str(&out)
            .map_err(|e| Error::parse(&self.inst.name, format!("sart bgp {}", args.join(" ")), e))
    }

    /// `sart -o json bgp neighbor get ADDR`: one neighbour with its counters (`sendCounter`,
    /// `receiveCounter`: `{open, update, keepalive, notification, routeRefresh}`), `lastError`,
    /// `prefixesReceived`, `prefixesAdvertised`.
    pub fn neighbor(&self, addr: IpAddr) -> Result<Value> {
        self.sart_json(&["neighbor", "get", &addr.to_string()])
    }

    fn listening(&self) -> bool {
        let filter = format!("sport = :{}", self.api_port);
        self.inst
            .netns
            .exec(&["ss", "-Hltn", &filter])
            .is_ok_and(|out| !out.trim().is_empty())
    }

    fn not_yet(&self, what: &str) -> Error {
        Error::NotAvailable {
            daemon: self.inst.name.clone(),
            what: what.to_owned(),
            why: "the sart CLI is needed for sartd's state".into(),
        }
    }
}

/// The sart YAML config; `asn: 0` leaves `asn` out. Per-neighbour keys beyond the original format (`hold_time`,
/// `keepalive_time`, `families`, `local_address`, `max_prefix`, `route_reflector_client`) are
/// written only when set, so a plain config is exactly the original format.
pub fn render_config(cfg: &BgpConfig) -> Result<String> {
    let mut s = String::new();
    // AS 0 stands for "not in the file": the speaker waits for SetAS (sart's agent does that).
    if cfg.asn != 0 {
        let _ = writeln!(s, "asn: {}", cfg.asn);
    }
    let _ = writeln!(s, "router_id: {}", cfg.router_id);
    if cfg.multipath {
        s.push_str("multi_path: true\n");
    }
    s.push_str(if cfg.neighbors.is_empty() {
        "neighbors: []\n"
    } else {
        "neighbors:\n"
    });
    for n in &cfg.neighbors {
        neighbor_yaml(&mut s, n)?;
    }
    if !cfg.routes.is_empty() {
        s.push_str("paths:\n");
        for r in &cfg.routes {
            let _ = writeln!(s, "  - prefixes: [\"{}\"]", r.prefix);
            let attrs = path_attributes(cfg.asn, r)?;
            if !attrs.is_empty() {
                s.push_str("    attributes:\n");
                for (k, v) in attrs {
                    let _ = writeln!(s, "      {k}: {v}");
                }
            }
        }
    }
    Ok(s)
}

/// A route's attributes as sart keys and YAML values (`origin`, `local_pref`, `med`,
/// `communities`, `large_communities`, `as_path_prepend` = how many times the local AS).
fn path_attributes(local_as: u32, r: &Route) -> Result<Vec<(&'static str, String)>> {
    let a = &r.attrs;
    if r.next_hop.is_some() {
        return Err(Error::unsupported(
            "sartd",
            format!("{}: an explicit next hop", r.prefix),
        ));
    }
    if a.as_path_prepend.iter().any(|asn| *asn != local_as) {
        return Err(Error::unsupported(
            "sartd",
            format!("{}: sart prepends only its own AS ({local_as})", r.prefix),
        ));
    }
    let quoted = |v: Vec<String>| {
        let q: Vec<String> = v.into_iter().map(|x| format!("\"{x}\"")).collect();
        format!("[{}]", q.join(", "))
    };
    let mut out = Vec::new();
    if let Some(o) = a.origin {
        out.push(("origin", o.word().to_owned()));
    }
    if let Some(lp) = a.local_pref {
        out.push(("local_pref", lp.to_string()));
    }
    if let Some(med) = a.med {
        out.push(("med", med.to_string()));
    }
    if !a.communities.is_empty() {
        out.push((
            "communities",
            quoted(a.communities.iter().map(ToString::to_string).collect()),
        ));
    }
    if !a.large_communities.is_empty() {
        out.push((
            "large_communities",
            quoted(
                a.large_communities
                    .iter()
                    .map(ToString::to_string)
                    .collect(),
            ),
        ));
    }
    if !a.as_path_prepend.is_empty() {
        out.push(("as_path_prepend", a.as_path_prepend.len().to_string()));
    }
    Ok(out)
}

fn afi(f: Family) -> &'static str {
    match f {
        Family::Ipv4Unicast => "ipv4",
        Family::Ipv6Unicast => "ipv6",
    }
}

/// A YAML attribute as `sart bgp global rib add -t KEY=VALUE` items.
fn cli_attribute(key: &str, yaml_value: &str) -> Vec<String> {
    let list = |v: &str| -> Vec<String> {
        v.trim_matches(['[', ']'])
            .split(',')
            .map(|x| x.trim().trim_matches('"').to_owned())
            .filter(|x| !x.is_empty())
            .collect()
    };
    match key {
        "communities" => list(yaml_value)
            .into_iter()
            .map(|c| format!("community={c}"))
            .collect(),
        "large_communities" => list(yaml_value)
            .into_iter()
            .map(|c| format!("large_community={c}"))
            .collect(),
        "as_path_prepend" => vec![format!("prepend={yaml_value}")],
        other => vec![format!("{other}={yaml_value}")],
    }
}

/// `sart -o json bgp neighbor list`: `{"peers": [{address, asn, routerId, state, holdTime, ...}]}`.
pub(crate) fn parse_peers(v: &Value) -> Vec<Session> {
    v["peers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| {
            let peer: IpAddr = p["address"].as_str()?.parse().ok()?;
            let state = SessionState::parse(p["state"].as_str().unwrap_or("Unknown"));
            Some(Session {
                peer,
                remote_as: p["asn"].as_u64().and_then(|a| u32::try_from(a).ok()),
                hold_time: p["holdTime"]
                    .as_u64()
                    .filter(|h| *h > 0 && state == SessionState::Established)
                    .map(Duration::from_secs),
                remote_router_id: p["routerId"].as_str().and_then(|s| s.parse().ok()),
                state,
            })
        })
        .collect()
}

/// `sart -o json bgp global rib get`: `{"paths": [{nlri, nextHops, segments, origin, localPref,
/// med, communities, largeCommunities, peerAddr, best, multipath}]}`. Protobuf has no "absent"
/// for numbers: LOCAL_PREF and MED of 0 read as absent.
pub(crate) fn parse_paths(daemon: &str, v: &Value) -> Result<Rib> {
    let u32_of = |v: &Value| {
        v.as_u64()
            .and_then(|x| u32::try_from(x).ok())
            .filter(|x| *x != 0)
    };
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|x| x.as_str().map(str::to_owned))
            .collect()
    };
    let mut rib = Rib::default();
    for p in v["paths"].as_array().into_iter().flatten() {
        let nlri = p["nlri"].as_str().unwrap_or("");
        let prefix: IpNet = nlri.parse().map_err(|e| {
            Error::parse(
                daemon,
                "sart bgp global rib get",
                format!("nlri {nlri:?}: {e}"),
            )
        })?;
        let path = RibPath {
            next_hops: strings(&p["nextHops"])
                .iter()
                .filter_map(|s| s.parse().ok())
                .collect(),
            as_path: p["segments"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|s| {
                    s["elm"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|x| x.as_u64().and_then(|a| u32::try_from(a).ok()))
                })
                .collect(),
            origin: p["origin"]
                .as_u64()
                .and_then(|o| Origin::parse(&o.to_string())),
            local_pref: u32_of(&p["localPref"]),
            med: u32_of(&p["med"]),
            communities: strings(&p["communities"])
                .iter()
                .filter_map(|c| parse_community(c))
                .collect(),
            large_communities: strings(&p["largeCommunities"])
                .iter()
                .filter_map(|c| parse_large_community(c))
                .collect(),
            best: p["best"].as_bool().unwrap_or(false),
            multipath: p["multipath"].as_bool().unwrap_or(false)
                || p["best"].as_bool().unwrap_or(false),
            peer: p["peerAddr"]
                .as_str()
                .and_then(|s| s.parse::<IpAddr>().ok())
                .filter(|a| !a.is_unspecified()),
        };
        rib.push(prefix, path);
    }
    Ok(rib)
}

fn neighbor_yaml(s: &mut String, n: &Neighbor) -> Result<()> {
    let router_id = match (n.router_id, n.address) {
        (Some(id), _) => id,
        (None, IpAddr::V4(v4)) => v4,
        (None, IpAddr::V6(_)) => {
            return Err(Error::config(
                "sartd",
                format!("neighbour {}: set router_id", n.address),
            ));
        }
    };
    let _ = writeln!(s, "  - name: \"{}\"", n.ident());
    let _ = writeln!(s, "    asn: {}", n.remote_as);
    let _ = writeln!(s, "    address: \"{}\"", n.address);
    let _ = writeln!(s, "    router_id: \"{router_id}\"");
    let _ = writeln!(s, "    passive: {}", n.passive);
    if let Some(h) = n.hold_time {
        let _ = writeln!(s, "    hold_time: {h}");
    }
    if let Some(k) = n
        .effective_keepalive()
        .filter(|_| n.hold_time.is_some() || n.keepalive_time.is_some())
    {
        let _ = writeln!(s, "    keepalive_time: {k}");
    }
    if n.families != [Family::Ipv4Unicast] {
        let f: Vec<&str> = n
            .families
            .iter()
            .map(|f| match f {
                Family::Ipv4Unicast => "ipv4-unicast",
                Family::Ipv6Unicast => "ipv6-unicast",
            })
            .collect();
        let _ = writeln!(s, "    families: [{}]", f.join(", "));
    }
    if let Some(l) = n.local_address {
        let _ = writeln!(s, "    local_address: \"{l}\"");
    }
    if let Some(m) = n.max_prefix {
        let _ = writeln!(s, "    max_prefix: {m}");
    }
    if let Some(t) = n.send_hold_time {
        let _ = writeln!(s, "    send_hold_time: {t}");
    }
    for line in &n.sartd_keys {
        let _ = writeln!(s, "    {line}");
    }
    if n.route_reflector_client {
        s.push_str("    route_reflector_client: true\n");
    }
    if n.ttl_security {
        s.push_str("    ttl_security: true\n");
    }
    if let Some(pw) = &n.md5_password {
        let _ = writeln!(s, "    password: \"{pw}\"");
    }
    if let Some(gr) = n.graceful_restart {
        let _ = writeln!(
            s,
            "    graceful_restart: {{restart_time: {}}}",
            gr.restart_time
        );
    }
    if n.bfd {
        let auth = n
            .bfd_auth
            .as_ref()
            .map(|a| {
                format!(
                    ", auth: {{type: {}keyed-sha1, key_id: {}, password: \"{}\"}}",
                    if a.meticulous { "meticulous-" } else { "" },
                    a.key_id,
                    a.password
                )
            })
            .unwrap_or_default();
        let _ = writeln!(
            s,
            "    bfd: {{interval_ms: 100, multiplier: 3, multihop: {}{auth}}}",
            n.bfd_multihop
        );
    }
    Ok(())
}

impl Daemon for Sartd {
    fn kind(&self) -> DaemonKind {
        DaemonKind::Sartd
    }

    fn instance(&self) -> &Instance {
        &self.inst
    }

    fn start(&mut self) -> Result<()> {
        if !self.inst.procs.is_empty() {
            return Ok(());
        }
        let bin = sartd_binary();
        if !bin.exists() {
            return Err(self.inst.startup_error(format!(
                "{} not found: run `cargo build -p sartd` or set {SARTD_BIN_ENV}",
                bin.display()
            )));
        }
        let mut yaml = render_config(&self.inst.config)?;
        yaml.push_str(&self.extra);
        let conf = self.inst.write("sartd.yaml", &yaml)?;
        let api = self.api_addr();
        self.inst.spawn(
            "sartd",
            &[
                bin.to_string_lossy().as_ref(),
                "bgp",
                "-f",
                conf.to_string_lossy().as_ref(),
                "--api-addr",
                &api,
            ],
        )?;
        self.inst
            .wait_ready("sartd API listening", STARTUP, || self.listening())
    }

    fn stop(&mut self) {
        self.inst.stop();
    }

    fn bgp_pid(&self) -> Option<u32> {
        self.inst.last_pid()
    }

    fn sessions(&self) -> Result<Vec<Session>> {
        let v = self.sart_json(&["neighbor", "list"])?;
        Ok(parse_peers(&v))
    }

    fn rib(&self, family: Family) -> Result<Rib> {
        let v = self.sart_json(&["global", "rib", "get", "-a", afi(family)])?;
        parse_paths(&self.inst.name, &v)
    }

    fn announce(&mut self, route: Route) -> Result<()> {
        let prefix = route.prefix.to_string();
        let kv: Vec<String> = path_attributes(self.inst.config.asn, &route)?
            .into_iter()
            .flat_map(|(k, v)| cli_attribute(k, &v))
            .collect();
        let mut args = vec!["global", "rib", "add", &prefix, "-a", afi(route.family())];
        for item in &kv {
            args.push("-t");
            args.push(item);
        }
        self.sart(&args)?;
        self.inst.config.routes.retain(|r| r.prefix != route.prefix);
        self.inst.config.routes.push(route);
        Ok(())
    }

    fn withdraw(&mut self, prefix: IpNet) -> Result<()> {
        let p = prefix.to_string();
        self.sart(&["global", "rib", "del", &p, "-a", afi(Family::of(&prefix))])?;
        self.inst.config.routes.retain(|r| r.prefix != prefix);
        Ok(())
    }

    fn log_files(&self) -> Vec<PathBuf> {
        self.inst.logs.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_plain_config_is_the_original_format() {
        let cfg = BgpConfig::new(65000, "10.0.0.1".parse().unwrap())
            .neighbor(
                Neighbor::new("10.0.0.2".parse().unwrap(), 65001, &[Family::Ipv4Unicast]).passive(),
            )
            .route(Route::new("10.1.0.0/24".parse().unwrap()).local_pref(200));
        let y = render_config(&cfg).unwrap();
        assert_eq!(
            y,
            "asn: 65000\nrouter_id: 10.0.0.1\nneighbors:\n  - name: \"n_10_0_0_2\"\n    asn: 65001\n    \
             address: \"10.0.0.2\"\n    router_id: \"10.0.0.2\"\n    passive: true\npaths:\n  - prefixes: \
             [\"10.1.0.0/24\"]\n    attributes:\n      local_pref: 200\n"
        );
    }

    #[test]
    fn yaml_extensions_only_when_set() {
        let mut n = Neighbor::new(
            "fd00::2".parse().unwrap(),
            65001,
            &[Family::Ipv4Unicast, Family::Ipv6Unicast],
        )
        .hold_time(3);
        assert!(
            render_config(&BgpConfig::new(1, "10.0.0.1".parse().unwrap()).neighbor(n.clone()))
                .is_err()
        );
        n.router_id = Some("10.0.0.2".parse().unwrap());
        n.max_prefix = Some(100);
        let y = render_config(
            &BgpConfig::new(1, "10.0.0.1".parse().unwrap())
                .multipath(true)
                .neighbor(n),
        )
        .unwrap();
        for want in [
            "multi_path: true",
            "hold_time: 3",
            "keepalive_time: 1",
            "families: [ipv4-unicast, ipv6-unicast]",
            "max_prefix: 100",
        ] {
            assert!(y.contains(want), "{want} missing in\n{y}");
        }
        let attrs = BgpConfig::new(1, "10.0.0.1".parse().unwrap()).route(
            Route::new("10.1.0.0/24".parse().unwrap())
                .community(1, 1)
                .large_community(1, 2, 3)
                .prepend(&[1, 1]),
        );
        let y = render_config(&attrs).unwrap();
        assert!(y.contains("communities: [\"1:1\"]"), "{y}");
        assert!(y.contains("large_communities: [\"1:2:3\"]"), "{y}");
        assert!(y.contains("as_path_prepend: 2"), "{y}");
        assert_eq!(
            cli_attribute("communities", "[\"1:1\", \"2:2\"]"),
            vec!["community=1:1", "community=2:2"]
        );
        let foreign = BgpConfig::new(1, "10.0.0.1".parse().unwrap())
            .route(Route::new("10.1.0.0/24".parse().unwrap()).prepend(&[7]));
        assert!(matches!(
            render_config(&foreign),
            Err(Error::Unsupported { .. })
        ));
    }

    #[test]
    fn cli_json() {
        let peers: Value = serde_json::from_str(
            r#"{"peers":[{"name":"n","address":"10.0.0.2","asn":65001,"routerId":"10.0.0.2",
               "state":"Established","holdTime":3}]}"#,
        )
        .unwrap();
        let s = parse_peers(&peers);
        assert!(s[0].is_established());
        assert_eq!(s[0].hold_time, Some(Duration::from_secs(3)));
        let paths: Value = serde_json::from_str(
            r#"{"paths":[{"nlri":"10.1.0.0/24","nextHops":["10.0.0.2"],"origin":0,
               "segments":[{"type":"sequence","elm":[65001,65002]}],"localPref":100,"med":0,
               "communities":["65001:1"],"largeCommunities":["65001:1:2"],"peerAddr":"10.0.0.2",
               "best":true,"multipath":false}]}"#,
        )
        .unwrap();
        let rib = parse_paths("sartd", &paths).unwrap();
        let p = rib.best(&"10.1.0.0/24".parse().unwrap()).unwrap();
        assert_eq!(p.as_path, vec![65001, 65002]);
        assert_eq!(p.med, None);
        assert_eq!(p.local_pref, Some(100));
        assert_eq!(p.origin, Some(Origin::Igp));
        assert_eq!(p.peer, Some("10.0.0.2".parse().unwrap()));
    }
}
