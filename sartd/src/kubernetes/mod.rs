//! The Kubernetes layer: the API types and what the controller and the agent do with them.

pub mod agent;
pub mod cache;
pub mod controller;
pub mod crd;
pub mod crdgen;
pub mod finalizer;
pub mod lease;
pub mod metrics;
pub mod webhook;
