//! FRR: zebra + bgpd with a private config, pid files and vty socket directory, so any number
//! of instances can run at once (one per namespace). Queried with `vtysh --vty_socket DIR`
//! from outside the namespace (unix sockets are not namespaced).
//!
//! bgpd runs with zebra because without it (`-Z`) bgpd knows no interfaces and withdraws every
//! IPv6 route whose next hop is link-local ("no peer interface information").

use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;
use serde_json::Value;

use crate::daemon::{Daemon, DaemonKind, Instance};
use crate::error::{Error, Result};
use crate::model::{
    BgpConfig, Family, Neighbor, Origin, Path as RibPath, Rib, Route, Session, SessionState,
    parse_as_path_text, parse_community, parse_large_community,
};
use crate::netns::Netns;
use crate::process::run;

pub const FRR_DIR: &str = "/usr/lib/frr";
const STARTUP: Duration = Duration::from_secs(15);

/// The bfdd profile BFD neighbours use.
const BFD_PROFILE: &str = "sart";

/// An FRR instance (zebra + bgpd, and bfdd when a neighbour has BFD).
#[derive(Debug)]
pub struct Frr {
    inst: Instance,
    /// Route-maps are numbered; runtime announcements continue the numbering.
    next_route_map: usize,
}

impl Frr {
    pub fn start(netns: &Netns, name: &str, config: BgpConfig) -> Result<Frr> {
        let inst = Instance::new(netns, name, config)?;
        let mut frr = Frr {
            inst,
            next_route_map: 0,
        };
        frr.start()?;
        Ok(frr)
    }

    /// One FRR daemon of this instance: its config, pid file and log in the instance directory,
    /// talking to zebra on `zserv`, vty socket in `dir`, no vty port.
    fn spawn_daemon(&mut self, daemon: &str, conf: &Path, zserv: &Path, dir: &str) -> Result<()> {
        let log = self.inst.log(&format!("{daemon}.log"));
        let pid = self.inst.path(&format!("{daemon}.pid"));
        let p = |x: &Path| x.to_string_lossy().into_owned();
        self.inst.spawn(
            daemon,
            &[
                format!("{FRR_DIR}/{daemon}"),
                "-f".into(),
                p(conf),
                "-i".into(),
                p(&pid),
                "-z".into(),
                p(zserv),
                "--vty_socket".into(),
                dir.to_owned(),
                "-P".into(),
                "0".into(),
                "--log".into(),
                format!("file:{}", p(&log)),
            ],
        )
    }

    fn sock_dir(&self) -> &Path {
        &self.inst.dir
    }

    /// Runs `vtysh -c C1 -c C2 ...` against this instance's bgpd; returns stdout.
    pub fn vtysh(&self, cmds: &[&str]) -> Result<String> {
        self.vtysh_on("bgpd", cmds)
    }

    /// [`Frr::vtysh`] against another daemon of the instance (`bfdd`, `zebra`).
    pub fn vtysh_on(&self, daemon: &str, cmds: &[&str]) -> Result<String> {
        let dir = self.sock_dir().to_string_lossy().into_owned();
        let mut argv: Vec<&str> = vec!["vtysh", "--vty_socket", &dir, "-d", daemon];
        for c in cmds {
            argv.push("-c");
            argv.push(c);
        }
        let out = run(&argv)?;
        // vtysh exits 0 on many errors; the daemon's complaint starts with '%'.
        if let Some(line) = out.lines().find(|l| l.starts_with('%')) {
            return Err(Error::Command {
                cmd: format!("vtysh {}", cmds.join(" ; ")),
                status: "error".into(),
                stderr: line.to_owned(),
            });
        }
        Ok(out)
    }

    fn vtysh_json(&self, cmd: &str) -> Result<Value> {
        let out = self.vtysh(&[cmd])?;
        serde_json::from_str(&out).map_err(|e| Error::parse(&self.inst.name, cmd, e))
    }

    fn render_config(&mut self) -> String {
        self.next_route_map = 0;
        let cfg = self.inst.config.clone();
        let mut s = String::new();
        let _ = writeln!(
            s,
            "frr defaults traditional\nhostname {}\n!",
            self.inst.name
        );
        let _ = writeln!(s, "router bgp {}", cfg.asn);
        let _ = writeln!(s, " bgp router-id {}", cfg.router_id);
        s.push_str(" no bgp ebgp-requires-policy\n no bgp network import-check\n no bgp default ipv4-unicast\n");
        if cfg.multipath {
            s.push_str(" bgp bestpath as-path multipath-relax\n");
        }
        if let Some(gr) = cfg.neighbors.iter().find_map(|n| n.graceful_restart) {
            let _ = writeln!(
                s,
                " bgp graceful-restart\n bgp graceful-restart restart-time {}",
                gr.restart_time
            );
        }
        for n in &cfg.neighbors {
            neighbor_lines(&mut s, n);
        }
        let mut route_maps = String::new();
        for family in Family::ALL {
            let neighbors: Vec<&Neighbor> = cfg
                .neighbors
                .iter()
                .filter(|n| n.families.contains(&family))
                .collect();
            let routes: Vec<&Route> = cfg.routes.iter().filter(|r| r.family() == family).collect();
            if neighbors.is_empty() && routes.is_empty() {
                continue;
            }
            let _ = writeln!(s, " address-family {} unicast", afi(family));
            for r in routes {
                match self.route_map(r) {
                    Some((rm_name, body)) => {
                        let _ = writeln!(s, "  network {} route-map {rm_name}", r.prefix);
                        route_maps.push_str(&body);
                    }
                    None => {
                        let _ = writeln!(s, "  network {}", r.prefix);
                    }
                }
            }
            if cfg.multipath {
                s.push_str("  maximum-paths 16\n  maximum-paths ibgp 16\n");
            }
            for n in neighbors {
                let id = peer_id(n);
                let _ = writeln!(s, "  neighbor {id} activate");
                if n.add_path.send {
                    let _ = writeln!(s, "  neighbor {id} addpath-tx-all-paths");
                }
                if n.route_reflector_client {
                    let _ = writeln!(s, "  neighbor {id} route-reflector-client");
                }
                if let Some(max) = n.max_prefix {
                    let _ = writeln!(s, "  neighbor {id} maximum-prefix {max}");
                }
            }
            s.push_str(" exit-address-family\n");
        }
        s.push_str("!\n");
        s.push_str(&route_maps);
        s
    }

    /// A route-map setting the route's attributes (`None` if it has none).
    fn route_map(&mut self, r: &Route) -> Option<(String, String)> {
        let sets = route_map_sets(r);
        if sets.is_empty() {
            return None;
        }
        let name = format!("RM_SARTI_{}", self.next_route_map);
        self.next_route_map += 1;
        let mut body = format!("route-map {name} permit 10\n");
        for set in sets {
            let _ = writeln!(body, " {set}");
        }
        body.push_str("!\n");
        Some((name, body))
    }
}

fn afi(f: Family) -> &'static str {
    match f {
        Family::Ipv4Unicast => "ipv4",
        Family::Ipv6Unicast => "ipv6",
    }
}

/// How a neighbour is named in FRR commands: its address, or its interface when link-local.
fn peer_id(n: &Neighbor) -> String {
    match (&n.interface, n.is_link_local()) {
        (Some(ifname), true) => ifname.clone(),
        _ => n.address.to_string(),
    }
}

fn neighbor_lines(s: &mut String, n: &Neighbor) {
    let id = peer_id(n);
    if n.is_link_local() && n.interface.is_some() {
        let _ = writeln!(s, " neighbor {id} interface remote-as {}", n.remote_as);
    } else {
        let _ = writeln!(s, " neighbor {id} remote-as {}", n.remote_as);
        if let Some(ifname) = &n.interface {
            let _ = writeln!(s, " neighbor {id} interface {ifname}");
        }
    }
    if n.passive {
        let _ = writeln!(s, " neighbor {id} passive");
    }
    if let (Some(hold), Some(ka)) = (n.hold_time, n.effective_keepalive()) {
        let _ = writeln!(s, " neighbor {id} timers {ka} {hold}");
    }
    let _ = writeln!(
        s,
        " neighbor {id} timers connect {}",
        n.connect_retry.max(1)
    );
    let _ = writeln!(s, " neighbor {id} advertisement-interval 0");
    if n.ttl_security {
        let _ = writeln!(s, " neighbor {id} ttl-security hops 1");
    }
    if let Some(pw) = &n.md5_password {
        let _ = writeln!(s, " neighbor {id} password {pw}");
    }
    if n.bfd {
        // The profile (bfdd.conf) runs 100 ms x 3: detection in 300 ms.
        let _ = writeln!(s, " neighbor {id} bfd profile {BFD_PROFILE}");
    }
    if let Some(local) = n.local_address {
        let _ = writeln!(s, " neighbor {id} update-source {local}");
    }
    if n.extended_next_hop {
        let _ = writeln!(s, " neighbor {id} capability extended-nexthop");
    }
    if n.graceful_restart.is_some() {
        let _ = writeln!(s, " neighbor {id} graceful-restart");
    }
}

fn route_map_sets(r: &Route) -> Vec<String> {
    let a = &r.attrs;
    let mut v = Vec::new();
    if !a.communities.is_empty() {
        let c: Vec<String> = a.communities.iter().map(ToString::to_string).collect();
        v.push(format!("set community {}", c.join(" ")));
    }
    if !a.large_communities.is_empty() {
        let c: Vec<String> = a
            .large_communities
            .iter()
            .map(ToString::to_string)
            .collect();
        v.push(format!("set large-community {}", c.join(" ")));
    }
    if let Some(lp) = a.local_pref {
        v.push(format!("set local-preference {lp}"));
    }
    if let Some(med) = a.med {
        v.push(format!("set metric {med}"));
    }
    if let Some(o) = a.origin {
        v.push(format!("set origin {}", o.word()));
    }
    if !a.as_path_prepend.is_empty() {
        let p: Vec<String> = a.as_path_prepend.iter().map(ToString::to_string).collect();
        v.push(format!("set as-path prepend {}", p.join(" ")));
    }
    match r.next_hop {
        Some(IpAddr::V4(nh)) => v.push(format!("set ip next-hop {nh}")),
        Some(IpAddr::V6(nh)) => v.push(format!("set ipv6 next-hop global {nh}")),
        None => {}
    }
    v
}

impl Daemon for Frr {
    fn kind(&self) -> DaemonKind {
        DaemonKind::Frr
    }

    fn instance(&self) -> &Instance {
        &self.inst
    }

    fn start(&mut self) -> Result<()> {
        if !self.inst.procs.is_empty() {
            return Ok(());
        }
        let conf = self.render_config();
        let bgpd_conf = self.inst.write("bgpd.conf", &conf)?;
        let zebra_conf = self
            .inst
            .write("zebra.conf", &format!("hostname {}\n", self.inst.name))?;
        // The daemons drop to user frr: the directory must be theirs (pid files, sockets).
        let dir = self.inst.dir.to_string_lossy().into_owned();
        run(&["chown", "frr:frr", &dir])?;
        for stale in ["zserv.api", "bgpd.vty", "zebra.vty"] {
            let _ = std::fs::remove_file(self.inst.path(stale));
        }
        let zserv = self.inst.path("zserv.api");
        self.spawn_daemon("zebra", &zebra_conf, &zserv, &dir)?;
        let zs = zserv.clone();
        self.inst
            .wait_ready("zebra socket", STARTUP, || zs.exists())?;
        if self.inst.config.neighbors.iter().any(|n| n.bfd) {
            let conf = self.inst.write(
                "bfdd.conf",
                &format!(
                    "hostname {}\nbfd\n profile {BFD_PROFILE}\n  transmit-interval 100\n  receive-interval 100\n  detect-multiplier 3\n !\n!\n",
                    self.inst.name
                ),
            )?;
            let _ = std::fs::remove_file(self.inst.path("bfdd.vty"));
            self.spawn_daemon("bfdd", &conf, &zserv, &dir)?;
            let vty = self.inst.path("bfdd.vty");
            self.inst
                .wait_ready("bfdd vty socket", STARTUP, || vty.exists())?;
        }
        self.spawn_daemon("bgpd", &bgpd_conf, &zserv, &dir)?;
        let vty = self.inst.path("bgpd.vty");
        self.inst
            .wait_ready("bgpd vty socket", STARTUP, || vty.exists())?;
        self.inst.wait_ready("bgpd answering vtysh", STARTUP, || {
            self.vtysh(&["show bgp summary json"]).is_ok()
        })
    }

    fn stop(&mut self) {
        self.inst.stop();
    }

    fn bgp_pid(&self) -> Option<u32> {
        self.inst
            .procs
            .iter()
            .find(|p| p.name() == "bgpd" && p.is_alive())
            .map(|p| p.pid())
    }

    fn sessions(&self) -> Result<Vec<Session>> {
        let v = self.vtysh_json("show bgp neighbors json")?;
        let obj = v.as_object().ok_or_else(|| {
            Error::parse(&self.inst.name, "show bgp neighbors json", "not an object")
        })?;
        let mut out = Vec::new();
        for (key, n) in obj {
            // Interface neighbours are keyed by interface name.
            let peer = key.parse::<IpAddr>().ok().or_else(|| {
                self.inst
                    .config
                    .neighbors
                    .iter()
                    .find(|c| c.interface.as_deref() == Some(key.as_str()))
                    .map(|c| c.address)
            });
            let Some(peer) = peer else { continue };
            let state = n["bgpState"]
                .as_str()
                .map_or(SessionState::Other("?".into()), SessionState::parse);
            out.push(Session {
                peer,
                remote_as: n["remoteAs"].as_u64().and_then(|a| u32::try_from(a).ok()),
                hold_time: (state == SessionState::Established)
                    .then(|| {
                        n["bgpTimerHoldTimeMsecs"]
                            .as_u64()
                            .map(Duration::from_millis)
                    })
                    .flatten(),
                remote_router_id: n["remoteRouterId"].as_str().and_then(|s| s.parse().ok()),
                state,
            });
        }
        Ok(out)
    }

    fn rib(&self, family: Family) -> Result<Rib> {
        let cmd = format!("show bgp {} unicast json detail", afi(family));
        let v = self.vtysh_json(&cmd)?;
        parse_rib(&self.inst.name, &cmd, &v)
    }

    fn announce(&mut self, route: Route) -> Result<()> {
        let asn = self.inst.config.asn;
        let mut cmds: Vec<String> = vec!["configure terminal".into()];
        let network = match self.route_map(&route) {
            Some((name, body)) => {
                cmds.extend(body.lines().filter(|l| *l != "!").map(str::to_owned));
                cmds.push("exit".into());
                format!("network {} route-map {name}", route.prefix)
            }
            None => format!("network {}", route.prefix),
        };
        cmds.push(format!("router bgp {asn}"));
        cmds.push(format!("address-family {} unicast", afi(route.family())));
        cmds.push(network);
        let refs: Vec<&str> = cmds.iter().map(String::as_str).collect();
        self.vtysh(&refs)?;
        self.inst.config.routes.retain(|r| r.prefix != route.prefix);
        self.inst.config.routes.push(route);
        Ok(())
    }

    fn withdraw(&mut self, prefix: IpNet) -> Result<()> {
        let asn = self.inst.config.asn;
        let router = format!("router bgp {asn}");
        let af = format!("address-family {} unicast", afi(Family::of(&prefix)));
        let no = format!("no network {prefix}");
        self.vtysh(&["configure terminal", &router, &af, &no])?;
        self.inst.config.routes.retain(|r| r.prefix != prefix);
        Ok(())
    }

    fn log_files(&self) -> Vec<PathBuf> {
        self.inst.logs.clone()
    }
}

/// Parses `show bgp <afi> unicast json detail` (FRR 8.4: each prefix maps to an array whose
/// first element is a `{prefix, version}` header and the rest are paths).
pub(crate) fn parse_rib(daemon: &str, what: &str, v: &Value) -> Result<Rib> {
    let routes = v["routes"]
        .as_object()
        .ok_or_else(|| Error::parse(daemon, what, "no \"routes\" object"))?;
    let mut rib = Rib::default();
    for (prefix, paths) in routes {
        let prefix: IpNet = prefix
            .parse()
            .map_err(|e| Error::parse(daemon, what, format!("prefix {prefix}: {e}")))?;
        for p in paths.as_array().into_iter().flatten() {
            if p.get("nexthops").is_none() && p.get("valid").is_none() {
                continue; // the header element
            }
            rib.push(prefix, parse_path(p));
        }
    }
    Ok(rib)
}

fn parse_path(p: &Value) -> RibPath {
    let u32_of = |v: &Value| v.as_u64().and_then(|x| u32::try_from(x).ok());
    let next_hops = p["nexthops"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|nh| nh["ip"].as_str()?.parse().ok())
        .collect();
    let as_path = match &p["aspath"] {
        Value::Object(o) => match o.get("segments").and_then(Value::as_array) {
            Some(segs) => segs
                .iter()
                .flat_map(|s| {
                    s["list"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(u32_of)
                })
                .collect(),
            None => o
                .get("string")
                .and_then(Value::as_str)
                .map(parse_as_path_text)
                .unwrap_or_default(),
        },
        _ => p["path"]
            .as_str()
            .map(parse_as_path_text)
            .unwrap_or_default(),
    };
    let list = |key: &str| -> Vec<String> {
        match &p[key] {
            Value::Object(o) => match o.get("list").and_then(Value::as_array) {
                Some(l) => l
                    .iter()
                    .filter_map(|x| x.as_str().map(str::to_owned))
                    .collect(),
                None => o
                    .get("string")
                    .and_then(Value::as_str)
                    .map(|s| s.split_whitespace().map(str::to_owned).collect())
                    .unwrap_or_default(),
            },
            _ => Vec::new(),
        }
    };
    let local = p["local"].as_bool().unwrap_or(false)
        || p["sourced"].as_bool().unwrap_or(false)
        || matches!(
            p["peer"]["peerId"].as_str(),
            Some("0.0.0.0" | "::" | "(unspec)")
        );
    let peer = if local {
        None
    } else {
        p["peer"]["peerId"]
            .as_str()
            .or(p["peerId"].as_str())
            .and_then(|s| s.parse().ok())
    };
    RibPath {
        next_hops,
        as_path,
        origin: p["origin"].as_str().and_then(Origin::parse),
        local_pref: u32_of(&p["locPrf"]),
        med: u32_of(&p["metric"]),
        communities: list("community")
            .iter()
            .filter_map(|c| parse_community(c))
            .collect(),
        large_communities: list("largeCommunity")
            .iter()
            .filter_map(|c| parse_large_community(c))
            .collect(),
        best: match &p["bestpath"] {
            Value::Bool(b) => *b,
            Value::Object(o) => o.get("overall").and_then(Value::as_bool).unwrap_or(false),
            _ => false,
        },
        multipath: p["multipath"].as_bool().unwrap_or(false),
        peer,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_detail_with_header_element() {
        let v: Value = serde_json::from_str(r#"{"routes": {"198.18.100.0/24": [
            {"prefix":"198.18.100.0/24","version":1},
            {"aspath":{"string":"Local","segments":[],"length":0},"origin":"IGP","metric":10,"locPrf":300,
             "valid":true,"sourced":true,"local":true,"bestpath":{"overall":true},
             "community":{"string":"65001:100 noExport","list":["65001:100","noExport"]},
             "largeCommunity":{"string":"65001:1:2","list":["65001:1:2"]},
             "nexthops":[{"ip":"0.0.0.0","afi":"ipv4","used":true}],"peer":{"peerId":"0.0.0.0"}},
            {"aspath":{"string":"65002 {65003,65004}","segments":[{"type":"as-sequence","list":[65002]},{"type":"as-set","list":[65003,65004]}]},
             "origin":"incomplete","valid":true,"multipath":true,
             "nexthops":[{"ip":"fd00::2","scope":"global"},{"ip":"fe80::2","scope":"link-local","used":true}],
             "peer":{"peerId":"198.18.0.2","routerId":"198.18.0.2"}}]}}"#).unwrap();
        let rib = parse_rib("frr", "test", &v).unwrap();
        let paths = rib.paths(&"198.18.100.0/24".parse().unwrap());
        assert_eq!(paths.len(), 2);
        assert!(paths[0].is_local() && paths[0].best);
        assert_eq!(
            paths[0].communities,
            vec![
                crate::model::Community(65001, 100),
                crate::model::Community(65535, 65281)
            ]
        );
        assert_eq!(paths[0].local_pref, Some(300));
        assert_eq!(paths[1].as_path, vec![65002, 65003, 65004]);
        assert_eq!(paths[1].peer, Some("198.18.0.2".parse().unwrap()));
        assert_eq!(paths[1].next_hops.len(), 2);
        assert_eq!(paths[1].origin, Some(Origin::Incomplete));
        assert!(paths[1].multipath);
    }

    #[test]
    fn route_map_for_attributes() {
        let r = Route::new("198.18.0.0/24".parse().unwrap())
            .community(1, 2)
            .large_community(1, 2, 3)
            .local_pref(200)
            .med(3);
        let sets = route_map_sets(&r);
        assert_eq!(
            sets,
            vec![
                "set community 1:2",
                "set large-community 1:2:3",
                "set local-preference 200",
                "set metric 3"
            ]
        );
        assert!(route_map_sets(&Route::new("198.18.0.0/24".parse().unwrap())).is_empty());
    }
}
