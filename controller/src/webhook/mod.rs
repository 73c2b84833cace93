//! Admission webhooks of `sartd controller`, served over HTTPS by every replica (not only the
//! leader, so a hand-over never leaves the API server without an answer): AddressPool and
//! BGPPeer validation, and the node labels on BGPPeers and pod AddressBlocks. The rules are in
//! [`rules`]; the certificate and the listener in [`tls`].

mod rules;
pub mod tls;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::post;
use kube::Client;
use kube::api::{Api, ListParams};
use kube::core::DynamicObject;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview, Operation};
use serde::de::DeserializeOwned;
use tracing::{info, warn};

use crate::metrics::Metrics;
use k8s::crd::{AddressBlock, AddressPool, BGPPeer};

pub(crate) const VALIDATE_ADDRESS_POOL: &str = "/validate-sart-terassyi-net-v1alpha2-addresspool";
pub(crate) const VALIDATE_BGP_PEER: &str = "/validate-sart-terassyi-net-v1alpha2-bgppeer";
pub(crate) const VALIDATE_BGP_ADVERTISEMENT: &str =
    "/validate-sart-terassyi-net-v1alpha2-bgpadvertisement";
pub(crate) const MUTATE_BGP_PEER: &str = "/mutate-sart-terassyi-net-v1alpha2-bgppeer";
pub(crate) const MUTATE_ADDRESS_BLOCK: &str = "/mutate-sart-terassyi-net-v1alpha2-addressblock";
/// sart's Service webhook (it kept released addresses in an annotation). Ours has none, but a
/// configuration left from sart still sends every Service here with `failurePolicy: Fail`: it
/// is answered "allowed, unchanged" rather than 404, which would block every Service.
pub(crate) const MUTATE_SERVICE: &str = "/mutate-v1-service";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Tls(#[from] tls::Error),
    #[error("webhook server on {addr}: {source}")]
    Serve {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

#[derive(Clone, Debug)]
pub struct Options {
    pub bind: SocketAddr,
    /// A mounted certificate (`tls.crt`, `tls.key`); without one we make our own.
    pub cert_dir: PathBuf,
    /// Where our own certificate is kept: namespace and Secret name.
    pub secret: (String, String),
    /// Names the certificate is made for (the webhook Service's DNS names, or addresses).
    pub hosts: Vec<String>,
    /// Our ValidatingWebhookConfiguration and MutatingWebhookConfiguration, whose `caBundle`
    /// we fill when the certificate is ours.
    pub configurations: (String, String),
}

/// Serves the webhooks until the process ends; `metrics` counts the answers and turns ready once
/// the listener is up.
pub async fn run(client: Client, opts: Options, metrics: Metrics) -> Result<(), Error> {
    let mounted = tls::read_dir(&opts.cert_dir)?;
    let pems = match &mounted {
        Some(p) => p.clone(),
        None => tls::from_secret(&client, &opts.secret.0, &opts.secret.1, &opts.hosts).await?,
    };
    let tcp = tokio::net::TcpListener::bind(opts.bind)
        .await
        .map_err(|source| Error::Serve {
            addr: opts.bind,
            source,
        })?;
    let listener = tls::TlsListener::new(tcp, &pems)?;
    let reloader = listener.reloader();
    info!(addr = %opts.bind, mounted = mounted.is_some(), "webhooks serving");
    let app = router(client.clone(), metrics.clone());
    metrics.set_ready();
    let upkeep = async move {
        // A mounted certificate is renewed behind our back (cert-manager); our own needs its CA
        // in configurations that may be applied after we start.
        let mut last = pems;
        loop {
            if mounted.is_some() {
                match tls::read_dir(&opts.cert_dir) {
                    Ok(Some(now)) if now != last => match reloader.replace(&now) {
                        Ok(()) => {
                            info!("webhook certificate reloaded");
                            last = now;
                        }
                        Err(e) => warn!(error = %e, "renewed webhook certificate not usable"),
                    },
                    Ok(_) => {}
                    Err(e) => warn!(error = %e, "reading the webhook certificate"),
                }
            } else if let Err(e) = tls::inject_ca(
                &client,
                &opts.configurations.0,
                &opts.configurations.1,
                &last.ca,
            )
            .await
            {
                warn!(error = %e, "writing the webhook caBundle");
            }
            tokio::time::sleep(Duration::from_secs(30)).await;
        }
    };
    tokio::select! {
        r = axum::serve(listener, app) => r.map_err(|source| Error::Serve { addr: opts.bind, source }),
        () = upkeep => Ok(()),
    }
}

pub(crate) fn router(client: Client, metrics: Metrics) -> Router {
    let (c1, c2) = (client.clone(), client);
    let m = [0; 6].map(|_| metrics.clone());
    let [m1, m2, m3, m4, m5, m6] = m;
    Router::new()
        .route(
            VALIDATE_ADDRESS_POOL,
            post(move |b: Bytes| {
                review(b, m1.clone(), "addresspool", move |r| {
                    validate_pool(c1.clone(), r)
                })
            }),
        )
        .route(
            VALIDATE_BGP_PEER,
            post(move |b: Bytes| {
                review(b, m2.clone(), "bgppeer", move |r| {
                    validate_peer(c2.clone(), r)
                })
            }),
        )
        // sart registers it and allows everything; so do we, for manifests that name it.
        .route(
            VALIDATE_BGP_ADVERTISEMENT,
            post(move |b: Bytes| {
                review(b, m3.clone(), "bgpadvertisement", |r| async move {
                    AdmissionResponse::from(&r)
                })
            }),
        )
        .route(
            MUTATE_BGP_PEER,
            post(move |b: Bytes| {
                review(b, m4.clone(), "mutate-bgppeer", |r| async move {
                    mutate_peer(r)
                })
            }),
        )
        .route(
            MUTATE_ADDRESS_BLOCK,
            post(move |b: Bytes| {
                review(b, m5.clone(), "mutate-addressblock", |r| async move {
                    mutate_block(r)
                })
            }),
        )
        .route(
            MUTATE_SERVICE,
            post(move |b: Bytes| {
                review(b, m6.clone(), "mutate-service", |r| async move {
                    AdmissionResponse::from(&r)
                })
            }),
        )
}

/// Reads an AdmissionReview, decides, counts, and answers with one.
async fn review<F, Fut>(
    body: Bytes,
    metrics: Metrics,
    webhook: &'static str,
    decide: F,
) -> impl IntoResponse
where
    F: FnOnce(AdmissionRequest<DynamicObject>) -> Fut,
    Fut: Future<Output = AdmissionResponse>,
{
    let resp = match serde_json::from_slice::<AdmissionReview<DynamicObject>>(&body)
        .map_err(|e| e.to_string())
        .and_then(|r| {
            TryInto::<AdmissionRequest<DynamicObject>>::try_into(r).map_err(|e| e.to_string())
        }) {
        Ok(req) => decide(req).await,
        Err(e) => AdmissionResponse::invalid(format!("not an AdmissionReview: {e}")),
    };
    metrics.admitted(webhook, resp.allowed);
    let body = serde_json::to_vec(&resp.into_review()).unwrap_or_default();
    ([(CONTENT_TYPE, "application/json")], body)
}

fn typed<K: DeserializeOwned>(o: &DynamicObject) -> Result<K, String> {
    serde_json::to_value(o)
        .and_then(serde_json::from_value)
        .map_err(|e| format!("cannot read the object: {e}"))
}

/// The new object and, on UPDATE, the old one.
fn objects<K: DeserializeOwned>(
    r: &AdmissionRequest<DynamicObject>,
) -> Result<(K, Option<K>), String> {
    let new = r.object.as_ref().ok_or("no object in the request")?;
    let old = match (&r.operation, &r.old_object) {
        (Operation::Update, Some(o)) => Some(typed(o)?),
        _ => None,
    };
    Ok((typed(new)?, old))
}

async fn list<K>(client: Client) -> Result<Vec<K>, String>
where
    K: kube::Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
{
    Api::<K>::all(client)
        .list(&ListParams::default())
        .await
        .map(|l| l.items)
        // Fail closed: a pool admitted unchecked could overlap another.
        .map_err(|e| format!("cannot check against the cluster: {e}"))
}

fn verdict(r: &AdmissionRequest<DynamicObject>, v: Result<(), String>) -> AdmissionResponse {
    let resp = AdmissionResponse::from(r);
    match v {
        Ok(()) => resp,
        Err(m) => {
            info!(kind = %r.kind.kind, name = %r.name, reason = %m, "admission denied");
            resp.deny(m)
        }
    }
}

async fn validate_pool(client: Client, r: AdmissionRequest<DynamicObject>) -> AdmissionResponse {
    let v = async {
        let (new, old) = objects::<AddressPool>(&r)?;
        let all = list::<AddressPool>(client).await?;
        rules::check_pool(&new, old.as_ref(), &all)
    }
    .await;
    verdict(&r, v)
}

async fn validate_peer(client: Client, r: AdmissionRequest<DynamicObject>) -> AdmissionResponse {
    let v = async {
        let (new, old) = objects::<BGPPeer>(&r)?;
        let all = list::<BGPPeer>(client).await?;
        rules::check_peer(&new, old.as_ref(), &all)
    }
    .await;
    verdict(&r, v)
}

fn patched(
    r: &AdmissionRequest<DynamicObject>,
    p: Result<Option<serde_json::Value>, String>,
) -> AdmissionResponse {
    let resp = AdmissionResponse::from(r);
    match p {
        Ok(None) => resp,
        Ok(Some(ops)) => match serde_json::from_value::<json_patch::Patch>(ops)
            .map_err(|e| e.to_string())
            .and_then(|p| resp.clone().with_patch(p).map_err(|e| e.to_string()))
        {
            Ok(with) => with,
            Err(e) => resp.deny(format!("internal error building the patch: {e}")),
        },
        Err(m) => verdict(r, Err(m)),
    }
}

fn mutate_peer(r: AdmissionRequest<DynamicObject>) -> AdmissionResponse {
    let p = objects::<BGPPeer>(&r).map(|(p, _)| rules::mutate_peer(&p));
    patched(&r, p)
}

fn mutate_block(r: AdmissionRequest<DynamicObject>) -> AdmissionResponse {
    let p = objects::<AddressBlock>(&r).and_then(|(b, _)| rules::mutate_block(&b));
    patched(&r, p)
}
