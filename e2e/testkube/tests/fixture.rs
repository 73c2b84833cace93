//! The fixture against the real control plane: a kube::Client and kubectl see the same objects.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, PostParams};

#[tokio::test]
async fn client_and_kubectl_share_one_real_api_server() {
    let cluster = testkube::Cluster::shared().unwrap();
    let client = cluster.client().await.unwrap();

    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let cm: ConfigMap = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "testkube-probe"},
        "data": {"written-by": "kube-rs"},
    }))
    .unwrap();
    cms.create(&PostParams::default(), &cm).await.unwrap();

    let out = cluster
        .kubectl()
        .args([
            "get",
            "configmap",
            "testkube-probe",
            "-o",
            "jsonpath={.data.written-by}",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "kube-rs");

    // A second write through kubectl is seen by the client: same server, real storage.
    let out = cluster
        .kubectl()
        .args(["label", "configmap", "testkube-probe", "by=kubectl"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got = cms.get("testkube-probe").await.unwrap();
    assert_eq!(got.metadata.labels.unwrap()["by"], "kubectl");
}

#[test]
fn owned_cluster_is_torn_down_on_drop() {
    let c = testkube::Cluster::start().unwrap();
    let dir = c.dir().to_path_buf();
    // DIR/pids holds one NAME.pid file per process the script started.
    let pids: Vec<u32> = std::fs::read_dir(dir.join("pids"))
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .filter_map(|s| s.split_whitespace().next().and_then(|w| w.parse().ok()))
        .collect();
    assert!(
        pids.len() >= 4,
        "etcd, apiserver, controller-manager, scheduler: {pids:?}"
    );
    assert!(dir.join("kubeconfig").exists());
    drop(c);
    assert!(!dir.exists(), "cluster dir left behind");
    for pid in pids {
        // A zombie has exited; only its parent (here, init) has yet to reap it.
        let state = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| s.rsplit_once(") ").map(|(_, r)| r.chars().next()));
        assert!(
            matches!(state, None | Some(Some('Z' | 'X'))),
            "process {pid} left running ({state:?})"
        );
    }
}
