//! AddressReservation (ours): the addresses a sticky pod had, kept for the next pod of the same
//! namespace and name wherever it runs. Made by the agent that gave the pod its first addresses;
//! owned by the pod's owner (a StatefulSet), so deleting the owner deletes it.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Pod or namespace annotation: `"true"` keeps a pod's first addresses for its name.
pub const STICKY_ANNOTATION: &str = "sart.terassyi.net/sticky";
/// On a reservation whose pod has no owner and is gone: since when (RFC 3339), for the grace
/// period after which the controller deletes it.
pub const POD_GONE_ANNOTATION: &str = "sart.terassyi.net/pod-gone-since";

#[derive(CustomResource, Clone, Debug, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
#[kube(
    group = "sart.terassyi.net",
    version = "v1alpha2",
    kind = "AddressReservation",
    namespaced,
    doc = "The addresses kept for the pod of this namespace and name (a sticky pod), wherever it runs next.",
    printcolumn = r#"{"name":"ADDRESSES","type":"string","description":"Addresses kept","jsonPath":".spec.addresses"}"#,
    printcolumn = r#"{"name":"AGE","type":"date","description":"Date from created","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct AddressReservationSpec {
    /// At most one per family, each in a pod AddressPool.
    pub addresses: Vec<String>,
}
