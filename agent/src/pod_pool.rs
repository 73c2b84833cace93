//! Which pod pool (or which static addresses) a pod's ADD draws from, as a pure function of the
//! pod's and its namespace's annotations and the valid pod pools:
//!
//! 1. `sart.terassyi.net/ips` on the pod: these addresses, at most one per family, each inside
//!    some pod pool;
//! 2. else `sart.terassyi.net/addresspool` on the pod (sart: the pod's annotation wins);
//! 3. else the same annotation on the pod's namespace;
//! 4. else the auto-assign pod pool of each family there is one for (both: a dual-stack pod).
//!
//! Whichever way a pool is reached, its namespaceSelector must admit the pod's namespace.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipam::IpFamily;

use k8s::crd::address_reservation::STICKY_ANNOTATION;
use k8s::crd::{ADDRESS_POOL_ANNOTATION, AddressType};
use k8s::pools::{ValidPool, auto_pool};

/// Static pod addresses (ours; sart had none).
pub(crate) const IPS_ANNOTATION: &str = "sart.terassyi.net/ips";

/// Whether a pod keeps its first addresses for its name (`sart.terassyi.net/sticky: "true"` on
/// the pod, else on its namespace), and the annotations its choice is made from: a sticky pod's
/// reservation stands for the static-address annotation, unless that is set (it wins).
pub(crate) fn sticky_annotations(
    pod: &BTreeMap<String, String>,
    namespace: &BTreeMap<String, String>,
    reserved: Option<&[String]>,
) -> (bool, BTreeMap<String, String>) {
    let sticky = pod
        .get(STICKY_ANNOTATION)
        .or_else(|| namespace.get(STICKY_ANNOTATION))
        .is_some_and(|v| v == "true");
    let mut annotations = pod.clone();
    if sticky
        && !annotations.contains_key(IPS_ANNOTATION)
        && let Some(r) = reserved
    {
        annotations.insert(IPS_ANNOTATION.to_owned(), r.join(","));
    }
    (sticky, annotations)
}

/// Where a pod's addresses come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Choice {
    /// These addresses, each with the pool that holds it.
    Static(Vec<(IpAddr, String)>),
    /// One address from each of these pools (one pool per family).
    Pools(Vec<String>),
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ChoiceError {
    #[error("annotation {IPS_ANNOTATION}: {0:?} is not an IP address")]
    BadAddress(String),
    #[error("annotation {IPS_ANNOTATION}: two {0} addresses (one per family)")]
    TwoOfAFamily(IpFamily),
    #[error("address {0} is in no pod AddressPool")]
    OutsidePools(IpAddr),
    #[error("{from} names AddressPool {pool}, which is not a usable pod pool")]
    UnknownPool { pool: String, from: &'static str },
    #[error("{from} names two pools of {family}: {a} and {b}")]
    TwoPoolsOfAFamily {
        family: IpFamily,
        a: String,
        b: String,
        from: &'static str,
    },
    #[error("no AddressPool applies: no annotation, and no auto-assign pod pool")]
    NoPool,
    #[error("AddressPool {pool} does not admit namespace {namespace} (its namespaceSelector)")]
    PoolNotAllowed { pool: String, namespace: String },
}

/// What of a pod's namespace the choice depends on.
#[derive(Clone, Copy, Debug)]
pub(crate) struct NamespaceView<'a> {
    pub name: &'a str,
    pub annotations: &'a BTreeMap<String, String>,
    pub labels: &'a BTreeMap<String, String>,
}

fn list(v: &str) -> impl Iterator<Item = &str> {
    v.split(',').map(str::trim).filter(|s| !s.is_empty())
}

/// Decides for one pod. `pools` are the valid pools (any type; only pod pools are used).
pub(crate) fn choose(
    pod: &BTreeMap<String, String>,
    namespace: NamespaceView<'_>,
    pools: &[ValidPool],
) -> Result<Choice, ChoiceError> {
    let pod_pools: Vec<&ValidPool> = pools
        .iter()
        .filter(|p| p.kind == AddressType::Pod)
        .collect();
    let admitted = |p: &ValidPool| {
        if p.admits(namespace.labels) {
            Ok(())
        } else {
            Err(ChoiceError::PoolNotAllowed {
                pool: p.name.clone(),
                namespace: namespace.name.to_owned(),
            })
        }
    };
    if let Some(ips) = pod.get(IPS_ANNOTATION) {
        let mut out: Vec<(IpAddr, String)> = Vec::new();
        for s in list(ips) {
            let ip: IpAddr = s.parse().map_err(|_| ChoiceError::BadAddress(s.into()))?;
            if out
                .iter()
                .any(|(o, _)| IpFamily::of(*o) == IpFamily::of(ip))
            {
                return Err(ChoiceError::TwoOfAFamily(IpFamily::of(ip)));
            }
            let pool = pod_pools
                .iter()
                .find(|p| p.pool.contains(ip))
                .ok_or(ChoiceError::OutsidePools(ip))?;
            admitted(pool)?;
            out.push((ip, pool.name.clone()));
        }
        if !out.is_empty() {
            return Ok(Choice::Static(out));
        }
    }
    let named = pod
        .get(ADDRESS_POOL_ANNOTATION)
        .map(|v| (v, "the pod's annotation"))
        .or_else(|| {
            namespace
                .annotations
                .get(ADDRESS_POOL_ANNOTATION)
                .map(|v| (v, "the namespace's annotation"))
        });
    if let Some((names, from)) = named {
        let mut chosen: Vec<&ValidPool> = Vec::new();
        for n in list(names) {
            let p =
                pod_pools
                    .iter()
                    .find(|p| p.name == n)
                    .ok_or_else(|| ChoiceError::UnknownPool {
                        pool: n.into(),
                        from,
                    })?;
            admitted(p)?;
            if let Some(o) = chosen.iter().find(|o| o.pool.family() == p.pool.family()) {
                return Err(ChoiceError::TwoPoolsOfAFamily {
                    family: p.pool.family(),
                    a: o.name.clone(),
                    b: p.name.clone(),
                    from,
                });
            }
            chosen.push(p);
        }
        if !chosen.is_empty() {
            return Ok(Choice::Pools(
                chosen.iter().map(|p| p.name.clone()).collect(),
            ));
        }
    }
    let auto: Vec<String> = [IpFamily::Ipv4, IpFamily::Ipv6]
        .into_iter()
        .filter_map(|f| auto_pool(pools, AddressType::Pod, f, namespace.labels))
        .map(|p| p.name.clone())
        .collect();
    if auto.is_empty() {
        return Err(ChoiceError::NoPool);
    }
    Ok(Choice::Pools(auto))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use ipam::Pool;
    use k8s::pools::Namespaces;

    fn pool(name: &str, cidr: &str, block: u8, auto: bool, kind: AddressType) -> ValidPool {
        ValidPool {
            name: name.into(),
            kind,
            pool: Pool::new(cidr.parse().unwrap(), block).unwrap(),
            auto_assign: auto,
            namespaces: Namespaces::All,
        }
    }

    fn pools() -> Vec<ValidPool> {
        vec![
            pool("pods", "198.18.64.0/24", 29, true, AddressType::Pod),
            pool("pods6", "fd00:64::/64", 120, true, AddressType::Pod),
            pool("tenant", "198.18.65.0/24", 29, false, AddressType::Pod),
            pool("svc", "198.18.66.0/24", 24, true, AddressType::Service),
        ]
    }

    fn ann(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn view<'a>(
        annotations: &'a BTreeMap<String, String>,
        labels: &'a BTreeMap<String, String>,
    ) -> NamespaceView<'a> {
        NamespaceView {
            name: "team",
            annotations,
            labels,
        }
    }

    #[test]
    fn order_of_precedence() {
        let none = ann(&[]);
        let ns = ann(&[(ADDRESS_POOL_ANNOTATION, "tenant")]);
        let (none_ns, ns) = (view(&none, &none), view(&ns, &none));
        let p = pools();
        // Nothing said: the auto-assign pod pools, both families.
        assert_eq!(
            choose(&none, none_ns, &p),
            Ok(Choice::Pools(vec!["pods".into(), "pods6".into()]))
        );
        // The namespace's pool, unless the pod names its own.
        assert_eq!(
            choose(&none, ns, &p),
            Ok(Choice::Pools(vec!["tenant".into()]))
        );
        let pod = ann(&[(ADDRESS_POOL_ANNOTATION, "pods6")]);
        assert_eq!(
            choose(&pod, ns, &p),
            Ok(Choice::Pools(vec!["pods6".into()]))
        );
        // Static addresses win over everything, each with its pool.
        let pod = ann(&[
            (IPS_ANNOTATION, "198.18.65.7, fd00:64::7"),
            (ADDRESS_POOL_ANNOTATION, "pods"),
        ]);
        assert_eq!(
            choose(&pod, ns, &p),
            Ok(Choice::Static(vec![
                ("198.18.65.7".parse().unwrap(), "tenant".into()),
                ("fd00:64::7".parse().unwrap(), "pods6".into()),
            ]))
        );
    }

    #[test]
    fn clear_refusals() {
        let none = ann(&[]);
        let p = pools();
        let err = |pod: &[(&str, &str)]| choose(&ann(pod), view(&none, &none), &p).unwrap_err();
        assert_eq!(
            err(&[(IPS_ANNOTATION, "198.18.66.1")]),
            ChoiceError::OutsidePools("198.18.66.1".parse().unwrap())
        );
        assert_eq!(
            err(&[(IPS_ANNOTATION, "198.18.64.1,198.18.64.2")]),
            ChoiceError::TwoOfAFamily(IpFamily::Ipv4)
        );
        assert!(matches!(
            err(&[(IPS_ANNOTATION, "pod-1")]),
            ChoiceError::BadAddress(_)
        ));
        // A Service pool is no pod pool.
        assert!(matches!(
            err(&[(ADDRESS_POOL_ANNOTATION, "svc")]),
            ChoiceError::UnknownPool { .. }
        ));
        assert!(matches!(
            err(&[(ADDRESS_POOL_ANNOTATION, "pods,tenant")]),
            ChoiceError::TwoPoolsOfAFamily { .. }
        ));
        let only_manual = vec![pool(
            "tenant",
            "198.18.65.0/24",
            29,
            false,
            AddressType::Pod,
        )];
        assert_eq!(
            choose(&none, view(&none, &none), &only_manual),
            Err(ChoiceError::NoPool)
        );
    }

    /// A pool for namespaces labelled tenant=a, auto-assign: theirs before the pool for all;
    /// no other namespace reaches it by annotation, by its own namespace's annotation or by
    /// a static address.
    #[test]
    fn pools_fenced_by_namespace_selector() {
        let mut p = pools();
        let mut a = pool("tenant-a", "198.18.67.0/24", 29, true, AddressType::Pod);
        a.namespaces = Namespaces::Selected(kube::core::Selector::from_iter([("tenant", "a")]));
        p.push(a);
        let none = ann(&[]);
        let a_labels = ann(&[("tenant", "a")]);
        let in_a = view(&none, &a_labels);
        assert_eq!(
            choose(&none, in_a, &p),
            Ok(Choice::Pools(vec!["tenant-a".into(), "pods6".into()]))
        );
        assert_eq!(
            choose(&none, view(&none, &none), &p),
            Ok(Choice::Pools(vec!["pods".into(), "pods6".into()]))
        );
        let refused = Err(ChoiceError::PoolNotAllowed {
            pool: "tenant-a".into(),
            namespace: "team".into(),
        });
        let named = ann(&[(ADDRESS_POOL_ANNOTATION, "tenant-a")]);
        assert_eq!(choose(&named, view(&none, &none), &p), refused);
        assert_eq!(choose(&none, view(&named, &none), &p), refused);
        let fixed = ann(&[(IPS_ANNOTATION, "198.18.67.9")]);
        assert_eq!(choose(&fixed, view(&none, &none), &p), refused);
        assert_eq!(
            choose(&fixed, in_a, &p),
            Ok(Choice::Static(vec![(
                "198.18.67.9".parse().unwrap(),
                "tenant-a".into()
            )]))
        );
    }

    #[test]
    fn a_sticky_pods_reservation_stands_for_its_static_addresses() {
        let m = |kv: &[(&str, &str)]| -> BTreeMap<String, String> {
            kv.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let kept = ["198.18.0.3".to_owned()];
        let sticky = m(&[(STICKY_ANNOTATION, "true")]);
        let none = m(&[]);
        // On the pod, or on its namespace.
        for (pod, ns) in [(&sticky, &none), (&none, &sticky)] {
            let (is, a) = sticky_annotations(pod, ns, Some(&kept));
            assert!(is);
            assert_eq!(
                a.get(IPS_ANNOTATION).map(String::as_str),
                Some("198.18.0.3")
            );
        }
        // The pod's "false" wins over its namespace's "true"; no reservation yet: the pools.
        let off = m(&[(STICKY_ANNOTATION, "false")]);
        assert_eq!(
            sticky_annotations(&off, &sticky, Some(&kept)),
            (false, off.clone())
        );
        assert_eq!(
            sticky_annotations(&sticky, &none, None),
            (true, sticky.clone())
        );
        // Explicit static addresses win over the reservation.
        let both = m(&[(STICKY_ANNOTATION, "true"), (IPS_ANNOTATION, "198.18.0.9")]);
        assert_eq!(sticky_annotations(&both, &none, Some(&kept)).1, both);
    }
}
