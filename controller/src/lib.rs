//! `sartd controller`: AddressPools, LoadBalancer Services and per-node BGP, built on kube-rs'
//! runtime, and the admission webhooks that keep sart's CRs valid. One replica leads (a Lease);
//! it waits for the pools, records every address the cluster already shows, and only then
//! starts giving out new ones, so that a restart changes nothing.
//!
//! Each reconciler has a context of its own (`context.rs`); `serve.rs` wires them together.

#![warn(unreachable_pub)]

mod address_pool;
mod ads;
mod advertise;
mod cached_ad;
mod condition;
mod context;
mod lb_service;
mod lease;
pub mod metrics;
mod node_bgp;
mod node_bgp_plan;
mod pod_block;
mod pod_block_plan;
mod recent;
mod reservations;
mod resource_view;
mod serve;
pub mod service;
mod service_gone;
pub mod takeover;
pub mod webhook;

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use kube::Client;
use kube::Resource;
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::controller::Action;
use serde::de::DeserializeOwned;
use tracing::{debug, warn};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("kubernetes API: {0}")]
    Kube(#[source] kube::Error),
    #[error("waiting for the AddressPool cache: {0}")]
    Cache(String),
    #[error(transparent)]
    Lease(#[from] crate::lease::Error),
    /// A compare-and-swap lost to another writer (an agent, or our own cache being behind).
    #[error("{0} changed meanwhile")]
    Conflict(String),
}

/// Locks a mutex even if a panic poisoned it: a panic while holding one would be a bug
/// elsewhere, and what every lock here guards stays consistent (each method leaves it so).
fn locked<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The controller's name in the Events it records.
const CONTROLLER_NAME: &str = "sart-controller";

/// Settings of one controller instance.
#[derive(Clone, Debug)]
pub struct Options {
    /// Lease namespace and name; `None` runs without leader election (tests, one replica).
    pub lease: Option<(String, String)>,
    /// This replica's identity (the pod name).
    pub identity: String,
    /// Handle LoadBalancer Services (`--mode lb|dual`).
    pub services: bool,
    /// Hand out pod blocks (`--mode cni|dual`).
    pub pods: bool,
    pub metrics: crate::metrics::Metrics,
}

/// Adds or removes one finalizer ([`k8s::finalizer::set`]); a conflict is
/// reported as one.
async fn set_finalizer<K>(api: &Api<K>, obj: &K, finalizer: &str, present: bool) -> Result<K, Error>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
    K::DynamicType: Default,
{
    let name = obj.name_any();
    k8s::finalizer::set(api, obj, finalizer, present)
        .await
        .map_err(|e| conflict(e, format!("{} {name}", K::kind(&K::DynamicType::default()))))
}

/// A 409 from a compare-and-swap write is a [`Error::Conflict`], retried quickly and quietly.
fn conflict(e: kube::Error, what: String) -> Error {
    match e {
        kube::Error::Api(s) if s.code == 409 => Error::Conflict(what),
        e => Error::Kube(e),
    }
}

fn error_policy<K, C>(_obj: Arc<K>, e: &Error, _ctx: Arc<C>) -> Action {
    if let Error::Conflict(what) = e {
        debug!(%what, "changed meanwhile; reconciling again");
        return Action::requeue(Duration::from_millis(500));
    }
    warn!(error = %e, "reconcile failed; retrying");
    Action::requeue(Duration::from_secs(5))
}

/// Counts each reconcile's outcome under `controller`.
fn counted<T, E>(
    metrics: &crate::metrics::Metrics,
    controller: &'static str,
) -> impl FnMut(Result<T, E>) -> futures::future::Ready<()> + use<T, E> {
    let m = metrics.clone();
    move |r| {
        m.reconciled(controller, r.is_ok());
        futures::future::ready(())
    }
}

/// Runs the controller until the process ends or leadership is lost (an error).
pub async fn run(client: Client, opts: Options) -> Result<(), Error> {
    let elector = opts.lease.as_ref().map(|(ns, name)| {
        crate::lease::Elector::new(
            Api::namespaced(client.clone(), ns),
            name,
            &opts.identity,
            Duration::from_secs(15),
        )
    });
    let metrics = opts.metrics.clone();
    let Some(elector) = elector else {
        metrics.leader(true);
        return serve::serve(client, opts).await;
    };
    elector.acquire().await?;
    metrics.leader(true);
    // Renewal runs from the first moment: filling the caches of a large cluster may take longer
    // than the Lease lasts.
    let r = tokio::select! {
        e = elector.keep() => Err(Error::Lease(e)),
        r = serve::serve(client, opts) => r,
    };
    metrics.leader(false);
    r
}
