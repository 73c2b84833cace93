//! Writing BGPAdvertisements, for Services and pod blocks alike: create one when missing, then
//! move `status.peers` towards the peers that should announce it ([`advertise::next_status`]),
//! as a compare-and-swap against the agents' own writes.

use std::collections::BTreeSet;

use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

use super::cached_ad::CachedAd;
use super::context::Ads;
use super::{Error, advertise, conflict};
use k8s::crd::BGPAdvertisement;

/// Makes `want` (name, namespace, spec, labels, owner) exist with `targets` in its status;
/// `found` is the cached copy, if any.
pub(crate) async fn ensure(
    ads: &Ads,
    found: Option<&CachedAd>,
    want: &BGPAdvertisement,
    targets: &BTreeSet<String>,
) -> Result<(), Error> {
    let ns = want.namespace().unwrap_or_default();
    let name = want.name_any();
    let what = || format!("BGPAdvertisement {ns}/{name}");
    let api: Api<BGPAdvertisement> = Api::namespaced(ads.client.clone(), &ns);
    let key = (ns.clone(), name.clone());
    let (current, version) = match found {
        Some(a) => {
            // The cache shows it: nothing left to remember about its creation.
            ads.created.remove(&key);
            (a.peer_map(), a.resource_version())
        }
        // Made moments ago by the reconcile whose write woke this one: look again shortly
        // rather than ask the API server to refuse a second create.
        None if ads.created.contains(&key) => return Err(Error::Conflict(what())),
        // A 409: our cache is behind; the retry finds it.
        None => {
            let a = api
                .create(&PostParams::default(), want)
                .await
                .map_err(|e| conflict(e, what()))?;
            ads.created.insert(key, ());
            let peers = a.status.and_then(|s| s.peers).unwrap_or_default();
            (peers, a.metadata.resource_version)
        }
    };
    let next = advertise::next_status(&current, targets);
    // An advertisement no peer announces yet needs no status write (saves one per address
    // while a cluster has no peers, e.g. a burst before the BGP set-up).
    if next != current {
        let patch = json!({
            "metadata": {"resourceVersion": version},
            "status": {"peers": next},
        });
        api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(|e| conflict(e, what()))?;
    }
    Ok(())
}

/// Deletes an advertisement; one already gone is fine.
pub(crate) async fn delete(ads: &Ads, ns: &str, name: &str) -> Result<(), Error> {
    ads.created.remove(&(ns.to_owned(), name.to_owned()));
    let api: Api<BGPAdvertisement> = Api::namespaced(ads.client.clone(), ns);
    match api.delete(name, &Default::default()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(e) => Err(Error::Kube(e)),
    }
}
