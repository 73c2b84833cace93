//! BlockRequest: a node agent asking the controller for one more block of a pod pool.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub const FINALIZER: &str = "blockrequest.sart.terassyi.net/finalizer";

#[derive(CustomResource, Clone, Debug, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
#[kube(
    group = "sart.terassyi.net",
    version = "v1alpha2",
    kind = "BlockRequest",
    doc = "A node agent asking for one more block of a pod pool.",
    status = "BlockRequestStatus",
    printcolumn = r#"{"name":"POOL","type":"string","description":"Pool to cut a block from","jsonPath":".spec.pool"}"#,
    printcolumn = r#"{"name":"NODE","type":"string","description":"Node asking","jsonPath":".spec.node"}"#,
    printcolumn = r#"{"name":"AGE","type":"date","description":"Date from created","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct BlockRequestSpec {
    pub pool: String,
    pub node: String,
    /// Ours: one address (a host prefix, /32 or /128) a pod asks for. The node gets the block
    /// holding it when that block is free, else the address alone, lent by the node holding
    /// the block. Without it, the pool's lowest free block.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cidr: Option<String>,
}

/// Ours: why a request cannot be served (unknown pool, pool exhausted).
#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BlockRequestStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conditions: Option<Vec<Condition>>,
}
