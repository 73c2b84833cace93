//! ClusterBGP → NodeBGP → BGPPeer against a real kube-apiserver, with sart's sample objects
//! applied by kubectl: selection by labels (all must match), AS and router id, peers from the
//! template, relabelling, user-made peers left alone, and clean-up when the ClusterBGP goes.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;
use common::*;

use std::time::Duration;

use k8s::crd::{BGPPeer, ClusterBGP, NodeBGP};
use k8s_openapi::api::core::v1::Node;
use kube::ResourceExt;
use kube::api::{Api, ListParams, Patch, PatchParams};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(20);

async fn names<K>(api: &Api<K>) -> Result<Vec<String>, String>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let mut v: Vec<String> = api
        .list(&ListParams::default())
        .await
        .map_err(|e| e.to_string())?
        .items
        .iter()
        .map(|o| o.name_any())
        .collect();
    v.sort();
    Ok(v)
}

async fn names_are<K>(what: &str, api: &Api<K>, want: &[&str])
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    eventually(what, WAIT, || async {
        let got = names(api).await?;
        if got == want {
            Ok(())
        } else {
            Err(format!("{got:?}"))
        }
    })
    .await
}

#[tokio::test]
async fn cluster_bgp_makes_node_bgps_and_peers() {
    logs();
    let cluster = testkube::Cluster::shared().unwrap();
    install_crds(cluster);
    let client = cluster.client().await.unwrap();
    let nodes: Api<Node> = Api::all(client.clone());
    create_node(&nodes, "n1", json!({"bgp": "a"}), "198.18.210.1").await;
    create_node(&nodes, "n2", json!({"bgp": "a"}), "198.18.210.2").await;
    create_node(&nodes, "n3", json!({"bgp": "b"}), "198.18.210.3").await;
    let ctl = start_controller(&client, true, true);
    ok(kubectl(
        cluster,
        &[
            "apply",
            "-f",
            repo().join("manifests/sample/bgp.yaml").to_str().unwrap(),
        ],
    ));
    let nbs: Api<NodeBGP> = Api::all(client.clone());
    let peers: Api<BGPPeer> = Api::all(client.clone());
    names_are("NodeBGPs of bgp=a nodes", &nbs, &["n1", "n2"]).await;
    let n1 = nbs.get("n1").await.unwrap();
    assert_eq!(
        (n1.spec.asn, n1.spec.router_id.as_str()),
        (65000, "198.18.210.1")
    );
    assert_eq!(n1.labels().get("bgp").map(String::as_str), Some("a"));
    assert_eq!(n1.owner_references()[0].name, "n1");
    names_are(
        "BGPPeers from the template",
        &peers,
        &[
            "bgppeertemplate-sample-n1-65000-9.9.9.9",
            "bgppeertemplate-sample-n2-65000-9.9.9.9",
        ],
    )
    .await;
    let p = peers
        .get("bgppeertemplate-sample-n1-65000-9.9.9.9")
        .await
        .unwrap();
    assert_eq!(p.spec.node_bgp_ref, "n1");
    assert_eq!(p.spec.settings.groups, Some(vec!["to-router0".to_string()]));
    assert_eq!(
        p.labels()
            .get("bgppeer.sart.terassyi.net/node")
            .map(String::as_str),
        Some("n1")
    );
    let cbs: Api<ClusterBGP> = Api::all(client.clone());
    eventually("ClusterBGP status", WAIT, || async {
        let c = cbs
            .get("clusterbgp-sample-a")
            .await
            .map_err(|e| e.to_string())?;
        let s = c.status.unwrap_or_default();
        if s.desired_nodes == Some(vec!["n1".into(), "n2".into()]) && s.nodes == s.desired_nodes {
            Ok(())
        } else {
            Err(format!("{s:?}"))
        }
    })
    .await;
    let out = ok(kubectl(cluster, &["get", "nodebgp,bgppeer"]));
    assert!(
        out.contains("198.18.210.2") && out.contains("9.9.9.9"),
        "{out}"
    );

    // A peer a user made by hand for n1 is not ours to remove.
    ok(apply(
        cluster,
        "apiVersion: sart.terassyi.net/v1alpha2\nkind: BGPPeer\nmetadata:\n  name: hand-made\n  labels: {bgppeer.sart.terassyi.net/node: n1}\nspec: {asn: 65100, addr: 198.18.210.100, nodeBGPRef: n1, speaker: {path: \"127.0.0.1:5000\"}}\n",
    ));

    // n2 leaves the selector: its NodeBGP and peer go, the rest stays.
    nodes
        .patch(
            "n2",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"bgp": "c"}}})),
        )
        .await
        .unwrap();
    names_are("n2 deselected", &nbs, &["n1"]).await;
    names_are(
        "n2's peer removed",
        &peers,
        &["bgppeertemplate-sample-n1-65000-9.9.9.9", "hand-made"],
    )
    .await;

    // A broken ClusterBGP (unknown template) changes nothing that works and says why.
    ok(apply(
        cluster,
        "apiVersion: sart.terassyi.net/v1alpha2\nkind: ClusterBGP\nmetadata: {name: broken}\nspec:\n  nodeSelector: {bgp: a}\n  asnSelector: {from: asn, asn: 65000}\n  routerIdSelector: {from: internalAddress}\n  speaker: {path: \"127.0.0.1:5000\"}\n  peers: [{peerTemplateRef: nope}]\n",
    ));
    tokio::time::sleep(Duration::from_secs(2)).await;
    names_are("NodeBGP kept", &nbs, &["n1"]).await;
    let reasons = ok(kubectl(
        cluster,
        &[
            "get",
            "events",
            "--field-selector",
            "involvedObject.name=n1",
            "-o",
            "jsonpath={.items[*].reason}",
        ],
    ));
    assert!(reasons.contains("InvalidBGPConfig"), "{reasons}");
    ok(kubectl(cluster, &["delete", "clusterbgp", "broken"]));

    // Without any ClusterBGP, the NodeBGPs and our peers go; the hand-made one stays.
    ok(kubectl(
        cluster,
        &["delete", "clusterbgp", "clusterbgp-sample-a"],
    ));
    names_are("no NodeBGP", &nbs, &[]).await;
    names_are("only the hand-made peer", &peers, &["hand-made"]).await;
    ctl.abort();
}
