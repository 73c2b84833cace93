//! The agent's CNI server: `sart-cni` calls it on a unix socket (`--cni-socket`, default
//! `/run/sart/cni.sock`, root only), never on a network address.
//!
//! The agent can serve pods once its caches hold the cluster, its records are restored, and at
//! least one of the node's BGP sessions is Established (else the pods' block would not be
//! announced): until then STATUS says so and ADD answers UNAVAILABLE (the runtime retries). DEL,
//! CHECK and GC are served as soon as the records are back. The work is in [`super::pods`].

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use proto::v1::cni_api_server::{CniApi, CniApiServer};
use proto::v1::{Args, CniResult, GcArgs, IpamReply, IpamRequest, StatusArgs};
use tokio_stream::wrappers::UnixListenerStream;
use tonic::{Request, Response, Status};
use tracing::{debug, info, warn};

use super::pod_ipam::{Attachment, IpamError};
use super::pod_pool::ChoiceError;
use super::podnet::NetError;
use super::pods::{PodError, PodNetwork};

/// What STATUS depends on, kept current by the agent's loop.
#[derive(Debug, Default)]
pub(crate) struct Readiness {
    caches: AtomicBool,
    pods: AtomicBool,
    established: AtomicUsize,
}

impl Readiness {
    pub(crate) fn caches_ready(&self) {
        self.caches.store(true, Ordering::Release);
    }

    /// The pods' records are back (DEL, CHECK and GC can be served).
    pub(crate) fn pods_ready(&self) {
        self.pods.store(true, Ordering::Release);
    }

    pub(crate) fn pods_restored(&self) -> bool {
        self.pods.load(Ordering::Acquire)
    }

    pub(crate) fn established(&self, n: usize) {
        self.established.store(n, Ordering::Release);
    }

    /// Why ADD cannot be served now, if it cannot.
    fn blocker(&self) -> Option<&'static str> {
        if !self.caches.load(Ordering::Acquire) {
            Some("the agent has not read the cluster yet")
        } else if !self.pods.load(Ordering::Acquire) {
            Some("the agent is restoring its pod records")
        } else if self.established.load(Ordering::Acquire) == 0 {
            Some("no BGP session of this node is Established: pod addresses would not be announced")
        } else {
            None
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("CNI socket: {0}")]
    Socket(#[from] daemon::unix_socket::Error),
    #[error("CNI server: {0}")]
    Serve(#[from] tonic::transport::Error),
}

struct Server {
    ready: Arc<Readiness>,
    pods: Arc<PodNetwork>,
    metrics: super::metrics::Metrics,
}

impl Server {
    /// DEL, CHECK and GC need the records back, not a session.
    fn restored(&self) -> Result<(), Status> {
        if self.ready.pods.load(Ordering::Acquire) {
            Ok(())
        } else {
            Err(Status::unavailable(
                "the agent is restoring its pod records",
            ))
        }
    }
}

impl Server {
    /// Counts the call and logs a refusal the runtime will only show as a code and a message.
    fn logged<T>(
        &self,
        what: &'static str,
        container: &str,
        r: Result<T, Status>,
    ) -> Result<T, Status> {
        self.metrics.cni(what, r.is_ok());
        if let Err(s) = &r {
            warn!(container, code = ?s.code(), message = s.message(), "CNI {what} failed");
        }
        r.map_err(with_sart_details)
    }
}

/// The gRPC status of a pod operation's error. sart-cni turns its code into the CNI error code
/// ([`proto::cni_error_code`]): "try again later" for what may pass, "invalid" for what will not.
fn status(e: PodError) -> Status {
    let m = e.to_string();
    match e {
        PodError::NoPod(_) => Status::not_found(m),
        PodError::Taken(_)
        | PodError::Choice(ChoiceError::OutsidePools(_))
        | PodError::Ipam(IpamError::Taken { .. } | IpamError::NotOnThisNode { .. }) => {
            Status::already_exists(m)
        }
        PodError::Exhausted(_) | PodError::Choice(ChoiceError::NoPool) => Status::out_of_range(m),
        PodError::BadRequest(_)
        | PodError::Choice(_)
        | PodError::Net(NetError::Netns { .. } | NetError::Setns { .. }) => {
            Status::invalid_argument(m)
        }
        PodError::TryAgain(_) | PodError::Kube { .. } => Status::unavailable(m),
        PodError::TooMany(_) => Status::resource_exhausted(m),
        PodError::NotAsRecorded(_) => Status::failed_precondition(m),
        PodError::Ipam(_) | PodError::Net(_) | PodError::Store(_) => Status::internal(m),
    }
}

/// The status with the CNI error as upstream sart's agent put it in the details
/// (`{"code", "msg", "details"}` JSON), which a sart-cni of sart's, left on a node during an
/// upgrade, turns into its CNI error; ours reads the status code.
fn with_sart_details(s: Status) -> Status {
    let details = serde_json::json!({
        "code": proto::cni_error_code(s.code(), false),
        "msg": s.message(),
        "details": "",
    });
    Status::with_details(
        s.code(),
        s.message().to_owned(),
        tonic::codegen::Bytes::from(details.to_string()),
    )
}

#[tonic::async_trait]
impl CniApi for Server {
    async fn add(&self, req: Request<Args>) -> Result<Response<CniResult>, Status> {
        let a = req.into_inner();
        debug!(container = %a.container_id, "CNI ADD");
        if let Some(why) = self.ready.blocker() {
            return self.logged("ADD", &a.container_id, Err(Status::unavailable(why)));
        }
        let r = self.pods.add(&a).await.map_err(status);
        self.logged("ADD", &a.container_id, r).map(Response::new)
    }

    async fn del(&self, req: Request<Args>) -> Result<Response<CniResult>, Status> {
        let a = req.into_inner();
        debug!(container = %a.container_id, "CNI DEL");
        let r = async {
            self.restored()?;
            self.pods.del(&a).await.map_err(status)
        }
        .await;
        self.logged("DEL", &a.container_id, r)?;
        Ok(Response::new(CniResult::default()))
    }

    async fn check(&self, req: Request<Args>) -> Result<Response<CniResult>, Status> {
        let a = req.into_inner();
        let r = async {
            self.restored()?;
            self.pods.check(&a).await.map_err(status)
        }
        .await;
        self.logged("CHECK", &a.container_id, r)?;
        Ok(Response::new(CniResult::default()))
    }

    async fn gc(&self, req: Request<GcArgs>) -> Result<Response<CniResult>, Status> {
        let g = req.into_inner();
        let network = super::pods::network_name(&g.conf);
        let valid = g
            .valid_attachments
            .into_iter()
            .map(|v| Attachment {
                container_id: v.container_id,
                ifname: v.ifname,
            })
            .collect();
        let r = async {
            self.restored()?;
            self.pods.gc(&network, &valid).await.map_err(status)
        }
        .await;
        let n = self.logged("GC", "", r)?;
        debug!(network, freed = n, "CNI GC");
        Ok(Response::new(CniResult::default()))
    }

    async fn ipam(&self, _req: Request<IpamRequest>) -> Result<Response<IpamReply>, Status> {
        self.restored()?;
        let blocks = self
            .pods
            .usage()
            .into_iter()
            .map(|b| proto::v1::Block {
                name: b.name,
                pool: b.pool,
                cidr: b.cidr.to_string(),
                allocated: b.allocated.to_string(),
                capacity: b.capacity.to_string(),
                draining: b.draining,
                borrowed: b.borrowed.is_some(),
                awaiting_loan: b.borrowed == Some(false),
                lent: b.lent.to_string(),
                reserved: b.reserved.to_string(),
            })
            .collect();
        let attachments = self
            .pods
            .attachments()
            .into_iter()
            .map(|a| proto::v1::PodAttachment {
                addresses: a.addresses.iter().map(|s| s.ip.to_string()).collect(),
                container_id: a.container_id,
                ifname: a.ifname,
                network: a.network,
                pod_namespace: a.pod_namespace,
                pod_name: a.pod_name,
                host_ifname: a.host_ifname,
                netns: a.netns,
            })
            .collect();
        let held = self
            .pods
            .held()
            .into_iter()
            .map(|(ip, kind, holder)| proto::v1::Held {
                address: ip.to_string(),
                kind: kind.to_owned(),
                holder,
            })
            .collect();
        Ok(Response::new(IpamReply {
            blocks,
            attachments,
            held,
        }))
    }

    async fn status(&self, _req: Request<StatusArgs>) -> Result<Response<CniResult>, Status> {
        match self.ready.blocker() {
            Some(why) => Err(Status::failed_precondition(why)),
            None => Ok(Response::new(CniResult::default())),
        }
    }
}

/// Serves until the process ends.
pub(crate) async fn serve(
    path: PathBuf,
    ready: Arc<Readiness>,
    pods: Arc<PodNetwork>,
    metrics: super::metrics::Metrics,
) -> Result<(), Error> {
    // Only root (the container runtime) may ask for pod set-up.
    let listener = daemon::unix_socket::bind(&path)?;
    info!(socket = %path.display(), "CNI server listening");
    tonic::transport::Server::builder()
        .add_service(CniApiServer::new(Server {
            ready,
            pods,
            metrics,
        }))
        .serve_with_incoming(UnixListenerStream::new(listener))
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn errors_carry_the_cni_code_where_sarts_cni_plugin_reads_it() {
        let s = with_sart_details(Status::out_of_range("pool default-pod-pool is exhausted"));
        assert_eq!(s.code(), tonic::Code::OutOfRange);
        let d: serde_json::Value = serde_json::from_slice(s.details()).unwrap();
        assert_eq!(
            d,
            serde_json::json!({"code": 102, "msg": "pool default-pod-pool is exhausted", "details": ""})
        );
        let d: serde_json::Value =
            serde_json::from_slice(with_sart_details(Status::unavailable("busy")).details())
                .unwrap();
        assert_eq!(d["code"], 11);
    }

    #[test]
    fn pod_errors_keep_the_codes_the_runtime_acts_on() {
        let code = |e: PodError| status(e).code();
        let ip = "198.18.0.1".parse().unwrap();
        // "Try again later" (CNI 11) only where a retry may pass.
        assert_eq!(
            code(PodError::TryAgain("x".into())),
            tonic::Code::Unavailable
        );
        assert_eq!(
            code(PodError::TooMany("x".into())),
            tonic::Code::ResourceExhausted
        );
        assert_eq!(
            code(PodError::Choice(ChoiceError::NoPool)),
            tonic::Code::OutOfRange
        );
        assert_eq!(
            code(PodError::Exhausted("x".into())),
            tonic::Code::OutOfRange
        );
        assert_eq!(
            code(PodError::Ipam(IpamError::Taken { ip })),
            tonic::Code::AlreadyExists
        );
        assert_eq!(
            code(PodError::Choice(ChoiceError::OutsidePools(ip))),
            tonic::Code::AlreadyExists
        );
        assert_eq!(
            code(PodError::Choice(ChoiceError::BadAddress("x".into()))),
            tonic::Code::InvalidArgument
        );
        let netns = NetError::Netns {
            path: "/run/netns/gone".into(),
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        };
        assert_eq!(code(PodError::Net(netns)), tonic::Code::InvalidArgument);
        let socket = NetError::Socket(std::io::Error::from(std::io::ErrorKind::Other));
        assert_eq!(code(PodError::Net(socket)), tonic::Code::Internal);
        assert_eq!(
            code(PodError::NotAsRecorded("x".into())),
            tonic::Code::FailedPrecondition
        );
        // The message is the error's own.
        assert_eq!(
            status(PodError::NoPod("pod a/b does not exist".into())).message(),
            "pod a/b does not exist"
        );
    }

    #[test]
    fn ready_needs_caches_and_a_session() {
        let r = Readiness::default();
        assert!(r.blocker().unwrap_or_default().contains("cluster"));
        r.caches_ready();
        assert!(r.blocker().unwrap_or_default().contains("records"));
        r.pods_ready();
        assert!(r.blocker().unwrap_or_default().contains("Established"));
        r.established(2);
        assert_eq!(r.blocker(), None);
    }
}
