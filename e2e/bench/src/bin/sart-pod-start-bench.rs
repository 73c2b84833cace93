//! `sart-pod-start-bench`: pods started at once on the lab's real nodes (containerd and the
//! kubelet), until each is Ready, with sart as the CNI, with the standard `ptp` + `host-local`
//! plugins swapped in, and with `hostNetwork: true` (no CNI call at all: what the scheduler, the
//! kubelet and containerd cost alone), in one run on one lab. Needs root and the release
//! binaries.
//!
//! ```sh
//! cargo build --release -p sartd -p sart -p sartcni -p sart-bench
//! target/release/sart-pod-start-bench [--nodes 3] [--one-node 100] [--spread 300] [--rounds 1]
//! ```
//!
//! Each batch is one `kubectl create` of a List of pods (image `lab/responder:1` running
//! `sleep`, so hostNetwork pods do not fight over ports); a watch records when each pod turns
//! Ready, from just before the create. The batch is deleted and gone before the next. ptp: a
//! `00-ptp.conflist` (host-local, an IPv4 and an IPv6 range per node: dual-stack, as sart's pods
//! are) in each node's `/etc/cni/net.d`, which containerd prefers to sart's `10-sart.conflist`,
//! removed afterwards. With `--rounds`, the three take turns round after round and each
//! figure is over every round's pods. sart's share of a p99 is its p99 minus the hostNetwork p99;
//! likewise ptp's.
//!
//! On two cores the time to Ready of a batch varies by a second or more from run to run, which
//! hides a CNI's tens of milliseconds. So each pod's sandbox is timed too, from containerd's own
//! log: `RunPodSandbox` (the network namespace, the CNI ADD, the pause container) from its start
//! to its return. Its share is a network's sandbox time minus hostNetwork's (no CNI call).
//! For sart it also counts, from the agents' metrics, the BlockRequests made during its batches:
//! those an ADD had to wait for and those asked ahead of need.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use kube::runtime::watcher::{self, Event};

#[path = "../lab.rs"]
mod lab;
use lab::{Lab, report};

#[derive(Parser)]
#[command(
    name = "sart-pod-start-bench",
    about = "Pod start to Ready on real nodes: sart, ptp and hostNetwork"
)]
struct Args {
    #[arg(long, default_value_t = 3)]
    nodes: u32,
    /// Pods on node 1 alone (0: none).
    #[arg(long, default_value_t = 100)]
    one_node: u32,
    /// Pods across every node, the scheduler spreading them (0: none).
    #[arg(long, default_value_t = 300)]
    spread: u32,
    /// Batches of each kind, taking turns.
    #[arg(long, default_value_t = 1)]
    rounds: u32,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Network {
    /// `hostNetwork: true`: no CNI call.
    Host,
    Sart,
    Ptp,
}

impl Network {
    fn name(self) -> &'static str {
        match self {
            Network::Host => "hostNetwork",
            Network::Sart => "sart",
            Network::Ptp => "ptp+host-local",
        }
    }
}

fn pods_yaml(n: u32, net: Network, node: Option<&str>) -> String {
    let mut items = Vec::new();
    for i in 0..n {
        let mut spec = String::from(
            r#"{"terminationGracePeriodSeconds": 0, "containers": [{"name": "c", "image": "lab/responder:1", "command": ["/bin/sleep", "3600"]}]"#,
        );
        if net == Network::Host {
            spec.push_str(", \"hostNetwork\": true");
        }
        if let Some(node) = node {
            spec.push_str(&format!(
                ", \"nodeSelector\": {{\"kubernetes.io/hostname\": \"{node}\"}}"
            ));
        }
        spec.push('}');
        items.push(format!(
            "{{\"apiVersion\": \"v1\", \"kind\": \"Pod\", \"metadata\": {{\"name\": \"start-{i}\", \"labels\": {{\"bench\": \"pod-start\"}}}}, \"spec\": {spec}}}"
        ));
    }
    format!(
        "{{\"apiVersion\": \"v1\", \"kind\": \"List\", \"items\": [{}]}}",
        items.join(",")
    )
}

fn ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// What a batch measured: each pod's time to Ready from the create, and the pods' uids.
struct Batch {
    ready: Vec<Duration>,
    uids: Vec<String>,
}

/// Creates the pods at once and waits until each is Ready.
async fn batch(lab: &Lab, pods: &Api<Pod>, yaml: &str, n: u32) -> Result<Batch> {
    let mut seen: BTreeMap<String, (Duration, String)> = BTreeMap::new();
    let cfg = watcher::Config::default().labels("bench=pod-start");
    let mut events = watcher::watcher(pods.clone(), cfg).boxed();
    // The watch runs before the create, so no transition is missed.
    match tokio::time::timeout(Duration::from_secs(10), events.next()).await {
        Ok(Some(Ok(_))) => {}
        other => bail!("starting the pod watch: {other:?}"),
    }
    let start = Instant::now();
    lab.kubectl(&["create", "-f", "-"], Some(yaml))?;
    let deadline = start + Duration::from_secs(600);
    while seen.len() < n as usize {
        let left = deadline.saturating_duration_since(Instant::now());
        let ev = match tokio::time::timeout(left, events.next()).await {
            Ok(Some(ev)) => ev?,
            Ok(None) => bail!("the pod watch ended"),
            Err(_) => bail!("{} of {n} pods Ready after 600 s", seen.len()),
        };
        let changed = match ev {
            Event::Apply(p) | Event::InitApply(p) => vec![p],
            _ => vec![],
        };
        for p in changed {
            if ready(&p)
                && let Some(name) = p.metadata.name.clone()
            {
                let uid = p.metadata.uid.clone().unwrap_or_default();
                seen.entry(name).or_insert_with(|| (start.elapsed(), uid));
            }
        }
    }
    let (ready, uids) = seen.into_values().unzip();
    Ok(Batch { ready, uids })
}

/// Seconds since the epoch of containerd's `time="2026-12-04T17:58:03.181260846Z"`.
fn log_time(line: &str) -> Option<f64> {
    let t = line.strip_prefix("time=\"")?.split('"').next()?;
    let (date, clock) = t.strip_suffix('Z')?.split_once('T')?;
    let mut d = date.split('-').map(|x| x.parse::<i64>());
    let (y, m, day) = (d.next()?.ok()?, d.next()?.ok()?, d.next()?.ok()?);
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let mut c = clock.split(':');
    let (h, min) = (
        c.next()?.parse::<f64>().ok()?,
        c.next()?.parse::<f64>().ok()?,
    );
    let sec = c.next()?.parse::<f64>().ok()?;
    Some(days as f64 * 86_400.0 + h * 3600.0 + min * 60.0 + sec)
}

/// Each pod's `RunPodSandbox` time, from the nodes' containerd logs.
fn sandbox_times(lab: &Lab, nodes: u32, uids: &[String]) -> Result<Vec<Duration>> {
    let want: std::collections::BTreeSet<&str> = uids.iter().map(String::as_str).collect();
    let mut start: BTreeMap<String, f64> = BTreeMap::new();
    let mut took = Vec::new();
    for i in 1..=nodes {
        let path = lab
            .dir
            .join(format!("logs/sart-lab-node{i}-containerd.log"));
        let log = std::fs::read_to_string(&path).with_context(|| path.display().to_string())?;
        for line in log
            .lines()
            .filter(|l| l.contains("msg=\"RunPodSandbox for "))
        {
            let Some(uid) = line.split(",Uid:").nth(1).and_then(|r| r.split(',').next()) else {
                continue;
            };
            let (Some(t), true) = (log_time(line), want.contains(uid)) else {
                continue;
            };
            if line.contains("returns sandbox id") {
                if let Some(t0) = start.remove(uid) {
                    took.push(Duration::from_secs_f64((t - t0).max(0.0)));
                }
            } else {
                start.insert(uid.to_owned(), t);
            }
        }
    }
    if took.len() != uids.len() {
        bail!(
            "containerd logged {} of {} sandboxes",
            took.len(),
            uids.len()
        );
    }
    Ok(took)
}

/// BlockRequests the nodes' agents made so far, summed from their metrics (through the API
/// server's pod proxy): those an ADD waited for (`full`) and those made ahead of need.
fn block_requests(lab: &Lab) -> Result<(u64, u64)> {
    let names = lab.kubectl(
        &[
            "-n",
            "kube-system",
            "get",
            "pods",
            "-l",
            "app.kubernetes.io/name=sartd-agent",
            "-o",
            "jsonpath={.items[*].metadata.name}",
        ],
        None,
    )?;
    let (mut full, mut ahead) = (0, 0);
    for name in names.split_whitespace() {
        let text = lab.kubectl(
            &[
                "get",
                "--raw",
                &format!("/api/v1/namespaces/kube-system/pods/{name}:8000/proxy/metrics"),
            ],
            None,
        )?;
        let (f, a) = count_block_requests(&text);
        full += f;
        ahead += a;
    }
    Ok((full, ahead))
}

fn count_block_requests(metrics: &str) -> (u64, u64) {
    let (mut full, mut ahead) = (0, 0);
    for line in metrics
        .lines()
        .filter(|l| l.starts_with("sart_agent_block_requests_total{"))
    {
        let n = line
            .rsplit(' ')
            .next()
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0) as u64;
        if line.contains("reason=\"full\"") {
            full += n;
        } else if line.contains("reason=\"ahead\"") {
            ahead += n;
        }
    }
    (full, ahead)
}

async fn clean(lab: &Lab, pods: &Api<Pod>) -> Result<()> {
    lab.kubectl(
        &[
            "delete",
            "pods",
            "-l",
            "bench=pod-start",
            "--wait=true",
            "--timeout=300s",
        ],
        None,
    )?;
    let lp = kube::api::ListParams::default().labels("bench=pod-start");
    for _ in 0..300 {
        if pods.list(&lp).await?.items.is_empty() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    bail!("bench pods still there after 300 s")
}

/// `00-ptp.conflist` in each node's CNI directory (or removed).
fn ptp(lab: &Lab, nodes: u32, on: bool) -> Result<()> {
    for i in 1..=nodes {
        let path = lab.dir.join(format!(
            "nodes/sart-lab-node{i}/root/etc/cni/net.d/00-ptp.conflist"
        ));
        if on {
            let conf = format!(
                r#"{{"cniVersion": "1.0.0", "name": "ptp-bench", "plugins": [{{"type": "ptp", "ipMasq": false, "ipam": {{"type": "host-local", "ranges": [[{{"subnet": "100.72.{i}.0/24"}}], [{{"subnet": "fd00:100:72:{i}::/64"}}]], "dataDir": "/var/lib/cni/networks"}}}}]}}"#
            );
            std::fs::write(&path, conf).with_context(|| path.display().to_string())?;
        } else {
            let _ = std::fs::remove_file(&path);
        }
    }
    // containerd reloads its CNI configuration when the directory changes.
    std::thread::sleep(Duration::from_secs(3));
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    if args.one_node > 240 || args.spread > 240 * args.nodes {
        bail!("at most 240 bench pods a node (the lab's maxPods is 250)");
    }
    let lab = Lab::new("sart-pod-start-bench");
    lab.lab(&["up", "--nodes", &args.nodes.to_string()])
        .context("bringing the lab up")?;
    let kubeconfig = kube::config::Kubeconfig::read_from(lab.dir.join("cluster/kubeconfig"))?;
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await?;
    let client = kube::Client::try_from(config)?;
    let pods: Api<Pod> = Api::namespaced(client, "default");

    let batches = [
        (
            format!("{} pods on one node", args.one_node),
            args.one_node,
            Some("sart-lab-node1"),
        ),
        (
            format!("{} pods across {} nodes", args.spread, args.nodes),
            args.spread,
            None,
        ),
    ];
    let mut p99s = BTreeMap::new();
    let nets = [Network::Host, Network::Sart, Network::Ptp];
    for (what, n, node) in batches.iter().filter(|(_, n, _)| *n > 0) {
        let mut times: BTreeMap<&str, Vec<Duration>> = BTreeMap::new();
        let mut sandboxes: BTreeMap<&str, Vec<Duration>> = BTreeMap::new();
        let mut requests = (0, 0);
        for _ in 0..args.rounds {
            for net in nets {
                if net == Network::Ptp {
                    ptp(&lab, args.nodes, true)?;
                }
                let before = block_requests(&lab)?;
                let result = batch(&lab, &pods, &pods_yaml(*n, net, *node), *n).await;
                if net == Network::Sart {
                    let after = block_requests(&lab)?;
                    requests.0 += after.0 - before.0;
                    requests.1 += after.1 - before.1;
                }
                clean(&lab, &pods).await?;
                if net == Network::Ptp {
                    ptp(&lab, args.nodes, false)?;
                }
                let result = result?;
                sandboxes
                    .entry(net.name())
                    .or_default()
                    .extend(sandbox_times(&lab, args.nodes, &result.uids)?);
                times.entry(net.name()).or_default().extend(result.ready);
            }
        }
        for net in nets {
            let p99 = report(
                &format!("{what}, {}: to Ready", net.name()),
                times.remove(net.name()).unwrap_or_default(),
            );
            p99s.insert((what.clone(), net.name()), p99);
        }
        let mut sandbox_p = BTreeMap::new();
        for net in nets {
            let mut v = sandboxes.remove(net.name()).unwrap_or_default();
            v.sort();
            let p50 = v.get(v.len() / 2).copied().unwrap_or_default();
            let p99 = report(&format!("{what}, {}: RunPodSandbox", net.name()), v);
            sandbox_p.insert(net.name(), (p50.as_secs_f64() * 1000.0, p99));
        }
        println!(
            "{what}, sart: BlockRequests an ADD waited for {}, asked ahead {}",
            requests.0, requests.1
        );
        let (h50, h99) = sandbox_p[Network::Host.name()];
        for net in [Network::Sart, Network::Ptp] {
            let (p50, p99) = sandbox_p[net.name()];
            println!(
                "{what}: {}'s share of RunPodSandbox (minus hostNetwork's): p50 {:.0} ms, p99 {:.0} ms",
                net.name(),
                p50 - h50,
                p99 - h99
            );
        }
        let p = |net: Network| p99s[&(what.clone(), net.name())];
        let host = p(Network::Host);
        let (sart, ptp) = (p(Network::Sart) - host, p(Network::Ptp) - host);
        println!(
            "{what}: p99 sart/ptp {:.2}; CNI share of p99 (minus hostNetwork): sart {sart:.0} ms, ptp {ptp:.0} ms, ratio {:.2}",
            p(Network::Sart) / p(Network::Ptp),
            if ptp > 0.0 { sart / ptp } else { f64::NAN }
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_requests_from_metrics() {
        let text = "# HELP sart_agent_block_requests BlockRequests made\n\
            sart_agent_block_requests_total{reason=\"full\",result=\"ok\"} 2\n\
            sart_agent_block_requests_total{reason=\"full\",result=\"error\"} 1\n\
            sart_agent_block_requests_total{reason=\"ahead\",result=\"ok\"} 5\n\
            sart_agent_cni_requests_total{command=\"ADD\",result=\"ok\"} 100\n";
        assert_eq!(count_block_requests(text), (3, 5));
    }

    #[test]
    fn containerd_log_times() {
        let t = |s: &str| log_time(&format!("time=\"{s}\" level=info msg=\"x\""));
        assert_eq!(t("1970-01-01T00:00:01.5Z"), Some(1.5));
        // 2026-12-04 is day 20,791 of the epoch.
        assert_eq!(
            t("2026-12-04T17:58:03.25Z"),
            Some(20_791.0 * 86_400.0 + 64_683.25)
        );
        assert_eq!(t("2024-03-01T00:00:00Z"), Some(19_783.0 * 86_400.0));
        assert_eq!(log_time("level=info"), None);
    }
}
