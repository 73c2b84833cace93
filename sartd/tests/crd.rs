//! The generated CRDs against a real kube-apiserver: they install, sart's samples apply through
//! kubectl, `kubectl get` shows sart's columns, the objects read back into our Rust types, and
//! the schema refuses what sart's types refuse.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;
use common::*;

use std::path::PathBuf;

use k8s::crd::{AddressPool, AddressType, BGPPeerTemplate, ClusterBGP, RouterIdSelectionType};
use kube::api::{Api, ListParams};

#[tokio::test]
async fn samples_apply_and_show_sart_columns() {
    let cluster = testkube::Cluster::shared().unwrap();
    install_crds(cluster);
    let samples = repo().join("manifests/sample");
    ok(kubectl(
        cluster,
        &["apply", "-k", samples.to_str().unwrap()],
    ));

    let pools = ok(kubectl(cluster, &["get", "addresspool"]));
    let header: Vec<&str> = pools.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        ["NAME", "CIDR", "TYPE", "BLOCKSIZE", "AUTO", "AGE"],
        "{pools}"
    );
    assert!(
        pools.lines().any(|l| {
            l.split_whitespace().take(5).collect::<Vec<_>>()
                == ["default-pod-pool", "10.1.0.0/24", "pod", "29", "true"]
        }),
        "{pools}"
    );
    let crds = ok(kubectl(cluster, &["get", "crd", "-o", "name"]));
    for kind in [
        "addresspools",
        "addressblocks",
        "blockrequests",
        "clusterbgps",
        "nodebgps",
        "bgppeers",
        "bgppeertemplates",
        "bgpadvertisements",
    ] {
        assert!(
            crds.contains(&format!("{kind}.sart.terassyi.net")),
            "{kind} missing: {crds}"
        );
    }

    // What kubectl applied reads back into our types.
    let client = cluster.client().await.unwrap();
    let pools: Api<AddressPool> = Api::all(client.clone());
    let p = pools.get("non-default-pod-pool").await.unwrap();
    assert_eq!(p.spec.pool_type, AddressType::Pod);
    assert_eq!(p.spec.block_size, Some(32));
    assert!(!p.spec.auto_assign());
    let cb: Api<ClusterBGP> = Api::all(client.clone());
    let c = cb.get("clusterbgp-sample-a").await.unwrap();
    assert_eq!(
        c.spec.router_id_selector.from,
        RouterIdSelectionType::InternalAddress
    );
    assert_eq!(c.spec.speaker.multipath, Some(true));
    let t: Api<BGPPeerTemplate> = Api::all(client);
    assert_eq!(t.list(&ListParams::default()).await.unwrap().items.len(), 1);
    // The listing users type, across our kinds and Services.
    let out = ok(kubectl(
        cluster,
        &["get", "addresspool,addressblock,bgppeer,svc", "-A"],
    ));
    assert!(
        out.contains("addresspool.sart.terassyi.net/default-lb-pool")
            && out.contains("app-svc-cluster"),
        "{out}"
    );
}

/// Every install flavour renders with kustomize and is accepted by the real API server
/// (server-side dry run: schemas, RBAC objects, workloads).
#[test]
fn manifests_pass_a_server_side_dry_run() {
    let cluster = testkube::Cluster::shared().unwrap();
    install_crds(cluster);
    // A dry run creates no namespace, and the passwords' Role goes into one the manifests make
    // (a real apply creates it first).
    ok(apply(
        cluster,
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: sart-bgp-secrets}\n",
    ));
    for dir in ["base", "lb", "cni", "dual"] {
        let path = repo().join("manifests").join(dir);
        let out = kubectl(
            cluster,
            &["apply", "--dry-run=server", "-k", path.to_str().unwrap()],
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "manifests/{dir}: {err}");
        assert!(!err.contains("Warning"), "manifests/{dir}: {err}");
    }
}

#[test]
fn schema_refuses_what_the_types_refuse() {
    let cluster = testkube::Cluster::shared().unwrap();
    install_crds(cluster);
    let bad = [
        // `type` is service or pod.
        "apiVersion: sart.terassyi.net/v1alpha2\nkind: AddressPool\nmetadata: {name: bad-type}\nspec: {cidr: 10.9.0.0/24, type: vip}\n",
        // `cidr` is required.
        "apiVersion: sart.terassyi.net/v1alpha2\nkind: AddressPool\nmetadata: {name: no-cidr}\nspec: {type: service}\n",
        // `asnSelector.from` is asn or label.
        "apiVersion: sart.terassyi.net/v1alpha2\nkind: ClusterBGP\nmetadata: {name: bad-from}\nspec: {asnSelector: {from: node}, routerIdSelector: {from: label}, speaker: {path: \"127.0.0.1:5000\"}}\n",
    ];
    let dir = tempdir();
    for (i, doc) in bad.iter().enumerate() {
        let f = dir.join(format!("bad{i}.yaml"));
        std::fs::write(&f, doc).unwrap();
        let out = kubectl(cluster, &["apply", "-f", f.to_str().unwrap()]);
        assert!(!out.status.success(), "accepted:\n{doc}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("Unsupported value") || err.contains("Required value"),
            "{err}"
        );
    }
    let _ = std::fs::remove_dir_all(dir);
}

fn tempdir() -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "sartd-crd-test-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}
