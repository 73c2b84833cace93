//! `sartd bgp`: the BGP speaker. A thin tokio shell around the `bgp` crate: one task per
//! neighbour session, a listener, the speaker task owning the RIB, and the gRPC API.

#![warn(unreachable_pub)]

mod api;
mod bfd;
mod core;
mod export;
mod fib;
mod graceful;
mod inbox;
mod listener;
mod log_limit;
mod mailbox;
mod metrics;
mod neighbors;
mod outbox;
mod request;
mod session;
mod speaker;
mod timers;

pub use fib::command::{FibArgs, fib_main};

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;
use tracing::{error, info};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// YAML configuration (sart's format).
    #[arg(short = 'f', long)]
    pub file: Option<PathBuf>,
    /// Local AS number (overrides the file).
    #[arg(short = 'a', long = "as")]
    pub asn: Option<u32>,
    /// Router id (overrides the file).
    #[arg(short = 'r', long)]
    pub router_id: Option<Ipv4Addr>,
    /// gRPC API: `unix:///path` (a socket only root can connect to) or `address:port`.
    #[arg(long, default_value = "127.0.0.1:5000")]
    pub api_addr: ApiListen,
    /// Prometheus metrics (`/metrics`) and health (`/healthz`) listen address.
    #[arg(long, default_value = "127.0.0.1:7472")]
    pub metrics_addr: SocketAddr,
    /// BGP port to listen on and connect to.
    #[arg(long, default_value_t = 179)]
    pub port: u16,
    /// Where learned routes go: `kernel` (installed by this process), or the HOST:PORT of a
    /// `sartd fib` channel's BGP subscriber (sart's `--fib`).
    #[arg(long, value_name = "kernel|HOST:PORT")]
    pub fib: Option<String>,
    /// Kernel routing table for learned routes (sart's `--table-id`).
    #[arg(long)]
    pub table_id: Option<u32>,
    /// Peer state exporter endpoint (sart's `--exporter`).
    #[arg(long)]
    pub exporter: Option<String>,
}

/// Where the gRPC API listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ApiListen {
    Tcp(SocketAddr),
    /// Mode 0600: only root (the agent) can drive the speaker; on the node's file system, so
    /// no pod reaches it by sharing the node's network namespace.
    Unix(PathBuf),
}

impl std::str::FromStr for ApiListen {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match proto::unix_path(s) {
            Some(p) if p.starts_with('/') => Ok(ApiListen::Unix(p.into())),
            Some(p) => Err(format!("{p:?}: a unix socket path must be absolute")),
            None => s
                .parse()
                .map(ApiListen::Tcp)
                .map_err(|_| format!("{s:?}: neither unix:///path nor address:port")),
        }
    }
}

impl std::fmt::Display for ApiListen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ApiListen::Tcp(a) => write!(f, "{a}"),
            ApiListen::Unix(p) => write!(f, "unix://{}", p.display()),
        }
    }
}

/// Config errors exit with 2, runtime failures with 1.
pub fn main(args: Args) -> ExitCode {
    let mut config = match &args.file {
        None => speaker_config::Config::default(),
        Some(path) => match std::fs::read_to_string(path) {
            Err(e) => {
                eprintln!("error: {}: {e}", path.display());
                return ExitCode::from(2);
            }
            Ok(text) => match speaker_config::parse(&text) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("error: {}: {e}", path.display());
                    return ExitCode::from(2);
                }
            },
        },
    };
    if let Some(a) = args.asn {
        config.asn = a;
    }
    if let Some(r) = args.router_id {
        config.router_id = r;
    }
    let fib = match fib_target(
        args.fib.as_deref().or(config.fib_endpoint.as_deref()),
        args.table_id.or(config.fib_table),
    ) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    // sart's manifests pass one: refusing it would crash-loop an upgraded DaemonSet.
    if args.exporter.is_some() || config.exporter.is_some() {
        eprintln!(
            "warning: exporter (--exporter) ignored: peer state is served by the API's Watch stream, which the agent follows"
        );
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(
        config,
        args.port,
        args.api_addr,
        args.metrics_addr,
        fib,
    )) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!("{e:#}");
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Where learned routes go.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Fib {
    /// Installed into this kernel table by the speaker.
    Kernel(u32),
    /// Sent to a `sartd fib` BGP subscriber, which is told the table.
    Remote { endpoint: String, table: u32 },
}

/// From `--fib`/`fib_endpoint` and `--table-id`/`fib_table`: a table alone means the kernel.
fn fib_target(endpoint: Option<&str>, table: Option<u32>) -> Result<Option<Fib>, String> {
    if table == Some(0) {
        return Err("--table-id: table 0 is not a routing table".into());
    }
    let table_or_main = table.unwrap_or(254);
    Ok(match endpoint {
        Some("kernel") => Some(Fib::Kernel(table_or_main)),
        Some(e) if e.contains(':') => Some(Fib::Remote {
            endpoint: e.to_owned(),
            table: table_or_main,
        }),
        Some(e) => {
            return Err(format!(
                "--fib {e:?}: use kernel, or the HOST:PORT of a sartd fib BGP subscriber"
            ));
        }
        None => table.map(Fib::Kernel),
    })
}

/// Session events handled between two RIB drains, at most, and the prefixes they may carry in
/// all: a drain is paid for by many small UPDATEs (one route each when every route has its own
/// attributes), while the decoded UPDATEs held at once (peak memory) stay few.
const BATCH_EVENTS: usize = 1024;
const BATCH_PREFIXES: usize = 4096;

/// What an event weighs against [`BATCH_PREFIXES`].
fn weight(ev: &session::FromSession) -> usize {
    match ev {
        session::FromSession::Updates { updates, .. } => {
            updates.iter().map(|u| u.prefix_count().max(1)).sum()
        }
        _ => 1,
    }
}

async fn run(
    config: speaker_config::Config,
    port: u16,
    api_addr: ApiListen,
    metrics_addr: SocketAddr,
    fib: Option<Fib>,
) -> anyhow::Result<()> {
    let metrics = metrics::Metrics::new();
    // The loop below turns at least every 200 ms: 30 s without a turn is a stuck speaker.
    let health = daemon::health::Health::new(std::time::Duration::from_secs(30));
    metrics::serve(metrics_addr, metrics.clone(), &health)
        .await
        .with_context(|| format!("listening on the metrics address {metrics_addr}"))?;
    let listener = listener::bind(port)
        .await
        .with_context(|| format!("listening on BGP port {port}"))?;
    let listener = std::sync::Arc::new(listener);
    let (accept_tx, mut accept_rx) = mpsc::channel(64);
    tokio::spawn(listener::serve(listener.clone(), accept_tx));

    let (session_tx, mut session_rx) = mpsc::channel(1024);
    let (api_tx, mut api_rx) = mpsc::channel(64);
    let api = proto::v1::bgp_api_server::BgpApiServer::new(api::Api { tx: api_tx });
    let server = tonic::transport::Server::builder().add_service(api);
    let api_listener = match &api_addr {
        ApiListen::Tcp(a) => daemon::api_listener::Listener::Tcp(
            tokio::net::TcpListener::bind(a)
                .await
                .with_context(|| format!("listening on the API address {a}"))?,
        ),
        ApiListen::Unix(p) => daemon::api_listener::Listener::Unix(
            daemon::unix_socket::bind(p).context("listening on the API socket")?,
        ),
    };
    daemon::api_listener::serve(server, api_listener, &api_addr.to_string());
    info!(asn = config.asn, router_id = %config.router_id, port, api = %api_addr, metrics = %metrics_addr,
        "sartd bgp started");

    let mut speaker = speaker::Speaker::new(config, port, session_tx, metrics, Some(listener));
    match fib {
        Some(Fib::Kernel(table)) => {
            let fib = crate::fib::start(table)
                .await
                .with_context(|| format!("starting the kernel FIB (table {table})"))?;
            speaker.set_fib(fib);
        }
        Some(Fib::Remote { endpoint, table }) => {
            speaker
                .set_fib(crate::fib::remote::start(&endpoint, table).map_err(anyhow::Error::msg)?);
        }
        None => {}
    }
    let (bfd_tx, mut bfd_rx) = mpsc::channel(64);
    speaker.set_bfd(bfd::start(bfd_tx));
    speaker.start().await;
    // Ready once the API takes requests: the agent can configure this speaker.
    health.set_ready();
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    // Peer state changes are published by polling the sessions' watch channels this often.
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(200));
    loop {
        tokio::select! {
            Some(ev) = session_rx.recv() => {
                // Take some of what else is already queued before draining the RIB once.
                let mut weighed = weight(&ev);
                speaker.session_event(ev).await;
                for _ in 1..BATCH_EVENTS {
                    if weighed >= BATCH_PREFIXES {
                        break;
                    }
                    let Ok(ev) = session_rx.try_recv() else { break };
                    weighed += weight(&ev);
                    speaker.session_event(ev).await;
                }
            }
            Some((stream, from)) = accept_rx.recv() => speaker.accepted(stream, from).await,
            Some(req) = api_rx.recv() => speaker.request(req).await,
            Some(ev) = bfd_rx.recv() => speaker.bfd_event(ev).await,
            _ = tick.tick() => {
                health.beat();
                speaker.sample_metrics();
                let expired = speaker.expire_stale(std::time::Instant::now());
                speaker.check_converged().await;
                if !expired && !speaker.peer_state_changed() {
                    continue;
                }
            }
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
        speaker.flush().await;
    }
    info!("shutting down");
    speaker.exit("sartd is shutting down").await;
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::ApiListen;

    #[test]
    fn fib_goes_to_the_kernel_or_to_a_sartd_fib() {
        use super::{Fib, fib_target};
        assert_eq!(fib_target(None, None), Ok(None));
        assert_eq!(fib_target(None, Some(8)), Ok(Some(Fib::Kernel(8))));
        assert_eq!(fib_target(Some("kernel"), None), Ok(Some(Fib::Kernel(254))));
        assert_eq!(
            fib_target(Some("localhost:5010"), None),
            Ok(Some(Fib::Remote {
                endpoint: "localhost:5010".into(),
                table: 254
            }))
        );
        assert!(fib_target(Some("kernel"), Some(0)).is_err());
        assert!(
            fib_target(Some("zebra"), None)
                .unwrap_err()
                .contains("HOST:PORT")
        );
    }

    #[test]
    fn api_listens_on_a_socket_or_an_address() {
        assert_eq!(
            "unix:///run/sart/bgp.sock".parse::<ApiListen>(),
            Ok(ApiListen::Unix("/run/sart/bgp.sock".into()))
        );
        assert_eq!(
            "127.0.0.1:5000".parse::<ApiListen>(),
            Ok(ApiListen::Tcp("127.0.0.1:5000".parse().unwrap()))
        );
        assert!("unix:bgp.sock".parse::<ApiListen>().is_err());
        assert!("localhost".parse::<ApiListen>().is_err());
        assert_eq!(
            ApiListen::Unix("/run/sart/bgp.sock".into()).to_string(),
            "unix:///run/sart/bgp.sock"
        );
    }
}
