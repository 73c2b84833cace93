//! TCP MD5, graceful restart and BFD from the Kubernetes side: a BGPPeerTemplate names a Secret
//! for the password (only the passwords namespace is read) and asks for graceful restart and
//! BFD; the controller carries them into the node's BGPPeer and the agent into its speaker,
//! against FRR configured the same way; a change of the template's BFD timers reaches the
//! speaker, and so does BFD authentication. Real API server, `kubectl` for every object. Needs
//! root and the built binaries.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;
use common::*;

use std::net::IpAddr;
use std::time::Duration;

use interop::{Daemon, GracefulRestart};
use testkube::node::NodeLab;

const NODE: &str = "res1";
const WAIT: Duration = Duration::from_secs(40);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_from_a_secret_graceful_restart_and_bfd_from_crs() {
    logs();
    assert!(interop::is_root(), "needs root for network namespaces");
    let cluster = testkube::Cluster::shared().unwrap();
    install_crds(cluster);
    let client = cluster.client().await.unwrap();
    let lab = NodeLab::start_with(cluster, NODE, 99, 65000, 65040, &[], |mut n| {
        n.md5_password = Some("from-a-secret".into());
        n.graceful_restart = Some(GracefulRestart { restart_time: 30 });
        n.bfd = true;
        n
    })
    .unwrap();
    let _ctl = pods_controller(&client);
    lab.register(&client).await.unwrap();
    let node: IpAddr = lab.node_ip().into();
    let router: IpAddr = lab.router_ip().into();

    // The template names a Secret outside the passwords namespace (one that exists): the agent
    // refuses to read it and says so on the BGPPeer.
    ok(apply(
        cluster,
        "apiVersion: v1\nkind: Secret\nmetadata: {name: tor-md5, namespace: kube-system}\nstringData: {password: from-a-secret}\n",
    ));
    ok(apply(
        cluster,
        &format!(
            "apiVersion: sart.terassyi.net/v1alpha2\nkind: BGPPeerTemplate\nmetadata: {{name: tor-secure}}\nspec:\n  asn: {}\n  addr: {router}\n  passwordSecretRef: {{name: tor-md5, namespace: kube-system}}\n  gracefulRestart: {{restartTime: 30}}\n  bfd: {{intervalMs: 100, multiplier: 3}}\n---\napiVersion: sart.terassyi.net/v1alpha2\nkind: ClusterBGP\nmetadata: {{name: {NODE}}}\nspec:\n  nodeSelector: {{bgp: {NODE}}}\n  asnSelector: {{from: asn, asn: {}}}\n  routerIdSelector: {{from: internalAddress}}\n  speaker: {{path: \"{}\"}}\n  peers: [{{peerTemplateRef: tor-secure}}]\n",
            lab.router_as,
            lab.node_as,
            lab.speaker.api_addr(),
        ),
    ));
    eventually(
        "the BGPPeer says the namespace is refused",
        WAIT,
        || async {
            let peers = ok(cluster
                .kubectl()
                .args([
                    "get",
                    "bgppeers",
                    "-o",
                    "jsonpath={.items[*].status.conditions[-1:].reason}",
                ])
                .output()
                .unwrap());
            if peers.contains(&format!("refused by the agent on {NODE}"))
                && peers.contains("\"kube-system\"")
                && peers.contains("sart-bgp-secrets")
            {
                Ok(())
            } else {
                Err(peers)
            }
        },
    )
    .await;
    assert!(!lab.frr.is_established(node).unwrap());

    // Without a namespace the reference means the passwords namespace, where the Secret is not
    // yet: the peer is not configured, and the agent says why.
    ok(piped(
        cluster.kubectl().args([
            "patch",
            "bgppeertemplate",
            "tor-secure",
            "--type=json",
            "-p",
            r#"[{"op":"remove","path":"/spec/passwordSecretRef/namespace"}]"#,
        ]),
        b"",
    ));
    eventually("the agent reports the missing Secret", WAIT, || async {
        let log = lab.agent_log();
        if log.contains("passwordSecretRef") && log.contains("tor-md5") {
            Ok(())
        } else {
            Err("no warning yet".to_string())
        }
    })
    .await;
    assert!(!lab.frr.is_established(node).unwrap());

    // The Secret arrives: the next resync configures the peer, and only the right password
    // brings the session up.
    ok(apply(
        cluster,
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: sart-bgp-secrets}\n---\napiVersion: v1\nkind: Secret\nmetadata: {name: tor-md5, namespace: sart-bgp-secrets}\nstringData: {password: from-a-secret}\n",
    ));
    eventually("FRR Established with the node (MD5)", WAIT, || async {
        match lab.frr.is_established(node) {
            Ok(true) => Ok(()),
            other => Err(format!("{other:?}\n{}", lab.speaker.logs())),
        }
    })
    .await;
    let v = eventually("graceful restart negotiated and BFD up", WAIT, || async {
        let v = lab.speaker.neighbor(router).map_err(|e| e.to_string())?;
        let gr = v["gracefulRestartStatus"]["negotiated"].as_bool() == Some(true);
        let bfd = v["bfdStatus"]["state"].as_str() == Some("Up");
        if gr && bfd { Ok(v) } else { Err(v.to_string()) }
    })
    .await;
    assert_eq!(v["gracefulRestart"]["restartTime"], 30, "{v}");
    assert_eq!(v["bfd"]["intervalMs"], 100, "{v}");
    // The BGPPeer carries the settings, the password only by reference.
    let peer = ok(cluster
        .kubectl()
        .args(["get", "bgppeers", "-o", "json"])
        .output()
        .unwrap());
    assert!(peer.contains("\"passwordSecretRef\""), "{peer}");
    assert!(!peer.contains("from-a-secret"), "{peer}");
    assert!(!lab.agent_log().contains("from-a-secret"));
    assert!(!lab.speaker.logs().contains("from-a-secret"));

    // The template's BFD timers change: the agent adds the peer to the speaker again with
    // them (a session cannot change its capabilities or BFD in place), and BFD comes back up.
    ok(piped(
        cluster.kubectl().args([
            "patch",
            "bgppeertemplate",
            "tor-secure",
            "--type=merge",
            "-p",
            r#"{"spec":{"bfd":{"intervalMs":200}}}"#,
        ]),
        b"",
    ));
    eventually("the speaker runs BFD at 200 ms, up", WAIT, || async {
        let v = lab.speaker.neighbor(router).map_err(|e| e.to_string())?;
        let up = v["bfdStatus"]["state"].as_str() == Some("Up");
        if v["bfd"]["intervalMs"] == 200 && up {
            Ok(())
        } else {
            Err(v.to_string())
        }
    })
    .await;
    eventually("FRR Established with the node again", WAIT, || async {
        match lab.frr.is_established(node) {
            Ok(true) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    let v = lab.speaker.neighbor(router).unwrap();
    assert_eq!(v["gracefulRestart"]["restartTime"], 30, "{v}");

    // BFD authentication from the template, its key from the passwords namespace: the speaker
    // signs its packets and drops FRR's, which are not (bfdd has no authentication).
    ok(apply(
        cluster,
        "apiVersion: v1\nkind: Secret\nmetadata: {name: tor-bfd, namespace: sart-bgp-secrets}\nstringData: {password: bfd-key-1}\n",
    ));
    ok(piped(
        cluster.kubectl().args([
            "patch",
            "bgppeertemplate",
            "tor-secure",
            "--type=merge",
            "-p",
            r#"{"spec":{"bfd":{"authentication":{"type":"meticulous-keyed-sha1","keyId":5,"passwordSecretRef":{"name":"tor-bfd"}}}}}"#,
        ]),
        b"",
    ));
    eventually("the speaker authenticates BFD", WAIT, || async {
        let v = lab.speaker.neighbor(router).map_err(|e| e.to_string())?;
        let auth = &v["bfd"]["auth"];
        let dropping = v["bfdStatus"]["authFailures"]
            .as_u64()
            .is_some_and(|n| n > 0);
        if auth["type"] == "meticulous-keyed-sha1" && auth["keyId"] == 5 && dropping {
            Ok(())
        } else {
            Err(v.to_string())
        }
    })
    .await;
    assert!(!lab.agent_log().contains("bfd-key-1"));
    assert!(!lab.speaker.logs().contains("bfd-key-1"));
}
