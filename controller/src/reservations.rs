//! Sticky pods' reservations end here. A reservation owned by a StatefulSet lasts while the
//! StatefulSet has the pod among its replicas (deleting the StatefulSet deletes it through its
//! ownerReference, and here too if the garbage collector is slow); any other lasts while its pod
//! exists and for [`GRACE`] after (marked with when the pod was first seen gone). The decision is
//! [`verdict`]; [`run`] applies it every [`EVERY`].

use std::time::Duration;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::{Client, ResourceExt};
use serde_json::json;
use tracing::{debug, info, warn};

use k8s::crd::AddressReservation;
use k8s::crd::address_reservation::POD_GONE_ANNOTATION;

/// How long a reservation outlives a pod that has no StatefulSet.
pub(crate) const GRACE: Duration = Duration::from_secs(600);
/// How often reservations are looked at.
pub(crate) const EVERY: Duration = Duration::from_secs(15);

/// What the reservation's owner says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Owner {
    /// A StatefulSet with this many replicas (`None`: it is gone).
    StatefulSet(Option<i32>),
    /// No owner, or one that names its pods afresh (a ReplicaSet, a Job): the grace period.
    Other,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    Keep,
    /// The pod is gone: note since when.
    MarkGone,
    /// The pod is back: drop the note.
    Unmark,
    Delete(String),
}

/// Decides one reservation: `gone_since` is its note, `pod_exists` whether the pod is there.
pub(crate) fn verdict(
    name: &str,
    owner: Owner,
    pod_exists: bool,
    gone_since: Option<Timestamp>,
    now: Timestamp,
) -> Verdict {
    if let Owner::StatefulSet(replicas) = owner {
        let Some(replicas) = replicas else {
            return Verdict::Delete("its StatefulSet is gone".into());
        };
        // A StatefulSet's pods are <name>-<ordinal>.
        let ordinal = name
            .rsplit_once('-')
            .and_then(|(_, o)| o.parse::<i32>().ok());
        return match ordinal {
            Some(o) if o >= replicas => {
                Verdict::Delete(format!("its StatefulSet has {replicas} replicas"))
            }
            _ if gone_since.is_some() => Verdict::Unmark,
            _ => Verdict::Keep,
        };
    }
    match (pod_exists, gone_since) {
        (true, Some(_)) => Verdict::Unmark,
        (true, None) => Verdict::Keep,
        (false, None) => Verdict::MarkGone,
        (false, Some(since)) => {
            let away = now.as_second().saturating_sub(since.as_second());
            if away >= i64::try_from(GRACE.as_secs()).unwrap_or(i64::MAX) {
                Verdict::Delete(format!("its pod has been gone for {}s", GRACE.as_secs()))
            } else {
                Verdict::Keep
            }
        }
    }
}

/// Looks at every reservation each [`EVERY`], until the process ends.
pub(crate) async fn run(client: Client) {
    let mut tick = tokio::time::interval(EVERY);
    loop {
        tick.tick().await;
        if let Err(e) = once(&client).await {
            warn!(error = %e, "looking at address reservations");
        }
    }
}

async fn once(client: &Client) -> Result<(), kube::Error> {
    let all: Api<AddressReservation> = Api::all(client.clone());
    for r in all.list(&ListParams::default()).await? {
        let (ns, name) = (r.namespace().unwrap_or_default(), r.name_any());
        let owner = match r
            .owner_references()
            .iter()
            .find(|o| o.controller == Some(true) && o.kind == "StatefulSet")
        {
            Some(o) => {
                let sts = Api::<StatefulSet>::namespaced(client.clone(), &ns)
                    .get_opt(&o.name)
                    .await?
                    .filter(|s| s.metadata.uid.as_deref() == Some(o.uid.as_str()));
                Owner::StatefulSet(sts.map(|s| s.spec.replicas.unwrap_or(1)))
            }
            None => Owner::Other,
        };
        let pod_exists = match owner {
            Owner::StatefulSet(_) => true,
            Owner::Other => Api::<Pod>::namespaced(client.clone(), &ns)
                .get_opt(&name)
                .await?
                .is_some(),
        };
        let gone_since = r
            .annotations()
            .get(POD_GONE_ANNOTATION)
            .and_then(|v| v.parse::<Timestamp>().ok());
        let now = Timestamp::now();
        let api: Api<AddressReservation> = Api::namespaced(client.clone(), &ns);
        let note =
            |v: Option<String>| json!({"metadata": {"annotations": {POD_GONE_ANNOTATION: v}}});
        match verdict(&name, owner, pod_exists, gone_since, now) {
            Verdict::Keep => {}
            Verdict::MarkGone => {
                let patch = note(Some(now.to_string()));
                api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await?;
                debug!(reservation = %format!("{ns}/{name}"), "its pod is gone");
            }
            Verdict::Unmark => {
                api.patch(&name, &PatchParams::default(), &Patch::Merge(&note(None)))
                    .await?;
            }
            Verdict::Delete(why) => {
                info!(reservation = %format!("{ns}/{name}"), addresses = ?r.spec.addresses, %why, "reservation ended");
                match api.delete(&name, &DeleteParams::default()).await {
                    Ok(_) => {}
                    Err(kube::Error::Api(e)) if e.code == 404 => {}
                    Err(e) => return Err(e),
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn a_statefulset_keeps_the_reservations_of_its_replicas() {
        let now = t("2026-12-06T12:00:00Z");
        let sts = |r| Owner::StatefulSet(Some(r));
        assert_eq!(verdict("db-2", sts(3), true, None, now), Verdict::Keep);
        // Scaled down below the pod: ended, whatever the pod does.
        assert!(matches!(
            verdict("db-2", sts(2), true, None, now),
            Verdict::Delete(_)
        ));
        assert!(matches!(
            verdict("db-0", Owner::StatefulSet(None), true, None, now),
            Verdict::Delete(_)
        ));
        // Its pod being away (a drain) changes nothing.
        assert_eq!(verdict("db-1", sts(3), false, None, now), Verdict::Keep);
        let long_ago = Some(t("2026-12-01T00:00:00Z"));
        assert_eq!(
            verdict("db-1", sts(3), false, long_ago, now),
            Verdict::Unmark
        );
    }

    #[test]
    fn anything_else_lasts_the_grace_period_after_its_pod() {
        let now = t("2026-12-06T12:00:00Z");
        assert_eq!(verdict("web", Owner::Other, true, None, now), Verdict::Keep);
        assert_eq!(
            verdict("web", Owner::Other, false, None, now),
            Verdict::MarkGone
        );
        let recent = Some(t("2026-12-06T11:55:00Z"));
        assert_eq!(
            verdict("web", Owner::Other, false, recent, now),
            Verdict::Keep
        );
        assert_eq!(
            verdict("web", Owner::Other, true, recent, now),
            Verdict::Unmark
        );
        let old = Some(t("2026-12-06T11:49:59Z"));
        assert!(matches!(
            verdict("web", Owner::Other, false, old, now),
            Verdict::Delete(_)
        ));
    }
}
