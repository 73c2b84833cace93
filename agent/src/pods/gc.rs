//! What the runtime left behind: CNI GC of a network's attachments, attachments of pods that
//! are gone (the runtime never said DEL), and veths no record names.

use std::collections::BTreeSet;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use tracing::{debug, info, warn};

use crate::pod_ipam::Attachment;
use crate::pod_store::Stored;
use crate::podnet::{self, NetError};

use super::{PodError, PodNetwork, unix_now};

impl PodNetwork {
    /// Frees every attachment of `network` that is not in `valid`.
    pub(crate) async fn gc(
        &self,
        network: &str,
        valid: &BTreeSet<Attachment>,
    ) -> Result<usize, PodError> {
        let _slot = self.slot().await?;
        let stale: Vec<Stored> = self
            .lock()
            .attachments
            .values()
            .filter(|s| s.network == network && !valid.contains(&s.attachment()))
            .cloned()
            .collect();
        let mut n = 0;
        for s in stale {
            let Ok(_busy) = self.claim(&s.attachment()) else {
                continue;
            };
            self.undo(&s).await?;
            info!(container = %s.container_id, veth = %s.host_ifname, "GC: attachment freed");
            n += 1;
        }
        Ok(n)
    }

    /// Frees the attachments of pods that no longer exist (or were made again under the same
    /// name), or whose network namespace is gone: the runtime never said DEL for them, and would
    /// not now. Attachments younger than
    /// `min_age` are left alone (their pod may be on its way). How many were freed.
    pub(crate) async fn collect_leaks(&self, min_age: Duration) -> usize {
        let cutoff = unix_now().saturating_sub(min_age.as_secs());
        let old: Vec<Stored> = self
            .lock()
            .attachments
            .values()
            .filter(|s| s.created <= cutoff)
            .cloned()
            .collect();
        let mut n = 0;
        for s in old {
            // A namespace that is gone means a sandbox that is gone (a node restart, a runtime
            // that lost track of it).
            let netns_gone = !s.netns.is_empty() && !std::path::Path::new(&s.netns).exists();
            let api: Api<Pod> = Api::namespaced(self.client.clone(), &s.pod_namespace);
            let gone = netns_gone
                || match api.get_opt(&s.pod_name).await {
                    Ok(None) => true,
                    Ok(Some(p)) => {
                        !s.pod_uid.is_empty()
                            && p.metadata.uid.as_deref() != Some(s.pod_uid.as_str())
                    }
                    // Unsure: keep it.
                    Err(e) => {
                        debug!(error = %e, "leak GC: reading a pod");
                        false
                    }
                };
            if !gone {
                continue;
            }
            let Ok(_busy) = self.claim(&s.attachment()) else {
                continue;
            };
            // Still the same attachment (a DEL may have come meanwhile).
            if self.lock().attachments.get(&s.attachment()) != Some(&s) {
                continue;
            }
            match self.undo(&s).await {
                Ok(()) => {
                    warn!(pod = %format!("{}/{}", s.pod_namespace, s.pod_name), container = %s.container_id, "leak GC: the pod is gone; its addresses are freed");
                    n += 1;
                }
                Err(e) => warn!(container = %s.container_id, error = %e, "leak GC"),
            }
        }
        n
    }

    /// Deletes veths of ours that no record names (an agent killed between a DEL and the end
    /// of its veth's deletion leaves one).
    pub(crate) async fn sweep(&self) -> Result<usize, NetError> {
        let mut known = self.store.names();
        known.extend(self.attachments().into_iter().map(|s| s.host_ifname));
        podnet::sweep(known).await
    }
}
