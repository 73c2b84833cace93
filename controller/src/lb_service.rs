//! A Service as the LoadBalancer controller keeps it: whether it is ours, what it asks for and
//! what its status shows, read once from the watch. The cache holds one per Service of the
//! cluster, so it keeps the answers instead of the object: a k8s-openapi `Service` keeps every
//! field as an `Option` even when trimmed, and its maps take a whole B-tree node for one entry.
//!
//! The object is read from the wire through [`Wire`], which names only the fields read here, so
//! the rest (field ownership, cluster IPs, node ports...) is skipped by the parser and never
//! built. Writes still go to the API server's `services` resource through this type.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ipam::{FamilyPolicy, IpFamily, L4Protocol, LbRequest, ServiceKey};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, ObjectMeta};
use kube::ResourceExt;
use serde::Deserialize;

use super::resource_view::{WireMeta, resource_view};

use k8s::crd::bgp_peer::GROUP_ANNOTATION;
use k8s::crd::{
    ADDRESS_POOL_ANNOTATION, ALLOW_SHARED_IP_ANNOTATION, LOAD_BALANCER_CLASS,
    LOAD_BALANCER_IPS_ANNOTATION,
};

/// A Service, reduced to what the LoadBalancer controller decides on.
#[derive(Clone, Debug, Deserialize)]
#[serde(from = "Wire")]
pub(crate) struct LbService {
    /// Name, namespace, uid, resourceVersion, generation, creation and deletion times and
    /// finalizers; no labels or annotations (what ours say is read into the fields below).
    pub(crate) metadata: ObjectMeta,
    /// `type: LoadBalancer`, with no `loadBalancerClass` or with ours.
    pub(crate) ours: bool,
    /// What it asks for ([`request`]), or why that cannot be read.
    pub(crate) request: Result<LbRequest, RequestError>,
    /// `externalTrafficPolicy: Local`: announced only from nodes with a ready endpoint.
    pub(crate) local: bool,
    /// BGPPeer groups from `bgppeer.sart.terassyi.net/group`; empty: every peer.
    pub(crate) groups: Vec<String>,
    /// The addresses in `status.loadBalancer.ingress` (hostnames and junk ignored).
    pub(crate) ingress: Vec<IpAddr>,
    /// `status.conditions`, everyone's: a merge patch of the list replaces it whole.
    pub(crate) conditions: Vec<Condition>,
}

/// A Service annotation (or field) we cannot read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum RequestError {
    #[error("annotation {annotation}: {value:?} is not an IP address")]
    BadIp {
        annotation: &'static str,
        value: String,
    },
    #[error("spec.ipFamilies: unknown family {0:?}")]
    BadFamily(String),
}

impl LbService {
    pub(crate) fn key(&self) -> ServiceKey {
        ServiceKey::new(self.namespace().unwrap_or_default(), self.name_any())
    }

    /// Whether our condition says we assigned its addresses.
    pub(crate) fn says_assigned(&self, condition: &str) -> bool {
        self.conditions
            .iter()
            .any(|c| c.type_ == condition && c.status == "True")
    }
}

resource_view!(LbService, Service);

/// The fields of a Service read here, as the API server sends them.
#[derive(Default, Deserialize)]
#[serde(default)]
struct Wire {
    metadata: WireMeta,
    spec: Option<WireSpec>,
    status: Option<WireStatus>,
}

#[derive(Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct WireSpec {
    #[serde(rename = "type")]
    type_: Option<String>,
    load_balancer_class: Option<String>,
    ip_families: Option<Vec<String>>,
    ip_family_policy: Option<String>,
    #[serde(rename = "loadBalancerIP")]
    load_balancer_ip: Option<String>,
    ports: Option<Vec<WirePort>>,
    external_traffic_policy: Option<String>,
    selector: Option<BTreeMap<String, String>>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct WirePort {
    port: i32,
    protocol: Option<String>,
}

#[derive(Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct WireStatus {
    load_balancer: Option<WireLoadBalancer>,
    conditions: Option<Vec<Condition>>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct WireLoadBalancer {
    ingress: Option<Vec<WireIngress>>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct WireIngress {
    ip: Option<String>,
}

impl From<Wire> for LbService {
    fn from(w: Wire) -> LbService {
        let spec = w.spec.unwrap_or_default();
        let meta = w.metadata.split();
        let ann = meta.annotations;
        let ours = spec.type_.as_deref() == Some("LoadBalancer")
            && spec
                .load_balancer_class
                .as_deref()
                .is_none_or(|c| c == LOAD_BALANCER_CLASS);
        let status = w.status.unwrap_or_default();
        let ingress = status
            .load_balancer
            .and_then(|lb| lb.ingress)
            .into_iter()
            .flatten()
            .filter_map(|i| i.ip.as_deref().and_then(|s| s.parse().ok()))
            .collect();
        LbService {
            metadata: meta.meta,
            ours,
            request: request(&ann, &spec),
            local: spec.external_traffic_policy.as_deref() == Some("Local"),
            groups: ann
                .get(GROUP_ANNOTATION)
                .map(|g| list(g).map(str::to_owned).collect())
                .unwrap_or_default(),
            ingress,
            conditions: status.conditions.unwrap_or_default(),
        }
    }
}

fn list(v: &str) -> impl Iterator<Item = &str> {
    v.split(',').map(str::trim).filter(|s| !s.is_empty())
}

/// What a Service asks for: families from `spec.ipFamilies`/`ipFamilyPolicy`, pools and
/// addresses from our annotations (`spec.loadBalancerIP` too, as MetalLB users expect, when the
/// annotation is absent), the sharing key and ports, and for `externalTrafficPolicy: Local` the
/// selector (Services sharing an address must be announced from the same nodes).
fn request(ann: &BTreeMap<String, String>, spec: &WireSpec) -> Result<LbRequest, RequestError> {
    let mut families = Vec::new();
    for f in spec.ip_families.iter().flatten() {
        families.push(match f.as_str() {
            "IPv4" => IpFamily::Ipv4,
            "IPv6" => IpFamily::Ipv6,
            other => return Err(RequestError::BadFamily(other.to_owned())),
        });
    }
    let ips: Vec<IpAddr> = match ann.get(LOAD_BALANCER_IPS_ANNOTATION) {
        Some(v) => list(v)
            .map(|s| {
                s.parse().map_err(|_| RequestError::BadIp {
                    annotation: LOAD_BALANCER_IPS_ANNOTATION,
                    value: s.to_owned(),
                })
            })
            .collect::<Result<_, _>>()?,
        None => match spec.load_balancer_ip.as_deref().map(str::trim) {
            Some(s) if !s.is_empty() => vec![s.parse().map_err(|_| RequestError::BadIp {
                annotation: "spec.loadBalancerIP",
                value: s.to_owned(),
            })?],
            _ => Vec::new(),
        },
    };
    // Without ipFamilies (not yet defaulted), the requested addresses decide, then IPv4.
    let primary = families
        .first()
        .copied()
        .or_else(|| ips.first().map(|ip| IpFamily::of(*ip)))
        .unwrap_or(IpFamily::Ipv4);
    let policy = match spec.ip_family_policy.as_deref() {
        Some("RequireDualStack") => FamilyPolicy::RequireDual(primary),
        Some("PreferDualStack") if families.len() != 1 => FamilyPolicy::PreferDual(primary),
        _ => FamilyPolicy::Single(primary),
    };
    let mut r = LbRequest::new(policy);
    r.pools = ann
        .get(ADDRESS_POOL_ANNOTATION)
        .map(|v| list(v).map(str::to_owned).collect())
        .unwrap_or_default();
    r.ips = ips;
    r.sharing_key = ann
        .get(ALLOW_SHARED_IP_ANNOTATION)
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty());
    r.ports = spec
        .ports
        .iter()
        .flatten()
        .map(|p| {
            let proto = match p.protocol.as_deref() {
                Some("UDP") => L4Protocol::Udp,
                Some("SCTP") => L4Protocol::Sctp,
                _ => L4Protocol::Tcp,
            };
            (proto, u16::try_from(p.port).unwrap_or(0))
        })
        .collect::<BTreeSet<_>>();
    if spec.external_traffic_policy.as_deref() == Some("Local") {
        r.local_selector = Some(
            spec.selector
                .iter()
                .flatten()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(","),
        );
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use kube::Resource;
    use serde_json::json;

    fn svc(v: serde_json::Value) -> LbService {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn ours_by_type_and_class() {
        let lb = |class: Option<&str>| {
            svc(json!({"metadata": {"name": "a", "namespace": "d"},
                "spec": {"type": "LoadBalancer", "loadBalancerClass": class}}))
        };
        assert!(lb(None).ours);
        assert!(lb(Some(LOAD_BALANCER_CLASS)).ours);
        assert!(!lb(Some("example.com/other")).ours);
        assert!(!svc(json!({"metadata": {"name": "a"}, "spec": {"type": "ClusterIP"}})).ours);
        assert!(!svc(json!({"metadata": {"name": "a"}})).ours);
    }

    #[test]
    fn request_from_annotations_and_spec() {
        let s = svc(json!({
            "metadata": {"name": "a", "namespace": "d", "annotations": {
                ADDRESS_POOL_ANNOTATION: "p1, p2",
                LOAD_BALANCER_IPS_ANNOTATION: "10.0.0.5,fd00::5",
                ALLOW_SHARED_IP_ANNOTATION: "k",
                GROUP_ANNOTATION: "g1,,g2",
            }},
            "spec": {"type": "LoadBalancer", "ipFamilies": ["IPv4", "IPv6"],
                "ipFamilyPolicy": "PreferDualStack", "externalTrafficPolicy": "Local",
                "selector": {"app": "x"},
                "ports": [{"port": 80}, {"port": 53, "protocol": "UDP"}]}
        }));
        let r = s.request.unwrap();
        assert_eq!(r.families, FamilyPolicy::PreferDual(IpFamily::Ipv4));
        assert_eq!(r.pools, ["p1", "p2"]);
        assert_eq!(r.ips.len(), 2);
        assert_eq!(r.sharing_key.as_deref(), Some("k"));
        assert!(r.ports.contains(&(L4Protocol::Udp, 53)));
        assert_eq!(r.local_selector.as_deref(), Some("app=x"));
        assert!(s.local);
        assert_eq!(s.groups, ["g1", "g2"]);
    }

    #[test]
    fn spec_load_balancer_ip_when_no_annotation() {
        let s = svc(json!({
            "metadata": {"name": "a", "namespace": "d"},
            "spec": {"type": "LoadBalancer", "loadBalancerIP": " fd00::7 "}
        }));
        let r = s.request.unwrap();
        assert_eq!(r.ips, ["fd00::7".parse::<IpAddr>().unwrap()]);
        assert_eq!(r.families, FamilyPolicy::Single(IpFamily::Ipv6));
    }

    #[test]
    fn bad_address_or_family_is_an_error_not_dropped() {
        let s = svc(json!({
            "metadata": {"name": "a", "annotations": {LOAD_BALANCER_IPS_ANNOTATION: "10.0.0.300"}},
            "spec": {"type": "LoadBalancer"}
        }));
        assert!(matches!(s.request, Err(RequestError::BadIp { .. })));
        let s = svc(json!({
            "metadata": {"name": "a"},
            "spec": {"type": "LoadBalancer", "ipFamilies": ["IPv5"]}
        }));
        assert_eq!(s.request, Err(RequestError::BadFamily("IPv5".into())));
    }

    /// Everything the controller reads survives the reduction; what it never reads is dropped.
    #[test]
    fn a_full_service_reads_as_the_same_and_keeps_only_what_is_read() {
        let s = svc(json!({
            "metadata": {"name": "web", "namespace": "d", "uid": "u1", "resourceVersion": "7",
                "generation": 3, "labels": {"app": "web"}, "finalizers": ["x/y"],
                "annotations": {LOAD_BALANCER_IPS_ANNOTATION: "198.18.0.7",
                    "kubectl.kubernetes.io/last-applied-configuration": "{}"},
                "managedFields": [{"manager": "kubectl", "operation": "Update",
                    "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {}}}]},
            "spec": {"type": "LoadBalancer", "clusterIP": "10.0.0.1", "clusterIPs": ["10.0.0.1"],
                "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack",
                "ports": [{"name": "http", "port": 80, "protocol": "UDP", "targetPort": 8080,
                    "nodePort": 30080}]},
            "status": {"loadBalancer": {"ingress": [{"ip": "198.18.0.7", "ipMode": "VIP"},
                    {"hostname": "lb.example"}, {"ip": "junk"}]},
                "conditions": [{"type": "x", "status": "True", "reason": "R", "message": "",
                    "lastTransitionTime": "2026-12-01T00:00:00Z"}]}
        }));
        assert!(s.ours && !s.local);
        assert_eq!(s.key(), ServiceKey::new("d", "web"));
        assert_eq!(s.metadata.uid.as_deref(), Some("u1"));
        assert_eq!(s.metadata.resource_version.as_deref(), Some("7"));
        assert_eq!(s.metadata.generation, Some(3));
        assert_eq!(s.finalizers(), ["x/y"]);
        assert!(s.metadata.labels.is_none() && s.metadata.annotations.is_none());
        assert!(s.metadata.managed_fields.is_none());
        assert_eq!(s.ingress, ["198.18.0.7".parse::<IpAddr>().unwrap()]);
        assert!(s.says_assigned("x") && !s.says_assigned("y"));
        let r = s.request.unwrap();
        assert_eq!(r.ports, [(L4Protocol::Udp, 80)].into());
        assert_eq!(r.families, FamilyPolicy::Single(IpFamily::Ipv4));
        // Written back to the same resource.
        assert_eq!(LbService::plural(&()), "services");
        assert_eq!(LbService::api_version(&()), "v1");
        assert_eq!(
            LbService::url_path(&(), Some("d")),
            "/api/v1/namespaces/d/services"
        );
    }

    #[test]
    fn nulls_read_as_absent() {
        let s = svc(json!({
            "metadata": {"name": "a", "namespace": "d", "annotations": null, "finalizers": null},
            "spec": {"type": "LoadBalancer", "ports": null, "selector": null, "ipFamilies": null},
            "status": {"loadBalancer": {"ingress": null}, "conditions": null}
        }));
        assert!(s.ours && s.request.is_ok() && s.ingress.is_empty());
    }
}
