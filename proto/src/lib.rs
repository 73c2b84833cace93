//! Generated gRPC types and services of sart's API (`sart.v1`).

#![allow(clippy::all, clippy::pedantic)]

pub mod sart {
    pub mod v1 {
        tonic::include_proto!("sart.v1");
    }
}

pub use sart::v1;

/// An attribute message packed for `AddPathRequest.attributes` as sart packs it:
/// `type.googleapis.com/sart.v1.<Name>`.
pub fn any(name: &str, m: &impl prost::Message) -> prost_types::Any {
    prost_types::Any {
        type_url: format!("type.googleapis.com/sart.v1.{name}"),
        value: m.encode_to_vec(),
    }
}

/// The CNI error code for an error status of the agent's `CNIApi` (the CNI specification's
/// numbers; 100-102 are sart's): the one mapping, which sart-cni applies and the agent also
/// writes into the status details for a sart-cni of upstream sart. `status_call`: the error
/// answers STATUS, where FAILED_PRECONDITION means "cannot serve ADD" (50).
pub fn cni_error_code(code: tonic::Code, status_call: bool) -> u32 {
    use tonic::Code as G;
    match code {
        G::Unavailable | G::ResourceExhausted | G::DeadlineExceeded => 11,
        // The agent never answers these itself: they are a connection that broke mid-call
        // (the agent restarting), which a retry gets past.
        G::Unknown | G::Cancelled => 11,
        G::FailedPrecondition if status_call => 50,
        // What the agent finds wrong in CNI_NETNS, CNI_CONTAINERID, CNI_IFNAME or CNI_ARGS.
        G::InvalidArgument => 4,
        // A requested address is taken or in no pool.
        G::AlreadyExists => 101,
        // No pool applies, or the pool has no address left.
        G::OutOfRange => 102,
        // The agent's own error; its message says which.
        _ => 100,
    }
}

/// The URL for a `BgpApi` endpoint given as `host:port` (as sart's flags and CRDs write it) or
/// as a URL already.
pub fn endpoint_url(endpoint: &str) -> String {
    if endpoint.contains("://") {
        endpoint.to_owned()
    } else {
        format!("http://{endpoint}")
    }
}

/// Where a sart endpoint is: the path of a unix socket (`unix:///path` or `unix:/path`), or a
/// TCP endpoint (a URL or `host:port`) with its channel settings.
enum Target {
    Unix(String, tonic::transport::Endpoint),
    Tcp(tonic::transport::Endpoint),
}

/// The socket path of a `unix:///path` (or `unix:/path`) endpoint; `None` for any other.
pub fn unix_path(endpoint: &str) -> Option<&str> {
    endpoint
        .strip_prefix("unix://")
        .or_else(|| endpoint.strip_prefix("unix:"))
}

/// The host and port of an authority (`host:port`, `[v6]:port`, or a bare host).
pub fn split_authority(authority: &str) -> (&str, Option<u16>) {
    match authority.rsplit_once(':') {
        Some((host, port)) => match port.parse::<u16>() {
            Ok(port) => (host, Some(port)),
            Err(_) => (authority, None),
        },
        None => (authority, None),
    }
}

/// Whether `host` (as [`split_authority`] gives it) is this node's loopback: `localhost`,
/// 127.0.0.0/8 or ::1.
pub fn is_loopback_host(host: &str) -> bool {
    host == "localhost"
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn target(endpoint: &str) -> Result<Target, tonic::transport::Error> {
    use tonic::transport::Endpoint;
    Ok(match unix_path(endpoint) {
        // The URI is not used: the connector dials the socket.
        Some(path) => Target::Unix(path.to_owned(), Endpoint::from_static("http://sart")),
        None => Target::Tcp(Endpoint::from_shared(endpoint_url(endpoint))?),
    })
}

/// Dials the unix socket at `path`, whatever URI the channel asks for.
fn unix_connector(
    path: String,
) -> impl tower::Service<
    tonic::transport::Uri,
    Response = hyper_util::rt::TokioIo<tokio::net::UnixStream>,
    Error = std::io::Error,
    Future = impl Send,
> + Clone {
    tower::service_fn(move |_: tonic::transport::Uri| {
        let path = path.clone();
        async move {
            tokio::net::UnixStream::connect(path)
                .await
                .map(hyper_util::rt::TokioIo::new)
        }
    })
}

/// A channel to a sart endpoint (`unix:///path` for a unix socket, else a URL or `host:port`),
/// connecting within `timeout`.
pub async fn connect(
    endpoint: &str,
    timeout: std::time::Duration,
) -> Result<tonic::transport::Channel, tonic::transport::Error> {
    match target(endpoint)? {
        Target::Unix(path, e) => {
            e.connect_timeout(timeout)
                .connect_with_connector(unix_connector(path))
                .await
        }
        Target::Tcp(e) => e.connect_timeout(timeout).connect().await,
    }
}

/// As [`connect`], but nothing is dialled until the first call, and every call has `timeout`;
/// the channel reconnects by itself.
pub fn lazy_channel(
    endpoint: &str,
    connect_timeout: std::time::Duration,
    timeout: std::time::Duration,
) -> Result<tonic::transport::Channel, tonic::transport::Error> {
    Ok(match target(endpoint)? {
        Target::Unix(path, e) => e
            .connect_timeout(connect_timeout)
            .timeout(timeout)
            .connect_with_connector_lazy(unix_connector(path)),
        Target::Tcp(e) => e
            .connect_timeout(connect_timeout)
            .timeout(timeout)
            .connect_lazy(),
    })
}
