//! The scenarios of the lab, each on a fresh `e2e/lab/lab up` (two nodes, debug binaries, one
//! lab at a time): pods and VIPs of both families reach the client through BGP; pod to pod
//! across nodes; a second pool by namespace and by pod annotation, and a static pod IP; ETP
//! Local with a requested address follows its endpoint; a shared address; graceful restart of
//! a node's speaker and agent; a controller restart; a node deleted; a link cut found by BFD.
//! Needs root and the built binaries (`make test` builds them first).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
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

/// The lab's namespaces have fixed names: the tests of this binary take turns.
static ONE_LAB_AT_A_TIME: Mutex<()> = Mutex::new(());

/// A lab of its own, torn down on drop.
struct Lab {
    dir: PathBuf,
    // Dropped after `Drop::drop` has torn the lab down: the next test waits for that.
    _turn: MutexGuard<'static, ()>,
}

const CLIENT: &str = "sart-lab-client";
const NODE1: &str = "sart-lab-node1";
const NODE2: &str = "sart-lab-node2";
/// The app Service's addresses: the first of each autoAssign pool.
const VIP4: &str = "198.18.200.0";
const VIP6: &str = "fd00:198:18:200::";

impl Lab {
    fn up(scenario: &str) -> Lab {
        assert!(interop::is_root(), "needs root for network namespaces");
        // A test that failed poisoned the lock; its lab is gone all the same.
        let turn = ONE_LAB_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
        let dir =
            std::env::temp_dir().join(format!("sart-lab-test-{}-{scenario}", std::process::id()));
        let lab = Lab { dir, _turn: turn };
        let t = Instant::now();
        let (ok, out) = run(Command::new(repo().join("e2e/lab/lab")).args([
            "up",
            "--nodes",
            "2",
            "--dir",
            &lab.dir.to_string_lossy(),
            "--bin",
            &repo().join("target/debug").to_string_lossy(),
        ]));
        assert!(ok, "lab up failed:\n{out}\n{}", lab.logs());
        eprintln!("{scenario}: lab up in {:.1} s", t.elapsed().as_secs_f64());
        // The summary shows every pod, on both addresses, and both VIPs answering the client.
        for vip in [format!("http://{VIP4}/"), format!("http://[{VIP6}]/")] {
            assert!(
                out.contains(&format!("client -> VIP {vip} : 'app-")),
                "{out}"
            );
        }
        assert_eq!(out.matches("client -> pod ").count(), 4, "{out}");
        assert_eq!(out.matches(": 'app-").count(), 4 + 6, "{out}");
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

    fn lab(&self, args: &[&str]) {
        let (ok, out) = run(Command::new(repo().join("e2e/lab/lab"))
            .args(args)
            .args(["--dir", &self.dir.to_string_lossy()]));
        assert!(ok, "lab {}: {out}", args.join(" "));
    }

    fn kubectl(&self, args: &[&str]) -> String {
        let (ok, out) = self.try_kubectl(args);
        assert!(ok, "kubectl {}: {out}", args.join(" "));
        out
    }

    fn try_kubectl(&self, args: &[&str]) -> (bool, String) {
        let kc = self.dir.join("cluster/kubeconfig");
        run(Command::new("kubectl")
            .arg(format!("--kubeconfig={}", kc.display()))
            .args(args))
    }

    fn apply(&self, yaml: &str) {
        use std::io::Write;
        let kc = self.dir.join("cluster/kubeconfig");
        let mut child = Command::new("kubectl")
            .arg(format!("--kubeconfig={}", kc.display()))
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
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "kubectl apply: {}\n{yaml}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn vtysh(&self, cmd: &str) -> String {
        run(Command::new("vtysh")
            .arg("--vty_socket")
            .arg(self.dir.join("router"))
            .args(["-c", cmd]))
        .1
    }

    /// The router's selected BGP next hops for `prefix` (`show ip[v6] route PREFIX json`).
    fn router_next_hops(&self, prefix: &str) -> Vec<String> {
        let family = if prefix.contains(':') { "ipv6" } else { "ip" };
        let out = self.vtysh(&format!("show {family} route {prefix} json"));
        let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_default();
        let mut hops: Vec<String> = v[prefix]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|r| r["protocol"] == "bgp" && r["selected"] == true)
            .flat_map(|r| r["nexthops"].as_array().cloned().unwrap_or_default())
            // The BGP next hops, not the link-local hops they resolve through.
            .filter(|h| h["resolver"] != true)
            .filter_map(|h| h["ip"].as_str().map(str::to_owned))
            .collect();
        hops.sort();
        hops.dedup();
        hops
    }

    /// `kubectl get pod` fields of one pod: (uid, node, IPs).
    fn pod(&self, ns: &str, name: &str) -> (String, String, Vec<String>) {
        let out = self.kubectl(&[
            "-n",
            ns,
            "get",
            "pod",
            name,
            "-o",
            "jsonpath={.metadata.uid} {.spec.nodeName} {.status.podIPs[*].ip}",
        ]);
        let mut f = out.split_whitespace().map(str::to_owned);
        let uid = f.next().unwrap_or_default();
        let node = f.next().unwrap_or_default();
        (uid, node, f.collect())
    }

    fn ingress(&self, svc: &str) -> Vec<String> {
        self.kubectl(&[
            "get",
            "svc",
            svc,
            "-o",
            "jsonpath={.status.loadBalancer.ingress[*].ip}",
        ])
        .split_whitespace()
        .map(str::to_owned)
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

fn url(ip: &str, port: u16) -> String {
    if ip.contains(':') {
        format!("http://[{ip}]:{port}/")
    } else {
        format!("http://{ip}:{port}/")
    }
}

/// GET from a namespace: the body, or None.
fn get_port(ns: &str, ip: &str, port: u16) -> Option<String> {
    let (ok, out) = run(Command::new("ip").args([
        "netns",
        "exec",
        ns,
        "curl",
        "-s",
        "-m",
        "3",
        &url(ip, port),
    ]));
    ok.then(|| out.trim().to_owned())
}

fn get(ns: &str, ip: &str) -> Option<String> {
    get_port(ns, ip, 80)
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

fn answers(ns: &str, ip: &str, port: u16, want: &str) -> Result<(), String> {
    match get_port(ns, ip, port) {
        Some(body) if body == want => Ok(()),
        other => Err(format!("{}: {other:?}", url(ip, port))),
    }
}

/// The router's next hops for `prefix` become exactly `want`.
fn routed_via(lab: &Lab, prefix: &str, want: &[&str]) {
    eventually(
        &format!("{prefix} via {want:?} at the router"),
        Duration::from_secs(60),
        || {
            let hops = lab.router_next_hops(prefix);
            if hops == want {
                Ok(())
            } else {
                Err(format!("{hops:?}"))
            }
        },
    );
}

/// A pod pinned to a node that answers on `ports` (the lab's kubelet runs the responder).
fn pod(name: &str, node: &str, labels: &str, ports: &[u16]) -> String {
    let ports: Vec<String> = ports
        .iter()
        .map(|p| format!("{{containerPort: {p}}}"))
        .collect();
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, labels: {{{labels}}}}}\nspec:\n  nodeName: {node}\n  containers: [{{name: web, image: lab/none, ports: [{}]}}]\n",
        ports.join(", ")
    )
}

/// An ETP Local Service with a requested address from the second pool.
const LOCAL_VIP: &str = "198.18.201.20";
fn local_service() -> String {
    format!(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: local-svc\n  annotations:\n    sart.terassyi.net/addresspool: non-default-lb-pool\n    sart.terassyi.net/loadBalancerIPs: \"{LOCAL_VIP}\"\nspec:\n  type: LoadBalancer\n  externalTrafficPolicy: Local\n  selector: {{app: local-web}}\n  ports: [{{port: 80, targetPort: 80}}]\n"
    )
}

#[test]
fn dual_stack_pods_and_vips_pod_to_pod_and_real_cluster_manifests() {
    let lab = Lab::up("dual");

    // What real clusters get (manifests/lb, cni, dual, and the samples) is accepted by a real
    // API server: nothing is created, every object is validated and admitted.
    for overlay in ["lb", "cni", "dual", "sample"] {
        let dir = repo().join("manifests").join(overlay);
        lab.kubectl(&["apply", "--dry-run=server", "-k", &dir.to_string_lossy()]);
    }

    // The dual-stack Service's VIPs: announced by both nodes (ETP Cluster), IPv4 over the IPv4
    // sessions, IPv6 over the IPv6 ones.
    assert_eq!(lab.ingress("app-svc-cluster"), [VIP4, VIP6]);
    routed_via(&lab, &format!("{VIP4}/32"), &["198.18.1.2", "198.18.2.2"]);
    routed_via(
        &lab,
        &format!("{VIP6}/128"),
        &["fd00:198:18:1::2", "fd00:198:18:2::2"],
    );

    // Pod to pod across nodes, both families: from the pod on node 1 (in its own namespace)
    // to the one on node 2.
    let names = lab.kubectl(&[
        "get",
        "pods",
        "-l",
        "app=app-cluster",
        "-o",
        "jsonpath={.items[*].metadata.name}",
    ]);
    let pods: Vec<_> = names
        .split_whitespace()
        .map(|n| (n.to_owned(), lab.pod("default", n)))
        .collect();
    let on = |node: &str| pods.iter().find(|(_, p)| p.1 == node).unwrap().clone();
    let (_, (a_uid, _, a_ips)) = on(NODE1);
    let (b_name, (_, _, b_ips)) = on(NODE2);
    assert_eq!(a_ips.len(), 2, "{a_ips:?}");
    assert!(b_ips[0].starts_with("100.64.") && b_ips[1].starts_with("fd00:100:64:"));
    let a_ns = format!("lab-{NODE1}-{}", &a_uid[..8]);
    for ip in &b_ips {
        answers(&a_ns, ip, 80, &b_name).unwrap();
    }

    // An IPv6-only Service gets an IPv6 address only, and answers.
    lab.apply(&format!(
        "{}---\napiVersion: v1\nkind: Service\nmetadata: {{name: v6-only}}\nspec:\n  type: LoadBalancer\n  ipFamilyPolicy: SingleStack\n  ipFamilies: [IPv6]\n  selector: {{app: v6-web}}\n  ports: [{{port: 80}}]\n",
        pod("v6-web", NODE2, "app: v6-web", &[80])
    ));
    eventually("v6-only's address", Duration::from_secs(60), || {
        match lab.ingress("v6-only").as_slice() {
            [one] if one.starts_with("fd00:198:18:200:") => Ok(()),
            other => Err(format!("{other:?}")),
        }
    });
    let v6 = lab.ingress("v6-only").remove(0);
    eventually("v6-only answers", Duration::from_secs(60), || {
        answers(CLIENT, &v6, 80, "v6-web")
    });
}

#[test]
fn second_pool_by_namespace_and_pod_annotation_and_static_ip() {
    let lab = Lab::up("pools");
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
    lab.apply(&format!(
        "apiVersion: sart.terassyi.net/v1alpha2\nkind: AddressPool\nmetadata: {{name: tenant-pool}}\nspec: {{cidr: 100.65.0.0/24, type: pod, blockSize: 28}}\n---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: tenant\n  annotations: {{sart.terassyi.net/addresspool: tenant-pool}}\n---\napiVersion: v1\nkind: Pod\nmetadata: {{name: by-ns, namespace: tenant}}\nspec:\n  nodeName: {NODE1}\n  containers: [{{name: web, image: lab/none}}]\n---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: by-pod\n  annotations: {{sart.terassyi.net/addresspool: tenant-pool}}\nspec:\n  nodeName: {NODE2}\n  containers: [{{name: web, image: lab/none}}]\n---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: static\n  annotations: {{sart.terassyi.net/ips: \"{static_ip}\"}}\nspec:\n  nodeName: {NODE1}\n  containers: [{{name: web, image: lab/none}}]\n"
    ));
    for (ns, pod, want) in [
        ("tenant", "by-ns", "100.65.0."),
        ("default", "by-pod", "100.65.0."),
        ("default", "static", static_ip.as_str()),
    ] {
        eventually(
            &format!("{ns}/{pod} answers from {want}"),
            Duration::from_secs(60),
            || {
                let (_, _, ips) = lab.pod(ns, pod);
                // The chosen pool is IPv4 only: so is the pod.
                match ips.as_slice() {
                    [ip] if ip.starts_with(want) => answers(CLIENT, ip, 80, pod),
                    other => Err(format!("podIPs {other:?}")),
                }
            },
        );
    }
}

#[test]
fn etp_local_with_a_requested_ip_follows_its_endpoint() {
    let lab = Lab::up("etp-local");
    // ETP Local with a requested address from the second pool: announced by node 1 only.
    lab.apply(&format!(
        "{}---\n{}",
        pod("local-web", NODE1, "app: local-web", &[80]),
        local_service()
    ));
    let prefix = format!("{LOCAL_VIP}/32");
    routed_via(&lab, &prefix, &["198.18.1.2"]);
    eventually("the local VIP answers", Duration::from_secs(30), || {
        answers(CLIENT, LOCAL_VIP, 80, "local-web")
    });
    // The endpoint goes: the VIP is withdrawn; it comes back on node 2: announced from there.
    lab.kubectl(&["delete", "pod", "local-web", "--wait=true"]);
    routed_via(&lab, &prefix, &[]);
    lab.apply(&pod("local-web", NODE2, "app: local-web", &[80]));
    routed_via(&lab, &prefix, &["198.18.2.2"]);
    eventually(
        "the local VIP answers again",
        Duration::from_secs(30),
        || answers(CLIENT, LOCAL_VIP, 80, "local-web"),
    );
    assert_eq!(lab.ingress("local-svc"), [LOCAL_VIP]);
}

#[test]
fn shared_ip_two_services_one_address() {
    let lab = Lab::up("shared");
    const SHARED: &str = "198.18.201.30";
    let svc = |name: &str, app: &str, port: u16| {
        format!(
            "apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\n  annotations:\n    sart.terassyi.net/addresspool: non-default-lb-pool\n    sart.terassyi.net/loadBalancerIPs: \"{SHARED}\"\n    sart.terassyi.net/allow-shared-ip: web\nspec:\n  type: LoadBalancer\n  selector: {{app: {app}}}\n  ports: [{{port: {port}, targetPort: {port}}}]\n"
        )
    };
    // Two Services, one address, different ports, different backends.
    lab.apply(&format!(
        "{}---\n{}---\n{}---\n{}",
        pod("web-a", NODE1, "app: web-a", &[80]),
        pod("web-b", NODE2, "app: web-b", &[8080]),
        svc("svc-a", "web-a", 80),
        svc("svc-b", "web-b", 8080)
    ));
    eventually(
        "both Services on the shared address",
        Duration::from_secs(60),
        || match (lab.ingress("svc-a"), lab.ingress("svc-b")) {
            (a, b) if a == [SHARED] && b == [SHARED] => Ok(()),
            other => Err(format!("{other:?}")),
        },
    );
    routed_via(&lab, &format!("{SHARED}/32"), &["198.18.1.2", "198.18.2.2"]);
    eventually(
        "port 80 -> web-a, 8080 -> web-b",
        Duration::from_secs(30),
        || {
            answers(CLIENT, SHARED, 80, "web-a")?;
            answers(CLIENT, SHARED, 8080, "web-b")
        },
    );
    // A third that wants port 80 too may not share: it gets no address, and says why.
    lab.apply(&svc("svc-c", "web-a", 80));
    eventually("svc-c refused", Duration::from_secs(30), || {
        let reason = lab.kubectl(&[
            "get",
            "svc",
            "svc-c",
            "-o",
            "jsonpath={.status.conditions[?(@.type==\"sart.terassyi.net/AddressAssigned\")].reason}",
        ]);
        if reason.trim() == "RequestedIPTaken" {
            Ok(())
        } else {
            Err(reason)
        }
    });
    assert!(lab.ingress("svc-c").is_empty());
    // svc-a goes: svc-b keeps the address, and the address stays announced.
    lab.kubectl(&["delete", "svc", "svc-a", "--wait=true"]);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(lab.ingress("svc-b"), [SHARED]);
    assert_eq!(
        lab.router_next_hops(&format!("{SHARED}/32")),
        ["198.18.1.2", "198.18.2.2"]
    );
    answers(CLIENT, SHARED, 8080, "web-b").unwrap();
}

#[test]
fn speaker_and_agent_restart_with_graceful_restart_keeps_the_vip_answering() {
    let lab = Lab::up("gr");
    lab.apply(&format!(
        "{}---\n{}",
        pod("local-web", NODE2, "app: local-web", &[80]),
        local_service()
    ));
    routed_via(&lab, &format!("{LOCAL_VIP}/32"), &["198.18.2.2"]);
    eventually("the local VIP answers", Duration::from_secs(30), || {
        answers(CLIENT, LOCAL_VIP, 80, "local-web")
    });
    // Node 2's speaker and agent crash and come back (the agent configures the speaker
    // again). The router keeps node 2's routes meanwhile: every request to the VIP whose only
    // endpoint is on node 2 succeeds, before, during and after.
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
    lab.lab(&[
        "restart",
        NODE2,
        "--what",
        "sartd-bgp,sartd-agent",
        "--down-for",
        "2",
    ]);
    // Back: the sessions are Established again (the agent configured the new speaker) ...
    eventually(
        "node 2's BGPPeers Established again",
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
            // The restarted speaker's own log says so (the BGPPeer may not have noticed the
            // gap): two sessions before the crash, two after.
            if s.lines()
                .filter(|l| *l == "sart-lab-node2=Established")
                .count()
                == 2
                && speaker.matches("session established").count() >= 4
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
        lab.router_next_hops(&format!("{LOCAL_VIP}/32")),
        ["198.18.2.2"]
    );
}

#[test]
fn controller_restart_changes_no_address() {
    let lab = Lab::up("controller");
    lab.apply(&format!(
        "{}---\n{}",
        pod("local-web", NODE1, "app: local-web", &[80]),
        local_service()
    ));
    eventually("local-svc's address", Duration::from_secs(60), || match lab
        .ingress("local-svc")
        .as_slice()
    {
        [one] if one == LOCAL_VIP => Ok(()),
        other => Err(format!("{other:?}")),
    });
    let addresses = || {
        lab.kubectl(&[
            "get",
            "svc",
            "-o",
            "jsonpath={range .items[*]}{.metadata.name}={.status.loadBalancer.ingress[*].ip}{\"\\n\"}{end}",
        ])
    };
    let before = addresses();
    assert!(
        before.contains(&format!("app-svc-cluster={VIP4} {VIP6}")),
        "{before}"
    );
    // The controller crashes and comes back; meanwhile a Service is created, so the new
    // controller has work to do besides keeping what exists.
    lab.lab(&["restart", "controller", "--down-for", "1"]);
    lab.apply("apiVersion: v1\nkind: Service\nmetadata: {name: late}\nspec:\n  type: LoadBalancer\n  selector: {app: app-cluster}\n  ports: [{port: 80}]\n");
    eventually(
        "the late Service's address",
        Duration::from_secs(60),
        || match lab.ingress("late").as_slice() {
            [one] if one.starts_with("198.18.200.") => Ok(()),
            other => Err(format!("{other:?}")),
        },
    );
    let after: String = addresses()
        .lines()
        .filter(|l| !l.starts_with("late="))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(
        after, before,
        "addresses changed across a controller restart"
    );
    assert_ne!(lab.ingress("late"), [VIP4], "{}", addresses());
    answers(CLIENT, LOCAL_VIP, 80, "local-web").unwrap();
}

#[test]
fn node_deleted_releases_its_blocks_and_its_routes_go() {
    let lab = Lab::up("node-delete");
    lab.kubectl(&["delete", "node", NODE2, "--wait=false"]);
    eventually("node 2's blocks released", Duration::from_secs(90), || {
        let b = lab.kubectl(&[
            "get",
            "addressblocks",
            "-o",
            "jsonpath={range .items[*]}{.spec.nodeRef}{\"\\n\"}{end}",
        ]);
        if b.lines().any(|l| l == NODE2) {
            Err(b)
        } else {
            Ok(())
        }
    });
    eventually(
        "no route via node 2 at the router",
        Duration::from_secs(60),
        || {
            let out = format!(
                "{}{}",
                lab.vtysh("show ip route bgp"),
                lab.vtysh("show ipv6 route bgp")
            );
            if out.contains("via 198.18.2.2") || out.contains("via fd00:198:18:2::2") {
                Err(out)
            } else {
                Ok(())
            }
        },
    );
    // Node 1 is untouched: the VIPs still answer, now from its pod alone.
    routed_via(&lab, &format!("{VIP4}/32"), &["198.18.1.2"]);
    let (ok, _) = lab.try_kubectl(&["get", "node", NODE2]);
    assert!(!ok, "node 2 still exists");
}

/// A route's next hops in the router's kernel table (what forwarding uses).
fn kernel_next_hops(prefix: &str) -> String {
    let family = if prefix.contains(':') { "-6" } else { "-4" };
    run(Command::new("ip").args([
        "netns",
        "exec",
        "sart-lab-router",
        "ip",
        family,
        "route",
        "show",
        prefix,
    ]))
    .1
}

#[test]
fn bfd_link_cut_the_router_stops_using_the_node_within_a_second() {
    let lab = Lab::up("bfd");
    // Every session of the lab runs multihop BFD (loopback to loopback), up on both ends.
    let peers = lab.vtysh("show bfd peers brief");
    assert_eq!(peers.matches(" up").count(), 4, "{peers}");
    let v4 = format!("{VIP4}/32");
    let v6 = format!("{VIP6}/128");
    let uses_node1 = |p: &str| {
        kernel_next_hops(p).contains(if p.contains(':') {
            "fe80::2 dev to-node1"
        } else {
            "198.18.1.2"
        })
    };
    assert!(
        uses_node1(&v4) && uses_node1(&v6),
        "{}{}",
        kernel_next_hops(&v4),
        kernel_next_hops(&v6)
    );

    // The link to node 1 goes silent (it stays up: no carrier loss tells anyone).
    lab.lab(&["cut", NODE1]);
    let cut = Instant::now();
    let (mut gone4, mut gone6) = (None, None);
    while (gone4.is_none() || gone6.is_none()) && cut.elapsed() < Duration::from_secs(10) {
        if gone4.is_none() && !uses_node1(&v4) {
            gone4 = Some(cut.elapsed());
        }
        if gone6.is_none() && !uses_node1(&v6) {
            gone6 = Some(cut.elapsed());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    eprintln!("link cut -> router stops using node 1: IPv4 {gone4:?}, IPv6 {gone6:?}");
    for gone in [gone4, gone6] {
        assert!(
            gone.is_some_and(|g| g < Duration::from_secs(1)),
            "IPv4 {gone4:?}, IPv6 {gone6:?}\n{}",
            lab.vtysh("show bfd peers brief")
        );
    }
    // Node 2 still carries the VIPs.
    assert_eq!(lab.router_next_hops(&v4), ["198.18.2.2"]);
    assert!(kernel_next_hops(&v6).contains("dev to-node2"));
    // kube-proxy on node 2 may still pick node 1's pod, cut off with it: not every request
    // succeeds, but the VIP does answer.
    eventually(
        "the VIP answers through node 2",
        Duration::from_secs(10),
        || {
            get(CLIENT, VIP4)
                .map(drop)
                .ok_or_else(|| "no answer".to_owned())
        },
    );

    // The link comes back: BFD and BGP come up again and node 1 is used again.
    lab.lab(&["uncut", NODE1]);
    routed_via(&lab, &v4, &["198.18.1.2", "198.18.2.2"]);
    routed_via(&lab, &v6, &["fd00:198:18:1::2", "fd00:198:18:2::2"]);
    eventually("BFD up again", Duration::from_secs(30), || {
        let p = lab.vtysh("show bfd peers brief");
        if p.matches(" up").count() == 4 {
            Ok(())
        } else {
            Err(p)
        }
    });
}
