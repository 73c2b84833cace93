//! Set-up shared by the tests that run against the real control plane.

#![allow(dead_code, clippy::unwrap_used)] // test code

pub mod cni;

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
    cluster.install_crds(&repo().join("manifests/crd")).unwrap();
    *done = true;
}

/// Runs `bin` (a CNI plugin) from inside `node` as a runtime runs it: a clean environment (PATH,
/// which the stock plugins need for iptables, and `env`), the configuration on stdin. (success,
/// stdout as JSON or Null.)
pub fn run_plugin(
    node: &interop::Netns,
    bin: &Path,
    env: &[(&str, &str)],
    conf: &serde_json::Value,
) -> (bool, serde_json::Value) {
    let mut argv: Vec<String> = vec![
        "env".into(),
        "-i".into(),
        "PATH=/usr/sbin:/usr/bin:/sbin:/bin".into(),
    ];
    argv.extend(env.iter().map(|(k, v)| format!("{k}={v}")));
    argv.push(bin.to_string_lossy().into_owned());
    let wrapped = node.wrap(&argv);
    let out = piped(
        std::process::Command::new(&wrapped[0]).args(&wrapped[1..]),
        conf.to_string().as_bytes(),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    (
        out.status.success(),
        serde_json::from_str(&text).unwrap_or(serde_json::Value::Null),
    )
}

/// Runs `cmd` with `input` on stdin; its output.
pub fn piped(cmd: &mut std::process::Command, input: &[u8]) -> Output {
    use std::io::Write;
    let mut child = cmd
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}

/// The controller in this process, without leader election (stopped by aborting the task).
pub fn start_controller(
    client: &kube::Client,
    services: bool,
    pods: bool,
) -> tokio::task::JoinHandle<Result<(), controller::Error>> {
    tokio::spawn(controller::run(
        client.clone(),
        controller::Options {
            lease: None,
            identity: "test".into(),
            services,
            pods,
            metrics: Default::default(),
        },
    ))
}

/// The controller with pod pools only.
pub fn pods_controller(
    client: &kube::Client,
) -> tokio::task::JoinHandle<Result<(), controller::Error>> {
    start_controller(client, false, true)
}

/// `kubectl apply -f -` with `yaml` on stdin.
pub fn apply(cluster: &testkube::Cluster, yaml: &str) -> Output {
    piped(
        cluster.kubectl().args(["apply", "-f", "-"]),
        yaml.as_bytes(),
    )
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

/// The IP addresses in a Service's `status.loadBalancer.ingress`, read from the object itself
/// (not through the controller's own reading of it).
pub fn ingress_ips(s: &k8s_openapi::api::core::v1::Service) -> Vec<std::net::IpAddr> {
    s.status
        .iter()
        .filter_map(|st| st.load_balancer.as_ref())
        .flat_map(|lb| lb.ingress.iter().flatten())
        .filter_map(|i| i.ip.as_deref()?.parse().ok())
        .collect()
}

/// Whether a Service is `type: LoadBalancer`.
pub fn is_load_balancer(s: &k8s_openapi::api::core::v1::Service) -> bool {
    s.spec.as_ref().and_then(|sp| sp.type_.as_deref()) == Some("LoadBalancer")
}
