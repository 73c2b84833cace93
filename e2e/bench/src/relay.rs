//! Relay: a BIRD source originates N IPv4 /24s over eBGP to the DUT, which relays them to a BIRD
//! sink. The same procedure also runs with no DUT (source wired straight to the sink): that
//! run's times are the source's and sink's own share, subtracted from every DUT's. With
//! `stuck_peer`, the DUT has a third peer that opens its session and then reads nothing. With
//! `distinct`, every route carries its own large community, so none share an UPDATE.
//!
//! With a DUT, the segments on its two links are also captured (`capture`): the DUT's own
//! share is then the time from the source's last UPDATE reaching it to its last UPDATE to the
//! sink ("tail"), read from packet timestamps rather than from polling the sink.

use std::net::IpAddr;
use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use interop::hand_peer::HandPeer;
use interop::{BgpConfig, Family, Link, Neighbor, Netns};

use crate::bird::{BirdProc, STATIC, sink_config, source_config};
use crate::capture::{self, Capture};
use crate::dut::{Dut, Kind, cpu_time};
use crate::memory::rss_bytes;

const V4: [Family; 1] = [Family::Ipv4Unicast];
const DUT_AS: u32 = 64512;
const SRC_AS: u32 = 65001;
const SINK_AS: u32 = 65002;
const STUCK_AS: u32 = 65003;

pub struct Params {
    pub routes: u32,
    pub rounds: usize,
    pub poll: Duration,
    pub timeout: Duration,
    /// A third peer of the DUT that opens its session and never reads (none without a DUT).
    pub stuck_peer: bool,
    /// Every route with its own attributes (one UPDATE each).
    pub distinct: bool,
}

/// What one DUT (or the direct wiring, `dut == None`) measured.
pub struct Outcome {
    pub dut: Option<Kind>,
    /// Per round: enable on the source -> the sink holds N.
    pub load: Vec<Duration>,
    /// Per round: disable on the source -> the sink holds none.
    pub withdraw: Vec<Duration>,
    /// Per round, from packet timestamps at the DUT: last UPDATE out to the sink minus last
    /// UPDATE in from the source, for the load and the withdrawal (seconds; none without a DUT).
    pub tail: Vec<(f64, f64)>,
    /// Per round, the DUT's CPU time (all threads) from the source's switch until the sink is
    /// done and the pause after it, for the load and the withdrawal (none without a DUT).
    pub cpu: Vec<(Duration, Duration)>,
    /// DUT RSS: sessions up before the first load, one second after it.
    pub rss_before: u64,
    pub rss_after: u64,
    /// Failure, if the DUT did not finish (timeouts and crashes are results too).
    pub error: Option<String>,
}

pub fn run(dut: Option<Kind>, p: &Params) -> Outcome {
    let mut o = Outcome {
        dut,
        load: Vec::new(),
        withdraw: Vec::new(),
        tail: Vec::new(),
        cpu: Vec::new(),
        rss_before: 0,
        rss_after: 0,
        error: None,
    };
    if let Err(e) = run_inner(dut, p, &mut o) {
        o.error = Some(format!("{e:#}"));
    }
    o
}

fn neighbor(addr: std::net::Ipv4Addr, asn: u32) -> Neighbor {
    Neighbor::new(IpAddr::V4(addr), asn, &V4)
}

fn run_inner(kind: Option<Kind>, p: &Params, o: &mut Outcome) -> Result<()> {
    let label = kind.map_or("direct".to_owned(), |k| k.to_string());
    let src_ns = Netns::new("bsrc")?;
    let sink_ns = Netns::new("bsink")?;
    let stuck_ns = Netns::new("bstuck")?;
    // The stuck peer's side of its link to the DUT, and the DUT's.
    let mut stuck_at = None;
    // (source -> DUT, DUT -> sink, the source's address, the DUT's towards the sink)
    let mut taps = None;
    let (source, sink, dut) = match kind {
        None => {
            let l = Link::veth(&src_ns, &sink_ns, 3)?;
            let (s, k) = (l.a.ipv4(), l.b.ipv4());
            let source = BirdProc::start(
                &src_ns,
                "source",
                &source_config(s, SRC_AS, &neighbor(k, SINK_AS), p.routes, p.distinct),
            )?;
            let sink = BirdProc::start(
                &sink_ns,
                "sink",
                &sink_config(k, SINK_AS, &neighbor(s, SRC_AS)),
            )?;
            (source, sink, None)
        }
        Some(kind) => {
            let dut_ns = Netns::new(&format!("b{kind}"))?;
            let l1 = Link::veth(&src_ns, &dut_ns, 1)?;
            let l2 = Link::veth(&dut_ns, &sink_ns, 2)?;
            let (s, d1, d2, k) = (l1.a.ipv4(), l1.b.ipv4(), l2.a.ipv4(), l2.b.ipv4());
            let source = BirdProc::start(
                &src_ns,
                "source",
                &source_config(s, SRC_AS, &neighbor(d1, DUT_AS), p.routes, p.distinct),
            )?;
            let sink = BirdProc::start(
                &sink_ns,
                "sink",
                &sink_config(k, SINK_AS, &neighbor(d2, DUT_AS)),
            )?;
            let mut cfg = BgpConfig::new(DUT_AS, d2)
                .neighbor(neighbor(s, SRC_AS))
                .neighbor(neighbor(k, SINK_AS));
            if p.stuck_peer {
                let l3 = Link::veth(&dut_ns, &stuck_ns, 4)?;
                cfg = cfg.neighbor(neighbor(l3.b.ipv4(), STUCK_AS).passive());
                stuck_at = Some((l3.b.ipv4(), l3.a.ipv4(), l3));
            }
            let dut = Dut::start(kind, &dut_ns, cfg)?;
            taps = Some((
                Capture::start(&dut_ns, &l1.b.ifname)?,
                Capture::start(&dut_ns, &l2.a.ifname)?,
                s,
                d2,
            ));
            (source, sink, Some(dut))
        }
    };
    let fail = |what: String, dut: &Option<Dut>| {
        let logs = dut.as_ref().map(Dut::logs).unwrap_or_default();
        anyhow::anyhow!("{label}: {what}\n{logs}")
    };

    // Both of the source's and the sink's sessions up, then a quiet moment.
    let deadline = Instant::now() + Duration::from_secs(60);
    while source.established()? < 1 || sink.established()? < 1 {
        if Instant::now() > deadline {
            return Err(fail("sessions not Established after 60 s".into(), &dut));
        }
        sleep(Duration::from_millis(50));
    }
    // The stuck peer: Established, then it reads nothing (the DUT fills its window first).
    let _stuck = match &stuck_at {
        Some((me, dut_addr, _link)) => Some(
            HandPeer::connect(&stuck_ns, (*dut_addr).into(), STUCK_AS, *me, Vec::new())
                .map_err(|e| fail(format!("the stuck peer: {e}"), &dut))?,
        ),
        None => None,
    };
    sleep(Duration::from_secs(2));
    let pid = dut.as_ref().map(Dut::pid).transpose()?;
    if let Some(pid) = pid {
        o.rss_before = rss_bytes(pid)?;
    }

    let n = u64::from(p.routes);
    // Wall-clock starts of each round's load and withdrawal, for the captures.
    let mut windows = Vec::new();
    let cpu = || pid.map(cpu_time).transpose();
    for round in 0..p.rounds {
        windows.push(capture::now());
        let c0 = cpu()?;
        let t0 = Instant::now();
        source.switch(STATIC, true)?;
        let load = wait_count(&sink, p, |c| c == n)
            .map_err(|e| fail(format!("round {round}: load: {e:#}"), &dut))?;
        o.load.push(load.duration_since(t0));
        if round == 0
            && let Some(pid) = pid
        {
            sleep(Duration::from_secs(1));
            o.rss_after =
                rss_bytes(pid).map_err(|e| fail(format!("DUT gone after load: {e:#}"), &dut))?;
        }
        sleep(Duration::from_millis(500));
        let c1 = cpu()?;
        windows.push(capture::now());
        let t1 = Instant::now();
        source.switch(STATIC, false)?;
        let gone = wait_count(&sink, p, |c| c == 0)
            .map_err(|e| fail(format!("round {round}: withdraw: {e:#}"), &dut))?;
        o.withdraw.push(gone.duration_since(t1));
        eprintln!(
            "  {label} round {round}: load {:.3} s, withdraw {:.3} s",
            o.load[round].as_secs_f64(),
            o.withdraw[round].as_secs_f64()
        );
        sleep(Duration::from_secs(1));
        if let (Some(c0), Some(c1), Some(c2)) = (c0, c1, cpu()?) {
            o.cpu.push((c1.saturating_sub(c0), c2.saturating_sub(c1)));
        }
    }
    windows.push(capture::now());
    if let Some(d) = &dut
        && let Ok(pid) = d.pid()
        && !interop::process::pid_alive(pid)
    {
        bail!(fail("DUT died".into(), &dut));
    }
    if let Some((ingress, egress, src, me)) = taps {
        let (ingress, egress) = (ingress.finish()?, egress.finish()?);
        let tail = |from: Duration, to: Duration| -> Result<f64> {
            let (Some(i), Some(o)) = (
                capture::last_from(&ingress, src, from, to),
                capture::last_from(&egress, me, from, to),
            ) else {
                bail!("no UPDATEs captured between {from:?} and {to:?}");
            };
            Ok(o.as_secs_f64() - i.as_secs_f64())
        };
        for w in windows.windows(3).step_by(2) {
            o.tail.push((tail(w[0], w[1])?, tail(w[1], w[2])?));
        }
    }
    Ok(())
}

/// Polls the sink's route count every `p.poll` until `done(count)`; returns when it was seen.
fn wait_count(sink: &BirdProc, p: &Params, done: impl Fn(u64) -> bool) -> Result<Instant> {
    let deadline = Instant::now() + p.timeout;
    let mut last = None;
    loop {
        let c = sink.route_count().context("sink route count")?;
        let now = Instant::now();
        if done(c) {
            return Ok(now);
        }
        if now > deadline {
            bail!(
                "timeout after {:?}, sink holds {c} routes (before: {last:?})",
                p.timeout
            );
        }
        last = Some(c);
        sleep(p.poll);
    }
}
