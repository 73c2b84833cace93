//! Set-up shared by the tests that run against the real control plane.

#![allow(dead_code, clippy::unwrap_used)] // test code

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

pub fn kubectl(cluster: &testkube::Cluster, args: &[&str]) -> Output {
    cluster.kubectl().args(args).output().unwrap()
}

/// stdout of a kubectl run that must succeed.
pub fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "kubectl failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `kubectl apply -k manifests/crd` and wait until every CRD is served; once per test binary
/// (two concurrent client-side applies would race to create the same CRD).
pub fn install_crds(cluster: &testkube::Cluster) {
    static ONCE: std::sync::Mutex<bool> = std::sync::Mutex::new(false);
    let mut done = ONCE.lock().unwrap_or_else(|p| p.into_inner());
    if *done {
        return;
    }
    let crd = repo().join("manifests/crd");
    ok(kubectl(cluster, &["apply", "-k", crd.to_str().unwrap()]));
    ok(kubectl(
        cluster,
        &[
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            "crd",
            "--all",
        ],
    ));
    *done = true;
}

/// `kubectl apply -f -` with `yaml` on stdin.
pub fn apply(cluster: &testkube::Cluster, yaml: &str) -> Output {
    use std::io::Write;
    let mut child = cluster
        .kubectl()
        .args(["apply", "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(yaml.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// Polls `f` every 100 ms until it returns `Some`, or panics after `timeout` with `what` and
/// the last value seen.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let start = Instant::now();
    loop {
        match f().await {
            Ok(v) => return v,
            Err(last) if start.elapsed() > timeout => {
                panic!("{what}: not after {timeout:?}; last: {last}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// Logs of the code under test on stderr (shown for failing tests), at `RUST_LOG` or info.
pub fn logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_test_writer()
        .try_init();
}

/// Creates a Node object with `labels` and one `InternalIP` (there is no kubelet: status is
/// written through the status subresource, as a kubelet would).
pub async fn create_node(
    api: &kube::Api<k8s_openapi::api::core::v1::Node>,
    name: &str,
    labels: serde_json::Value,
    ip: &str,
) {
    use kube::api::{Patch, PatchParams, PostParams};
    let n = serde_json::from_value(serde_json::json!({
        "metadata": {"name": name, "labels": labels},
    }))
    .unwrap();
    api.create(&PostParams::default(), &n).await.unwrap();
    let status =
        serde_json::json!({"status": {"addresses": [{"type": "InternalIP", "address": ip}]}});
    api.patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();
}
