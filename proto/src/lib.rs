//! Generated gRPC types and services of sart's API (`sart.v1`).

#![allow(clippy::all, clippy::pedantic)]

pub mod sart {
    pub mod v1 {
        tonic::include_proto!("sart.v1");
    }
}

pub use sart::v1;

/// The URL for a `BgpApi` endpoint given as `host:port` (as sart's flags and CRDs write it) or
/// as a URL already.
pub fn endpoint_url(endpoint: &str) -> String {
    if endpoint.contains("://") {
        endpoint.to_owned()
    } else {
        format!("http://{endpoint}")
    }
}
