//! Leader election with a `coordination.k8s.io/v1` Lease, so that only one controller replica
//! allocates addresses. The decision is a pure function of the Lease and the clock; the loop
//! around it takes the Lease with optimistic concurrency (resourceVersion), so two candidates
//! cannot both win.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ObjectMeta, PostParams};
use tracing::{info, warn};

/// What a candidate should do with the Lease as it is now.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Nobody holds it, or the holder let it expire: take it.
    Take,
    /// We hold it: renew it.
    Renew,
    /// Someone else holds it for this much longer.
    Wait(Duration),
}

/// RFC-free but the usual rule (client-go's): a Lease is held until `renewTime +
/// leaseDurationSeconds`; an empty holder means free.
pub(crate) fn decide(spec: Option<&LeaseSpec>, me: &str, now: Timestamp) -> Decision {
    let Some(spec) = spec else {
        return Decision::Take;
    };
    let holder = spec.holder_identity.as_deref().unwrap_or("");
    if holder.is_empty() {
        return Decision::Take;
    }
    if holder == me {
        return Decision::Renew;
    }
    let duration = i64::from(spec.lease_duration_seconds.unwrap_or(0).max(0));
    let Some(renewed) = spec.renew_time.as_ref().or(spec.acquire_time.as_ref()) else {
        return Decision::Take;
    };
    let left = renewed.0.as_second() + duration - now.as_second();
    if left <= 0 {
        Decision::Take
    } else {
        Decision::Wait(Duration::from_secs(left.unsigned_abs()))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("lease {name}: {source}")]
    Kube { name: String, source: kube::Error },
    #[error("lease {name}: lost to {holder}")]
    Lost { name: String, holder: String },
}

/// A Lease in one namespace, for one identity.
pub(crate) struct Elector {
    api: Api<Lease>,
    name: String,
    me: String,
    duration: Duration,
}

impl Elector {
    pub(crate) fn new(api: Api<Lease>, name: &str, me: &str, duration: Duration) -> Elector {
        Elector {
            api,
            name: name.to_owned(),
            me: me.to_owned(),
            duration,
        }
    }

    fn kube(&self, source: kube::Error) -> Error {
        Error::Kube {
            name: self.name.clone(),
            source,
        }
    }

    /// One attempt: `Ok(None)` when we hold the Lease now, `Ok(Some(wait))` when someone else does.
    pub(crate) async fn try_acquire(&self) -> Result<Option<Duration>, Error> {
        let current = self
            .api
            .get_opt(&self.name)
            .await
            .map_err(|e| self.kube(e))?;
        let now = Timestamp::now();
        let decision = decide(
            current.as_ref().and_then(|l| l.spec.as_ref()),
            &self.me,
            now,
        );
        let secs = i32::try_from(self.duration.as_secs()).unwrap_or(i32::MAX);
        match (decision, current) {
            (Decision::Wait(d), _) => Ok(Some(d)),
            (_, None) => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.name.clone()),
                        ..ObjectMeta::default()
                    },
                    spec: Some(LeaseSpec {
                        holder_identity: Some(self.me.clone()),
                        lease_duration_seconds: Some(secs),
                        acquire_time: Some(MicroTime(now)),
                        renew_time: Some(MicroTime(now)),
                        lease_transitions: Some(0),
                        ..LeaseSpec::default()
                    }),
                };
                match self.api.create(&PostParams::default(), &lease).await {
                    Ok(_) => Ok(None),
                    // Someone created it first: look again next round.
                    Err(kube::Error::Api(s)) if s.code == 409 => Ok(Some(Duration::from_secs(1))),
                    Err(e) => Err(self.kube(e)),
                }
            }
            (d, Some(mut lease)) => {
                let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
                if d == Decision::Take {
                    spec.holder_identity = Some(self.me.clone());
                    spec.acquire_time = Some(MicroTime(now));
                    spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
                }
                spec.lease_duration_seconds = Some(secs);
                spec.renew_time = Some(MicroTime(now));
                // `replace` carries the resourceVersion we read: a concurrent writer makes it 409.
                match self
                    .api
                    .replace(&self.name, &PostParams::default(), &lease)
                    .await
                {
                    Ok(_) => Ok(None),
                    Err(kube::Error::Api(s)) if s.code == 409 => Ok(Some(Duration::from_secs(1))),
                    Err(e) => Err(self.kube(e)),
                }
            }
        }
    }

    /// Waits until we hold the Lease.
    pub(crate) async fn acquire(&self) -> Result<(), Error> {
        let mut logged = false;
        loop {
            match self.try_acquire().await {
                Ok(None) => {
                    info!(lease = %self.name, identity = %self.me, "became leader");
                    return Ok(());
                }
                Ok(Some(wait)) => {
                    if !logged {
                        info!(lease = %self.name, "another replica leads; waiting");
                        logged = true;
                    }
                    tokio::time::sleep(wait.min(self.duration / 2).max(Duration::from_secs(1)))
                        .await;
                }
                Err(e) => {
                    warn!(error = %e, "leader election");
                    tokio::time::sleep(Duration::from_secs(2)).await;
                }
            }
        }
    }

    /// Renews every third of the duration; returns (an error) only when leadership is lost or
    /// could not be renewed before it ran out, so the caller stops allocating.
    pub(crate) async fn keep(&self) -> Error {
        let period = self.duration / 3;
        let mut last_ok = tokio::time::Instant::now();
        loop {
            tokio::time::sleep(period).await;
            match self.try_acquire().await {
                Ok(None) => last_ok = tokio::time::Instant::now(),
                Ok(Some(_)) => {
                    let holder = self
                        .api
                        .get_opt(&self.name)
                        .await
                        .ok()
                        .flatten()
                        .and_then(|l| l.spec.and_then(|s| s.holder_identity))
                        .unwrap_or_default();
                    return Error::Lost {
                        name: self.name.clone(),
                        holder,
                    };
                }
                Err(e) => {
                    warn!(error = %e, "renewing the lease");
                    if last_ok.elapsed() >= self.duration {
                        return e;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn spec(holder: &str, renewed: i64, secs: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(holder.into()),
            renew_time: Some(MicroTime(Timestamp::from_second(renewed).unwrap())),
            lease_duration_seconds: Some(secs),
            ..LeaseSpec::default()
        }
    }

    #[test]
    fn free_expired_and_own_leases() {
        let now = Timestamp::from_second(1_000).unwrap();
        assert_eq!(decide(None, "a", now), Decision::Take);
        assert_eq!(decide(Some(&spec("", 990, 15)), "a", now), Decision::Take);
        assert_eq!(decide(Some(&spec("a", 990, 15)), "a", now), Decision::Renew);
        assert_eq!(
            decide(Some(&spec("b", 990, 15)), "a", now),
            Decision::Wait(Duration::from_secs(5))
        );
        assert_eq!(decide(Some(&spec("b", 985, 15)), "a", now), Decision::Take);
        assert_eq!(decide(Some(&spec("b", 900, 15)), "a", now), Decision::Take);
    }
}
