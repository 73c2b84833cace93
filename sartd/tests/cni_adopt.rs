//! Running pods the agent has no record of, on one node: one wired by sart before this agent
//! took over (its veth alias `<pool>/<container id>/<ifname>`, its route in table 120 and the
//! `ip rule` to it) and one of ours whose record was lost with a wiped state directory. The
//! restarted agent takes both in before it serves an ADD: nothing is handed out twice, both stay
//! reachable, sart's route moves to the main table and its rule goes, and DEL frees each.
//! Needs root and the built binaries.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;
use common::cni::*;
use common::*;

use std::time::Duration;

use interop::Netns;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(30);
const NODE: &str = "adopt1";

/// What a kubelet writes once the pod's sandbox is up.
async fn running(client: &kube::Client, name: &str, ip: &str) {
    let api: Api<Pod> = Api::namespaced(client.clone(), "default");
    let status = json!({"status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}]}});
    api.patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn running_pods_without_records_are_adopted_before_any_add() {
    let (cluster, client, lab) =
        node_lab(NODE, 96, 65050, &["--mode=cni", "--cni-gc-interval=2"]).await;
    let _ctl = pods_controller(&client);
    lab.register(&client).await.unwrap();
    ok(apply(
        cluster,
        &format!(
            "{}---\napiVersion: sart.terassyi.net/v1alpha2\nkind: AddressPool\nmetadata: {{name: adopt-pods}}\nspec: {{cidr: 198.18.240.0/24, type: pod, blockSize: 29, autoAssign: true}}\n",
            lab.cluster_bgp()
        ),
    ));
    let h = Harness {
        lab: &lab,
        client: client.clone(),
        endpoint: format!("unix://{}", lab.cni_socket.display()),
        node: NODE,
    };
    let ready = || async {
        let probe = PodNs {
            name: "probe".into(),
            namespace: "default".into(),
            netns: Netns::new("probe").unwrap(),
            id: "probe".into(),
        };
        eventually("STATUS ready", WAIT, || async {
            match h.call("STATUS", &probe, &h.conf("1.1.0")) {
                (true, _) => Ok(()),
                (false, v) => Err(v.to_string()),
            }
        })
        .await;
    };
    ready().await;

    // One pod of ours, as the kubelet sees it.
    let p0 = h.pod("default", "p0", json!({})).await;
    assert_eq!(h.add(&p0, "1.0.0"), ["198.18.240.0/32"]);
    running(&client, "p0", "198.18.240.0").await;

    // One pod wired by sart: the next address of the same block, which this agent never gave.
    let old = h.pod("default", "old", json!({})).await;
    running(&client, "old", "198.18.240.1").await;
    let node_ip = lab.node_ip().to_string();
    let n = &lab.node_ns;
    n.ip(&[
        "link",
        "add",
        "veth1234abcd",
        "type",
        "veth",
        "peer",
        "name",
        "eth0",
        "netns",
        old.netns.name(),
    ])
    .unwrap();
    n.ip(&[
        "link",
        "set",
        "veth1234abcd",
        "alias",
        "adopt-pods/1234abcd5678/eth0",
    ])
    .unwrap();
    n.ip(&[
        "addr",
        "add",
        &format!("{node_ip}/32"),
        "dev",
        "veth1234abcd",
    ])
    .unwrap();
    n.ip(&["link", "set", "veth1234abcd", "up"]).unwrap();
    n.ip(&[
        "route",
        "add",
        "198.18.240.1/32",
        "dev",
        "veth1234abcd",
        "table",
        "120",
        "proto",
        "50",
        "scope",
        "link",
    ])
    .unwrap();
    for fam in ["-4", "-6"] {
        n.ip(&[fam, "rule", "add", "pref", "2000", "lookup", "120"])
            .unwrap();
    }
    let o = &old.netns;
    o.ip(&["addr", "add", "198.18.240.1/32", "dev", "eth0"])
        .unwrap();
    o.ip(&["link", "set", "eth0", "up"]).unwrap();
    o.ip(&["route", "add", &node_ip, "dev", "eth0", "scope", "link"])
        .unwrap();
    o.ip(&["route", "add", "default", "via", &node_ip]).unwrap();
    assert!(ping(n, "198.18.240.1"), "sart's pod reachable before");

    // The agent restarts with its records gone.
    lab.kill_agent();
    std::fs::remove_dir_all(&lab.state_dir).unwrap();
    lab.start_agent().unwrap();
    ready().await;
    let log = lab.agent_log();
    assert!(log.contains("adopted a running pod"), "{log}");
    assert_eq!(h.records(), 2, "both pods recorded again");
    // Both keep their traffic: our veth was not swept, sart's route moved.
    assert!(ping(n, "198.18.240.0"));
    assert!(ping(n, "198.18.240.1"));
    assert_eq!(n.ip(&["route", "show", "table", "120"]).unwrap().trim(), "");
    let main = n
        .ip(&["route", "show", "198.18.240.1", "proto", "50"])
        .unwrap();
    assert!(main.contains("dev veth1234abcd"), "{main}");
    for fam in ["-4", "-6"] {
        let rules = n.ip(&[fam, "rule", "show"]).unwrap();
        assert!(!rules.contains("lookup 120"), "{rules}");
    }
    let link = n.ip(&["-d", "link", "show", "veth1234abcd"]).unwrap();
    assert!(
        link.contains("group 21313"),
        "source validation covers it: {link}"
    );

    // A new pod gets neither address.
    let p2 = h.pod("default", "p2", json!({})).await;
    assert_eq!(h.add(&p2, "1.0.0"), ["198.18.240.2/32"]);

    // The runtime's DEL frees each: sart's by its container id, ours by its veth.
    let old_as_runtime_knows_it = PodNs {
        name: old.name.clone(),
        namespace: old.namespace.clone(),
        netns: Netns::new("old-del").unwrap(),
        id: "1234abcd5678".into(),
    };
    assert!(h.call("DEL", &old_as_runtime_knows_it, &h.conf("1.0.0")).0);
    assert!(h.call("DEL", &p0, &h.conf("1.0.0")).0);
    assert_eq!(h.records(), 1);
    assert!(!n.ip(&["link", "show"]).unwrap().contains("veth1234abcd"));
    let p3 = h.pod("default", "p3", json!({})).await;
    assert_eq!(h.add(&p3, "1.0.0"), ["198.18.240.0/32"]);
    let p4 = h.pod("default", "p4", json!({})).await;
    assert_eq!(h.add(&p4, "1.0.0"), ["198.18.240.1/32"]);
    drop(old);
}
