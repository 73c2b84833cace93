//! The Kubernetes layer: the API types and what the controller and the agent do with them.

pub mod crd;
pub mod crdgen;
