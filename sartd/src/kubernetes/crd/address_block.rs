//! AddressBlock: a piece of a pool, given to a node (pod pools) or standing for a whole Service
//! pool. Created by the controller only.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::AddressType;

/// The controller releases the block's index in its pool before the block goes.
pub const CONTROLLER_FINALIZER: &str = "controller.addressblock.sart.terassyi.net/finalizer";
/// The agent withdraws the block and frees its addresses before it goes (pod blocks).
pub const AGENT_FINALIZER: &str = "agent.addressblock.sart.terassyi.net/finalizer";
/// Label naming the node of a pod block (set by the mutating webhook).
pub const NODE_LABEL: &str = "addressblock.sart.terassyi.net/node";

#[derive(CustomResource, Clone, Debug, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
#[kube(
    group = "sart.terassyi.net",
    version = "v1alpha2",
    kind = "AddressBlock",
    doc = "A block of an AddressPool: a node's pod addresses, or a whole Service pool. Made by the controller.",
    status = "AddressBlockStatus",
    printcolumn = r#"{"name":"CIDR","type":"string","description":"CIDR of the block","jsonPath":".spec.cidr"}"#,
    printcolumn = r#"{"name":"TYPE","type":"string","description":"What the addresses are for","jsonPath":".spec.type"}"#,
    printcolumn = r#"{"name":"POOLREF","type":"string","description":"Pool the block is cut from","jsonPath":".spec.poolRef"}"#,
    printcolumn = r#"{"name":"NODEREF","type":"string","description":"Node the block belongs to","jsonPath":".spec.nodeRef"}"#,
    printcolumn = r#"{"name":"USED","type":"integer","description":"Addresses given to pods","jsonPath":".status.used","priority":1}"#,
    printcolumn = r#"{"name":"FREE","type":"integer","description":"Addresses left","jsonPath":".status.free","priority":1}"#,
    printcolumn = r#"{"name":"AGE","type":"date","description":"Date from created","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct AddressBlockSpec {
    pub cidr: String,
    #[serde(rename = "type")]
    pub block_type: AddressType,
    pub pool_ref: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_ref: Option<String>,
    pub auto_assign: bool,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AddressBlockStatus {
    /// The block's position in its pool (block `index` starts at pool + index × block size).
    /// sart's field is 32-bit; an IPv6 /64 cut into /120s needs 56 bits.
    pub index: u64,
    /// Pod blocks: addresses its node's agent has given to pods (ours; written by the agent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub used: Option<i64>,
    /// Pod blocks: addresses left in the block (ours; written by the agent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub free: Option<i64>,
}
