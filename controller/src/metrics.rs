//! Prometheus metrics and health of `sartd controller`, served at `/metrics`, `/healthz` and
//! `/readyz` on `--http-bind` (sart's port 8080).
//!
//! - `sart_controller_leader`: 1 while this replica holds the Lease.
//! - `sart_controller_reconciles_total{controller, result}`: reconciles by controller and outcome.
//! - `sart_controller_pool_addresses{pool, state="allocated"|"free"}` and
//!   `sart_controller_pool_blocks{pool}`: what each valid pool's status shows.
//! - `sart_controller_admissions_total{webhook, allowed}`: webhook answers.

use std::net::SocketAddr;
use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReconcileLabels {
    controller: &'static str,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PoolLabels {
    pool: String,
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BlockLabels {
    pool: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AdmissionLabels {
    webhook: &'static str,
    allowed: &'static str,
}

struct Inner {
    registry: Registry,
    leader: Gauge,
    reconciles: Family<ReconcileLabels, Counter>,
    pool_addresses: Family<PoolLabels, Gauge>,
    pool_blocks: Family<BlockLabels, Gauge>,
    admissions: Family<AdmissionLabels, Counter>,
    /// Ready once the webhooks listen; no liveness beat (the controller's loops are kube-rs's).
    health: Arc<daemon::health::Health>,
}

/// Shared by the controllers, the webhooks and the HTTP server.
#[derive(Clone)]
pub struct Metrics(Arc<Inner>);

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("sart_controller");
        let leader = Gauge::default();
        registry.register(
            "leader",
            "1 while this replica holds the leader Lease",
            leader.clone(),
        );
        let reconciles = Family::<ReconcileLabels, Counter>::default();
        registry.register(
            "reconciles",
            "Reconciles by controller and result",
            reconciles.clone(),
        );
        let pool_addresses = Family::<PoolLabels, Gauge>::default();
        registry.register(
            "pool_addresses",
            "Addresses of each valid AddressPool, allocated or free (capped at 2^63-1)",
            pool_addresses.clone(),
        );
        let pool_blocks = Family::<BlockLabels, Gauge>::default();
        registry.register(
            "pool_blocks",
            "AddressBlocks cut from each pod pool",
            pool_blocks.clone(),
        );
        let admissions = Family::<AdmissionLabels, Counter>::default();
        registry.register(
            "admissions",
            "Admission webhook answers",
            admissions.clone(),
        );
        Metrics(Arc::new(Inner {
            registry,
            leader,
            reconciles,
            pool_addresses,
            pool_blocks,
            admissions,
            health: daemon::health::Health::new(std::time::Duration::MAX),
        }))
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    pub(crate) fn leader(&self, leading: bool) {
        self.0.leader.set(i64::from(leading));
    }

    pub(crate) fn reconciled(&self, controller: &'static str, ok: bool) {
        let result = if ok { "ok" } else { "error" };
        self.0
            .reconciles
            .get_or_create(&ReconcileLabels { controller, result })
            .inc();
    }

    pub(crate) fn pool(&self, pool: &str, allocated: i64, free: i64, blocks: i64) {
        for (state, v) in [("allocated", allocated), ("free", free)] {
            self.0
                .pool_addresses
                .get_or_create(&PoolLabels {
                    pool: pool.into(),
                    state,
                })
                .set(v);
        }
        self.0
            .pool_blocks
            .get_or_create(&BlockLabels { pool: pool.into() })
            .set(blocks);
    }

    /// A pool that is gone or refused leaves the metrics.
    pub(crate) fn forget_pool(&self, pool: &str) {
        for state in ["allocated", "free"] {
            self.0.pool_addresses.remove(&PoolLabels {
                pool: pool.into(),
                state,
            });
        }
        self.0
            .pool_blocks
            .remove(&BlockLabels { pool: pool.into() });
    }

    pub(crate) fn admitted(&self, webhook: &'static str, allowed: bool) {
        let allowed = if allowed { "true" } else { "false" };
        self.0
            .admissions
            .get_or_create(&AdmissionLabels { webhook, allowed })
            .inc();
    }

    /// `/readyz` answers 200 from now on.
    pub fn set_ready(&self) {
        self.0.health.set_ready();
    }

    pub fn render(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.0.registry)?;
        Ok(out)
    }
}

/// Serves `/metrics`, `/healthz` and `/readyz` until the process ends.
pub async fn serve(addr: SocketAddr, metrics: Metrics) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let health = metrics.0.health.clone();
    let app = daemon::health::router(move || metrics.render(), &health);
    axum::serve(listener, app).await
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn renders_what_was_recorded() {
        let m = Metrics::default();
        m.leader(true);
        m.reconciled("service", true);
        m.reconciled("service", false);
        m.pool("lb", 3, 253, 0);
        m.admitted("addresspool", false);
        let out = m.render().unwrap();
        assert!(out.contains("sart_controller_leader 1"), "{out}");
        assert!(out.contains(
            "sart_controller_reconciles_total{controller=\"service\",result=\"error\"} 1"
        ));
        assert!(out.contains("sart_controller_pool_addresses{pool=\"lb\",state=\"free\"} 253"));
        assert!(out.contains(
            "sart_controller_admissions_total{webhook=\"addresspool\",allowed=\"false\"} 1"
        ));
        m.forget_pool("lb");
        assert!(!m.render().unwrap().contains("pool=\"lb\""));
    }
}
