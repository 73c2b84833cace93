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
//!   from `kubectl create` returning until the router has the /32 in its RIB.
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

    // Services: each asks for its own address of the second pool (198.18.201.0/24).
    let mut svc = Vec::new();
    for i in 0..args.services {
        let ip = format!("198.18.201.{}", 1 + i % 250);
        let yaml = format!(
            "apiVersion: v1\nkind: Service\nmetadata:\n  name: bench-{i}\n  annotations:\n    sart.terassyi.net/addresspool: non-default-lb-pool\n    sart.terassyi.net/loadBalancerIPs: \"{ip}\"\nspec:\n  type: LoadBalancer\n  selector: {{app: app-cluster}}\n  ports: [{{port: 80, targetPort: 80}}]\n"
        );
        let start = Instant::now();
        lab.kubectl(&["create", "-f", "-"], Some(&yaml))?;
        let prefix = format!("{ip}/32");
        while !lab.router_has(&prefix) {
            if start.elapsed() > Duration::from_secs(30) {
                bail!("Service bench-{i}: no route {prefix} at the router after 30 s");
            }
            sleep(Duration::from_millis(5));
        }
        svc.push(start.elapsed());
    }
    report("Service created -> VIP route at the router", svc);

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
    report("Pod created -> reachable from the client", pods);

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
    report("Link cut -> router stops using the node (BFD)", cuts);
    Ok(())
}
