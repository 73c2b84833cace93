//! Generated gRPC types and services of sart's API (`sart.v1`).

#![allow(clippy::all, clippy::pedantic)]

pub mod sart {
    pub mod v1 {
        tonic::include_proto!("sart.v1");
    }
}

pub use sart::v1;
