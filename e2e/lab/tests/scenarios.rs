//! The scenarios of the lab, each on a fresh `e2e/lab/lab up` (two real nodes: containerd and the
//! kubelet; sart deployed from its image, built from the debug binaries, and manifests/dual; one
//! lab at a time): pods and VIPs of both families reach the client through BGP; pod to pod
//! across nodes with `kubectl exec`; a second pool by namespace and by pod annotation, and a static pod IP;
//! static addresses on a node that does not hold their block (lent or with the block); a sticky
//! StatefulSet across a pod delete and a drain; ETP
//! Local with a requested address follows its endpoint; a shared address; graceful restart of
//! a node's speaker and agent; a controller restart; a node deleted; a link cut found by BFD;
//! a pod's forged packets (BFD Downs, foreign sources) changing nothing; the agent's rights;
//! pools fenced by namespace for Services and pods; taking over what sart left (finalizers, its
//! conflist, a pod it wired).
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
    /// sart from manifests/dual.
    fn up(scenario: &str) -> Lab {
        Lab::up_with(scenario, "dual")
    }

    /// sart from manifests/`mode` (cni or dual).
    fn up_with(scenario: &str, mode: &str) -> Lab {
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
            "--mode",
            mode,
        ]));
        assert!(ok, "lab up failed:\n{out}\n{}", lab.logs());
        eprintln!("{scenario}: lab up in {:.1} s", t.elapsed().as_secs_f64());
        // The summary shows every pod, on both addresses, and (dual) both VIPs answering the
        // client.
        let vips = if mode == "dual" { 6 } else { 0 };
        if vips > 0 {
            for vip in [format!("http://{VIP4}/"), format!("http://[{VIP6}]/")] {
                assert!(
                    out.contains(&format!("client -> VIP {vip} : 'app-")),
                    "{out}"
                );
            }
        }
        assert_eq!(out.matches("client -> pod ").count(), 4, "{out}");
        assert_eq!(out.matches(": 'app-").count(), 4 + vips, "{out}");
        lab
    }

    /// The app's pods: name → (node, IPs).
    fn app_pods(&self) -> std::collections::BTreeMap<String, (String, Vec<String>)> {
        let names = self.kubectl(&[
            "get",
            "pods",
            "-l",
            "app=app-cluster",
            "-o",
            "jsonpath={.items[*].metadata.name}",
        ]);
        names
            .split_whitespace()
            .map(|n| {
                let (_, node, ips) = self.pod("default", n);
                (n.to_owned(), (node, ips))
            })
            .collect()
    }

    /// Requests to `ip` from the client every 50 ms until the returned flag is set; the
    /// thread's result is (sent, failed), a failure being an answer that does not start with
    /// `want` (or none).
    fn probe(
        ip: String,
        want: &'static str,
    ) -> (Arc<AtomicBool>, std::thread::JoinHandle<(u32, u32)>) {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let t = std::thread::spawn(move || {
            let (mut sent, mut failed) = (0u32, 0u32);
            while !flag.load(Ordering::Relaxed) {
                sent += 1;
                if !get(CLIENT, &ip).is_some_and(|b| b.starts_with(want)) {
                    failed += 1;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            (sent, failed)
        });
        (stop, t)
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

    /// `lab pod-exec NODE IP -- ARGV`: ARGV in the network namespace of the pod holding IP.
    fn pod_exec(&self, node: &str, ip: &str, argv: &[&str]) -> String {
        let (ok, out) = run(Command::new(repo().join("e2e/lab/lab"))
            .args([
                "pod-exec",
                "--dir",
                &self.dir.to_string_lossy(),
                node,
                ip,
                "--",
            ])
            .args(argv));
        assert!(ok, "lab pod-exec {node} {ip} -- {}: {out}", argv.join(" "));
        out
    }

    fn kubectl(&self, args: &[&str]) -> String {
        let (ok, out) = self.try_kubectl(args);
        assert!(ok, "kubectl {}: {out}", args.join(" "));
        out
    }

    /// `kubectl exec POD -- ARGS`: its standard output (kubectl's own notices go to stderr).
    fn exec(&self, pod: &str, args: &[&str]) -> String {
        let kc = self.dir.join("cluster/kubeconfig");
        let out = Command::new("kubectl")
            .arg(format!("--kubeconfig={}", kc.display()))
            .args(["exec", pod, "--"])
            .args(args)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "kubectl exec {pod} -- {}: {stdout}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
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

    /// Every AddressBlock as "node pool cidr" lines.
    fn blocks(&self) -> String {
        self.kubectl(&[
            "get",
            "addressblocks",
            "-o",
            "jsonpath={range .items[*]}{.spec.nodeRef} {.spec.poolRef} {.spec.cidr}{\"\\n\"}{end}",
        ])
    }

    /// The default pod pool's first block of `node`.
    fn default_block(&self, node: &str) -> ipnet::Ipv4Net {
        let listed = self.blocks();
        listed
            .lines()
            .find(|l| l.starts_with(&format!("{node} default-pod-pool ")))
            .and_then(|l| l.split(' ').nth(2))
            .and_then(|c| c.parse().ok())
            .unwrap_or_else(|| panic!("no default-pool block of {node}: {listed}"))
    }

    /// The messages of the Events about pod `name` (namespace default).
    fn pod_events(&self, name: &str) -> String {
        self.kubectl(&[
            "get",
            "events",
            "--field-selector",
            &format!("involvedObject.name={name}"),
            "-o",
            "jsonpath={.items[*].message}",
        ])
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

    /// The kube-system pod of `app` (app.kubernetes.io/name) on `node`.
    fn kube_system_pod(&self, app: &str, node: &str) -> String {
        self.kubectl(&[
            "-n",
            "kube-system",
            "get",
            "pods",
            "-l",
            &format!("app.kubernetes.io/name={app}"),
            "--field-selector",
            &format!("spec.nodeName={node}"),
            "-o",
            "jsonpath={.items[0].metadata.name}",
        ])
    }

    /// `kubectl logs` of that kube-system pod (its first container, or `container`).
    fn kube_system_logs(&self, app: &str, node: &str, container: Option<&str>) -> String {
        let pod = self.kube_system_pod(app, node);
        let mut args = vec!["-n", "kube-system", "logs", pod.as_str()];
        args.extend(container.map(|c| ["-c", c]).into_iter().flatten());
        self.kubectl(&args)
    }

    /// The node (nodeBGPRef) of every BGPPeer whose session is Established.
    fn established_peers(&self) -> Vec<String> {
        self.kubectl(&[
            "get",
            "bgppeers",
            "-o",
            "jsonpath={range .items[*]}{.spec.nodeBGPRef}={.status.conditions[-1:].status}{\"\\n\"}{end}",
        ])
        .lines()
        .filter_map(|l| l.strip_suffix("=Established").map(str::to_owned))
        .collect()
    }

    /// How often the kubelet restarted the first container of that pod.
    fn restarts(&self, app: &str, node: &str) -> u32 {
        let pod = self.kube_system_pod(app, node);
        self.kubectl(&[
            "-n",
            "kube-system",
            "get",
            "pod",
            &pod,
            "-o",
            "jsonpath={.status.containerStatuses[0].restartCount}",
        ])
        .trim()
        .parse()
        .unwrap_or(0)
    }

    fn ingress(&self, svc: &str) -> Vec<String> {
        self.ingress_in("default", svc)
    }

    fn ingress_in(&self, ns: &str, svc: &str) -> Vec<String> {
        self.kubectl(&[
            "-n",
            ns,
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

/// A pod pinned to a node that answers on `ports` (lab/responder answers on 80 and 8080).
fn pod(name: &str, node: &str, labels: &str, ports: &[u16]) -> String {
    let ports: Vec<String> = ports
        .iter()
        .map(|p| format!("{{containerPort: {p}}}"))
        .collect();
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, labels: {{{labels}}}}}\nspec:\n  nodeName: {node}\n  containers: [{{name: web, image: lab/responder:1, ports: [{}]}}]\n",
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
    for overlay in ["lb", "cni", "dual"] {
        let dir = repo().join("manifests").join(overlay);
        lab.kubectl(&["apply", "--dry-run=server", "-k", &dir.to_string_lossy()]);
    }
    // The webhooks are on: the samples' pools, named as the lab's own, may not change their CIDR.
    let sample = repo().canonicalize().unwrap().join("manifests/sample");
    let (ok, out) =
        lab.try_kubectl(&["apply", "--dry-run=server", "-k", &sample.to_string_lossy()]);
    assert!(!ok && out.contains("spec.cidr is immutable"), "{out}");
    // Under names of their own (kustomize takes relative paths only), all but the two
    // auto-assign pools are admitted: the lab has its own for each kind and family.
    let renamed = lab.dir.join("sample-dry-run");
    std::fs::create_dir_all(&renamed).unwrap();
    let up = "../".repeat(renamed.components().count() - 1);
    let rel = sample.strip_prefix("/").unwrap().display();
    std::fs::write(
        renamed.join("kustomization.yaml"),
        format!("resources: [{up}{rel}]\nnameSuffix: -dry-run\n"),
    )
    .unwrap();
    let (ok, out) = lab.try_kubectl(&[
        "apply",
        "--dry-run=server",
        "-k",
        &renamed.to_string_lossy(),
    ]);
    assert!(!ok, "{out}");
    for admitted in [
        "addresspool.sart.terassyi.net/non-default-lb-pool-dry-run created (server dry run)",
        "service/app-svc-cluster-dry-run created (server dry run)",
    ] {
        assert!(out.contains(admitted), "{out}");
    }
    for refused in [
        "pool default-lb-pool is already the auto-assign service pool for IPv4",
        "pool default-pod-pool is already the auto-assign pod pool for IPv4",
    ] {
        assert!(out.contains(refused), "{out}");
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
    let (a_name, (_, _, a_ips)) = on(NODE1);
    let (b_name, (_, _, b_ips)) = on(NODE2);
    assert_eq!(a_ips.len(), 2, "{a_ips:?}");
    assert!(b_ips[0].starts_with("100.64.") && b_ips[1].starts_with("fd00:100:64:"));
    for ip in &b_ips {
        // busybox 1.35's `wget -T` crashes: `timeout` bounds it instead.
        let body = lab.exec(&a_name, &["timeout", "5", "wget", "-qO-", &url(ip, 80)]);
        assert_eq!(body.trim(), b_name, "{a_name} -> {ip}");
    }
    // Real nodes: the kubelet and containerd, not a stand-in.
    let nodes = lab.kubectl(&[
        "get",
        "nodes",
        "-o",
        "jsonpath={range .items[*]}{.status.nodeInfo.kubeletVersion} {.status.nodeInfo.containerRuntimeVersion}{\"\\n\"}{end}",
    ]);
    for line in nodes.lines() {
        assert!(
            line.starts_with("v1.37.") && line.contains(" containerd://"),
            "{nodes}"
        );
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
    let net = lab.default_block(NODE1);
    let static_ip = net.hosts().last().unwrap().to_string();
    lab.apply(&format!(
        "apiVersion: sart.terassyi.net/v1alpha2\nkind: AddressPool\nmetadata: {{name: tenant-pool}}\nspec: {{cidr: 100.65.0.0/24, type: pod, blockSize: 28}}\n---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: tenant\n  annotations: {{sart.terassyi.net/addresspool: tenant-pool}}\n---\napiVersion: v1\nkind: Pod\nmetadata: {{name: by-ns, namespace: tenant}}\nspec:\n  nodeName: {NODE1}\n  containers: [{{name: web, image: lab/responder:1}}]\n---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: by-pod\n  annotations: {{sart.terassyi.net/addresspool: tenant-pool}}\nspec:\n  nodeName: {NODE2}\n  containers: [{{name: web, image: lab/responder:1}}]\n---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: static\n  annotations: {{sart.terassyi.net/ips: \"{static_ip}\"}}\nspec:\n  nodeName: {NODE1}\n  containers: [{{name: web, image: lab/responder:1}}]\n"
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
fn static_address_on_any_node_borrowed_or_with_its_block() {
    let lab = Lab::up("static-any-node");
    let blocks = || lab.blocks();
    let net = lab.default_block(NODE1);
    let cidr1 = net.to_string();
    let hosts: Vec<_> = net.hosts().collect();
    // In node 1's block, for a pod on node 2: lent by node 1.
    let lent = hosts[hosts.len() - 2].to_string();
    // In a block no node holds (blocks go lowest first): node 2 gets that block.
    let free = "100.64.200.10";
    let static_pod = |name: &str, node: &str, ip: &str| {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  annotations: {{sart.terassyi.net/ips: \"{ip}\"}}\nspec:\n  nodeName: {node}\n  containers: [{{name: web, image: lab/responder:1}}]\n"
        )
    };
    lab.apply(&format!(
        "{}---\n{}",
        static_pod("borrower", NODE2, &lent),
        static_pod("own-block", NODE2, free)
    ));
    for (pod, ip) in [("borrower", lent.as_str()), ("own-block", free)] {
        eventually(
            &format!("{pod} answers from {ip}"),
            Duration::from_secs(60),
            || match lab.pod("default", pod).2.as_slice() {
                [got] if got == ip => answers(CLIENT, ip, 80, pod),
                other => Err(format!("podIPs {other:?}")),
            },
        );
    }
    // The borrowed address is a host route from node 2 (node 1 still announces the block);
    // the free one came with its whole block.
    routed_via(&lab, &format!("{lent}/32"), &["198.18.2.2"]);
    routed_via(&lab, &cidr1, &["198.18.1.2"]);
    assert!(
        blocks().contains("sart-lab-node2 default-pod-pool 100.64.200.0/27"),
        "{}",
        blocks()
    );
    let host_block = format!("default-pod-pool-host-{}", lent.replace('.', "-"));
    let loan = lab.kubectl(&[
        "get",
        "addressblock",
        &host_block,
        "-o",
        "jsonpath={.spec.nodeRef} {.spec.lentFrom} {.status.loan.lent}",
    ]);
    assert!(
        loan.starts_with("sart-lab-node2 default-pod-pool-") && loan.ends_with(" true"),
        "{loan}"
    );
    // Reachable from pods on both nodes, not only from outside.
    for (from, _) in lab.app_pods() {
        let body = lab.exec(&from, &["timeout", "5", "wget", "-qO-", &url(&lent, 8080)]);
        assert_eq!(body.trim(), "borrower", "{from} -> {lent}:8080");
    }
    // A second pod asking for it, on the lender's node: refused, and told why.
    lab.apply(&static_pod("second", NODE1, &lent));
    eventually("the second pod refused", Duration::from_secs(60), || {
        let ev = lab.pod_events("second");
        if ev.contains(&format!("address {lent} is lent to another node")) {
            Ok(())
        } else {
            Err(ev)
        }
    });
    assert!(lab.pod("default", "second").2.is_empty());
    // The borrower goes: the host route goes, and the address is node 1's again, so the
    // second pod (the kubelet retries) gets it there.
    lab.kubectl(&["delete", "pod", "borrower", "--wait=true"]);
    routed_via(&lab, &format!("{lent}/32"), &[]);
    eventually(
        "the second pod answers",
        Duration::from_secs(90),
        || match lab.pod("default", "second").2.as_slice() {
            [got] if *got == lent => answers(CLIENT, &lent, 80, "second"),
            other => Err(format!("podIPs {other:?}")),
        },
    );
    assert!(!blocks().contains(&format!("{lent}/32")), "{}", blocks());
    // Now a pod of node 1 has it: a pod on node 2 asking for it is refused, told which pod of
    // its own namespace holds it, and no host route appears for it.
    lab.apply(&static_pod("third", NODE2, &lent));
    eventually("the third pod refused", Duration::from_secs(60), || {
        let ev = lab.pod_events("third");
        if ev.contains(&format!(
            "address {lent} is taken by pod default/second on the node holding its block"
        )) {
            Ok(())
        } else {
            Err(ev)
        }
    });
    assert!(lab.router_next_hops(&format!("{lent}/32")).is_empty());
    answers(CLIENT, &lent, 80, "second").unwrap();
}

#[test]
fn sticky_statefulset_keeps_its_addresses_across_delete_and_drain() {
    let lab = Lab::up("sticky");
    lab.apply(
        "apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: db}\nspec:\n  replicas: 3\n  serviceName: db\n  podManagementPolicy: Parallel\n  selector: {matchLabels: {app: db}}\n  template:\n    metadata:\n      labels: {app: db}\n      annotations: {sart.terassyi.net/sticky: \"true\", sart.terassyi.net/addresspool: default-pod-pool}\n    spec:\n      terminationGracePeriodSeconds: 2\n      topologySpreadConstraints: [{maxSkew: 1, topologyKey: kubernetes.io/hostname, whenUnsatisfiable: ScheduleAnyway, labelSelector: {matchLabels: {app: db}}}]\n      containers: [{name: web, image: 'lab/responder:1'}]\n",
    );
    let pods = || -> Vec<(String, String, String)> {
        let mut v: Vec<(String, String, String)> = lab
            .kubectl(&[
                "get",
                "pods",
                "-l",
                "app=db",
                "-o",
                "jsonpath={range .items[*]}{.metadata.name} {.spec.nodeName} {.status.podIP}{\"\\n\"}{end}",
            ])
            .lines()
            .filter_map(|l| {
                let mut f = l.split(' ').map(str::to_owned);
                Some((f.next()?, f.next()?, f.next().filter(|ip| !ip.is_empty())?))
            })
            .collect();
        v.sort();
        v
    };
    // All three answering from the client on their addresses.
    let all_answer = |want: Option<&[(String, String)]>| {
        let got = pods();
        if got.len() != 3 {
            return Err(format!("{got:?}"));
        }
        for (name, _, ip) in &got {
            if let Some(w) = want
                && !w.iter().any(|(n, i)| n == name && i == ip)
            {
                return Err(format!("{name} has {ip}, not as before: {got:?}"));
            }
            answers(CLIENT, ip, 80, name)?;
        }
        Ok(())
    };
    eventually("three db pods answer", Duration::from_secs(90), || {
        all_answer(None)
    });
    let first: Vec<(String, String)> = pods().into_iter().map(|(n, _, ip)| (n, ip)).collect();
    let reservations = || {
        let mut r: Vec<String> = lab
            .kubectl(&[
                "get",
                "addressreservations",
                "-o",
                "jsonpath={range .items[*]}{.metadata.name}={.spec.addresses[0]}{\"\\n\"}{end}",
            ])
            .lines()
            .map(str::to_owned)
            .collect();
        r.sort();
        r
    };
    let want: Vec<String> = first.iter().map(|(n, ip)| format!("{n}={ip}")).collect();
    eventually("a reservation per pod", Duration::from_secs(30), || {
        let r = reservations();
        if r == want {
            Ok(())
        } else {
            Err(format!("{r:?}"))
        }
    });
    // The blocks count what they keep (kubectl get addressblocks -o wide: RESERVED).
    eventually(
        "three reserved addresses in the blocks",
        Duration::from_secs(30),
        || {
            let out = lab.kubectl(&[
                "get",
                "addressblocks",
                "-o",
                "jsonpath={range .items[*]}{.status.reserved}{\"\\n\"}{end}",
            ]);
            let n: i64 = out
                .lines()
                .filter_map(|l| l.trim().parse::<i64>().ok())
                .sum();
            if n == 3 {
                Ok(())
            } else {
                Err(format!("{n}: {out}"))
            }
        },
    );
    // A pod deleted comes back with its address.
    lab.kubectl(&["delete", "pod", "db-1", "--wait=true"]);
    eventually("db-1 back on its address", Duration::from_secs(90), || {
        all_answer(Some(&first))
    });
    // A node drained: its pods move to the other node and keep their addresses, which that
    // node borrows (a host route each) from the drained node's block.
    let moved: Vec<String> = pods()
        .into_iter()
        .filter(|(_, node, _)| node == NODE2)
        .map(|(_, _, ip)| ip)
        .collect();
    assert!(!moved.is_empty(), "no db pod on node 2: {:?}", pods());
    lab.kubectl(&[
        "drain",
        NODE2,
        "--ignore-daemonsets",
        "--delete-emptydir-data",
        "--timeout=120s",
    ]);
    eventually(
        "every db pod on node 1, on its address",
        Duration::from_secs(120),
        || {
            if let Some(p) = pods().iter().find(|(_, node, _)| node != NODE1) {
                return Err(format!("{p:?} not moved"));
            }
            all_answer(Some(&first))
        },
    );
    // Those in node 1's own blocks (a pod that ran there first) need no host route.
    let node1_blocks: Vec<ipnet::IpNet> = lab
        .blocks()
        .lines()
        .filter_map(|l| l.strip_prefix(&format!("{NODE1} ")))
        .filter_map(|l| l.split(' ').nth(1)?.parse().ok())
        .filter(|n: &ipnet::IpNet| n.prefix_len() < 32)
        .collect();
    for ip in &moved {
        let addr: std::net::IpAddr = ip.parse().unwrap();
        if !node1_blocks.iter().any(|b| b.contains(&addr)) {
            routed_via(&lab, &format!("{ip}/32"), &["198.18.1.2"]);
        }
    }
    lab.kubectl(&["uncordon", NODE2]);
    // Scaled down: the reservation of the pod that went ends; deleted: all of them end.
    lab.kubectl(&["scale", "statefulset", "db", "--replicas=2"]);
    let want2: Vec<String> = want
        .iter()
        .filter(|r| !r.starts_with("db-2="))
        .cloned()
        .collect();
    eventually("db-2's reservation ended", Duration::from_secs(60), || {
        let r = reservations();
        if r == want2 {
            Ok(())
        } else {
            Err(format!("{r:?}"))
        }
    });
    lab.kubectl(&["delete", "statefulset", "db", "--wait=true"]);
    eventually("every reservation ended", Duration::from_secs(60), || {
        let r = reservations();
        if r.is_empty() {
            Ok(())
        } else {
            Err(format!("{r:?}"))
        }
    });
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
    let (stop, prober) = Lab::probe(LOCAL_VIP.into(), "local-web");
    std::thread::sleep(Duration::from_millis(500));
    let restarts = ["sartd-bgp", "sartd-agent"].map(|app| lab.restarts(app, NODE2));
    lab.lab(&["restart", NODE2, "--what", "sartd-bgp,sartd-agent"]);
    eventually(
        "node 2's speaker and agent restarted by the kubelet",
        Duration::from_secs(60),
        || match ["sartd-bgp", "sartd-agent"].map(|app| lab.restarts(app, NODE2)) {
            now if now[0] > restarts[0] && now[1] > restarts[1] => Ok(()),
            now => Err(format!("restarts {restarts:?} -> {now:?}")),
        },
    );
    // Back: the sessions are Established again (the agent configured the new speaker) ...
    eventually(
        "node 2's BGPPeers Established again",
        Duration::from_secs(60),
        || {
            let up = lab.established_peers();
            // The restarted speaker's own log says so (the BGPPeer may not have noticed the
            // gap): its new container has both sessions up again.
            let (_, speaker) = lab.try_kubectl(&[
                "-n",
                "kube-system",
                "logs",
                &lab.kube_system_pod("sartd-bgp", NODE2),
            ]);
            if up.iter().filter(|n| *n == NODE2).count() == 2
                && speaker.matches("session established").count() >= 2
            {
                Ok(())
            } else {
                Err(format!("{up:?}"))
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
    lab.lab(&["restart", "controller"]);
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
    // As a node is decommissioned: its kubelet stops (or it would register the Node again).
    lab.lab(&["stop", NODE2]);
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
    // kube-proxy on node 2 may still pick node 1's pod, cut off with it: about every other
    // request times out (3 s), but the VIP does answer. 30 s make ten tries.
    eventually(
        "the VIP answers through node 2",
        Duration::from_secs(30),
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

#[test]
fn quick_start_exec_ping_and_wget_across_nodes_and_logs() {
    let lab = Lab::up("quick-start");
    // sart's quick start: from a pod, ping and fetch from the pods on the other node, both
    // families, through the node's routes and the router.
    let pods = lab.app_pods();
    assert_eq!(pods.len(), 2, "{pods:?}");
    for (from, (from_node, _)) in &pods {
        for (to, (to_node, ips)) in &pods {
            if from_node == to_node {
                continue;
            }
            for ip in ips {
                let ping = lab.exec(from, &["ping", "-c", "2", "-W", "3", ip]);
                assert!(
                    ping.contains("2 packets received"),
                    "{from} -> {ip}: {ping}"
                );
                let body = lab.exec(from, &["timeout", "5", "wget", "-qO-", &url(ip, 8080)]);
                assert_eq!(body.trim(), to, "{from} -> {ip}:8080");
            }
        }
    }
    // The agent's and the speaker's logs, as kubectl shows them: plain text, what they did.
    let agent = lab.kube_system_logs("sartd-agent", NODE1, None);
    assert!(agent.contains("pod attached"), "{agent}");
    assert!(
        !agent.contains('\u{1b}'),
        "colour codes in kubectl logs: {agent}"
    );
    let init = lab.kube_system_logs("sartd-agent", NODE1, Some("install-cni"));
    assert!(
        init.contains("installed /host/opt/cni/bin/sart-cni"),
        "{init}"
    );
    let speaker = lab.kube_system_logs("sartd-bgp", NODE1, None);
    assert!(speaker.contains("session established"), "{speaker}");
}

#[test]
fn rollout_restart_of_speaker_and_agent_fails_no_request_to_the_vip() {
    let lab = Lab::up("rollout");
    let before: Vec<String> = ["sartd-bgp", "sartd-agent"]
        .iter()
        .flat_map(|app| [NODE1, NODE2].map(|n| lab.kube_system_pod(app, n)))
        .collect();
    let (stop, prober) = Lab::probe(VIP4.into(), "app-");
    std::thread::sleep(Duration::from_millis(500));
    // One node at a time (maxUnavailable 1, each pod Ready before the next goes); graceful
    // restart keeps the node's routes at the router while its speaker is away.
    lab.kubectl(&[
        "-n",
        "kube-system",
        "rollout",
        "restart",
        "daemonset/sartd-bgp",
        "daemonset/sartd-agent",
    ]);
    for ds in ["daemonset/sartd-bgp", "daemonset/sartd-agent"] {
        lab.kubectl(&[
            "-n",
            "kube-system",
            "rollout",
            "status",
            ds,
            "--timeout=180s",
        ]);
    }
    eventually(
        "every BGPPeer Established again",
        Duration::from_secs(60),
        || match lab.established_peers() {
            up if up.len() == 4 => Ok(()),
            up => Err(format!("{up:?}")),
        },
    );
    std::thread::sleep(Duration::from_secs(3));
    stop.store(true, Ordering::Relaxed);
    let (sent, failed) = prober.join().unwrap();
    eprintln!("VIP requests across the rollout: {failed} of {sent} failed");
    let after: Vec<String> = ["sartd-bgp", "sartd-agent"]
        .iter()
        .flat_map(|app| [NODE1, NODE2].map(|n| lab.kube_system_pod(app, n)))
        .collect();
    for pod in &before {
        assert!(!after.contains(pod), "{pod} was not replaced: {after:?}");
    }
    assert!(sent > 20, "{sent}");
    assert_eq!(
        failed,
        0,
        "requests failed across the rollout\n{}",
        lab.logs()
    );
}

#[test]
fn a_deleted_bgppeer_is_recreated_and_advertisements_follow() {
    let lab = Lab::up("delete-peer");
    let peer_of = |node: &str| {
        lab.kubectl(&[
            "get",
            "bgppeers",
            "-l",
            &format!("bgppeer.sart.terassyi.net/node={node}"),
            "-o",
            "jsonpath={range .items[*]}{.metadata.name} {.metadata.uid} {.spec.addr}{\"\\n\"}{end}",
        ])
        .lines()
        .find(|l| l.ends_with(" 198.18.0.1"))
        .map(|l| l.split(' ').map(str::to_owned).collect::<Vec<_>>())
        .unwrap_or_default()
    };
    let old = peer_of(NODE2);
    assert_eq!(old.len(), 3, "{old:?}");
    lab.kubectl(&["delete", "bgppeer", &old[0], "--wait=true"]);
    // sart's e2e testDeleteBGPPeer: the controller makes it again from the NodeBGP ...
    eventually(
        "node 2's IPv4 BGPPeer again",
        Duration::from_secs(60),
        || match peer_of(NODE2) {
            p if p.len() == 3 && p[1] != old[1] => Ok(()),
            p => Err(format!("{p:?}")),
        },
    );
    let new = peer_of(NODE2);
    eventually(
        "the new BGPPeer Established",
        Duration::from_secs(60),
        || {
            let s = lab.kubectl(&[
                "get",
                "bgppeer",
                &new[0],
                "-o",
                "jsonpath={.status.conditions[-1:].status}",
            ]);
            if s.trim() == "Established" {
                Ok(())
            } else {
                Err(s)
            }
        },
    );
    // ... and the advertisements follow: the VIP's advertisement is Advertised to it, and the
    // router has the VIP through node 2 again.
    eventually(
        "the VIP advertised to the new peer",
        Duration::from_secs(60),
        || {
            // JSON, not jsonpath: the peer's name has dots in it.
            let ads: serde_json::Value =
                serde_json::from_str(&lab.kubectl(&["get", "bgpadvertisements", "-o", "json"]))
                    .unwrap();
            let vip = ads["items"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|a| a["spec"]["cidr"] == format!("{VIP4}/32"));
            match vip.map(|a| &a["status"]["peers"][&new[0]]) {
                Some(state) if state == "Advertised" => Ok(()),
                other => Err(format!("{other:?}")),
            }
        },
    );
    routed_via(&lab, &format!("{VIP4}/32"), &["198.18.1.2", "198.18.2.2"]);
}

#[test]
fn switching_from_cni_to_dual_keeps_the_pods_addresses() {
    let lab = Lab::up_with("cni-to-dual", "cni");
    // sart's e2e testSwitchModeToDual: the pods run with addresses; no Service has one.
    let before = lab.app_pods();
    assert_eq!(before.len(), 2, "{before:?}");
    assert!(lab.ingress("app-svc-cluster").is_empty());
    lab.lab(&["deploy", "dual"]);
    eventually(
        "the app Service's addresses",
        Duration::from_secs(60),
        || match lab.ingress("app-svc-cluster").as_slice() {
            [a, b] if a == VIP4 && b == VIP6 => Ok(()),
            other => Err(format!("{other:?}")),
        },
    );
    eventually("the VIPs answer", Duration::from_secs(60), || {
        answers_any_app(VIP4)?;
        answers_any_app(VIP6)
    });
    // The same pods, with the same addresses, answering on them.
    assert_eq!(lab.app_pods(), before);
    for (name, (_, ips)) in &before {
        for ip in ips {
            answers(CLIENT, ip, 80, name).unwrap();
        }
    }
}

/// The client gets an answer from one of the app's pods at `ip`.
fn answers_any_app(ip: &str) -> Result<(), String> {
    match get(CLIENT, ip) {
        Some(b) if b.starts_with("app-") => Ok(()),
        other => Err(format!("{ip}: {other:?}")),
    }
}

#[test]
fn drain_moves_the_pods_releases_the_blocks_and_the_vip_answers() {
    let lab = Lab::up("drain");
    // Emptied blocks go after 5 s instead of 5 minutes: a user's tuning, rolled out as such.
    lab.kubectl(&[
        "-n",
        "kube-system",
        "patch",
        "daemonset",
        "sartd-agent",
        "--type=json",
        "-p",
        r#"[{"op": "add", "path": "/spec/template/spec/containers/0/args/-", "value": "--block-release-after=5"}]"#,
    ]);
    lab.kubectl(&[
        "-n",
        "kube-system",
        "rollout",
        "status",
        "daemonset/sartd-agent",
        "--timeout=180s",
    ]);
    // The app's pods are a DaemonSet's, which a drain leaves: a Deployment of its own pool
    // moves, and its block on node 2 empties. Its pods keep answering for 2 s after they are
    // told to go (preStop), as a web server's connection draining does, so that no request
    // reaches a pod that has stopped before kube-proxy knows.
    lab.apply(
        "apiVersion: sart.terassyi.net/v1alpha2\nkind: AddressPool\nmetadata: {name: web-pool}\nspec: {cidr: 100.66.0.0/24, type: pod, blockSize: 28}\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  replicas: 4\n  selector: {matchLabels: {app: web}}\n  template:\n    metadata:\n      labels: {app: web}\n      annotations: {sart.terassyi.net/addresspool: web-pool}\n    spec:\n      terminationGracePeriodSeconds: 5\n      topologySpreadConstraints: [{maxSkew: 1, topologyKey: kubernetes.io/hostname, whenUnsatisfiable: DoNotSchedule, nodeTaintsPolicy: Honor, labelSelector: {matchLabels: {app: web}}}]\n      containers: [{name: web, image: 'lab/responder:1', lifecycle: {preStop: {exec: {command: [sleep, '2']}}}}]\n---\napiVersion: v1\nkind: Service\nmetadata: {name: web-svc}\nspec:\n  type: LoadBalancer\n  ipFamilyPolicy: SingleStack\n  selector: {app: web}\n  ports: [{port: 80}]\n",
    );
    lab.kubectl(&["rollout", "status", "deployment/web", "--timeout=120s"]);
    let web_blocks = || {
        let mut b: Vec<String> = lab
            .kubectl(&[
                "get",
                "addressblocks",
                "-o",
                "jsonpath={range .items[*]}{.spec.poolRef} {.spec.nodeRef}{\"\\n\"}{end}",
            ])
            .lines()
            .filter_map(|l| l.strip_prefix("web-pool ").map(str::to_owned))
            .collect();
        b.sort();
        b
    };
    eventually(
        "a web block on each node",
        Duration::from_secs(30),
        || match web_blocks().as_slice() {
            [a, b] if a == NODE1 && b == NODE2 => Ok(()),
            other => Err(format!("{other:?}")),
        },
    );
    eventually("web-svc's address", Duration::from_secs(60), || {
        match lab.ingress("web-svc").as_slice() {
            [_] => Ok(()),
            other => Err(format!("{other:?}")),
        }
    });
    let vip = lab.ingress("web-svc").remove(0);
    eventually("web-svc answers", Duration::from_secs(30), || {
        match get(CLIENT, &vip) {
            Some(b) if b.starts_with("web-") => Ok(()),
            other => Err(format!("{other:?}")),
        }
    });
    let (stop, prober) = Lab::probe(vip, "web-");
    std::thread::sleep(Duration::from_millis(500));
    lab.kubectl(&[
        "drain",
        NODE2,
        "--ignore-daemonsets",
        "--delete-emptydir-data",
        "--timeout=120s",
    ]);
    lab.kubectl(&["rollout", "status", "deployment/web", "--timeout=120s"]);
    // Every web pod on node 1 now, each answering on an address of node 1's web block.
    let out = lab.kubectl(&[
        "get",
        "pods",
        "-l",
        "app=web",
        "-o",
        "jsonpath={range .items[*]}{.metadata.name} {.spec.nodeName} {.status.podIP}{\"\\n\"}{end}",
    ]);
    assert_eq!(out.lines().count(), 4, "{out}");
    for l in out.lines() {
        let f: Vec<&str> = l.split(' ').collect();
        assert_eq!(f[1], NODE1, "{out}");
        eventually(
            &format!("{} answers", f[0]),
            Duration::from_secs(30),
            || answers(CLIENT, f[2], 80, f[0]),
        );
    }
    eventually(
        "node 2's web block released",
        Duration::from_secs(60),
        || match web_blocks().as_slice() {
            [one] if one == NODE1 => Ok(()),
            other => Err(format!("{other:?}")),
        },
    );
    stop.store(true, Ordering::Relaxed);
    let (sent, failed) = prober.join().unwrap();
    eprintln!("VIP requests across the drain: {failed} of {sent} failed");
    assert!(sent > 20, "{sent}");
    assert_eq!(failed, 0, "requests failed across the drain");
}

#[test]
fn a_pod_naming_a_missing_pool_gets_an_event_and_no_address_leaks() {
    let lab = Lab::up("bad-pool");
    let records = || {
        std::fs::read_dir(
            lab.dir
                .join("nodes")
                .join(NODE1)
                .join("root/var/lib/sart/cni"),
        )
        .map(|d| d.count())
        .unwrap_or(0)
    };
    let allocated = || {
        lab.kubectl(&[
            "get",
            "addressblocks",
            "-o",
            "jsonpath={range .items[*]}{.metadata.name}={.status.allocated}{\"\\n\"}{end}",
        ])
    };
    let (records_before, allocated_before) = (records(), allocated());
    // The app's pod on node 1 has its record there: the count below looks in the right place.
    assert!(records_before > 0, "no CNI records on {NODE1}");
    lab.apply(&format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: lost\n  annotations: {{sart.terassyi.net/addresspool: no-such-pool}}\nspec:\n  nodeName: {NODE1}\n  containers: [{{name: web, image: 'lab/responder:1'}}]\n"
    ));
    // The runtime's error reaches the pod as an Event, with the agent's reason in it.
    eventually("the pod's sandbox event", Duration::from_secs(60), || {
        let ev = lab.kubectl(&[
            "get",
            "events",
            "--field-selector",
            "involvedObject.name=lost,reason=FailedCreatePodSandBox",
            "-o",
            "jsonpath={.items[*].message}",
        ]);
        if ev.contains("no-such-pool") && ev.contains("sart-cni") {
            Ok(())
        } else {
            Err(ev)
        }
    });
    let (_, _, ips) = lab.pod("default", "lost");
    assert!(ips.is_empty(), "{ips:?}");
    // Retried by the kubelet all along: still nothing taken, nothing recorded.
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(records(), records_before);
    assert_eq!(allocated(), allocated_before);
    lab.kubectl(&["delete", "pod", "lost", "--wait=true"]);
    assert_eq!(records(), records_before);
    assert_eq!(allocated(), allocated_before);
}

/// The router's view of its sessions with node 1: (BGP session uptime in ms, per address (the
/// router's listen-range peers are made anew on every connection, so their counters start
/// over: uptime is what tells a reset);
/// BFD peers up; the IPv4 BFD session's discriminators: the router's and node 1's).
fn router_view(lab: &Lab) -> (Vec<u64>, usize, (u64, u64)) {
    let bgp: serde_json::Value =
        serde_json::from_str(&lab.vtysh("show bgp neighbors json")).unwrap_or_default();
    let conns = ["198.18.1.2", "fd00:198:18:1::2"]
        .iter()
        .map(|a| bgp[*a]["bgpTimerUpMsec"].as_u64().unwrap_or(0))
        .collect();
    let bfd: serde_json::Value =
        serde_json::from_str(&lab.vtysh("show bfd peers json")).unwrap_or_default();
    let peers = bfd.as_array().cloned().unwrap_or_default();
    let up = peers.iter().filter(|p| p["status"] == "up").count();
    let disc = peers
        .iter()
        .find(|p| p["peer"] == "198.18.1.2")
        .map(|p| {
            let id = |k: &str| p[k].as_u64().unwrap_or(0);
            (id("id"), id("remote-id"))
        })
        .unwrap_or_default();
    (conns, up, disc)
}

/// A pod's forged packets change nothing: BFD Downs "from the router" to its node's multihop
/// BFD port (with the session's real discriminator, which only source validation stops, and
/// with none), and datagrams under an address that is not the pod's, toward the client. Every
/// BFD and BGP session at the router stays up without a reset, nothing reaches the client, and
/// the node's guard counted the drops. (Before source validation, 40 such Downs reset the
/// node's session.)
#[test]
fn a_pods_forged_packets_change_nothing() {
    let lab = Lab::up("forged");
    let (_, (_, ips)) = lab
        .app_pods()
        .into_iter()
        .find(|(_, (node, _))| node == NODE1)
        .expect("an app pod on node 1");
    let pod_ip = ips.iter().find(|ip| !ip.contains(':')).unwrap().clone();
    let (conns, up, disc) = router_view(&lab);
    assert_eq!(up, 4, "BFD peers up at the router");
    let (router_disc, node_disc) = disc;
    assert!(
        conns.iter().all(|c| *c > 0) && router_disc != 0 && node_disc != 0,
        "{conns:?} {disc:?}"
    );
    Command::new("ip")
        .args(["netns", "exec", CLIENT, "nft", "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(
                b"table inet obs {\n chain in {\n  type filter hook prerouting priority 0;\n  ip saddr 100.64.255.254 counter\n }\n}\n",
            )?;
            c.wait()
        })
        .unwrap();
    let forge = repo().join("e2e/lab/forge.py");
    let forge = forge.to_string_lossy();
    // With both discriminators, as the router would send it (only source validation stops
    // this one), and with none (the BFD session's own checks stop that one too).
    for (my, your) in [(router_disc, node_disc), (0, 0)] {
        let (my, your) = (my.to_string(), your.to_string());
        lab.pod_exec(
            NODE1,
            &pod_ip,
            &[
                "python3",
                &forge,
                "--src",
                "198.18.0.1",
                "--dst",
                "198.18.1.2",
                "--dport",
                "4784",
                "--bfd-down",
                "--my-disc",
                &my,
                "--your-disc",
                &your,
                "--count",
                "40",
            ],
        );
    }
    lab.pod_exec(
        NODE1,
        &pod_ip,
        &[
            "python3",
            &forge,
            "--src",
            "100.64.255.254",
            "--dst",
            "198.18.100.2",
            "--dport",
            "9999",
            "--count",
            "5",
        ],
    );
    // Several BFD detection times (300 ms) and more.
    std::thread::sleep(Duration::from_secs(3));
    let (after, up_after, _) = router_view(&lab);
    // Up for the whole time since, i.e. never reset.
    for (before, now) in conns.iter().zip(&after) {
        assert!(
            *now >= before + 3000,
            "a BGP session with node 1 was reset: up {before} ms before, {now} ms after"
        );
    }
    assert_eq!(up_after, 4, "{}", lab.vtysh("show bfd peers brief"));
    let counted = |ns: &str, table: &str| -> u64 {
        let (_, out) =
            run(Command::new("ip")
                .args(["netns", "exec", ns, "nft", "list", "table", "inet", table]));
        out.split("counter packets ")
            .skip(1)
            .filter_map(|r| r.split_whitespace().next()?.parse::<u64>().ok())
            .sum()
    };
    assert_eq!(
        counted(CLIENT, "obs"),
        0,
        "forged datagrams reached the client"
    );
    let dropped = counted(NODE1, "sart_guard");
    assert!(
        dropped >= 85,
        "node 1's guard dropped {dropped} packets, not the 85 forged"
    );
}

/// A kubeconfig that authenticates with `token` only (the admin one would also present its
/// client certificate, which the API server checks first).
fn token_kubeconfig(lab: &Lab, name: &str, token: &str) -> PathBuf {
    let server = lab.kubectl(&[
        "config",
        "view",
        "--raw",
        "--minify",
        "-o",
        "jsonpath={.clusters[0].cluster.server}",
    ]);
    let ca = lab.kubectl(&[
        "config",
        "view",
        "--raw",
        "--minify",
        "-o",
        "jsonpath={.clusters[0].cluster.certificate-authority-data}",
    ]);
    let path = lab.dir.join(format!("{name}.kubeconfig"));
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1\nkind: Config\nclusters: [{{name: lab, cluster: {{server: \"{server}\", certificate-authority-data: {ca}}}}}]\nusers: [{{name: {name}, user: {{token: {token}}}}}]\ncontexts: [{{name: {name}, context: {{cluster: lab, user: {name}}}}}]\ncurrent-context: {name}\n"
        ),
    )
    .unwrap();
    path
}

fn kubectl_as(kubeconfig: &Path, args: &[&str]) -> (bool, String) {
    run(Command::new("kubectl")
        .arg(format!("--kubeconfig={}", kubeconfig.display()))
        .args(args))
}

#[test]
fn the_agent_may_read_only_peer_passwords_and_change_only_its_own_node() {
    let lab = Lab::up("agent-rights");
    // The token node 1's agent pod has: bound to that pod, hence to its node.
    let agent_pod = lab.kube_system_pod("sartd-agent", NODE1);
    assert!(!agent_pod.is_empty());
    let bound = lab.kubectl(&[
        "-n",
        "kube-system",
        "create",
        "token",
        "sart-agent",
        "--bound-object-kind=Pod",
        &format!("--bound-object-name={agent_pod}"),
        "--duration=10m",
    ]);
    let agent = token_kubeconfig(&lab, "agent-node1", bound.trim());
    let who = kubectl_as(&agent, &["auth", "whoami", "-o", "json"]);
    assert!(
        who.0 && who.1.contains(NODE1) && who.1.contains("authentication.kubernetes.io/node-name"),
        "{who:?}"
    );

    // RBAC: passwords from their namespace only, and nothing beyond what the agent's code does.
    let can = |args: &[&str]| {
        let (yes, out) = kubectl_as(&agent, &[&["auth", "can-i"], args].concat());
        // The answer, without kubectl's warnings about the scope asked for.
        (yes, out.lines().next().unwrap_or_default().to_owned())
    };
    assert_eq!(
        can(&["get", "secrets", "-n", "sart-bgp-secrets"]),
        (true, "yes".to_owned())
    );
    for denied in [
        &["get", "secrets", "-n", "kube-system"][..],
        &[
            "get",
            "secrets/sart-webhook-server-cert",
            "-n",
            "kube-system",
        ],
        &["get", "secrets", "-n", "default"],
        &["list", "secrets", "-n", "sart-bgp-secrets"],
        &["watch", "secrets", "-n", "sart-bgp-secrets"],
        &["create", "bgppeers.sart.terassyi.net"],
        &["delete", "bgppeers.sart.terassyi.net"],
        &["update", "nodebgps.sart.terassyi.net"],
        &[
            "patch",
            "nodebgps.sart.terassyi.net",
            "--subresource=status",
        ],
        &[
            "create",
            "bgpadvertisements.sart.terassyi.net",
            "-n",
            "default",
        ],
        &["patch", "addresspools.sart.terassyi.net"],
        &["update", "addressblocks.sart.terassyi.net"],
        &["create", "addressblocks.sart.terassyi.net"],
        &["list", "blockrequests.sart.terassyi.net"],
        &["delete", "pods", "-n", "default"],
        &["patch", "nodes"],
    ] {
        assert_eq!(can(denied), (false, "no".to_owned()), "can-i {denied:?}");
    }

    // Admission: the node bound into the token decides which objects the agent may change.
    let blocks = lab.kubectl(&[
        "get",
        "addressblocks",
        "-o",
        "jsonpath={range .items[*]}{.metadata.name} {.spec.nodeRef}{\"\\n\"}{end}",
    ]);
    let block_of = |node: &str| {
        blocks
            .lines()
            .find_map(|l| l.strip_suffix(&format!(" {node}")))
            .unwrap_or_else(|| panic!("no block of {node} in {blocks}"))
            .to_owned()
    };
    let (own, other) = (block_of(NODE1), block_of(NODE2));
    let patch = |kc: &Path, block: &str| {
        kubectl_as(
            kc,
            &[
                "patch",
                "addressblock",
                block,
                "--subresource=status",
                "--type=merge",
                "-p",
                r#"{"status":{"used":0}}"#,
                "--dry-run=server",
            ],
        )
    };
    let (ok, out) = patch(&agent, &own);
    assert!(ok, "the agent's own block: {out}");
    let (ok, out) = patch(&agent, &other);
    assert!(
        !ok && out.contains("sart-agent-own-node")
            && out.contains(&format!(
                "may change only its own node's addressblocks; {other} belongs to {NODE2}"
            )),
        "{out}"
    );
    let (ok, out) = kubectl_as(
        &agent,
        &["delete", "addressblock", &other, "--dry-run=server"],
    );
    assert!(!ok && out.contains("sart-agent-own-node"), "{out}");
    // Its own block's spec is not the agent's either.
    let (ok, out) = kubectl_as(
        &agent,
        &[
            "patch",
            "addressblock",
            &own,
            "--type=merge",
            "-p",
            r#"{"spec":{"cidr":"100.64.255.0/27"}}"#,
            "--dry-run=server",
        ],
    );
    assert!(!ok && out.contains("not its spec"), "{out}");
    let request = |node: &str| {
        format!(
            "apiVersion: sart.terassyi.net/v1alpha2\nkind: BlockRequest\nmetadata: {{name: probe-{node}}}\nspec: {{pool: default-pod-pool, node: {node}}}\n"
        )
    };
    let create = |kc: &Path, yaml: String| {
        use std::io::Write;
        let mut c = Command::new("kubectl")
            .arg(format!("--kubeconfig={}", kc.display()))
            .args(["create", "--dry-run=server", "-f", "-"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        c.stdin.take().unwrap().write_all(yaml.as_bytes()).unwrap();
        let out = c.wait_with_output().unwrap();
        (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    };
    let (ok, out) = create(&agent, request(NODE1));
    assert!(ok, "a BlockRequest for the agent's node: {out}");
    let (ok, out) = create(&agent, request(NODE2));
    assert!(!ok && out.contains("sart-agent-own-node"), "{out}");
    let peer_of = |node: &str| {
        lab.kubectl(&[
            "get",
            "bgppeers",
            "-l",
            &format!("bgppeer.sart.terassyi.net/node={node}"),
            "-o",
            "jsonpath={.items[0].metadata.name}",
        ])
    };
    let status_patch = r#"{"status":{"backoff":0}}"#;
    let (ok, out) = kubectl_as(
        &agent,
        &[
            "patch",
            "bgppeer",
            &peer_of(NODE2),
            "--subresource=status",
            "--type=merge",
            "-p",
            status_patch,
            "--dry-run=server",
        ],
    );
    assert!(!ok && out.contains("sart-agent-own-node"), "{out}");

    // The same ServiceAccount's token bound to no pod (as a copied or long-lived one would be)
    // changes nothing, not even node 1's objects.
    let unbound = lab.kubectl(&[
        "-n",
        "kube-system",
        "create",
        "token",
        "sart-agent",
        "--duration=10m",
    ]);
    let loose = token_kubeconfig(&lab, "agent-unbound", unbound.trim());
    let (ok, out) = patch(&loose, &own);
    assert!(!ok && out.contains("not bound to a node"), "{out}");

    // The real agents met none of this: every write they made was their own node's.
    for node in [NODE1, NODE2] {
        let log = lab.kube_system_logs("sartd-agent", node, None);
        assert!(
            !log.contains("sart-agent-own-node") && !log.contains("forbidden"),
            "{log}"
        );
    }
}

/// Our condition on a Service in `ns`: (reason, message) once it is False.
fn service_refusal(lab: &Lab, ns: &str, name: &str) -> Result<(String, String), String> {
    let out = lab.kubectl(&[
        "-n",
        ns,
        "get",
        "svc",
        name,
        "-o",
        "jsonpath={range .status.conditions[?(@.type==\"sart.terassyi.net/AddressAssigned\")]}{.status}|{.reason}|{.message}{end}",
    ]);
    match out.splitn(3, '|').collect::<Vec<_>>().as_slice() {
        ["False", reason, message] => Ok((reason.to_string(), message.to_string())),
        _ => Err(out),
    }
}

#[test]
fn pools_fenced_by_namespace_for_services_and_pods() {
    let lab = Lab::up("tenancy");
    // Team a's own pools, auto-assign for it alone; team b has no label.
    let svc = |ns: &str, name: &str, annotations: &str, ports: &str| {
        format!(
            "apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\n  namespace: {ns}\n  annotations: {{{annotations}}}\nspec:\n  type: LoadBalancer\n  ipFamilies: [IPv4]\n  selector: {{app: {name}}}\n  ports: [{ports}]\n"
        )
    };
    let web = |ns: &str, name: &str, node: &str, annotations: &str| {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: {ns}\n  labels: {{app: {name}}}\n  annotations: {{{annotations}}}\nspec:\n  nodeName: {node}\n  containers: [{{name: web, image: 'lab/responder:1'}}]\n"
        )
    };
    let shared = "sart.terassyi.net/addresspool: default-lb-pool, sart.terassyi.net/loadBalancerIPs: 198.18.200.200, sart.terassyi.net/allow-shared-ip: dns";
    let objects = [
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: team-a, labels: {tenant: a}}\n".to_owned(),
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: team-b}\n".to_owned(),
        "apiVersion: sart.terassyi.net/v1alpha2\nkind: AddressPool\nmetadata: {name: team-a-lb}\nspec: {cidr: 198.18.202.0/29, type: service, autoAssign: true, namespaceSelector: {matchLabels: {tenant: a}}}\n".to_owned(),
        "apiVersion: sart.terassyi.net/v1alpha2\nkind: AddressPool\nmetadata: {name: team-a-pods}\nspec: {cidr: 100.66.0.0/24, type: pod, blockSize: 28, autoAssign: true, namespaceSelector: {matchLabels: {tenant: a}}}\n".to_owned(),
        web("team-a", "web", NODE1, ""),
        svc("team-a", "web", "", "{port: 80, targetPort: 80}"),
        svc("team-a", "dns", shared, "{name: tcp, port: 53, protocol: TCP}"),
        web("team-b", "auto", NODE2, ""),
        web("team-b", "named", NODE2, "sart.terassyi.net/addresspool: team-a-pods"),
        web("team-b", "static", NODE1, "sart.terassyi.net/ips: 100.66.0.9"),
        svc("team-b", "named", "sart.terassyi.net/addresspool: team-a-lb", "{port: 80}"),
        svc("team-b", "squat", "sart.terassyi.net/loadBalancerIPs: 198.18.202.5", "{port: 80}"),
        svc("team-b", "dns-join", shared, "{name: udp, port: 53, protocol: UDP}"),
    ];
    lab.apply(&objects.join("---\n"));

    // Team a: its pod and its Service's address from its own pools, reached through BGP.
    eventually(
        "team-a's pod and VIP answer",
        Duration::from_secs(90),
        || {
            let (_, _, ips) = lab.pod("team-a", "web");
            let v4 = ips
                .iter()
                .find(|ip| !ip.contains(':'))
                .cloned()
                .unwrap_or_default();
            if !v4.starts_with("100.66.0.") {
                return Err(format!("podIPs {ips:?}"));
            }
            answers(CLIENT, &v4, 80, "web")?;
            match lab.ingress_in("team-a", "web").as_slice() {
                [vip] if vip == "198.18.202.0" => answers(CLIENT, vip, 80, "web"),
                other => Err(format!("ingress {other:?}")),
            }
        },
    );
    // Team b: the pools for everybody when it names none; refused when it names a's, asks for
    // one of a's addresses, or joins a's shared address with a's key.
    eventually(
        "team-b's pod from the pool for all",
        Duration::from_secs(60),
        || {
            let (_, _, ips) = lab.pod("team-b", "auto");
            match ips.iter().find(|ip| !ip.contains(':')) {
                Some(ip) if ip.starts_with("100.64.") => Ok(()),
                _ => Err(format!("podIPs {ips:?}")),
            }
        },
    );
    for pod in ["named", "static"] {
        eventually(
            &format!("team-b/{pod} refused"),
            Duration::from_secs(60),
            || {
                let ev = lab.kubectl(&[
                    "-n",
                    "team-b",
                    "get",
                    "events",
                    "--field-selector",
                    &format!("involvedObject.name={pod},reason=FailedCreatePodSandBox"),
                    "-o",
                    "jsonpath={.items[*].message}",
                ]);
                if ev.contains("AddressPool team-a-pods does not admit namespace team-b") {
                    Ok(())
                } else {
                    Err(ev)
                }
            },
        );
        let (_, _, ips) = lab.pod("team-b", pod);
        assert!(ips.is_empty(), "team-b/{pod}: {ips:?}");
    }
    for (name, reason, words) in [
        (
            "named",
            "PoolNotAllowed",
            "\"team-a-lb\" does not admit namespace \"team-b\"",
        ),
        (
            "squat",
            "PoolNotAllowed",
            "\"team-a-lb\" does not admit namespace \"team-b\"",
        ),
        (
            "dns-join",
            "RequestedIPTaken",
            "taken by a Service of another namespace",
        ),
    ] {
        eventually(
            &format!("team-b/{name} refused"),
            Duration::from_secs(60),
            || {
                let (r, m) = service_refusal(&lab, "team-b", name)?;
                if r == reason && m.contains(words) && !m.contains("team-a/") {
                    Ok(())
                } else {
                    Err(format!("{r}: {m}"))
                }
            },
        );
        assert!(lab.ingress_in("team-b", name).is_empty());
    }
    assert_eq!(lab.ingress_in("team-a", "dns"), ["198.18.200.200"]);
}

/// `ip ARGS` in a node's network namespace (the node's root file system is not needed).
fn node_ip(node: &str, args: &[&str]) -> String {
    let (ok, out) = run(Command::new("ip")
        .args(["netns", "exec", node, "ip"])
        .args(args));
    assert!(ok, "ip {} on {node}: {out}", args.join(" "));
    out
}

/// Taking over from sart on real nodes. What sart leaves is faked on a running lab: its
/// finalizers on a Node, an EndpointSlice and a BGPPeer; its conflist, which sorts before ours;
/// and a pod wired its way (veth alias `<pool>/<container id>/<ifname>`, routes in table 120
/// behind `ip rule … lookup 120`, no record of ours). Once our controller and node 2's agent
/// restart: the finalizers are off (the controller's RBAC and admission policy as deployed
/// allow that and nothing more), the conflist is set aside and new pods start, the pod is
/// adopted with its container id (its routes in the main table, the rule gone, still
/// answering), no address changed and no request to the VIP failed meanwhile, a new pod gets
/// another address, and deleting the pod frees it.
#[test]
fn taking_over_from_sart_cleans_its_leftovers_and_adopts_its_pods() {
    let lab = Lab::up("takeover");
    let root = |p: &str| lab.dir.join("nodes").join(NODE2).join("root").join(p);

    // A pod on node 2, rewired as sart wires pods.
    let (name, (_, ips)) = lab
        .app_pods()
        .into_iter()
        .find(|(_, (node, _))| node == NODE2)
        .expect("an app pod on node 2");
    let state = root("var/lib/sart/cni");
    let record_of = |ip: &str| -> Option<(std::path::PathBuf, serde_json::Value)> {
        std::fs::read_dir(&state).ok()?.flatten().find_map(|e| {
            let v: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(e.path()).ok()?).ok()?;
            let has = v["addresses"]
                .as_array()?
                .iter()
                .any(|a| a["ip"].as_str() == Some(ip));
            has.then(|| (e.path(), v))
        })
    };
    let (file, record) = record_of(&ips[0]).expect("the pod's record");
    let veth = record["hostIfname"].as_str().unwrap().to_owned();
    let cid = record["containerId"].as_str().unwrap().to_owned();
    std::fs::remove_file(&file).unwrap();
    node_ip(
        NODE2,
        &[
            "link",
            "set",
            &veth,
            "alias",
            &format!("default-pod-pool/{cid}/eth0"),
        ],
    );
    for ip in &ips {
        let fam = if ip.contains(':') { "-6" } else { "-4" };
        node_ip(
            NODE2,
            &[fam, "route", "del", ip, "dev", &veth, "proto", "50"],
        );
        node_ip(
            NODE2,
            &[
                fam, "route", "add", ip, "dev", &veth, "table", "120", "proto", "50", "scope",
                "link",
            ],
        );
        node_ip(
            NODE2,
            &[fam, "rule", "add", "pref", "2000", "lookup", "120"],
        );
    }
    for ip in &ips {
        eventually("the rewired pod answers", Duration::from_secs(10), || {
            answers(CLIENT, ip, 80, &name)
        });
    }
    // sart's conflist, first in the directory, dialing a TCP port nothing serves.
    std::fs::write(
        root("etc/cni/net.d/10-netconf.conflist"),
        r#"{"cniVersion": "1.0.0", "name": "sart-network", "plugins": [
            {"type": "sart-cni", "endpoint": "http://localhost:6000", "timeout": 60},
            {"type": "portmap", "capabilities": {"portMappings": true}}]}"#,
    )
    .unwrap();
    // sart's finalizers.
    let slice = lab.kubectl(&[
        "get",
        "endpointslices",
        "-l",
        "kubernetes.io/service-name=app-svc-cluster",
        "-o",
        "jsonpath={.items[0].metadata.name}",
    ]);
    let peer = lab.kubectl(&[
        "get",
        "bgppeers",
        "-o",
        "jsonpath={.items[0].metadata.name}",
    ]);
    let finalize = |kind: &str, name: &str, f: &str| {
        let patch = format!(r#"{{"metadata": {{"finalizers": ["{f}"]}}}}"#);
        lab.kubectl(&["patch", kind, name, "--type=merge", "-p", &patch]);
    };
    finalize("node", NODE1, "node.sart.terassyi.net/finalizer");
    finalize(
        "endpointslice",
        &slice,
        "endpointslice.sart.terassyi.net/finalizer",
    );
    finalize("bgppeer", &peer, "bgppeer.sart.terassyi.net/finalizer");

    // Our controller and node 2's agent start again, as after `kubectl apply` over sart, while
    // the client asks the VIP every 50 ms.
    let vips = lab.ingress("app-svc-cluster");
    let pods_before = lab.app_pods();
    let (stop, prober) = Lab::probe(VIP4.into(), "app-");
    std::thread::sleep(Duration::from_millis(500));
    let agent = lab.kube_system_pod("sartd-agent", NODE2);
    lab.kubectl(&["-n", "kube-system", "delete", "pod", &agent]);
    lab.kubectl(&[
        "-n",
        "kube-system",
        "delete",
        "pod",
        "-l",
        "app.kubernetes.io/name=sart-controller",
    ]);
    for what in ["daemonset/sartd-agent", "deployment/sart-controller"] {
        lab.kubectl(&[
            "-n",
            "kube-system",
            "rollout",
            "status",
            what,
            "--timeout=120s",
        ]);
    }

    let finalizers = |kind: &str, name: &str| {
        lab.kubectl(&["get", kind, name, "-o", "jsonpath={.metadata.finalizers}"])
    };
    eventually(
        "sart's finalizers taken off",
        Duration::from_secs(60),
        || {
            let left = [
                finalizers("node", NODE1),
                finalizers("endpointslice", &slice),
                finalizers("bgppeer", &peer),
            ];
            if left.iter().all(|f| f.trim().is_empty() || f.trim() == "[]") {
                Ok(())
            } else {
                Err(format!("{left:?}"))
            }
        },
    );
    assert!(root("etc/cni/net.d/10-netconf.conflist.sart-replaced").exists());
    assert!(!root("etc/cni/net.d/10-netconf.conflist").exists());
    // (The old agent pod may still be going: asked until the new one answers.)
    eventually("the new agent's logs", Duration::from_secs(30), || {
        let agent = lab.kube_system_pod("sartd-agent", NODE2);
        let (_, installed) =
            lab.try_kubectl(&["-n", "kube-system", "logs", &agent, "-c", "install-cni"]);
        let (_, log) = lab.try_kubectl(&["-n", "kube-system", "logs", &agent]);
        if installed.contains("set aside") && log.contains("adopted a running pod") {
            Ok(())
        } else {
            Err(format!("{installed}\n{log}"))
        }
    });

    // The pod is adopted under sart's container id; its routes are ours now.
    let (_, adopted) = record_of(&ips[0]).expect("the pod recorded again");
    assert_eq!(adopted["containerId"], cid.as_str());
    assert_eq!(adopted["hostIfname"], veth.as_str());
    assert_eq!(
        node_ip(NODE2, &["-4", "route", "show", "table", "120"]).trim(),
        ""
    );
    assert_eq!(
        node_ip(NODE2, &["-6", "route", "show", "table", "120"]).trim(),
        ""
    );
    for fam in ["-4", "-6"] {
        let rules = node_ip(NODE2, &[fam, "rule", "show"]);
        assert!(!rules.contains("lookup 120"), "{rules}");
    }
    for ip in &ips {
        let main = node_ip(NODE2, &["route", "get", ip]);
        assert!(main.contains(&format!("dev {veth}")), "{main}");
        eventually("the adopted pod answers", Duration::from_secs(10), || {
            answers(CLIENT, ip, 80, &name)
        });
    }

    // The takeover changed no address and failed no request to the VIP.
    std::thread::sleep(Duration::from_secs(2));
    stop.store(true, Ordering::Relaxed);
    let (sent, failed) = prober.join().unwrap();
    eprintln!("VIP requests across the takeover: {failed} of {sent} failed");
    assert!(sent > 20, "{sent}");
    assert_eq!(
        failed,
        0,
        "requests failed across the takeover\n{}",
        lab.logs()
    );
    assert_eq!(lab.ingress("app-svc-cluster"), vips);
    assert_eq!(lab.app_pods(), pods_before);

    // A new pod on node 2 starts (through our conflist) with addresses of its own.
    lab.apply(&pod("after-sart", NODE2, "app: after-sart", &[80]));
    lab.kubectl(&[
        "wait",
        "--for=condition=Ready",
        "pod/after-sart",
        "--timeout=60s",
    ]);
    let (_, _, new_ips) = lab.pod("default", "after-sart");
    assert!(
        !new_ips.is_empty() && new_ips.iter().all(|ip| !ips.contains(ip)),
        "{new_ips:?} vs {ips:?}"
    );
    answers(CLIENT, &new_ips[0], 80, "after-sart").unwrap();

    // Deleting the adopted pod frees it: the runtime's DEL names sart's container id. (Its
    // Deployment's next pod may get the same address at once: the record is looked for by
    // container id.)
    lab.kubectl(&["delete", "pod", &name, "--wait=true", "--timeout=60s"]);
    let record_of_container = || {
        std::fs::read_dir(&state).ok()?.flatten().find_map(|e| {
            let text = std::fs::read_to_string(e.path()).ok()?;
            let v: serde_json::Value = serde_json::from_str(&text).ok()?;
            (v["containerId"].as_str() == Some(cid.as_str())).then_some(text)
        })
    };
    eventually(
        "the adopted pod's record and veth gone",
        Duration::from_secs(30),
        || {
            let links = node_ip(NODE2, &["-o", "link", "show"]);
            match (record_of_container(), links.contains(&format!("{veth}@"))) {
                (None, false) => Ok(()),
                other => Err(format!("{other:?}")),
            }
        },
    );
}
