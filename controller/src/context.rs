//! What the controllers share. Each reconciler's own context (the caches it reads, the state it
//! keeps) is in its module; what two of them share is named here, so that sharing is visible:
//! the LoadBalancer [`Addresses`] (the Service controller assigns, the AddressPool controller
//! reports use, the gone-Service task gives back), the BGPAdvertisements just written ([`Ads`],
//! Service and pod block ones), the [`Refresh`] pokes and the [`Events`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};

use kube::runtime::events::{Event, EventType, Recorder};
use kube::runtime::reflector;
use kube::{Client, Resource, ResourceExt};
use tokio::sync::mpsc;
use tracing::warn;

use k8s::crd::{AddressPool, AddressType};
use k8s::pools;

use super::{CONTROLLER_NAME, locked, recent};

/// Events on the objects the controllers act on.
pub(crate) struct Events {
    pub(crate) client: Client,
    pub(crate) recorder: Recorder,
    /// This replica's name, as Events report it.
    pub(crate) instance: String,
}

impl Events {
    /// Records an Event on `obj`; failing to record one is logged, never fatal.
    pub(crate) async fn event<K>(
        &self,
        obj: &K,
        type_: EventType,
        reason: &str,
        action: &str,
        note: &str,
    ) where
        K: Resource<DynamicType = ()>,
    {
        let ev = Event {
            type_,
            reason: reason.into(),
            note: Some(note.into()),
            action: action.into(),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&ev, &obj.object_ref(&())).await {
            warn!(error = %e, "publishing an event");
        }
    }

    /// A Normal Event that happens once per object (an address given): created as is. The
    /// recorder keeps every Event it sent for minutes, to count repeats, and sweeps that whole
    /// cache on each send; for a burst of 10,000 Services that is memory and time for nothing.
    pub(crate) async fn event_once<K>(&self, obj: &K, reason: &str, action: &str, note: &str)
    where
        K: Resource<DynamicType = ()>,
    {
        use k8s_openapi::api::events::v1::Event as K8sEvent;
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
        let regarding = obj.object_ref(&());
        let now = k8s_openapi::jiff::Timestamp::now();
        let ns = regarding
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        let ev = K8sEvent {
            metadata: ObjectMeta {
                // As kube's recorder names them: the object's name and the time.
                name: Some(format!(
                    "{}.{:x}",
                    obj.meta().name.as_deref().unwrap_or("sart"),
                    now.as_nanosecond()
                )),
                namespace: Some(ns.clone()),
                ..ObjectMeta::default()
            },
            action: Some(action.into()),
            reason: Some(reason.into()),
            note: Some(note.into()),
            type_: Some("Normal".into()),
            event_time: Some(MicroTime(now)),
            reporting_controller: Some(CONTROLLER_NAME.into()),
            reporting_instance: Some(self.instance.clone()),
            regarding: Some(regarding),
            ..K8sEvent::default()
        };
        let api: kube::Api<K8sEvent> = kube::Api::namespaced(self.client.clone(), &ns);
        if let Err(e) = api.create(&Default::default(), &ev).await {
            warn!(error = %e, "publishing an event");
        }
    }
}

/// Asks a controller to look at every object again. A full channel means a refresh is already
/// pending, so a poke never waits.
#[derive(Clone)]
pub(crate) struct Refresh {
    pub(crate) pools: mpsc::Sender<()>,
    pub(crate) services: mpsc::Sender<()>,
    pub(crate) cluster_bgps: mpsc::Sender<()>,
}

impl Refresh {
    /// Every pool's status (counts, use).
    pub(crate) fn pools(&self) {
        let _ = self.pools.try_send(());
    }

    /// Every Service (pools changed).
    pub(crate) fn services(&self) {
        let _ = self.services.try_send(());
    }

    /// Every ClusterBGP's status.
    pub(crate) fn cluster_bgps(&self) {
        let _ = self.cluster_bgps.try_send(());
    }
}

/// The LoadBalancer addresses: the allocator, and the service pools it was last given.
pub(crate) struct Addresses {
    alloc: Mutex<ipam::Allocator>,
    pools: reflector::Store<AddressPool>,
    synced: Mutex<Vec<ipam::LbPool>>,
    /// Set once every Service's addresses are recorded; pools are not let go before.
    restored: AtomicBool,
}

impl Addresses {
    pub(crate) fn new(pools: reflector::Store<AddressPool>) -> Addresses {
        Addresses {
            alloc: Mutex::new(ipam::Allocator::default()),
            pools,
            synced: Mutex::new(Vec::new()),
            restored: AtomicBool::new(false),
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, ipam::Allocator> {
        locked(&self.alloc)
    }

    /// Valid service pools. A pool being deleted gives out nothing new (its holders keep what
    /// they have until they move; its deletion waits for them).
    pub(crate) fn valid_service_pools(&self) -> Vec<pools::ValidPool> {
        let all: Vec<AddressPool> = self.pools.state().iter().map(|p| (**p).clone()).collect();
        let deleting: std::collections::BTreeSet<String> = all
            .iter()
            .filter(|p| p.metadata.deletion_timestamp.is_some())
            .map(|p| p.name_any())
            .collect();
        pools::validate(&all)
            .into_values()
            .filter_map(Result::ok)
            .filter(|v| !deleting.contains(&v.name))
            .filter(|v| v.kind == AddressType::Service)
            .collect()
    }

    /// Gives the allocator the current pools; whether they changed.
    pub(crate) fn sync_pools(&self) -> bool {
        self.sync_pools_from(&self.valid_service_pools())
    }

    /// As [`Addresses::sync_pools`], with the valid service pools already read.
    pub(crate) fn sync_pools_from(&self, valid: &[pools::ValidPool]) -> bool {
        let now: Vec<ipam::LbPool> = valid
            .iter()
            .map(|v| ipam::LbPool {
                name: v.name.clone(),
                cidr: v.pool.cidr(),
                auto_assign: v.auto_assign,
                selective: v.namespaces != pools::Namespaces::All,
            })
            .collect();
        let mut synced = locked(&self.synced);
        if *synced == now {
            return false;
        }
        match self.lock().set_pools(now.clone()) {
            Ok(()) => {
                *synced = now;
                true
            }
            Err(e) => {
                warn!(error = %e, "service pools not usable");
                false
            }
        }
    }

    pub(crate) fn restored(&self) -> bool {
        self.restored.load(Ordering::Acquire)
    }

    pub(crate) fn set_restored(&self) {
        self.restored.store(true, Ordering::Release);
    }
}

/// Writes BGPAdvertisements (see [`super::ads`]): the ones just created, which the cache may
/// not show yet.
pub(crate) struct Ads {
    pub(crate) client: Client,
    pub(crate) created: recent::Recent<(String, String), ()>,
}
