//! BGPPeer: one BGP session of one node's speaker.

use std::collections::BTreeMap;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::SpeakerConfig;
use super::bgp_peer_template::{BGPPeerTemplateSpec, PeerSettings};

pub const FINALIZER: &str = "bgppeer.sart.terassyi.net/finalizer";
/// Label naming the peer's NodeBGP (set by the mutating webhook).
pub const NODE_LABEL: &str = "bgppeer.sart.terassyi.net/node";
/// Service annotation: comma-separated peer groups to advertise to.
pub const GROUP_ANNOTATION: &str = "bgppeer.sart.terassyi.net/group";

#[derive(CustomResource, Clone, Debug, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
#[kube(
    group = "sart.terassyi.net",
    version = "v1alpha2",
    kind = "BGPPeer",
    doc = "One BGP session of one node's speaker.",
    status = "BGPPeerStatus",
    printcolumn = r#"{"name":"ASN","type":"integer","description":"AS number of the peer","jsonPath":".spec.asn"}"#,
    printcolumn = r#"{"name":"ADDRESS","type":"string","description":"Address of the peer","jsonPath":".spec.addr"}"#,
    printcolumn = r#"{"name":"NODEBGP","type":"string","description":"NodeBGP of the local speaker","jsonPath":".spec.nodeBGPRef"}"#,
    printcolumn = r#"{"name":"CLUSTERBGP","type":"string","description":"ClusterBGP the peer comes from","jsonPath":".spec.clusterBGPRef"}"#,
    printcolumn = r#"{"name":"BACKOFF","type":"integer","description":"Failed attempts to configure the peer","jsonPath":".status.backoff"}"#,
    printcolumn = r#"{"name":"STATUS","type":"string","description":"Session state","jsonPath":".status.conditions[-1:].status"}"#,
    printcolumn = r#"{"name":"AGE","type":"date","description":"Date from created","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct BGPPeerSpec {
    pub asn: u32,
    pub addr: String,
    #[serde(rename = "nodeBGPRef")]
    pub node_bgp_ref: String,
    #[serde(
        rename = "clusterBGPRef",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub cluster_bgp_ref: Option<String>,
    pub speaker: SpeakerConfig,
    #[serde(flatten)]
    pub settings: PeerSettings,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BGPPeerStatus {
    #[serde(default)]
    pub backoff: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conditions: Option<Vec<BGPPeerCondition>>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
pub struct BGPPeerCondition {
    pub status: PeerState,
    pub reason: String,
}

/// RFC 4271 §8.2.2 session states, named as RFC 4271 names them (sart swapped Active and
/// Connect when it read them from the speaker; we do not).
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
pub enum PeerState {
    Unknown,
    #[default]
    Idle,
    Connect,
    Active,
    OpenSent,
    OpenConfirm,
    Established,
}

/// A peer as listed in `NodeBGP.spec.peers`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BGPPeerSlim {
    pub name: String,
    pub spec: BGPPeerSpec,
}

/// One entry of `ClusterBGP.spec.peers`: a template, overrides, and which NodeBGPs get it.
#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PeerConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_template_ref: Option<String>,
    /// Overrides the template's `asn` and `addr`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_config: Option<BGPPeerTemplateSpec>,
    #[serde(
        rename = "nodeBGPSelector",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub node_bgp_selector: Option<BTreeMap<String, String>>,
}
