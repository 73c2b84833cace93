//! `sart-lab-kubelet`: the lab's stand-in for a kubelet and container runtime on one node (see
//! the crate's documentation). Run it inside the node's network namespace with a kubeconfig:
//!
//! ```sh
//! ip netns exec NODE env KUBECONFIG=... sart-lab-kubelet --node n1 --node-ip 198.18.1.1 \
//!     --conflist 10-sart.conflist --cni-bin-dir target/release --cni-bin-dir /usr/lib/cni
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result};
use clap::Parser;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kube::{Client, ResourceExt};
use sart_lab::cni::{Conflist, Sandbox, result_ips};
use sart_lab::responder::Responders;
use sart_lab::status;
use serde_json::Value;

#[derive(Parser)]
#[command(name = "sart-lab-kubelet", about = "The sart lab's kubelet stand-in")]
struct Args {
    #[arg(long)]
    node: String,
    /// The node's InternalIPs: one, or one per family (comma-separated, primary first).
    #[arg(long, value_delimiter = ',', required = true)]
    node_ip: Vec<String>,
    /// Node labels, `k=v` (comma-separated or repeated).
    #[arg(long, value_delimiter = ',')]
    labels: Vec<String>,
    /// The CNI conflist to run for every pod.
    #[arg(long)]
    conflist: PathBuf,
    /// Where the plugins are (repeatable; searched in order).
    #[arg(long)]
    cni_bin_dir: Vec<PathBuf>,
}

struct Running {
    sandbox: Sandbox,
    result: Value,
    _responders: Responders,
}

fn now() -> String {
    Timestamp::now().to_string()
}

fn netns_name(node: &str, uid: &str) -> String {
    format!("lab-{node}-{}", uid.chars().take(8).collect::<String>())
}

fn ip_netns(args: &[&str]) -> Result<()> {
    let out = std::process::Command::new("ip")
        .arg("netns")
        .args(args)
        .output()
        .context("running ip netns")?;
    if !out.status.success() {
        anyhow::bail!(
            "ip netns {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

async fn register(client: &Client, a: &Args) -> Result<()> {
    let labels: Vec<(String, String)> = a
        .labels
        .iter()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let api: Api<Node> = Api::all(client.clone());
    let node: Node = serde_json::from_value(status::node(&a.node, &labels))?;
    match api.create(&PostParams::default(), &node).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 409 => {
            let patch = status::node(&a.node, &labels);
            api.patch(&a.node, &PatchParams::default(), &Patch::Merge(&patch))
                .await?;
        }
        Err(e) => return Err(e.into()),
    }
    api.patch_status(
        &a.node,
        &PatchParams::default(),
        &Patch::Merge(&status::node_status(&a.node_ip, &now())),
    )
    .await?;
    Ok(())
}

/// Brings up one pod's sandbox: namespace, CNI ADD, responders, status.
async fn start(client: &Client, a: &Args, conf: &Conflist, pod: &Pod) -> Result<Running> {
    let uid = pod.uid().unwrap_or_default();
    let (ns, name) = (pod.namespace().unwrap_or_default(), pod.name_any());
    let netns = netns_name(&a.node, &uid);
    let path = format!("/run/netns/{netns}");
    if !std::path::Path::new(&path).exists() {
        ip_netns(&["add", &netns])?;
    }
    let sandbox = Sandbox {
        container_id: uid.clone(),
        netns: path.clone(),
        ifname: "eth0".into(),
        pod_namespace: ns.clone(),
        pod_name: name.clone(),
        pod_uid: uid,
    };
    let (c, sb) = (conf.clone(), sandbox.clone());
    let result = tokio::task::spawn_blocking(move || c.add(&sb)).await??;
    let ips = result_ips(&result);
    let responders = Responders::start(&path, &status::ports(pod), &name)?;
    let api: Api<Pod> = Api::namespaced(client.clone(), &ns);
    api.patch_status(
        &name,
        &PatchParams::default(),
        &Patch::Merge(&status::pod_running(pod, &a.node_ip, &ips, &now())),
    )
    .await?;
    eprintln!("pod {ns}/{name} running at {ips:?}");
    Ok(Running {
        sandbox,
        result,
        _responders: responders,
    })
}

/// Tears one sandbox down: responders, CNI DEL, namespace.
async fn stop(conf: &Conflist, r: Running) -> Result<()> {
    let Running {
        sandbox,
        result,
        _responders,
    } = r;
    drop(_responders);
    let c = conf.clone();
    let sb = sandbox.clone();
    tokio::task::spawn_blocking(move || c.del(&sb, Some(&result))).await??;
    let name = sandbox.netns.trim_start_matches("/run/netns/").to_owned();
    ip_netns(&["del", &name])?;
    eprintln!("pod {}/{} stopped", sandbox.pod_namespace, sandbox.pod_name);
    Ok(())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let a = Args::parse();
    let client = Client::try_default()
        .await
        .context("no Kubernetes client configuration")?;
    let conf = Conflist::load(&a.conflist, a.cni_bin_dir.clone())?;
    register(&client, &a).await?;
    let (reader, writer) = reflector::store();
    let cfg = watcher::Config::default().fields(&format!("spec.nodeName={}", a.node));
    let (poke_tx, mut poke) = tokio::sync::mpsc::channel::<()>(1);
    let stream = reflector(writer, watcher(Api::<Pod>::all(client.clone()), cfg)).default_backoff();
    tokio::spawn(stream.for_each(move |_| {
        let _ = poke_tx.try_send(());
        futures::future::ready(())
    }));
    let mut running: BTreeMap<String, Running> = BTreeMap::new();
    let mut tick = tokio::time::interval(Duration::from_secs(2));
    let mut heartbeat = tokio::time::interval(Duration::from_secs(30));
    loop {
        tokio::select! {
            _ = poke.recv() => {}
            _ = tick.tick() => {}
            _ = heartbeat.tick() => {
                let api: Api<Node> = Api::all(client.clone());
                let s = status::node_status(&a.node_ip, &now());
                if let Err(e) = api.patch_status(&a.node, &PatchParams::default(), &Patch::Merge(&s)).await {
                    eprintln!("node heartbeat: {e}");
                }
            }
        }
        let pods: Vec<Arc<Pod>> = reader.state();
        let live: BTreeMap<String, Arc<Pod>> = pods
            .iter()
            .map(|p| (p.uid().unwrap_or_default(), p.clone()))
            .collect();
        // Gone from the API, or being deleted: stop, then let the deletion finish.
        let ending: Vec<String> = running
            .keys()
            .filter(|uid| {
                live.get(*uid)
                    .is_none_or(|p| p.metadata.deletion_timestamp.is_some())
            })
            .cloned()
            .collect();
        for uid in ending {
            if let Some(r) = running.remove(&uid)
                && let Err(e) = stop(&conf, r).await
            {
                eprintln!("stopping pod {uid}: {e:#}");
            }
        }
        for p in live.values() {
            let uid = p.uid().unwrap_or_default();
            if p.metadata.deletion_timestamp.is_some() {
                if !running.contains_key(&uid) {
                    // A sandbox that never came up whole: undo what there is.
                    let netns = netns_name(&a.node, &uid);
                    if std::path::Path::new(&format!("/run/netns/{netns}")).exists() {
                        let sb = Sandbox {
                            container_id: uid.clone(),
                            netns: format!("/run/netns/{netns}"),
                            ifname: "eth0".into(),
                            pod_namespace: p.namespace().unwrap_or_default(),
                            pod_name: p.name_any(),
                            pod_uid: uid.clone(),
                        };
                        let c = conf.clone();
                        let _ = tokio::task::spawn_blocking(move || c.del(&sb, None)).await;
                        let _ = ip_netns(&["del", &netns]);
                    }
                    let api: Api<Pod> =
                        Api::namespaced(client.clone(), &p.namespace().unwrap_or_default());
                    let dp = DeleteParams {
                        grace_period_seconds: Some(0),
                        preconditions: Some(Preconditions {
                            uid: Some(uid.clone()),
                            resource_version: None,
                        }),
                        ..DeleteParams::default()
                    };
                    let _ = api.delete(&p.name_any(), &dp).await;
                }
                continue;
            }
            let done = matches!(
                p.status.as_ref().and_then(|s| s.phase.as_deref()),
                Some("Succeeded") | Some("Failed")
            );
            if running.contains_key(&uid) || done {
                continue;
            }
            match start(&client, &a, &conf, p).await {
                Ok(r) => {
                    running.insert(uid, r);
                }
                // Retried on the next tick, as a kubelet does.
                Err(e) => eprintln!(
                    "pod {}/{}: {e:#}",
                    p.namespace().unwrap_or_default(),
                    p.name_any()
                ),
            }
        }
    }
}
