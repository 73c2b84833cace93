//! The kubelet stand-in against the real control plane and the real sart: one node (speaker and
//! agent in CNI mode, FRR as its router), `sartd controller`, and `sart-lab-kubelet` in the
//! node's namespace. A Deployment's pods are scheduled to the node, get addresses from the pod
//! pool, answer HTTP with their names, turn Ready and fill their Service's EndpointSlice; the
//! router reaches them through the block it learned over BGP; scaled to zero, every sandbox goes.
//! Needs root and the built binaries.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use interop::sartd::sartd_binary;
use interop::wait_route;
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, ListParams};
use serde_json::json;
use testkube::node::{NodeLab, netns_api};

const WAIT: Duration = Duration::from_secs(60);

async fn eventually<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + WAIT;
    loop {
        match f().await {
            Ok(v) => return v,
            Err(e) if Instant::now() > deadline => panic!("{what}: not after {WAIT:?}; last: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_run_get_endpoints_and_are_reachable_from_the_router() {
    assert!(interop::is_root(), "needs root for network namespaces");
    let cluster = testkube::Cluster::shared().unwrap();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    cluster.install_crds(&repo.join("manifests/crd")).unwrap();
    let client = cluster.client().await.unwrap();
    let lab = NodeLab::start(cluster, "lab1", 96, 65000, 65050, &["--mode=cni"]).unwrap();
    let _controller = cluster
        .sartd_controller(&sartd_binary(), "cni", "info")
        .unwrap();
    let conflist = lab.node_ns.dir().join("10-sart.conflist");
    std::fs::write(
        &conflist,
        json!({"cniVersion": "1.0.0", "name": "sart-network", "plugins": [
            {"type": "sart-cni", "endpoint": lab.cni_endpoint(), "timeout": 30}]})
        .to_string(),
    )
    .unwrap();
    let bin_dir = sartd_binary().parent().unwrap().to_path_buf();
    let kubelet_log = lab.node_ns.dir().join("kubelet.log");
    // Entered with nsenter, not `ip netns exec`: that gives a mount namespace of its own, and the
    // pods' namespaces the kubelet mounts under /run/netns would not be seen by the agent.
    let _kubelet = interop::process::Proc::spawn(
        "sart-lab-kubelet",
        &[
            "nsenter".to_string(),
            format!("--net=/run/netns/{}", lab.node_ns.name()),
            "env".to_string(),
            format!("KUBECONFIG={}", netns_api(cluster, &lab.node_ns).unwrap()),
            bin_dir
                .join("sart-lab-kubelet")
                .to_string_lossy()
                .into_owned(),
            "--node=lab1".into(),
            format!("--node-ip={}", lab.node_ip()),
            "--labels=bgp=lab1".into(),
            format!("--conflist={}", conflist.display()),
            format!("--cni-bin-dir={}", bin_dir.display()),
            "--cni-bin-dir=/usr/lib/cni".into(),
        ],
        &kubelet_log,
    )
    .unwrap();
    let nodes: Api<Node> = Api::all(client.clone());
    eventually("the kubelet registers its Node", || async {
        nodes
            .get("lab1")
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    })
    .await;
    let manifests = lab.node_ns.dir().join("lab.yaml");
    std::fs::write(
        &manifests,
        format!(
            "{}---\napiVersion: sart.terassyi.net/v1alpha2\nkind: AddressPool\nmetadata: {{name: lab-pods}}\nspec: {{cidr: 198.18.240.0/24, type: pod, blockSize: 28, autoAssign: true}}\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: web}}\nspec:\n  replicas: 2\n  selector: {{matchLabels: {{app: web}}}}\n  template:\n    metadata: {{labels: {{app: web}}}}\n    spec:\n      containers: [{{name: web, image: none, ports: [{{containerPort: 8080}}]}}]\n---\napiVersion: v1\nkind: Service\nmetadata: {{name: web}}\nspec:\n  selector: {{app: web}}\n  ports: [{{port: 80, targetPort: 8080}}]\n",
            lab.cluster_bgp()
        ),
    )
    .unwrap();
    cluster
        .kubectl_ok(&["apply", "-f", &manifests.to_string_lossy()])
        .unwrap();

    // Both pods run with addresses of the pool.
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let running: Vec<(String, String)> = eventually("2 pods Running", || async {
        let list = pods
            .list(&ListParams::default().labels("app=web"))
            .await
            .map_err(|e| e.to_string())?;
        let up: Vec<(String, String)> = list
            .items
            .iter()
            .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
            .filter_map(|p| Some((p.metadata.name.clone()?, p.status.as_ref()?.pod_ip.clone()?)))
            .collect();
        if up.len() == 2 {
            Ok(up)
        } else {
            Err(format!("{up:?}"))
        }
    })
    .await;
    for (_, ip) in &running {
        assert!(ip.starts_with("198.18.240."), "{ip}");
    }
    // Their sandboxes' namespaces, named by the kubelet after the pods' uids.
    let uids: Vec<String> = pods
        .list(&ListParams::default().labels("app=web"))
        .await
        .unwrap()
        .items
        .iter()
        .filter_map(|p| p.metadata.uid.as_ref().map(|u| u.chars().take(8).collect()))
        .collect();
    let listed = String::from_utf8_lossy(
        &Command::new("ip")
            .args(["netns", "list"])
            .output()
            .unwrap()
            .stdout,
    )
    .into_owned();
    assert!(
        uids.iter()
            .all(|u| listed.contains(&format!("lab-lab1-{u}"))),
        "{listed}"
    );
    // The EndpointSlice controller lists both as ready.
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), "default");
    eventually("2 ready endpoints", || async {
        let list = slices
            .list(&ListParams::default().labels("kubernetes.io/service-name=web"))
            .await
            .map_err(|e| e.to_string())?;
        let ready = list
            .items
            .iter()
            .flat_map(|s| s.endpoints.iter().flatten())
            .filter(|e| e.conditions.as_ref().and_then(|c| c.ready) == Some(true))
            .count();
        if ready == 2 {
            Ok(())
        } else {
            Err(format!("{ready} ready"))
        }
    })
    .await;
    // The router learned the block over BGP and reaches each pod, which answers with its name.
    wait_route(&lab.frr, "198.18.240.0/28".parse().unwrap(), WAIT, |_| true).unwrap();
    for (name, ip) in &running {
        let got = lab
            .router_ns
            .exec(&[
                "curl",
                "-s",
                "--max-time",
                "3",
                &format!("http://{ip}:8080/"),
            ])
            .unwrap();
        assert_eq!(got.trim(), name);
    }

    // Scaled to zero: the pods go, and so does everything of theirs on the node.
    cluster
        .kubectl_ok(&["scale", "deployment/web", "--replicas=0"])
        .unwrap();
    eventually("sandboxes gone", || async {
        let left = pods
            .list(&ListParams::default().labels("app=web"))
            .await
            .map_err(|e| e.to_string())?
            .items
            .len();
        let netns = Command::new("ip")
            .args(["netns", "list"])
            .output()
            .map_err(|e| e.to_string())?;
        let listed = String::from_utf8_lossy(&netns.stdout).into_owned();
        let sandboxes = uids
            .iter()
            .filter(|u| listed.contains(&format!("lab-lab1-{u}")))
            .count();
        let (records, veths) = (lab.records(), lab.pod_veths().map_err(|e| e.to_string())?);
        if (left, sandboxes, records, veths) == (0, 0, 0, 0) {
            Ok(())
        } else {
            Err(format!(
                "{left} pods, {sandboxes} namespaces, {records} records, {veths} veths"
            ))
        }
    })
    .await;
    eprintln!(
        "kubelet log:\n{}",
        std::fs::read_to_string(&kubelet_log).unwrap_or_default()
    );
}
