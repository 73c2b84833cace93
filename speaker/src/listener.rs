//! The TCP listener on port 179 (or `--port`), IPv4 and IPv6: accepted connections go to the
//! speaker, which hands them to the session of the neighbour they come from.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::AsFd;
use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tracing::warn;

/// Binds `[::]:port`, which on Linux also accepts IPv4 (as v4-mapped addresses, turned back into
/// IPv4 here); falls back to `0.0.0.0:port` where IPv6 is off.
pub(crate) async fn bind(port: u16) -> std::io::Result<TcpListener> {
    match listen(SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port)) {
        Ok(l) => Ok(l),
        Err(_) => listen(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port)),
    }
}

/// Hundreds of peers may connect at once (a rack restarting): a backlog of 128, tokio's
/// default, overflows and makes the rest wait out a 1 s SYN retransmission.
const BACKLOG: u32 = 4096;

fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(BACKLOG)
}

/// Installs (or with `None`, removes) a neighbour's TCP MD5 key on the listener, so that the
/// kernel verifies its SYNs (RFC 2385).
pub(crate) fn set_password(
    listener: &TcpListener,
    peer: IpAddr,
    key: Option<&[u8]>,
) -> std::io::Result<()> {
    let v6 = listener.local_addr()?.is_ipv6();
    sockopt::set_tcp_md5(listener.as_fd(), peer, v6, key.unwrap_or_default())
}

/// Has the listener answer SYNs with TTL 255, for neighbours with GTSM (RFC 5082) that connect
/// to us: they drop anything less. Harmless for the others, so it is never undone.
pub(crate) fn send_with_ttl_255(listener: &TcpListener) -> std::io::Result<()> {
    let v6 = listener.local_addr()?.is_ipv6();
    sockopt::send_with_ttl_255(listener.as_fd(), v6)
}

/// Accepts forever, sending (stream, peer address) to the speaker.
pub(crate) async fn serve(listener: Arc<TcpListener>, tx: mpsc::Sender<(TcpStream, IpAddr)>) {
    loop {
        match listener.accept().await {
            Ok((stream, addr)) => {
                if tx.send((stream, addr.ip().to_canonical())).await.is_err() {
                    return;
                }
            }
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}
