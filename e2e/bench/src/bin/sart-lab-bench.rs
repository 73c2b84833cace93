//! `sart-lab-bench`: the lab's figures (issue #10), on a lab of its own. Needs root and the
//! release binaries; refuses to run while another lab's namespaces exist.
//!
//! ```sh
//! cargo build --release -p sartd -p sart -p sartcni -p sart-bench
//! target/release/sart-lab-bench [--services 100] [--pods 100] [--nodes 3] [--cuts 20]
//! ```
//!
//! - bring-up: `e2e/lab/lab up` until every pod and the VIP answer the client.
//! - Service → VIP route: one LoadBalancer Service at a time, each asking for its own address;
//!   from the create request until the route is in the router's kernel table, and until the
//!   first UPDATE reached the router. With
//!   `--systems sart,metallb` (the default), then the same for MetalLB in the same lab: its
//!   controller (host) and a speaker per node (in the node's namespace, native BGP mode, from an
//!   address of its own, peered with the same router), for Services of its `loadBalancerClass`,
//!   which sart leaves alone.
//! - pod → reachable: one pod at a time (scheduled by the scheduler); from `kubectl create`
//!   returning until the client gets an HTTP answer from the pod's address.
//! - link cut → router stops using the node: `lab cut` of node 1's link until the router's
//!   kernel route to the VIP no longer goes through node 1 (multihop BFD, 100 ms x 3); then
//!   `lab uncut` and wait for node 1 to be used again.

use std::process::{Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;

#[path = "../lab.rs"]
mod lab;
use lab::{Lab, report};
#[path = "../memory.rs"]
mod memory;
#[path = "../metallb.rs"]
mod metallb;

#[derive(Parser)]
#[command(
    name = "sart-lab-bench",
    about = "Lab bring-up, Service-to-route and pod-to-reachable latencies"
)]
struct Args {
    #[arg(long, default_value_t = 100)]
    services: u32,
    #[arg(long, default_value_t = 100)]
    pods: u32,
    #[arg(long, default_value_t = 3)]
    nodes: u32,
    #[arg(long, default_value_t = 20)]
    cuts: u32,
    /// Whose Service-to-route latency to measure: sart, metallb.
    #[arg(long, value_delimiter = ',', default_value = "sart,metallb")]
    systems: Vec<String>,
}

/// The `loadBalancerClass` MetalLB is limited to here.
const METALLB_CLASS: &str = "metallb.io/metallb";

/// When each BGP route first reached the router's kernel table: `ip monitor route` in the
/// router's namespace, read as it prints. Polling `vtysh` instead cost 37 ms of CPU per look on
/// these 2 cores, slowed what it measured, and added up to a look's time to each figure.
struct RouteMonitor {
    _ip: Procs,
    seen: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, Instant>>>,
}

impl RouteMonitor {
    fn start() -> Result<RouteMonitor> {
        use std::io::BufRead;
        let mut child = Command::new("ip")
            .args(["netns", "exec", "sart-lab-router", "ip", "monitor", "route"])
            .stdout(Stdio::piped())
            .spawn()
            .context("ip monitor route")?;
        let out = child.stdout.take().context("ip monitor's output")?;
        let seen = std::sync::Arc::new(std::sync::Mutex::new(std::collections::HashMap::new()));
        let s = seen.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
                let at = Instant::now();
                // "198.18.201.7 nhid 32 proto bgp metric 20" (a host route has no "/32").
                if line.starts_with("Deleted") || !line.contains(" proto bgp ") {
                    continue;
                }
                if let Some(dst) = line.split_whitespace().next()
                    && let Ok(mut m) = s.lock()
                {
                    m.entry(dst.to_owned()).or_insert(at);
                }
            }
        });
        Ok(RouteMonitor {
            _ip: Procs(vec![child]),
            seen,
        })
    }

    /// How long after `since` a route to `ip` first reached the router's kernel.
    fn wait(&self, ip: &str, since: Instant, timeout: Duration) -> Option<Duration> {
        while since.elapsed() < timeout {
            if let Some(at) = self.seen.lock().ok().and_then(|m| m.get(ip).copied()) {
                return Some(at.saturating_duration_since(since));
            }
            sleep(Duration::from_millis(1));
        }
        None
    }
}

/// When BGP segments carrying more than a KEEPALIVE (19 octets, RFC 4271 §4.4) reached the
/// router from any speaker: `tcpdump` on all of the router's interfaces, read as it prints.
/// With one Service at a time and the lab otherwise quiet, the first such segment after a
/// create is that Service's UPDATE; what the router does next (best path, zebra, the kernel) is
/// the same for every speaker.
struct UpdateMonitor {
    _tcpdump: Procs,
    /// Since the Unix epoch (tcpdump's clock is the realtime clock).
    seen: std::sync::Arc<std::sync::Mutex<Vec<Duration>>>,
}

impl UpdateMonitor {
    fn start() -> Result<UpdateMonitor> {
        use std::io::BufRead;
        let mut child = Command::new("ip")
            .args([
                "netns",
                "exec",
                "sart-lab-router",
                "tcpdump",
                "-i",
                "any",
                "-nn",
                "-l",
            ])
            .args(["--immediate-mode", "-tt", "tcp dst port 179 and ip"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("tcpdump")?;
        let out = child.stdout.take().context("tcpdump's output")?;
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let s = seen.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
                // "1796610877.726163 to-node1 In  IP 198.18.1.2.45480 > 198.18.0.1.179: Flags
                // [P.], ..., length 49: BGP"
                let Some(at) = line
                    .split_whitespace()
                    .next()
                    .and_then(|t| t.parse::<f64>().ok())
                else {
                    continue;
                };
                let len = line
                    .rsplit_once("length ")
                    .and_then(|(_, l)| l.split(':').next()?.trim().parse::<usize>().ok());
                if len.is_some_and(|l| l > 19)
                    && let Ok(mut v) = s.lock()
                {
                    v.push(Duration::from_secs_f64(at));
                }
            }
        });
        // tcpdump needs a moment before its filter is in place.
        sleep(Duration::from_secs(1));
        Ok(UpdateMonitor {
            _tcpdump: Procs(vec![child]),
            seen,
        })
    }

    /// The first UPDATE at or after `since` (realtime), as a delay from it.
    fn first_after(&self, since: Duration) -> Option<Duration> {
        let v = self.seen.lock().ok()?;
        v.iter().filter(|t| **t >= since).min().map(|t| *t - since)
    }
}

/// The lab's API server, for creates timed from the request (a `kubectl` process costs about
/// 150 ms of its own here).
struct Api {
    rt: tokio::runtime::Runtime,
    client: kube::Client,
}

impl Api {
    fn new(lab: &Lab) -> Result<Api> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let client = rt.block_on(testkube::client(&lab.dir.join("cluster/kubeconfig")))?;
        Ok(Api { rt, client })
    }

    fn create(&self, svc: serde_json::Value) -> Result<()> {
        let svc: k8s_openapi::api::core::v1::Service = serde_json::from_value(svc)?;
        let api: kube::Api<k8s_openapi::api::core::v1::Service> =
            kube::Api::namespaced(self.client.clone(), "default");
        self.rt
            .block_on(api.create(&Default::default(), &svc))
            .context("creating a Service")?;
        Ok(())
    }
}

/// The API and both clocks at the router.
struct ServiceClock {
    api: Api,
    routes: RouteMonitor,
    updates: UpdateMonitor,
}

/// One Service at a time, each asking for its own address (`ip(i)`) through `annotations`:
/// from the create request until the route is in the router's kernel table, and until the
/// first UPDATE reached the router.
fn services_to_routes(
    clock: &ServiceClock,
    n: u32,
    prefix: &str,
    class: Option<&str>,
    annotations: impl Fn(&str) -> serde_json::Value,
    ip: impl Fn(u32) -> String,
) -> Result<(Vec<Duration>, Vec<Duration>)> {
    let (mut svc, mut upd) = (Vec::new(), Vec::new());
    for i in 0..n {
        let ip = ip(i);
        let service = serde_json::json!({
            "metadata": {"name": format!("{prefix}-{i}"), "annotations": annotations(&ip)},
            "spec": {"type": "LoadBalancer", "loadBalancerClass": class,
                "selector": {"app": "app-cluster"}, "ports": [{"port": 80, "targetPort": 80}]}
        });
        let (start, wall) = (Instant::now(), realtime());
        clock.api.create(service)?;
        let Some(took) = clock.routes.wait(&ip, start, Duration::from_secs(30)) else {
            bail!("Service {prefix}-{i}: no route to {ip} at the router after 30 s");
        };
        svc.push(took);
        // Every speaker's UPDATE is in by the time the route is (a few ms apart); a pause keeps
        // a late one from counting as the next Service's.
        sleep(Duration::from_millis(100));
        if let Some(u) = clock.updates.first_after(wall) {
            upd.push(u);
        }
    }
    Ok((svc, upd))
}

fn realtime() -> Duration {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
}

/// Processes named `program` in network namespace `netns`: (PID, their subcommand).
fn node_processes(netns: &str, program: &str) -> Vec<(u32, String)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(cmd) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        let args: Vec<String> = cmd
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        if !args.first().is_some_and(|a| a.ends_with(program)) {
            continue;
        }
        let ns = Command::new("ip")
            .args(["netns", "identify", &pid.to_string()])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_default();
        if ns == netns {
            out.push((pid, args.get(1).cloned().unwrap_or_default()));
        }
    }
    out
}

/// Processes killed (by PID) and reaped when dropped.
struct Procs(Vec<std::process::Child>);

impl Drop for Procs {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Runs `cmd` with the lab's kubeconfig, inside `netns` if given; its output in `log`.
fn spawn_in(
    lab: &Lab,
    netns: Option<&str>,
    cmd: Command,
    log: &str,
) -> Result<std::process::Child> {
    let mut c = match netns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns])
                .arg(cmd.get_program())
                .args(cmd.get_args());
            for (k, v) in cmd.get_envs() {
                if let Some(v) = v {
                    c.env(k, v);
                }
            }
            c
        }
        None => cmd,
    };
    let out = std::fs::File::create(lab.dir.join(log))?;
    c.env("KUBECONFIG", lab.dir.join("cluster/kubeconfig"))
        .stdout(out.try_clone()?)
        .stderr(out)
        .spawn()
        .with_context(|| format!("starting {log}"))
}

/// What MetalLB's Services, processes and the router's sessions say (the lab goes on exit).
fn metallb_diagnose(lab: &Lab, nodes: u32) {
    let svcs = lab.kubectl(&["get", "svc", "-o", "wide"], None);
    eprintln!("Services: {svcs:?}");
    let logs = std::iter::once("metallb-controller.log".to_owned())
        .chain((1..=nodes).map(|i| format!("metallb-speaker{i}.log")));
    for log in logs {
        let text = std::fs::read_to_string(lab.dir.join(&log)).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(15).collect();
        eprintln!("--- {log} (last lines, newest first)\n{}", tail.join("\n"));
    }
    let summary = Command::new("vtysh")
        .arg("--vty_socket")
        .arg(lab.dir.join("router"))
        .args(["-c", "show bgp summary"])
        .output();
    if let Ok(o) = summary {
        eprintln!("--- router\n{}", String::from_utf8_lossy(&o.stdout));
    }
}

/// The address node `i`'s MetalLB speaker speaks BGP from (sart's speaker has the node's own).
fn metallb_source(i: u32) -> String {
    format!("198.18.{i}.12")
}

/// MetalLB beside sart in the lab: CRDs, its pool (198.18.210.0/24) and per-node peers with the
/// router (iBGP, as the router's NODES group takes any 198.18.0.0/16 address), the controller
/// and a speaker per node. Returns the processes; the lab's teardown removes the rest.
fn metallb_up(lab: &Lab, nodes: u32) -> Result<Procs> {
    let crds = metallb::build(Some("crds"))?;
    lab.kubectl(&["apply", "-f", &crds.to_string_lossy()], None)?;
    lab.kubectl(
        &[
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            "crd",
            "--all",
        ],
        None,
    )?;
    let ns = metallb::NAMESPACE;
    let mut yaml = format!(
        "apiVersion: v1\nkind: Namespace\nmetadata: {{name: {ns}}}\n---\n{}---\n\
         apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {{name: lab, namespace: {ns}}}\n\
         spec: {{addresses: [198.18.210.0/24], autoAssign: false}}\n---\n\
         apiVersion: metallb.io/v1beta1\nkind: BGPAdvertisement\nmetadata: {{name: lab, namespace: {ns}}}\n\
         spec: {{ipAddressPools: [lab]}}\n",
        metallb::self_pod("controller")
    );
    for i in 1..=nodes {
        let node = format!("sart-lab-node{i}");
        let src = metallb_source(i);
        // The address, and the router's way back to it.
        for (netns, args) in [
            (
                node.clone(),
                vec!["ip", "addr", "add", &*format!("{src}/32"), "dev", "lo"],
            ),
            (
                "sart-lab-router".to_owned(),
                vec![
                    "ip",
                    "route",
                    "add",
                    &*format!("{src}/32"),
                    "dev",
                    &*format!("to-node{i}"),
                    "src",
                    "198.18.0.1",
                ],
            ),
        ] {
            let st = Command::new("ip")
                .args(["netns", "exec", &netns])
                .args(&args)
                .status()?;
            if !st.success() {
                bail!("ip netns exec {netns} {}: failed", args.join(" "));
            }
        }
        yaml.push_str(&format!(
            "---\n{}---\napiVersion: metallb.io/v1beta2\nkind: BGPPeer\nmetadata: {{name: node{i}, namespace: {ns}}}\n\
             spec: {{myASN: 65000, peerASN: 65000, peerAddress: 198.18.0.1, sourceAddress: {src}, holdTime: 9s, \
             nodeSelectors: [{{matchLabels: {{kubernetes.io/hostname: {node}}}}}]}}\n",
            metallb::self_pod(&format!("speaker-{i}"))
        ));
    }
    lab.kubectl(&["apply", "-f", "-"], Some(&yaml))?;
    let mut procs = Procs(Vec::new());
    procs.0.push(spawn_in(
        lab,
        None,
        metallb::controller(Some(METALLB_CLASS))?,
        "metallb-controller.log",
    )?);
    for i in 1..=nodes {
        let node = format!("sart-lab-node{i}");
        procs.0.push(spawn_in(
            lab,
            Some(&node),
            metallb::speaker(&node, &format!("speaker-{i}"), Some(METALLB_CLASS))?,
            &format!("metallb-speaker{i}.log"),
        )?);
    }
    Ok(procs)
}

/// Whether the router's kernel route to `prefix` goes through `next_hop`.
fn router_uses(prefix: &str, next_hop: &str) -> bool {
    Command::new("ip")
        .args([
            "netns",
            "exec",
            "sart-lab-router",
            "ip",
            "route",
            "show",
            prefix,
        ])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains(next_hop))
}

fn reachable(ip: &str) -> bool {
    Command::new("ip")
        .args([
            "netns",
            "exec",
            "sart-lab-client",
            "curl",
            "-s",
            "-m",
            "1",
            &format!("http://{ip}/"),
        ])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn main() -> Result<()> {
    let args = Args::parse();
    let lab = Lab::new("sart-lab-bench");
    let t0 = Instant::now();
    lab.lab(&["up", "--nodes", &args.nodes.to_string()])
        .context("bringing the lab up")?;
    println!(
        "bring-up ({} nodes, built binaries, cached control plane): {:.1} s",
        args.nodes,
        t0.elapsed().as_secs_f64()
    );

    // Pods first: the memory figures below are taken with them running.
    let mut pods = Vec::new();
    for i in 0..args.pods {
        let yaml = format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: bench-{i}, labels: {{app: bench}}}}\nspec:\n  containers: [{{name: web, image: 'lab/responder:1', ports: [{{containerPort: 80}}]}}]\n"
        );
        let start = Instant::now();
        lab.kubectl(&["create", "-f", "-"], Some(&yaml))?;
        let mut ip = String::new();
        loop {
            if ip.is_empty() {
                ip = lab
                    .kubectl(
                        &[
                            "get",
                            "pod",
                            &format!("bench-{i}"),
                            "-o",
                            "jsonpath={.status.podIP}",
                        ],
                        None,
                    )?
                    .trim()
                    .to_owned();
            }
            if !ip.is_empty() && reachable(&ip) {
                break;
            }
            if start.elapsed() > Duration::from_secs(60) {
                bail!("pod bench-{i} ({ip:?}) not reachable after 60 s");
            }
            sleep(Duration::from_millis(10));
        }
        pods.push(start.elapsed());
    }
    if args.pods > 0 {
        report("Pod created -> reachable from the client", pods);
    }

    // Services: sart's ask for their own address of the second pool (198.18.201.0/24),
    // MetalLB's for one of its pool (198.18.210.0/24).
    let mut figures = Vec::new();
    let clock = ServiceClock {
        routes: RouteMonitor::start()?,
        updates: UpdateMonitor::start()?,
        api: Api::new(&lab)?,
    };
    let run = |n: u32, prefix: &str, metallb: bool, ip: &dyn Fn(u32) -> String| {
        services_to_routes(
            &clock,
            n,
            prefix,
            metallb.then_some(METALLB_CLASS),
            |ip| match metallb {
                false => serde_json::json!({"sart.terassyi.net/addresspool": "non-default-lb-pool",
                    "sart.terassyi.net/loadBalancerIPs": ip}),
                true => serde_json::json!({"metallb.io/loadBalancerIPs": ip}),
            },
            ip,
        )
    };
    let mut report_both = |who: &'static str, (svc, upd): (Vec<Duration>, Vec<Duration>)| {
        let route = report(
            &format!("{who}: Service created -> VIP route at the router"),
            svc,
        );
        let update = report(
            &format!("{who}: Service created -> first UPDATE at the router"),
            upd,
        );
        figures.push((who, route, update));
    };
    if args.systems.iter().any(|s| s == "sart") {
        report_both(
            "sart",
            run(args.services, "bench", false, &|i| {
                format!("198.18.201.{}", 1 + i % 250)
            })?,
        );
    }
    if args.systems.iter().any(|s| s == "metallb") {
        let procs = metallb_up(&lab, args.nodes)?;
        // Once a first Service of MetalLB's is routed, its sessions are up and caches full; a
        // session comes up at a speaker's connect retry, so allow a second try.
        run(1, "metallb-warmup", true, &|_| "198.18.210.254".to_owned())
            .or_else(|_| run(1, "metallb-warmup2", true, &|_| "198.18.210.253".to_owned()))
            .map_err(|e| {
                metallb_diagnose(&lab, args.nodes);
                e.context("MetalLB's first Service never reached the router")
            })?;
        report_both(
            "MetalLB",
            run(args.services, "metallb", true, &|i| {
                format!("198.18.210.{}", 1 + i % 250)
            })?,
        );
        // Each system's processes on node 1, with both systems' Services and the pods in place.
        // A process gone meanwhile counts as 0.
        let rss = |pid: u32| memory::mib(pid).map(|(rss, _)| rss).unwrap_or_default();
        let sart: Vec<(String, f64)> = node_processes("sart-lab-node1", "sartd")
            .into_iter()
            .filter(|(_, what)| what == "bgp" || what == "agent")
            .map(|(pid, what)| (what, rss(pid)))
            .collect();
        let metallb = procs.0.get(1).map(|c| rss(c.id())).unwrap_or_default();
        println!(
            "RSS on node 1: sart {} = {:.1} MiB; MetalLB speaker {metallb:.1} MiB",
            sart.iter()
                .map(|(w, r)| format!("{w} {r:.1}"))
                .collect::<Vec<_>>()
                .join(" + "),
            sart.iter().map(|(_, r)| r).sum::<f64>()
        );
        drop(procs);
    }
    if let [(a, ra, ua), (b, rb, ub)] = figures.as_slice() {
        println!(
            "p99 {a} / {b}: route at the router {:.2}, first UPDATE at the router {:.2}",
            ra / rb,
            ua / ub
        );
    }

    // The app Service's VIP (ECMP over every node) and node 1's link.
    let (vip, node1) = ("198.18.200.0/32", "198.18.1.2");
    let mut cuts = Vec::new();
    for i in 0..args.cuts {
        let back = Instant::now();
        while !router_uses(vip, node1) {
            if back.elapsed() > Duration::from_secs(60) {
                bail!("cut {i}: node 1 not used for {vip} 60 s after the link came back");
            }
            sleep(Duration::from_millis(10));
        }
        // Let BFD settle at its fast rate after the session came up.
        sleep(Duration::from_secs(2));
        lab.lab(&["cut", "sart-lab-node1"])?;
        let start = Instant::now();
        while router_uses(vip, node1) {
            if start.elapsed() > Duration::from_secs(30) {
                bail!("cut {i}: the router still uses node 1 for {vip} after 30 s");
            }
            sleep(Duration::from_millis(2));
        }
        cuts.push(start.elapsed());
        lab.lab(&["uncut", "sart-lab-node1"])?;
    }
    if args.cuts > 0 {
        report("Link cut -> router stops using the node (BFD)", cuts);
    }
    Ok(())
}
