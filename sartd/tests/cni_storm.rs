//! A storm of pod churn on one node: 1,000 ADDs and 1,000 DELs from 50 runtimes at once, each
//! run of the real `sart-cni` as a runtime runs it, with the agent killed (no grace) and
//! restarted twice in the middle. Every runtime always holds one pod's address (the next pod is
//! added before the last one goes), so a restart that forgot an address would hand it out twice. Runtimes retry what fails, as kubelet does; the only failure
//! allowed is "try again later" (11). Afterwards, and after a GC, no address is held twice,
//! none is left held, and no veth or record is left. Needs root and the built binaries.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;
use common::cni::node_lab;
use common::*;
use testkube::node::NodeLab;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use interop::Netns;
use interop::sartd::sartd_binary;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, PostParams};
use serde_json::{Value, json};

const NODE: &str = "storm1";
const WORKERS: usize = 50;
const ROUNDS: usize = 20;
const WAIT: Duration = Duration::from_secs(30);

/// One run of sart-cni from the node's namespace; (success, stdout JSON).
fn cni(node: &Netns, env: &[(&str, String)], conf: &Value) -> (bool, Value) {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    run_plugin(node, &sartd_binary().with_file_name("sart-cni"), &env, conf)
}

struct Storm<'a> {
    lab: &'a NodeLab,
    conf: Value,
    ops: AtomicUsize,
    retries: AtomicUsize,
    /// Addresses held right now, as the runtimes see it.
    live: Mutex<BTreeSet<String>>,
    duplicates: Mutex<Vec<String>>,
    /// Failures other than "try again later", by code.
    other_failures: Mutex<BTreeMap<String, usize>>,
}

impl Storm<'_> {
    /// Runs `cmd` until it succeeds (a runtime retries), counting what failed.
    fn until_ok(&self, cmd: &str, id: &str, netns: &str, pod: &str) -> Value {
        let env = vec![
            ("CNI_COMMAND", cmd.to_string()),
            ("CNI_CONTAINERID", id.to_string()),
            ("CNI_NETNS", netns.to_string()),
            ("CNI_IFNAME", "eth0".to_string()),
            (
                "CNI_ARGS",
                format!("K8S_POD_NAMESPACE=default;K8S_POD_NAME={pod}"),
            ),
            ("CNI_PATH", "/usr/lib/cni".to_string()),
        ];
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let (ok, v) = cni(&self.lab.node_ns, &env, &self.conf);
            if ok {
                return v;
            }
            self.retries.fetch_add(1, Ordering::Relaxed);
            if v["code"].as_u64() != Some(11) {
                *self
                    .other_failures
                    .lock()
                    .unwrap()
                    .entry(format!("{cmd} {}: {}", v["code"], v["msg"]))
                    .or_default() += 1;
            }
            assert!(Instant::now() < deadline, "{cmd} {id} never succeeded: {v}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// ADD the next pod before the previous one goes, so that every worker always holds an
    /// address, across the agent's restarts too.
    fn worker(&self, w: usize, slots: [&str; 2]) {
        let pod = format!("storm-{w}");
        let mut held: Option<(String, &str, Vec<String>)> = None;
        for round in 0..ROUNDS {
            let id = format!("storm-{w}-{round}");
            let netns = slots[round % 2];
            let r = self.until_ok("ADD", &id, netns, &pod);
            let addrs: Vec<String> = r["ips"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["address"].as_str().unwrap().to_owned())
                .collect();
            assert!(!addrs.is_empty(), "{r}");
            {
                let mut live = self.live.lock().unwrap();
                for a in &addrs {
                    if !live.insert(a.clone()) {
                        self.duplicates.lock().unwrap().push(format!("{a} ({id})"));
                    }
                }
            }
            self.ops.fetch_add(1, Ordering::Relaxed);
            if let Some(prev) = held.replace((id, netns, addrs)) {
                self.release(prev, &pod);
            }
        }
        if let Some(last) = held.take() {
            self.release(last, &pod);
        }
    }

    fn release(&self, (id, netns, addrs): (String, &str, Vec<String>), pod: &str) {
        // Forgotten before DEL: once DEL is sent the address may go to someone else.
        {
            let mut live = self.live.lock().unwrap();
            for a in &addrs {
                live.remove(a);
            }
        }
        self.until_ok("DEL", &id, netns, pod);
        self.ops.fetch_add(1, Ordering::Relaxed);
    }
}

fn sart_json(lab: &NodeLab, args: &[&str]) -> Value {
    let bin = sartd_binary().with_file_name("sart");
    let endpoint = format!("unix://{}", lab.cni_socket.display());
    let out = std::process::Command::new(bin)
        .args(args)
        .args(["-e", &endpoint, "-o", "json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "sart {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn churn_with_agent_restarts_leaks_nothing() {
    let (cluster, client, lab) = node_lab(NODE, 98, 65030, &["--mode=cni"]).await;
    let ctl = pods_controller(&client);
    lab.register(&client).await.unwrap();
    // Blocks of 32: the first burst of 50 already needs two.
    ok(apply(
        cluster,
        &format!(
            "{}---\napiVersion: sart.terassyi.net/v1alpha2\nkind: AddressPool\nmetadata: {{name: storm-pods}}\nspec: {{cidr: 198.18.236.0/22, type: pod, blockSize: 27, autoAssign: true}}\n",
            lab.cluster_bgp()
        ),
    ));
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    for w in 0..WORKERS {
        let p: Pod = serde_json::from_value(json!({
            "metadata": {"name": format!("storm-{w}")},
            "spec": {"nodeName": NODE, "containers": [{"name": "c", "image": "none"}]}
        }))
        .unwrap();
        pods.create(&PostParams::default(), &p).await.unwrap();
    }
    let netns: Vec<Netns> = (0..WORKERS * 2)
        .map(|w| Netns::new(&format!("s{w}")).unwrap())
        .collect();
    let conf = json!({"cniVersion": "1.1.0", "name": "sart-network", "type": "sart-cni",
        "endpoint": format!("unix://{}", lab.cni_socket.display()), "timeout": 30});
    eventually("STATUS ready", WAIT, || async {
        let env = [("CNI_COMMAND", "STATUS".to_string())];
        match cni(&lab.node_ns, &env, &conf) {
            (true, _) => Ok(()),
            (false, v) => Err(v.to_string()),
        }
    })
    .await;

    let storm = Storm {
        lab: &lab,
        conf: conf.clone(),
        ops: AtomicUsize::new(0),
        retries: AtomicUsize::new(0),
        live: Mutex::new(BTreeSet::new()),
        duplicates: Mutex::new(Vec::new()),
        other_failures: Mutex::new(BTreeMap::new()),
    };
    let total = WORKERS * ROUNDS * 2;
    let started = Instant::now();
    std::thread::scope(|s| {
        let paths: Vec<String> = netns
            .iter()
            .map(|n| format!("/run/netns/{}", n.name()))
            .collect();
        for w in 0..WORKERS {
            let storm = &storm;
            let (a, b) = (paths[2 * w].clone(), paths[2 * w + 1].clone());
            s.spawn(move || storm.worker(w, [&a, &b]));
        }
        // The agent dies twice mid-storm, without a chance to finish anything.
        for at in [total * 3 / 10, total * 7 / 10] {
            while storm.ops.load(Ordering::Relaxed) < at {
                std::thread::sleep(Duration::from_millis(20));
            }
            lab.kill_agent();
            std::thread::sleep(Duration::from_millis(300));
            lab.start_agent().unwrap();
        }
    });
    eprintln!(
        "storm: {} operations in {:?}, {} retries",
        storm.ops.load(Ordering::Relaxed),
        started.elapsed(),
        storm.retries.load(Ordering::Relaxed)
    );
    assert_eq!(storm.ops.load(Ordering::Relaxed), total);
    assert!(
        storm.duplicates.lock().unwrap().is_empty(),
        "addresses held twice: {:?}",
        storm.duplicates.lock().unwrap()
    );
    assert!(
        storm.other_failures.lock().unwrap().is_empty(),
        "failures other than 'try again later': {:?}",
        storm.other_failures.lock().unwrap()
    );

    // GC with nothing in use: nothing may be left, in the agent or the kernel.
    let mut gc = conf.clone();
    gc["cni.dev/valid-attachments"] = json!([]);
    let (ok_gc, v) = cni(&lab.node_ns, &[("CNI_COMMAND", "GC".to_string())], &gc);
    assert!(ok_gc, "{v}");
    let allocations = sart_json(&lab, &["ipam", "allocations"]);
    assert_eq!(allocations, json!([]), "leaked: {allocations}");
    let blocks = sart_json(&lab, &["ipam", "blocks"]);
    let held: Vec<&Value> = blocks
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["allocated"] != "0")
        .collect();
    assert!(held.is_empty(), "blocks still holding addresses: {held:?}");
    assert!(!blocks.as_array().unwrap().is_empty(), "{blocks}");
    assert_eq!(lab.records(), 0);
    // DEL returns before the kernel has unregistered the veth: give it a moment.
    eventually("no veth left", Duration::from_secs(10), || async {
        match lab.pod_veths().unwrap() {
            0 => Ok(()),
            n => Err(format!("{n} veths")),
        }
    })
    .await;
    ctl.abort();
    lab.kill_agent();
}
