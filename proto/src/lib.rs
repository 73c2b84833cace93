//! Generated gRPC types and services of sart's API (`sart.v1`).

#![allow(clippy::all, clippy::pedantic)]

pub mod sart {
    pub mod v1 {
        tonic::include_proto!("sart.v1");
    }
}

pub use sart::v1;

/// The URL for a `BgpApi` endpoint given as `host:port` (as sart's flags and CRDs write it) or
/// as a URL already.
pub fn endpoint_url(endpoint: &str) -> String {
    if endpoint.contains("://") {
        endpoint.to_owned()
    } else {
        format!("http://{endpoint}")
    }
}

/// A channel to a sart endpoint: `unix:///path` (or `unix:/path`) for a unix socket, else a URL
/// or `host:port`, connecting within `timeout`.
pub async fn connect(
    endpoint: &str,
    timeout: std::time::Duration,
) -> Result<tonic::transport::Channel, tonic::transport::Error> {
    use tonic::transport::{Endpoint, Uri};
    match endpoint
        .strip_prefix("unix://")
        .or_else(|| endpoint.strip_prefix("unix:"))
    {
        Some(path) => {
            let path = path.to_owned();
            // The URI is not used: the connector dials the socket.
            Endpoint::from_static("http://sart-agent")
                .connect_timeout(timeout)
                .connect_with_connector(tower::service_fn(move |_: Uri| {
                    let path = path.clone();
                    async move {
                        tokio::net::UnixStream::connect(path)
                            .await
                            .map(hyper_util::rt::TokioIo::new)
                    }
                }))
                .await
        }
        None => {
            Endpoint::from_shared(endpoint_url(endpoint))?
                .connect_timeout(timeout)
                .connect()
                .await
        }
    }
}

/// As [`connect`], but nothing is dialled until the first call, and every call has `timeout`;
/// the channel reconnects by itself.
pub fn lazy_channel(
    endpoint: &str,
    connect_timeout: std::time::Duration,
    timeout: std::time::Duration,
) -> Result<tonic::transport::Channel, tonic::transport::Error> {
    use tonic::transport::{Endpoint, Uri};
    match endpoint
        .strip_prefix("unix://")
        .or_else(|| endpoint.strip_prefix("unix:"))
    {
        Some(path) => {
            let path = path.to_owned();
            Ok(Endpoint::from_static("http://sart-speaker")
                .connect_timeout(connect_timeout)
                .timeout(timeout)
                .connect_with_connector_lazy(tower::service_fn(move |_: Uri| {
                    let path = path.clone();
                    async move {
                        tokio::net::UnixStream::connect(path)
                            .await
                            .map(hyper_util::rt::TokioIo::new)
                    }
                })))
        }
        None => Ok(Endpoint::from_shared(endpoint_url(endpoint))?
            .connect_timeout(connect_timeout)
            .timeout(timeout)
            .connect_lazy()),
    }
}
