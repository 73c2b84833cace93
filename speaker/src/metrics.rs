//! Prometheus metrics of the speaker, served at `/metrics` (with `/healthz` and `/readyz`, see
//! [`daemon::health`]) on `--metrics-addr`.
//!
//! Per-session figures (state, messages, prefixes) are a snapshot the speaker refreshes on every
//! loop tick and a collector encodes at scrape time; speaker-wide ones (best-path changes, UPDATE
//! processing latency) are ordinary prometheus-client metrics updated in place.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bgp::fsm::State;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use tracing::error;

use super::session::Counters;

/// One session as the metrics show it.
#[derive(Debug, Clone)]
pub(crate) struct PeerSample {
    pub name: String,
    pub address: String,
    pub state: State,
    pub sent: Counters,
    pub received: Counters,
    pub prefixes_received: u64,
    /// Paths kept as stale while the peer restarts (graceful restart).
    pub stale_paths: u64,
    /// BFD: `Some(up)` when the neighbour has a BFD session.
    pub bfd_up: Option<bool>,
    pub bfd_up_transitions: u64,
    /// Octets of UPDATEs queued for the peer, and prefixes whose change waits coalesced.
    pub output_octets: u64,
    pub output_prefixes: u64,
    /// Sessions dropped because the peer stopped reading (RFC 9687).
    pub send_hold_expired: u64,
    /// Attribute errors in the peer's UPDATEs (RFC 7606).
    pub update_errors: u64,
    /// Times the peer went past its max-prefix limit (warned or closed).
    pub max_prefix_exceeded: u64,
}

#[derive(Debug, Default)]
struct Peers(Mutex<Vec<PeerSample>>);

const STATES: [State; 6] = [
    State::Idle,
    State::Connect,
    State::Active,
    State::OpenSent,
    State::OpenConfirm,
    State::Established,
];

fn by_type(c: &Counters) -> [(&'static str, u64); 5] {
    [
        ("open", c.open),
        ("update", c.update),
        ("notification", c.notification),
        ("keepalive", c.keepalive),
        ("route_refresh", c.route_refresh),
    ]
}

impl Collector for Peers {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let peers = match self.0.lock() {
            Ok(p) => p.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        let gauge = ConstGauge::new(0i64);
        let counter = ConstCounter::new(0u64);

        let mut m = enc.encode_descriptor(
            "sart_bgp_sessions",
            "Sessions by FSM state",
            None,
            gauge.metric_type(),
        )?;
        for s in STATES {
            let n = peers.iter().filter(|p| p.state == s).count() as i64;
            ConstGauge::new(n).encode(m.encode_family(&vec![("state", s.name())])?)?;
        }

        let mut m = enc.encode_descriptor(
            "sart_bgp_peer_state",
            "FSM state of each session (1 Idle .. 6 Established)",
            None,
            gauge.metric_type(),
        )?;
        for p in &peers {
            let labels = vec![("peer", p.address.clone()), ("name", p.name.clone())];
            ConstGauge::new(i64::from(p.state.api_number())).encode(m.encode_family(&labels)?)?;
        }

        for (name, help, pick) in [
            ("sart_bgp_messages_received", "BGP messages received", true),
            ("sart_bgp_messages_sent", "BGP messages sent", false),
        ] {
            let mut m = enc.encode_descriptor(name, help, None, counter.metric_type())?;
            for p in &peers {
                let c = if pick { &p.received } else { &p.sent };
                for (ty, n) in by_type(c) {
                    let labels = vec![("peer", p.address.clone()), ("type", ty.to_string())];
                    ConstCounter::new(n).encode(m.encode_family(&labels)?)?;
                }
            }
        }

        let mut m = enc.encode_descriptor(
            "sart_bgp_prefixes_received",
            "Paths accepted from each peer (Adj-RIB-In)",
            None,
            gauge.metric_type(),
        )?;
        for p in &peers {
            let labels = vec![("peer", p.address.clone())];
            ConstGauge::new(p.prefixes_received as i64).encode(m.encode_family(&labels)?)?;
        }

        let mut m = enc.encode_descriptor(
            "sart_bgp_stale_paths",
            "Paths kept from a restarting peer (graceful restart, RFC 4724)",
            None,
            gauge.metric_type(),
        )?;
        for p in &peers {
            let labels = vec![("peer", p.address.clone())];
            ConstGauge::new(p.stale_paths as i64).encode(m.encode_family(&labels)?)?;
        }

        for (name, help, pick) in [
            (
                "sart_bgp_output_queued_octets",
                "Octets of UPDATEs queued for the peer, not yet written",
                (|p: &PeerSample| p.output_octets) as fn(&PeerSample) -> u64,
            ),
            (
                "sart_bgp_output_coalesced_prefixes",
                "Prefixes whose change for the peer waits coalesced (the peer reads slower than routes change)",
                |p: &PeerSample| p.output_prefixes,
            ),
        ] {
            let mut m = enc.encode_descriptor(name, help, None, gauge.metric_type())?;
            for p in &peers {
                let labels = vec![("peer", p.address.clone())];
                ConstGauge::new(i64::try_from(pick(p)).unwrap_or(i64::MAX))
                    .encode(m.encode_family(&labels)?)?;
            }
        }
        let mut m = enc.encode_descriptor(
            "sart_bgp_send_hold_expired",
            "Sessions dropped because the peer read nothing for the send hold time (RFC 9687)",
            None,
            counter.metric_type(),
        )?;
        for p in &peers {
            let labels = vec![("peer", p.address.clone())];
            ConstCounter::new(p.send_hold_expired).encode(m.encode_family(&labels)?)?;
        }
        let mut m = enc.encode_descriptor(
            "sart_bgp_update_errors",
            "Attribute errors in the peer's UPDATEs, handled per RFC 7606 (treat-as-withdraw, attribute discard)",
            None,
            counter.metric_type(),
        )?;
        for p in &peers {
            let labels = vec![("peer", p.address.clone())];
            ConstCounter::new(p.update_errors).encode(m.encode_family(&labels)?)?;
        }
        let mut m = enc.encode_descriptor(
            "sart_bgp_max_prefix_exceeded",
            "Times the peer sent more routes than its max-prefix limit (RFC 4486 Cease/1 or a warning)",
            None,
            counter.metric_type(),
        )?;
        for p in &peers {
            let labels = vec![("peer", p.address.clone())];
            ConstCounter::new(p.max_prefix_exceeded).encode(m.encode_family(&labels)?)?;
        }

        let mut m = enc.encode_descriptor(
            "sart_bfd_session_up",
            "1 while the neighbour's BFD session is Up",
            None,
            gauge.metric_type(),
        )?;
        for p in &peers {
            if let Some(up) = p.bfd_up {
                let labels = vec![("peer", p.address.clone())];
                ConstGauge::new(i64::from(up)).encode(m.encode_family(&labels)?)?;
            }
        }
        let mut m = enc.encode_descriptor(
            "sart_bfd_up_transitions",
            "Times the neighbour's BFD session came Up",
            None,
            counter.metric_type(),
        )?;
        for p in &peers {
            if p.bfd_up.is_some() {
                let labels = vec![("peer", p.address.clone())];
                ConstCounter::new(p.bfd_up_transitions).encode(m.encode_family(&labels)?)?;
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Metrics {
    registry: Arc<Registry>,
    peers: Arc<Peers>,
    pub best_path_changes: Counter,
    /// Seconds to process one received UPDATE in the RIB.
    pub update_seconds: Histogram,
}

impl Metrics {
    pub(crate) fn new() -> Metrics {
        let mut registry = Registry::default();
        let peers = Arc::new(Peers::default());
        registry.register_collector(Box::new(peers.clone()));
        let best_path_changes = Counter::default();
        registry.register(
            "sart_bgp_best_path_changes",
            "Prefixes whose best path (or multipath set) changed",
            best_path_changes.clone(),
        );
        let update_seconds = Histogram::new(exponential_buckets(1e-6, 4.0, 12));
        registry.register(
            "sart_bgp_update_processing_seconds",
            "Time to process one received UPDATE in the RIB",
            update_seconds.clone(),
        );
        Metrics {
            registry: Arc::new(registry),
            peers,
            best_path_changes,
            update_seconds,
        }
    }

    pub(crate) fn set_peers(&self, samples: Vec<PeerSample>) {
        match self.peers.0.lock() {
            Ok(mut p) => *p = samples,
            Err(poisoned) => *poisoned.into_inner() = samples,
        }
    }

    fn render(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

/// Serves `/metrics`, `/healthz` and `/readyz` until the process ends.
pub(crate) async fn serve(
    addr: SocketAddr,
    metrics: Metrics,
    health: &Arc<daemon::health::Health>,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let app = daemon::health::router(move || metrics.render(), health);
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            error!(error = %e, "metrics server stopped");
        }
    });
    Ok(())
}
