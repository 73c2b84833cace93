//! The objects a kubelet writes, as plain functions: the Node (labels, InternalIP, Ready, room
//! for pods) and a Pod's status once its sandbox is up.

use k8s_openapi::api::core::v1::Pod;
use serde_json::{Value, json};

/// The Node as this stand-in registers it.
pub fn node(name: &str, labels: &[(String, String)]) -> Value {
    let mut l: serde_json::Map<String, Value> = labels
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    l.insert("kubernetes.io/hostname".into(), json!(name));
    l.insert("kubernetes.io/os".into(), json!("linux"));
    json!({"metadata": {"name": name, "labels": l}})
}

/// The Node's status: its addresses (one per family on a dual-stack node, the primary first),
/// room for 110 pods, Ready.
pub fn node_status(ips: &[String], now: &str) -> Value {
    let room = json!({"cpu": "8", "memory": "16Gi", "pods": "110"});
    let mut addresses: Vec<Value> = ips
        .iter()
        .map(|ip| json!({"type": "InternalIP", "address": ip}))
        .collect();
    if let Some(first) = ips.first() {
        addresses.push(json!({"type": "Hostname", "address": first}));
    }
    json!({"status": {
        "addresses": addresses,
        "capacity": room, "allocatable": room,
        "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
            "message": "sart lab node", "lastHeartbeatTime": now, "lastTransitionTime": now}],
        "nodeInfo": {"kubeletVersion": "v0.0.0-sart-lab", "containerRuntimeVersion": "sart-lab://0",
            "operatingSystem": "linux", "architecture": "amd64", "kernelVersion": "", "osImage": "",
            "kubeProxyVersion": "", "machineID": "", "systemUUID": "", "bootID": ""}
    }})
}

/// The TCP ports the pod's containers declare (80 when none does).
pub fn ports(pod: &Pod) -> Vec<u16> {
    let mut p: Vec<u16> = pod
        .spec
        .iter()
        .flat_map(|s| s.containers.iter())
        .flat_map(|c| c.ports.iter().flatten())
        .filter(|p| p.protocol.as_deref().unwrap_or("TCP") == "TCP")
        .filter_map(|p| u16::try_from(p.container_port).ok())
        .collect();
    p.sort_unstable();
    p.dedup();
    if p.is_empty() {
        p.push(80);
    }
    p
}

/// A running, ready pod with these addresses, on a node with `host_ips`.
pub fn pod_running(pod: &Pod, host_ips: &[String], ips: &[String], now: &str) -> Value {
    let containers: Vec<Value> = pod
        .spec
        .iter()
        .flat_map(|s| s.containers.iter())
        .map(|c| {
            json!({"name": c.name, "ready": true, "started": true, "restartCount": 0,
                "image": c.image.clone().unwrap_or_default(), "imageID": "",
                "state": {"running": {"startedAt": now}}})
        })
        .collect();
    let cond = |t: &str| json!({"type": t, "status": "True", "lastTransitionTime": now});
    json!({"status": {
        "phase": "Running",
        "hostIP": host_ips.first(),
        "hostIPs": host_ips.iter().map(|ip| json!({"ip": ip})).collect::<Vec<_>>(),
        "podIP": ips.first(),
        "podIPs": ips.iter().map(|ip| json!({"ip": ip})).collect::<Vec<_>>(),
        "startTime": now,
        "conditions": [cond("PodScheduled"), cond("Initialized"), cond("ContainersReady"), cond("Ready")],
        "containerStatuses": containers,
    }})
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn ports_and_status() {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "p"},
            "spec": {"containers": [
                {"name": "a", "ports": [{"containerPort": 8080}, {"containerPort": 53, "protocol": "UDP"}]},
                {"name": "b", "ports": [{"containerPort": 8080}]}]}
        }))
        .unwrap();
        assert_eq!(ports(&pod), [8080]);
        let bare: Pod =
            serde_json::from_value(json!({"spec": {"containers": [{"name": "a"}]}})).unwrap();
        assert_eq!(ports(&bare), [80]);
        let s = pod_running(
            &pod,
            &["198.18.0.1".into(), "fd00:198:18::1".into()],
            &["198.18.64.1".into(), "fd00:64::1".into()],
            "2026-01-01T00:00:00Z",
        );
        assert_eq!(s["status"]["podIP"], "198.18.64.1");
        assert_eq!(s["status"]["podIPs"][1]["ip"], "fd00:64::1");
        assert_eq!(s["status"]["hostIP"], "198.18.0.1");
        assert_eq!(s["status"]["hostIPs"][1]["ip"], "fd00:198:18::1");
        let ns = node_status(
            &["198.18.0.1".into(), "fd00:198:18::1".into()],
            "2026-01-01T00:00:00Z",
        );
        let addrs = ns["status"]["addresses"].as_array().unwrap();
        assert_eq!(addrs.len(), 3);
        assert_eq!(addrs[1]["type"], "InternalIP");
        assert_eq!(addrs[1]["address"], "fd00:198:18::1");
        assert_eq!(addrs[2]["type"], "Hostname");
        assert_eq!(
            s["status"]["containerStatuses"].as_array().unwrap().len(),
            2
        );
        assert_eq!(s["status"]["conditions"][3]["type"], "Ready");
        let n = node("n1", &[("bgp".into(), "a".into())]);
        assert_eq!(n["metadata"]["labels"]["bgp"], "a");
    }
}
