//! GoBGP: `gobgpd -f gobgpd.toml` with its gRPC API on 127.0.0.1:PORT *inside* the namespace
//! (so every namespace can use the same port), driven and queried with `gobgp -j` run in the
//! namespace. Originated routes are added with `gobgp global rib add` after start.

use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;
use serde_json::Value;

use crate::daemon::{Daemon, DaemonKind, Instance};
use crate::error::{Error, Result};
use crate::model::{
    BgpConfig, Community, Family, LargeCommunity, Neighbor, Origin, Path as RibPath, Rib, Route,
    Session, SessionState,
};
use crate::netns::Netns;

const STARTUP: Duration = Duration::from_secs(15);
/// gobgpd's API port inside the namespace.
pub const DEFAULT_API_PORT: u16 = 50051;

/// A GoBGP instance.
#[derive(Debug)]
pub struct Gobgp {
    inst: Instance,
    api_port: u16,
}

impl Gobgp {
    pub fn start(netns: &Netns, name: &str, config: BgpConfig) -> Result<Gobgp> {
        Gobgp::start_with_port(netns, name, config, DEFAULT_API_PORT)
    }

    /// For a second gobgpd in the same namespace.
    pub fn start_with_port(
        netns: &Netns,
        name: &str,
        config: BgpConfig,
        api_port: u16,
    ) -> Result<Gobgp> {
        let inst = Instance::new(netns, name, config)?;
        let mut g = Gobgp { inst, api_port };
        g.start()?;
        Ok(g)
    }

    /// `gobgp -u 127.0.0.1 -p PORT ARGS...` inside the namespace.
    pub fn gobgp(&self, args: &[&str]) -> Result<String> {
        let port = self.api_port.to_string();
        let mut argv = vec!["gobgp", "-u", "127.0.0.1", "-p", &port];
        argv.extend_from_slice(args);
        self.inst.netns.exec(&argv)
    }

    fn gobgp_json(&self, args: &[&str]) -> Result<Value> {
        let mut argv = vec!["-j"];
        argv.extend_from_slice(args);
        let out = self.gobgp(&argv)?;
        serde_json::from_str(&out)
            .map_err(|e| Error::parse(&self.inst.name, format!("gobgp -j {}", args.join(" ")), e))
    }

    fn render_config(&self) -> String {
        let cfg = &self.inst.config;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "[global.config]\n  as = {}\n  router-id = \"{}\"",
            cfg.asn, cfg.router_id
        );
        if cfg.multipath {
            s.push_str("[global.use-multiple-paths.config]\n  enabled = true\n");
        }
        for n in &cfg.neighbors {
            neighbor_toml(&mut s, cfg, n);
        }
        s
    }

    fn add_route(&self, r: &Route) -> Result<()> {
        self.gobgp(
            &rib_add_args(r)
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>(),
        )
        .map(drop)
    }
}

fn neighbor_toml(s: &mut String, cfg: &BgpConfig, n: &Neighbor) {
    let addr = match (&n.interface, n.is_link_local()) {
        (Some(ifname), true) => format!("{}%{ifname}", n.address),
        _ => n.address.to_string(),
    };
    let _ = writeln!(
        s,
        "[[neighbors]]\n  [neighbors.config]\n    neighbor-address = \"{addr}\"\n    peer-as = {}",
        n.remote_as
    );
    if let Some(pw) = &n.md5_password {
        let _ = writeln!(s, "    auth-password = \"{pw}\"");
    }
    let _ = writeln!(
        s,
        "  [neighbors.timers.config]\n    connect-retry = {}",
        n.connect_retry.max(1)
    );
    if let (Some(hold), Some(ka)) = (n.hold_time, n.effective_keepalive()) {
        let _ = writeln!(s, "    hold-time = {hold}\n    keepalive-interval = {ka}");
    }
    if n.passive || n.local_address.is_some() {
        s.push_str("  [neighbors.transport.config]\n");
        if n.passive {
            s.push_str("    passive-mode = true\n");
        }
        if let Some(l) = n.local_address {
            let _ = writeln!(s, "    local-address = \"{l}\"");
        }
    }
    if let Some(gr) = n.graceful_restart {
        let _ = writeln!(
            s,
            "  [neighbors.graceful-restart.config]\n    enabled = true\n    restart-time = {}",
            gr.restart_time
        );
    }
    if n.route_reflector_client {
        let _ = writeln!(
            s,
            "  [neighbors.route-reflector.config]\n    route-reflector-client = true\n    route-reflector-cluster-id = \"{}\"",
            cfg.router_id
        );
    }
    for f in &n.families {
        let _ = writeln!(
            s,
            "  [[neighbors.afi-safis]]\n    [neighbors.afi-safis.config]\n      afi-safi-name = \"{f}\""
        );
        if n.add_path.send || n.add_path.receive {
            let _ = writeln!(
                s,
                "    [neighbors.afi-safis.add-paths.config]\n      receive = {}\n      send-max = {}",
                n.add_path.receive,
                if n.add_path.send { 8 } else { 0 }
            );
        }
        if let Some(max) = n.max_prefix {
            let _ = writeln!(
                s,
                "    [neighbors.afi-safis.prefix-limit.config]\n      max-prefixes = {max}"
            );
        }
        if n.graceful_restart.is_some() {
            s.push_str(
                "    [neighbors.afi-safis.mp-graceful-restart.config]\n      enabled = true\n",
            );
        }
    }
}

fn family_arg(f: Family) -> &'static str {
    match f {
        Family::Ipv4Unicast => "ipv4",
        Family::Ipv6Unicast => "ipv6",
    }
}

fn rib_add_args(r: &Route) -> Vec<String> {
    let a = &r.attrs;
    let mut v: Vec<String> = ["global", "rib", "add", "-a", family_arg(r.family())]
        .map(str::to_owned)
        .to_vec();
    v.push(r.prefix.to_string());
    v.push("origin".into());
    v.push(a.origin.unwrap_or(Origin::Igp).word().into());
    if let Some(nh) = r.next_hop {
        v.push("nexthop".into());
        v.push(nh.to_string());
    }
    if let Some(med) = a.med {
        v.push("med".into());
        v.push(med.to_string());
    }
    if let Some(lp) = a.local_pref {
        v.push("local-pref".into());
        v.push(lp.to_string());
    }
    if !a.communities.is_empty() {
        v.push("community".into());
        v.push(
            a.communities
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(","),
        );
    }
    if !a.large_communities.is_empty() {
        v.push("large-community".into());
        v.push(
            a.large_communities
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(","),
        );
    }
    if !a.as_path_prepend.is_empty() {
        v.push("aspath".into());
        v.push(
            a.as_path_prepend
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(","),
        );
    }
    v
}

/// GoBGP's `session_state`: the apipb.PeerState number, or its name in some versions.
fn session_state(v: &Value) -> SessionState {
    match v {
        Value::Number(n) => match n.as_u64() {
            Some(1) => SessionState::Idle,
            Some(2) => SessionState::Connect,
            Some(3) => SessionState::Active,
            Some(4) => SessionState::OpenSent,
            Some(5) => SessionState::OpenConfirm,
            Some(6) => SessionState::Established,
            other => SessionState::Other(format!("{other:?}")),
        },
        Value::String(s) => SessionState::parse(s.trim_start_matches("SESSION_STATE_")),
        // Protobuf JSON omits zero values: 0 is UNKNOWN.
        _ => SessionState::Other("unknown".into()),
    }
}

impl Daemon for Gobgp {
    fn kind(&self) -> DaemonKind {
        DaemonKind::Gobgp
    }

    fn instance(&self) -> &Instance {
        &self.inst
    }

    fn start(&mut self) -> Result<()> {
        if !self.inst.procs.is_empty() {
            return Ok(());
        }
        let conf = self.inst.write("gobgpd.toml", &self.render_config())?;
        let api = format!("127.0.0.1:{}", self.api_port);
        self.inst.spawn(
            "gobgpd",
            &[
                "gobgpd",
                "-f",
                &conf.to_string_lossy(),
                "-p",
                "--api-hosts",
                &api,
                "--pprof-disable",
            ],
        )?;
        self.inst
            .wait_ready("gobgp API", STARTUP, || self.gobgp(&["global"]).is_ok())?;
        for r in &self.inst.config.routes {
            self.add_route(r)?;
        }
        Ok(())
    }

    fn stop(&mut self) {
        self.inst.stop();
    }

    fn bgp_pid(&self) -> Option<u32> {
        self.inst.last_pid()
    }

    fn sessions(&self) -> Result<Vec<Session>> {
        let v = self.gobgp_json(&["neighbor"])?;
        let mut out = Vec::new();
        for n in v.as_array().into_iter().flatten() {
            let addr = n["state"]["neighbor_address"]
                .as_str()
                .or(n["conf"]["neighbor_address"].as_str())
                .unwrap_or("");
            let Ok(peer) = addr.split('%').next().unwrap_or(addr).parse() else {
                continue;
            };
            let state = session_state(&n["state"]["session_state"]);
            out.push(Session {
                peer,
                remote_as: n["state"]["peer_asn"]
                    .as_u64()
                    .or(n["conf"]["peer_asn"].as_u64())
                    .and_then(|a| u32::try_from(a).ok()),
                hold_time: (state == SessionState::Established)
                    .then(|| {
                        n["timers"]["state"]["negotiated_hold_time"]
                            .as_f64()
                            .map(Duration::from_secs_f64)
                    })
                    .flatten(),
                remote_router_id: n["state"]["router_id"]
                    .as_str()
                    .and_then(|s| s.parse().ok()),
                state,
            });
        }
        Ok(out)
    }

    fn rib(&self, family: Family) -> Result<Rib> {
        let v = self.gobgp_json(&["global", "rib", "-a", family_arg(family)])?;
        parse_rib(&self.inst.name, &v)
    }

    fn announce(&mut self, route: Route) -> Result<()> {
        self.add_route(&route)?;
        self.inst.config.routes.retain(|r| r.prefix != route.prefix);
        self.inst.config.routes.push(route);
        Ok(())
    }

    fn withdraw(&mut self, prefix: IpNet) -> Result<()> {
        let fam = family_arg(Family::of(&prefix));
        let p = prefix.to_string();
        self.gobgp(&["global", "rib", "del", "-a", fam, &p])?;
        self.inst.config.routes.retain(|r| r.prefix != prefix);
        Ok(())
    }

    fn log_files(&self) -> Vec<PathBuf> {
        self.inst.logs.clone()
    }
}

/// Parses `gobgp -j global rib -a FAMILY`: `{prefix: [path...]}`, each path with `best`,
/// `neighbor-ip` (absent for local paths) and `attrs` typed by attribute code.
pub(crate) fn parse_rib(daemon: &str, v: &Value) -> Result<Rib> {
    let obj = match v {
        Value::Object(o) => o,
        Value::Null => return Ok(Rib::default()),
        _ => return Err(Error::parse(daemon, "gobgp -j global rib", "not an object")),
    };
    let mut rib = Rib::default();
    for (prefix, paths) in obj {
        let prefix: IpNet = prefix
            .parse()
            .map_err(|e| Error::parse(daemon, "gobgp -j global rib", format!("{prefix}: {e}")))?;
        for p in paths.as_array().into_iter().flatten() {
            rib.push(prefix, parse_path(p));
        }
    }
    Ok(rib)
}

fn parse_path(p: &Value) -> RibPath {
    let u32_of = |v: &Value| v.as_u64().and_then(|x| u32::try_from(x).ok());
    let mut path = RibPath {
        best: p["best"].as_bool().unwrap_or(false),
        peer: p["neighbor-ip"]
            .as_str()
            .and_then(|s| s.parse::<IpAddr>().ok())
            .filter(|a| !a.is_unspecified()),
        ..RibPath::default()
    };
    path.multipath = path.best;
    let mut next_hops: Vec<IpAddr> = Vec::new();
    for a in p["attrs"].as_array().into_iter().flatten() {
        match a["type"].as_u64() {
            Some(1) => {
                path.origin = match a["value"].as_u64() {
                    Some(1) => Some(Origin::Egp),
                    Some(2) => Some(Origin::Incomplete),
                    _ => Some(Origin::Igp),
                }
            }
            Some(2) => {
                path.as_path = a["as_paths"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .flat_map(|seg| {
                        seg["asns"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .filter_map(u32_of)
                    })
                    .collect();
            }
            Some(3) => {
                next_hops.extend(a["nexthop"].as_str().and_then(|s| s.parse::<IpAddr>().ok()))
            }
            Some(4) => path.med = u32_of(&a["metric"]),
            Some(5) => path.local_pref = u32_of(&a["value"]),
            Some(8) => {
                path.communities = a["communities"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(u32_of)
                    .map(Community::from_u32)
                    .collect();
            }
            Some(14) => {
                for key in ["nexthop", "linklocal_nexthop"] {
                    next_hops.extend(a[key].as_str().and_then(|s| s.parse::<IpAddr>().ok()));
                }
                for nh in a["nexthops"].as_array().into_iter().flatten() {
                    next_hops.extend(nh.as_str().and_then(|s| s.parse::<IpAddr>().ok()));
                }
            }
            Some(32) => {
                path.large_communities = a["value"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|c| {
                        Some(LargeCommunity(
                            u32_of(&c["ASN"])?,
                            u32_of(&c["LocalData1"])?,
                            u32_of(&c["LocalData2"])?,
                        ))
                    })
                    .collect();
            }
            _ => {}
        }
    }
    next_hops.dedup();
    path.next_hops = next_hops;
    path
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rib_json() {
        let v: Value = serde_json::from_str(r#"{
          "198.18.100.0/24":[{"nlri":{"prefix":"198.18.100.0/24"},"best":true,"attrs":[{"type":1,"value":0},
            {"type":2,"as_paths":[{"segment_type":2,"num":1,"asns":[65001]}]},{"type":3,"nexthop":"198.18.0.1"},
            {"type":4,"metric":10},{"type":8,"communities":[4259905636]},
            {"type":32,"value":[{"ASN":65001,"LocalData1":1,"LocalData2":2}]}],"neighbor-ip":"198.18.0.1"}],
          "198.18.50.0/24":[{"nlri":{"prefix":"198.18.50.0/24"},"best":true,"attrs":[{"type":1,"value":2},
            {"type":5,"value":300},{"type":3,"nexthop":"0.0.0.0"}]}],
          "fd00:100::/64":[{"nlri":{"prefix":"fd00:100::/64"},"best":true,"attrs":[
            {"type":14,"nexthop":"fd00::1","linklocal_nexthop":"fe80::1","afi":2,"safi":1}],"neighbor-ip":"198.18.0.1"}]}"#).unwrap();
        let rib = parse_rib("gobgp", &v).unwrap();
        let p = rib.best(&"198.18.100.0/24".parse().unwrap()).unwrap();
        assert_eq!(p.as_path, vec![65001]);
        assert_eq!(p.communities, vec![Community(65001, 100)]);
        assert_eq!(p.large_communities, vec![LargeCommunity(65001, 1, 2)]);
        assert_eq!(p.med, Some(10));
        let local = rib.best(&"198.18.50.0/24".parse().unwrap()).unwrap();
        assert!(local.is_local());
        assert_eq!(local.local_pref, Some(300));
        assert_eq!(local.origin, Some(Origin::Incomplete));
        let v6 = rib.best(&"fd00:100::/64".parse().unwrap()).unwrap();
        assert_eq!(v6.next_hops.len(), 2);
        assert_eq!(
            session_state(&serde_json::json!(6)),
            SessionState::Established
        );
        assert_eq!(
            session_state(&Value::Null),
            SessionState::Other("unknown".into())
        );
    }

    #[test]
    fn rib_add_arguments() {
        let r = Route::new("198.18.0.0/24".parse().unwrap())
            .local_pref(300)
            .community(1, 2)
            .community(3, 4);
        assert_eq!(
            rib_add_args(&r).join(" "),
            "global rib add -a ipv4 198.18.0.0/24 origin igp local-pref 300 community 1:2,3:4"
        );
    }
}
