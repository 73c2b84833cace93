//! The TCP listener on port 179 (or `--port`), IPv4 and IPv6: accepted connections go to the
//! speaker, which hands them to the session of the neighbour they come from.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tracing::warn;

/// Binds `[::]:port`, which on Linux also accepts IPv4 (as v4-mapped addresses, turned back into
/// IPv4 here); falls back to `0.0.0.0:port` where IPv6 is off.
pub async fn bind(port: u16) -> std::io::Result<TcpListener> {
    match TcpListener::bind(SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port)).await {
        Ok(l) => Ok(l),
        Err(_) => TcpListener::bind(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port)).await,
    }
}

/// Accepts forever, sending (stream, peer address) to the speaker.
pub async fn serve(listener: TcpListener, tx: mpsc::Sender<(TcpStream, IpAddr)>) {
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
