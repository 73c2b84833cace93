//! `sart-bench`: end-to-end BGP benchmarks of `sartd bgp` against BIRD, FRR and GoBGP, all
//! measured in the same run, in network namespaces built with the interop harness. Needs root.
//!
//! ```sh
//! cargo build --release -p sartd -p sart && cargo build --release -p sart-bench
//! SARTD_BIN=target/release/sartd SART_BIN=target/release/sart target/release/sart-bench all
//! ```
//!
//! `relay`: N IPv4 /24s from a BIRD source through the DUT to a BIRD sink (load and withdraw
//! time, DUT bytes per route). `fanin`: P peers open sessions to the DUT at once (time until the
//! DUT reports all Established, DUT memory). See docs/benchmarks.md for method and results.

mod bird;
mod capture;
mod dut;
mod fanin;
mod memory;
mod peers;
mod relay;

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Result, bail};
use clap::{Parser, Subcommand};

use dut::Kind;

#[derive(Parser)]
#[command(
    name = "sart-bench",
    about = "BGP benchmarks: sartd vs BIRD, FRR, GoBGP"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(clap::Args, Clone)]
struct Common {
    /// DUTs, in the order they run.
    #[arg(long, value_delimiter = ',', default_value = "sartd,bird,frr,gobgp")]
    duts: Vec<Kind>,
    /// Poll interval of the state/route-count queries.
    #[arg(long, default_value_t = 20)]
    poll_ms: u64,
    /// Give up on one measurement after this long.
    #[arg(long, default_value_t = 180)]
    timeout_s: u64,
}

#[derive(clap::Args, Clone)]
struct RelayArgs {
    /// Routes the source originates.
    #[arg(long, short = 'n', default_value_t = 100_000)]
    routes: u32,
    /// Load/withdraw rounds per DUT (the median is reported).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// A third peer of the DUT opens its session and then never reads: the others must converge
    /// as fast as without it.
    #[arg(long)]
    stuck_peer: bool,
    /// Every route with its own attribute set (a large community each): one UPDATE per route.
    #[arg(long)]
    distinct: bool,
}

#[derive(clap::Args, Clone)]
struct FaninArgs {
    /// Peers opening sessions at once.
    #[arg(long, default_value_t = 500)]
    peers: u32,
    /// Runs per DUT (the median is reported).
    #[arg(long, default_value_t = 3)]
    fanin_runs: usize,
}

#[derive(Subcommand)]
enum Cmd {
    /// Relay benchmark.
    Relay {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        relay: RelayArgs,
        /// N = 10,000 and one round, for trying things.
        #[arg(long)]
        quick: bool,
    },
    /// Fan-in benchmark.
    Fanin {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        fanin: FaninArgs,
        /// 100 peers, one run.
        #[arg(long)]
        quick: bool,
    },
    /// Both benchmarks.
    All {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        relay: RelayArgs,
        #[command(flatten)]
        fanin: FaninArgs,
    },
    /// (internal) the fan-in peer generator, run inside the peers' namespace.
    #[command(hide = true)]
    Peers {
        #[arg(long)]
        dut: Ipv4Addr,
        #[arg(long)]
        count: u32,
        #[arg(long)]
        asn: u32,
        #[arg(long)]
        go: PathBuf,
    },
}

fn main() -> Result<()> {
    match Cli::parse().cmd {
        Cmd::Peers {
            dut,
            count,
            asn,
            go,
        } => peers::run(dut, count, asn, go),
        Cmd::Relay {
            common,
            mut relay,
            quick,
        } => {
            if quick {
                relay.routes = 10_000;
                relay.rounds = 1;
            }
            preflight()?;
            run_relay(&common, &relay);
            Ok(())
        }
        Cmd::Fanin {
            common,
            mut fanin,
            quick,
        } => {
            if quick {
                fanin.peers = 100;
                fanin.fanin_runs = 1;
            }
            preflight()?;
            run_fanin(&common, &fanin);
            Ok(())
        }
        Cmd::All {
            common,
            relay,
            fanin,
        } => {
            preflight()?;
            run_relay(&common, &relay);
            run_fanin(&common, &fanin);
            Ok(())
        }
    }
}

fn preflight() -> Result<()> {
    if !interop::is_root() {
        bail!("sart-bench needs root (network namespaces)");
    }
    for (what, path) in [
        ("sartd", interop::sartd::sartd_binary()),
        ("sart", interop::sartd::sart_binary()),
    ] {
        if !path.exists() {
            bail!(
                "{what} not found at {} (cargo build --release -p sartd -p sart; SARTD_BIN/SART_BIN)",
                path.display()
            );
        }
        eprintln!("{what}: {}", path.display());
    }
    Ok(())
}

fn median(v: &[Duration]) -> Option<Duration> {
    let mut v = v.to_vec();
    v.sort();
    v.get(v.len() / 2).copied()
}

fn secs(d: Option<Duration>) -> String {
    d.map_or("-".into(), |d| format!("{:.3}", d.as_secs_f64()))
}

fn mib(b: u64) -> String {
    format!("{:.1}", b as f64 / (1024.0 * 1024.0))
}

/// `a / b` as "0.42x", or "-".
fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}x", a / b),
        _ => "-".into(),
    }
}

fn run_relay(c: &Common, r: &RelayArgs) {
    let p = relay::Params {
        routes: r.routes,
        rounds: r.rounds.max(1),
        poll: Duration::from_millis(c.poll_ms),
        timeout: Duration::from_secs(c.timeout_s),
        stuck_peer: r.stuck_peer,
        distinct: r.distinct,
    };
    eprintln!(
        "relay: N = {}{}, {} rounds, poll {} ms{}",
        p.routes,
        if p.distinct { " distinct" } else { "" },
        p.rounds,
        c.poll_ms,
        if p.stuck_peer {
            ", with a stuck peer"
        } else {
            ""
        }
    );
    let base = relay::run(None, &p);
    let mut outs = Vec::new();
    for k in &c.duts {
        eprintln!("relay: {k}");
        outs.push(relay::run(Some(*k), &p));
    }
    let (bl, bw) = (median(&base.load), median(&base.withdraw));
    println!(
        "\n## relay: N = {} IPv4 /24s{}, BIRD source -> DUT -> BIRD sink, median of {} rounds{}",
        p.routes,
        if p.distinct {
            ", each with its own attributes"
        } else {
            ""
        },
        p.rounds,
        if p.stuck_peer {
            ", a third peer of the DUT reading nothing"
        } else {
            ""
        }
    );
    println!(
        "direct (source -> sink, no DUT): load {} s, withdraw {} s (rounds: load {:?}, withdraw {:?}){}",
        secs(bl),
        secs(bw),
        base.load.iter().map(|d| secs(Some(*d))).collect::<Vec<_>>(),
        base.withdraw
            .iter()
            .map(|d| secs(Some(*d)))
            .collect::<Vec<_>>(),
        base.error
            .as_ref()
            .map(|e| format!("\n  ERROR: {e}"))
            .unwrap_or_default()
    );
    println!(
        "\n| DUT | load total s | load DUT s | withdraw total s | withdraw DUT s | RSS before MiB | RSS after MiB | bytes/route |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    // (load own, withdraw own, bytes per route)
    let mut figures = Vec::new();
    for o in &outs {
        let (l, w) = (median(&o.load), median(&o.withdraw));
        let own = |t: Option<Duration>, b: Option<Duration>| {
            t.map(|t| t.as_secs_f64() - b.map_or(0.0, |b| b.as_secs_f64()))
        };
        let (lo, wo) = (own(l, bl), own(w, bw));
        let bpr = (o.rss_after > 0)
            .then(|| (o.rss_after as f64 - o.rss_before as f64) / f64::from(p.routes));
        let name = o.dut.map_or("direct".into(), |k| k.to_string());
        println!(
            "| {name} | {} | {} | {} | {} | {} | {} | {} |",
            secs(l),
            lo.map_or("-".into(), |v| format!("{v:.3}")),
            secs(w),
            wo.map_or("-".into(), |v| format!("{v:.3}")),
            mib(o.rss_before),
            mib(o.rss_after),
            bpr.map_or("-".into(), |v| format!("{v:.0}")),
        );
        figures.push((o.dut, lo, wo, bpr));
    }
    for o in &outs {
        if let Some(e) = &o.error {
            println!(
                "\n{} FAILED: {e}",
                o.dut.map_or("direct".into(), |k| k.to_string())
            );
        }
    }
    // The finer clock: packet timestamps on the DUT's links.
    println!(
        "\npacket clock, DUT tail = last UPDATE to the sink - last UPDATE from the source (ms; median, then every round):\n"
    );
    println!("| DUT | load tail ms | withdraw tail ms | load rounds | withdraw rounds |");
    println!("|---|---|---|---|---|");
    let ms = |v: f64| format!("{:.1}", v * 1000.0);
    let med = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied()
    };
    let mut tails = Vec::new();
    for o in &outs {
        let (l, w): (Vec<f64>, Vec<f64>) = o.tail.iter().copied().unzip();
        let (lm, wm) = (med(l.clone()), med(w.clone()));
        println!(
            "| {} | {} | {} | {} | {} |",
            o.dut.map_or("direct".into(), |k| k.to_string()),
            lm.map_or("-".into(), ms),
            wm.map_or("-".into(), ms),
            l.iter().map(|v| ms(*v)).collect::<Vec<_>>().join(" "),
            w.iter().map(|v| ms(*v)).collect::<Vec<_>>().join(" "),
        );
        tails.push((o.dut, vec![lm, wm]));
    }
    print_ratios(&["load tail", "withdraw tail"], &tails);
    // Work rather than time: what the DUT's threads used, whatever else had the cores.
    println!("\nDUT CPU time per round (ms, mean over every round; clock ticks of 10 ms):\n");
    println!("| DUT | load CPU ms | withdraw CPU ms | µs per route, load / withdraw |");
    println!("|---|---|---|---|");
    let mut cpus = Vec::new();
    for o in outs.iter().filter(|o| !o.cpu.is_empty()) {
        let n = o.cpu.len() as f64;
        let l = o.cpu.iter().map(|c| c.0.as_secs_f64()).sum::<f64>() / n;
        let w = o.cpu.iter().map(|c| c.1.as_secs_f64()).sum::<f64>() / n;
        let per = |v: f64| v * 1e6 / f64::from(p.routes);
        println!(
            "| {} | {} | {} | {:.2} / {:.2} |",
            o.dut.map_or("direct".into(), |k| k.to_string()),
            ms(l),
            ms(w),
            per(l),
            per(w)
        );
        cpus.push((o.dut, vec![Some(l), Some(w)]));
    }
    print_ratios(&["load CPU", "withdraw CPU"], &cpus);
    print_ratios(
        &["load (DUT share)", "withdraw (DUT share)", "bytes/route"],
        &figures
            .iter()
            .map(|(k, l, w, b)| (*k, vec![*l, *w, *b]))
            .collect::<Vec<_>>(),
    );
}

/// sartd's figure divided by every other DUT's, per metric.
fn print_ratios(metrics: &[&str], figures: &[(Option<Kind>, Vec<Option<f64>>)]) {
    let Some((_, ours)) = figures.iter().find(|(k, _)| *k == Some(Kind::Sartd)) else {
        return;
    };
    let others: Vec<_> = figures
        .iter()
        .filter(|(k, _)| k.is_some() && *k != Some(Kind::Sartd))
        .collect();
    print!("\nsartd / peer (below 1 = sartd better)\n\n| metric |");
    for (k, _) in &others {
        print!(" {} |", k.map_or("-".into(), |k| k.to_string()));
    }
    print!("\n|---|");
    for _ in &others {
        print!("---|");
    }
    println!();
    for (i, m) in metrics.iter().enumerate() {
        print!("| {m} |");
        for (_, v) in &others {
            print!(" {} |", ratio(ours[i], v[i]));
        }
        println!();
    }
}

fn run_fanin(c: &Common, f: &FaninArgs) {
    let p = fanin::Params {
        peers: f.peers,
        poll: Duration::from_millis(c.poll_ms.max(50)),
        timeout: Duration::from_secs(c.timeout_s),
    };
    let runs = f.fanin_runs.max(1);
    eprintln!("fan-in: {} peers, {runs} runs per DUT", p.peers);
    let mut results = Vec::new();
    for k in &c.duts {
        let mut outs = Vec::new();
        for run in 0..runs {
            let o = fanin::run(*k, &p);
            eprintln!(
                "  {k} run {run}: all Established after {} s (query {:.0} ms), RSS {} MiB; peer side: {}; TCP: {}{}",
                secs(o.established),
                o.query.as_secs_f64() * 1000.0,
                mib(o.rss_after),
                o.peer_side,
                o.tcp,
                o.error
                    .as_ref()
                    .map(|e| format!("\n  ERROR: {e}"))
                    .unwrap_or_default()
            );
            outs.push(o);
        }
        results.push((*k, outs));
    }
    println!(
        "\n## fan-in: {} peers open sessions at once to a passive DUT, {runs} runs",
        p.peers
    );
    println!(
        "\n| DUT | all Established s (median) | runs s | state query ms | RSS before MiB | RSS after MiB (median) | peer side (last run) | TCP counters (last run) |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    let mut figures = Vec::new();
    for (k, outs) in &results {
        let est: Vec<Duration> = outs.iter().filter_map(|o| o.established).collect();
        let failed = outs.len() - est.len();
        let m = if failed > 0 { None } else { median(&est) };
        let mut rss: Vec<u64> = outs.iter().map(|o| o.rss_after).collect();
        rss.sort_unstable();
        let rss_m = rss.get(rss.len() / 2).copied().unwrap_or(0);
        let q = outs.iter().map(|o| o.query).max().unwrap_or_default();
        println!(
            "| {k} | {} | {} | {:.0} | {} | {} | {} | {} |",
            secs(m),
            outs.iter()
                .map(|o| secs(o.established))
                .collect::<Vec<_>>()
                .join(" "),
            q.as_secs_f64() * 1000.0,
            mib(outs.first().map_or(0, |o| o.rss_before)),
            mib(rss_m),
            outs.last().map_or("", |o| o.peer_side.as_str()),
            outs.last().map_or("", |o| o.tcp.as_str()),
        );
        figures.push((
            Some(*k),
            vec![m.map(|d| d.as_secs_f64()), Some(rss_m as f64)],
        ));
    }
    for (k, outs) in &results {
        for o in outs {
            if let Some(e) = &o.error {
                let short: String = e.chars().take(3000).collect();
                println!("\n{k} FAILED: {short}");
            }
        }
    }
    print_ratios(&["all Established", "RSS"], &figures);
}
