//! Scenarios on a fresh `make lab` (e2e/lab/lab, two nodes, debug binaries): pods and the VIP
//! reach the client through BGP; pod to pod across nodes through the router; a Service with
//! externalTrafficPolicy Local and a requested address is announced only by the node with its
//! endpoint, withdrawn when the endpoint goes and announced again when it returns.
//! Needs root and the built binaries (`make test` builds them first).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn run(cmd: &mut Command) -> (bool, String) {
    let out = cmd.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// A lab in its own directory, torn down on drop.
struct Lab {
    dir: PathBuf,
}

impl Lab {
    fn up(nodes: u32) -> Lab {
        let dir = std::env::temp_dir().join(format!("sart-lab-test-{}", std::process::id()));
        let lab = Lab { dir };
        let (ok, out) = run(Command::new(repo().join("e2e/lab/lab")).args([
            "up",
            "--nodes",
            &nodes.to_string(),
            "--dir",
            &lab.dir.to_string_lossy(),
            "--bin",
            &repo().join("target/debug").to_string_lossy(),
        ]));
        assert!(ok, "lab up failed:\n{out}\n{}", lab.logs());
        // The summary shows every pod and the VIP answering the client.
        assert!(
            out.contains("client -> VIP http://198.18.200.0/ : 'app-"),
            "{out}"
        );
        assert_eq!(
            out.matches("client -> pod ").count(),
            nodes as usize,
            "{out}"
        );
        lab
    }

    fn logs(&self) -> String {
        let mut s = String::new();
        if let Ok(rd) = std::fs::read_dir(self.dir.join("logs")) {
            for e in rd.flatten() {
                let p = e.path();
                if p.extension().is_some_and(|x| x == "log") {
                    let text = std::fs::read_to_string(&p).unwrap_or_default();
                    let tail: Vec<&str> = text.lines().rev().take(15).collect();
                    s.push_str(&format!("----- {}\n", p.display()));
                    for l in tail.into_iter().rev() {
                        s.push_str(l);
                        s.push('\n');
                    }
                }
            }
        }
        s
    }

    fn kubectl(&self, args: &[&str]) -> String {
        let kc = self.dir.join("cluster/kubeconfig");
        let (ok, out) = run(Command::new("kubectl")
            .arg(format!("--kubeconfig={}", kc.display()))
            .args(args));
        assert!(ok, "kubectl {}: {out}", args.join(" "));
        out
    }

    fn kubectl_stdin(&self, args: &[&str], input: &str) {
        use std::io::Write;
        let kc = self.dir.join("cluster/kubeconfig");
        let mut child = Command::new("kubectl")
            .arg(format!("--kubeconfig={}", kc.display()))
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "kubectl {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `show ip route A.B.C.D/32` at the router: the next hops.
    fn router_next_hops(&self, prefix: &str) -> Vec<String> {
        let (_, out) = run(Command::new("vtysh")
            .arg("--vty_socket")
            .arg(self.dir.join("router"))
            .args(["-c", &format!("show ip route {prefix} json")]));
        let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_default();
        v[prefix]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|r| r["protocol"] == "bgp" && r["selected"] == true)
            .flat_map(|r| r["nexthops"].as_array().cloned().unwrap_or_default())
            .filter_map(|h| h["ip"].as_str().map(str::to_owned))
            .collect()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.logs());
        }
        let _ = run(Command::new(repo().join("e2e/lab/lab")).args([
            "down",
            "--dir",
            &self.dir.to_string_lossy(),
        ]));
    }
}

fn get(ns: &str, ip: &str) -> Option<String> {
    let (ok, out) = run(Command::new("ip").args([
        "netns",
        "exec",
        ns,
        "curl",
        "-s",
        "-m",
        "3",
        &format!("http://{ip}/"),
    ]));
    ok.then(|| out.trim().to_owned())
}

fn eventually(what: &str, timeout: Duration, mut f: impl FnMut() -> Result<(), String>) {
    let deadline = Instant::now() + timeout;
    loop {
        match f() {
            Ok(()) => return,
            Err(e) if Instant::now() > deadline => panic!("{what}: not after {timeout:?}: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(250)),
        }
    }
}

const CLIENT: &str = "sart-lab-client";
const LOCAL_VIP: &str = "198.18.201.20";

fn local_pod(node: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: local-web, labels: {{app: local-web}}}}\nspec:\n  nodeName: {node}\n  containers: [{{name: web, image: lab/none, ports: [{{containerPort: 80}}]}}]\n"
    )
}

#[test]
fn lab_pods_vip_pod_to_pod_and_etp_local() {
    assert!(interop::is_root(), "needs root for network namespaces");
    let lab = Lab::up(2);

    // What real clusters get (manifests/lb, cni, dual, and the samples) is accepted by a real
    // API server: nothing is created, every object is validated and admitted.
    for overlay in ["lb", "cni", "dual", "sample"] {
        let dir = repo().join("manifests").join(overlay);
        lab.kubectl(&["apply", "--dry-run=server", "-k", &dir.to_string_lossy()]);
    }

    // Pod to pod across nodes: from the pod on node 1 (its own namespace) to the one on node 2.
    let pods = lab.kubectl(&[
        "get",
        "pods",
        "-l",
        "app=app-cluster",
        "-o",
        "jsonpath={range .items[*]}{.metadata.uid} {.spec.nodeName} {.status.podIP} {.metadata.name}{\"\\n\"}{end}",
    ]);
    let rows: Vec<Vec<&str>> = pods.lines().map(|l| l.split(' ').collect()).collect();
    let on = |node: &str| rows.iter().find(|r| r[1] == node).unwrap().clone();
    let (a, b) = (on("sart-lab-node1"), on("sart-lab-node2"));
    let a_ns = format!("lab-{}-{}", a[1], &a[0][..8]);
    assert_eq!(
        get(&a_ns, b[2]).as_deref(),
        Some(b[3]),
        "pod on node1 -> pod on node2"
    );

    // ETP Local with a requested address from the second pool: announced by node 1 only.
    lab.kubectl_stdin(&["apply", "-f", "-"], &format!(
        "{}---\napiVersion: v1\nkind: Service\nmetadata:\n  name: local-svc\n  annotations:\n    sart.terassyi.net/addresspool: non-default-lb-pool\n    sart.terassyi.net/loadBalancerIPs: \"{LOCAL_VIP}\"\nspec:\n  type: LoadBalancer\n  externalTrafficPolicy: Local\n  selector: {{app: local-web}}\n  ports: [{{port: 80, targetPort: 80}}]\n",
        local_pod("sart-lab-node1")
    ));
    let prefix = format!("{LOCAL_VIP}/32");
    eventually(
        "the local VIP via node 1 only",
        Duration::from_secs(60),
        || match lab.router_next_hops(&prefix).as_slice() {
            [one] if one == "198.18.1.2" => Ok(()),
            other => Err(format!("{other:?}")),
        },
    );
    eventually(
        "the local VIP answers",
        Duration::from_secs(30),
        || match get(CLIENT, LOCAL_VIP) {
            Some(body) if body == "local-web" => Ok(()),
            other => Err(format!("{other:?}")),
        },
    );
    // The endpoint goes: the VIP is withdrawn; it comes back on node 2: announced from there.
    lab.kubectl(&["delete", "pod", "local-web", "--wait=true"]);
    eventually(
        "the local VIP withdrawn",
        Duration::from_secs(60),
        || match lab.router_next_hops(&prefix).as_slice() {
            [] => Ok(()),
            other => Err(format!("{other:?}")),
        },
    );
    lab.kubectl_stdin(&["apply", "-f", "-"], &local_pod("sart-lab-node2"));
    eventually(
        "the local VIP via node 2 only",
        Duration::from_secs(60),
        || match lab.router_next_hops(&prefix).as_slice() {
            [one] if one == "198.18.2.2" => Ok(()),
            other => Err(format!("{other:?}")),
        },
    );
    eventually(
        "the local VIP answers again",
        Duration::from_secs(30),
        || match get(CLIENT, LOCAL_VIP) {
            Some(body) if body == "local-web" => Ok(()),
            other => Err(format!("{other:?}")),
        },
    );
    let svc = lab.kubectl(&[
        "get",
        "svc",
        "local-svc",
        "-o",
        "jsonpath={.status.loadBalancer.ingress[0].ip}",
    ]);
    assert_eq!(svc.trim(), LOCAL_VIP);

    // Graceful restart: node 2's speaker and agent crash and come back (the agent configures
    // the speaker again). The router keeps node 2's routes meanwhile: every request to the VIP
    // whose only endpoint is on node 2 succeeds, before, during and after.
    let stop = Arc::new(AtomicBool::new(false));
    let prober = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let (mut sent, mut failed) = (0u32, 0u32);
            while !stop.load(Ordering::Relaxed) {
                sent += 1;
                if get(CLIENT, LOCAL_VIP).as_deref() != Some("local-web") {
                    failed += 1;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            (sent, failed)
        })
    };
    std::thread::sleep(Duration::from_millis(500));
    let (ok, out) = run(Command::new(repo().join("e2e/lab/lab")).args([
        "restart",
        "sart-lab-node2",
        "--what",
        "sartd-bgp,sartd-agent",
        "--down-for",
        "2",
        "--dir",
        &lab.dir.to_string_lossy(),
    ]));
    assert!(ok, "{out}");
    // Back: the session is Established again (the agent configured the new speaker) ...
    eventually(
        "node 2's BGPPeer Established again",
        Duration::from_secs(60),
        || {
            let s = lab.kubectl(&[
            "get",
            "bgppeers",
            "-o",
            "jsonpath={range .items[*]}{.spec.nodeBGPRef}={.status.conditions[-1:].status}{\"\\n\"}{end}",
        ]);
            let speaker =
                std::fs::read_to_string(lab.dir.join("logs/sart-lab-node2-sartd-bgp.log"))
                    .unwrap_or_default();
            // The restarted speaker's own log says so (the BGPPeer may not have noticed the gap).
            if s.lines().any(|l| l == "sart-lab-node2=Established")
                && speaker.matches("session established").count() >= 2
            {
                Ok(())
            } else {
                Err(s)
            }
        },
    );
    std::thread::sleep(Duration::from_secs(3));
    stop.store(true, Ordering::Relaxed);
    let (sent, failed) = prober.join().unwrap();
    eprintln!("VIP requests across node 2's speaker+agent restart: {failed} of {sent} failed");
    assert!(sent > 20, "{sent}");
    assert_eq!(
        failed,
        0,
        "requests failed across the restart\n{}",
        lab.logs()
    );
    // ... and the route is still there, via node 2 only.
    assert_eq!(
        lab.router_next_hops(&prefix),
        vec!["198.18.2.2".to_string()]
    );

    // The controller crashes and comes back: no Service changes its address.
    let vips = || {
        lab.kubectl(&[
            "get",
            "svc",
            "-o",
            "jsonpath={range .items[*]}{.metadata.name}={.status.loadBalancer.ingress[0].ip}{\"\\n\"}{end}",
        ])
    };
    let before = vips();
    assert!(before.contains("app-svc-cluster=198.18.200.0"), "{before}");
    let (ok, out) = run(Command::new(repo().join("e2e/lab/lab")).args([
        "restart",
        "controller",
        "--dir",
        &lab.dir.to_string_lossy(),
    ]));
    assert!(ok, "{out}");
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(
        vips(),
        before,
        "addresses changed across a controller restart"
    );
    assert_eq!(get(CLIENT, LOCAL_VIP).as_deref(), Some("local-web"));

    // A second pod pool, chosen by a namespace's annotation and by a pod's; and a static
    // address in node 1's block of the default pool.
    let blocks = lab.kubectl(&[
        "get",
        "addressblocks",
        "-o",
        "jsonpath={range .items[*]}{.spec.nodeRef} {.spec.poolRef} {.spec.cidr}{\"\\n\"}{end}",
    ]);
    let cidr1 = blocks
        .lines()
        .find(|l| l.starts_with("sart-lab-node1 default-pod-pool "))
        .and_then(|l| l.split(' ').nth(2))
        .unwrap_or_else(|| panic!("no default-pool block of node 1: {blocks}"))
        .to_owned();
    let net: ipnet::Ipv4Net = cidr1.parse().unwrap();
    let static_ip = net.hosts().last().unwrap().to_string();
    lab.kubectl_stdin(
        &["apply", "-f", "-"],
        &format!(
            "apiVersion: sart.terassyi.net/v1alpha2\nkind: AddressPool\nmetadata: {{name: tenant-pool}}\nspec: {{cidr: 100.65.0.0/24, type: pod, blockSize: 28}}\n---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: tenant\n  annotations: {{sart.terassyi.net/addresspool: tenant-pool}}\n---\napiVersion: v1\nkind: Pod\nmetadata: {{name: by-ns, namespace: tenant}}\nspec:\n  nodeName: sart-lab-node1\n  containers: [{{name: web, image: lab/none}}]\n---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: by-pod\n  annotations: {{sart.terassyi.net/addresspool: tenant-pool}}\nspec:\n  nodeName: sart-lab-node2\n  containers: [{{name: web, image: lab/none}}]\n---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: static\n  annotations: {{sart.terassyi.net/ips: \"{static_ip}\"}}\nspec:\n  nodeName: sart-lab-node1\n  containers: [{{name: web, image: lab/none}}]\n"
        ),
    );
    for (ns, pod, want) in [
        ("tenant", "by-ns", "100.65.0."),
        ("default", "by-pod", "100.65.0."),
        ("default", "static", static_ip.as_str()),
    ] {
        eventually(
            &format!("{ns}/{pod} answers from {want}"),
            Duration::from_secs(60),
            || {
                let ip = lab.kubectl(&[
                    "-n",
                    ns,
                    "get",
                    "pod",
                    pod,
                    "-o",
                    "jsonpath={.status.podIP}",
                ]);
                let ip = ip.trim();
                if !ip.starts_with(want) {
                    return Err(format!("podIP {ip:?}"));
                }
                match get(CLIENT, ip) {
                    Some(body) if body == pod => Ok(()),
                    other => Err(format!("{ip}: {other:?}")),
                }
            },
        );
    }

    // Node 2 is deleted: its blocks are released and its routes leave the router.
    lab.kubectl(&["delete", "node", "sart-lab-node2", "--wait=false"]);
    eventually("node 2's blocks released", Duration::from_secs(90), || {
        let b = lab.kubectl(&[
            "get",
            "addressblocks",
            "-o",
            "jsonpath={range .items[*]}{.spec.nodeRef}{\"\\n\"}{end}",
        ]);
        if b.lines().any(|l| l == "sart-lab-node2") {
            Err(b)
        } else {
            Ok(())
        }
    });
    eventually(
        "no route via node 2 at the router",
        Duration::from_secs(60),
        || {
            let (_, out) = run(Command::new("vtysh")
                .arg("--vty_socket")
                .arg(lab.dir.join("router"))
                .args(["-c", "show ip route bgp"]));
            if out.contains("via 198.18.2.2") {
                Err(out)
            } else {
                Ok(())
            }
        },
    );
}
