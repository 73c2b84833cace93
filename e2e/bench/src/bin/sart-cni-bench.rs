//! CNI ADD and DEL latency on one node: `sart-cni` (with the agent, the speaker, the controller
//! and a real API server behind it) side by side with Debian's `ptp` + `host-local`, at 1, 10 and
//! 100 pods at once, in the same run. Each plugin is run as a runtime runs it: the CNI_*
//! environment and the configuration on stdin, spawned straight from a thread that is already
//! in the node's network namespace (no `ip netns exec` in the timed path). Not a test: the
//! figures go to docs/benchmarks.md with the command that made them.
//!
//! ```sh
//! cargo build --release -p sartd -p sartcni -p sart-bench
//! SARTD_BIN=target/release/sartd target/release/sart-cni-bench [--samples 200]
//! ```

use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Barrier, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use clap::Parser;
use interop::Netns;
use interop::sartd::sartd_binary;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, PostParams};
use serde_json::{Value, json};
use testkube::node::NodeLab;

#[derive(Parser)]
#[command(
    name = "sart-cni-bench",
    about = "CNI ADD/DEL latency: sart-cni vs ptp+host-local"
)]
struct Args {
    /// Pods at once, per level.
    #[arg(long, value_delimiter = ',', default_value = "1,10,100")]
    concurrency: Vec<usize>,
    /// ADDs (and DELs) measured per level and plugin, at least.
    #[arg(long, default_value_t = 200)]
    samples: usize,
}

const NODE: &str = "bench1";

struct Plugin {
    name: &'static str,
    bin: PathBuf,
    conf: Value,
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Runs one plugin command from the calling thread's namespace; the wall time.
fn run(p: &Plugin, cmd: &str, id: &str, netns: &str, pod: &str) -> Result<Duration> {
    use std::io::Write;
    let start = Instant::now();
    let mut child = Command::new(&p.bin)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("CNI_COMMAND", cmd)
        .env("CNI_CONTAINERID", id)
        .env("CNI_NETNS", netns)
        .env("CNI_IFNAME", "eth0")
        .env(
            "CNI_ARGS",
            format!("IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME={pod}"),
        )
        .env("CNI_PATH", "/usr/lib/cni")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("running {}", p.bin.display()))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(p.conf.to_string().as_bytes())?;
    }
    let out = child.wait_with_output()?;
    let took = start.elapsed();
    if !out.status.success() {
        bail!(
            "{} {cmd} {id}: {}",
            p.name,
            String::from_utf8_lossy(&out.stdout)
        );
    }
    Ok(took)
}

fn percentile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// One level: `c` pods at once, ADD then DEL, rounds until `samples` of each. Every pod gets a
/// fresh network namespace, as every sandbox does (made and removed outside the timed part).
fn level(
    p: &Plugin,
    node: &Netns,
    c: usize,
    samples: usize,
) -> Result<(Vec<Duration>, Vec<Duration>)> {
    let rounds = samples.div_ceil(c);
    let node_ns = std::fs::File::open(format!("/run/netns/{}", node.name()))?;
    let (adds, dels) = (Mutex::new(Vec::new()), Mutex::new(Vec::new()));
    let errors = Mutex::new(Vec::<String>::new());
    for round in 0..rounds {
        let pods: Vec<Netns> = (0..c)
            .map(|i| Netns::new(&format!("b{i}")))
            .collect::<Result<_, _>>()?;
        let barrier = Barrier::new(c);
        std::thread::scope(|s| {
            for (i, pod_ns) in pods.iter().take(c).enumerate() {
                let (barrier, adds, dels, errors, node_ns) =
                    (&barrier, &adds, &dels, &errors, &node_ns);
                s.spawn(move || {
                    // This thread, and what it spawns, live in the node's namespace.
                    if let Err(e) = rustix::thread::move_into_link_name_space(
                        node_ns.as_fd(),
                        Some(rustix::thread::LinkNameSpaceType::Network),
                    ) {
                        errors.lock().map(|mut v| v.push(e.to_string())).ok();
                        return;
                    }
                    let id = format!("{}-{c}-{round}-{i}", p.name);
                    let netns = format!("/run/netns/{}", pod_ns.name());
                    let pod = format!("bench-{i}");
                    barrier.wait();
                    match run(p, "ADD", &id, &netns, &pod) {
                        Ok(t) => adds.lock().map(|mut v| v.push(t)).ok(),
                        Err(e) => errors.lock().map(|mut v| v.push(e.to_string())).ok(),
                    };
                    barrier.wait();
                    match run(p, "DEL", &id, &netns, &pod) {
                        Ok(t) => dels.lock().map(|mut v| v.push(t)).ok(),
                        Err(e) => errors.lock().map(|mut v| v.push(e.to_string())).ok(),
                    };
                });
            }
        });
    }
    let errors = errors.into_inner().unwrap_or_default();
    if let Some(e) = errors.first() {
        bail!("{} of the operations failed, e.g. {e}", errors.len());
    }
    let mut a = adds.into_inner().unwrap_or_default();
    let mut d = dels.into_inner().unwrap_or_default();
    a.sort();
    d.sort();
    Ok((a, d))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let args = Args::parse();
    let sartd = sartd_binary();
    let cni = sartd.with_file_name("sart-cni");
    for b in [&sartd, &cni] {
        if !b.exists() {
            bail!(
                "{} not found: cargo build --release -p sartd -p sartcni",
                b.display()
            );
        }
    }
    let most = args.concurrency.iter().copied().max().unwrap_or(1);
    let t = Instant::now();
    let cluster = testkube::Cluster::start().context("starting the control plane")?;
    cluster.install_crds(&repo().join("manifests/crd"))?;
    let lab = NodeLab::start(
        &cluster,
        NODE,
        99,
        65000,
        65040,
        &["--mode=cni", "--level=warn"],
    )?;
    let _controller = cluster
        .sartd_controller(&sartd, "cni", "warn")
        .context("starting sartd controller")?;
    let client = cluster.client().await?;
    lab.register(&client).await?;
    let manifests = cluster.dir().join("bench.yaml");
    std::fs::write(
        &manifests,
        format!(
            "{}---\napiVersion: sart.terassyi.net/v1alpha2\nkind: AddressPool\nmetadata: {{name: bench-pods}}\nspec: {{cidr: 198.18.128.0/17, type: pod, blockSize: 24, autoAssign: true}}\n",
            lab.cluster_bgp()
        ),
    )?;
    cluster.kubectl_ok(&["apply", "-f", &manifests.to_string_lossy()])?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    for i in 0..most {
        let p: Pod = serde_json::from_value(json!({
            "metadata": {"name": format!("bench-{i}")},
            "spec": {"nodeName": NODE, "containers": [{"name": "c", "image": "none"}]}
        }))?;
        pods.create(&PostParams::default(), &p).await?;
    }
    let host_local = cluster.dir().join("host-local");
    let plugins = [
        Plugin {
            name: "sart",
            bin: cni.clone(),
            conf: json!({"cniVersion": "1.0.0", "name": "sart-network", "type": "sart-cni",
                "endpoint": lab.cni_endpoint(), "timeout": 60}),
        },
        Plugin {
            name: "ptp",
            bin: PathBuf::from("/usr/lib/cni/ptp"),
            conf: json!({"cniVersion": "1.0.0", "name": "bench-ptp", "type": "ptp",
                "ipam": {"type": "host-local", "subnet": "198.19.0.0/16",
                         "dataDir": host_local, "routes": [{"dst": "0.0.0.0/0"}]}}),
        },
    ];
    // Ready (a session up), and one ADD/DEL each to warm up (sart's first block).
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let warm = level(&plugins[0], &lab.node_ns, 1, 1);
        if warm.is_ok() {
            break;
        }
        if Instant::now() > deadline {
            warm?;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    level(&plugins[1], &lab.node_ns, 1, 1)?;
    eprintln!("set up in {:.1} s", t.elapsed().as_secs_f64());

    println!("| pods at once | plugin | ADD p50 | ADD p99 | DEL p50 | DEL p99 |");
    println!("|---|---|---|---|---|---|");
    for &c in &args.concurrency {
        let mut rows = Vec::new();
        for p in &plugins {
            let (a, d) = level(p, &lab.node_ns, c, args.samples)?;
            rows.push((
                p.name,
                percentile(&a, 0.5),
                percentile(&a, 0.99),
                percentile(&d, 0.5),
                percentile(&d, 0.99),
            ));
        }
        for (name, a50, a99, d50, d99) in &rows {
            println!(
                "| {c} | {name} | {:.1} ms | {:.1} ms | {:.1} ms | {:.1} ms |",
                ms(*a50),
                ms(*a99),
                ms(*d50),
                ms(*d99)
            );
        }
        if let [s, p] = rows.as_slice() {
            println!(
                "| {c} | sart / ptp | {:.2}× | {:.2}× | {:.2}× | {:.2}× |",
                ms(s.1) / ms(p.1),
                ms(s.2) / ms(p.2),
                ms(s.3) / ms(p.3),
                ms(s.4) / ms(p.4)
            );
        }
    }
    lab.kill_agent();
    Ok(())
}
