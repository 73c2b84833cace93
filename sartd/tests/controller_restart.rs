//! Address stability against a real kube-apiserver: 1,000 LoadBalancer Services, the controller
//! restarted three times (once as another replica that must wait for the Lease), and the API
//! server frozen for 60 s. Not one address may change, and nothing may be written afterwards.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;
use common::*;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Service;
use kube::ResourceExt;
use kube::api::{Api, ListParams, PostParams};
use serde_json::json;
use tokio::task::JoinHandle;

const NS: &str = "default";
const SERVICES: usize = 1000;

fn start(client: &kube::Client, identity: &str) -> JoinHandle<Result<(), controller::Error>> {
    tokio::spawn(controller::run(
        client.clone(),
        controller::Options {
            lease: Some((NS.into(), "sart-controller".into())),
            identity: identity.into(),
            services: true,
            pods: true,
            metrics: Default::default(),
        },
    ))
}

/// name → (addresses, resourceVersion) of every LoadBalancer Service.
async fn snapshot(api: &Api<Service>) -> BTreeMap<String, (Vec<String>, String)> {
    api.list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(is_load_balancer)
        .map(|s| {
            let ips = ingress_ips(&s).iter().map(|i| i.to_string()).collect();
            (
                s.name_any(),
                (ips, s.resource_version().unwrap_or_default()),
            )
        })
        .collect()
}

fn assert_same(
    what: &str,
    before: &BTreeMap<String, (Vec<String>, String)>,
    after: &BTreeMap<String, (Vec<String>, String)>,
) {
    let changed: Vec<_> = before
        .iter()
        .filter(|(k, v)| after.get(*k) != Some(v))
        .map(|(k, v)| (k, v, after.get(k)))
        .take(5)
        .collect();
    assert!(
        changed.is_empty() && before.len() == after.len(),
        "{what}: {} of {} Services changed (address or a write), e.g. {changed:?}",
        before
            .iter()
            .filter(|(k, v)| after.get(*k) != Some(v))
            .count(),
        before.len()
    );
}

async fn all_assigned(api: &Api<Service>) -> BTreeMap<String, (Vec<String>, String)> {
    eventually(
        "every Service has an address",
        Duration::from_secs(180),
        || async {
            let s = snapshot(api).await;
            let missing = s.values().filter(|(ips, _)| ips.is_empty()).count();
            if s.len() == SERVICES && missing == 0 {
                Ok(s)
            } else {
                Err(format!(
                    "{} Services, {missing} without an address",
                    s.len()
                ))
            }
        },
    )
    .await
}

/// Waits until the controller has seen everything and gone quiet, then compares.
async fn quiet_and_unchanged(
    what: &str,
    api: &Api<Service>,
    before: &BTreeMap<String, (Vec<String>, String)>,
) {
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_same(what, before, &snapshot(api).await);
}

/// The snapshot once two in a row, 3 s apart, are equal (at most a minute).
async fn settled(
    api: &Api<Service>,
    mut last: BTreeMap<String, (Vec<String>, String)>,
) -> BTreeMap<String, (Vec<String>, String)> {
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_secs(3)).await;
        let now = snapshot(api).await;
        if now == last {
            return now;
        }
        last = now;
    }
    panic!("the controller kept writing Services for a minute after assigning them all");
}

fn signal_apiserver(cluster: &testkube::Cluster, sig: &str) {
    let pidfile = cluster.dir().join("pids/kube-apiserver.pid");
    let pid = std::fs::read_to_string(pidfile).unwrap();
    let pid = pid.split_whitespace().next().unwrap();
    let st = std::process::Command::new("kill")
        .args([sig, pid])
        .status()
        .unwrap();
    assert!(st.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarts_and_an_api_outage_change_no_address() {
    logs();
    let cluster = testkube::Cluster::shared().unwrap();
    install_crds(cluster);
    let client = cluster.client().await.unwrap();
    ok(apply(
        cluster,
        "apiVersion: sart.terassyi.net/v1alpha2\nkind: AddressPool\nmetadata: {name: big}\nspec: {cidr: 198.18.204.0/22, type: service, autoAssign: true}\n",
    ));
    let api: Api<Service> = Api::namespaced(client.clone(), NS);
    let mut ctl = start(&client, "replica-a");

    // Created in random-ish order of names, 16 at a time.
    let t = Instant::now();
    let names: Vec<String> = (0..SERVICES)
        .map(|i| format!("s{:04}", (i * 617) % SERVICES))
        .collect();
    for chunk in names.chunks(16) {
        let creates = chunk.iter().map(|n| {
            let api = api.clone();
            let svc: Service = serde_json::from_value(json!({
                "metadata": {"name": n},
                "spec": {"type": "LoadBalancer", "selector": {"app": n}, "ports": [{"port": 80}]}
            }))
            .unwrap();
            async move { api.create(&PostParams::default(), &svc).await.unwrap() }
        });
        futures::future::join_all(creates).await;
    }
    let before = all_assigned(&api).await;
    eprintln!(
        "{SERVICES} Services created and assigned in {:?}",
        t.elapsed()
    );
    let distinct: std::collections::BTreeSet<String> =
        before.values().map(|(ips, _)| ips[0].clone()).collect();
    assert_eq!(distinct.len(), SERVICES, "two Services share an address");
    // The burst of creations leaves a backlog of events; start from a quiet cluster.
    let before = settled(&api, before).await;

    for (round, identity) in ["replica-a", "replica-b", "replica-b"].iter().enumerate() {
        ctl.abort();
        let _ = ctl.await;
        let t = Instant::now();
        ctl = start(&client, identity);
        // A new Service after the restart gets a fresh address: the restored ones are taken.
        let probe = format!("probe{round}");
        let svc: Service = serde_json::from_value(json!({
            "metadata": {"name": probe},
            "spec": {"type": "LoadBalancer", "ports": [{"port": 80}]}
        }))
        .unwrap();
        api.create(&PostParams::default(), &svc).await.unwrap();
        let ip = eventually("the probe's address", Duration::from_secs(60), || async {
            let s = api.get(&probe).await.map_err(|e| e.to_string())?;
            ingress_ips(&s)
                .first()
                .map(|i| i.to_string())
                .ok_or_else(|| "none yet".to_string())
        })
        .await;
        eprintln!(
            "restart {round} as {identity}: serving again after {:?}",
            t.elapsed()
        );
        assert!(
            !distinct.contains(&ip),
            "restart {round}: the new Service got {ip}, which another Service holds"
        );
        api.delete(&probe, &Default::default()).await.unwrap();
        quiet_and_unchanged(&format!("restart {round}"), &api, &before).await;
    }

    // The API server frozen for 60 s: watches stall and time out, requests fail; afterwards the
    // controller must resynchronise without a single write.
    signal_apiserver(cluster, "-STOP");
    tokio::time::sleep(Duration::from_secs(60)).await;
    signal_apiserver(cluster, "-CONT");
    eventually(
        "the API server answers",
        Duration::from_secs(30),
        || async {
            api.get("s0000")
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_same("after the outage", &before, &snapshot(&api).await);
    assert!(
        !ctl.is_finished(),
        "the controller gave up: {:?}",
        ctl.await
    );
    ctl.abort();
}
