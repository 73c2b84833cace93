//! The pod side of the tests that run `sart-cni` against an agent on a [`NodeLab`]: pods as
//! network namespaces with Pod objects behind them, and the plugin run as a runtime runs it.

#![allow(dead_code, clippy::unwrap_used)] // test code

use std::path::{Path, PathBuf};
use std::time::Duration;

use interop::Netns;
use interop::sartd::sartd_binary;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, PostParams};
use serde_json::{Value, json};
use testkube::node::NodeLab;

use super::{install_crds, logs, run_plugin};

/// The shared cluster with sart's CRDs, a client, and a node (`name`, link `n`, AS `node_as`,
/// FRR at AS 65000) whose agent runs with `agent_args`.
pub async fn node_lab(
    name: &str,
    n: u8,
    node_as: u32,
    agent_args: &[&str],
) -> (&'static testkube::Cluster, kube::Client, NodeLab) {
    logs();
    assert!(interop::is_root(), "needs root for network namespaces");
    let cluster = testkube::Cluster::shared().unwrap();
    install_crds(cluster);
    let client = cluster.client().await.unwrap();
    let lab = NodeLab::start(cluster, name, n, 65000, node_as, agent_args).unwrap();
    (cluster, client, lab)
}

pub fn sart_cni() -> PathBuf {
    sartd_binary().with_file_name("sart-cni")
}

/// One plugin run as a runtime runs it, from inside the node's namespace.
pub fn plugin(node: &Netns, bin: &Path, env: &[(&str, &str)], conf: &Value) -> (bool, Value) {
    let (ok, v) = run_plugin(node, bin, env, conf);
    if !ok {
        eprintln!("{} failed: {v}", bin.display());
    }
    (ok, v)
}

/// A pod: its network namespace and its Pod object.
pub struct PodNs {
    pub name: String,
    pub namespace: String,
    pub netns: Netns,
    pub id: String,
}

impl PodNs {
    pub fn path(&self) -> String {
        format!("/run/netns/{}", self.netns.name())
    }

    pub fn args(&self) -> String {
        format!(
            "IgnoreUnknown=1;K8S_POD_NAMESPACE={};K8S_POD_NAME={};K8S_POD_INFRA_CONTAINER_ID={}",
            self.namespace, self.name, self.id
        )
    }
}

pub struct Harness<'a> {
    pub lab: &'a NodeLab,
    pub client: kube::Client,
    pub endpoint: String,
    /// The node the pods are on.
    pub node: &'a str,
}

impl Harness<'_> {
    pub fn conf(&self, version: &str) -> Value {
        json!({"cniVersion": version, "name": "sart-network", "type": "sart-cni",
            "endpoint": self.endpoint, "timeout": 30})
    }

    pub async fn pod(&self, namespace: &str, name: &str, annotations: Value) -> PodNs {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        let p: Pod = serde_json::from_value(json!({
            "metadata": {"name": name, "annotations": annotations},
            "spec": {"nodeName": self.node, "containers": [{"name": "c", "image": "none"}]}
        }))
        .unwrap();
        api.create(&PostParams::default(), &p).await.unwrap();
        PodNs {
            name: name.into(),
            namespace: namespace.into(),
            netns: Netns::new(name).unwrap(),
            id: format!("{namespace}-{name}-0123456789abcdef"),
        }
    }

    pub fn call(&self, cmd: &str, pod: &PodNs, conf: &Value) -> (bool, Value) {
        let (path, args) = (pod.path(), pod.args());
        plugin(
            &self.lab.node_ns,
            &sart_cni(),
            &[
                ("CNI_COMMAND", cmd),
                ("CNI_CONTAINERID", &pod.id),
                ("CNI_NETNS", &path),
                ("CNI_IFNAME", "eth0"),
                ("CNI_ARGS", &args),
                ("CNI_PATH", "/usr/lib/cni"),
            ],
            conf,
        )
    }

    /// ADD in `version`; the pod's addresses as the result gives them.
    pub fn add(&self, pod: &PodNs, version: &str) -> Vec<String> {
        let (ok, r) = self.call("ADD", pod, &self.conf(version));
        assert!(ok, "ADD {}: {r}", pod.name);
        assert_eq!(r["cniVersion"], version);
        addresses(&r)
    }

    pub fn records(&self) -> usize {
        self.lab.records()
    }

    /// Pod veths on the node, once the deletions DEL started are done (the kernel takes tens of
    /// milliseconds to unregister one, after DEL returned).
    pub fn veths(&self) -> usize {
        let mut last = self.lab.pod_veths().unwrap();
        for _ in 0..40 {
            std::thread::sleep(Duration::from_millis(50));
            let now = self.lab.pod_veths().unwrap();
            if now == last {
                return now;
            }
            last = now;
        }
        last
    }
}

pub fn addresses(r: &Value) -> Vec<String> {
    r["ips"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|i| i["address"].as_str().unwrap().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

pub fn host(cidr: &str) -> &str {
    cidr.split('/').next().unwrap()
}

pub fn ping(from: &Netns, to: &str) -> bool {
    from.exec(&["ping", "-c1", "-W2", to]).is_ok()
}

pub fn code(v: &Value) -> Option<u64> {
    v["code"].as_u64()
}
