//! BIRD 2: one `bird -f` per instance with its own control socket (`-s`), queried with
//! `birdc -s SOCK` (text output, parsed here). Originated routes are static routes in
//! `protocol static sarti4|sarti6`; runtime announce/withdraw rewrites the config and runs
//! `birdc configure`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;

use crate::daemon::{Daemon, DaemonKind, Instance};
use crate::error::{Error, Result};
use crate::model::{
    BgpConfig, Community, Family, LargeCommunity, Neighbor, Origin, Path as RibPath, Rib, Route,
    Session, SessionState, parse_as_path_text,
};
use crate::netns::Netns;
use crate::process::run;

const STARTUP: Duration = Duration::from_secs(15);
const STATIC4: &str = "sarti4";
const STATIC6: &str = "sarti6";

/// A BIRD 2 instance.
#[derive(Debug)]
pub struct Bird {
    inst: Instance,
}

impl Bird {
    pub fn start(netns: &Netns, name: &str, config: BgpConfig) -> Result<Bird> {
        let inst = Instance::new(netns, name, config)?;
        let mut bird = Bird { inst };
        bird.start()?;
        Ok(bird)
    }

    fn ctl(&self) -> PathBuf {
        self.inst.path("bird.ctl")
    }

    /// `birdc -s SOCK ARGS...`; returns stdout without the "BIRD x.y ready." banner.
    pub fn birdc(&self, args: &[&str]) -> Result<String> {
        let ctl = self.ctl().to_string_lossy().into_owned();
        let mut argv = vec!["birdc", "-s", &ctl];
        argv.extend_from_slice(args);
        let out = run(&argv)?;
        let body: String = out
            .lines()
            .filter(|l| !(l.starts_with("BIRD ") && l.ends_with(" ready.")))
            .map(|l| format!("{l}\n"))
            .collect();
        if body.starts_with("syntax error") || body.contains("Unable to connect") {
            return Err(Error::Command {
                cmd: format!("birdc {}", args.join(" ")),
                status: "error".into(),
                stderr: body,
            });
        }
        Ok(body)
    }

    fn render_config(&self) -> String {
        let cfg = &self.inst.config;
        let mut s = String::new();
        let log = self.inst.path("bird.log");
        let _ = writeln!(s, "log \"{}\" all;", log.display());
        let _ = writeln!(s, "router id {};", cfg.router_id);
        s.push_str("protocol device { scan time 2; }\n");
        // Connected subnets in the tables, so iBGP next hops resolve (gateway recursive).
        s.push_str("protocol direct { ipv4; ipv6; }\n");
        let merge = if cfg.multipath {
            " merge paths on;"
        } else {
            ""
        };
        s.push_str(&format!(
            "protocol kernel {{ ipv4 {{ export where source = RTS_BGP; }};{merge} }}\n\
             protocol kernel {{ ipv6 {{ export where source = RTS_BGP; }};{merge} }}\n"
        ));
        for (name, family, chan) in [
            (STATIC4, Family::Ipv4Unicast, "ipv4"),
            (STATIC6, Family::Ipv6Unicast, "ipv6"),
        ] {
            let _ = writeln!(s, "protocol static {name} {{\n  {chan};");
            for r in cfg.routes.iter().filter(|r| r.family() == family) {
                s.push_str(&static_route(r));
            }
            s.push_str("}\n");
        }
        if cfg.neighbors.iter().any(|n| n.bfd) {
            // Authentication is per BFD protocol block, not per BGP neighbour (BIRD 2.0).
            let auth = cfg
                .neighbors
                .iter()
                .find_map(|n| n.bfd_auth.as_ref())
                .map(|a| {
                    format!(
                        " authentication {}keyed sha1; password \"{}\" {{ id {}; }};",
                        if a.meticulous { "meticulous " } else { "" },
                        a.password,
                        a.key_id
                    )
                })
                .unwrap_or_default();
            let _ = writeln!(
                s,
                "protocol bfd {{\n  interface \"*\" {{ interval 100 ms; multiplier 3;{auth} }};\n  \
                 multihop {{ interval 100 ms; multiplier 3;{auth} }};\n}}"
            );
        }
        for n in &cfg.neighbors {
            s.push_str(&bgp_protocol(cfg.asn, n));
        }
        s
    }

    fn configure(&self) -> Result<()> {
        self.inst.write("bird.conf", &self.render_config())?;
        let out = self.birdc(&["configure"])?;
        if out.contains("Reconfigured") || out.contains("Reconfiguration in progress") {
            Ok(())
        } else {
            Err(Error::Command {
                cmd: "birdc configure".into(),
                status: "error".into(),
                stderr: out,
            })
        }
    }

    /// BGP protocol name -> neighbour address.
    fn protocol_peers(&self) -> BTreeMap<String, IpAddr> {
        self.inst
            .config
            .neighbors
            .iter()
            .map(|n| (n.ident(), n.address))
            .collect()
    }
}

fn static_route(r: &Route) -> String {
    let a = &r.attrs;
    let mut body = String::new();
    for c in &a.communities {
        let _ = write!(body, " bgp_community.add(({},{}));", c.0, c.1);
    }
    for c in &a.large_communities {
        let _ = write!(body, " bgp_large_community.add(({},{},{}));", c.0, c.1, c.2);
    }
    if let Some(lp) = a.local_pref {
        let _ = write!(body, " bgp_local_pref = {lp};");
    }
    if let Some(med) = a.med {
        let _ = write!(body, " bgp_med = {med};");
    }
    if let Some(o) = a.origin {
        let o = match o {
            Origin::Igp => "ORIGIN_IGP",
            Origin::Egp => "ORIGIN_EGP",
            Origin::Incomplete => "ORIGIN_INCOMPLETE",
        };
        let _ = write!(body, " bgp_origin = {o};");
    }
    // prepend() puts an ASN in front: prepend the last one first to keep the given order.
    for asn in a.as_path_prepend.iter().rev() {
        let _ = write!(body, " bgp_path.prepend({asn});");
    }
    let dest = match r.next_hop {
        Some(nh) => format!("via {nh}"),
        None => "blackhole".into(),
    };
    if body.is_empty() {
        format!("  route {} {dest};\n", r.prefix)
    } else {
        format!("  route {} {dest} {{{body} }};\n", r.prefix)
    }
}

fn bgp_protocol(asn: u32, n: &Neighbor) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "protocol bgp {} {{", n.ident());
    match n.local_address {
        Some(l) => {
            let _ = writeln!(s, "  local {l} as {asn};");
        }
        None => {
            let _ = writeln!(s, "  local as {asn};");
        }
    }
    let _ = writeln!(s, "  neighbor {} as {};", n.address, n.remote_as);
    if let Some(ifname) = &n.interface {
        let _ = writeln!(s, "  interface \"{ifname}\";\n  direct;");
    }
    if n.passive {
        s.push_str("  passive on;\n");
    }
    if let Some(hold) = n.hold_time {
        let _ = writeln!(s, "  hold time {hold};");
    }
    if let Some(ka) = n.effective_keepalive() {
        let _ = writeln!(s, "  keepalive time {ka};");
    }
    let retry = n.connect_retry.max(1);
    let _ = writeln!(
        s,
        "  connect retry time {retry};\n  connect delay time 1;\n  error wait time 1, 5;"
    );
    if n.ttl_security {
        s.push_str("  ttl security on;\n");
    }
    if let Some(pw) = &n.md5_password {
        let _ = writeln!(s, "  password \"{pw}\";");
    }
    if n.bfd {
        s.push_str("  bfd on;\n");
    }
    if n.bfd_multihop {
        // BIRD runs multihop BFD for the BGP sessions that are multihop.
        s.push_str("  multihop;\n");
    }
    if let Some(gr) = n.graceful_restart {
        let _ = writeln!(
            s,
            "  graceful restart on;\n  graceful restart time {};",
            gr.restart_time
        );
    }
    if n.route_reflector_client {
        s.push_str("  rr client;\n");
    }
    for f in &n.families {
        let chan = match f {
            Family::Ipv4Unicast => "ipv4",
            Family::Ipv6Unicast => "ipv6",
        };
        let _ = writeln!(s, "  {chan} {{");
        // BIRD sends eBGP peers only a MED set by the export filter ("fresh"): re-set the
        // MED of our static routes there.
        s.push_str(
            "    import all;\n    export filter {\n      if source !~ [ RTS_STATIC, RTS_BGP ] then reject;\n      \
             if source = RTS_STATIC && defined(bgp_med) then bgp_med = bgp_med;\n      accept;\n    };\n",
        );
        if let Some(max) = n.max_prefix {
            let _ = writeln!(s, "    receive limit {max} action disable;");
        }
        if n.extended_next_hop && *f == Family::Ipv4Unicast {
            s.push_str("    extended next hop on;\n");
        }
        match (n.add_path.send, n.add_path.receive) {
            (true, true) => s.push_str("    add paths on;\n"),
            (true, false) => s.push_str("    add paths tx;\n"),
            (false, true) => s.push_str("    add paths rx;\n"),
            (false, false) => {}
        }
        s.push_str("  };\n");
    }
    s.push_str("}\n");
    s
}

impl Bird {
    /// Starts BIRD with `extra` arguments after the usual ones.
    fn spawn(&mut self, extra: &[&str]) -> Result<()> {
        if !self.inst.procs.is_empty() {
            return Ok(());
        }
        let conf = self.inst.write("bird.conf", &self.render_config())?;
        self.inst.log("bird.log");
        let ctl = self.ctl();
        let _ = std::fs::remove_file(&ctl);
        let p = |x: &Path| x.to_string_lossy().into_owned();
        let pid = self.inst.path("bird.pid");
        self.inst.spawn(
            "bird",
            &[
                "bird",
                "-f",
                "-c",
                &p(&conf),
                "-s",
                &p(&ctl),
                "-P",
                &p(&pid),
            ]
            .into_iter()
            .chain(extra.iter().copied())
            .collect::<Vec<_>>(),
        )?;
        self.inst
            .wait_ready("bird control socket", STARTUP, || ctl.exists())?;
        self.inst.wait_ready("birdc answering", STARTUP, || {
            self.birdc(&["show", "status"]).is_ok()
        })
    }

    /// `birdc graceful restart`: BIRD exits without closing its sessions, as a restarting
    /// speaker (RFC 4724); then BIRD again on `config` with `-R` (graceful restart recovery).
    pub fn graceful_restart(&mut self, config: BgpConfig) -> Result<()> {
        let _ = self.birdc(&["graceful", "restart"]);
        let deadline = std::time::Instant::now() + STARTUP;
        while self.inst.is_running() {
            if std::time::Instant::now() > deadline {
                return Err(self
                    .inst
                    .startup_error("bird did not exit on `graceful restart`"));
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        self.inst.stop();
        self.inst.config = config;
        self.spawn(&["-R"])
    }
}

impl Daemon for Bird {
    fn kind(&self) -> DaemonKind {
        DaemonKind::Bird
    }

    fn instance(&self) -> &Instance {
        &self.inst
    }

    fn start(&mut self) -> Result<()> {
        self.spawn(&[])
    }

    fn stop(&mut self) {
        self.inst.stop();
    }

    fn bgp_pid(&self) -> Option<u32> {
        self.inst.last_pid()
    }

    fn sessions(&self) -> Result<Vec<Session>> {
        let out = self.birdc(&["show", "protocols", "all"])?;
        Ok(parse_protocols(&out))
    }

    fn rib(&self, family: Family) -> Result<Rib> {
        let table = match family {
            Family::Ipv4Unicast => "master4",
            Family::Ipv6Unicast => "master6",
        };
        let out = self.birdc(&["show", "route", "table", table, "all"])?;
        let peers = self.protocol_peers();
        parse_routes(&self.inst.name, &out, &peers)
    }

    fn announce(&mut self, route: Route) -> Result<()> {
        let old = self.inst.config.routes.clone();
        self.inst.config.routes.retain(|r| r.prefix != route.prefix);
        self.inst.config.routes.push(route);
        self.configure()
            .inspect_err(|_| self.inst.config.routes = old)
    }

    fn withdraw(&mut self, prefix: IpNet) -> Result<()> {
        let old = self.inst.config.routes.clone();
        self.inst.config.routes.retain(|r| r.prefix != prefix);
        self.configure()
            .inspect_err(|_| self.inst.config.routes = old)
    }

    fn log_files(&self) -> Vec<PathBuf> {
        self.inst.logs.clone()
    }
}

/// Parses `show protocols all`: one block per protocol, BGP blocks carry
/// "BGP state:", "Neighbor address:", "Neighbor AS:", "Neighbor ID:", "Hold timer: x/y".
pub(crate) fn parse_protocols(out: &str) -> Vec<Session> {
    let mut sessions = Vec::new();
    let mut cur: Option<(bool, Session)> = None; // (is BGP, session)
    let flush = |cur: &mut Option<(bool, Session)>, sessions: &mut Vec<Session>| {
        if let Some((true, s)) = cur.take()
            && !s.peer.is_unspecified()
        {
            sessions.push(s);
        }
    };
    for line in out.lines() {
        if line.trim().is_empty() {
            continue;
        }
        if !line.starts_with(' ') && !line.starts_with('\t') {
            flush(&mut cur, &mut sessions);
            if line.starts_with("Name ") {
                continue;
            }
            let mut cols = line.split_whitespace();
            let _name = cols.next();
            let is_bgp = cols.next() == Some("BGP");
            cur = Some((
                is_bgp,
                Session {
                    peer: IpAddr::from([0, 0, 0, 0]),
                    remote_as: None,
                    state: SessionState::Other("unknown".into()),
                    hold_time: None,
                    remote_router_id: None,
                },
            ));
            continue;
        }
        let Some((true, s)) = cur.as_mut() else {
            continue;
        };
        let Some((key, value)) = line.trim().split_once(':') else {
            continue;
        };
        let value = value.trim();
        match key.trim() {
            "BGP state" => s.state = SessionState::parse(value),
            "Neighbor address" => {
                // Link-local neighbours print as "fe80::1%eth0".
                let addr = value.split('%').next().unwrap_or(value);
                if let Ok(a) = addr.parse() {
                    s.peer = a;
                }
            }
            "Neighbor AS" => s.remote_as = value.parse().ok(),
            "Neighbor ID" => s.remote_router_id = value.parse().ok(),
            "Hold timer" => {
                s.hold_time = value
                    .split('/')
                    .nth(1)
                    .and_then(|h| h.trim().parse::<f64>().ok())
                    .map(Duration::from_secs_f64);
            }
            _ => {}
        }
    }
    flush(&mut cur, &mut sessions);
    sessions
}

/// Parses `show route ... all`:
///
/// ```text
/// Table master4:
/// 198.18.100.0/24      unicast [n_198_18_0_1 09:22:19.031] * (100) [AS65001i]
/// <TAB>via 198.18.0.1 on eth0
/// <TAB>Type: BGP univ
/// <TAB>BGP.as_path: 65001
/// <TAB>BGP.next_hop: 198.18.0.1
/// <TAB>BGP.community: (65001,100)
///                      unicast [n_198_18_0_3 09:22:20.001] (100) [AS65003i]
/// ```
///
/// A line starting with text begins a prefix, one starting with spaces another route for the
/// same prefix, one starting with a tab (`<TAB>` above) belongs to the current route. Only routes of the
/// harness's static protocols and of BGP protocols are returned.
pub(crate) fn parse_routes(
    daemon: &str,
    out: &str,
    peers: &BTreeMap<String, IpAddr>,
) -> Result<Rib> {
    struct Cur {
        prefix: IpNet,
        keep: bool,
        path: RibPath,
        vias: Vec<IpAddr>,
        bgp_next_hops: Vec<IpAddr>,
    }
    let mut rib = Rib::default();
    let mut cur: Option<Cur> = None;
    let mut prefix: Option<IpNet> = None;
    let finish = |cur: &mut Option<Cur>, rib: &mut Rib| {
        if let Some(mut c) = cur.take()
            && c.keep
        {
            c.path.next_hops = if c.bgp_next_hops.is_empty() {
                c.vias
            } else {
                c.bgp_next_hops
            };
            rib.push(c.prefix, c.path);
        }
    };
    for line in out.lines() {
        if line.trim().is_empty() || line.starts_with("Table ") {
            finish(&mut cur, &mut rib);
            continue;
        }
        if let Some(attr) = line.strip_prefix('\t') {
            let Some(c) = cur.as_mut() else { continue };
            parse_route_attr(attr.trim(), &mut c.path, &mut c.vias, &mut c.bgp_next_hops);
            continue;
        }
        // A route header, with or without the prefix.
        finish(&mut cur, &mut rib);
        let rest = if line.starts_with(' ') {
            line.trim_start()
        } else {
            let (p, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
            prefix = Some(
                p.parse()
                    .map_err(|e| Error::parse(daemon, "show route", format!("{line:?}: {e}")))?,
            );
            rest.trim_start()
        };
        let Some(pfx) = prefix else { continue };
        let proto = rest
            .split_once('[')
            .and_then(|(_, r)| r.split_whitespace().next())
            .map(|p| p.trim_end_matches(']'))
            .unwrap_or("");
        let after = rest.split_once(']').map_or("", |(_, r)| r);
        let best = after.trim_start().starts_with('*');
        let peer = peers.get(proto).copied();
        let keep = peer.is_some() || proto == STATIC4 || proto == STATIC6;
        cur = Some(Cur {
            prefix: pfx,
            keep,
            path: RibPath {
                best,
                multipath: best,
                peer,
                ..RibPath::default()
            },
            vias: Vec::new(),
            bgp_next_hops: Vec::new(),
        });
    }
    finish(&mut cur, &mut rib);
    Ok(rib)
}

fn parse_route_attr(
    attr: &str,
    path: &mut RibPath,
    vias: &mut Vec<IpAddr>,
    bgp_nh: &mut Vec<IpAddr>,
) {
    if let Some(rest) = attr.strip_prefix("via ") {
        if let Some(a) = rest.split_whitespace().next().and_then(|a| a.parse().ok()) {
            vias.push(a);
        }
        return;
    }
    let Some((key, value)) = attr.split_once(':') else {
        return;
    };
    let value = value.trim();
    match key {
        "BGP.origin" => path.origin = Origin::parse(value),
        "BGP.as_path" => path.as_path = parse_as_path_text(value),
        "BGP.next_hop" => {
            *bgp_nh = value
                .split_whitespace()
                .filter_map(|a| a.parse().ok())
                .collect();
        }
        "BGP.med" => path.med = value.parse().ok(),
        "BGP.local_pref" => path.local_pref = value.parse().ok(),
        "BGP.community" => path.communities = parse_tuples(value).filter_map(community).collect(),
        "BGP.large_community" => {
            path.large_communities = parse_tuples(value).filter_map(large_community).collect();
        }
        _ => {}
    }
}

/// "(1,2) (3, 4, 5)" -> [[1,2], [3,4,5]]
fn parse_tuples(s: &str) -> impl Iterator<Item = Vec<u32>> + '_ {
    s.split('(').filter_map(|t| {
        let inner = t.split(')').next()?.trim();
        if inner.is_empty() {
            return None;
        }
        inner
            .split(',')
            .map(|x| x.trim().parse().ok())
            .collect::<Option<Vec<u32>>>()
    })
}

fn community(v: Vec<u32>) -> Option<Community> {
    match v.as_slice() {
        [a, b] => Some(Community(u16::try_from(*a).ok()?, u16::try_from(*b).ok()?)),
        _ => None,
    }
}

fn large_community(v: Vec<u32>) -> Option<LargeCommunity> {
    match v.as_slice() {
        [a, b, c] => Some(LargeCommunity(*a, *b, *c)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROUTES: &str = "Table master4:
198.18.100.0/24      unicast [n_198_18_0_1 09:22:19.031] * (100) [AS65001i]
\tvia 198.18.0.1 on eth0
\tType: BGP univ
\tBGP.origin: IGP
\tBGP.as_path: 65001 {65005 65006}
\tBGP.next_hop: 198.18.0.1
\tBGP.med: 10
\tBGP.local_pref: 100
\tBGP.community: (65001,100) (65001,200)
\tBGP.large_community: (65001, 1, 2) (4200000001, 3, 4)
                     unicast [n_198_18_0_3 09:22:20.001] (100) [AS65003i]
\tvia 198.18.0.3 on eth0
\tType: BGP univ
\tBGP.origin: IGP
\tBGP.as_path: 65003
\tBGP.next_hop: 198.18.0.3
\tBGP.local_pref: 100
198.18.0.0/24        unicast [direct1 09:22:13.925] * (240)
\tdev eth0
\tType: device univ
198.18.200.0/24      blackhole [sarti4 09:24:15.682] * (200)
\tType: static univ
\tBGP.med: 20

Table master6:
fd00:100::/64        unicast [n_fd00__1 09:22:19.032] * (100) [AS65001i]
\tvia fd00::1 on eth0
\tType: BGP univ
\tBGP.origin: IGP
\tBGP.as_path: 65001
\tBGP.next_hop: fd00::1 fe80::1
\tBGP.local_pref: 100
";

    #[test]
    fn routes_with_several_paths_sets_and_both_tables() {
        let peers: BTreeMap<String, IpAddr> = [
            ("n_198_18_0_1".to_owned(), "198.18.0.1".parse().unwrap()),
            ("n_198_18_0_3".to_owned(), "198.18.0.3".parse().unwrap()),
            ("n_fd00__1".to_owned(), "fd00::1".parse().unwrap()),
        ]
        .into();
        let rib = parse_routes("bird", ROUTES, &peers).unwrap();
        let p100: IpNet = "198.18.100.0/24".parse().unwrap();
        let paths = rib.paths(&p100);
        assert_eq!(paths.len(), 2);
        assert!(paths[0].best && !paths[1].best);
        assert_eq!(paths[0].as_path, vec![65001, 65005, 65006]);
        assert_eq!(
            paths[0].communities,
            vec![Community(65001, 100), Community(65001, 200)]
        );
        assert_eq!(
            paths[0].large_communities,
            vec![
                LargeCommunity(65001, 1, 2),
                LargeCommunity(4200000001, 3, 4)
            ]
        );
        assert_eq!(paths[0].med, Some(10));
        assert_eq!(paths[1].peer, Some("198.18.0.3".parse().unwrap()));
        assert_eq!(paths[1].med, None);
        // direct routes are not ours; the static one is local
        assert!(!rib.contains(&"198.18.0.0/24".parse().unwrap()));
        let local = rib.best(&"198.18.200.0/24".parse().unwrap()).unwrap();
        assert!(local.is_local());
        let v6 = rib.best(&"fd00:100::/64".parse().unwrap()).unwrap();
        assert_eq!(v6.next_hops.len(), 2);
    }

    #[test]
    fn protocols_all() {
        let out = "Name       Proto      Table      State  Since         Info
device1    Device     ---        up     09:24:15.682

n_198_18_0_1 BGP        ---        up     09:24:16.000  Established
  BGP state:          Established
    Neighbor address: 198.18.0.1
    Neighbor AS:      65001
    Local AS:         65002
    Neighbor ID:      198.18.0.1
    Hold timer:       2.512/3
    Keepalive timer:  0.321/1
  Channel ipv4
    State:          UP

n_fe80__1  BGP        ---        start  09:24:15.682  Active        Socket: Connection refused
  BGP state:          Active
    Neighbor address: fe80::1%eth0
    Neighbor AS:      65003
    Connect delay:    3.940/5
";
        let s = parse_protocols(out);
        assert_eq!(s.len(), 2);
        assert!(s[0].is_established());
        assert_eq!(s[0].remote_as, Some(65001));
        assert_eq!(s[0].hold_time, Some(Duration::from_secs(3)));
        assert_eq!(s[1].peer, "fe80::1".parse::<IpAddr>().unwrap());
        assert_eq!(s[1].state, SessionState::Active);
    }

    #[test]
    fn static_routes_and_protocols_render() {
        let r = Route::new("198.18.1.0/24".parse().unwrap())
            .community(1, 2)
            .med(5)
            .prepend(&[7, 8]);
        let s = static_route(&r);
        assert!(s.contains("blackhole"));
        // prepend(8) then prepend(7): path 7 8
        assert!(s.find("prepend(8)").unwrap() < s.find("prepend(7)").unwrap());
        let n = Neighbor::new("198.18.0.1".parse().unwrap(), 65001, &[Family::Ipv4Unicast])
            .hold_time(3);
        let p = bgp_protocol(65002, &n);
        assert!(p.contains("hold time 3;") && p.contains("keepalive time 1;"));
    }
}
