//! The devices under test: sartd, FRR and GoBGP through the harness, BIRD with a config of ours
//! (no kernel protocol). Every DUT gets the same `BgpConfig`.

use std::fmt;
use std::str::FromStr;

use anyhow::{Context, Result, anyhow, bail};
use interop::frr::Frr;
use interop::gobgp::Gobgp;
use interop::sartd::Sartd;
use interop::{BgpConfig, Daemon, Netns};

use crate::bird::{BirdProc, dut_config};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Sartd,
    Bird,
    Frr,
    Gobgp,
}

impl Kind {
    pub const ALL: [Kind; 4] = [Kind::Sartd, Kind::Bird, Kind::Frr, Kind::Gobgp];
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::Sartd => "sartd",
            Kind::Bird => "bird",
            Kind::Frr => "frr",
            Kind::Gobgp => "gobgp",
        })
    }
}

impl FromStr for Kind {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Kind, String> {
        Kind::ALL
            .into_iter()
            .find(|k| k.to_string() == s)
            .ok_or_else(|| format!("unknown DUT {s:?} (sartd, bird, frr, gobgp)"))
    }
}

pub enum Dut {
    Harness(Box<dyn Daemon>),
    Frr(Frr),
    Bird(BirdProc),
}

impl Dut {
    pub fn start(kind: Kind, ns: &Netns, cfg: BgpConfig) -> Result<Dut> {
        Ok(match kind {
            Kind::Sartd => Dut::Harness(Box::new(Sartd::start(ns, "dut", cfg)?)),
            Kind::Gobgp => Dut::Harness(Box::new(Gobgp::start(ns, "dut", cfg)?)),
            Kind::Frr => {
                let frr = Frr::start(ns, "dut", cfg)?;
                // No DUT writes the kernel FIB (sartd has none, BIRD runs without its kernel
                // protocol): bgpd keeps its routes out of zebra.
                frr.vtysh(&["configure terminal", "bgp no-rib"])
                    .context("frr: bgp no-rib")?;
                Dut::Frr(frr)
            }
            Kind::Bird => Dut::Bird(BirdProc::start(ns, "dut", &dut_config(&cfg))?),
        })
    }

    /// PID of the process speaking BGP (bgpd for FRR).
    pub fn pid(&self) -> Result<u32> {
        match self {
            Dut::Harness(d) => d
                .bgp_pid()
                .ok_or_else(|| anyhow!("{} is not running", d.name())),
            Dut::Frr(f) => f.bgp_pid().ok_or_else(|| anyhow!("bgpd is not running")),
            Dut::Bird(b) => Ok(b.pid()),
        }
    }

    /// Sessions the DUT itself reports as Established (the cheapest query each one has).
    pub fn established(&self) -> Result<usize> {
        match self {
            Dut::Harness(d) => Ok(d.sessions()?.iter().filter(|s| s.is_established()).count()),
            Dut::Frr(f) => {
                let out = f.vtysh(&["show bgp ipv4 unicast summary json"])?;
                let v: serde_json::Value = serde_json::from_str(&out)?;
                let Some(peers) = v["peers"].as_object() else {
                    // No neighbour in the family yet.
                    if out.trim() == "{}" {
                        return Ok(0);
                    }
                    bail!("frr summary without peers: {}", &out[..out.len().min(300)]);
                };
                Ok(peers
                    .values()
                    .filter(|p| p["state"].as_str() == Some("Established"))
                    .count())
            }
            Dut::Bird(b) => b.established(),
        }
    }

    pub fn logs(&self) -> String {
        match self {
            Dut::Harness(d) => d.logs(),
            Dut::Frr(f) => f.logs(),
            Dut::Bird(b) => b.logs(),
        }
    }
}

/// CPU time `pid` has used so far, all threads, user and system (`/proc/PID/stat`, in clock
/// ticks: 10 ms steps, so only sums over many rounds mean anything).
pub fn cpu_time(pid: u32) -> Result<std::time::Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name may hold spaces and parentheses: fields count from the last ')'.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or_else(|| anyhow!("malformed /proc/{pid}/stat"))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of stat(5); `rest` starts at field 3.
    let ticks = |i: usize| -> Result<u64> {
        fields
            .get(i - 3)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| anyhow!("no field {i} in /proc/{pid}/stat"))
    };
    let hz = rustix::param::clock_ticks_per_second();
    let total = ticks(14)? + ticks(15)?;
    Ok(std::time::Duration::from_nanos(
        total.saturating_mul(1_000_000_000) / hz.max(1),
    ))
}
