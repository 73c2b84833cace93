//! Types the caches hold instead of a whole object: each is a `kube::Resource` of the same API
//! resource as the type it stands for, so a reflector, a Controller, Events, owner references and
//! writes use it unchanged.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use serde::Deserialize;

/// The metadata a view keeps, as the API server sends it, plus the labels and annotations it
/// reads its own fields from (and does not keep).
#[derive(Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct WireMeta {
    name: Option<String>,
    namespace: Option<String>,
    uid: Option<String>,
    resource_version: Option<String>,
    generation: Option<i64>,
    creation_timestamp: Option<Time>,
    deletion_timestamp: Option<Time>,
    finalizers: Option<Vec<String>>,
    labels: Option<BTreeMap<String, String>>,
    annotations: Option<BTreeMap<String, String>>,
}

/// A view's metadata and what it reads from: the labels and annotations.
pub(crate) struct Split {
    pub(crate) meta: ObjectMeta,
    pub(crate) labels: BTreeMap<String, String>,
    pub(crate) annotations: BTreeMap<String, String>,
}

impl WireMeta {
    pub(crate) fn split(self) -> Split {
        Split {
            meta: ObjectMeta {
                name: self.name,
                namespace: self.namespace,
                uid: self.uid,
                resource_version: self.resource_version,
                generation: self.generation,
                creation_timestamp: self.creation_timestamp,
                deletion_timestamp: self.deletion_timestamp,
                finalizers: self.finalizers.filter(|f| !f.is_empty()),
                ..ObjectMeta::default()
            },
            labels: self.labels.unwrap_or_default(),
            annotations: self.annotations.unwrap_or_default(),
        }
    }
}

/// Makes `$view` (with a `metadata: ObjectMeta` field) a namespaced `kube::Resource` with the
/// kind, group, version and plural of `$of`.
macro_rules! resource_view {
    ($view:ty, $of:ty) => {
        impl kube::Resource for $view {
            type DynamicType = ();
            type Scope = k8s_openapi::NamespaceResourceScope;

            fn kind(dt: &()) -> std::borrow::Cow<'_, str> {
                <$of as kube::Resource>::kind(dt)
            }
            fn group(dt: &()) -> std::borrow::Cow<'_, str> {
                <$of as kube::Resource>::group(dt)
            }
            fn version(dt: &()) -> std::borrow::Cow<'_, str> {
                <$of as kube::Resource>::version(dt)
            }
            fn plural(dt: &()) -> std::borrow::Cow<'_, str> {
                <$of as kube::Resource>::plural(dt)
            }
            fn meta(&self) -> &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                &self.metadata
            }
            fn meta_mut(
                &mut self,
            ) -> &mut k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                &mut self.metadata
            }
        }
    };
}

pub(crate) use resource_view;
