//! One finalizer added or removed, the way the controller and the agent both do it: a merge patch
//! of the whole list, guarded by the object's resourceVersion (a compare-and-swap, so a writer
//! with a stale view gets 409 instead of dropping someone else's finalizer).

use kube::api::{Api, Patch, PatchParams};
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;

/// Sets `finalizer` present or absent on `obj`; the object as written.
pub async fn set<K>(api: &Api<K>, obj: &K, finalizer: &str, present: bool) -> Result<K, kube::Error>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    let mut f: Vec<String> = obj
        .finalizers()
        .iter()
        .filter(|f| *f != finalizer)
        .cloned()
        .collect();
    if present {
        f.push(finalizer.into());
    }
    replace(api, obj, &f).await
}

/// Writes `finalizers` as `obj`'s whole list (`obj` may be the object or its metadata only);
/// the object as written.
pub async fn replace<K, M>(api: &Api<K>, obj: &M, finalizers: &[String]) -> Result<K, kube::Error>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
    M: Resource,
{
    let patch = serde_json::json!({
        "metadata": { "finalizers": finalizers, "resourceVersion": obj.resource_version() }
    });
    api.patch(
        &obj.name_any(),
        &PatchParams::default(),
        &Patch::Merge(&patch),
    )
    .await
}
