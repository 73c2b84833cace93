//! The fan-in peer generator (`sart-bench peers`, run by the fan-in benchmark inside the peers'
//! namespace): one thread per peer, each with a socket bound to its own loopback alias. When the
//! go file appears, every thread connects to the DUT at once and speaks just enough BGP: OPEN
//! (4-octet AS, IPv4 unicast, route refresh), KEEPALIVE on the DUT's OPEN, KEEPALIVEs every
//! hold/3 after that; everything else the DUT sends is read and dropped.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4, TcpStream};
use std::path::PathBuf;
use std::sync::mpsc;
use std::sync::{Arc, Barrier};
use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use rustix::net::{AddressFamily, SocketType, bind, connect, socket};

pub const HOLD: u16 = 90;

/// Address of peer `i`: 198.19.(1 + i/250).(1 + i%250).
pub fn peer_addr(i: u32) -> Ipv4Addr {
    Ipv4Addr::new(198, 19, (1 + i / 250) as u8, (1 + i % 250) as u8)
}

fn open(asn: u32, id: Ipv4Addr) -> Vec<u8> {
    let mut caps = vec![1, 4, 0, 1, 0, 1, 2, 0, 65, 4];
    caps.extend_from_slice(&asn.to_be_bytes());
    let mut body = vec![4];
    let as2 = u16::try_from(asn).unwrap_or(23456);
    body.extend_from_slice(&as2.to_be_bytes());
    body.extend_from_slice(&HOLD.to_be_bytes());
    body.extend_from_slice(&id.octets());
    body.push(caps.len() as u8 + 2);
    body.push(2);
    body.push(caps.len() as u8);
    body.extend_from_slice(&caps);
    message(1, &body)
}

fn message(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut m = vec![0xff; 16];
    m.extend_from_slice(&((19 + body.len()) as u16).to_be_bytes());
    m.push(kind);
    m.extend_from_slice(body);
    m
}

enum Event {
    /// The DUT's OPEN and then its KEEPALIVE arrived: the DUT is in OpenConfirm or later, and our
    /// KEEPALIVE is already on its way.
    Up(Duration),
    Failed(String),
}

pub fn run(dut: Ipv4Addr, count: u32, asn: u32, go: PathBuf) -> Result<()> {
    let barrier = Arc::new(Barrier::new(count as usize + 1));
    let (tx, rx) = mpsc::channel();
    let start = Arc::new(std::sync::OnceLock::<Instant>::new());
    let mut sockets = Vec::new();
    for i in 0..count {
        let fd = socket(AddressFamily::INET, SocketType::STREAM, None)?;
        bind(&fd, &SocketAddrV4::new(peer_addr(i), 0))
            .with_context(|| format!("bind {}", peer_addr(i)))?;
        sockets.push(fd);
    }
    for (i, fd) in sockets.into_iter().enumerate() {
        let (barrier, tx, start) = (barrier.clone(), tx.clone(), start.clone());
        let id = peer_addr(i as u32);
        std::thread::Builder::new()
            .stack_size(128 * 1024)
            .spawn(move || {
                barrier.wait();
                let t0 = *start.get_or_init(Instant::now);
                let (mut fd, mut reported) = (Some(fd), false);
                // Like a real peer: a failed session is retried after the 1 s connect retry
                // the harness gives every daemon.
                while t0.elapsed() < Duration::from_secs(240) {
                    if let Err(e) = session(fd.take(), dut, asn, id, t0, &mut reported, &tx) {
                        let _ = tx.send(Event::Failed(format!("{e:#}")));
                    }
                    sleep(Duration::from_secs(1));
                }
            })?;
    }
    println!("ready: {count} sockets bound");
    std::fs::write(go.with_extension("ready"), "")?;
    while !go.exists() {
        sleep(Duration::from_millis(1));
    }
    let _ = start.set(Instant::now());
    barrier.wait();
    let mut ups: Vec<Duration> = Vec::new();
    let mut failed = std::collections::BTreeMap::<String, usize>::new();
    while ups.len() < count as usize {
        match rx.recv_timeout(Duration::from_secs(300)) {
            Ok(Event::Up(t)) => ups.push(t),
            Ok(Event::Failed(e)) => *failed.entry(e).or_default() += 1,
            Err(_) => break,
        }
    }
    ups.sort();
    let pct = |q: usize| {
        ups.get((ups.len() * q / 100).min(ups.len().saturating_sub(1)))
            .map_or(0.0, Duration::as_secs_f64)
    };
    println!(
        "peer-side: {}/{count} sessions got the DUT's OPEN+KEEPALIVE, p50 {:.3} s, p90 {:.3} s, last {:.3} s; {} failed attempts",
        ups.len(),
        pct(50),
        pct(90),
        pct(100),
        failed.values().sum::<usize>()
    );
    for (e, n) in failed.iter().take(10) {
        println!("  {n} x {e}");
    }
    std::io::stdout().flush()?;
    // Keep the sessions up until the benchmark stops us.
    loop {
        sleep(Duration::from_secs(3600));
    }
}

fn session(
    fd: Option<rustix::fd::OwnedFd>,
    dut: Ipv4Addr,
    asn: u32,
    id: Ipv4Addr,
    t0: Instant,
    reported: &mut bool,
    tx: &mpsc::Sender<Event>,
) -> Result<()> {
    let f = match fd {
        Some(f) => f,
        None => {
            let f = socket(AddressFamily::INET, SocketType::STREAM, None)?;
            bind(&f, &SocketAddrV4::new(id, 0))?;
            f
        }
    };
    connect(&f, &SocketAddrV4::new(dut, 179)).context("connect")?;
    let mut s = TcpStream::from(f);
    s.set_nodelay(true)?;
    s.write_all(&open(asn, id))?;
    s.set_read_timeout(Some(Duration::from_secs(u64::from(HOLD / 3))))?;
    let keepalive = message(4, &[]);
    let mut got_open = false;
    let mut hdr = [0u8; 19];
    loop {
        match s.read_exact(&mut hdr) {
            Ok(()) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                s.write_all(&keepalive)?;
                continue;
            }
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => anyhow::bail!("closed"),
            Err(e) => return Err(e).context("read"),
        }
        let len = usize::from(u16::from_be_bytes([hdr[16], hdr[17]]));
        let mut body = vec![0u8; len.saturating_sub(19)];
        s.read_exact(&mut body)?;
        match hdr[18] {
            1 => {
                got_open = true;
                s.write_all(&keepalive)?;
            }
            3 => anyhow::bail!("NOTIFICATION {body:02x?}"),
            4 if got_open && !*reported => {
                *reported = true;
                let _ = tx.send(Event::Up(t0.elapsed()));
            }
            _ => {}
        }
    }
}
