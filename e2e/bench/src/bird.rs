//! BIRD instances with configs written here rather than by the harness: the benchmark needs
//! things the harness's generic config does not give (no kernel protocol, so no DUT or sink
//! writes the kernel FIB — sartd has none —, a disabled static protocol with N routes that the
//! source switches on and off, and cheap route counts).

use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use interop::process::{Proc, run};
use interop::{BgpConfig, Netns};

/// Name of the source's static protocol with the N benchmark routes.
pub const STATIC: &str = "bench4";

/// The N prefixes: consecutive /24s from 16.0.0.0 (only ever inside the namespaces).
pub fn prefix(i: u32) -> String {
    let a = Ipv4Addr::from(0x1000_0000u32 + (i << 8));
    format!("{a}/24")
}

/// One `bird -f` process with its own control socket.
pub struct BirdProc {
    // Field order: the process stops before the namespace handle goes.
    proc: Proc,
    ctl: PathBuf,
    _netns: Netns,
}

impl BirdProc {
    /// Writes `conf` to `<netns dir>/<name>/bird.conf` and starts BIRD on it.
    pub fn start(netns: &Netns, name: &str, conf: &str) -> Result<BirdProc> {
        let dir = netns.dir().join(name);
        std::fs::create_dir_all(&dir).with_context(|| dir.display().to_string())?;
        let conf_path = dir.join("bird.conf");
        let conf = conf.replace("@LOG@", &dir.join("bird.log").to_string_lossy());
        std::fs::write(&conf_path, conf).with_context(|| conf_path.display().to_string())?;
        let ctl = dir.join("bird.ctl");
        let s = |p: &PathBuf| p.to_string_lossy().into_owned();
        let proc = netns.spawn(
            "bird",
            &[
                "bird".to_owned(),
                "-f".into(),
                "-c".into(),
                s(&conf_path),
                "-s".into(),
                s(&ctl),
                "-P".into(),
                s(&dir.join("bird.pid")),
            ],
            &dir.join("bird.out"),
        )?;
        let b = BirdProc {
            proc,
            ctl,
            _netns: netns.clone(),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while b.birdc(&["show", "status"]).is_err() {
            if !b.proc.is_alive() || Instant::now() > deadline {
                bail!("bird {name} did not start:\n{}", b.logs());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(b)
    }

    pub fn pid(&self) -> u32 {
        self.proc.pid()
    }

    pub fn birdc(&self, args: &[&str]) -> Result<String> {
        let ctl = self.ctl.to_string_lossy().into_owned();
        let mut argv = vec!["birdc", "-s", &ctl];
        argv.extend_from_slice(args);
        let out = run(&argv)?;
        if out.contains("Unable to connect") || out.contains("syntax error") {
            bail!("birdc {}: {out}", args.join(" "));
        }
        Ok(out)
    }

    /// `birdc enable|disable PROTO`.
    pub fn switch(&self, proto: &str, on: bool) -> Result<()> {
        let out = self.birdc(&[if on { "enable" } else { "disable" }, proto])?;
        if out.contains(&format!(
            "{proto}: {}",
            if on { "enabled" } else { "disabled" }
        )) {
            Ok(())
        } else {
            bail!("birdc switch {proto} {on}: {out}")
        }
    }

    /// Routes in the IPv4 table (`show route count`, no route is printed).
    pub fn route_count(&self) -> Result<u64> {
        let out = self.birdc(&["show", "route", "count"])?;
        // "100000 of 100000 routes for 100000 networks in table master4"
        let mut total = 0;
        let mut seen = false;
        for line in out.lines().filter(|l| l.contains(" routes for ")) {
            if let Some(n) = line
                .split_whitespace()
                .next()
                .and_then(|w| w.parse::<u64>().ok())
            {
                total += n;
                seen = true;
            }
        }
        if !seen {
            bail!("unexpected `show route count` output: {out}");
        }
        Ok(total)
    }

    /// BGP protocols in state Established (`show protocols`, one line each).
    pub fn established(&self) -> Result<usize> {
        let out = self.birdc(&["show", "protocols"])?;
        Ok(out
            .lines()
            .filter(|l| l.contains(" BGP ") && l.contains("Established"))
            .count())
    }

    pub fn logs(&self) -> String {
        let dir = self.ctl.parent().map(PathBuf::from).unwrap_or_default();
        let mut s = String::new();
        for f in ["bird.out", "bird.log"] {
            let _ = writeln!(s, "----- {} -----", dir.join(f).display());
            s.push_str(&interop::process::tail(&dir.join(f), 40));
        }
        s
    }
}

/// Common head of every config: log, router id, interfaces. No kernel, no direct protocol.
fn head(router_id: Ipv4Addr) -> String {
    format!(
        "log \"@LOG@\" {{ info, warning, error, fatal }};\nrouter id {router_id};\n\
         protocol device {{ scan time 10; }}\n"
    )
}

/// One BGP protocol. `export`: a BIRD filter expression (`all`, `none`).
fn bgp(
    name: &str,
    local: Option<Ipv4Addr>,
    asn: u32,
    n: &interop::Neighbor,
    export: &str,
) -> String {
    let local = local.map(|l| format!("{l} ")).unwrap_or_default();
    let passive = if n.passive { "  passive on;\n" } else { "" };
    format!(
        "protocol bgp {name} {{\n  local {local}as {asn};\n  neighbor {} as {};\n{passive}  \
         connect retry time 1;\n  connect delay time 1;\n  error wait time 1, 5;\n  \
         ipv4 {{ import all; export {export}; }};\n}}\n",
        n.address, n.remote_as
    )
}

/// The source: N static /24s in a disabled protocol, exported to one eBGP neighbour. With
/// `distinct`, each carries its own large community (RFC 8092), which every DUT passes on, so
/// no two routes share an UPDATE.
pub fn source_config(
    router_id: Ipv4Addr,
    asn: u32,
    n: &interop::Neighbor,
    routes: u32,
    distinct: bool,
) -> String {
    let mut s = head(router_id);
    let _ = writeln!(s, "protocol static {STATIC} {{\n  disabled;\n  ipv4;");
    for i in 0..routes {
        if distinct {
            let _ = writeln!(
                s,
                "  route {} blackhole {{ bgp_large_community.add(({asn}, {i}, 0)); }};",
                prefix(i)
            );
        } else {
            let _ = writeln!(s, "  route {} blackhole;", prefix(i));
        }
    }
    s.push_str("}\n");
    s.push_str(&bgp("peer", None, asn, n, "where source = RTS_STATIC"));
    s
}

/// The sink: imports everything from one neighbour, exports nothing.
pub fn sink_config(router_id: Ipv4Addr, asn: u32, n: &interop::Neighbor) -> String {
    let mut s = head(router_id);
    s.push_str(&bgp("peer", None, asn, n, "none"));
    s
}

/// BIRD as the device under test, from the same `BgpConfig` the harness renders for the
/// others: every neighbour imports and exports everything; iBGP neighbours (the fan-in peers,
/// not directly connected) use the router id as local address.
pub fn dut_config(cfg: &BgpConfig) -> String {
    let mut s = head(cfg.router_id);
    for n in &cfg.neighbors {
        let local = n.is_ibgp(cfg.asn).then_some(cfg.router_id);
        s.push_str(&bgp(&n.ident(), local, cfg.asn, n, "all"));
    }
    s
}
