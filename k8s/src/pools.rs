//! Which AddressPools are usable, and by which namespaces. A pure function of every pool in the
//! cluster: a pool is refused for a bad CIDR, block size or namespaceSelector, for overlapping
//! an older pool, or for being a second auto-assign pool for every namespace of the same type
//! and family. "Older" (creation time, then name) decides, so the pool that was working keeps
//! working when a conflicting one is added.

use std::collections::BTreeMap;

use ipam::{IpFamily, Pool};
use ipnet::IpNet;
use kube::core::{Selector, SelectorExt};

use crate::crd::{AddressPool, AddressType};

/// A pool that passed every check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidPool {
    pub name: String,
    pub kind: AddressType,
    pub pool: Pool,
    pub auto_assign: bool,
    pub namespaces: Namespaces,
}

/// Which namespaces may use a pool (`spec.namespaceSelector`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Namespaces {
    All,
    Selected(Selector),
}

impl Namespaces {
    /// Whether a namespace with these labels may use the pool.
    pub fn admit(&self, labels: &BTreeMap<String, String>) -> bool {
        match self {
            Namespaces::All => true,
            Namespaces::Selected(s) => s.matches(labels),
        }
    }
}

impl ValidPool {
    pub fn admits(&self, namespace_labels: &BTreeMap<String, String>) -> bool {
        self.namespaces.admit(namespace_labels)
    }
}

/// The names of `pools` a namespace with these labels may use; a namespace that does not exist
/// (`None`) only those for every namespace, whatever their selectors say of no labels.
pub fn usable_by(
    pools: &[ValidPool],
    namespace_labels: Option<&BTreeMap<String, String>>,
) -> std::collections::BTreeSet<String> {
    pools
        .iter()
        .filter(|p| match namespace_labels {
            Some(l) => p.admits(l),
            None => p.namespaces == Namespaces::All,
        })
        .map(|p| p.name.clone())
        .collect()
}

/// The auto-assign pool of `kind` and `family` for a namespace: one made for some namespaces
/// before the one for all, then the lowest name.
pub fn auto_pool<'a>(
    pools: &'a [ValidPool],
    kind: AddressType,
    family: IpFamily,
    namespace_labels: &BTreeMap<String, String>,
) -> Option<&'a ValidPool> {
    pools
        .iter()
        .filter(|p| p.kind == kind && p.auto_assign && p.pool.family() == family)
        .filter(|p| p.admits(namespace_labels))
        .min_by_key(|p| (p.namespaces == Namespaces::All, p.name.clone()))
}

/// Why a pool is refused; the `reason` goes into its `Ready` condition and an Event.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("cidr {cidr:?}: {why}")]
    BadCidr { cidr: String, why: String },
    #[error("blockSize {size}: {why}")]
    BadBlockSize { size: u32, why: String },
    #[error("{cidr} overlaps pool {other} ({other_cidr})")]
    Overlap {
        cidr: IpNet,
        other: String,
        other_cidr: IpNet,
    },
    #[error("namespaceSelector: {0}")]
    BadSelector(String),
    #[error("pool {other} is already the auto-assign {kind} pool for {family}")]
    SecondAutoAssign {
        other: String,
        kind: AddressType,
        family: IpFamily,
    },
}

impl Refusal {
    /// CamelCase reason for conditions and Events.
    pub fn reason(&self) -> &'static str {
        match self {
            Refusal::BadCidr { .. } => "InvalidCIDR",
            Refusal::BadBlockSize { .. } => "InvalidBlockSize",
            Refusal::Overlap { .. } => "Overlap",
            Refusal::BadSelector(_) => "InvalidNamespaceSelector",
            Refusal::SecondAutoAssign { .. } => "DuplicateAutoAssign",
        }
    }
}

/// Checks one pool on its own.
pub fn parse(p: &AddressPool) -> Result<ValidPool, Refusal> {
    let name = p.metadata.name.clone().unwrap_or_default();
    let spec = &p.spec;
    let cidr: IpNet = spec.cidr.trim().parse().map_err(|e| Refusal::BadCidr {
        cidr: spec.cidr.clone(),
        why: format!("{e}"),
    })?;
    if cidr.trunc() != cidr {
        return Err(Refusal::BadCidr {
            cidr: spec.cidr.clone(),
            why: format!("host bits set (the network is {})", cidr.trunc()),
        });
    }
    let max = match cidr {
        IpNet::V4(_) => 32,
        IpNet::V6(_) => 128,
    };
    let size = spec.block_size.unwrap_or(u32::from(cidr.prefix_len()));
    if size < u32::from(cidr.prefix_len()) || size > max {
        return Err(Refusal::BadBlockSize {
            size,
            why: format!(
                "must be between the pool's prefix length {} and {max}",
                cidr.prefix_len()
            ),
        });
    }
    let block_len = u8::try_from(size).map_err(|_| Refusal::BadBlockSize {
        size,
        why: "too large".into(),
    })?;
    let pool = Pool::new(cidr, block_len).map_err(|e| Refusal::BadBlockSize {
        size,
        why: e.to_string(),
    })?;
    let namespaces = match &spec.namespace_selector {
        None => Namespaces::All,
        Some(ls) => Namespaces::Selected(
            Selector::try_from(ls.clone()).map_err(|e| Refusal::BadSelector(e.to_string()))?,
        ),
    };
    Ok(ValidPool {
        name,
        kind: spec.pool_type,
        pool,
        auto_assign: spec.auto_assign(),
        namespaces,
    })
}

/// Every pool's verdict, by name. Pools being deleted still count (their addresses are in use
/// until the finalizer lets them go).
pub fn validate(pools: &[AddressPool]) -> BTreeMap<String, Result<ValidPool, Refusal>> {
    let mut ordered: Vec<&AddressPool> = pools.iter().collect();
    ordered.sort_by(|a, b| {
        let key = |p: &AddressPool| {
            (
                p.metadata.creation_timestamp.as_ref().map(|t| t.0),
                p.metadata.name.clone(),
            )
        };
        key(a).cmp(&key(b))
    });
    let mut accepted: Vec<ValidPool> = Vec::new();
    let mut out = BTreeMap::new();
    for p in ordered {
        let name = p.metadata.name.clone().unwrap_or_default();
        let verdict = parse(p).and_then(|v| {
            if let Some(o) = accepted.iter().find(|o| o.pool.overlaps(&v.pool)) {
                return Err(Refusal::Overlap {
                    cidr: v.pool.cidr(),
                    other: o.name.clone(),
                    other_cidr: o.pool.cidr(),
                });
            }
            // Pools for some namespaces may be auto-assign side by side (a namespace both
            // select gets the lowest name); one for every namespace is the fallback of its kind.
            let for_all = |p: &ValidPool| p.namespaces == Namespaces::All;
            if v.auto_assign
                && for_all(&v)
                && let Some(o) = accepted.iter().find(|o| {
                    o.auto_assign
                        && for_all(o)
                        && o.kind == v.kind
                        && o.pool.family() == v.pool.family()
                })
            {
                return Err(Refusal::SecondAutoAssign {
                    other: o.name.clone(),
                    kind: v.kind,
                    family: v.pool.family(),
                });
            }
            Ok(v)
        });
        if let Ok(v) = &verdict {
            accepted.push(v.clone());
        }
        out.insert(name, verdict);
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::crd::AddressPoolSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use k8s_openapi::jiff::Timestamp;

    fn pool(name: &str, age: i64, cidr: &str, kind: AddressType, auto: bool) -> AddressPool {
        let mut p = AddressPool::new(
            name,
            AddressPoolSpec {
                cidr: cidr.into(),
                pool_type: kind,
                auto_assign: Some(auto),
                ..AddressPoolSpec::default()
            },
        );
        p.metadata.creation_timestamp = Some(Time(Timestamp::from_second(1_000 - age).unwrap()));
        p
    }

    #[test]
    fn older_pool_wins_an_overlap_and_the_auto_assign_slot() {
        let pools = [
            pool("new", 1, "10.0.0.128/25", AddressType::Service, false),
            pool("old", 9, "10.0.0.0/24", AddressType::Service, true),
            pool("auto2", 5, "10.1.0.0/24", AddressType::Service, true),
            pool("auto-pod", 5, "10.2.0.0/24", AddressType::Pod, true),
            pool("auto-v6", 5, "fd00:1::/112", AddressType::Service, true),
        ];
        let v = validate(&pools);
        assert!(v["old"].is_ok());
        assert_eq!(v["new"].as_ref().unwrap_err().reason(), "Overlap");
        assert_eq!(
            v["auto2"].as_ref().unwrap_err().reason(),
            "DuplicateAutoAssign"
        );
        assert!(v["auto-pod"].is_ok(), "another type has its own slot");
        assert!(v["auto-v6"].is_ok(), "another family has its own slot");
    }

    #[test]
    fn namespace_selectors_fence_pools_and_pick_the_auto_pool() {
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
            LabelSelector, LabelSelectorRequirement,
        };
        let labels = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let mut tenant = pool("tenant", 5, "10.1.0.0/24", AddressType::Service, true);
        tenant.spec.namespace_selector = Some(LabelSelector {
            match_labels: Some(labels(&[("tenant", "a")])),
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "tier".into(),
                operator: "NotIn".into(),
                values: Some(vec!["test".into()]),
            }]),
        });
        let mut bad = pool("bad", 4, "10.2.0.0/24", AddressType::Service, false);
        bad.spec.namespace_selector = Some(LabelSelector {
            match_labels: None,
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "tier".into(),
                operator: "Near".into(),
                values: None,
            }]),
        });
        let pools = [
            pool("all", 9, "10.0.0.0/24", AddressType::Service, true),
            tenant,
            bad,
        ];
        let v = validate(&pools);
        assert_eq!(
            v["bad"].as_ref().unwrap_err().reason(),
            "InvalidNamespaceSelector"
        );
        // Two auto-assign pools of a kind and family: one for some namespaces is no duplicate.
        let valid: Vec<ValidPool> = v.into_values().filter_map(Result::ok).collect();
        assert_eq!(valid.len(), 2);
        let a = labels(&[("tenant", "a"), ("tier", "prod")]);
        let a_test = labels(&[("tenant", "a"), ("tier", "test")]);
        let other = labels(&[("kubernetes.io/metadata.name", "b")]);
        let auto =
            |l| auto_pool(&valid, AddressType::Service, IpFamily::Ipv4, l).map(|p| p.name.as_str());
        assert_eq!(auto(&a), Some("tenant"), "a pool of its own first");
        assert_eq!(auto(&a_test), Some("all"));
        assert_eq!(auto(&other), Some("all"));
        assert_eq!(
            auto_pool(&valid, AddressType::Pod, IpFamily::Ipv4, &a),
            None
        );
        let tenant = valid.iter().find(|p| p.name == "tenant").unwrap();
        assert!(tenant.admits(&a) && !tenant.admits(&a_test) && !tenant.admits(&other));
    }

    #[test]
    fn cidr_and_block_size_checks() {
        let mut p = pool("p", 0, "10.0.0.1/24", AddressType::Pod, false);
        assert_eq!(parse(&p).unwrap_err().reason(), "InvalidCIDR");
        p.spec.cidr = "10.0.0.0/33".into();
        assert_eq!(parse(&p).unwrap_err().reason(), "InvalidCIDR");
        p.spec.cidr = "10.0.0.0/24".into();
        p.spec.block_size = Some(23);
        assert_eq!(parse(&p).unwrap_err().reason(), "InvalidBlockSize");
        p.spec.block_size = Some(33);
        assert_eq!(parse(&p).unwrap_err().reason(), "InvalidBlockSize");
        p.spec.block_size = Some(29);
        assert_eq!(parse(&p).unwrap().pool.block_count(), 32);
        p.spec.cidr = "fd00:1::/64".into();
        p.spec.block_size = Some(120);
        assert_eq!(parse(&p).unwrap().pool.block_count(), 1 << 56);
        p.spec.block_size = None;
        assert_eq!(parse(&p).unwrap().pool.block_count(), 1);
    }
}
