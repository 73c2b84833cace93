//! NodeBGP: one node's speaker settings, made by the controller from ClusterBGPs.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::SpeakerConfig;
use super::bgp_peer::BGPPeerSlim;

/// The agent removes the node's peers before the NodeBGP goes.
pub const FINALIZER: &str = "nodebgp.sart.terassyi.net/finalizer";

#[derive(CustomResource, Clone, Debug, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
#[kube(
    group = "sart.terassyi.net",
    version = "v1alpha2",
    kind = "NodeBGP",
    doc = "One node's BGP speaker settings, made by the controller from ClusterBGPs.",
    status = "NodeBGPStatus",
    printcolumn = r#"{"name":"ASN","type":"integer","description":"AS number of the local speaker","jsonPath":".spec.asn"}"#,
    printcolumn = r#"{"name":"ROUTERID","type":"string","description":"Router id of the local speaker","jsonPath":".spec.routerId"}"#,
    printcolumn = r#"{"name":"BACKOFF","type":"integer","description":"Failed attempts to configure the speaker","jsonPath":".status.backoff"}"#,
    printcolumn = r#"{"name":"STATUS","type":"string","description":"Status of the local speaker","jsonPath":".status.conditions[-1:].status"}"#,
    printcolumn = r#"{"name":"AGE","type":"date","description":"Date from created","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct NodeBGPSpec {
    pub asn: u32,
    pub router_id: String,
    pub speaker: SpeakerConfig,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peers: Option<Vec<BGPPeerSlim>>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct NodeBGPStatus {
    #[serde(default)]
    pub backoff: u32,
    /// ClusterBGPs that select this node (sart's spelling).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_bgp_refs: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conditions: Option<Vec<NodeBGPCondition>>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
pub struct NodeBGPCondition {
    pub status: NodeBGPConditionStatus,
    pub reason: NodeBGPConditionReason,
}

#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
pub enum NodeBGPConditionStatus {
    Available,
    #[default]
    Unavailable,
}

#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
pub enum NodeBGPConditionReason {
    #[default]
    NotConfigured,
    Configured,
    InvalidConfiguration,
}
