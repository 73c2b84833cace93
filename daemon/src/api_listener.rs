//! Where a gRPC API listens, a unix socket only root can connect to or a TCP port, and the
//! task that serves it: the speaker's API, `sartd fib`'s FibApi and FibManagerApi.

use tracing::error;

pub enum Listener {
    Tcp(tokio::net::TcpListener),
    Unix(tokio::net::UnixListener),
}

/// Serves `router` on `l` on a task of its own; `what` names it if it stops.
pub fn serve(router: tonic::transport::server::Router, l: Listener, what: &str) {
    let what = what.to_owned();
    tokio::spawn(async move {
        let r = match l {
            Listener::Tcp(l) => {
                router
                    .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(l))
                    .await
            }
            Listener::Unix(l) => {
                router
                    .serve_with_incoming(tokio_stream::wrappers::UnixListenerStream::new(l))
                    .await
            }
        };
        if let Err(e) = r {
            error!(api = %what, error = %e, "API server stopped");
        }
    });
}
