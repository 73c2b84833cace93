//! `sart-resilience-bench`: the routing-plane resilience figures, each side by side with a peer
//! measured in the same run. Needs root; every daemon runs in namespaces it creates.
//!
//! ```sh
//! cargo build --release -p sartd -p sart -p sart-bench
//! SARTD_BIN=target/release/sartd SART_BIN=target/release/sart \
//!   target/release/sart-resilience-bench all
//! ```
//!
//! - `fib`: a BIRD source sends N IPv4 /24s to the DUT; time from the source enabling them until
//!   the DUT's kernel table holds N routes of the DUT's protocol. DUTs: sartd (FIB, proto bgp),
//!   FRR (bgpd + zebra, proto bgp), BIRD (kernel protocol, proto bird), and sartd sending to a
//!   `sartd fib` sidecar as sart's manifests run it (proto bgp).
//! - `bfd`: the DUT advertises a prefix to an FRR router over BGP with BFD 100 ms x 3; the DUT's
//!   link is cut (nftables drop); time until the router no longer has the route. DUTs: sartd,
//!   FRR (bfdd); and sartd without BFD (hold timer 9 s) for scale.
//! - `gr`: a client behind FRR pings an address behind sartd every 10 ms while sartd is killed
//!   and restarted; packets lost, with and without graceful restart.

#[path = "../bird.rs"]
#[allow(dead_code)]
mod bird;

use std::net::IpAddr;
use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use interop::frr::Frr;
use interop::ping::Pinger;
use interop::sartd::Sartd;
use interop::{BgpConfig, Daemon, Family, GracefulRestart, Link, Neighbor, Netns, Route};

use bird::{BirdProc, STATIC, source_config};

const V4: [Family; 1] = [Family::Ipv4Unicast];

#[derive(Parser)]
#[command(
    name = "sart-resilience-bench",
    about = "FIB install rate, BFD failover, GR packet loss"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Kernel install rate of N routes.
    Fib {
        #[arg(short = 'n', long, default_value_t = 100_000)]
        routes: u32,
    },
    /// Link cut to route gone at the router, with BFD.
    Bfd {
        #[arg(long, default_value_t = 5)]
        runs: usize,
    },
    /// Pings lost across a sartd restart, with and without graceful restart.
    Gr {
        #[arg(long, default_value_t = 3)]
        runs: usize,
    },
    /// All three with their defaults.
    All,
}

fn main() -> Result<()> {
    if !interop::is_root() {
        bail!("needs root: it creates network namespaces");
    }
    match Cli::parse().cmd {
        Cmd::Fib { routes } => fib(routes),
        Cmd::Bfd { runs } => bfd(runs),
        Cmd::Gr { runs } => gr(runs),
        Cmd::All => {
            fib(100_000)?;
            bfd(5)?;
            gr(3)
        }
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

// ------------------------------------------------------------------------------------ fib

/// Routes of `proto` in the main IPv4 table.
fn kernel_count(ns: &Netns, proto: &str) -> Result<usize> {
    let out = ns.exec(&["ip", "-4", "route", "show", "table", "main", "proto", proto])?;
    Ok(out.lines().count())
}

fn fib(n: u32) -> Result<()> {
    println!("## fib: {n} routes from a BIRD source into the DUT's kernel table");
    let mut results = Vec::new();
    for dut in ["sartd", "frr", "bird", "sartd-fib"] {
        let t = fib_one(dut, n).with_context(|| format!("fib {dut}"))?;
        println!(
            "fib {dut:>6}: {n} routes in the kernel after {:>8.0} ms = {:>8.0} routes/s",
            ms(t),
            f64::from(n) / t.as_secs_f64()
        );
        results.push((dut, t));
    }
    if let [(_, s), (_, f), (_, b), (_, sidecar)] = results[..] {
        println!(
            "fib ratios (time): sartd/frr {:.2}, sartd/bird {:.2}, sartd+sartd-fib/sartd {:.2}",
            s.as_secs_f64() / f.as_secs_f64(),
            s.as_secs_f64() / b.as_secs_f64(),
            sidecar.as_secs_f64() / s.as_secs_f64()
        );
    }
    Ok(())
}

fn fib_one(dut: &str, n: u32) -> Result<Duration> {
    let src_ns = Netns::new("fsrc")?;
    let dut_ns = Netns::new(&format!("f{dut}"))?;
    let l = Link::veth(&src_ns, &dut_ns, 1)?;
    let (s, d) = (l.a.ipv4(), l.b.ipv4());
    let source = BirdProc::start(
        &src_ns,
        "source",
        &source_config(s, 65001, &Neighbor::new(d.into(), 64512, &V4), n, false),
    )?;
    let cfg = BgpConfig::new(64512, d).neighbor(Neighbor::new(s.into(), 65001, &V4));
    let (_keep, proto): (Box<dyn std::any::Any>, &str) = match dut {
        "sartd" => (
            Box::new(Sartd::start_with(
                &dut_ns,
                "dut",
                cfg,
                5000,
                "fib_table: 254\n",
            )?),
            "bgp",
        ),
        // sart's layout: the speaker sends its routes to a `sartd fib` sidecar, which installs
        // them.
        "sartd-fib" => {
            let speaker =
                Sartd::start_with(&dut_ns, "dut", cfg, 5000, "fib_endpoint: 127.0.0.1:5010\n")?;
            let conf = dut_ns.dir().join("fib.yaml");
            std::fs::write(
                &conf,
                "channels:\n  - name: bgp-to-kernel\n    subscribers: [{protocol: bgp, endpoint: 127.0.0.1:5010}]\n    \
                 publishers: [{protocol: kernel, tables: [254]}]\n",
            )?;
            let bin = interop::sartd::sartd_binary();
            let argv = [
                bin.to_string_lossy().into_owned(),
                "fib".into(),
                "-f".into(),
                conf.to_string_lossy().into_owned(),
            ];
            let sidecar = dut_ns.spawn("sartd-fib", &argv, &dut_ns.dir().join("fib.log"))?;
            (Box::new((speaker, sidecar)), "bgp")
        }
        "frr" => (Box::new(Frr::start(&dut_ns, "dut", cfg)?), "bgp"),
        _ => {
            let conf = format!(
                "log \"@LOG@\" {{ info, warning, error, fatal }};\nrouter id {d};\n\
                 protocol device {{ scan time 10; }}\n\
                 protocol kernel {{ ipv4 {{ export all; }}; }}\n\
                 protocol bgp source_peer {{\n  local as 64512;\n  neighbor {s} as 65001;\n  \
                 connect retry time 1;\n  ipv4 {{ import all; export none; }};\n}}\n"
            );
            (Box::new(BirdProc::start(&dut_ns, "dut", &conf)?), "bird")
        }
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while source.established()? < 1 {
        if Instant::now() > deadline {
            bail!("{dut}: session not Established");
        }
        sleep(Duration::from_millis(50));
    }
    sleep(Duration::from_secs(2));
    let t0 = Instant::now();
    source.switch(STATIC, true)?;
    let want = usize::try_from(n)?;
    loop {
        let c = kernel_count(&dut_ns, proto)?;
        if c >= want {
            return Ok(t0.elapsed());
        }
        if t0.elapsed() > Duration::from_secs(300) {
            bail!("{dut}: {c} of {n} routes after 300 s");
        }
        sleep(Duration::from_millis(20));
    }
}

// ------------------------------------------------------------------------------------ bfd

fn bfd(runs: usize) -> Result<()> {
    println!("## bfd: link cut at the DUT -> the router drops the DUT's route ({runs} runs)");
    let s = bfd_one("sartd", true, runs)?;
    let f = bfd_one("frr", true, runs)?;
    let plain = bfd_one("sartd", false, 1)?;
    println!(
        "bfd ratio (median time): sartd/frr {:.2}; without BFD sartd takes {:.0} ms",
        s.as_secs_f64() / f.as_secs_f64(),
        ms(plain)
    );
    Ok(())
}

fn bfd_one(dut: &str, with_bfd: bool, runs: usize) -> Result<Duration> {
    let r_ns = Netns::new("brouter")?;
    let d_ns = Netns::new(&format!("b{dut}"))?;
    let l = Link::veth(&r_ns, &d_ns, 1)?;
    let (r, d) = (l.a.ipv4(), l.b.ipv4());
    let mut to_router = Neighbor::new(r.into(), 65100, &V4).hold_time(9);
    to_router.bfd = with_bfd;
    let mut to_dut = Neighbor::new(d.into(), 65101, &V4).hold_time(9);
    to_dut.bfd = with_bfd;
    let prefix: ipnet::IpNet = "198.18.250.0/24".parse()?;
    let cfg = BgpConfig::new(65101, d)
        .neighbor(to_router)
        .route(Route::new(prefix));
    let dut_d: Box<dyn Daemon> = match dut {
        "sartd" => Box::new(Sartd::start(&d_ns, "dut", cfg)?),
        _ => Box::new(Frr::start(&d_ns, "dut", cfg)?),
    };
    let router = Frr::start(&r_ns, "router", BgpConfig::new(65100, r).neighbor(to_dut))?;
    let has_route = || {
        router
            .rib(Family::Ipv4Unicast)
            .is_ok_and(|rib| !rib.paths(&prefix).is_empty())
    };
    let mut times = Vec::new();
    for run in 0..runs {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !has_route() || (with_bfd && !bfd_up(&router)) {
            if Instant::now() > deadline {
                bail!(
                    "{dut}: route or BFD not up before run {run}\n{}",
                    dut_d.logs()
                );
            }
            sleep(Duration::from_millis(50));
        }
        sleep(Duration::from_secs(1));
        l.b.cut()?;
        let t0 = Instant::now();
        while has_route() {
            if t0.elapsed() > Duration::from_secs(60) {
                bail!("{dut}: route still there 60 s after the cut");
            }
            sleep(Duration::from_millis(5));
        }
        let t = t0.elapsed();
        println!(
            "bfd {dut:>6} {}: run {run}: route gone {:>7.1} ms after the cut",
            if with_bfd {
                "bfd 100ms x3"
            } else {
                "no bfd, hold 9s"
            },
            ms(t)
        );
        times.push(t);
        l.b.restore()?;
    }
    let m = median(times);
    println!("bfd {dut:>6}: median {:.1} ms", ms(m));
    Ok(m)
}

fn bfd_up(router: &Frr) -> bool {
    router
        .vtysh_on("bfdd", &["show bfd peers json"])
        .is_ok_and(|s| s.contains("\"status\":\"up\""))
}

// ------------------------------------------------------------------------------------- gr

fn gr(runs: usize) -> Result<()> {
    println!("## gr: pings every 10 ms through FRR to sartd while sartd restarts ({runs} runs)");
    for (graceful, kill) in [(true, true), (true, false), (false, true)] {
        let mut lost_total = 0;
        let mut sent_total = 0;
        for run in 0..runs {
            let (sent, lost) = gr_one(graceful, kill, run)?;
            println!(
                "gr {} {}: run {run}: {lost} of {sent} lost",
                if graceful { "with GR   " } else { "without GR" },
                if kill { "SIGKILL" } else { "SIGTERM" }
            );
            lost_total += lost;
            sent_total += sent;
        }
        println!(
            "gr {} {}: {lost_total} of {sent_total} pings lost in {runs} restarts",
            if graceful { "with GR   " } else { "without GR" },
            if kill { "SIGKILL" } else { "SIGTERM" }
        );
    }
    Ok(())
}

fn gr_one(graceful: bool, kill: bool, run: usize) -> Result<(u64, u64)> {
    let c_ns = Netns::new("gcl")?;
    let f_ns = Netns::new("gfrr")?;
    let d_ns = Netns::new("gdut")?;
    let lc = Link::veth(&c_ns, &f_ns, 1)?;
    let ld = Link::veth(&f_ns, &d_ns, 2)?;
    c_ns.exec(&[
        "ip",
        "route",
        "add",
        "default",
        "via",
        &lc.b.ipv4().to_string(),
    ])?;
    d_ns.exec(&[
        "ip",
        "route",
        "add",
        "default",
        "via",
        &ld.a.ipv4().to_string(),
    ])?;
    let target: IpAddr = "198.18.251.1".parse()?;
    d_ns.add_loopback_addrs(&["198.18.251.1/32".parse()?])?;
    let gr = graceful.then_some(GracefulRestart { restart_time: 30 });
    let mut to_frr = Neighbor::new(ld.a.ipv4().into(), 65200, &V4).hold_time(9);
    to_frr.graceful_restart = gr;
    let mut dut = Sartd::start_with(
        &d_ns,
        "dut",
        BgpConfig::new(65201, ld.b.ipv4())
            .neighbor(to_frr)
            .route(Route::new("198.18.251.0/24".parse()?)),
        5000,
        if graceful {
            "graceful_restart: {restart_time: 30}\n"
        } else {
            ""
        },
    )?;
    let mut to_dut = Neighbor::new(ld.b.ipv4().into(), 65201, &V4).hold_time(9);
    to_dut.graceful_restart = gr;
    let frr = Frr::start(
        &f_ns,
        "frr",
        BgpConfig::new(65200, ld.a.ipv4()).neighbor(to_dut),
    )?;
    let peer: IpAddr = ld.b.ipv4().into();
    let reachable = || {
        c_ns.exec(&["ping", "-c1", "-W1", &target.to_string()])
            .is_ok()
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while !reachable() {
        if Instant::now() > deadline {
            bail!("run {run}: target not reachable\n{}", dut.logs());
        }
        sleep(Duration::from_millis(200));
    }
    let pinger = Pinger::start(&c_ns, target, Duration::from_millis(10))?;
    sleep(Duration::from_millis(500));
    if kill {
        dut.kill();
    } else {
        dut.stop();
    }
    sleep(Duration::from_secs(2));
    dut.start()?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while !frr.is_established(peer).unwrap_or(false) {
        if Instant::now() > deadline {
            bail!("run {run}: session not back\n{}", dut.logs());
        }
        sleep(Duration::from_millis(100));
    }
    sleep(Duration::from_secs(2));
    Ok(pinger.finish()?)
}
