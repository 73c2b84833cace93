//! A BGPAdvertisement as the controller's cache keeps it: there is one per Service address and
//! per pod block, and the controller reads of each only whose it is, its type and where each
//! peer stands. The labels map, owner reference and spec strings of the full object cost more
//! than all of that together. Read from the wire through [`Wire`], which names only those
//! fields; writes go to the same resource through the full type.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Deserialize;

use super::resource_view::{WireMeta, resource_view};

use k8s::crd::{AddressType, AdvertiseStatus, BGPAdvertisement, SERVICE_NAME_LABEL};

/// What the controller reads of a BGPAdvertisement.
#[derive(Clone, Debug, Deserialize)]
#[serde(from = "Wire")]
pub(crate) struct CachedAd {
    /// Name, namespace, uid, resourceVersion, generation, times and finalizers: no labels.
    pub(crate) metadata: ObjectMeta,
    /// The Service it was made for (its `kubernetes.io/service-name` label).
    pub(crate) service: Option<String>,
    pub(crate) ad_type: AddressType,
    /// `status.peers`, in name order.
    pub(crate) peers: Box<[(String, AdvertiseStatus)]>,
}

impl CachedAd {
    /// `status.peers` as a map.
    pub(crate) fn peer_map(&self) -> BTreeMap<String, AdvertiseStatus> {
        self.peers.iter().cloned().collect()
    }
}

resource_view!(CachedAd, BGPAdvertisement);

/// The fields read here, as the API server sends them.
#[derive(Default, Deserialize)]
#[serde(default)]
struct Wire {
    metadata: WireMeta,
    spec: WireSpec,
    status: Option<WireStatus>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct WireSpec {
    #[serde(rename = "type")]
    ad_type: AddressType,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct WireStatus {
    peers: Option<BTreeMap<String, AdvertiseStatus>>,
}

impl From<Wire> for CachedAd {
    fn from(w: Wire) -> CachedAd {
        let mut m = w.metadata.split();
        CachedAd {
            service: m.labels.remove(SERVICE_NAME_LABEL),
            metadata: m.meta,
            ad_type: w.spec.ad_type,
            peers: w
                .status
                .and_then(|s| s.peers)
                .unwrap_or_default()
                .into_iter()
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use kube::Resource;
    use kube::ResourceExt;
    use serde_json::json;

    #[test]
    fn reads_what_the_controller_uses_and_nothing_else() {
        let a: CachedAd = serde_json::from_value(json!({
            "apiVersion": "sart.terassyi.net/v1alpha2", "kind": "BGPAdvertisement",
            "metadata": {"name": "web-198-18-0-7", "namespace": "d", "uid": "u",
                "resourceVersion": "9",
                "labels": {SERVICE_NAME_LABEL: "web", "other": "x"},
                "ownerReferences": [{"apiVersion": "v1", "kind": "Service", "name": "web",
                    "uid": "s", "controller": true}]},
            "spec": {"cidr": "198.18.0.7/32", "type": "service", "protocol": "ipv4"},
            "status": {"peers": {"p2": "Withdraw", "p1": "Advertised"}}
        }))
        .unwrap();
        assert_eq!(a.name_any(), "web-198-18-0-7");
        assert_eq!(a.namespace().as_deref(), Some("d"));
        assert_eq!(a.resource_version().as_deref(), Some("9"));
        assert_eq!(a.service.as_deref(), Some("web"));
        assert_eq!(a.ad_type, AddressType::Service);
        assert!(a.metadata.labels.is_none() && a.metadata.owner_references.is_none());
        assert_eq!(
            a.peers[..],
            [
                ("p1".to_owned(), AdvertiseStatus::Advertised),
                ("p2".to_owned(), AdvertiseStatus::Withdraw)
            ]
        );
        assert_eq!(a.peer_map().len(), 2);
        assert_eq!(
            CachedAd::url_path(&(), Some("d")),
            "/apis/sart.terassyi.net/v1alpha2/namespaces/d/bgpadvertisements"
        );

        let pod: CachedAd = serde_json::from_value(json!({
            "metadata": {"name": "b", "namespace": "kube-system"},
            "spec": {"cidr": "198.18.128.0/24", "type": "pod", "protocol": "ipv4"},
            "status": null
        }))
        .unwrap();
        assert_eq!(pod.ad_type, AddressType::Pod);
        assert!(pod.service.is_none() && pod.peers.is_empty());
    }
}
