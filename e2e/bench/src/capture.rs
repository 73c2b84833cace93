//! Packet timestamps at the DUT's interfaces: a finer clock than polling the sink. `tcpdump`
//! writes the BGP segments of one interface to a pcap file with nanosecond timestamps; the
//! file is read back here, keeping the time and source of each segment that carries UPDATEs.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use interop::Netns;
use interop::process::Proc;

/// A KEEPALIVE is 19 octets (RFC 4271 §4.4): payloads longer than that carry UPDATEs.
const KEEPALIVE: usize = 19;

/// One TCP segment carrying more than a KEEPALIVE.
#[derive(Debug, Clone, Copy)]
pub struct Segment {
    /// Since the Unix epoch (the capture's clock is the realtime clock).
    pub at: Duration,
    pub src: Ipv4Addr,
}

/// `tcpdump` on one interface of a namespace, until dropped or [`Capture::finish`]ed.
pub struct Capture {
    proc: Proc,
    file: PathBuf,
}

impl Capture {
    pub fn start(netns: &Netns, dev: &str) -> Result<Capture> {
        let file = netns.dir().join(format!("{dev}.pcap"));
        let log = netns.dir().join(format!("tcpdump-{dev}.log"));
        let proc = netns.spawn(
            "tcpdump",
            &[
                "tcpdump",
                "-i",
                dev,
                "-n",
                "-U",
                "-s",
                "128",
                "--time-stamp-precision=nano",
                "-w",
                &file.to_string_lossy(),
                "tcp port 179",
            ],
            &log,
        )?;
        // tcpdump says "listening on" once its filter is in place.
        let deadline = Instant::now() + Duration::from_secs(10);
        while !std::fs::read_to_string(&log).is_ok_and(|s| s.contains("listening on")) {
            if !proc.is_alive() || Instant::now() > deadline {
                bail!(
                    "tcpdump on {dev} did not start: {}",
                    interop::process::tail(&log, 5)
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(Capture { proc, file })
    }

    /// Stops the capture and reads what it wrote.
    pub fn finish(mut self) -> Result<Vec<Segment>> {
        self.proc.stop(Duration::from_secs(5));
        read_pcap(&self.file)
    }
}

pub fn now() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

fn u16_at(b: &[u8], i: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(i)?, *b.get(i + 1)?]))
}

/// The TCP segments with data in a little-endian, nanosecond pcap of Ethernet frames.
fn read_pcap(path: &Path) -> Result<Vec<Segment>> {
    let bytes = std::fs::read(path).with_context(|| path.display().to_string())?;
    let le32 = |i: usize| -> Option<u32> {
        Some(u32::from_le_bytes(bytes.get(i..i + 4)?.try_into().ok()?))
    };
    match (le32(0), le32(20)) {
        (Some(0xa1b2_3c4d), Some(1)) => {}
        other => bail!(
            "{}: not a nanosecond pcap of Ethernet frames ({other:?})",
            path.display()
        ),
    }
    let mut out = Vec::new();
    let mut at = 24;
    while let (Some(sec), Some(nsec), Some(caplen)) = (le32(at), le32(at + 4), le32(at + 8)) {
        let start = at + 16;
        let end = start + caplen as usize;
        let Some(frame) = bytes.get(start..end) else {
            break;
        };
        at = end;
        // Ethernet, then IPv4 (the benchmark's links carry IPv4 BGP only).
        if u16_at(frame, 12) != Some(0x0800) {
            continue;
        }
        let ip = &frame[14..];
        let Some(&vihl) = ip.first() else { continue };
        let ihl = usize::from(vihl & 0x0f) * 4;
        let (Some(total), Some(tcp_off)) = (u16_at(ip, 2), ip.get(ihl + 12)) else {
            continue;
        };
        let tcp_len = usize::from(tcp_off >> 4) * 4;
        let payload = usize::from(total).saturating_sub(ihl + tcp_len);
        let addr = |i: usize| -> Option<Ipv4Addr> {
            let o: [u8; 4] = ip.get(i..i + 4)?.try_into().ok()?;
            Some(Ipv4Addr::from(o))
        };
        let Some(src) = addr(12) else {
            continue;
        };
        if payload > KEEPALIVE {
            out.push(Segment {
                at: Duration::new(u64::from(sec), nsec),
                src,
            });
        }
    }
    Ok(out)
}

/// When the last UPDATE-carrying segment from `src` in `[from, to)` was seen.
pub fn last_from(
    segments: &[Segment],
    src: Ipv4Addr,
    from: Duration,
    to: Duration,
) -> Option<Duration> {
    segments
        .iter()
        .filter(|s| s.src == src && s.at >= from && s.at < to)
        .map(|s| s.at)
        .max()
}
