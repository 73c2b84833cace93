//! The admission webhooks against a real kube-apiserver: the configurations of
//! manifests/base/webhook.yaml (pointed at this process instead of the in-cluster Service), the
//! controller's own certificate kept in a Secret and written into their caBundle, and kubectl
//! refused with the rule's message: overlapping pools, a second auto-assign pool, changed pool
//! addresses, duplicate or changed BGPPeers, pod blocks without a node; the node labels added.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;
use common::*;

use std::time::Duration;

use controller::webhook;
use k8s::crd::{AddressBlock, BGPPeer};
use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::api::Api;

const WAIT: Duration = Duration::from_secs(30);

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// The manifest's webhook configurations with `clientConfig.service` replaced by a URL on this
/// machine (the API server here has no cluster network to reach a Service through).
fn configurations(port: u16) -> String {
    let yaml = std::fs::read_to_string(repo().join("manifests/base/webhook.yaml")).unwrap();
    let mut out = Vec::new();
    let mut lines = yaml.lines().peekable();
    let mut paths = 0;
    while let Some(line) = lines.next() {
        if line.trim() == "service:" && line.starts_with("      ") {
            let indent = &line[..line.len() - line.trim_start().len()];
            let mut path = None;
            while let Some(next) = lines.peek() {
                let t = next.trim();
                if !next.starts_with(&format!("{indent}  ")) {
                    break;
                }
                if let Some(p) = t.strip_prefix("path: ") {
                    path = Some(p.to_owned());
                }
                lines.next();
            }
            let path = path.expect("every webhook names its path");
            out.push(format!("{indent}url: https://127.0.0.1:{port}{path}"));
            paths += 1;
        } else {
            out.push(line.to_owned());
        }
    }
    assert_eq!(paths, 5, "five webhooks in the manifest");
    // Only the configurations: the Service would point at nothing here.
    out.join("\n")
        .split("\n---\n")
        .filter(|doc| !doc.contains("kind: Service\n"))
        .collect::<Vec<_>>()
        .join("\n---\n")
}

/// `kubectl apply` of `yaml`: Ok(stdout) or Err(stderr).
fn try_apply(cluster: &testkube::Cluster, yaml: &str) -> Result<String, String> {
    let out = apply(cluster, yaml);
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

fn refused(cluster: &testkube::Cluster, yaml: &str, why: &str) {
    match try_apply(cluster, yaml) {
        Ok(out) => panic!("admitted, expected a refusal with {why:?}: {out}"),
        Err(e) => assert!(
            e.contains("denied the request") && e.contains(why),
            "expected {why:?}: {e}"
        ),
    }
}

fn pool(name: &str, cidr: &str, auto: bool) -> String {
    format!(
        "apiVersion: sart.terassyi.net/v1alpha2\nkind: AddressPool\nmetadata: {{name: {name}}}\nspec: {{cidr: {cidr}, type: service, autoAssign: {auto}}}\n"
    )
}

fn peer(name: &str, addr: &str, hold: u32) -> String {
    format!(
        "apiVersion: sart.terassyi.net/v1alpha2\nkind: BGPPeer\nmetadata: {{name: {name}}}\nspec: {{asn: 65000, addr: {addr}, nodeBGPRef: n1, holdTime: {hold}, speaker: {{path: \"127.0.0.1:5000\"}}}}\n"
    )
}

fn block(name: &str, node: Option<&str>) -> String {
    let node = node.map_or(String::new(), |n| format!(", nodeRef: {n}"));
    format!(
        "apiVersion: sart.terassyi.net/v1alpha2\nkind: AddressBlock\nmetadata: {{name: {name}}}\nspec: {{cidr: 198.18.93.0/29, type: pod, poolRef: pods, autoAssign: false{node}}}\n"
    )
}

// kubectl blocks the thread it runs on while the API server calls our server: two workers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_guard_sart_objects() {
    logs();
    let cluster = testkube::Cluster::shared().unwrap();
    install_crds(cluster);
    let client = cluster.client().await.unwrap();
    let port = free_port();
    ok(apply(cluster, &configurations(port)));
    let metrics = controller::metrics::Metrics::default();
    let server = tokio::spawn(webhook::run(
        client.clone(),
        webhook::Options {
            bind: ([127, 0, 0, 1], port).into(),
            cert_dir: std::env::temp_dir().join("sart-no-such-cert-dir"),
            secret: ("kube-system".into(), "sart-webhook-server-cert".into()),
            hosts: vec!["127.0.0.1".into()],
            configurations: (
                "sart-validating-webhook-configuration".into(),
                "sart-mutating-webhook-configuration".into(),
            ),
        },
        metrics.clone(),
    ));

    // Our certificate is in the Secret, and its CA in the configurations.
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "kube-system");
    let vwc: Api<ValidatingWebhookConfiguration> = Api::all(client.clone());
    eventually("caBundle written from the Secret", WAIT, || async {
        let s = secrets
            .get_opt("sart-webhook-server-cert")
            .await
            .map_err(|e| e.to_string())?
            .ok_or("no Secret yet")?;
        let ca = s.data.unwrap_or_default().get("ca.crt").cloned();
        let c = vwc
            .get("sart-validating-webhook-configuration")
            .await
            .map_err(|e| e.to_string())?;
        let bundles: Vec<_> = c
            .webhooks
            .unwrap_or_default()
            .into_iter()
            .map(|w| w.client_config.ca_bundle)
            .collect();
        if ca.is_some() && bundles.iter().all(|b| *b == ca) {
            Ok(())
        } else {
            Err("caBundle not written yet".into())
        }
    })
    .await;

    // The API server picks up the new caBundle within moments; retry until it calls us.
    eventually(
        "a valid pool admitted through the webhook",
        WAIT,
        || async { try_apply(cluster, &pool("a", "198.18.90.0/24", true)) },
    )
    .await;

    // Pools: overlap, a second auto-assign pool of the type and family, moved addresses.
    refused(
        cluster,
        &pool("b", "198.18.90.128/25", false),
        "overlaps pool a",
    );
    refused(cluster, &pool("c", "198.18.91.0/24", true), "auto-assign");
    refused(
        cluster,
        &pool("a", "198.18.94.0/24", true),
        "spec.cidr is immutable",
    );
    refused(cluster, &pool("d", "198.18.95.1/24", false), "host bits");
    try_apply(cluster, &pool("c", "198.18.91.0/24", false)).unwrap();
    // Turning auto-assign off is a change that is allowed.
    try_apply(cluster, &pool("a", "198.18.90.0/24", false)).unwrap();

    // BGPPeers: the node label added; a duplicate and a changed address refused; other fields
    // may change.
    try_apply(cluster, &peer("p1", "198.18.92.1", 90)).unwrap();
    let peers: Api<BGPPeer> = Api::all(client.clone());
    let p1 = peers.get("p1").await.unwrap();
    assert_eq!(p1.labels()["bgppeer.sart.terassyi.net/node"], "n1");
    refused(
        cluster,
        &peer("p2", "198.18.92.1", 90),
        "BGPPeer p1 already peers",
    );
    refused(cluster, &peer("p1", "198.18.92.9", 90), "immutable");
    try_apply(cluster, &peer("p1", "198.18.92.1", 30)).unwrap();
    assert_eq!(
        peers.get("p1").await.unwrap().spec.settings.hold_time,
        Some(30)
    );
    // A hold time the speaker would refuse is refused with the rule, by the CRD schema (the
    // webhook checks it too, for objects stored before the schema had the rule).
    let e = try_apply(cluster, &peer("p1", "198.18.92.1", 2)).unwrap_err();
    assert!(
        e.contains("spec.holdTime") && e.contains("must be 0 or 3-65535"),
        "{e}"
    );
    assert_eq!(
        peers.get("p1").await.unwrap().spec.settings.hold_time,
        Some(30)
    );
    // Rules the schema cannot say: keepalive against hold, prefix lists.
    refused(
        cluster,
        &peer("p1", "198.18.92.1", 9).replace("holdTime: 9", "holdTime: 9, keepaliveTime: 4"),
        "spec.keepaliveTime: 4 s exceeds a third of the hold time",
    );
    refused(
        cluster,
        &peer("p1", "198.18.92.1", 30).replace(
            "holdTime: 30",
            "holdTime: 30, importPrefixes: [{prefix: 10.0.0.0/8, ge: 4}]",
        ),
        "spec.importPrefixes[0]: 10.0.0.0/8: ge 4 must lie in 8-32",
    );
    assert_eq!(
        peers.get("p1").await.unwrap().spec.settings.hold_time,
        Some(30)
    );
    let wrong = peer("p3", "198.18.92.3", 90).replace(
        "metadata: {name: p3}",
        "metadata: {name: p3, labels: {bgppeer.sart.terassyi.net/node: n7}}",
    );
    refused(cluster, &wrong, "n7");

    // sart's Service webhook, left in the mutating configuration by an earlier install
    // (failurePolicy Fail): Services are still admitted, unchanged.
    let ca = vwc
        .get("sart-validating-webhook-configuration")
        .await
        .unwrap()
        .webhooks
        .unwrap_or_default()[0]
        .client_config
        .ca_bundle
        .clone()
        .unwrap();
    let leftover = serde_json::json!([{"op": "add", "path": "/webhooks/-", "value": {
        "name": "mservice.kb.io", "admissionReviewVersions": ["v1"], "sideEffects": "None",
        "failurePolicy": "Fail",
        "clientConfig": {"url": format!("https://127.0.0.1:{port}/mutate-v1-service"),
                         "caBundle": ca},
        "rules": [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE", "UPDATE"],
                   "resources": ["services"]}]}}]);
    ok(kubectl(
        cluster,
        &[
            "patch",
            "mutatingwebhookconfiguration",
            "sart-mutating-webhook-configuration",
            "--type=json",
            "-p",
            &leftover.to_string(),
        ],
    ));
    let svc = "apiVersion: v1\nkind: Service\nmetadata: {name: behind-sarts-webhook, namespace: default}\nspec: {ports: [{port: 80}]}\n";
    eventually(
        "a Service admitted through sart's Service webhook",
        WAIT,
        || async {
            try_apply(cluster, svc)?;
            let counted = metrics.render().unwrap_or_default();
            if counted.contains("mutate-service") {
                Ok(())
            } else {
                Err("not called yet".to_owned())
            }
        },
    )
    .await;

    // Pod blocks name their node, and carry it as a label.
    refused(cluster, &block("b0", None), "spec.nodeRef");
    try_apply(cluster, &block("b0", Some("n1"))).unwrap();
    let blocks: Api<AddressBlock> = Api::all(client.clone());
    let b0 = blocks.get("b0").await.unwrap();
    assert_eq!(b0.labels()["addressblock.sart.terassyi.net/node"], "n1");

    // A second replica serves the same certificate (it reads the Secret, makes none).
    let again = webhook::tls::from_secret(
        &client,
        "kube-system",
        "sart-webhook-server-cert",
        &["127.0.0.1".into()],
    )
    .await
    .unwrap();
    let s = secrets.get("sart-webhook-server-cert").await.unwrap();
    assert_eq!(
        again.ca.as_bytes(),
        s.data.unwrap()["ca.crt"].0.as_slice(),
        "same CA"
    );
    assert!(!server.is_finished(), "the webhook server is still up");
    let counted = metrics.render().unwrap();
    assert!(
        counted.contains(
            "sart_controller_admissions_total{webhook=\"addresspool\",allowed=\"false\"} 4"
        ),
        "{counted}"
    );
    server.abort();
}
