//! The lab's scenario tests (`tests/scenarios.rs`): test infrastructure, not part of sart. The
//! lab itself is `e2e/lab/lab` (Python): real nodes (containerd and the kubelet in network and
//! mount namespaces of their own) running sart as users deploy it, from its image and manifests.
