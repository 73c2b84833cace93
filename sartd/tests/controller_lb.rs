//! `sartd controller` LoadBalancer IPAM against a real kube-apiserver (e2e/controlplane), driven
//! through kube-rs and kubectl: assignment, requested addresses, sharing, classes, exhaustion and
//! release, type changes, pool validation and pool deletion while in use, and pools fenced by
//! namespaceSelector.
//!
//! One test function: the controller is a singleton per cluster, and the scenarios share it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;
use common::*;

use std::time::Duration;

use controller::{self, service};
use k8s::crd::{AddressPool, BGPAdvertisement};
use k8s_openapi::api::core::v1::{Event, Service};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

const NS: &str = "default";
const WAIT: Duration = Duration::from_secs(20);

const POOLS: &str = r#"
apiVersion: sart.terassyi.net/v1alpha2
kind: AddressPool
metadata: {name: lb-auto}
spec: {cidr: 198.18.200.0/29, type: service, autoAssign: true}
---
apiVersion: sart.terassyi.net/v1alpha2
kind: AddressPool
metadata: {name: lb-other}
spec: {cidr: 198.18.201.0/24, type: service}
"#;

fn lb(name: &str, annotations: serde_json::Value, ports: &[(i32, &str)]) -> Service {
    let ports: Vec<_> = ports
        .iter()
        .map(|(p, proto)| json!({"name": format!("p{p}"), "port": p, "protocol": proto}))
        .collect();
    serde_json::from_value(json!({
        "metadata": {"name": name, "annotations": annotations},
        "spec": {"type": "LoadBalancer", "selector": {"app": name}, "ports": ports}
    }))
    .unwrap()
}

async fn create(api: &Api<Service>, s: Service) {
    api.create(&PostParams::default(), &s).await.unwrap();
}

/// Waits until the Service shows exactly `want` as its ingress.
async fn ingress_is(api: &Api<Service>, name: &str, want: &[&str]) -> Service {
    eventually(&format!("{name} ingress {want:?}"), WAIT, || async {
        let s = api.get(name).await.map_err(|e| e.to_string())?;
        let got: Vec<String> = ingress_ips(&s).iter().map(|i| i.to_string()).collect();
        if got == want {
            Ok(s)
        } else {
            Err(format!("{got:?}"))
        }
    })
    .await
}

/// Waits until our condition on the Service is False with `reason`.
async fn refused(api: &Api<Service>, name: &str, reason: &str) -> String {
    eventually(&format!("{name} refused with {reason}"), WAIT, || async {
        let s = api.get(name).await.map_err(|e| e.to_string())?;
        let c = s
            .status
            .and_then(|st| st.conditions)
            .unwrap_or_default()
            .into_iter()
            .find(|c| c.type_ == service::CONDITION);
        match c {
            Some(c) if c.status == "False" && c.reason == reason => Ok(c.message),
            other => Err(format!("{other:?}")),
        }
    })
    .await
}

async fn event_reasons(client: &kube::Client, name: &str) -> Vec<String> {
    let events: Api<Event> = Api::namespaced(client.clone(), NS);
    events
        .list(&ListParams::default().fields(&format!("involvedObject.name={name}")))
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|e| e.reason)
        .collect()
}

#[tokio::test]
async fn lb_ipam_against_the_real_api_server() {
    logs();
    let cluster = testkube::Cluster::shared().unwrap();
    install_crds(cluster);
    let client = cluster.client().await.unwrap();
    ok(apply(cluster, POOLS));
    // An advertisement left for a Service that no longer exists (deleted while no controller
    // ran, and with no owner reference for the garbage collector to follow).
    ok(apply(cluster, GHOST_AD));
    let ctl = start(&client);
    let svcs: Api<Service> = Api::namespaced(client.clone(), NS);

    // The lowest free address of the auto-assign pool, from its first address (as sart), with a
    // True condition and nothing of ours in the metadata: a deletion waits for no one.
    create(&svcs, lb("a", json!({}), &[(80, "TCP")])).await;
    let a = ingress_is(&svcs, "a", &["198.18.200.0"]).await;
    assert!(a.finalizers().is_empty(), "{:?}", a.finalizers());
    // One Normal Event says which addresses it got.
    eventually("AddressAssigned Event", WAIT, || async {
        let reasons = event_reasons(&client, "a").await;
        match reasons.iter().filter(|r| *r == "AddressAssigned").count() {
            1 => Ok(()),
            _ => Err(format!("{reasons:?}")),
        }
    })
    .await;

    // A requested address from a named pool.
    create(
        &svcs,
        lb(
            "b",
            json!({"sart.terassyi.net/addresspool": "lb-other",
                   "sart.terassyi.net/loadBalancerIPs": "198.18.201.20"}),
            &[(80, "TCP")],
        ),
    )
    .await;
    ingress_is(&svcs, "b", &["198.18.201.20"]).await;

    // The same address again, without a sharing key: refused, with an Event, and nothing given.
    create(
        &svcs,
        lb(
            "c",
            json!({"sart.terassyi.net/addresspool": "lb-other",
                   "sart.terassyi.net/loadBalancerIPs": "198.18.201.20"}),
            &[(443, "TCP")],
        ),
    )
    .await;
    let msg = refused(&svcs, "c", "RequestedIPTaken").await;
    assert!(
        msg.contains("198.18.201.20") && msg.contains("default/b"),
        "{msg}"
    );
    assert!(
        event_reasons(&client, "c")
            .await
            .contains(&"RequestedIPTaken".to_string())
    );
    ingress_is(&svcs, "c", &[]).await;

    // Sharing (MetalLB's rule): same key, ports that do not clash.
    let shared = json!({"sart.terassyi.net/allow-shared-ip": "web"});
    create(&svcs, lb("d", shared.clone(), &[(80, "TCP")])).await;
    ingress_is(&svcs, "d", &["198.18.200.1"]).await;
    create(&svcs, lb("e", shared.clone(), &[(443, "TCP")])).await;
    ingress_is(&svcs, "e", &["198.18.200.1"]).await;
    // A clashing port cannot join; it gets an address of its own.
    create(&svcs, lb("f", shared, &[(80, "TCP")])).await;
    ingress_is(&svcs, "f", &["198.18.200.2"]).await;

    // Another implementation's class is left alone.
    let mut g = lb("g", json!({}), &[(80, "TCP")]);
    g.spec.as_mut().unwrap().load_balancer_class = Some("example.com/other".into());
    create(&svcs, g).await;

    // A bad annotation is an error, not silently dropped.
    create(
        &svcs,
        lb(
            "bad",
            json!({"sart.terassyi.net/loadBalancerIPs": "198.18.200.300"}),
            &[(80, "TCP")],
        ),
    )
    .await;
    let msg = refused(&svcs, "bad", "InvalidRequest").await;
    assert!(msg.contains("198.18.200.300"), "{msg}");

    // Exhaustion: 8 addresses, 3 taken (.0, .1, .2); 5 more fit, the 6th waits.
    for i in 0..6 {
        create(&svcs, lb(&format!("x{i}"), json!({}), &[(80, "TCP")])).await;
    }
    for i in 0..5 {
        ingress_is(&svcs, &format!("x{i}"), &[&format!("198.18.200.{}", 3 + i)]).await;
    }
    refused(&svcs, "x5", "PoolExhausted").await;
    let g = svcs.get("g").await.unwrap();
    assert!(ingress_ips(&g).is_empty() && g.finalizers().is_empty());

    // Turning "a" into a ClusterIP Service releases its address, which the waiting one gets.
    svcs.patch(
        "a",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"type": "ClusterIP"}})),
    )
    .await
    .unwrap();
    ingress_is(&svcs, "a", &[]).await;
    ingress_is(&svcs, "x5", &["198.18.200.0"]).await;

    // A pool overlapping an older one is refused with a reason kubectl shows.
    ok(apply(
        cluster,
        "apiVersion: sart.terassyi.net/v1alpha2\nkind: AddressPool\nmetadata: {name: lb-overlap}\nspec: {cidr: 198.18.201.128/25, type: service}\n",
    ));
    let pools: Api<AddressPool> = Api::all(client.clone());
    eventually("lb-overlap refused", WAIT, || async {
        let p = pools.get("lb-overlap").await.map_err(|e| e.to_string())?;
        let c = p.status.and_then(|s| s.conditions).unwrap_or_default();
        match c.iter().find(|c| c.type_ == "Ready") {
            Some(c) if c.status == "False" && c.reason == "Overlap" => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    // Counts on the valid pool: 8 addresses, all taken.
    eventually("lb-auto counts", WAIT, || async {
        let p = pools.get("lb-auto").await.map_err(|e| e.to_string())?;
        let s = p.status.unwrap_or_default();
        if (s.allocated, s.free) == (Some(8), Some(0)) {
            Ok(())
        } else {
            Err(format!("{s:?}"))
        }
    })
    .await;

    // Deleting a pool in use waits for its Services.
    pools
        .delete("lb-other", &DeleteParams::default())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let p = pools.get("lb-other").await.unwrap();
    assert!(p.metadata.deletion_timestamp.is_some());
    assert!(
        event_reasons_all(&client, "lb-other")
            .await
            .contains(&"InUse".to_string())
    );
    svcs.delete("b", &DeleteParams::default()).await.unwrap();
    // "c" waited for b's address in lb-other; a pool being deleted gives out nothing new.
    tokio::time::sleep(Duration::from_secs(1)).await;
    ingress_is(&svcs, "c", &[]).await;
    eventually("lb-other gone", WAIT, || async {
        match pools.get_opt("lb-other").await {
            Ok(None) => Ok(()),
            other => Err(format!("{:?}", other.map(|p| p.map(|p| p.name_any())))),
        }
    })
    .await;
    // Deleted Services are really gone.
    eventually("b gone", WAIT, || async {
        match svcs.get_opt("b").await {
            Ok(None) => Ok(()),
            other => Err(format!(
                "{:?}",
                other.map(|s| s.map(|s| s.finalizers().to_vec()))
            )),
        }
    })
    .await;

    // kubectl shows the addresses as users see them.
    let out = ok(kubectl(
        cluster,
        &["get", "svc", "-n", NS, "x5", "-o", "wide"],
    ));
    assert!(out.contains("198.18.200.0"), "{out}");

    etp_local_follows_ready_endpoints(cluster, &client).await;
    pool_annotation_changes(cluster, &client).await;
    namespaces_are_fenced(cluster, &client).await;
    gone_services_give_back(cluster, &client).await;
    ctl.abort();
    let _ = ctl.await;
    changed_while_no_controller_ran(&client).await;
}

fn start(client: &kube::Client) -> tokio::task::JoinHandle<Result<(), controller::Error>> {
    tokio::spawn(controller::run(
        client.clone(),
        controller::Options {
            lease: Some(("default".into(), "sart-controller".into())),
            identity: "test".into(),
            services: true,
            pods: true,
            metrics: Default::default(),
        },
    ))
}

/// While no controller runs, one Service of the full pool is deleted and another turned into a
/// ClusterIP Service. Once one runs again, the first's address serves a waiting Service, and the
/// second's advertisement goes and its status says it is no longer ours.
async fn changed_while_no_controller_ran(client: &kube::Client) {
    let svcs: Api<Service> = Api::namespaced(client.clone(), NS);
    svcs.delete("full2", &DeleteParams::default())
        .await
        .unwrap();
    svcs.patch(
        "full3",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"type": "ClusterIP"}})),
    )
    .await
    .unwrap();
    let ctl = start(client);
    ingress_is(&svcs, "full1", &["198.18.207.1"]).await;
    refused(&svcs, "full3", "Released").await;
    ingress_is(&svcs, "full3", &[]).await;
    no_service_ads(client, &["full2", "full3"]).await;
    // Two addresses free, none waiting: the next two Services of the pool get them.
    let churn = json!({"sart.terassyi.net/addresspool": "lb-churn"});
    create(&svcs, lb("after1", churn.clone(), &[(80, "TCP")])).await;
    create(&svcs, lb("after2", churn, &[(80, "TCP")])).await;
    let mut got = vec![
        ingress_is_some(&svcs, "after1").await,
        ingress_is_some(&svcs, "after2").await,
    ];
    got.sort();
    assert_eq!(got, ["198.18.207.2", "198.18.207.3"]);
    ctl.abort();
}

const GHOST_AD: &str = r#"
apiVersion: sart.terassyi.net/v1alpha2
kind: BGPAdvertisement
metadata:
  name: ghost-198-18-200-99
  namespace: default
  labels: {kubernetes.io/service-name: ghost}
spec: {cidr: 198.18.200.99/32, type: service, protocol: ipv4}
"#;

/// Service advertisements in the namespace, by name.
async fn service_ads(client: &kube::Client) -> Vec<String> {
    let ads: Api<BGPAdvertisement> = Api::namespaced(client.clone(), NS);
    let mut v: Vec<String> = ads
        .list(&ListParams::default().labels("kubernetes.io/service-name"))
        .await
        .unwrap()
        .items
        .iter()
        .map(|a| a.name_any())
        .collect();
    v.sort();
    v
}

/// Waits until no Service advertisement's name starts with one of `services`.
async fn no_service_ads(client: &kube::Client, services: &[&str]) {
    eventually(
        &format!("no advertisement of {services:?}"),
        WAIT,
        || async {
            let ads = service_ads(client).await;
            match ads
                .iter()
                .find(|a| services.iter().any(|s| a.starts_with(s)))
            {
                Some(_) => Err(format!("{ads:?}")),
                None => Ok(()),
            }
        },
    )
    .await;
}

/// A pool's `status.allocated`.
async fn allocated(client: &kube::Client, pool: &str, want: i64) {
    let pools: Api<AddressPool> = Api::all(client.clone());
    eventually(&format!("{pool} allocates {want}"), WAIT, || async {
        let p = pools.get(pool).await.map_err(|e| e.to_string())?;
        match p.status.and_then(|s| s.allocated) {
            Some(n) if n == want => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
}

/// Deleting a Service gives back what it held from the watch, with no finalizer to wait for:
/// Services deleted while their reconcile may still be assigning leave nothing held and no
/// advertisement; an earlier version's finalizer is taken off; a waiting Service gets what a
/// deleted one held; the advertisement of a Service gone before the controller started is
/// deleted.
async fn gone_services_give_back(cluster: &testkube::Cluster, client: &kube::Client) {
    no_service_ads(client, &["ghost"]).await;
    ok(apply(
        cluster,
        "apiVersion: sart.terassyi.net/v1alpha2\nkind: AddressPool\nmetadata: {name: lb-churn}\nspec: {cidr: 198.18.207.0/29, type: service}\n",
    ));
    let svcs: Api<Service> = Api::namespaced(client.clone(), NS);
    let churn = json!({"sart.terassyi.net/addresspool": "lb-churn"});
    // A Service as an earlier version left it: our finalizer comes off, the address stays.
    let mut legacy = lb("legacy", churn.clone(), &[(80, "TCP")]);
    legacy.metadata.finalizers = Some(vec![service::FINALIZER.into()]);
    create(&svcs, legacy).await;
    ingress_is(&svcs, "legacy", &["198.18.207.0"]).await;
    eventually("legacy without our finalizer", WAIT, || async {
        let s = svcs.get("legacy").await.map_err(|e| e.to_string())?;
        if s.finalizers().is_empty() {
            Ok(())
        } else {
            Err(format!("{:?}", s.finalizers()))
        }
    })
    .await;
    // 24 Services, each deleted as soon as it is created, in a pool of 8.
    futures::future::join_all((0..24).map(|i| {
        let svcs = svcs.clone();
        let churn = churn.clone();
        async move {
            let name = format!("churn{i}");
            create(&svcs, lb(&name, churn, &[(80, "TCP")])).await;
            svcs.delete(&name, &DeleteParams::default()).await.unwrap();
        }
    }))
    .await;
    allocated(client, "lb-churn", 1).await;
    no_service_ads(client, &["churn"]).await;
    // The pool filled, one more waits; deleting a holder serves it.
    for i in 1..8 {
        create(
            &svcs,
            lb(&format!("full{i}"), churn.clone(), &[(80, "TCP")]),
        )
        .await;
    }
    for i in 1..8 {
        ingress_is(&svcs, &format!("full{i}"), &[&format!("198.18.207.{i}")]).await;
    }
    create(&svcs, lb("waiting", churn.clone(), &[(80, "TCP")])).await;
    refused(&svcs, "waiting", "PoolExhausted").await;
    svcs.delete("legacy", &DeleteParams::default())
        .await
        .unwrap();
    ingress_is(&svcs, "waiting", &["198.18.207.0"]).await;
    allocated(client, "lb-churn", 8).await;
}

/// A pool for namespaces labelled tenant=a: their Services get it first; another namespace
/// can neither name it nor request one of its addresses, nor join an address of another
/// namespace with its sharing key, and the refusals name no other namespace's Service. Once
/// that namespace gets the label, its waiting Service is served.
async fn namespaces_are_fenced(cluster: &testkube::Cluster, client: &kube::Client) {
    ok(apply(
        cluster,
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: tenant-a, labels: {tenant: a}}\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: tenant-b}\n---\napiVersion: sart.terassyi.net/v1alpha2\nkind: AddressPool\nmetadata: {name: lb-tenant-a}\nspec: {cidr: 198.18.206.0/29, type: service, autoAssign: true, namespaceSelector: {matchLabels: {tenant: a}}}\n",
    ));
    let (a, b) = (
        Api::<Service>::namespaced(client.clone(), "tenant-a"),
        Api::<Service>::namespaced(client.clone(), "tenant-b"),
    );
    let default: Api<Service> = Api::namespaced(client.clone(), NS);
    create(&a, lb("web", json!({}), &[(80, "TCP")])).await;
    ingress_is(&a, "web", &["198.18.206.0"]).await;
    // tenant-b: the auto pool for everybody (full by now), never a's, free as it is.
    create(&b, lb("web", json!({}), &[(80, "TCP")])).await;
    let m = refused(&b, "web", "PoolExhausted").await;
    assert!(m.contains("lb-auto"), "{m}");
    create(
        &b,
        lb(
            "named",
            json!({"sart.terassyi.net/addresspool": "lb-tenant-a"}),
            &[(80, "TCP")],
        ),
    )
    .await;
    let m = refused(&b, "named", "PoolNotAllowed").await;
    assert!(m.contains("lb-tenant-a") && m.contains("tenant-b"), "{m}");
    create(
        &b,
        lb(
            "squat",
            json!({"sart.terassyi.net/loadBalancerIPs": "198.18.206.5"}),
            &[(80, "TCP")],
        ),
    )
    .await;
    refused(&b, "squat", "PoolNotAllowed").await;
    // A sharing key is no password: the same key from another namespace joins nothing.
    create(
        &default,
        lb(
            "dns-shared",
            json!({"sart.terassyi.net/addresspool": "lb-alt",
                   "sart.terassyi.net/loadBalancerIPs": "198.18.204.30",
                   "sart.terassyi.net/allow-shared-ip": "dns"}),
            &[(53, "TCP")],
        ),
    )
    .await;
    ingress_is(&default, "dns-shared", &["198.18.204.30"]).await;
    create(
        &b,
        lb(
            "dns-join",
            json!({"sart.terassyi.net/addresspool": "lb-alt",
                   "sart.terassyi.net/loadBalancerIPs": "198.18.204.30",
                   "sart.terassyi.net/allow-shared-ip": "dns"}),
            &[(53, "UDP")],
        ),
    )
    .await;
    let m = refused(&b, "dns-join", "RequestedIPTaken").await;
    assert!(
        m.contains("another namespace") && !m.contains("dns-shared") && !m.contains("default/"),
        "{m}"
    );
    // tenant-b gets the label: the Service that named a's pool is served.
    ok(kubectl(
        cluster,
        &["label", "namespace", "tenant-b", "tenant=a"],
    ));
    let s = ingress_is_some(&b, "named").await;
    assert!(s.starts_with("198.18.206."), "{s}");
    // And loses it: the Service that named the pool gives its address back.
    ok(kubectl(
        cluster,
        &["label", "namespace", "tenant-b", "tenant-"],
    ));
    refused(&b, "named", "PoolNotAllowed").await;
    ingress_is(&b, "named", &[]).await;
}

/// Waits until the Service has one address; returns it.
async fn ingress_is_some(api: &Api<Service>, name: &str) -> String {
    eventually(&format!("{name} has an address"), WAIT, || async {
        let s = api.get(name).await.map_err(|e| e.to_string())?;
        match ingress_ips(&s).as_slice() {
            [ip] => Ok(ip.to_string()),
            other => Err(format!("{other:?}")),
        }
    })
    .await
}

/// sart's e2e "change pool" and "add pool": the Service's pool annotation is edited; each
/// listed pool gives one address, a pool taken off the list takes its address back.
async fn pool_annotation_changes(cluster: &testkube::Cluster, client: &kube::Client) {
    ok(apply(
        cluster,
        "apiVersion: sart.terassyi.net/v1alpha2\nkind: AddressPool\nmetadata: {name: lb-alt}\nspec: {cidr: 198.18.204.0/24, type: service}\n",
    ));
    let svcs: Api<Service> = Api::namespaced(client.clone(), NS);
    let annotate = |pools: &'static str| {
        let svcs = svcs.clone();
        async move {
            svcs.patch(
                "moving",
                &PatchParams::default(),
                &Patch::Merge(&json!({"metadata": {"annotations": {
                    "sart.terassyi.net/addresspool": pools}}})),
            )
            .await
            .unwrap();
        }
    };
    create(
        &svcs,
        lb(
            "moving",
            json!({"sart.terassyi.net/addresspool": "lb-etp"}),
            &[(8080, "TCP")],
        ),
    )
    .await;
    // lb-etp's .0 is the ETP Service's.
    ingress_is(&svcs, "moving", &["198.18.202.1"]).await;
    annotate("lb-etp,lb-alt").await;
    ingress_is(&svcs, "moving", &["198.18.202.1", "198.18.204.0"]).await;
    annotate("lb-alt").await;
    ingress_is(&svcs, "moving", &["198.18.204.0"]).await;
    // The address given back is free again.
    create(
        &svcs,
        lb(
            "after",
            json!({"sart.terassyi.net/addresspool": "lb-etp"}),
            &[(80, "TCP")],
        ),
    )
    .await;
    ingress_is(&svcs, "after", &["198.18.202.1"]).await;
}

/// `externalTrafficPolicy: Local`: the address is announced only by the peers of nodes with a
/// ready endpoint (as EndpointSlices say), withdrawn from a node when its last one goes,
/// announced again when one is back; `Cluster` announces from every node.
async fn etp_local_follows_ready_endpoints(cluster: &testkube::Cluster, client: &kube::Client) {
    use AdvertiseStatus::{NotAdvertised, Withdraw};
    use k8s::crd::{AdvertiseStatus, BGPAdvertisement};
    use std::collections::BTreeMap;

    ok(apply(
        cluster,
        "apiVersion: sart.terassyi.net/v1alpha2\nkind: AddressPool\nmetadata: {name: lb-etp}\nspec: {cidr: 198.18.202.0/24, type: service}\n---\napiVersion: sart.terassyi.net/v1alpha2\nkind: BGPPeer\nmetadata: {name: e1-tor}\nspec: {asn: 65000, addr: 198.18.203.1, nodeBGPRef: e1, speaker: {path: \"127.0.0.1:5000\"}}\n---\napiVersion: sart.terassyi.net/v1alpha2\nkind: BGPPeer\nmetadata: {name: e2-tor}\nspec: {asn: 65000, addr: 198.18.203.2, nodeBGPRef: e2, speaker: {path: \"127.0.0.1:5000\"}}\n",
    ));
    // No selector: the endpoints are ours to write, as the EndpointSlice controller would.
    let svcs: Api<Service> = Api::namespaced(client.clone(), NS);
    let svc: Service = serde_json::from_value(json!({
        "metadata": {"name": "local", "annotations": {"sart.terassyi.net/addresspool": "lb-etp"}},
        "spec": {"type": "LoadBalancer", "externalTrafficPolicy": "Local",
                 "ports": [{"port": 80}]}
    }))
    .unwrap();
    svcs.create(&PostParams::default(), &svc).await.unwrap();
    ingress_is(&svcs, "local", &["198.18.202.0"]).await;
    let slice = |e1: Option<bool>, e2: Option<bool>| {
        let eps: Vec<_> = [("e1", e1, "100.64.0.1"), ("e2", e2, "100.64.0.2")]
            .into_iter()
            .filter_map(|(n, r, ip)| {
                r.map(|r| json!({"addresses": [ip], "nodeName": n, "conditions": {"ready": r}}))
            })
            .collect();
        json!({
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": "local-1", "namespace": NS, "labels": {
                "kubernetes.io/service-name": "local",
                "endpointslice.kubernetes.io/managed-by": "sart-test"}},
            "addressType": "IPv4", "endpoints": eps, "ports": [{"port": 80}]
        })
    };
    let ads: Api<BGPAdvertisement> = Api::namespaced(client.clone(), NS);
    let peers_are = |want: Vec<(&'static str, AdvertiseStatus)>| {
        let ads = ads.clone();
        async move {
            let want: BTreeMap<String, AdvertiseStatus> =
                want.into_iter().map(|(p, s)| (p.to_string(), s)).collect();
            eventually(&format!("local's peers {want:?}"), WAIT, || async {
                let a = ads
                    .get("local-198-18-202-0")
                    .await
                    .map_err(|e| e.to_string())?;
                let got: BTreeMap<String, AdvertiseStatus> = a
                    .status
                    .and_then(|s| s.peers)
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|(p, _)| p.starts_with("e"))
                    .collect();
                if got == want {
                    Ok(())
                } else {
                    Err(format!("{got:?}"))
                }
            })
            .await
        }
    };
    // No endpoints yet: nobody announces.
    peers_are(vec![]).await;
    ok(apply(cluster, &slice(Some(true), Some(false)).to_string()));
    peers_are(vec![("e1-tor", NotAdvertised)]).await;
    // e1's endpoint turns unready and e2's ready: the announcement moves.
    ok(apply(cluster, &slice(Some(false), Some(true)).to_string()));
    peers_are(vec![("e1-tor", Withdraw), ("e2-tor", NotAdvertised)]).await;
    // The last endpoint goes: withdrawn everywhere.
    ok(apply(cluster, &slice(None, None).to_string()));
    peers_are(vec![("e1-tor", Withdraw), ("e2-tor", Withdraw)]).await;
    // Back on e1; then Cluster policy: every node announces.
    ok(apply(cluster, &slice(Some(true), None).to_string()));
    peers_are(vec![("e1-tor", NotAdvertised), ("e2-tor", Withdraw)]).await;
    svcs.patch(
        "local",
        &PatchParams::default(),
        &Patch::Merge(&json!({"spec": {"externalTrafficPolicy": "Cluster"}})),
    )
    .await
    .unwrap();
    peers_are(vec![("e1-tor", NotAdvertised), ("e2-tor", NotAdvertised)]).await;
}

/// Events of a cluster-scoped object (they land in the `default` namespace).
async fn event_reasons_all(client: &kube::Client, name: &str) -> Vec<String> {
    event_reasons(client, name).await
}
