//! The whole LoadBalancer path on one machine: the controller (in this process) against the real
//! API server, `sartd bgp` and `sartd agent` in a node's network namespace, FRR as the
//! top-of-rack router in another. A ClusterBGP gives the node its AS and peer, `kubectl get
//! bgppeer` shows the session Established, a LoadBalancer Service's address reaches FRR over
//! BGP and leaves when the Service goes, so does a node's pod block (BlockRequest →
//! AddressBlock → advertisement), a restarted speaker is configured again by the agent
//! without help, hand-made advertisements outside every pool are never announced, and a
//! BGPPeer the speaker refuses is reported without holding up the others.
//! Needs root (network namespaces) and the built binaries.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;
use common::*;

use std::time::Duration;

use interop::frr::Frr;
use interop::sartd::{Sartd, sartd_binary};
use interop::{BgpConfig, Daemon, Family, Link, Neighbor, Netns, wait_route, wait_route_gone};
use k8s::crd::{AdvertiseStatus, BGPAdvertisement, BGPPeer, PeerState};
use k8s_openapi::api::core::v1::{Node, Service};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(30);
const V4: [Family; 1] = [Family::Ipv4Unicast];
const PEER: &str = "n1-65000-198.18.95.2";

fn netns_api(cluster: &testkube::Cluster, ns: &Netns) -> String {
    let out = std::process::Command::new(testkube::cluster_script())
        .arg("netns-api")
        .arg(cluster.dir())
        .args(["--netns", ns.name()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

async fn peer_state(api: &Api<BGPPeer>, want: PeerState) {
    eventually(&format!("BGPPeer {PEER} {want:?}"), WAIT, || async {
        let p = api.get(PEER).await.map_err(|e| e.to_string())?;
        let last = p
            .status
            .and_then(|s| s.conditions)
            .and_then(|c| c.last().cloned());
        match last {
            Some(c) if c.status == want => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await
}

/// Runs the real `sart-cni` as a runtime does; (success, CNI error code if any).
fn cni_run(command: &str, netconf: &str) -> (bool, Option<u64>) {
    use std::io::Write;
    let bin = sartd_binary().with_file_name("sart-cni");
    let mut child = std::process::Command::new(&bin)
        .env_clear()
        .env("CNI_COMMAND", command)
        .env("CNI_CONTAINERID", "agent-test-1")
        .env("CNI_NETNS", "/run/netns/sart-agent-test-none")
        .env("CNI_IFNAME", "eth0")
        .env("CNI_PATH", "/usr/lib/cni")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{}: {e} (cargo build -p sartcni)", bin.display()));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(netconf.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let code = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| v["code"].as_u64());
    (out.status.success(), code)
}

/// How many times FRR has seen its session with `addr` established.
fn frr_sessions(frr: &Frr, addr: std::net::IpAddr) -> Option<u64> {
    let out = frr
        .vtysh(&[&format!("show bgp neighbors {addr} json")])
        .ok()?;
    let v: serde_json::Value = serde_json::from_str(&out).ok()?;
    v[addr.to_string()]["connectionsEstablished"].as_u64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_address_reaches_the_router_through_the_agent() {
    logs();
    assert!(interop::is_root(), "needs root for network namespaces");
    let cluster = testkube::Cluster::shared().unwrap();
    install_crds(cluster);
    let client = cluster.client().await.unwrap();

    let (node_ns, router_ns) = (Netns::new("node").unwrap(), Netns::new("tor").unwrap());
    let link = Link::veth(&node_ns, &router_ns, 95).unwrap();
    let (node_ip, router_ip) = (link.a.ipv4(), link.b.ipv4());
    let frr = Frr::start(
        &router_ns,
        "frr",
        BgpConfig::new(65000, router_ip).neighbor(Neighbor::new(node_ip.into(), 65010, &V4)),
    )
    .unwrap();
    // The speaker starts with no AS and no neighbours: all of it comes from the cluster.
    let mut speaker = Sartd::start(&node_ns, "sartd", BgpConfig::new(0, node_ip)).unwrap();
    let kubeconfig = netns_api(cluster, &node_ns);
    let bin = sartd_binary();
    let log = node_ns.dir().join("agent.log");
    let api_addr = speaker.api_addr();
    let cni_socket = node_ns.dir().join("cni.sock");
    let spawn_agent = || {
        node_ns
            .spawn(
                "sartd-agent",
                &[
                    "env".to_string(),
                    format!("KUBECONFIG={kubeconfig}"),
                    bin.to_string_lossy().into_owned(),
                    "agent".into(),
                    "--node-name=n1".into(),
                    format!("--speaker={api_addr}"),
                    "--resync=2".into(),
                    "--mode=dual".into(),
                    format!("--cni-socket={}", cni_socket.display()),
                    format!("--cni-state-dir={}", node_ns.dir().join("cni").display()),
                ],
                &log,
            )
            .unwrap()
    };
    let mut agent = spawn_agent();
    // sart-cni as the runtime runs it, against this agent's socket.
    let netconf = json!({"cniVersion": "1.1.0", "name": "sart-network", "type": "sart-cni",
        "endpoint": format!("unix://{}", cni_socket.display()), "timeout": 5})
    .to_string();
    let cni = |command: &str| cni_run(command, &netconf);
    // No NodeBGP yet, so no session: the agent cannot serve pods.
    eventually("STATUS not available", WAIT, || async {
        match cni("STATUS") {
            (false, Some(50)) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    let ctl = start_controller(&client, true, true);

    let nodes: Api<Node> = Api::all(client.clone());
    create_node(&nodes, "n1", json!({"bgp": "agent"}), &node_ip.to_string()).await;
    ok(apply(
        cluster,
        &format!(
            "apiVersion: sart.terassyi.net/v1alpha2\nkind: ClusterBGP\nmetadata: {{name: agent}}\nspec:\n  nodeSelector: {{bgp: agent}}\n  asnSelector: {{from: asn, asn: 65010}}\n  routerIdSelector: {{from: internalAddress}}\n  speaker: {{path: \"{}\"}}\n  peers: [{{peerConfig: {{asn: 65000, addr: {router_ip}}}}}]\n---\napiVersion: sart.terassyi.net/v1alpha2\nkind: AddressPool\nmetadata: {{name: agent-lb}}\nspec: {{cidr: 198.18.220.0/24, type: service, autoAssign: true}}\n---\napiVersion: sart.terassyi.net/v1alpha2\nkind: AddressPool\nmetadata: {{name: agent-pods}}\nspec: {{cidr: 198.18.221.0/24, type: pod, blockSize: 26, autoAssign: true}}\n",
            speaker.api_addr()
        ),
    ));

    let peers: Api<BGPPeer> = Api::all(client.clone());
    peer_state(&peers, PeerState::Established).await;
    let out = ok(kubectl(cluster, &["get", "bgppeer", PEER]));
    assert!(out.contains("Established"), "{out}");
    // A session is up: STATUS says ready. An ADD that names no pod is refused as a bad
    // environment (4); DEL of what was never set up succeeds. Pods themselves: tests/cni.rs.
    eventually("STATUS ready", WAIT, || async {
        match cni("STATUS") {
            (true, None) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    assert_eq!(cni("ADD"), (false, Some(4)));
    assert_eq!(cni("DEL"), (true, None));

    // A LoadBalancer Service: its address goes to FRR with our AS.
    let svcs: Api<Service> = Api::namespaced(client.clone(), "default");
    let svc: Service = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {"type": "LoadBalancer", "ports": [{"port": 80}]}
    }))
    .unwrap();
    svcs.create(&PostParams::default(), &svc).await.unwrap();
    let vip = "198.18.220.0/32".parse().unwrap();
    let path = wait_route(&frr, vip, WAIT, |_| true).unwrap();
    assert_eq!(path.as_path, vec![65010], "{path:?}");
    let ads: Api<BGPAdvertisement> = Api::namespaced(client.clone(), "default");
    eventually("advertisement Advertised", WAIT, || async {
        let a = ads
            .get("web-198-18-220-0")
            .await
            .map_err(|e| e.to_string())?;
        let st = a.status.and_then(|s| s.peers).unwrap_or_default();
        if st.get(PEER) == Some(&AdvertiseStatus::Advertised) {
            Ok(())
        } else {
            Err(format!("{st:?}"))
        }
    })
    .await;

    // BGPAdvertisements made by hand, asking our peer: one inside the Service pool is announced,
    // one in no pool is not (whoever can write advertisements cannot make nodes announce any
    // prefix), nor one inside the pod pool that calls itself a Service's.
    for (name, cidr) in [
        ("hand-in-pool", "198.18.220.200/32"),
        ("hand-outside", "198.18.250.0/24"),
        ("hand-wrong-type", "198.18.221.192/32"),
    ] {
        let ad: BGPAdvertisement = serde_json::from_value(json!({
            "apiVersion": "sart.terassyi.net/v1alpha2", "kind": "BGPAdvertisement",
            "metadata": {"name": name},
            "spec": {"cidr": cidr, "type": "service", "protocol": "ipv4"}
        }))
        .unwrap();
        ads.create(&PostParams::default(), &ad).await.unwrap();
        ads.patch_status(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"peers": {PEER: "NotAdvertised"}}})),
        )
        .await
        .unwrap();
    }
    wait_route(&frr, "198.18.220.200/32".parse().unwrap(), WAIT, |_| true).unwrap();
    // Announced in the same sync as the one above, had they been.
    for refused in ["198.18.250.0/24", "198.18.221.192/32"] {
        let rib = frr.rib(Family::Ipv4Unicast).unwrap();
        assert!(
            rib.paths(&refused.parse().unwrap()).is_empty(),
            "{refused} announced: {}",
            rib.summary()
        );
    }
    let agent_log = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        agent_log.contains("in no AddressPool of its type")
            && agent_log.contains("198.18.250.0/24"),
        "{agent_log}"
    );
    for name in ["hand-in-pool", "hand-outside", "hand-wrong-type"] {
        ads.delete(name, &DeleteParams::default()).await.unwrap();
    }
    wait_route_gone(&frr, "198.18.220.200/32".parse().unwrap(), WAIT).unwrap();

    // A pod block for the node (asked for as the CNI side asks): its prefix goes to FRR too.
    ok(apply(
        cluster,
        "apiVersion: sart.terassyi.net/v1alpha2\nkind: BlockRequest\nmetadata: {name: agent-pods-n1}\nspec: {pool: agent-pods, node: n1}\n",
    ));
    let block = "198.18.221.0/26".parse().unwrap();
    let path = wait_route(&frr, block, WAIT, |_| true).unwrap();
    assert_eq!(path.as_path, vec![65010], "{path:?}");

    // The speaker restarts empty; the agent puts AS, peer and paths back.
    speaker.restart().unwrap();
    eventually("the agent sets the AS again", WAIT, || async {
        let info = speaker
            .sart_json(&["global", "get"])
            .map_err(|e| e.to_string())?;
        if info["asn"] == 65010 {
            Ok(())
        } else {
            Err(info.to_string())
        }
    })
    .await;
    interop::wait_session(&speaker, router_ip.into(), true, WAIT).unwrap();
    peer_state(&peers, PeerState::Established).await;
    wait_route(&frr, vip, WAIT, |_| true).unwrap();
    wait_route(&frr, block, WAIT, |_| true).unwrap();

    // The agent restarts: it finds the speaker as the cluster wants it and changes nothing (the
    // session stays up, the routes stay at FRR).
    let established = frr_sessions(&frr, node_ip.into());
    assert!(established.is_some_and(|n| n >= 1), "{established:?}");
    drop(agent);
    agent = spawn_agent();
    tokio::time::sleep(Duration::from_secs(5)).await;
    wait_route(&frr, vip, WAIT, |_| true).unwrap();
    wait_route(&frr, block, WAIT, |_| true).unwrap();
    assert_eq!(
        frr_sessions(&frr, node_ip.into()),
        established,
        "the agent's restart reset the session"
    );
    peer_state(&peers, PeerState::Established).await;

    // A BGPPeer the speaker refuses (a keepalive over a third of the hold time, which the CRD
    // schema cannot say and no webhook runs here to refuse): the refusal shows on it, as a
    // condition and a Warning Event, and the node's other peer, routes and CNI carry on.
    ok(apply(
        cluster,
        &format!(
            "apiVersion: sart.terassyi.net/v1alpha2\nkind: BGPPeer\nmetadata:\n  name: bad-hold\n  labels: {{bgppeer.sart.terassyi.net/node: n1}}\nspec: {{asn: 65009, addr: 198.18.95.9, holdTime: 9, keepaliveTime: 4, nodeBGPRef: n1, speaker: {{path: \"{}\"}}}}\n",
            speaker.api_addr()
        ),
    ));
    eventually("the refusal on the BGPPeer", WAIT, || async {
        let p = peers.get("bad-hold").await.map_err(|e| e.to_string())?;
        let last = p
            .status
            .and_then(|s| s.conditions)
            .and_then(|c| c.last().cloned());
        match last {
            Some(c)
                if c.reason.contains("refused by the speaker on n1")
                    && c.reason.contains("keepalive_time") =>
            {
                Ok(())
            }
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    let events = ok(kubectl(
        cluster,
        &[
            "get",
            "events",
            "--field-selector",
            "reason=PeerRefused",
            "-o",
            "name",
        ],
    ));
    assert!(!events.trim().is_empty(), "no PeerRefused event");
    peer_state(&peers, PeerState::Established).await;
    assert_eq!(cni("STATUS"), (true, None));
    wait_route(&frr, vip, WAIT, |_| true).unwrap();
    assert_eq!(frr_sessions(&frr, node_ip.into()), established);
    ok(kubectl(cluster, &["delete", "bgppeer", "bad-hold"]));

    // A timer edit (here on the ClusterBGP the BGPPeer comes from) reaches the speaker: the
    // session restarts with it and the routes come back.
    ok(kubectl(
        cluster,
        &[
            "patch",
            "clusterbgp",
            "agent",
            "--type=json",
            "-p",
            r#"[{"op": "add", "path": "/spec/peers/0/peerConfig/holdTime", "value": 30}]"#,
        ],
    ));
    eventually(
        "the speaker to run the session with hold time 30",
        WAIT,
        || async {
            let n = speaker
                .neighbor(router_ip.into())
                .map_err(|e| e.to_string())?;
            match (
                n["configured"]["holdTime"].as_u64(),
                n["holdTime"].as_u64(),
                n["state"].as_str(),
            ) {
                (Some(30), Some(30), Some("Established")) => Ok(()),
                _ => Err(n.to_string()),
            }
        },
    )
    .await;
    wait_route(&frr, vip, WAIT, |_| true).unwrap();

    // The block is released: its advertisement goes, so does the route.
    ok(kubectl(
        cluster,
        &["delete", "addressblock", "agent-pods-0"],
    ));
    wait_route_gone(&frr, block, WAIT).unwrap();

    // The Service goes: so does its route.
    svcs.delete("web", &DeleteParams::default()).await.unwrap();
    wait_route_gone(&frr, vip, WAIT).unwrap();
    ctl.abort();
    drop(agent);
    let _ = std::fs::read_to_string(&log).map(|l| eprintln!("agent log:\n{l}"));
}
