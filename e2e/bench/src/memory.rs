//! A process's memory as the benches report it, from `/proc/PID/status`.

use anyhow::{Context as _, Result};

/// A `/proc/PID/status` field in KiB (`VmRSS:`, `VmHWM:`).
fn kib(status: &str, name: &str) -> Result<u64> {
    let line = status
        .lines()
        .find(|l| l.starts_with(name))
        .with_context(|| format!("{name} missing"))?;
    Ok(line
        .split_whitespace()
        .nth(1)
        .context("no value")?
        .parse()?)
}

fn status(pid: u32) -> Result<String> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading the status of pid {pid}"))
}

/// VmRSS and VmHWM of a process, in MiB.
#[allow(dead_code)] // not every bench binary that includes this module reports MiB
pub fn mib(pid: u32) -> Result<(f64, f64)> {
    let s = status(pid)?;
    let mib = |name| kib(&s, name).map(|k| k as f64 / 1024.0);
    Ok((mib("VmRSS:")?, mib("VmHWM:")?))
}

/// VmRSS of a process, in bytes.
#[allow(dead_code)] // not every bench binary that includes this module reports bytes
pub fn rss_bytes(pid: u32) -> Result<u64> {
    Ok(kib(&status(pid)?, "VmRSS:")? * 1024)
}
