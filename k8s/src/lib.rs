//! sart's Kubernetes API, shared by the controller, the agent and the webhooks: the CRD types
//! with their names, labels and finalizers, the rules that make a pool usable, the trimmed
//! caches the daemons watch through, and the CRD manifests generated from the types.

#![warn(unreachable_pub)]

pub mod cache;
pub mod crd;
pub mod crdgen;
pub mod finalizer;
pub mod pools;
