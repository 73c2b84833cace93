//! BGPAdvertisement: one prefix (a Service address or a pod block) and, per peer, whether it is
//! advertised. The controller writes what should be; the agents make it so.

use std::collections::BTreeMap;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::AddressType;

pub const FINALIZER: &str = "bgpadvertisement.sart.terassyi.net/finalizer";
/// Label naming a Service advertisement's Service (as EndpointSlices name theirs).
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

#[derive(CustomResource, Clone, Debug, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
#[kube(
    group = "sart.terassyi.net",
    version = "v1alpha2",
    kind = "BGPAdvertisement",
    doc = "A prefix (Service address or pod block) and, per peer, whether it is advertised.",
    namespaced,
    status = "BGPAdvertisementStatus",
    printcolumn = r#"{"name":"CIDR","type":"string","description":"Advertised prefix","jsonPath":".spec.cidr"}"#,
    printcolumn = r#"{"name":"TYPE","type":"string","description":"service or pod","jsonPath":".spec.type"}"#,
    printcolumn = r#"{"name":"PROTOCOL","type":"string","description":"ipv4 or ipv6","jsonPath":".spec.protocol"}"#,
    printcolumn = r#"{"name":"AGE","type":"date","description":"Date from created","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct BGPAdvertisementSpec {
    pub cidr: String,
    #[serde(rename = "type")]
    pub ad_type: AddressType,
    pub protocol: Protocol,
    /// Reserved by sart, unused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attrs: Option<Vec<String>>,
}

#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    #[default]
    Ipv4,
    Ipv6,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BGPAdvertisementStatus {
    /// BGPPeer name → where the prefix stands with that peer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peers: Option<BTreeMap<String, AdvertiseStatus>>,
}

#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
pub enum AdvertiseStatus {
    /// Should be advertised, the agent has not yet.
    #[default]
    NotAdvertised,
    Advertised,
    /// Should be withdrawn; the agent removes the key once it is.
    Withdraw,
}

/// Where pod block advertisements live (sart's choice; the blocks themselves are cluster-wide).
pub const POD_ADVERTISEMENT_NAMESPACE: &str = "kube-system";
