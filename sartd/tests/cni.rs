//! Pod networking, end to end on one node: the real `sart-cni` run exactly as a container
//! runtime runs it (CNI_* environment, configuration on stdin, from a process in the node's
//! namespace), the agent and speaker in that namespace, the controller against the real API
//! server, FRR as the router. Pods are network namespaces with Pod objects behind them.
//!
//! Covered: ADD in every CNI version with addresses from the auto-assign pools (dual-stack), a
//! namespace's pool, a pod's pool and static addresses, a pool fenced by namespaceSelector;
//! pod-to-pod and node-to-pod traffic; the block at FRR; a block running low bringing a second one ahead of need; CHECK; chaining
//! with Debian's portmap, bandwidth and tuning; bad input and its codes with nothing left
//! behind; a pod deleted without a DEL (leak GC); an agent killed and restarted; GC; DEL; empty
//! blocks released.
//! Needs root and the built binaries.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;
use common::cni::*;
use common::*;

use std::path::Path;
use std::time::Duration;

use interop::{wait_route, wait_route_gone};
use k8s::crd::{AddressBlock, AddressPool};
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{Api, PostParams};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(30);
const NODE: &str = "cni1";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_get_addresses_routes_and_blocks() {
    let (cluster, client, lab) = node_lab(
        NODE,
        97,
        65020,
        &[
            "--mode=cni",
            "--block-release-after=2",
            "--cni-gc-interval=2",
        ],
    )
    .await;
    // A node that does not forward IPv6 yet (the harness makes every namespace a router): the
    // agent turns it on once it sees an IPv6 pod pool.
    lab.node_ns
        .exec(&["sysctl", "-qw", "net.ipv6.conf.all.forwarding=0"])
        .unwrap();
    let ctl = pods_controller(&client);
    lab.register(&client).await.unwrap();
    ok(apply(
        cluster,
        &format!(
            "{}---\napiVersion: sart.terassyi.net/v1alpha2\nkind: AddressPool\nmetadata: {{name: cni-pods}}\nspec: {{cidr: 198.18.232.0/24, type: pod, blockSize: 29, autoAssign: true}}\n---\napiVersion: sart.terassyi.net/v1alpha2\nkind: AddressPool\nmetadata: {{name: cni-pods6}}\nspec: {{cidr: 'fd00:232::/112', type: pod, blockSize: 124, autoAssign: true}}\n---\napiVersion: sart.terassyi.net/v1alpha2\nkind: AddressPool\nmetadata: {{name: cni-tenant}}\nspec: {{cidr: 198.18.233.0/24, type: pod, blockSize: 30, autoAssign: false}}\n---\napiVersion: sart.terassyi.net/v1alpha2\nkind: AddressPool\nmetadata: {{name: cni-fenced}}\nspec: {{cidr: 198.18.234.0/24, type: pod, blockSize: 30, autoAssign: false, namespaceSelector: {{matchLabels: {{team: fenced}}}}}}\n",
            lab.cluster_bgp()
        ),
    ));
    for ns in [
        json!({"metadata": {"name": "tenant",
            "annotations": {"sart.terassyi.net/addresspool": "cni-tenant"}}}),
        json!({"metadata": {"name": "fenced", "labels": {"team": "fenced"},
            "annotations": {"sart.terassyi.net/addresspool": "cni-fenced"}}}),
    ] {
        let ns: Namespace = serde_json::from_value(ns).unwrap();
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &ns)
            .await
            .unwrap();
    }
    let h = Harness {
        lab: &lab,
        client: client.clone(),
        endpoint: format!("unix://{}", lab.cni_socket.display()),
        node: NODE,
    };

    // STATUS turns ready once the agent has the cluster and a session.
    let probe = h.pod("default", "probe", json!({})).await;
    eventually("STATUS ready", WAIT, || async {
        match h.call("STATUS", &probe, &h.conf("1.1.0")) {
            (true, _) => Ok(()),
            (false, v) => Err(v.to_string()),
        }
    })
    .await;

    // The first pod: one address of each auto-assign pool, lowest first. The agent's pool watch
    // may trail the apply on a loaded machine (STATUS does not wait for pools, which may come at
    // any time): "no pool applies" is retried for a while, as a runtime retries ADD.
    let p0 = h.pod("default", "p0", json!({})).await;
    let mut first = h.call("ADD", &p0, &h.conf("1.1.0"));
    for _ in 0..20 {
        if first.0 || code(&first.1) != Some(102) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
        first = h.call("ADD", &p0, &h.conf("1.1.0"));
    }
    let (ok0, r0) = first;
    assert!(ok0, "{r0}");
    assert_eq!(
        addresses(&r0),
        ["198.18.232.0/32", "fd00:232::/128"],
        "{r0}"
    );
    assert_eq!(r0["ips"][0]["gateway"], lab.node_ip().to_string());
    assert_eq!(r0["ips"][0]["interface"], 1);
    assert_eq!(r0["interfaces"][1]["name"], "eth0");
    assert_eq!(r0["interfaces"][1]["sandbox"], p0.path());
    assert_eq!(r0["routes"][0]["dst"], "0.0.0.0/0");
    // The host veth says whose it is (a starting agent removes ours that no record names).
    let host_veth0 = r0["interfaces"][0]["name"].as_str().unwrap().to_owned();
    let shown = lab
        .node_ns
        .ip(&["-d", "link", "show", "dev", &host_veth0])
        .unwrap();
    assert!(shown.contains("alias sart-cni:eth0"), "{shown}");
    let eth0 = p0.netns.ip(&["-o", "addr", "show", "eth0"]).unwrap();
    assert!(eth0.contains("198.18.232.0/32"), "{eth0}");
    assert!(ping(&lab.node_ns, "198.18.232.0"));
    assert!(ping(&lab.node_ns, "fd00:232::"));
    // The block reaches the router with the node's AS.
    let block0 = "198.18.232.0/29".parse().unwrap();
    let path = wait_route(&lab.frr, block0, WAIT, |_| true).unwrap();
    assert_eq!(path.as_path, vec![65020]);
    // ADD again for the same attachment: the same addresses, nothing more taken.
    let (again, r) = h.call("ADD", &p0, &h.conf("1.1.0"));
    assert!(again, "{r}");
    assert_eq!(addresses(&r), addresses(&r0));
    assert_eq!(h.records(), 1);

    // Every other version, each result in its own shape; pod to pod through the node.
    let mut pods = Vec::new();
    for (i, v) in ["0.3.0", "0.3.1", "0.4.0", "1.0.0"].iter().enumerate() {
        let p = h.pod("default", &format!("p{}", i + 1), json!({})).await;
        let (ok, r) = h.call("ADD", &p, &h.conf(v));
        assert!(ok, "{v}: {r}");
        assert_eq!(r["cniVersion"], *v);
        assert_eq!(r["ips"][0].get("version").is_some(), v.starts_with("0."));
        assert_eq!(host(&addresses(&r)[0]), format!("198.18.232.{}", i + 1));
        pods.push(p);
    }
    assert!(ping(&p0.netns, "198.18.232.1"));
    assert!(ping(&pods[3].netns, "fd00:232::"));

    // Source validation: what a pod sends from an address that is not its own (here as if
    // from the router, as a forged BFD Down would be) is dropped as it enters the node, IPv4
    // and IPv6; from its own address it passes. Counted in a chain right after the guard's.
    let shown = lab
        .node_ns
        .ip(&["-d", "link", "show", "dev", &host_veth0])
        .unwrap();
    assert!(shown.contains("group 21313"), "{shown}");
    // With an IPv6 pod pool the node forwards IPv6, and its own interface still takes router
    // advertisements (accept_ra 1 became 2); a pod's veth does not.
    let sysctl = |key: &str| {
        lab.node_ns
            .exec(&["cat", &format!("/proc/sys/net/ipv6/conf/{key}")])
            .unwrap()
            .trim()
            .to_owned()
    };
    assert_eq!(sysctl("all/forwarding"), "1");
    assert_eq!(sysctl(&format!("{}/accept_ra", lab.link.a.ifname)), "2");
    assert_eq!(sysctl(&format!("{host_veth0}/accept_ra")), "1");
    lab.node_ns
        .exec_with_input(
            &["nft", "-f", "-"],
            "table inet obs {\n chain pre {\n  type filter hook prerouting priority -299;\n  \
             ip saddr 198.18.99.99 counter\n  ip6 saddr fd00:99::99 counter\n  \
             ip saddr 198.18.232.0 counter\n }\n}\n",
        )
        .unwrap();
    p0.netns
        .ip(&["addr", "add", "198.18.99.99/32", "dev", "eth0"])
        .unwrap();
    p0.netns
        .ip(&["addr", "add", "fd00:99::99/128", "dev", "eth0", "nodad"])
        .unwrap();
    for (src, dst) in [
        ("198.18.99.99", "198.18.232.1"),
        ("fd00:99::99", "fd00:232::1"),
        ("198.18.232.0", "198.18.232.1"),
    ] {
        let _ = p0
            .netns
            .exec(&["ping", "-c2", "-i0.2", "-W1", "-I", src, dst]);
    }
    let counted = lab
        .node_ns
        .exec(&["nft", "list", "table", "inet", "obs"])
        .unwrap();
    let packets: Vec<u64> = counted
        .lines()
        .filter_map(|l| l.split("counter packets ").nth(1))
        .filter_map(|r| r.split_whitespace().next()?.parse().ok())
        .collect();
    assert_eq!(packets.len(), 3, "{counted}");
    assert_eq!(
        packets[..2],
        [0, 0],
        "forged sources got past the node's guard: {counted}"
    );
    assert!(
        packets[2] > 0,
        "the pod's own address was dropped: {counted}"
    );
    lab.node_ns
        .exec(&["nft", "delete", "table", "inet", "obs"])
        .unwrap();
    for a in ["198.18.99.99/32", "fd00:99::99/128"] {
        p0.netns.ip(&["addr", "del", a, "dev", "eth0"]).unwrap();
    }

    // CHECK: true of a pod as set up, false once its address is gone.
    let mut check = h.conf("1.1.0");
    check["prevResult"] = r0.clone();
    assert!(h.call("CHECK", &p0, &check).0);
    p0.netns
        .ip(&["addr", "del", "198.18.232.0/32", "dev", "eth0"])
        .unwrap();
    let (checked, v) = h.call("CHECK", &p0, &check);
    assert!(!checked && code(&v) == Some(100), "{v}");
    // ADD again mends it.
    assert!(h.call("ADD", &p0, &h.conf("1.1.0")).0);
    assert!(h.call("CHECK", &p0, &check).0);

    // A namespace's pool, a pod's pool, static addresses.
    let t0 = h.pod("tenant", "t0", json!({})).await;
    assert_eq!(h.add(&t0, "1.0.0"), ["198.18.233.0/32"]);
    let t1 = h
        .pod(
            "default",
            "t1",
            json!({"sart.terassyi.net/addresspool": "cni-tenant"}),
        )
        .await;
    assert_eq!(h.add(&t1, "1.0.0"), ["198.18.233.1/32"]);
    let s0 = h
        .pod(
            "default",
            "s0",
            json!({"sart.terassyi.net/ips": "198.18.232.6"}),
        )
        .await;
    assert_eq!(h.add(&s0, "1.0.0"), ["198.18.232.6/32"]);
    let s1 = h
        .pod(
            "default",
            "s1",
            json!({"sart.terassyi.net/ips": "198.18.232.6"}),
        )
        .await;
    let (added, v) = h.call("ADD", &s1, &h.conf("1.0.0"));
    assert!(!added && code(&v) == Some(101), "{v}");
    let s2 = h
        .pod(
            "default",
            "s2",
            json!({"sart.terassyi.net/ips": "198.18.250.1"}),
        )
        .await;
    let (added, v) = h.call("ADD", &s2, &h.conf("1.0.0"));
    assert!(!added && code(&v) == Some(101), "{v}");

    // A pool fenced by namespaceSelector: its namespace's pods get it; another namespace's
    // cannot, by annotation or by static address (CNI error 4, nothing allocated).
    let f0 = h.pod("fenced", "f0", json!({})).await;
    assert_eq!(h.add(&f0, "1.0.0"), ["198.18.234.0/32"]);
    let records = h.records();
    for (name, ann) in [
        ("f1", json!({"sart.terassyi.net/addresspool": "cni-fenced"})),
        ("f2", json!({"sart.terassyi.net/ips": "198.18.234.3"})),
    ] {
        let pod = h.pod("default", name, ann).await;
        let (added, v) = h.call("ADD", &pod, &h.conf("1.0.0"));
        let msg = v["msg"].as_str().unwrap_or_default();
        assert!(
            !added && code(&v) == Some(4) && msg.contains("does not admit namespace default"),
            "{v}"
        );
    }
    assert_eq!(h.records(), records, "a refused ADD keeps nothing");

    // The /29 is full after two more pods. The first of them leaves one address free (at most
    // a quarter of a block): the second block is asked for ahead, before any ADD needs it.
    let blocks: Api<AddressBlock> = Api::all(client.clone());
    let p5 = h.pod("default", "p5", json!({})).await;
    let p7 = h.pod("default", "p7", json!({})).await;
    let p8 = h.pod("default", "p8", json!({})).await;
    assert!(blocks.get_opt("cni-pods-1").await.unwrap().is_none());
    assert_eq!(host(&h.add(&p5, "1.0.0")[0]), "198.18.232.5");
    eventually("the next block asked for ahead", WAIT, || async {
        match blocks.get_opt("cni-pods-1").await {
            Ok(Some(_)) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    wait_route(&lab.frr, "198.18.232.8/29".parse().unwrap(), WAIT, |_| true).unwrap();
    assert_eq!(host(&h.add(&p7, "1.0.0")[0]), "198.18.232.7");
    assert_eq!(host(&h.add(&p8, "1.0.0")[0]), "198.18.232.8");
    // Usage in the blocks' and the pool's status (written every few seconds, not per pod).
    let pools: Api<AddressPool> = Api::all(client.clone());
    eventually("usage in status", WAIT, || async {
        let b = blocks.get("cni-pods-0").await.map_err(|e| e.to_string())?;
        let p = pools.get("cni-pods").await.map_err(|e| e.to_string())?;
        let (bu, bf) = b.status.map_or((None, None), |s| (s.used, s.free));
        let pu = p.status.and_then(|s| s.used);
        if (bu, bf, pu) == (Some(8), Some(0), Some(9)) {
            Ok(())
        } else {
            Err(format!("block used {bu:?} free {bf:?}, pool used {pu:?}"))
        }
    })
    .await;

    // Chained with Debian's stock plugins, which read our result as prevResult.
    let c0 = h.pod("default", "c0", json!({})).await;
    let chain = [
        json!({"type": "sart-cni", "endpoint": h.endpoint, "timeout": 30}),
        json!({"type": "portmap", "capabilities": {"portMappings": true}, "snat": true,
            "runtimeConfig": {"portMappings": [{"hostPort": 18080, "containerPort": 80, "protocol": "tcp"}]}}),
        json!({"type": "bandwidth", "capabilities": {"bandwidth": true},
            "runtimeConfig": {"bandwidth": {"ingressRate": 100000000, "ingressBurst": 1000000,
                "egressRate": 100000000, "egressBurst": 1000000}}}),
        json!({"type": "tuning", "sysctl": {"net.core.somaxconn": "512"}}),
    ];
    let (path, args) = (c0.path(), c0.args());
    let env = |cmd: &'static str| {
        vec![
            ("CNI_COMMAND", cmd),
            ("CNI_CONTAINERID", c0.id.as_str()),
            ("CNI_NETNS", path.as_str()),
            ("CNI_IFNAME", "eth0"),
            ("CNI_ARGS", args.as_str()),
            ("CNI_PATH", "/usr/lib/cni"),
        ]
    };
    let mut prev: Option<Value> = None;
    for p in &chain {
        let mut conf = p.clone();
        conf["cniVersion"] = json!("1.0.0");
        conf["name"] = json!("sart-network");
        if let Some(r) = &prev {
            conf["prevResult"] = r.clone();
        }
        let bin = if p["type"] == "sart-cni" {
            sart_cni()
        } else {
            Path::new("/usr/lib/cni").join(p["type"].as_str().unwrap())
        };
        let (ok, r) = plugin(&lab.node_ns, &bin, &env("ADD"), &conf);
        assert!(ok, "{}: {r}", p["type"]);
        assert_eq!(addresses(&r), addresses(prev.as_ref().unwrap_or(&r)));
        prev = Some(r);
    }
    let chained = prev.clone().unwrap();
    assert_eq!(
        c0.netns
            .exec(&["cat", "/proc/sys/net/core/somaxconn"])
            .unwrap()
            .trim(),
        "512"
    );
    let host_veth = chained["interfaces"][0]["name"]
        .as_str()
        .unwrap()
        .to_owned();
    let qdisc = lab
        .node_ns
        .exec(&["tc", "qdisc", "show", "dev", &host_veth])
        .unwrap();
    assert!(qdisc.contains("tbf"), "{qdisc}");
    // DEL in reverse order, each with the final result.
    for p in chain.iter().rev() {
        let mut conf = p.clone();
        conf["cniVersion"] = json!("1.0.0");
        conf["name"] = json!("sart-network");
        conf["prevResult"] = chained.clone();
        let bin = if p["type"] == "sart-cni" {
            sart_cni()
        } else {
            Path::new("/usr/lib/cni").join(p["type"].as_str().unwrap())
        };
        let (ok, r) = plugin(&lab.node_ns, &bin, &env("DEL"), &conf);
        assert!(ok, "DEL {}: {r}", p["type"]);
    }

    // Egress NAT: the router drops what comes from pod addresses. With natOutgoing on the pool
    // the pod's traffic leaves as the node's and gets through; without it, the table goes.
    lab.router_ns
        .exec_with_input(
            &["nft", "-f", "-"],
            "table inet t {\n chain input {\n  type filter hook input priority 0;\n  ip saddr 198.18.232.0/22 drop\n }\n}\n",
        )
        .unwrap();
    let router = lab.router_ip().to_string();
    assert!(!ping(&p0.netns, &router));
    let nat = |on: bool| {
        ok(kubectl(
            cluster,
            &[
                "patch",
                "addresspool",
                "cni-pods",
                "--type=merge",
                "-p",
                &json!({"spec": {"natOutgoing": on}}).to_string(),
            ],
        ))
    };
    nat(true);
    eventually("pod traffic masqueraded", WAIT, || async {
        if ping(&p0.netns, &router) {
            Ok(())
        } else {
            Err("no answer".to_string())
        }
    })
    .await;
    let table = lab
        .node_ns
        .exec(&["nft", "list", "table", "inet", "sart_nat"])
        .unwrap();
    assert!(table.contains("masquerade"), "{table}");
    nat(false);
    eventually("the NAT table removed", WAIT, || async {
        let t = lab
            .node_ns
            .exec(&["nft", "list", "tables"])
            .map_err(|e| e.to_string())?;
        if t.contains("sart_nat") {
            Err(t)
        } else {
            Ok(())
        }
    })
    .await;
    assert!(!ping(&p0.netns, &router));

    // Bad input gets its code, and leaves no record and no veth behind.
    let (records, veths) = (h.records(), h.veths());
    let bad = h.pod("default", "bad", json!({})).await;
    let no_pod = plugin(
        &lab.node_ns,
        &sart_cni(),
        &[
            ("CNI_COMMAND", "ADD"),
            ("CNI_CONTAINERID", "bad-1"),
            ("CNI_NETNS", &bad.path()),
            ("CNI_IFNAME", "eth0"),
            ("CNI_PATH", "/usr/lib/cni"),
        ],
        &h.conf("1.0.0"),
    );
    assert_eq!(code(&no_pod.1), Some(4), "{}", no_pod.1);
    let missing = plugin(
        &lab.node_ns,
        &sart_cni(),
        &[
            ("CNI_COMMAND", "ADD"),
            ("CNI_CONTAINERID", "bad-3"),
            ("CNI_NETNS", "/run/netns/sart-no-such-netns"),
            ("CNI_IFNAME", "eth0"),
            ("CNI_ARGS", &bad.args()),
            ("CNI_PATH", "/usr/lib/cni"),
        ],
        &h.conf("1.0.0"),
    );
    assert_eq!(code(&missing.1), Some(4), "{}", missing.1);
    let raw = |stdin: &str, cmd: &str| {
        let w = lab.node_ns.wrap(&[
            "env".to_string(),
            "-i".into(),
            format!("CNI_COMMAND={cmd}"),
            "CNI_CONTAINERID=bad-4".into(),
            "CNI_NETNS=/run/netns/x".into(),
            "CNI_IFNAME=eth0".into(),
            "CNI_PATH=/usr/lib/cni".into(),
            sart_cni().to_string_lossy().into_owned(),
        ]);
        let out = piped(
            std::process::Command::new(&w[0]).args(&w[1..]),
            stdin.as_bytes(),
        );
        (
            out.status.success(),
            serde_json::from_slice::<Value>(&out.stdout).unwrap_or(Value::Null),
        )
    };
    assert_eq!(code(&raw("{not json", "ADD").1), Some(6));
    assert_eq!(code(&raw(&h.conf("0.2.0").to_string(), "ADD").1), Some(1));
    assert_eq!(code(&raw(&h.conf("1.0.0").to_string(), "BOGUS").1), Some(4));
    let mut unreachable = h.conf("1.0.0");
    unreachable["endpoint"] = json!("unix:///run/sart-no-such-agent.sock");
    unreachable["timeout"] = json!(2);
    assert_eq!(code(&h.call("ADD", &p0, &unreachable).1), Some(11));
    assert_eq!((h.records(), h.veths()), (records, veths));

    // A pod deleted without a DEL (a runtime that lost track): the agent frees its address.
    let leak = h.pod("default", "leak", json!({})).await;
    let leaked = h.add(&leak, "1.0.0");
    let (records, veths) = (h.records(), h.veths());
    // At once: with no kubelet here, a graceful deletion would wait forever.
    Api::<Pod>::namespaced(client.clone(), "default")
        .delete("leak", &kube::api::DeleteParams::default().grace_period(0))
        .await
        .unwrap();
    eventually("the leaked address freed", WAIT, || async {
        if h.records() == records - 1 && h.veths() == veths - 1 {
            Ok(())
        } else {
            Err(format!("{} records, {} veths", h.records(), h.veths()))
        }
    })
    .await;
    assert!(!ping(&lab.node_ns, host(&leaked[0])));

    // Every command in every version, as a runtime would send them to one pod: VERSION, ADD,
    // CHECK (from 0.4.0, with the result as prevResult), DEL twice; GC and STATUS are 1.1.0's
    // only (code 1 before).
    for v in ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"] {
        let p = h
            .pod("default", &format!("v{}", v.replace('.', "")), json!({}))
            .await;
        let (ok_v, r) = h.call("VERSION", &p, &h.conf(v));
        assert!(
            ok_v && r["supportedVersions"]
                .as_array()
                .is_some_and(|a| a.len() == 5),
            "{r}"
        );
        let (ok_a, added) = h.call("ADD", &p, &h.conf(v));
        assert!(ok_a, "{v}: {added}");
        let mut with_prev = h.conf(v);
        with_prev["prevResult"] = added.clone();
        let (ok_c, c) = h.call("CHECK", &p, &with_prev);
        assert_eq!(ok_c, v != "0.3.0" && v != "0.3.1", "CHECK {v}: {c}");
        if !ok_c {
            assert_eq!(code(&c), Some(1), "{c}");
        }
        for cmd in ["GC", "STATUS"] {
            let (ok_g, g) = h.call(cmd, &p, &h.conf(v));
            assert_eq!(ok_g, v == "1.1.0", "{cmd} {v}: {g}");
        }
        assert!(h.call("DEL", &p, &with_prev).0);
        assert!(h.call("DEL", &p, &with_prev).0);
        assert!(!ping(&lab.node_ns, host(&addresses(&added)[0])));
    }

    // The agent is killed and comes back: the records hold, DEL and CHECK work, and a new pod
    // gets an address no one has.
    lab.kill_agent();
    // A veth of ours that no record names (its DEL's deletion cut short): the new agent removes
    // it; someone else's veth it leaves alone.
    for (name, alias) in [
        ("vethdead0000000", "sart-cni:eth0"),
        ("vethother00000", "other"),
    ] {
        lab.node_ns
            .ip(&[
                "link",
                "add",
                name,
                "type",
                "veth",
                "peer",
                "name",
                &format!("p{}", &name[4..]),
            ])
            .unwrap();
        lab.node_ns
            .ip(&["link", "set", name, "alias", alias])
            .unwrap();
    }
    lab.start_agent().unwrap();
    eventually("STATUS ready after the restart", WAIT, || async {
        match h.call("STATUS", &probe, &h.conf("1.1.0")) {
            (true, _) => Ok(()),
            (false, v) => Err(v.to_string()),
        }
    })
    .await;
    assert!(h.call("CHECK", &p0, &check).0);
    let links = lab.node_ns.ip(&["-o", "link", "show"]).unwrap();
    assert!(
        !links.contains("vethdead0000000") && links.contains("vethother00000"),
        "{links}"
    );
    lab.node_ns.ip(&["link", "del", "vethother00000"]).unwrap();
    assert!(h.call("DEL", &pods[0], &h.conf("1.0.0")).0);
    assert!(!ping(&lab.node_ns, "198.18.232.1"));
    let p9 = h.pod("default", "p9", json!({})).await;
    assert_eq!(host(&h.add(&p9, "1.0.0")[0]), "198.18.232.1");
    // DEL twice, and DEL of what never was, succeed.
    assert!(h.call("DEL", &pods[0], &h.conf("1.0.0")).0);
    assert!(h.call("DEL", &s1, &h.conf("1.0.0")).0);

    // GC: only p0 is still in use; everything else of this network goes.
    let mut gc = h.conf("1.1.0");
    gc["cni.dev/valid-attachments"] = json!([{"containerID": p0.id, "ifname": "eth0"}]);
    let (collected, v) = h.call("GC", &p0, &gc);
    assert!(collected, "{v}");
    assert_eq!(h.records(), 1);
    assert_eq!(h.veths(), 1);
    assert!(ping(&lab.node_ns, "198.18.232.0"));
    assert!(!ping(&lab.node_ns, "198.18.233.0"));

    // The last pod goes: its blocks are empty and released after the grace period, and so are
    // their routes.
    assert!(h.call("DEL", &p0, &h.conf("1.0.0")).0);
    assert_eq!((h.records(), h.veths()), (0, 0));
    eventually("empty blocks released", Duration::from_secs(60), || async {
        let left: Vec<String> = blocks
            .list(&Default::default())
            .await
            .map_err(|e| e.to_string())?
            .items
            .iter()
            .filter(|b| b.spec.node_ref.as_deref() == Some(NODE))
            .map(|b| b.spec.cidr.clone())
            .collect();
        if left.is_empty() {
            Ok(())
        } else {
            Err(format!("{left:?}"))
        }
    })
    .await;
    wait_route_gone(&lab.frr, block0, WAIT).unwrap();
    ctl.abort();
    lab.kill_agent();
    eprintln!("agent log:\n{}", lab.agent_log());
}
