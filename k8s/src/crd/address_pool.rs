//! AddressPool: a CIDR users hand to sart, for Service addresses or pod blocks (cluster-scoped).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::AddressType;

/// Deletion waits on it while blocks of the pool exist.
pub const FINALIZER: &str = "addresspool.sart.terassyi.net/finalizer";

#[derive(CustomResource, Clone, Debug, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
#[kube(
    group = "sart.terassyi.net",
    version = "v1alpha2",
    kind = "AddressPool",
    doc = "A CIDR sart hands out: Service addresses or pod address blocks.",
    status = "AddressPoolStatus",
    printcolumn = r#"{"name":"CIDR","type":"string","description":"CIDR of the pool","jsonPath":".spec.cidr"}"#,
    printcolumn = r#"{"name":"TYPE","type":"string","description":"What the addresses are for","jsonPath":".spec.type"}"#,
    printcolumn = r#"{"name":"BLOCKSIZE","type":"integer","description":"Prefix length of the blocks","jsonPath":".spec.blockSize"}"#,
    printcolumn = r#"{"name":"AUTO","type":"boolean","description":"Used when nothing names a pool","jsonPath":".spec.autoAssign"}"#,
    printcolumn = r#"{"name":"ALLOCATED","type":"integer","description":"Addresses handed out","jsonPath":".status.allocated","priority":1}"#,
    printcolumn = r#"{"name":"FREE","type":"integer","description":"Addresses left","jsonPath":".status.free","priority":1}"#,
    printcolumn = r#"{"name":"USED","type":"integer","description":"Pod pools: addresses pods hold","jsonPath":".status.used","priority":1}"#,
    printcolumn = r#"{"name":"AGE","type":"date","description":"Date from created","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct AddressPoolSpec {
    /// The pool's prefix, e.g. `10.0.1.0/24` or `fd00:1::/64`.
    pub cidr: String,
    /// `service` or `pod`.
    #[serde(rename = "type")]
    pub pool_type: AddressType,
    /// How addresses are tracked; only `bit` exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alloc_type: Option<AllocType>,
    /// Prefix length of the blocks the pool is cut into (default: the pool's own length).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block_size: Option<u32>,
    /// Used for Services/pods that name no pool. At most one per type and address family.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_assign: Option<bool>,
    /// Pod pools: masquerade the pods' traffic to anywhere outside every pod pool to the node's
    /// address, for networks that do not route pod addresses. Ignored for Service pools.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nat_outgoing: Option<bool>,
    /// The namespaces whose Services (service pools) or pods (pod pools) may use the pool, by
    /// their labels (`kubernetes.io/metadata.name` names one). Absent: every namespace. It
    /// fences auto-assignment, pool annotations, requested and static addresses alike.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<LabelSelector>,
}

#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum AllocType {
    #[default]
    Bit,
}

/// sart's status is empty; every field here is ours and optional.
#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AddressPoolStatus {
    /// Addresses handed out (to Services, or inside the pool's blocks), capped at 2^63-1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allocated: Option<i64>,
    /// Addresses not handed out, capped at 2^63-1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub free: Option<i64>,
    /// AddressBlocks cut from the pool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blocks: Option<i64>,
    /// Pod pools: addresses pods hold, summed from the blocks' status (a few seconds behind).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub used: Option<i64>,
    /// `Ready` (valid and usable) and `Exhausted`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conditions: Option<Vec<Condition>>,
}

impl AddressPoolSpec {
    pub fn auto_assign(&self) -> bool {
        self.auto_assign.unwrap_or(false)
    }
}
