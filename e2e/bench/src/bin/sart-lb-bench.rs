//! LoadBalancer IPAM at scale, sart's controller side by side with MetalLB's in one run. Each
//! system gets a fresh control plane (e2e/controlplane), its CRDs and one pool, and its
//! controller as a process; then N `type: LoadBalancer` Services are created at once (64
//! requests in flight). Measured for each: the time until every Service shows an ingress
//! address, the API writes the controller made per Service (from the API server's
//! `apiserver_request_total`, less what the same creates cost a control plane with no
//! controller), its memory, whether the addresses are distinct, and across a restart of the
//! controller (SIGKILL, then started again) how many addresses changed and how long until a new
//! Service got one. Not a test: the figures go to docs/benchmarks.md with the command.
//!
//! ```sh
//! cargo build --release -p sartd -p sart-bench
//! SARTD_BIN=target/release/sartd target/release/sart-lb-bench --services 1000
//! ```
//!
//! MetalLB is built from its Go module by `e2e/metallb/build` (cached).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use clap::{Parser, ValueEnum};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, ListParams, PostParams};
use serde_json::json;
use testkube::Cluster;

#[path = "../memory.rs"]
mod memory;
#[path = "../metallb.rs"]
mod metallb;

#[derive(Parser)]
#[command(
    name = "sart-lb-bench",
    about = "LoadBalancer IPAM at scale against a real API server, sart and MetalLB side by side"
)]
struct Args {
    /// Services created at once.
    #[arg(long, default_value_t = 1_000)]
    services: usize,
    /// Requests in flight while creating them.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Give up waiting for addresses after this many seconds.
    #[arg(long, default_value_t = 900)]
    timeout: u64,
    /// The systems to measure, in this order.
    #[arg(long, value_delimiter = ',', default_value = "sart,metallb")]
    systems: Vec<System>,
    /// Skip the controller restart.
    #[arg(long)]
    no_restart: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum System {
    Sart,
    Metallb,
}

impl System {
    fn name(self) -> &'static str {
        match self {
            System::Sart => "sart",
            System::Metallb => "MetalLB",
        }
    }
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn sartd() -> PathBuf {
    std::env::var_os("SARTD_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target/release/sartd"))
}

/// Sets up the system's CRDs and pool in a fresh cluster.
fn prepare(system: System, cluster: &Cluster) -> Result<()> {
    let yaml = cluster.dir().join("pool.yaml");
    match system {
        System::Sart => {
            cluster.install_crds(&repo().join("manifests/crd"))?;
            std::fs::write(
                &yaml,
                "apiVersion: sart.terassyi.net/v1alpha2\nkind: AddressPool\nmetadata: {name: bench}\nspec: {cidr: 198.18.64.0/18, type: service, autoAssign: true}\n",
            )?;
            cluster.kubectl_ok(&["apply", "-f", &yaml.to_string_lossy()])?;
        }
        System::Metallb => {
            cluster.install_crds(&metallb::build(Some("crds"))?)?;
            std::fs::write(
                &yaml,
                format!(
                    "apiVersion: v1\nkind: Namespace\nmetadata: {{name: {ns}}}\n---\n{pod}---\n\
                     apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {{name: bench, namespace: {ns}}}\n\
                     spec: {{addresses: [198.18.64.0/18]}}\n",
                    ns = metallb::NAMESPACE,
                    pod = metallb::self_pod("controller"),
                ),
            )?;
            cluster.kubectl_ok(&["apply", "-f", &yaml.to_string_lossy()])?;
        }
    }
    Ok(())
}

fn service(name: &str) -> Result<Service> {
    Ok(serde_json::from_value(json!({
        "metadata": {"name": name},
        // The NodePort range holds 2,768 ports: a LoadBalancer needs none.
        "spec": {"type": "LoadBalancer", "ports": [{"port": 80}],
                 "allocateLoadBalancerNodePorts": false,
                 "selector": {"app": name}}
    }))?)
}

/// Creates Services lb00000.. with `concurrency` requests in flight; how long it took.
async fn create_all(api: &Api<Service>, n: usize, concurrency: usize) -> Result<Duration> {
    let start = Instant::now();
    futures::stream::iter(0..n)
        .map(|i| {
            let api = api.clone();
            async move {
                api.create(&PostParams::default(), &service(&format!("lb{i:05}"))?)
                    .await?;
                anyhow::Ok(())
            }
        })
        .buffer_unordered(concurrency)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(start.elapsed())
}

fn ingress(s: &Service) -> Vec<String> {
    s.status
        .as_ref()
        .and_then(|st| st.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|i| i.ip.clone())
        .collect()
}

/// Every Service's ingress addresses, by name (paged: 10,000 Services are a large answer).
async fn addresses(api: &Api<Service>) -> Result<BTreeMap<String, Vec<String>>> {
    let mut out = BTreeMap::new();
    let mut lp = ListParams::default().limit(2000);
    loop {
        let page = api.list(&lp).await?;
        for s in &page.items {
            out.insert(s.metadata.name.clone().unwrap_or_default(), ingress(s));
        }
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(c) => lp = lp.continue_token(&c),
            None => return Ok(out),
        }
    }
}

/// Polls every 200 ms until `n` Services have an address; the time since `start`.
async fn until_assigned(
    api: &Api<Service>,
    n: usize,
    start: Instant,
    timeout: Duration,
) -> Result<Duration> {
    let mut last = 0;
    loop {
        let k = addresses(api)
            .await?
            .values()
            .filter(|a| !a.is_empty())
            .count();
        if k != last {
            eprintln!(
                "  {:7.2} s: {k} with an address",
                start.elapsed().as_secs_f64()
            );
            last = k;
        }
        if k >= n {
            return Ok(start.elapsed());
        }
        if start.elapsed() > timeout {
            bail!("only {k} of {n} Services have an address after {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Write requests the API server has answered, by `VERB group/resource[/subresource]`. Left
/// out: leases (the control plane renews its own every few seconds, however long a run takes)
/// and Endpoints and EndpointSlices (written by the control plane for every Service with a
/// selector, at its own pace, so a baseline taken at another moment would not cancel them).
async fn writes(client: &kube::Client) -> Result<BTreeMap<String, f64>> {
    let req = http::Request::get("/metrics").body(Vec::new())?;
    let text = client.request_text(req).await?;
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("apiserver_request_total{") else {
            continue;
        };
        let Some((labels, value)) = rest.rsplit_once("} ") else {
            continue;
        };
        let label = |k: &str| -> String {
            labels
                .split(',')
                .filter_map(|kv| kv.split_once('='))
                .find(|(key, _)| *key == k)
                .map(|(_, v)| v.trim_matches('"').to_owned())
                .unwrap_or_default()
        };
        let verb = label("verb");
        if !matches!(verb.as_str(), "POST" | "PUT" | "PATCH" | "DELETE" | "APPLY") {
            continue;
        }
        let resource = label("resource");
        if matches!(resource.as_str(), "leases" | "endpoints" | "endpointslices") {
            continue;
        }
        let group = label("group");
        let sub = label("subresource");
        let mut key = format!("{verb} ");
        if !group.is_empty() {
            key += &format!("{group}/");
        }
        key += &resource;
        if !sub.is_empty() {
            key += &format!("/{sub}");
        }
        *out.entry(key).or_default() += value.parse::<f64>().unwrap_or(0.0);
    }
    Ok(out)
}

fn delta(after: &BTreeMap<String, f64>, before: &BTreeMap<String, f64>) -> BTreeMap<String, f64> {
    after
        .iter()
        .map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0.0)))
        .filter(|(_, v)| *v > 0.0)
        .collect()
}

/// The API server alone: a fresh control plane, the Services, no controller; what the creates
/// cost in writes (the Services, their EndpointSlices, ClusterIPs...).
async fn baseline(n: usize, concurrency: usize) -> Result<(Duration, BTreeMap<String, f64>)> {
    let cluster = Cluster::start().context("starting the baseline control plane")?;
    let client = cluster.client().await?;
    let api: Api<Service> = Api::namespaced(client.clone(), "default");
    eprintln!("baseline: creating {n} Services with no controller");
    let before = writes(&client).await?;
    let took = create_all(&api, n, concurrency).await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let cost = delta(&writes(&client).await?, &before);
    eprintln!("baseline: created in {:.2} s", took.as_secs_f64());
    Ok((took, cost))
}

struct Figures {
    system: System,
    created: Duration,
    assigned: Duration,
    distinct: usize,
    writes: BTreeMap<String, f64>,
    rss_idle: f64,
    rss_after: f64,
    hwm: f64,
    restart: Option<Restart>,
}

struct Restart {
    changed: usize,
    lost: usize,
    ready: Duration,
}

async fn run(system: System, args: &Args, floor: &BTreeMap<String, f64>) -> Result<Figures> {
    let n = args.services;
    eprintln!("== {}", system.name());
    let cluster = Cluster::start().context("starting the control plane")?;
    prepare(system, &cluster)?;
    let running = cluster.spawn("controller", controller(system)?)?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let pid = running.pid();
    let (rss_idle, _) = memory::mib(pid)?;
    let client = cluster.client().await?;
    let api: Api<Service> = Api::namespaced(client.clone(), "default");
    let before = writes(&client).await?;
    eprintln!("creating {n} Services, {} at a time", args.concurrency);
    let start = Instant::now();
    let created = create_all(&api, n, args.concurrency).await?;
    eprintln!("created in {:.2} s", created.as_secs_f64());
    let assigned = until_assigned(&api, n, start, Duration::from_secs(args.timeout)).await?;
    // Writes that trail the last address (Events, advertisements) count too.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (rss_after, hwm) = memory::mib(pid)?;
    let all = delta(&writes(&client).await?, &before);
    let writes: BTreeMap<String, f64> = all
        .iter()
        .map(|(k, v)| (k.clone(), v - floor.get(k).copied().unwrap_or(0.0)))
        .filter(|(_, v)| *v >= 0.5)
        .collect();
    let shown = addresses(&api).await?;
    let mut ips = BTreeSet::new();
    for ip in shown.values().flatten() {
        if !ips.insert(ip.clone()) {
            bail!("{}: {ip} given twice", system.name());
        }
    }
    let restart = if args.no_restart {
        None
    } else {
        drop(running);
        eprintln!("controller killed; starting it again");
        let t = Instant::now();
        let _again = cluster.spawn("controller-2", controller(system)?)?;
        // Ready: a Service created now gets an address.
        api.create(&PostParams::default(), &service("probe")?)
            .await?;
        let ready = loop {
            let p = api.get("probe").await?;
            if !ingress(&p).is_empty() {
                break t.elapsed();
            }
            if t.elapsed() > Duration::from_secs(args.timeout) {
                bail!(
                    "{}: no address for a new Service after restart",
                    system.name()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        // Whatever the restarted controller would rewrite, it has had the time to.
        tokio::time::sleep(Duration::from_secs(10)).await;
        let after = addresses(&api).await?;
        let mut changed = 0;
        let mut lost = 0;
        for (name, ips) in &shown {
            match after.get(name) {
                Some(now) if now == ips => {}
                Some(now) if now.is_empty() => lost += 1,
                _ => changed += 1,
            }
        }
        Some(Restart {
            changed,
            lost,
            ready,
        })
    };
    Ok(Figures {
        system,
        created,
        assigned,
        distinct: ips.len(),
        writes,
        rss_idle,
        rss_after,
        hwm,
        restart,
    })
}

/// The command that starts the system's controller: one replica, no leader election, no
/// webhooks, no fixed ports.
fn controller(system: System) -> Result<Command> {
    Ok(match system {
        System::Sart => {
            let mut cmd = Command::new(sartd());
            cmd.args([
                "controller",
                "--no-leader-election",
                "--no-webhook",
                "--http-bind=127.0.0.1:0",
                "--mode=lb",
                "--level=warn",
            ]);
            cmd
        }
        System::Metallb => metallb::controller(None)?,
    })
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let args = Args::parse();
    if args.systems.contains(&System::Sart) && !sartd().exists() {
        bail!(
            "{} not found: cargo build --release -p sartd",
            sartd().display()
        );
    }
    if args.systems.contains(&System::Metallb) {
        eprintln!(
            "building MetalLB if needed: {}",
            metallb::build(None)?.display()
        );
    }
    let (floor_time, floor) = baseline(args.services, args.concurrency).await?;
    let mut all = Vec::new();
    for s in &args.systems {
        all.push(run(*s, &args, &floor).await?);
    }
    let n = args.services;
    println!(
        "## LoadBalancer IPAM: {n} Services created at once ({} in flight)",
        args.concurrency
    );
    println!();
    let head: Vec<&str> = all.iter().map(|f| f.system.name()).collect();
    println!("| figure | {} |", head.join(" | "));
    println!("|---|{}", "---|".repeat(all.len()));
    let row = |what: &str, f: &dyn Fn(&Figures) -> String| {
        let cells: Vec<String> = all.iter().map(f).collect();
        println!("| {what} | {} |", cells.join(" | "));
    };
    row("all created (API server)", &|f| {
        format!("{:.2} s", f.created.as_secs_f64())
    });
    row("all have an address, from the first create", &|f| {
        format!("**{:.2} s**", f.assigned.as_secs_f64())
    });
    row("… from the last create", &|f| {
        format!(
            "{:.2} s",
            (f.assigned.saturating_sub(f.created)).as_secs_f64()
        )
    });
    row("distinct addresses", &|f| f.distinct.to_string());
    row("API writes per Service (less the API server's own)", &|f| {
        format!("**{:.2}**", f.writes.values().sum::<f64>() / n as f64)
    });
    row("… of which", &|f| {
        f.writes
            .iter()
            .map(|(k, v)| format!("{k} {:.2}", v / n as f64))
            .collect::<Vec<_>>()
            .join("; ")
    });
    row("controller RSS idle → after (peak)", &|f| {
        format!("{:.1} → {:.1} MiB ({:.1})", f.rss_idle, f.rss_after, f.hwm)
    });
    row("… per Service", &|f| {
        format!("{:.1} KB", (f.rss_after - f.rss_idle) * 1024.0 / n as f64)
    });
    if all.iter().all(|f| f.restart.is_some()) {
        row(
            "after a restart (SIGKILL): addresses changed / lost",
            &|f| {
                f.restart
                    .as_ref()
                    .map(|r| format!("{} / {}", r.changed, r.lost))
                    .unwrap_or_default()
            },
        );
        row("… a new Service has an address after", &|f| {
            f.restart
                .as_ref()
                .map(|r| format!("{:.2} s", r.ready.as_secs_f64()))
                .unwrap_or_default()
        });
    }
    println!();
    println!(
        "API server alone (no controller): all {n} created in {:.2} s; its own writes per Service: {}",
        floor_time.as_secs_f64(),
        floor
            .iter()
            .map(|(k, v)| format!("{k} {:.2}", v / n as f64))
            .collect::<Vec<_>>()
            .join("; ")
    );
    Ok(())
}
