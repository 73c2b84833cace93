//! Our status conditions (AddressPool `Ready`, BlockRequest `Ready`, the Service condition):
//! compared by what they say, so an unchanged verdict is never rewritten, and stamped in whole
//! seconds, as the API server stores them.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

/// Whether `c` already says this.
pub(crate) fn says(c: &Condition, status: &str, reason: &str, message: &str) -> bool {
    c.status == status && c.reason == reason && c.message == message
}

/// A condition that changes now.
pub(crate) fn new(
    type_: &str,
    status: &str,
    reason: &str,
    message: String,
    observed_generation: Option<i64>,
) -> Condition {
    let now = Timestamp::now();
    Condition {
        type_: type_.into(),
        status: status.into(),
        reason: reason.into(),
        message,
        last_transition_time: Time(Timestamp::from_second(now.as_second()).unwrap_or(now)),
        observed_generation,
    }
}
