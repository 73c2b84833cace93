//! ClusterBGP: which nodes run BGP, with which AS, router id and peers.

use std::collections::BTreeMap;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::SpeakerConfig;
use super::bgp_peer::PeerConfig;

pub const FINALIZER: &str = "clusterbgp.sart.terassyi.net/finalizer";
/// Node label read when `asnSelector.from` is `label`.
pub const ASN_LABEL: &str = "sart.terassyi.net/asn";
/// Node label read when `routerIdSelector.from` is `label`.
pub const ROUTER_ID_LABEL: &str = "sart.terassyi.net/router-id";

#[derive(CustomResource, Clone, Debug, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
#[kube(
    group = "sart.terassyi.net",
    version = "v1alpha2",
    kind = "ClusterBGP",
    doc = "Which nodes run BGP, with which AS number, router id and peers.",
    status = "ClusterBGPStatus",
    printcolumn = r#"{"name":"AGE","type":"date","description":"Date from created","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct ClusterBGPSpec {
    /// Nodes whose labels include all of these; absent = every node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_selector: Option<BTreeMap<String, String>>,
    pub asn_selector: AsnSelector,
    pub router_id_selector: RouterIdSelector,
    pub speaker: SpeakerConfig,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peers: Option<Vec<PeerConfig>>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ClusterBGPStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desired_nodes: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nodes: Option<Vec<String>>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct AsnSelector {
    pub from: AsnSelectionType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asn: Option<u32>,
}

#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum AsnSelectionType {
    /// `asnSelector.asn`.
    #[default]
    Asn,
    /// The node's `sart.terassyi.net/asn` label.
    Label,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RouterIdSelector {
    pub from: RouterIdSelectionType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub router_id: Option<String>,
}

#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum RouterIdSelectionType {
    /// The node's first `InternalIP` (IPv4).
    #[default]
    InternalAddress,
    /// The node's `sart.terassyi.net/router-id` label.
    Label,
    /// `routerIdSelector.routerId`.
    RouterId,
}
