//! BGPPeerTemplate: peer settings shared by many nodes' BGPPeers.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(CustomResource, Clone, Debug, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
#[kube(
    group = "sart.terassyi.net",
    version = "v1alpha2",
    kind = "BGPPeerTemplate",
    doc = "Peer settings shared by the BGPPeers of many nodes.",
    printcolumn = r#"{"name":"AGE","type":"date","description":"Date from created","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct BGPPeerTemplateSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asn: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub addr: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold_time: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keepalive_time: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups: Option<Vec<String>>,
    /// TCP MD5 password (RFC 2385), read by the node's agent from this Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_secret_ref: Option<PasswordSecretRef>,
    /// Graceful restart (RFC 4724) with the peer; present = enabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub graceful_restart: Option<GracefulRestartSpec>,
    /// A BFD session (RFC 5880/5881) tied to the BGP session; present = enabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bfd: Option<BfdSpec>,
}

/// Where a peer's TCP MD5 password is: a key of a Secret.
#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PasswordSecretRef {
    pub name: String,
    /// Default: kube-system, where sart runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Default: `password`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

impl PasswordSecretRef {
    pub fn namespace(&self) -> &str {
        self.namespace.as_deref().unwrap_or("kube-system")
    }

    pub fn key(&self) -> &str {
        self.key.as_deref().unwrap_or("password")
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct GracefulRestartSpec {
    /// Seconds (1-4095) the peer keeps our routes while we restart; default 120.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart_time: Option<u32>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct BfdSpec {
    /// Transmit and receive interval in milliseconds (10-60000); default 300.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval_ms: Option<u32>,
    /// Detect multiplier (1-255); default 3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multiplier: Option<u32>,
    /// Multihop BFD (RFC 5883, UDP 4784) for a peer that is not directly connected, such as a
    /// router's loopback; FRR uses it for iBGP peers over loopbacks. Default false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multihop: Option<bool>,
}
