//! AddressPool status and deletion. The verdict comes from [`k8s::pools::validate`]; this
//! writes it as a `Ready` condition with counts, and holds the finalizer while any address or
//! block of the pool is in use.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::runtime::reflector;
use kube::{Client, Resource, ResourceExt};
use serde_json::json;
use tracing::{info, warn};

use super::context::{Addresses, Events, Refresh};
use super::{Error, condition, set_finalizer};
use k8s::crd::address_pool::FINALIZER;
use k8s::crd::{AddressBlock, AddressPool, AddressType};
use k8s::pools::{self, ValidPool};

/// The AddressPool controller's.
pub(crate) struct PoolContext {
    pub(crate) client: Client,
    pub(crate) events: Arc<Events>,
    pub(crate) metrics: crate::metrics::Metrics,
    pub(crate) addresses: Arc<Addresses>,
    pub(crate) refresh: Refresh,
    pub(crate) pools: reflector::Store<AddressPool>,
    pub(crate) blocks: reflector::Store<AddressBlock>,
}

/// What uses a pool now.
struct Use {
    /// Service addresses inside it, or addresses of its blocks.
    addresses: u128,
    blocks: u64,
    /// Pod pools: addresses pods hold, from the blocks' status.
    used: Option<u128>,
    /// Who, for the message when deletion waits.
    users: Vec<String>,
}

fn cap(n: u128) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

async fn usage(pool: &ValidPool, ctx: &PoolContext) -> Result<Use, Error> {
    match pool.kind {
        AddressType::Service => {
            let alloc = ctx.addresses.lock();
            let mut ips = BTreeSet::<IpAddr>::new();
            let mut users = Vec::new();
            for (k, held) in alloc.services() {
                let inside: Vec<&IpAddr> =
                    held.iter().filter(|ip| pool.pool.contains(**ip)).collect();
                if !inside.is_empty() {
                    users.push(format!("Service {k}"));
                    ips.extend(inside);
                }
            }
            Ok(Use {
                addresses: ips.len() as u128,
                blocks: 0,
                used: None,
                users,
            })
        }
        AddressType::Pod => {
            let all = ctx.blocks.state();
            let mine: Vec<_> = all
                .iter()
                .filter(|b| b.spec.pool_ref == pool.name)
                .collect();
            let blocks: Vec<String> = mine.iter().map(|b| b.name_any()).collect();
            let used = mine
                .iter()
                .filter_map(|b| b.status.as_ref()?.used)
                .map(|u| u128::try_from(u).unwrap_or(0))
                .sum();
            let per_block = 1u128 << (pool.pool.cidr().max_prefix_len() - pool.pool.block_len());
            Ok(Use {
                addresses: per_block.saturating_mul(blocks.len() as u128),
                blocks: blocks.len() as u64,
                used: Some(used),
                users: blocks.iter().map(|b| format!("AddressBlock {b}")).collect(),
            })
        }
    }
}

pub(crate) async fn reconcile(
    pool: Arc<AddressPool>,
    ctx: Arc<PoolContext>,
) -> Result<Action, Error> {
    let name = pool.name_any();
    let api: Api<AddressPool> = Api::all(ctx.client.clone());
    let all: Vec<AddressPool> = ctx.pools.state().iter().map(|p| (**p).clone()).collect();
    let verdict = pools::validate(&all)
        .remove(&name)
        .unwrap_or_else(|| pools::parse(&pool));
    let has_finalizer = pool.finalizers().iter().any(|f| f == FINALIZER);
    if ctx.addresses.sync_pools() {
        ctx.refresh.services();
    }

    if pool.meta().deletion_timestamp.is_some() {
        if !has_finalizer {
            return Ok(Action::await_change());
        }
        if !ctx.addresses.restored() {
            return Ok(Action::requeue(Duration::from_secs(1)));
        }
        if let Ok(v) = &verdict {
            let u = usage(v, &ctx).await?;
            if !u.users.is_empty() {
                let shown: Vec<&str> = u.users.iter().take(5).map(String::as_str).collect();
                let note = format!(
                    "deletion waits: {} in use by {}{}",
                    v.pool.cidr(),
                    shown.join(", "),
                    if u.users.len() > 5 { ", ..." } else { "" }
                );
                ctx.events
                    .event(&*pool, EventType::Warning, "InUse", "Delete", &note)
                    .await;
                return Ok(Action::requeue(Duration::from_secs(10)));
            }
        }
        set_finalizer(&api, &*pool, FINALIZER, false).await?;
        ctx.metrics.forget_pool(&name);
        info!(pool = %name, "pool released");
        return Ok(Action::await_change());
    }

    if !has_finalizer {
        set_finalizer(&api, &*pool, FINALIZER, true).await?;
    }
    let mut status = pool.status.clone().unwrap_or_default();
    let (ready, reason, message) = match &verdict {
        Ok(v) => {
            let u = usage(v, &ctx).await?;
            let size = 1u128
                .checked_shl(u32::from(
                    v.pool.cidr().max_prefix_len() - v.pool.cidr().prefix_len(),
                ))
                .unwrap_or(u128::MAX);
            status.allocated = Some(cap(u.addresses));
            status.free = Some(cap(size.saturating_sub(u.addresses)));
            status.blocks = Some(i64::try_from(u.blocks).unwrap_or(i64::MAX));
            status.used = u.used.map(cap);
            ctx.metrics.pool(
                &name,
                cap(u.addresses),
                cap(size.saturating_sub(u.addresses)),
                i64::try_from(u.blocks).unwrap_or(i64::MAX),
            );
            ("True", "Valid", String::new())
        }
        Err(e) => {
            status.allocated = None;
            status.free = None;
            status.blocks = None;
            status.used = None;
            ctx.metrics.forget_pool(&name);
            ("False", e.reason(), e.to_string())
        }
    };
    let mut conditions = status.conditions.take().unwrap_or_default();
    let old = conditions.iter().position(|c| c.type_ == "Ready");
    let same = old.is_some_and(|i| condition::says(&conditions[i], ready, reason, &message));
    if !same {
        if ready == "False" {
            warn!(pool = %name, %message, "pool refused");
            ctx.events
                .event(&*pool, EventType::Warning, reason, "Validate", &message)
                .await;
        }
        let c = condition::new("Ready", ready, reason, message, pool.metadata.generation);
        match old {
            Some(i) => conditions[i] = c,
            None => conditions.push(c),
        }
    }
    status.conditions = Some(conditions);
    if pool.status.as_ref() != Some(&status) {
        let patch = json!({ "status": status });
        api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(Error::Kube)?;
    }
    Ok(Action::await_change())
}
