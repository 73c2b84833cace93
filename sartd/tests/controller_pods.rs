//! Pod pools against a real kube-apiserver: a BlockRequest (as a node agent makes one) becomes an
//! AddressBlock for the node, with its index and a BGPAdvertisement for the node's peers; IPv6
//! /64 pools cut into /120s; refusals are conditions and Events; a deleted Node's blocks and
//! advertisements go (even with the agent's finalizer on them); a pool waits for its blocks
//! before it goes; a restarted controller never hands out a block twice.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;
use common::*;

use std::collections::BTreeMap;
use std::time::Duration;

use controller::metrics::{self, Metrics};
use k8s::crd::address_block::{AGENT_FINALIZER, CONTROLLER_FINALIZER, NODE_LABEL};
use k8s::crd::{
    AddressBlock, AddressPool, AdvertiseStatus, BGPAdvertisement, BlockRequest, BlockRequestSpec,
    Protocol,
};
use k8s_openapi::api::core::v1::Node;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(20);

const POOLS: &str = r#"
apiVersion: sart.terassyi.net/v1alpha2
kind: AddressPool
metadata: {name: pods}
spec: {cidr: 198.18.64.0/27, type: pod, blockSize: 29, autoAssign: true}
---
apiVersion: sart.terassyi.net/v1alpha2
kind: AddressPool
metadata: {name: pods6}
spec: {cidr: "fd00:64::/64", type: pod, blockSize: 120, autoAssign: true}
---
apiVersion: sart.terassyi.net/v1alpha2
kind: AddressPool
metadata: {name: tiny}
spec: {cidr: 198.18.65.0/31, type: pod, blockSize: 32}
---
apiVersion: sart.terassyi.net/v1alpha2
kind: AddressPool
metadata: {name: svc}
spec: {cidr: 198.18.66.0/24, type: service}
---
apiVersion: sart.terassyi.net/v1alpha2
kind: BGPPeer
# Labelled as the webhook labels every BGPPeer (agents and block advertisements select by it).
metadata: {name: n1-tor, labels: {bgppeer.sart.terassyi.net/node: n1}}
spec: {asn: 65000, addr: 198.18.70.1, nodeBGPRef: n1, speaker: {path: "127.0.0.1:5000"}}
---
apiVersion: sart.terassyi.net/v1alpha2
kind: BGPPeer
metadata: {name: n2-tor, labels: {bgppeer.sart.terassyi.net/node: n2}}
spec: {asn: 65000, addr: 198.18.70.2, nodeBGPRef: n2, speaker: {path: "127.0.0.1:5000"}}
"#;

fn options(metrics: &Metrics) -> controller::Options {
    controller::Options {
        lease: None,
        identity: "test".into(),
        services: false,
        pods: true,
        metrics: metrics.clone(),
    }
}

/// A plain HTTP GET, as Prometheus or a kubelet probe does.
async fn http_get(addr: std::net::SocketAddr, path: &str) -> Result<String, String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let e = |e: std::io::Error| e.to_string();
    let mut s = tokio::net::TcpStream::connect(addr).await.map_err(e)?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").as_bytes())
        .await
        .map_err(e)?;
    let mut out = String::new();
    s.read_to_string(&mut out).await.map_err(e)?;
    Ok(out)
}

/// Asks for a block as a node agent does: `<pool>-<node>`, then waits for the answer.
async fn request(reqs: &Api<BlockRequest>, pool: &str, node: &str) -> (String, String) {
    let name = format!("{pool}-{node}");
    let r = BlockRequest::new(
        &name,
        BlockRequestSpec {
            pool: pool.into(),
            node: node.into(),
            cidr: None,
        },
    );
    reqs.create(&PostParams::default(), &r).await.unwrap();
    condition(reqs, &name, false).await
}

/// (status, reason) of the request's Ready condition once there is one (a True one if
/// `served`); for True, the block's name instead of the reason.
async fn condition(reqs: &Api<BlockRequest>, name: &str, served: bool) -> (String, String) {
    eventually(&format!("{name} answered"), WAIT, || async {
        let r = reqs.get(name).await.map_err(|e| e.to_string())?;
        let c = r
            .status
            .and_then(|s| s.conditions)
            .and_then(|c| c.into_iter().find(|c| c.type_ == "Ready"));
        match c {
            Some(c) if c.status == "True" => Ok((
                c.status,
                c.message.trim_start_matches("AddressBlock ").to_owned(),
            )),
            Some(c) if !served => Ok((c.status, c.reason)),
            Some(c) => Err(format!("{}: {}", c.reason, c.message)),
            None => Err("no condition".into()),
        }
    })
    .await
}

/// Takes the block, as the agent does: the request goes once the block is there.
async fn served(reqs: &Api<BlockRequest>, pool: &str, node: &str) -> String {
    let (status, block) = request(reqs, pool, node).await;
    assert_eq!(status, "True", "{pool}-{node}: {block}");
    reqs.delete(&format!("{pool}-{node}"), &DeleteParams::default())
        .await
        .unwrap();
    block
}

async fn block(blocks: &Api<AddressBlock>, name: &str) -> AddressBlock {
    eventually(&format!("{name} with an index"), WAIT, || async {
        let b = blocks.get(name).await.map_err(|e| e.to_string())?;
        if b.status.is_some() {
            Ok(b)
        } else {
            Err("no status yet".into())
        }
    })
    .await
}

async fn ad_peers(
    ads: &Api<BGPAdvertisement>,
    name: &str,
    want: &[(&str, AdvertiseStatus)],
) -> BGPAdvertisement {
    let want: BTreeMap<String, AdvertiseStatus> =
        want.iter().map(|(p, s)| (p.to_string(), *s)).collect();
    eventually(
        &format!("advertisement {name} for {want:?}"),
        WAIT,
        || async {
            let a = ads.get(name).await.map_err(|e| e.to_string())?;
            let got = a.status.clone().and_then(|s| s.peers).unwrap_or_default();
            if got == want {
                Ok(a)
            } else {
                Err(format!("{got:?}"))
            }
        },
    )
    .await
}

async fn gone<K>(api: &Api<K>, name: &str)
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    eventually(&format!("{name} gone"), WAIT, || async {
        match api.get_opt(name).await.map_err(|e| e.to_string())? {
            None => Ok(()),
            Some(o) => Err(format!("still there, finalizers {:?}", o.finalizers())),
        }
    })
    .await
}

#[tokio::test]
async fn pod_blocks_against_the_real_api_server() {
    logs();
    let cluster = testkube::Cluster::shared().unwrap();
    install_crds(cluster);
    let client = cluster.client().await.unwrap();
    let nodes: Api<Node> = Api::all(client.clone());
    create_node(&nodes, "n1", json!({}), "198.18.70.11").await;
    create_node(&nodes, "n2", json!({}), "198.18.70.12").await;
    ok(apply(cluster, POOLS));
    let m = Metrics::default();
    let mut ctl = tokio::spawn(controller::run(client.clone(), options(&m)));
    let reqs: Api<BlockRequest> = Api::all(client.clone());
    let blocks: Api<AddressBlock> = Api::all(client.clone());
    let pools: Api<AddressPool> = Api::all(client.clone());
    let ads: Api<BGPAdvertisement> = Api::namespaced(client.clone(), "kube-system");

    // The first block of the pool, for n1, with sart's labels, its index, our finalizer, the
    // Node as owner, and an advertisement for n1's peer only.
    assert_eq!(served(&reqs, "pods", "n1").await, "pods-0");
    let b0 = block(&blocks, "pods-0").await;
    assert_eq!(b0.spec.cidr, "198.18.64.0/29");
    assert_eq!(b0.spec.node_ref.as_deref(), Some("n1"));
    assert!(b0.spec.auto_assign);
    assert_eq!(b0.labels()["sart.terassyi.net/addresspool"], "pods");
    assert_eq!(b0.labels()[NODE_LABEL], "n1");
    assert_eq!(b0.status.as_ref().unwrap().index, 0);
    assert!(b0.finalizers().iter().any(|f| f == CONTROLLER_FINALIZER));
    assert_eq!(b0.owner_references()[0].kind, "Node");
    let ad = ad_peers(
        &ads,
        "pods-0",
        &[("n1-tor", AdvertiseStatus::NotAdvertised)],
    )
    .await;
    assert_eq!(ad.spec.cidr, "198.18.64.0/29");
    assert_eq!(ad.owner_references()[0].name, "pods-0");

    // More blocks: the next free ones, for either node.
    assert_eq!(served(&reqs, "pods", "n2").await, "pods-1");
    assert_eq!(served(&reqs, "pods", "n1").await, "pods-2");
    assert_eq!(block(&blocks, "pods-2").await.spec.cidr, "198.18.64.16/29");
    ad_peers(
        &ads,
        "pods-1",
        &[("n2-tor", AdvertiseStatus::NotAdvertised)],
    )
    .await;

    // IPv6: a /64 cut into /120s.
    assert_eq!(served(&reqs, "pods6", "n2").await, "pods6-0");
    assert_eq!(served(&reqs, "pods6", "n2").await, "pods6-1");
    assert_eq!(
        block(&blocks, "pods6-1").await.spec.cidr,
        "fd00:64::100/120"
    );
    let ad6 = ad_peers(
        &ads,
        "pods6-1",
        &[("n2-tor", AdvertiseStatus::NotAdvertised)],
    )
    .await;
    assert_eq!(ad6.spec.protocol, Protocol::Ipv6);

    // Refusals: a condition with the reason, and an Event; nothing is created.
    assert_eq!(
        request(&reqs, "nope", "n1").await,
        ("False".into(), "PoolNotFound".into())
    );
    assert_eq!(
        request(&reqs, "svc", "n1").await,
        ("False".into(), "NotPodPool".into())
    );
    assert_eq!(
        request(&reqs, "pods", "ghost").await,
        ("False".into(), "NodeNotFound".into())
    );
    assert_eq!(served(&reqs, "tiny", "n1").await, "tiny-0");
    assert_eq!(served(&reqs, "tiny", "n1").await, "tiny-1");
    assert_eq!(
        request(&reqs, "tiny", "n2").await,
        ("False".into(), "PoolExhausted".into())
    );
    let events = ok(kubectl(
        cluster,
        &[
            "get",
            "events",
            "-A",
            "--field-selector",
            "involvedObject.name=tiny-n2",
        ],
    ));
    assert!(events.contains("PoolExhausted"), "{events}");
    // A node that appears later is served by the retry.
    create_node(&nodes, "ghost", json!({}), "198.18.70.13").await;
    assert_eq!(condition(&reqs, "pods-ghost", true).await.1, "pods-3");

    // kubectl shows the blocks as sart's columns do.
    let table = ok(kubectl(cluster, &["get", "addressblock", "pods-2"]));
    assert!(
        table.contains("198.18.64.16/29") && table.contains("pods") && table.contains("n1"),
        "{table}"
    );

    // Pool status counts blocks and addresses.
    eventually("pool counts", WAIT, || async {
        let p = pools.get("pods").await.map_err(|e| e.to_string())?;
        let s = p.status.unwrap_or_default();
        // pods-0, -1, -2 and the ghost's block: 4 × 8 of 32 addresses.
        match (s.blocks, s.allocated, s.free) {
            (Some(4), Some(32), Some(0)) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;

    // The HTTP endpoint shows the same, and what the reconciles did.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let http = tokio::spawn(metrics::serve(port, m.clone()));
    eventually("metrics over HTTP", WAIT, || async {
        let out = http_get(port, "/metrics").await?;
        let want = [
            "sart_controller_pool_blocks{pool=\"pods\"} 4",
            "sart_controller_pool_addresses{pool=\"pods\",state=\"free\"} 0",
            "sart_controller_leader 1",
            "sart_controller_reconciles_total{controller=\"blockrequest\",result=\"ok\"}",
        ];
        match want.iter().find(|w| !out.contains(*w)) {
            None => Ok(()),
            Some(w) => Err(format!("no {w} in {out}")),
        }
    })
    .await;
    // Not ready until the webhooks listen (main sets it when there are none).
    let not_ready = http_get(port, "/readyz").await.unwrap();
    assert!(not_ready.starts_with("HTTP/1.0 503"), "{not_ready}");
    m.set_ready();
    let ready = http_get(port, "/readyz").await.unwrap();
    assert!(ready.starts_with("HTTP/1.0 200"), "{ready}");
    http.abort();

    // A restarted controller sees every block before it serves: the next block is new.
    ctl.abort();
    let _ = ctl.await;
    ctl = tokio::spawn(controller::run(client.clone(), options(&m)));
    reqs.delete("pods-ghost", &DeleteParams::default())
        .await
        .unwrap();
    assert_eq!(
        request(&reqs, "pods", "n2").await,
        ("False".into(), "PoolExhausted".into())
    );
    reqs.delete("pods-n2", &DeleteParams::default())
        .await
        .unwrap();

    // n1 goes: its blocks and their advertisements go, even the one the agent still holds.
    blocks
        .patch(
            "pods-2",
            &PatchParams::default(),
            &Patch::Merge(
                &json!({"metadata": {"finalizers": [CONTROLLER_FINALIZER, AGENT_FINALIZER]}}),
            ),
        )
        .await
        .unwrap();
    nodes.delete("n1", &DeleteParams::default()).await.unwrap();
    for b in ["pods-0", "pods-2", "tiny-0", "tiny-1"] {
        gone(&blocks, b).await;
    }
    gone(&ads, "pods-0").await;
    gone(&ads, "pods-2").await;
    let left: Vec<String> = blocks
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .iter()
        .map(|b| b.name_any())
        .collect();
    assert_eq!(left.len(), 4, "{left:?}"); // pods-1, pods-3 (ghost), pods6-0, pods6-1
    // The freed index is given out again, lowest first.
    assert_eq!(served(&reqs, "pods", "n2").await, "pods-0");

    // A live node's block the agent still holds: deleting it waits for the agent, and the
    // block stays announced meanwhile; once the agent lets go, block and announcement go.
    blocks
        .patch(
            "pods-1",
            &PatchParams::default(),
            &Patch::Merge(
                &json!({"metadata": {"finalizers": [CONTROLLER_FINALIZER, AGENT_FINALIZER]}}),
            ),
        )
        .await
        .unwrap();
    blocks
        .delete("pods-1", &DeleteParams::default())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let held = blocks.get("pods-1").await.unwrap();
    assert!(held.finalizers().iter().any(|f| f == CONTROLLER_FINALIZER));
    ad_peers(
        &ads,
        "pods-1",
        &[("n2-tor", AdvertiseStatus::NotAdvertised)],
    )
    .await;
    blocks
        .patch(
            "pods-1",
            &PatchParams::default(),
            &Patch::Merge(&json!({"metadata": {"finalizers": [CONTROLLER_FINALIZER]}})),
        )
        .await
        .unwrap();
    gone(&blocks, "pods-1").await;
    gone(&ads, "pods-1").await;

    // Deleting a pool waits for its blocks.
    pools
        .delete("pods6", &DeleteParams::default())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(pools.get_opt("pods6").await.unwrap().is_some());
    assert_eq!(
        request(&reqs, "pods6", "n2").await,
        ("False".into(), "PoolDeleting".into())
    );
    blocks
        .delete_collection(
            &DeleteParams::default(),
            &ListParams::default().labels("sart.terassyi.net/addresspool=pods6"),
        )
        .await
        .unwrap();
    gone(&pools, "pods6").await;
    gone(&ads, "pods6-1").await;
    ctl.abort();
}
