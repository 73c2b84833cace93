//! AddressBlock: a piece of a pool, given to a node (pod pools) or standing for a whole Service
//! pool. Created by the controller only.

use std::net::IpAddr;

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
/// Label naming the node that lends a host block's address (ours).
pub const LENDER_LABEL: &str = "addressblock.sart.terassyi.net/lender";
/// On an AddressBlock: the uid of the BlockRequest it was made for.
pub const REQUEST_ANNOTATION: &str = "sart.terassyi.net/block-request";

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
    printcolumn = r#"{"name":"LENTFROM","type":"string","description":"Block lending this host block's address","jsonPath":".spec.lentFrom","priority":1}"#,
    printcolumn = r#"{"name":"USED","type":"integer","description":"Addresses given to pods","jsonPath":".status.used","priority":1}"#,
    printcolumn = r#"{"name":"FREE","type":"integer","description":"Addresses left","jsonPath":".status.free","priority":1}"#,
    printcolumn = r#"{"name":"RESERVED","type":"integer","description":"Used addresses kept for sticky pods","jsonPath":".status.reserved","priority":1}"#,
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
    /// Ours: this is a host block (one address) lent by the node holding block `lentFrom`,
    /// which keeps the address from its own pods while the loan lasts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lent_from: Option<String>,
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
    /// Pod blocks: of the used addresses, those kept for sticky pods, whether a pod has them
    /// now or not (ours; written by the agent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reserved: Option<i64>,
    /// Host blocks: the lending node's answer, as the borrowing node read it (ours; written by
    /// the borrowing node's agent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loan: Option<Loan>,
    /// Pod blocks: this node's answer to each host block asking for one of the block's
    /// addresses (ours; written by this block's agent: each agent writes only its own blocks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loans: Option<Vec<LoanAnswer>>,
}

/// A lending node's answer to one host block.
#[derive(
    Clone, Debug, Default, Serialize, Deserialize, JsonSchema, PartialEq, Eq, PartialOrd, Ord,
)]
#[serde(rename_all = "camelCase")]
pub struct LoanAnswer {
    pub host_block: String,
    pub lent: bool,
    /// Refused: the pod (namespace/name) that holds the address on this node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holder: Option<String>,
}

/// Whether the node holding a block lends one of its addresses.
#[derive(
    Clone, Debug, Default, Serialize, Deserialize, JsonSchema, PartialEq, Eq, PartialOrd, Ord,
)]
#[serde(rename_all = "camelCase")]
pub struct Loan {
    /// True: the address is kept from the lender's pods until the host block goes.
    pub lent: bool,
    /// Refused: the pod (namespace/name) that holds the address on the lending node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holder: Option<String>,
}

/// The name of the host block of `ip`: one per address, so an address is lent at most once.
pub fn host_block_name(pool: &str, ip: IpAddr) -> String {
    // A name may not end with '-': IPv6 in full, never with "::".
    let addr = match ip {
        IpAddr::V4(v4) => v4.to_string().replace('.', "-"),
        IpAddr::V6(v6) => v6
            .segments()
            .iter()
            .map(|s| format!("{s:x}"))
            .collect::<Vec<_>>()
            .join("-"),
    };
    format!("{pool}-host-{addr}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_block_names_are_valid_object_names() {
        assert_eq!(
            host_block_name("p", "fd00:10::".parse().unwrap()),
            "p-host-fd00-10-0-0-0-0-0-0"
        );
        assert_eq!(
            host_block_name("p", "10.0.0.1".parse().unwrap()),
            "p-host-10-0-0-1"
        );
    }
}
