//! ExaBGP 4: config file plus one API `process` (a small Python helper written next to the
//! config) that
//! - forwards every line appended to `commands` to ExaBGP (runtime announce/withdraw), and
//! - appends every JSON message ExaBGP sends it (`neighbor-changes`, `receive { parsed; update; }`)
//!   to `received.jsonl`.
//!
//! Sessions and received routes are replayed from `received.jsonl`; ExaBGP has no RIB to ask.
//! Its own originated routes are not in [`Daemon::rib`] (it shows only what it received).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;
use serde_json::Value;

use crate::daemon::{Daemon, DaemonKind, Instance};
use crate::error::{Error, Result};
use crate::model::{
    BgpConfig, Family, LargeCommunity, Neighbor, Origin, Path as RibPath, Rib, Route, Session,
    SessionState, parse_as_path_text,
};
use crate::netns::Netns;

const STARTUP: Duration = Duration::from_secs(20);

const HELPER: &str = r#"import sys, threading, time
cmds, recv, ready = sys.argv[1], sys.argv[2], sys.argv[3]
def pump():
    pos = 0
    while True:
        try:
            with open(cmds, "rb") as f:
                f.seek(pos)
                data = f.read()
            while b"\n" in data:
                line, data = data.split(b"\n", 1)
                pos += len(line) + 1
                sys.stdout.write(line.decode() + "\n")
                sys.stdout.flush()
        except FileNotFoundError:
            pass
        time.sleep(0.05)
threading.Thread(target=pump, daemon=True).start()
open(ready, "w").close()
with open(recv, "a") as out:
    for line in sys.stdin:
        out.write(line)
        out.flush()
"#;

/// ExaBGP-only settings beyond the common [`BgpConfig`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExabgpOptions {
    /// Offer the 4-octet AS capability (RFC 6793); `false` makes ExaBGP a 2-octet speaker
    /// (`capability { asn4 disable; }`), which sends AS_TRANS and AS4_PATH for 4-octet ASNs.
    pub asn4: bool,
    /// Also record every received message's raw bytes: update lines in `received.jsonl` get
    /// `"header"` and `"body"` (hex) beside the parsed update, and received OPENs and NOTIFICATIONs
    /// are recorded too (`receive { packets; consolidate; open; notification; }`).
    pub packets: bool,
}

impl Default for ExabgpOptions {
    fn default() -> ExabgpOptions {
        ExabgpOptions {
            asn4: true,
            packets: false,
        }
    }
}

/// An ExaBGP instance.
#[derive(Debug)]
pub struct Exabgp {
    inst: Instance,
    /// Local address per neighbour (ExaBGP requires one).
    local: BTreeMap<IpAddr, IpAddr>,
    opts: ExabgpOptions,
}

impl Exabgp {
    pub fn start(netns: &Netns, name: &str, config: BgpConfig) -> Result<Exabgp> {
        Exabgp::start_with(netns, name, config, ExabgpOptions::default())
    }

    /// [`Exabgp::start`] with ExaBGP-only settings.
    pub fn start_with(
        netns: &Netns,
        name: &str,
        config: BgpConfig,
        opts: ExabgpOptions,
    ) -> Result<Exabgp> {
        let inst = Instance::new(netns, name, config)?;
        let mut local = BTreeMap::new();
        for n in &inst.config.neighbors {
            if n.is_link_local() {
                return Err(Error::unsupported(name, "link-local neighbours"));
            }
            let l = match n.local_address {
                Some(l) => l,
                None => netns.source_for(n.address)?,
            };
            local.insert(n.address, l);
        }
        let mut e = Exabgp { inst, local, opts };
        e.start()?;
        Ok(e)
    }

    /// Sends one raw API command (e.g. `neighbor 198.18.0.1 announce route ...`).
    pub fn command(&self, line: &str) -> Result<()> {
        let path = self.inst.path("commands");
        let mut f = std::fs::File::options()
            .append(true)
            .create(true)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        writeln!(f, "{}", line.trim()).map_err(|e| Error::io(&path, e))
    }

    /// Every JSON message ExaBGP sent the API process so far.
    pub fn messages(&self) -> Result<Vec<Value>> {
        let path = self.inst.path("received.jsonl");
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(Error::io(&path, e)),
        };
        // The last line may be half written: parse complete lines only.
        Ok(text
            .split_inclusive('\n')
            .filter(|l| l.ends_with('\n') && !l.trim().is_empty())
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect())
    }

    fn render_config(&self) -> Result<String> {
        let cfg = &self.inst.config;
        let p = |f: &str| self.inst.path(f).to_string_lossy().into_owned();
        let mut s = String::new();
        let _ = writeln!(
            s,
            "process harness {{\n  run /usr/bin/python3 {} {} {} {};\n  encoder json;\n}}",
            p("api.py"),
            p("commands"),
            p("received.jsonl"),
            p("api.ready")
        );
        for n in &cfg.neighbors {
            let local = self.local.get(&n.address).copied().unwrap_or(n.address);
            let _ = writeln!(s, "neighbor {} {{", n.address);
            let _ = writeln!(
                s,
                "  router-id {};\n  local-address {local};",
                cfg.router_id
            );
            let _ = writeln!(s, "  local-as {};\n  peer-as {};", cfg.asn, n.remote_as);
            if let Some(hold) = n.hold_time {
                let _ = writeln!(s, "  hold-time {hold};");
            }
            if n.passive {
                s.push_str("  passive true;\n");
            }
            if let Some(pw) = &n.md5_password {
                let _ = writeln!(s, "  md5-password \"{pw}\";");
            }
            s.push_str("  family {\n");
            for f in &n.families {
                let _ = writeln!(s, "    {};", family_words(*f));
            }
            s.push_str("  }\n");
            let mut caps = String::new();
            match (n.add_path.send, n.add_path.receive) {
                (true, true) => caps.push_str("    add-path send/receive;\n"),
                (true, false) => caps.push_str("    add-path send;\n"),
                (false, true) => caps.push_str("    add-path receive;\n"),
                (false, false) => {}
            }
            if let Some(gr) = n.graceful_restart {
                let _ = writeln!(caps, "    graceful-restart {};", gr.restart_time);
            }
            if !self.opts.asn4 {
                caps.push_str("    asn4 disable;\n");
            }
            if !caps.is_empty() {
                let _ = write!(s, "  capability {{\n{caps}  }}\n");
            }
            s.push_str(if self.opts.packets {
                "  api {\n    processes [ harness ];\n    neighbor-changes;\n    receive { parsed; packets; consolidate; open; update; notification; }\n  }\n"
            } else {
                "  api {\n    processes [ harness ];\n    neighbor-changes;\n    receive { parsed; update; }\n  }\n"
            });
            let routes: Vec<&Route> = cfg
                .routes
                .iter()
                .filter(|r| n.families.contains(&r.family()))
                .collect();
            if !routes.is_empty() {
                s.push_str("  static {\n");
                for r in routes {
                    let _ = writeln!(s, "    route {};", self.route_spec(cfg.asn, n, r)?);
                }
                s.push_str("  }\n");
            }
            s.push_str("}\n");
        }
        Ok(s)
    }

    /// "P next-hop NH origin .. as-path [..] med .. local-preference .. community [..] ..."
    fn route_spec(&self, local_as: u32, n: &Neighbor, r: &Route) -> Result<String> {
        let a = &r.attrs;
        let local = self.local.get(&n.address).copied();
        let nh = match r.next_hop {
            Some(nh) => nh.to_string(),
            None if local.is_some_and(|l| l.is_ipv4() == r.prefix.addr().is_ipv4()) => {
                "self".into()
            }
            None => {
                return Err(Error::config(
                    &self.inst.name,
                    format!(
                        "{}: give a next hop for a route of the other address family than the session",
                        r.prefix
                    ),
                ));
            }
        };
        let mut s = format!(
            "{} next-hop {nh} origin {}",
            r.prefix,
            a.origin.unwrap_or(Origin::Igp).word()
        );
        // ExaBGP sends a configured AS_PATH as is: put the local AS in front for eBGP.
        if !a.as_path_prepend.is_empty() {
            let mut path: Vec<String> = Vec::new();
            if !n.is_ibgp(local_as) {
                path.push(local_as.to_string());
            }
            path.extend(a.as_path_prepend.iter().map(ToString::to_string));
            let _ = write!(s, " as-path [ {} ]", path.join(" "));
        }
        if let Some(med) = a.med {
            let _ = write!(s, " med {med}");
        }
        if let Some(lp) = a.local_pref {
            let _ = write!(s, " local-preference {lp}");
        }
        if !a.communities.is_empty() {
            let c: Vec<String> = a.communities.iter().map(ToString::to_string).collect();
            let _ = write!(s, " community [ {} ]", c.join(" "));
        }
        if !a.large_communities.is_empty() {
            let c: Vec<String> = a
                .large_communities
                .iter()
                .map(ToString::to_string)
                .collect();
            let _ = write!(s, " large-community [ {} ]", c.join(" "));
        }
        Ok(s)
    }

    /// The neighbours a route of this family goes to.
    fn neighbors_for(&self, family: Family) -> Vec<Neighbor> {
        self.inst
            .config
            .neighbors
            .iter()
            .filter(|n| n.families.contains(&family))
            .cloned()
            .collect()
    }
}

fn family_words(f: Family) -> &'static str {
    match f {
        Family::Ipv4Unicast => "ipv4 unicast",
        Family::Ipv6Unicast => "ipv6 unicast",
    }
}

impl Daemon for Exabgp {
    fn kind(&self) -> DaemonKind {
        DaemonKind::Exabgp
    }

    fn instance(&self) -> &Instance {
        &self.inst
    }

    fn start(&mut self) -> Result<()> {
        if !self.inst.procs.is_empty() {
            return Ok(());
        }
        self.inst.write("api.py", HELPER)?;
        // A fresh session history per start; commands already sent are not replayed.
        self.inst.write("commands", "")?;
        self.inst.write("received.jsonl", "")?;
        let _ = std::fs::remove_file(self.inst.path("api.ready"));
        let conf = self.inst.write("exabgp.conf", &self.render_config()?)?;
        self.inst.spawn(
            "exabgp",
            &[
                "env",
                "exabgp.daemon.user=root",
                "exabgp.daemon.daemonize=false",
                "exabgp.daemon.drop=false",
                "exabgp.api.cli=false",
                "exabgp.api.ack=false",
                "exabgp.api.respawn=false",
                "exabgp.log.destination=stdout",
                "exabgp",
                &conf.to_string_lossy(),
            ],
        )?;
        let ready = self.inst.path("api.ready");
        self.inst
            .wait_ready("ExaBGP API process", STARTUP, || ready.exists())
    }

    fn stop(&mut self) {
        self.inst.stop();
    }

    fn bgp_pid(&self) -> Option<u32> {
        // `env` execs exabgp, so the spawned PID is ExaBGP's.
        self.inst.last_pid()
    }

    fn sessions(&self) -> Result<Vec<Session>> {
        let replay = Replay::of(&self.messages()?);
        Ok(self
            .inst
            .config
            .neighbors
            .iter()
            .map(|n| Session {
                peer: n.address,
                remote_as: Some(n.remote_as),
                state: match replay.state.get(&n.address).map(String::as_str) {
                    Some("up") => SessionState::Established,
                    Some(other) => SessionState::Other(other.to_owned()),
                    None => SessionState::Other("not connected yet".into()),
                },
                hold_time: None,
                remote_router_id: None,
            })
            .collect())
    }

    fn rib(&self, family: Family) -> Result<Rib> {
        let replay = Replay::of(&self.messages()?);
        let mut rib = Rib::default();
        for ((fam, prefix, _peer, _path_id), path) in replay.routes {
            if fam == family {
                rib.push(prefix, path);
            }
        }
        Ok(rib)
    }

    fn announce(&mut self, route: Route) -> Result<()> {
        let asn = self.inst.config.asn;
        for n in self.neighbors_for(route.family()) {
            let spec = self.route_spec(asn, &n, &route)?;
            self.command(&format!("neighbor {} announce route {spec}", n.address))?;
        }
        self.inst.config.routes.retain(|r| r.prefix != route.prefix);
        self.inst.config.routes.push(route);
        Ok(())
    }

    fn withdraw(&mut self, prefix: IpNet) -> Result<()> {
        for n in self.neighbors_for(Family::of(&prefix)) {
            self.command(&format!("neighbor {} withdraw route {prefix}", n.address))?;
        }
        self.inst.config.routes.retain(|r| r.prefix != prefix);
        Ok(())
    }

    fn log_files(&self) -> Vec<PathBuf> {
        let mut v = self.inst.logs.clone();
        v.push(self.inst.path("received.jsonl"));
        v
    }
}

/// Key of a received path: family, prefix, peer, ADD-PATH id.
type PathKey = (Family, IpNet, IpAddr, Option<String>);

/// The state ExaBGP's message stream adds up to.
#[derive(Debug, Default)]
pub(crate) struct Replay {
    /// Last "state" per peer: connected, up, down.
    pub state: BTreeMap<IpAddr, String>,
    pub routes: BTreeMap<PathKey, RibPath>,
}

impl Replay {
    pub fn of(messages: &[Value]) -> Replay {
        let mut r = Replay::default();
        for m in messages {
            let Some(peer) = m["neighbor"]["address"]["peer"]
                .as_str()
                .and_then(|s| s.parse::<IpAddr>().ok())
            else {
                continue;
            };
            match m["type"].as_str() {
                Some("state") => {
                    let st = m["neighbor"]["state"].as_str().unwrap_or("?").to_owned();
                    if st != "up" {
                        // Session gone (or restarting): everything from it is withdrawn.
                        r.routes.retain(|(_, _, p, _), _| *p != peer);
                    }
                    r.state.insert(peer, st);
                }
                Some("update") => r.apply_update(peer, &m["neighbor"]["message"]["update"]),
                _ => {}
            }
        }
        r
    }

    fn apply_update(&mut self, peer: IpAddr, u: &Value) {
        if let Some(w) = u["withdraw"].as_object() {
            for (fam, nlris) in w {
                let Some(family) = parse_family(fam) else {
                    continue;
                };
                for nlri in nlris.as_array().into_iter().flatten() {
                    if let Some((prefix, id)) = parse_nlri(nlri) {
                        self.routes.remove(&(family, prefix, peer, id));
                    }
                }
            }
        }
        let Some(announce) = u["announce"].as_object() else {
            return;
        };
        let attrs = parse_attributes(&u["attribute"]);
        // One UPDATE may list an NLRI under its global and its link-local next hop: that is
        // one path with two next hops.
        let mut fresh: BTreeMap<PathKey, RibPath> = BTreeMap::new();
        for (fam, by_nh) in announce {
            let Some(family) = parse_family(fam) else {
                continue;
            };
            for (nh, nlris) in by_nh.as_object().into_iter().flatten() {
                let nh: Option<IpAddr> = nh.parse().ok();
                for nlri in nlris.as_array().into_iter().flatten() {
                    let Some((prefix, id)) = parse_nlri(nlri) else {
                        continue;
                    };
                    let path = fresh
                        .entry((family, prefix, peer, id))
                        .or_insert_with(|| RibPath {
                            peer: Some(peer),
                            ..attrs.clone()
                        });
                    if let Some(nh) = nh
                        && !path.next_hops.contains(&nh)
                    {
                        path.next_hops.push(nh);
                    }
                }
            }
        }
        self.routes.extend(fresh);
    }
}

fn parse_family(s: &str) -> Option<Family> {
    match s {
        "ipv4 unicast" => Some(Family::Ipv4Unicast),
        "ipv6 unicast" => Some(Family::Ipv6Unicast),
        _ => None,
    }
}

fn parse_nlri(v: &Value) -> Option<(IpNet, Option<String>)> {
    let prefix = v["nlri"].as_str().or(v.as_str())?.parse().ok()?;
    let id = v["path-information"].as_str().map(str::to_owned);
    Some((prefix, id))
}

fn parse_attributes(a: &Value) -> RibPath {
    let u32_of = |v: &Value| v.as_u64().and_then(|x| u32::try_from(x).ok());
    let as_path = match &a["as-path"] {
        Value::Array(items) => items
            .iter()
            .flat_map(|x| match x {
                Value::Array(set) => set.iter().filter_map(u32_of).collect::<Vec<_>>(),
                other => u32_of(other).into_iter().collect(),
            })
            .collect(),
        Value::String(s) => parse_as_path_text(s),
        Value::Object(o) => o
            .values()
            .flat_map(|seg| {
                seg["value"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(u32_of)
                    .collect::<Vec<_>>()
            })
            .collect(),
        _ => Vec::new(),
    };
    let communities = a["community"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| {
            let c = c.as_array()?;
            Some(crate::model::Community(
                u16::try_from(c.first()?.as_u64()?).ok()?,
                u16::try_from(c.get(1)?.as_u64()?).ok()?,
            ))
        })
        .collect();
    let large_communities = a["large-community"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| {
            let c = c.as_array()?;
            Some(LargeCommunity(
                u32_of(c.first()?)?,
                u32_of(c.get(1)?)?,
                u32_of(c.get(2)?)?,
            ))
        })
        .collect();
    RibPath {
        as_path,
        origin: a["origin"].as_str().and_then(Origin::parse),
        local_pref: u32_of(&a["local-preference"]),
        med: u32_of(&a["med"]),
        communities,
        large_communities,
        ..RibPath::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(s: &str) -> Value {
        serde_json::from_str(s).unwrap()
    }

    #[test]
    fn replay_merges_next_hops_withdraws_and_clears_on_down() {
        let peer = r#""neighbor": { "address": { "local": "198.18.0.2", "peer": "198.18.0.1" }, "asn": { "local": 65002, "peer": 65001 }"#;
        let msgs = vec![
            msg(&format!(
                r#"{{"type": "state", {peer}, "state": "up" }} }}"#
            )),
            msg(&format!(
                r#"{{"type": "update", {peer}, "direction": "receive", "message": {{ "update": {{ "attribute": {{ "origin": "igp", "as-path": [ 65001 ], "med": 10, "community": [ [ 65001, 100 ] ], "large-community": [ [ 65001, 1, 2 ] ] }}, "announce": {{ "ipv6 unicast": {{ "fd00::1": [ {{ "nlri": "fd00:100::/64" }} ], "fe80::1": [ {{ "nlri": "fd00:100::/64" }} ] }}, "ipv4 unicast": {{ "198.18.0.1": [ {{ "nlri": "198.18.100.0/24" }}, {{ "nlri": "198.18.101.0/24" }} ] }} }} }} }} }} }}"#
            )),
            msg(&format!(
                r#"{{"type": "update", {peer}, "direction": "receive", "message": {{ "update": {{ "withdraw": {{ "ipv4 unicast": [ {{ "nlri": "198.18.101.0/24" }} ] }} }} }} }} }}"#
            )),
        ];
        let r = Replay::of(&msgs);
        let p1: IpAddr = "198.18.0.1".parse().unwrap();
        assert_eq!(r.state.get(&p1).map(String::as_str), Some("up"));
        assert_eq!(r.routes.len(), 2);
        let v6 = r
            .routes
            .iter()
            .find(|(k, _)| k.0 == Family::Ipv6Unicast)
            .map(|(_, p)| p)
            .unwrap();
        assert_eq!(v6.next_hops.len(), 2);
        assert_eq!(v6.as_path, vec![65001]);
        assert_eq!(v6.large_communities, vec![LargeCommunity(65001, 1, 2)]);

        let mut msgs = msgs;
        msgs.push(msg(&format!(
            r#"{{"type": "state", {peer}, "state": "down", "reason": "x" }} }}"#
        )));
        let r = Replay::of(&msgs);
        assert!(r.routes.is_empty());
        assert_eq!(r.state.get(&p1).map(String::as_str), Some("down"));
    }
}
