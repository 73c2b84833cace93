//! The webhook's certificate and the TLS listener that serves with it.
//!
//! Two ways to get a certificate: one mounted into `--webhook-cert-dir` (cert-manager, or any
//! Secret: `tls.crt`, `tls.key`), re-read when it changes; or, when none is mounted, one we make
//! ourselves: a CA and a server certificate kept in a Secret (so every replica serves the same
//! one), with the CA written into our webhook configurations' `caBundle`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use k8s_openapi::ByteString;
use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
};
use k8s_openapi::api::core::v1::Secret;
use kube::Client;
use kube::api::{Api, Patch, PatchParams, PostParams};
use rustls::crypto::ring;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;
use tracing::{debug, info, warn};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("certificate: {0}")]
    Pem(String),
    #[error("TLS: {0}")]
    Tls(#[from] rustls::Error),
    #[error("making a certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("Secret {0} has no {1}")]
    Incomplete(String, &'static str),
}

/// PEM text of a server certificate (chain), its key, and the CA that signed it.
#[derive(Clone, PartialEq, Eq)]
pub struct Pems {
    pub cert: String,
    pub key: String,
    pub ca: String,
}

impl std::fmt::Debug for Pems {
    // Never the key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pems").finish_non_exhaustive()
    }
}

/// A CA and a server certificate for `hosts` (DNS names or IP addresses) signed by it.
pub(super) fn generate(hosts: &[String]) -> Result<Pems, Error> {
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Constrained(0));
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "sart webhook CA");
    ca_params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, rcgen::KeyPair::generate()?)?;
    let mut params = rcgen::CertificateParams::new(hosts.to_vec())?;
    params.distinguished_name.push(
        rcgen::DnType::CommonName,
        hosts.first().map_or("sart-webhook", String::as_str),
    );
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::DigitalSignature,
        rcgen::KeyUsagePurpose::KeyEncipherment,
    ];
    let key = rcgen::KeyPair::generate()?;
    let cert = params.signed_by(&key, &ca)?;
    Ok(Pems {
        cert: cert.pem(),
        key: key.serialize_pem(),
        ca: ca.as_ref().pem(),
    })
}

fn certified_key(p: &Pems) -> Result<Arc<CertifiedKey>, Error> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(p.cert.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| Error::Pem(e.to_string()))?;
    if chain.is_empty() {
        return Err(Error::Pem("no certificate in tls.crt".into()));
    }
    let key =
        PrivateKeyDer::from_pem_slice(p.key.as_bytes()).map_err(|e| Error::Pem(e.to_string()))?;
    let provider = ring::default_provider();
    Ok(Arc::new(CertifiedKey::from_der(chain, key, &provider)?))
}

/// The certificate in use; swapped when a mounted one changes.
#[derive(Debug)]
struct Current(RwLock<Arc<CertifiedKey>>);

impl ResolvesServerCert for Current {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.read().unwrap_or_else(|p| p.into_inner()).clone())
    }
}

/// Reads `tls.crt` and `tls.key` (and `ca.crt` if there) from a mounted directory; `None` when
/// nothing is mounted.
pub(super) fn read_dir(dir: &Path) -> Result<Option<Pems>, Error> {
    let read = |name: &str| {
        let path = dir.join(name);
        std::fs::read_to_string(&path).map_err(|source| Error::Read { path, source })
    };
    if !dir.join("tls.crt").exists() && !dir.join("tls.key").exists() {
        return Ok(None);
    }
    Ok(Some(Pems {
        cert: read("tls.crt")?,
        key: read("tls.key")?,
        ca: read("ca.crt").unwrap_or_default(),
    }))
}

/// Our own certificate from the Secret `ns/name`, made and stored there by the first replica
/// that finds none.
pub async fn from_secret(
    client: &Client,
    ns: &str,
    name: &str,
    hosts: &[String],
) -> Result<Pems, Error> {
    let api: Api<Secret> = Api::namespaced(client.clone(), ns);
    let field = |s: &Secret, key: &'static str| -> Result<String, Error> {
        s.data
            .as_ref()
            .and_then(|d| d.get(key))
            .map(|b| String::from_utf8_lossy(&b.0).into_owned())
            .ok_or_else(|| Error::Incomplete(format!("{ns}/{name}"), key))
    };
    let read = |s: &Secret| -> Result<Pems, Error> {
        Ok(Pems {
            cert: field(s, "tls.crt")?,
            key: field(s, "tls.key")?,
            ca: field(s, "ca.crt")?,
        })
    };
    if let Some(s) = api.get_opt(name).await? {
        return read(&s);
    }
    let pems = generate(hosts)?;
    let secret = Secret {
        metadata: kube::api::ObjectMeta {
            name: Some(name.into()),
            namespace: Some(ns.into()),
            ..Default::default()
        },
        type_: Some("kubernetes.io/tls".into()),
        data: Some(
            [
                ("tls.crt", &pems.cert),
                ("tls.key", &pems.key),
                ("ca.crt", &pems.ca),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), ByteString(v.as_bytes().to_vec())))
            .collect(),
        ),
        ..Default::default()
    };
    match api.create(&PostParams::default(), &secret).await {
        Ok(_) => {
            info!(secret = %format!("{ns}/{name}"), hosts = ?hosts, "made a self-signed webhook certificate");
            Ok(pems)
        }
        // Another replica was first: use its certificate.
        Err(kube::Error::Api(e)) if e.code == 409 => read(&api.get(name).await?),
        Err(e) => Err(e.into()),
    }
}

/// Writes `ca` into every webhook of our two configurations that does not have it yet. A
/// configuration that does not exist is skipped (nothing calls us through it).
pub(super) async fn inject_ca(
    client: &Client,
    validating: &str,
    mutating: &str,
    ca: &str,
) -> Result<(), Error> {
    let bundle = ByteString(ca.as_bytes().to_vec());
    // Webhooks (by name) whose bundle is not `bundle` yet.
    let stale = |hooks: Vec<(String, Option<ByteString>)>| -> Vec<String> {
        hooks
            .into_iter()
            .filter(|(_, b)| b.as_ref() != Some(&bundle))
            .map(|(n, _)| n)
            .collect()
    };
    let vapi: Api<ValidatingWebhookConfiguration> = Api::all(client.clone());
    if let Some(v) = vapi.get_opt(validating).await? {
        let hooks = v.webhooks.unwrap_or_default().into_iter();
        let names = stale(hooks.map(|w| (w.name, w.client_config.ca_bundle)).collect());
        patch_bundles(&vapi, validating, &names, &bundle).await?;
    }
    let mapi: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
    if let Some(m) = mapi.get_opt(mutating).await? {
        let hooks = m.webhooks.unwrap_or_default().into_iter();
        let names = stale(hooks.map(|w| (w.name, w.client_config.ca_bundle)).collect());
        patch_bundles(&mapi, mutating, &names, &bundle).await?;
    }
    Ok(())
}

async fn patch_bundles<K>(
    api: &Api<K>,
    config: &str,
    webhooks: &[String],
    bundle: &ByteString,
) -> Result<(), Error>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    if webhooks.is_empty() {
        return Ok(());
    }
    // `webhooks` merges by name: only the bundles change.
    let items: Vec<serde_json::Value> = webhooks
        .iter()
        .map(|n| serde_json::json!({"name": n, "clientConfig": {"caBundle": bundle}}))
        .collect();
    let patch = serde_json::json!({ "webhooks": items });
    api.patch(config, &PatchParams::default(), &Patch::Strategic(&patch))
        .await?;
    info!(configuration = %config, webhooks = webhooks.len(), "caBundle written");
    Ok(())
}

/// A TLS listener for `axum::serve`: handshakes run on their own tasks (a slow or broken client
/// holds up no one), finished connections are handed over in order.
pub(super) struct TlsListener {
    ready: mpsc::Receiver<(TlsStream<TcpStream>, std::net::SocketAddr)>,
    local: std::net::SocketAddr,
    current: Arc<Current>,
    _accept: k8s::cache::Task,
}

impl TlsListener {
    pub(super) fn new(tcp: TcpListener, pems: &Pems) -> Result<TlsListener, Error> {
        let local = tcp.local_addr().map_err(|source| Error::Read {
            path: "listener".into(),
            source,
        })?;
        let current = Arc::new(Current(RwLock::new(certified_key(pems)?)));
        let config =
            rustls::ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
                .with_safe_default_protocol_versions()?
                .with_no_client_auth()
                .with_cert_resolver(current.clone());
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let (tx, rx) = mpsc::channel(64);
        let task = tokio::spawn(async move {
            loop {
                let (tcp, peer) = match tcp.accept().await {
                    Ok(c) => c,
                    Err(e) => {
                        warn!(error = %e, "webhook accept");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let (acceptor, tx) = (acceptor.clone(), tx.clone());
                tokio::spawn(async move {
                    match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await
                    {
                        Ok(Ok(tls)) => {
                            let _ = tx.send((tls, peer)).await;
                        }
                        Ok(Err(e)) => debug!(%peer, error = %e, "webhook TLS handshake failed"),
                        Err(_) => debug!(%peer, "webhook TLS handshake timed out"),
                    }
                });
            }
        });
        Ok(TlsListener {
            ready: rx,
            local,
            current,
            _accept: k8s::cache::Task(task),
        })
    }

    /// A handle that can swap the certificate after the listener moved into the server.
    pub(super) fn reloader(&self) -> Reloader {
        Reloader(self.current.clone())
    }
}

/// Swaps the certificate of a running [`TlsListener`].
pub(super) struct Reloader(Arc<Current>);

impl Reloader {
    pub(super) fn replace(&self, pems: &Pems) -> Result<(), Error> {
        let key = certified_key(pems)?;
        *self.0.0.write().unwrap_or_else(|p| p.into_inner()) = key;
        Ok(())
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(c) => c,
            // The accept loop only ends with the listener itself.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}
