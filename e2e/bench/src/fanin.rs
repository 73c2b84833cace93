//! Fan-in: P peers open their sessions to the DUT at the same moment. The DUT is passive towards
//! all of them (iBGP, AS 64512). The peers are `sart-bench peers` (this binary) in a second
//! namespace, one loopback alias 198.19.x.y per peer, routed from the DUT over one veth.

use std::net::IpAddr;
use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use interop::{BgpConfig, Family, Link, Neighbor, Netns};

use crate::dut::{Dut, Kind};
use crate::memory::rss_bytes;
use crate::peers::peer_addr;

const AS: u32 = 64512;

pub struct Params {
    pub peers: u32,
    pub poll: Duration,
    pub timeout: Duration,
}

pub struct Outcome {
    /// go -> the DUT reports every session Established (its own state query).
    pub established: Option<Duration>,
    /// Mean duration of one state query (the resolution of `established`).
    pub query: Duration,
    /// The generator's own view (DUT's OPEN + KEEPALIVE received on every session).
    pub peer_side: String,
    /// Kernel TCP counters: SYN retransmissions at the peers, listen-queue drops at the DUT.
    pub tcp: String,
    pub rss_before: u64,
    pub rss_after: u64,
    pub error: Option<String>,
}

pub fn run(kind: Kind, p: &Params) -> Outcome {
    let mut o = Outcome {
        established: None,
        query: Duration::ZERO,
        peer_side: String::new(),
        tcp: String::new(),
        rss_before: 0,
        rss_after: 0,
        error: None,
    };
    if let Err(e) = run_inner(kind, p, &mut o) {
        o.error = Some(format!("{e:#}"));
    }
    o
}

fn run_inner(kind: Kind, p: &Params, o: &mut Outcome) -> Result<()> {
    let dut_ns = Netns::new(&format!("f{kind}"))?;
    let gen_ns = Netns::new("fpeers")?;
    let link = Link::veth(&dut_ns, &gen_ns, 1)?;
    let (dut_addr, gen_addr) = (link.a.ipv4(), link.b.ipv4());
    dut_ns.ip(&[
        "route",
        "add",
        "198.19.0.0/16",
        "via",
        &gen_addr.to_string(),
    ])?;
    let aliases: Vec<ipnet::IpNet> = (0..p.peers)
        .map(|i| format!("{}/32", peer_addr(i)).parse())
        .collect::<std::result::Result<_, _>>()?;
    gen_ns.add_loopback_addrs(&aliases)?;

    let mut cfg = BgpConfig::new(AS, dut_addr);
    for i in 0..p.peers {
        cfg = cfg.neighbor(
            Neighbor::new(IpAddr::V4(peer_addr(i)), AS, &[Family::Ipv4Unicast]).passive(),
        );
    }
    let dut = Dut::start(kind, &dut_ns, cfg)?;
    let pid = dut.pid()?;
    sleep(Duration::from_secs(2));
    o.rss_before = rss_bytes(pid)?;

    let go = gen_ns.dir().join("go");
    let exe = std::env::current_exe()?;
    let mut gen_proc = gen_ns.spawn(
        "peers",
        &[
            exe.to_string_lossy().into_owned(),
            "peers".into(),
            "--dut".into(),
            dut_addr.to_string(),
            "--count".into(),
            p.peers.to_string(),
            "--asn".into(),
            AS.to_string(),
            "--go".into(),
            go.to_string_lossy().into_owned(),
        ],
        &gen_ns.dir().join("peers.out"),
    )?;
    let ready = go.with_extension("ready");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ready.exists() {
        if !gen_proc.is_alive() || Instant::now() > deadline {
            bail!(
                "peer generator not ready:\n{}",
                interop::process::tail(gen_proc.log(), 20)
            );
        }
        sleep(Duration::from_millis(10));
    }

    let t0 = Instant::now();
    std::fs::write(&go, "").context("go file")?;
    let deadline = t0 + p.timeout;
    let (mut queries, mut spent) = (0u32, Duration::ZERO);
    let mut last = 0;
    loop {
        let q = Instant::now();
        let n = dut.established();
        let now = Instant::now();
        queries += 1;
        spent += now - q;
        match n {
            Ok(n) if n >= p.peers as usize => {
                o.established = Some(now - t0);
                break;
            }
            Ok(n) => last = n,
            Err(e) => eprintln!("  {kind}: state query failed: {e:#}"),
        }
        if now > deadline || !interop::process::pid_alive(pid) {
            o.query = spent / queries;
            o.rss_after = rss_bytes(pid).unwrap_or(0);
            o.peer_side = peer_side(&gen_proc);
            bail!(
                "{last}/{} Established after {:?}\n{}",
                p.peers,
                now - t0,
                dut.logs()
            );
        }
        sleep(p.poll);
    }
    o.query = spent / queries;
    o.rss_after = rss_bytes(pid)?;
    // The generator prints its summary once every session reported.
    let deadline = Instant::now() + Duration::from_secs(10);
    while o.peer_side.is_empty() && Instant::now() < deadline {
        o.peer_side = peer_side(&gen_proc);
        sleep(Duration::from_millis(50));
    }
    o.tcp = format!(
        "peers {}; DUT {}",
        counters(&gen_ns, &["TcpExtTCPSynRetrans"]),
        counters(&dut_ns, &["TcpExtListenOverflows", "TcpExtListenDrops"])
    );
    gen_proc.stop(Duration::from_secs(2));
    Ok(())
}

fn peer_side(gen_proc: &interop::process::Proc) -> String {
    std::fs::read_to_string(gen_proc.log())
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("peer-side:"))
        .map(|l| l.trim_start_matches("peer-side: ").to_owned())
        .unwrap_or_default()
}

/// `nstat -asz NAMES...` in `ns`, as "Name=value ...".
fn counters(ns: &Netns, names: &[&str]) -> String {
    let mut argv = vec!["nstat", "-asz"];
    argv.extend_from_slice(names);
    ns.exec(&argv)
        .map(|out| {
            out.lines()
                .filter_map(|l| {
                    let mut w = l.split_whitespace();
                    Some(format!("{}={}", w.next()?, w.next()?))
                })
                .filter(|kv| !kv.starts_with('#'))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_else(|e| format!("nstat failed: {e}"))
}
