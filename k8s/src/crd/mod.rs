//! The `sart.terassyi.net/v1alpha2` API: the eight kinds sart users already apply, field for
//! field (names, printer columns, finalizers), plus optional fields and one kind
//! (AddressReservation) for what we add. The CRD
//! YAML in `manifests/crd/` is generated from these types by `crdgen`; `make test` checks that the
//! committed files match.

pub mod address_block;
pub mod address_pool;
pub mod address_reservation;
pub mod bgp_advertisement;
pub mod bgp_peer;
pub mod bgp_peer_template;
pub mod block_request;
pub mod cluster_bgp;
pub mod node_bgp;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use address_block::{AddressBlock, AddressBlockSpec, AddressBlockStatus};
pub use address_pool::{AddressPool, AddressPoolSpec, AddressPoolStatus, AllocType};
pub use address_reservation::{AddressReservation, AddressReservationSpec};
pub use bgp_advertisement::{
    AdvertiseStatus, BGPAdvertisement, BGPAdvertisementSpec, BGPAdvertisementStatus, Protocol,
    SERVICE_NAME_LABEL,
};
pub use bgp_peer::{
    BGPPeer, BGPPeerCondition, BGPPeerSlim, BGPPeerSpec, BGPPeerStatus, PeerConfig, PeerState,
};
pub use bgp_peer_template::{BGPPeerTemplate, BGPPeerTemplateSpec, PeerSettings};
pub use block_request::{BlockRequest, BlockRequestSpec, BlockRequestStatus};
pub use cluster_bgp::{
    AsnSelectionType, AsnSelector, ClusterBGP, ClusterBGPSpec, ClusterBGPStatus,
    RouterIdSelectionType, RouterIdSelector,
};
pub use node_bgp::{
    NodeBGP, NodeBGPCondition, NodeBGPConditionReason, NodeBGPConditionStatus, NodeBGPSpec,
    NodeBGPStatus,
};

/// The API group of every kind.
pub const GROUP: &str = "sart.terassyi.net";
/// Its only version.
pub const VERSION: &str = "v1alpha2";

/// Label on AddressBlocks (and pod BGPAdvertisements) naming their pool.
pub const ADDRESS_POOL_LABEL: &str = "sart.terassyi.net/addresspool";
/// Service (and pod/Namespace) annotation choosing pools, comma-separated.
pub const ADDRESS_POOL_ANNOTATION: &str = "sart.terassyi.net/addresspool";
/// Service annotation requesting addresses, comma-separated.
pub const LOAD_BALANCER_IPS_ANNOTATION: &str = "sart.terassyi.net/loadBalancerIPs";
/// Service annotation: Services with the same value may share an address when their ports do not
/// clash (MetalLB's `allow-shared-ip` semantics).
pub const ALLOW_SHARED_IP_ANNOTATION: &str = "sart.terassyi.net/allow-shared-ip";
/// `spec.loadBalancerClass` we answer to; Services without a class are ours too.
pub const LOAD_BALANCER_CLASS: &str = "sart.terassyi.net/bgp";

/// What a pool's addresses are for.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, JsonSchema, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum AddressType {
    /// LoadBalancer Service addresses.
    #[default]
    Service,
    /// Pod addresses, handed to nodes in blocks.
    Pod,
}

impl std::fmt::Display for AddressType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            AddressType::Service => "service",
            AddressType::Pod => "pod",
        })
    }
}

/// Every CRD, in a stable order (file names in `manifests/crd/` follow it).
pub fn all() -> Vec<CustomResourceDefinition> {
    vec![
        AddressPool::crd(),
        AddressBlock::crd(),
        BlockRequest::crd(),
        ClusterBGP::crd(),
        NodeBGP::crd(),
        BGPPeer::crd(),
        BGPPeerTemplate::crd(),
        BGPAdvertisement::crd(),
        AddressReservation::crd(),
    ]
}

/// Where the node's speaker listens for the `BgpApi`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SpeakerConfig {
    /// `host:port`, e.g. `127.0.0.1:5000`.
    pub path: String,
    /// Seconds per API call (default 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<u64>,
    /// ECMP over equal paths.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multipath: Option<bool>,
}
