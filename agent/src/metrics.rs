//! Prometheus metrics of `sartd agent`, served at `/metrics` with `/healthz` and `/readyz` (see
//! [`daemon::health`]) on `--http-addr` (sart's port 8000).
//!
//! - `sart_agent_syncs_total{result}`: runs of the plan against the speaker, by outcome.
//! - `sart_agent_established_sessions`: the node's Established BGP sessions at the last sync.
//! - `sart_agent_cni_requests_total{command, result}`: CNI calls from `sart-cni`, by outcome.
//! - `sart_agent_block_requests_total{reason, result}`: BlockRequests made, because an ADD found
//!   its pool's blocks full (`full`: that ADD waited) or ahead of need (`ahead`).
//! - `sart_agent_host_addresses{role}`: static addresses in another node's block that this node
//!   announces as host routes (`borrowed`), and addresses of this node's blocks lent out
//!   (`lent`).

use std::net::SocketAddr;
use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use daemon::health::Health;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CniLabels {
    command: &'static str,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BlockLabels {
    reason: &'static str,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RoleLabels {
    role: &'static str,
}

#[derive(Debug)]
struct Inner {
    registry: Registry,
    syncs: Family<ResultLabels, Counter>,
    established: Gauge,
    cni: Family<CniLabels, Counter>,
    blocks: Family<BlockLabels, Counter>,
    hosts: Family<RoleLabels, Gauge>,
}

#[derive(Clone, Debug)]
pub(crate) struct Metrics(Arc<Inner>);

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let syncs = Family::<ResultLabels, Counter>::default();
        registry.register(
            "sart_agent_syncs",
            "Runs of the plan against the node's speaker, by result",
            syncs.clone(),
        );
        let established = Gauge::default();
        registry.register(
            "sart_agent_established_sessions",
            "The node's Established BGP sessions at the last sync",
            established.clone(),
        );
        let cni = Family::<CniLabels, Counter>::default();
        registry.register(
            "sart_agent_cni_requests",
            "CNI calls from sart-cni, by command and result",
            cni.clone(),
        );
        let blocks = Family::<BlockLabels, Counter>::default();
        registry.register(
            "sart_agent_block_requests",
            "BlockRequests made, because an ADD found its pool's blocks full (full) or ahead of need (ahead), by result",
            blocks.clone(),
        );
        let hosts = Family::<RoleLabels, Gauge>::default();
        registry.register(
            "sart_agent_host_addresses",
            "Static addresses of other nodes' blocks announced here as host routes (borrowed), and addresses of this node's blocks lent out (lent)",
            hosts.clone(),
        );
        Metrics(Arc::new(Inner {
            registry,
            syncs,
            established,
            cni,
            blocks,
            hosts,
        }))
    }
}

fn result(ok: bool) -> &'static str {
    if ok { "ok" } else { "error" }
}

impl Metrics {
    /// A sync ended: with this many sessions Established, or failed.
    pub(crate) fn synced(&self, established: Option<usize>) {
        let labels = ResultLabels {
            result: result(established.is_some()),
        };
        self.0.syncs.get_or_create(&labels).inc();
        self.0
            .established
            .set(established.map_or(0, |n| i64::try_from(n).unwrap_or(i64::MAX)));
    }

    pub(crate) fn cni(&self, command: &'static str, ok: bool) {
        let labels = CniLabels {
            command,
            result: result(ok),
        };
        self.0.cni.get_or_create(&labels).inc();
    }

    /// A BlockRequest ended: made `ahead` of need or for an ADD that found its blocks full.
    pub(crate) fn block_request(&self, ahead: bool, ok: bool) {
        let labels = BlockLabels {
            reason: if ahead { "ahead" } else { "full" },
            result: result(ok),
        };
        self.0.blocks.get_or_create(&labels).inc();
    }

    /// Host routes this node announces for borrowed addresses, and addresses it lends.
    pub(crate) fn host_addresses(&self, borrowed: usize, lent: usize) {
        for (role, n) in [("borrowed", borrowed), ("lent", lent)] {
            self.0
                .hosts
                .get_or_create(&RoleLabels { role })
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
    }

    pub(crate) fn render(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.0.registry)?;
        Ok(out)
    }
}

/// Binds `addr` (a port taken is an error now, not later) and serves until the process ends.
pub(crate) async fn serve(
    addr: SocketAddr,
    metrics: Metrics,
    health: &Arc<Health>,
) -> std::io::Result<impl std::future::Future<Output = std::io::Result<()>> + use<>> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let app = daemon::health::router(move || metrics.render(), health);
    Ok(async move { axum::serve(listener, app).await })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn renders_what_was_recorded() {
        let m = Metrics::default();
        m.synced(Some(2));
        m.synced(None);
        m.cni("ADD", true);
        m.cni("ADD", false);
        m.cni("DEL", true);
        m.block_request(true, true);
        m.block_request(false, false);
        m.host_addresses(2, 1);
        let out = m.render().unwrap();
        for line in [
            "sart_agent_syncs_total{result=\"ok\"} 1",
            "sart_agent_syncs_total{result=\"error\"} 1",
            "sart_agent_established_sessions 0",
            "sart_agent_cni_requests_total{command=\"ADD\",result=\"ok\"} 1",
            "sart_agent_cni_requests_total{command=\"ADD\",result=\"error\"} 1",
            "sart_agent_cni_requests_total{command=\"DEL\",result=\"ok\"} 1",
            "sart_agent_block_requests_total{reason=\"ahead\",result=\"ok\"} 1",
            "sart_agent_block_requests_total{reason=\"full\",result=\"error\"} 1",
            "sart_agent_host_addresses{role=\"borrowed\"} 2",
            "sart_agent_host_addresses{role=\"lent\"} 1",
        ] {
            assert!(out.contains(line), "{line} not in\n{out}");
        }
    }
}
