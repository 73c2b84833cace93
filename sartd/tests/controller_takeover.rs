//! Taking over from an earlier sart, against a real kube-apiserver: its finalizers on Nodes,
//! EndpointSlices and sart's own objects come off (and only those), its Service AddressBlock is
//! removed, and the admission policy lets the controller's account do nothing else to Nodes.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;
use common::*;

use std::time::Duration;

use controller::{self, takeover};
use k8s::crd::address_block::CONTROLLER_FINALIZER;
use k8s::crd::{
    AddressBlock, BGPAdvertisement, BGPPeer, BlockRequest, bgp_advertisement, bgp_peer,
    block_request,
};
use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(30);
const KEEP: &str = "example.com/keep";
const CONTROLLER_SA: &str = "--as=system:serviceaccount:kube-system:sart-controller";

async fn set_finalizers<K>(api: &Api<K>, name: &str, f: &[&str])
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let patch = json!({"metadata": {"finalizers": f}});
    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
}

async fn finalizers_are<K>(what: &str, api: &Api<K>, name: &str, want: &[&str])
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    eventually(what, WAIT, || async {
        let o = api.get(name).await.map_err(|e| e.to_string())?;
        if o.finalizers() == want {
            Ok(())
        } else {
            Err(format!("{:?}", o.finalizers()))
        }
    })
    .await
}

#[tokio::test]
async fn sarts_finalizers_and_service_blocks_are_taken_off_and_nothing_else() {
    logs();
    let cluster = testkube::Cluster::shared().unwrap();
    install_crds(cluster);
    let client = cluster.client().await.unwrap();
    for f in ["rbac.yaml", "controller-policy.yaml"] {
        let path = repo().join("manifests/base").join(f);
        ok(kubectl(cluster, &["apply", "-f", path.to_str().unwrap()]));
    }

    // What sart left: its finalizers beside somebody else's, and a Service block.
    let nodes: Api<Node> = Api::all(client.clone());
    create_node(&nodes, "t1", json!({}), "198.18.230.1").await;
    set_finalizers(&nodes, "t1", &[takeover::NODE_FINALIZER, KEEP]).await;
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), "default");
    let slice = serde_json::from_value(json!({
        "metadata": {"name": "web-x1", "labels": {"kubernetes.io/service-name": "web"},
                     "finalizers": [takeover::ENDPOINTSLICE_FINALIZER]},
        "addressType": "IPv4", "endpoints": [], "ports": []
    }))
    .unwrap();
    slices.create(&PostParams::default(), &slice).await.unwrap();
    let peers: Api<BGPPeer> = Api::all(client.clone());
    let peer = serde_json::from_value(json!({
        "metadata": {"name": "t1-65000-198.18.230.254", "finalizers": [bgp_peer::FINALIZER]},
        "spec": {"asn": 65000, "addr": "198.18.230.254", "nodeBGPRef": "t1",
                 "speaker": {"path": "127.0.0.1:5000"}}
    }))
    .unwrap();
    peers.create(&PostParams::default(), &peer).await.unwrap();
    let ads: Api<BGPAdvertisement> = Api::namespaced(client.clone(), "default");
    let ad = serde_json::from_value(json!({
        "metadata": {"name": "web-x1-198.18.231.1", "finalizers": [bgp_advertisement::FINALIZER]},
        "spec": {"cidr": "198.18.231.1/32", "type": "service", "protocol": "ipv4"}
    }))
    .unwrap();
    ads.create(&PostParams::default(), &ad).await.unwrap();
    let requests: Api<BlockRequest> = Api::all(client.clone());
    let request = serde_json::from_value(json!({
        "metadata": {"name": "gone-pool-t1", "finalizers": [block_request::FINALIZER]},
        "spec": {"pool": "gone-pool", "node": "t1"}
    }))
    .unwrap();
    requests
        .create(&PostParams::default(), &request)
        .await
        .unwrap();
    // sart finalized every Service, a ClusterIP one too.
    let services: Api<Service> = Api::namespaced(client.clone(), "default");
    let svc = serde_json::from_value(json!({
        "metadata": {"name": "plain", "finalizers": [controller::service::FINALIZER]},
        "spec": {"ports": [{"port": 80}]}
    }))
    .unwrap();
    services.create(&PostParams::default(), &svc).await.unwrap();
    let blocks: Api<AddressBlock> = Api::all(client.clone());
    let block = serde_json::from_value(json!({
        "metadata": {"name": "old-lb-pool", "finalizers": [CONTROLLER_FINALIZER]},
        "spec": {"cidr": "198.18.231.0/24", "type": "service", "poolRef": "old-lb-pool",
                 "autoAssign": true}
    }))
    .unwrap();
    blocks.create(&PostParams::default(), &block).await.unwrap();

    let ctl = start_controller(&client, true, true);
    finalizers_are("Node keeps only the other finalizer", &nodes, "t1", &[KEEP]).await;
    finalizers_are("EndpointSlice", &slices, "web-x1", &[]).await;
    finalizers_are("BGPPeer", &peers, "t1-65000-198.18.230.254", &[]).await;
    finalizers_are("BGPAdvertisement", &ads, "web-x1-198.18.231.1", &[]).await;
    finalizers_are("BlockRequest", &requests, "gone-pool-t1", &[]).await;
    finalizers_are("ClusterIP Service", &services, "plain", &[]).await;
    // Nothing of ours written on a Service that was never ours.
    let plain = services.get("plain").await.unwrap();
    let conditions = plain.status.and_then(|s| s.conditions).unwrap_or_default();
    assert!(conditions.is_empty(), "{conditions:?}");
    eventually("sart's Service block removed", WAIT, || async {
        match blocks.get_opt("old-lb-pool").await {
            Ok(None) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    // Deleting now completes at once.
    peers
        .delete("t1-65000-198.18.230.254", &DeleteParams::default())
        .await
        .unwrap();
    eventually("BGPPeer deleted", WAIT, || async {
        match peers.get_opt("t1-65000-198.18.230.254").await {
            Ok(None) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    ctl.abort();

    // As the controller's account: sart's finalizer may go, nothing else may change.
    let denied = |args: &[&str]| {
        let mut a = vec![CONTROLLER_SA];
        a.extend_from_slice(args);
        let out = kubectl(cluster, &a);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        if !out.status.success() && err.contains("sart-controller-finalizers-only") {
            Ok(err)
        } else {
            Err(format!("{:?}: {err}", out.status))
        }
    };
    // The policy takes a moment to be enforced after it is created. Each try is a new value:
    // kubectl sends nothing for a label the node already has, so a try that got through
    // before the policy was enforced would make every later one "succeed" unasked.
    let tries = std::sync::atomic::AtomicU32::new(0);
    eventually("a label change refused", WAIT, || async {
        let n = tries.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        denied(&["label", "--overwrite", "node", "t1", &format!("x=y{n}")])
    })
    .await;
    let add = json!({"metadata": {"finalizers": [KEEP, "example.com/more"]}}).to_string();
    denied(&["patch", "node", "t1", "--type=merge", "-p", &add]).unwrap();
    let drop_keep = json!({"metadata": {"finalizers": []}}).to_string();
    denied(&["patch", "node", "t1", "--type=merge", "-p", &drop_keep]).unwrap();
    let spec = json!({"spec": {"unschedulable": true}}).to_string();
    denied(&["patch", "node", "t1", "--type=merge", "-p", &spec]).unwrap();
    let slice_label = json!({"metadata": {"labels": {"x": "y"}}}).to_string();
    denied(&[
        "patch",
        "endpointslice",
        "web-x1",
        "--type=merge",
        "-p",
        &slice_label,
    ])
    .unwrap();
    set_finalizers(&nodes, "t1", &[takeover::NODE_FINALIZER, KEEP]).await;
    let take_off = json!({"metadata": {"finalizers": [KEEP]}}).to_string();
    ok(kubectl(
        cluster,
        &[
            CONTROLLER_SA,
            "patch",
            "node",
            "t1",
            "--type=merge",
            "-p",
            &take_off,
        ],
    ));
    finalizers_are(
        "sart's finalizer taken off as the controller",
        &nodes,
        "t1",
        &[KEEP],
    )
    .await;

    set_finalizers(&nodes, "t1", &[]).await;
    nodes.delete("t1", &DeleteParams::default()).await.unwrap();
    slices
        .delete("web-x1", &DeleteParams::default())
        .await
        .unwrap();
    services
        .delete("plain", &DeleteParams::default())
        .await
        .unwrap();
}
