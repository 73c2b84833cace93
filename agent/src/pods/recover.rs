//! An earlier run's pods, at start: the records on disk taken back, and running pods no record
//! names (sart's agent kept none) adopted with the addresses the API shows for them.

use std::collections::BTreeSet;
use std::net::IpAddr;

use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use tracing::{info, warn};

use crate::podnet::{self, NetError};

use super::{PodNetwork, unix_now};

impl PodNetwork {
    /// Takes the records of an earlier run back (after the caches are ready).
    pub(crate) fn restore(&self) -> Result<usize, crate::pod_store::StoreError> {
        let (records, bad) = self.store.load()?;
        for e in bad {
            warn!(error = %e, "CNI record unreadable; left on disk");
        }
        let mut st = self.lock();
        self.sync_blocks(&mut st);
        let mut n = 0;
        for s in records {
            let att = s.attachment();
            match st.ipam.restore(att.clone(), s.record()) {
                Ok(()) => {
                    st.attachments.insert(att, s);
                    n += 1;
                }
                Err(e) => {
                    warn!(container = %s.container_id, error = %e, "CNI record not restored; left on disk")
                }
            }
        }
        Ok(n)
    }

    /// Records the running pods of this node that no record names, with the addresses the API
    /// shows for them (see [`super::adopt`]), and moves sart's routes of those pods into the
    /// main table. How many pods were taken in.
    pub(crate) async fn adopt(&self) -> Result<usize, NetError> {
        if let Err(e) = k8s::cache::ready(&self.pods).await {
            warn!(error = %e, "pods of this node unknown: none adopted");
            return Ok(0);
        }
        let routes = podnet::pod_routes().await?;
        let running: Vec<crate::adopt::RunningPod> = self
            .pods
            .state()
            .iter()
            .filter_map(|p| running_pod(p))
            .collect();
        let plan = {
            let st = self.lock();
            let recorded: BTreeSet<IpAddr> = st
                .attachments
                .values()
                .flat_map(|s| s.addresses.iter().map(|a| a.ip))
                .collect();
            let recorded_pods: BTreeSet<(String, String)> = st
                .attachments
                .values()
                .map(|s| (s.pod_namespace.clone(), s.pod_name.clone()))
                .collect();
            crate::adopt::plan(
                &running,
                &recorded,
                &recorded_pods,
                &routes,
                |ip| st.ipam.block_of(ip).map(str::to_owned),
                unix_now(),
            )
        };
        let mut n = 0;
        for a in plan {
            let s = a.stored;
            let pod = format!("{}/{}", s.pod_namespace, s.pod_name);
            let att = s.attachment();
            {
                let mut st = self.lock();
                if let Err(e) = st.ipam.restore(att.clone(), s.record()) {
                    warn!(pod = %pod, error = %e, "running pod not adopted");
                    continue;
                }
                st.attachments.insert(att, s.clone());
            }
            if let Err(e) = self.save(&s).await {
                // Still held in memory for this run; the next start adopts it again.
                warn!(pod = %pod, error = %e, "adopted pod's record not written");
            }
            if !a.migrate.is_empty()
                && let Err(e) = podnet::migrate(s.host_ifname.clone(), a.migrate.clone()).await
            {
                warn!(pod = %pod, error = %e, "moving sart's routes of an adopted pod");
            }
            let addresses: Vec<String> = s.addresses.iter().map(|a| a.ip.to_string()).collect();
            info!(pod = %pod, addresses = ?addresses, veth = %s.host_ifname, container = %s.container_id,
                "adopted a running pod no record named");
            n += 1;
        }
        match podnet::drop_sart_rule().await {
            Ok(_) => {}
            Err(e) => warn!(error = %e, "removing sart's rule for table 120"),
        }
        Ok(n)
    }
}

/// A pod of this node whose addresses are in use: not host-network, not finished.
fn running_pod(p: &Pod) -> Option<crate::adopt::RunningPod> {
    let spec = p.spec.as_ref()?;
    if spec.host_network == Some(true) || p.metadata.deletion_timestamp.is_some() {
        return None;
    }
    let status = p.status.as_ref()?;
    if matches!(status.phase.as_deref(), Some("Succeeded" | "Failed")) {
        return None;
    }
    let ips: Vec<IpAddr> = status
        .pod_ips
        .iter()
        .flatten()
        .filter_map(|i| i.ip.parse().ok())
        .collect();
    (!ips.is_empty()).then(|| crate::adopt::RunningPod {
        namespace: p.namespace().unwrap_or_default(),
        name: p.name_any(),
        uid: p.metadata.uid.clone().unwrap_or_default(),
        ips,
    })
}
