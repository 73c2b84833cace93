//! The BFD shell (RFC 5881 single hop, RFC 5883 multihop): UDP sockets, the TTL check and
//! timers around the pure sessions of the `bfd` crate. One task owns every session; the speaker
//! adds and removes them with its neighbours and hears of state changes, and tears the BGP
//! session down when BFD says the path is gone.

use std::collections::HashMap;
use std::io::IoSliceMut;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use bfd::{Config, Hops, Packet, Session, State};
use nix::sys::socket::{
    AddressFamily, ControlMessageOwned, MsgFlags, SockFlag, SockType, SockaddrIn6, SockaddrStorage,
    bind, recvmsg, setsockopt, socket, sockopt,
};
use tokio::io::Interest;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, watch};
use tracing::{debug, info, warn};

use super::request::BfdView;
use speaker_config::BfdConfig;

#[derive(Debug)]
pub(crate) enum Command {
    /// `local`: the BGP session's source address when configured; packets must come from it,
    /// since a multihop peer finds its session by the address pair (RFC 5883 §4).
    Add {
        peer: IpAddr,
        local: Option<IpAddr>,
        config: BfdConfig,
    },
    Remove(IpAddr),
}

/// A session went Up, or left Up.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BfdEvent {
    pub peer: IpAddr,
    pub up: bool,
    pub diag: bfd::Diagnostic,
}

pub(crate) struct BfdHandle {
    pub tx: mpsc::Sender<Command>,
    pub status: watch::Receiver<HashMap<IpAddr, BfdView>>,
}

struct Entry {
    session: Session,
    sock: UdpSocket,
    hops: Hops,
    /// The peer's packets came to the other kind's port, and we said so once.
    told_hops: bool,
}

/// The sockets of one port: IPv4, and IPv6 if the host has it.
struct Receivers {
    hops: Hops,
    v4: UdpSocket,
    v6: Option<UdpSocket>,
}

/// Starts the task. Sockets are opened with the first session, so a speaker without BFD
/// neighbours never binds ports 3784 and 4784. Both are opened, whatever the sessions are:
/// packets on the other port tell an operator that the two ends disagree on multihop.
pub(crate) fn start(events: mpsc::Sender<BfdEvent>) -> BfdHandle {
    let (tx, mut rx) = mpsc::channel::<Command>(64);
    let (status_tx, status) = watch::channel(HashMap::new());
    tokio::spawn(async move {
        let epoch = Instant::now();
        let now = || epoch.elapsed().as_micros() as u64;
        let mut sessions: HashMap<IpAddr, Entry> = HashMap::new();
        let mut by_discr: HashMap<u32, IpAddr> = HashMap::new();
        let mut single: Option<Receivers> = None;
        let mut multi: Option<Receivers> = None;
        let mut next_discr = discriminator_seed();
        let mut counted = false;
        let mut last_view = Instant::now();
        loop {
            let deadline = sessions.values().map(|e| e.session.deadline()).min();
            let sleep = async {
                match deadline {
                    Some(d) => {
                        let at = epoch + Duration::from_micros(d);
                        tokio::time::sleep_until(at.into()).await;
                    }
                    None => std::future::pending().await,
                }
            };
            let recv_single = receive_any(single.as_ref());
            let recv_multi = receive_any(multi.as_ref());
            let mut changed = false;
            let mut received = None;
            // Counts wait for a state change or a second, whichever comes first.
            let due = counted && last_view.elapsed() >= Duration::from_secs(1);
            tokio::select! {
                cmd = rx.recv() => match cmd {
                    None => return,
                    Some(Command::Add { peer, local, config }) => {
                        let kinds = [(&mut single, Hops::Single), (&mut multi, Hops::Multi)];
                        for (slot, hops) in kinds {
                            if slot.is_none() {
                                *slot = listen(hops, config.hops);
                            }
                        }
                        match transmitter(peer, local, config.hops).await {
                            Ok(sock) => {
                                next_discr = next_discr.wrapping_add(1).max(1);
                                let cfg = Config {
                                    desired_min_tx: config.interval_ms.saturating_mul(1000),
                                    required_min_rx: config.interval_ms.saturating_mul(1000),
                                    detect_mult: config.multiplier,
                                };
                                let mut session = Session::new(cfg, next_discr, now());
                                if let Some(a) = config.auth {
                                    session = session.with_auth(bfd::Auth::new(
                                        a.method,
                                        a.key,
                                        random_u32(),
                                    ));
                                }
                                by_discr.insert(next_discr, peer);
                                let entry = Entry {
                                    session,
                                    sock,
                                    hops: config.hops,
                                    told_hops: false,
                                };
                                if let Some(old) = sessions.insert(peer, entry) {
                                    by_discr.remove(&old.session.local_discriminator());
                                }
                                info!(%peer, interval_ms = config.interval_ms,
                                      multiplier = config.multiplier, hops = config.hops.name(),
                                      auth = config.auth.map_or("none", |a| a.method.name()),
                                      "BFD session added");
                                changed = true;
                            }
                            Err(e) => warn!(%peer, error = %e, "BFD: no socket for the session"),
                        }
                    }
                    Some(Command::Remove(peer)) => {
                        if let Some(mut e) = sessions.remove(&peer) {
                            // Tell the remote, so it does not take our silence for a failure.
                            e.session.admin_down(now());
                            let _ = e.sock.send(&e.session.packet().encode()).await;
                            by_discr.remove(&e.session.local_discriminator());
                            changed = true;
                        }
                    }
                },
                r = recv_single => received = Some(r),
                r = recv_multi => received = Some(r),
                () = sleep => {}
            }
            if let Some((got, hops)) = received {
                match handle(&mut sessions, &by_discr, &events, got, hops, now()).await {
                    Handled::Changed => changed = true,
                    Handled::Counted => counted = true,
                    Handled::Nothing => {}
                }
            }
            let t = now();
            for (peer, e) in &mut sessions {
                if e.session.deadline() > t {
                    continue;
                }
                let (transition, packet) = e.session.poll_timers(t);
                if let Some(tr) = transition {
                    changed = true;
                    report(&events, *peer, tr).await;
                }
                if let Some(p) = packet
                    && let Err(err) = e.sock.try_send(&p.encode())
                {
                    debug!(%peer, error = %err, "BFD send failed");
                }
            }
            if changed || due {
                counted = false;
                last_view = Instant::now();
                let view: HashMap<IpAddr, BfdView> = sessions
                    .iter()
                    .map(|(p, e)| {
                        (
                            *p,
                            BfdView {
                                state: e.session.state().name(),
                                remote_diagnostic: e.session.remote_diagnostic().name(),
                                detect_time_ms: (e.session.detection_time() / 1000) as u32,
                                up_transitions: e.session.up_transitions(),
                                auth_failures: e.session.auth_failures(),
                            },
                        )
                    })
                    .collect();
                let _ = status_tx.send(view);
            }
        }
    });
    BfdHandle { tx, status }
}

async fn report(events: &mpsc::Sender<BfdEvent>, peer: IpAddr, t: bfd::Transition) {
    info!(%peer, from = %t.from, to = %t.to, diag = t.diag.name(), "BFD session state change");
    if t.to == State::Up || t.from == State::Up {
        let _ = events
            .send(BfdEvent {
                peer,
                up: t.to == State::Up,
                diag: t.diag,
            })
            .await;
    }
}

/// What a received packet did to the view the API shows.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Handled {
    Nothing,
    /// A state changed: shown at once.
    Changed,
    /// Only a count (a packet that failed authentication): shown at most once a second, so
    /// that forged packets cost little.
    Counted,
}

/// A datagram: its bytes, sender and the TTL it arrived with.
type Datagram = (Vec<u8>, IpAddr, Option<u8>);

async fn handle(
    sessions: &mut HashMap<IpAddr, Entry>,
    by_discr: &HashMap<u32, IpAddr>,
    events: &mpsc::Sender<BfdEvent>,
    (bytes, from, ttl): Datagram,
    arrived: Hops,
    now: u64,
) -> Handled {
    // Checked before anything else is looked at: a forged single-hop packet costs nothing.
    if !arrived.accepts_ttl(ttl) {
        debug!(%from, ?ttl, "BFD packet dropped: single-hop packets must have TTL 255");
        return Handled::Nothing;
    }
    let p = match Packet::decode(&bytes) {
        Ok(p) => p,
        Err(e) => {
            debug!(%from, error = %e, "BFD packet dropped");
            return Handled::Nothing;
        }
    };
    let peer = if p.your_discriminator != 0 {
        match by_discr.get(&p.your_discriminator) {
            Some(peer) => *peer,
            None => return Handled::Nothing,
        }
    } else {
        from
    };
    if peer != from {
        return Handled::Nothing;
    }
    let Some(e) = sessions.get_mut(&peer) else {
        return Handled::Nothing;
    };
    // One session per address pair (RFC 5883 §4): the port the peer uses must be ours. Said
    // once, and only of a packet from whoever holds the key.
    if e.hops != arrived {
        if !e.told_hops && e.session.from_a_key_holder(&p) {
            e.told_hops = true;
            warn!(%peer, sent = arrived.name(), configured = e.hops.name(),
                  "BFD: the peer sends {} packets to a {} session: set `multihop: {}` here, \
                   or change the peer", arrived.name(), e.hops.name(), arrived == Hops::Multi);
        }
        return Handled::Nothing;
    }
    let before = (e.session.state(), e.session.auth_failures());
    let t = e.session.receive(&p, now);
    if let Some(t) = t {
        report(events, peer, t).await;
    }
    if e.session.auth_failures() != before.1 {
        debug!(%peer, "BFD packet dropped: authentication failed");
        return Handled::Counted;
    }
    if t.is_some() || before.0 != e.session.state() {
        Handled::Changed
    } else {
        Handled::Nothing
    }
}

/// Opens the receivers of `hops`; a failure matters (a warning) only for the kind a session
/// needs, `wanted`.
fn listen(hops: Hops, wanted: Hops) -> Option<Receivers> {
    match open_receivers(hops) {
        Ok(r) => Some(r),
        Err(e) if hops == wanted => {
            let port = hops.port();
            warn!(error = %e, port, "BFD: cannot listen on the {} port; sessions cannot come up",
                  hops.name());
            None
        }
        Err(e) => {
            debug!(error = %e, port = hops.port(), "BFD: no {} receiver", hops.name());
            None
        }
    }
}

/// The next datagram on either socket of a port, with the kind the port is for; never, without
/// sockets.
async fn receive_any(r: Option<&Receivers>) -> (Datagram, Hops) {
    let Some(r) = r else {
        return std::future::pending().await;
    };
    let v6 = async {
        match &r.v6 {
            Some(s) => receive(s).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        d = receive(&r.v4) => (d, r.hops),
        d = v6 => (d, r.hops),
    }
}

/// One datagram with the TTL (or hop limit) it arrived with.
async fn receive(sock: &UdpSocket) -> Datagram {
    loop {
        let r = sock
            .async_io(Interest::READABLE, || {
                let mut buf = [0u8; 128];
                let mut cmsg = nix::cmsg_space!(i32);
                let mut iov = [IoSliceMut::new(&mut buf)];
                let msg = recvmsg::<SockaddrStorage>(
                    sock.as_raw_fd(),
                    &mut iov,
                    Some(&mut cmsg),
                    MsgFlags::MSG_DONTWAIT,
                )
                .map_err(std::io::Error::from)?;
                let mut ttl = None;
                if let Ok(cmsgs) = msg.cmsgs() {
                    for c in cmsgs {
                        match c {
                            ControlMessageOwned::Ipv4Ttl(t) => ttl = u8::try_from(t).ok(),
                            ControlMessageOwned::Ipv6HopLimit(t) => ttl = u8::try_from(t).ok(),
                            _ => {}
                        }
                    }
                }
                let from = msg.address.and_then(|a| {
                    if let Some(v4) = a.as_sockaddr_in() {
                        Some(IpAddr::V4(v4.ip()))
                    } else {
                        a.as_sockaddr_in6()
                            .map(|v6| IpAddr::V6(v6.ip()).to_canonical())
                    }
                });
                let n = msg.bytes;
                Ok((buf[..n].to_vec(), from, ttl))
            })
            .await;
        match r {
            Ok((b, Some(from), ttl)) => return (b, from, ttl),
            Ok(_) => continue,
            Err(e) => {
                warn!(error = %e, "BFD receive failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// The kind's port on IPv4 and (if the host has it) IPv6, asking for each packet's TTL.
fn open_receivers(hops: Hops) -> std::io::Result<Receivers> {
    let v4 = std::net::UdpSocket::bind(SocketAddr::new(
        IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        hops.port(),
    ))?;
    v4.set_nonblocking(true)?;
    setsockopt(&v4, sockopt::Ipv4RecvTtl, &true)?;
    let v6 = match v6_only_socket(hops.port()) {
        Ok(s) => Some(UdpSocket::from_std(s)?),
        Err(e) => {
            debug!(error = %e, "BFD: no IPv6 receiver");
            None
        }
    };
    Ok(Receivers {
        hops,
        v4: UdpSocket::from_std(v4)?,
        v6,
    })
}

fn v6_only_socket(port: u16) -> std::io::Result<std::net::UdpSocket> {
    let fd = socket(
        AddressFamily::Inet6,
        SockType::Datagram,
        SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    setsockopt(&fd, sockopt::Ipv6V6Only, &true)?;
    setsockopt(&fd, sockopt::Ipv6RecvHopLimit, &true)?;
    let addr = SockaddrIn6::from(std::net::SocketAddrV6::new(
        Ipv6Addr::UNSPECIFIED,
        port,
        0,
        0,
    ));
    bind(fd.as_raw_fd(), &addr)?;
    Ok(std::net::UdpSocket::from(fd))
}

/// A socket for one session's packets: from `local` (else the kernel's choice, as for the BGP
/// session), a source port from 49152-65535, TTL 255, connected to the peer's port of the kind
/// (RFC 5881 §4; RFC 5883 §5 keeps all but the port).
async fn transmitter(
    peer: IpAddr,
    local: Option<IpAddr>,
    hops: Hops,
) -> std::io::Result<UdpSocket> {
    let any = local.unwrap_or(if peer.is_ipv4() {
        IpAddr::V4(Ipv4Addr::UNSPECIFIED)
    } else {
        IpAddr::V6(Ipv6Addr::UNSPECIFIED)
    });
    let mut last = None;
    let start = bfd::SOURCE_PORTS.start() + (std::process::id() % 1000) as u16;
    for port in (start..=*bfd::SOURCE_PORTS.end()).chain(*bfd::SOURCE_PORTS.start()..start) {
        match UdpSocket::bind(SocketAddr::new(any, port)).await {
            Ok(s) => {
                if peer.is_ipv4() {
                    s.set_ttl(u32::from(bfd::TTL))?;
                } else {
                    setsockopt(&s, sockopt::Ipv6Ttl, &i32::from(bfd::TTL))?;
                }
                s.connect(SocketAddr::new(peer, hops.port())).await?;
                return Ok(s);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("no free source port")))
}

/// bfd.XmitAuthSeq's first value must be random (RFC 5880 §6.8.1), so that packets of an
/// earlier run cannot be replayed to the peer.
fn random_u32() -> u32 {
    use std::io::Read;
    let mut b = [0u8; 4];
    match std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut b)) {
        Ok(()) => u32::from_ne_bytes(b),
        Err(_) => discriminator_seed().rotate_left(7),
    }
}

/// A starting point for local discriminators that differs between runs, so a restarted
/// speaker's packets are not taken for the old session's.
fn discriminator_seed() -> u32 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() ^ (d.as_secs() as u32).rotate_left(16))
        .unwrap_or(1);
    (t ^ std::process::id().rotate_left(8)) & 0x7fff_ffff
}
