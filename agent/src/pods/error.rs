//! Why a pod operation did not succeed, in the pod side's own terms. The CNI server turns it
//! into a gRPC status at its edge (sart-cni turns that into a CNI error code); nothing under
//! it knows about gRPC.

use crate::pod_ipam::IpamError;
use crate::pod_pool::ChoiceError;
use crate::podnet::NetError;

#[derive(Debug, thiserror::Error)]
pub(crate) enum PodError {
    /// The runtime's request is incomplete, or names a network namespace that is not there.
    #[error("{0}")]
    BadRequest(String),
    /// The pod (of the uid the runtime named) does not exist.
    #[error("{0}")]
    NoPod(String),
    /// An address the pod asks for is someone else's: held, lent to another node, or reserved
    /// for another pod.
    #[error("{0}")]
    Taken(String),
    /// The pool has no address left.
    #[error("{0}")]
    Exhausted(String),
    /// Not now: the attachment is busy, a block or a loan did not come in time. The runtime
    /// tries again.
    #[error("{0}")]
    TryAgain(String),
    /// Every slot is taken by operations in progress.
    #[error("{0}")]
    TooMany(String),
    /// CHECK: the pod's network is not as recorded.
    #[error("{0}")]
    NotAsRecorded(String),
    /// The pod's annotations choose no usable pool or address.
    #[error(transparent)]
    Choice(#[from] ChoiceError),
    #[error(transparent)]
    Ipam(#[from] IpamError),
    #[error(transparent)]
    Net(#[from] NetError),
    /// Reading or writing the cluster failed.
    #[error("{what}: {source}")]
    Kube {
        what: String,
        #[source]
        source: kube::Error,
    },
    /// The attachment's record on disk could not be written or removed.
    #[error("{0}")]
    Store(String),
}

impl PodError {
    pub(super) fn kube(what: &str, source: kube::Error) -> PodError {
        PodError::Kube {
            what: what.to_owned(),
            source,
        }
    }
}
