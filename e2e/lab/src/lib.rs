//! The lab's stand-in for the kubelet (`sart-lab-kubelet`): test infrastructure, not part of
//! sart. Run inside a node's network namespace, it registers the Node, and for each Pod the
//! scheduler binds to it does what a kubelet and a container runtime do for networking: a
//! network namespace, the CNI conflist run exactly as a runtime runs it (ADD in order with
//! `prevResult`, DEL in reverse), a tiny HTTP responder on every TCP containerPort (80 when there
//! is none) answering with the pod's name, and the pod's IPs and readiness in its status, so the
//! real EndpointSlice controller keeps Services current. Deleting a pod undoes it all.
//!
//! - [`cni`]: running a conflist's plugins.
//! - [`responder`]: the HTTP responders, each on a thread inside its pod's namespace.
//! - [`status`]: the Node and Pod objects as a kubelet writes them (pure).

pub mod cni;
pub mod responder;
pub mod status;
