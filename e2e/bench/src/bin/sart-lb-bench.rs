//! LoadBalancer IPAM at scale: a fresh control plane (e2e/controlplane), `sartd controller` as a
//! process, N `type: LoadBalancer` Services created at once (64 requests in flight), and the
//! time until every one shows an ingress address, with the controller's memory. Not a test: the
//! figures go to docs/benchmarks.md with the command that made them.
//!
//! ```sh
//! cargo build --release -p sartd -p sart-bench
//! SARTD_BIN=target/release/sartd target/release/sart-lb-bench [--services 10000]
//! ```

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use clap::Parser;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, ListParams, PostParams};
use serde_json::json;

#[derive(Parser)]
#[command(
    name = "sart-lb-bench",
    about = "LoadBalancer IPAM at scale against a real API server"
)]
struct Args {
    /// Services created at once.
    #[arg(long, default_value_t = 10_000)]
    services: usize,
    /// Requests in flight while creating them.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 600)]
    timeout: u64,
    /// First create the same Services in another fresh control plane with no controller: the
    /// time the API server alone needs, the floor under the controller's figure.
    #[arg(long)]
    baseline: bool,
}

/// Creates Services lb00000.. with `concurrency` requests in flight; how long it took.
async fn create_all(api: &Api<Service>, n: usize, concurrency: usize) -> Result<Duration> {
    let start = Instant::now();
    futures::stream::iter(0..n)
        .map(|i| {
            let api = api.clone();
            async move {
                let svc: Service = serde_json::from_value(json!({
                    "metadata": {"name": format!("lb{i:05}")},
                    // The NodePort range holds 2,768 ports: a LoadBalancer needs none.
                    "spec": {"type": "LoadBalancer", "ports": [{"port": 80}],
                             "allocateLoadBalancerNodePorts": false,
                             "selector": {"app": format!("lb{i:05}")}}
                }))?;
                api.create(&PostParams::default(), &svc).await?;
                anyhow::Ok(())
            }
        })
        .buffer_unordered(concurrency)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(start.elapsed())
}

/// The API server alone: a fresh control plane, the Services, no controller.
async fn baseline(n: usize, concurrency: usize) -> Result<Duration> {
    let cluster = testkube::Cluster::start().context("starting the baseline control plane")?;
    let api: Api<Service> = Api::namespaced(cluster.client().await?, "default");
    eprintln!("baseline: creating {n} Services with no controller");
    let took = create_all(&api, n, concurrency).await?;
    eprintln!("baseline: created in {:.2} s", took.as_secs_f64());
    Ok(took)
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn sartd() -> PathBuf {
    std::env::var_os("SARTD_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target/release/sartd"))
}

/// VmRSS and VmHWM of a process, in MiB.
fn memory(pid: u32) -> Result<(f64, f64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| -> Result<f64> {
        let line = status
            .lines()
            .find(|l| l.starts_with(name))
            .with_context(|| format!("{name} missing"))?;
        let kb: f64 = line
            .split_whitespace()
            .nth(1)
            .context("no value")?
            .parse()?;
        Ok(kb / 1024.0)
    };
    Ok((field("VmRSS:")?, field("VmHWM:")?))
}

async fn assigned(api: &Api<Service>) -> Result<usize> {
    let mut n = 0;
    let mut lp = ListParams::default().limit(2000);
    loop {
        let page = api.list(&lp).await?;
        n += page
            .items
            .iter()
            .filter(|s| {
                s.status
                    .as_ref()
                    .and_then(|st| st.load_balancer.as_ref())
                    .and_then(|lb| lb.ingress.as_ref())
                    .is_some_and(|i| !i.is_empty())
            })
            .count();
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(c) => lp = lp.continue_token(&c),
            None => return Ok(n),
        }
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let args = Args::parse();
    let bin = sartd();
    if !bin.exists() {
        bail!(
            "{} not found: cargo build --release -p sartd",
            bin.display()
        );
    }
    let floor = match args.baseline {
        true => Some(baseline(args.services, args.concurrency).await?),
        false => None,
    };
    let t = Instant::now();
    let cluster = testkube::Cluster::start().context("starting the control plane")?;
    eprintln!("control plane up in {:.1} s", t.elapsed().as_secs_f64());
    cluster.install_crds(&repo().join("manifests/crd"))?;
    let pool = cluster.dir().join("pool.yaml");
    std::fs::write(
        &pool,
        "apiVersion: sart.terassyi.net/v1alpha2\nkind: AddressPool\nmetadata: {name: bench}\nspec: {cidr: 198.18.64.0/18, type: service, autoAssign: true}\n",
    )?;
    cluster.kubectl_ok(&["apply", "-f", &pool.to_string_lossy()])?;

    // Stopped when it goes out of scope, however the benchmark ends.
    let controller = cluster
        .sartd_controller(&bin, "lb", "warn")
        .context("starting sartd controller")?;
    let pid = controller.pid();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (idle_rss, _) = memory(pid)?;

    let client = cluster.client().await?;
    let api: Api<Service> = Api::namespaced(client, "default");
    let n = args.services;
    eprintln!("creating {n} Services, {} at a time", args.concurrency);
    let start = Instant::now();
    let created = create_all(&api, n, args.concurrency).await?;
    eprintln!("created in {:.2} s", created.as_secs_f64());
    let mut last = 0;
    let done = loop {
        let k = assigned(&api).await?;
        if k != last {
            eprintln!(
                "  {:6.2} s: {k} with an address",
                start.elapsed().as_secs_f64()
            );
            last = k;
        }
        if k >= n {
            break start.elapsed();
        }
        if start.elapsed() > Duration::from_secs(args.timeout) {
            bail!(
                "only {k} of {n} Services have an address after {} s",
                args.timeout
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let (rss, hwm) = memory(pid)?;
    // Every address distinct.
    let mut ips = BTreeSet::new();
    for s in api.list(&ListParams::default()).await?.items {
        for i in s
            .status
            .and_then(|s| s.load_balancer)
            .and_then(|l| l.ingress)
            .unwrap_or_default()
        {
            if let Some(ip) = i.ip
                && !ips.insert(ip.clone())
            {
                bail!("{ip} given twice");
            }
        }
    }
    println!(
        "## LoadBalancer IPAM: {n} Services created at once ({} in flight)",
        args.concurrency
    );
    println!();
    println!("| what | figure |");
    println!("|---|---|");
    println!(
        "| all {n} created (API server) | {:.2} s |",
        created.as_secs_f64()
    );
    println!(
        "| all {n} have an address, from the first create | **{:.2} s** |",
        done.as_secs_f64()
    );
    println!("| distinct addresses | {} |", ips.len());
    if let Some(f) = floor {
        println!(
            "| baseline: all {n} created, no controller (another fresh API server) | {:.2} s (controller run {:.2}× of it) |",
            f.as_secs_f64(),
            done.as_secs_f64() / f.as_secs_f64()
        );
    }
    println!("| controller RSS idle → after | {idle_rss:.1} → {rss:.1} MiB (peak {hwm:.1} MiB) |");
    drop(controller);
    Ok(())
}
