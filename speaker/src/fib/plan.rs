//! What to change in the kernel: a pure diff between the routes the RIB wants and the routes
//! a dump of the table shows.
//!
//! A kernel route is identified by (table, destination, metric); ours carry our protocol
//! number, and a route of another protocol with the same identity is never replaced: it is a
//! [`Op::Conflict`] the caller reports. Routes of ours the RIB no longer wants are deleted,
//! except while the RIB is still converging after a restart ([`Stale::Keep`]): those are the
//! previous run's routes, which keep forwarding until fresh ones replace them.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ipnet::IpNet;

/// Kernel metric of a route learned over eBGP and over iBGP (administrative distances, as sart
/// and FRR use), so a route from a better protocol with a lower metric wins.
pub(crate) const METRIC_EBGP: u32 = 20;
pub(crate) const METRIC_IBGP: u32 = 200;

/// A route as the RIB wants it in the kernel. `next_hops` has one entry, or several for ECMP
/// (one multipath route).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Want {
    pub next_hops: BTreeSet<IpAddr>,
    pub metric: u32,
}

/// What a dump of the table says: our routes by (destination, metric) with their next hops,
/// and the (destination, metric) pairs held by other protocols.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Kernel {
    pub ours: BTreeMap<(IpNet, u32), BTreeSet<IpAddr>>,
    pub foreign: BTreeSet<(IpNet, u32)>,
}

/// Whether routes of ours that the RIB does not want are deleted yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stale {
    /// The RIB is converging after a restart: keep them.
    Keep,
    Delete,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Op {
    /// Add or replace (NLM_F_REPLACE) our route.
    Replace(IpNet, Want),
    Delete(IpNet, u32),
    /// Another protocol holds (destination, metric): leave it alone.
    Conflict(IpNet, u32),
}

/// The operations that make the kernel match `want` for every prefix in it, and delete the
/// routes of ours it does not mention (subject to `stale`).
pub(crate) fn plan(want: &BTreeMap<IpNet, Want>, kernel: &Kernel, stale: Stale) -> Vec<Op> {
    let mut ops = Vec::new();
    for (prefix, w) in want {
        if kernel.foreign.contains(&(*prefix, w.metric)) {
            ops.push(Op::Conflict(*prefix, w.metric));
            continue;
        }
        if kernel.ours.get(&(*prefix, w.metric)) != Some(&w.next_hops) {
            ops.push(Op::Replace(*prefix, w.clone()));
        }
    }
    for (prefix, metric) in kernel.ours.keys() {
        match want.get(prefix) {
            Some(w) if w.metric == *metric => {}
            // Same destination, other metric: the fresh route replaces it, even while stale.
            Some(_) => ops.push(Op::Delete(*prefix, *metric)),
            None if stale == Stale::Keep => {}
            None => ops.push(Op::Delete(*prefix, *metric)),
        }
    }
    ops
}

/// The operations for one prefix whose wanted state changed (`None`: no longer wanted), given
/// what we believe the kernel holds for it. The incremental path: no dump.
pub(crate) fn plan_one(
    prefix: IpNet,
    want: Option<&Want>,
    installed: &BTreeMap<u32, BTreeSet<IpAddr>>,
    foreign: bool,
) -> Vec<Op> {
    let mut ops = Vec::new();
    if let Some(w) = want {
        if foreign {
            ops.push(Op::Conflict(prefix, w.metric));
        } else if installed.get(&w.metric) != Some(&w.next_hops) {
            ops.push(Op::Replace(prefix, w.clone()));
        }
    }
    for metric in installed.keys() {
        if want.is_none_or(|w| w.metric != *metric) {
            ops.push(Op::Delete(prefix, *metric));
        }
    }
    ops
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    fn p(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    fn w(nhs: &[&str], metric: u32) -> Want {
        Want {
            next_hops: nhs.iter().map(|a| a.parse().unwrap()).collect(),
            metric,
        }
    }

    #[test]
    fn installs_changes_and_deletes() {
        let want = BTreeMap::from([
            (p("198.18.1.0/24"), w(&["198.18.0.1"], METRIC_EBGP)),
            (
                p("198.18.2.0/24"),
                w(&["198.18.0.1", "198.18.0.2"], METRIC_EBGP),
            ),
            (p("fd00:1::/64"), w(&["fd00::1"], METRIC_IBGP)),
        ]);
        let mut kernel = Kernel::default();
        kernel.ours.insert(
            (p("198.18.1.0/24"), METRIC_EBGP),
            want[&p("198.18.1.0/24")].next_hops.clone(),
        );
        kernel.ours.insert(
            (p("198.18.2.0/24"), METRIC_EBGP),
            w(&["198.18.0.1"], 0).next_hops,
        );
        kernel
            .ours
            .insert((p("198.18.9.0/24"), METRIC_EBGP), BTreeSet::new());
        kernel
            .ours
            .insert((p("fd00:1::/64"), METRIC_EBGP), BTreeSet::new());
        let ops = plan(&want, &kernel, Stale::Delete);
        assert_eq!(
            ops,
            vec![
                Op::Replace(p("198.18.2.0/24"), want[&p("198.18.2.0/24")].clone()),
                Op::Replace(p("fd00:1::/64"), want[&p("fd00:1::/64")].clone()),
                Op::Delete(p("198.18.9.0/24"), METRIC_EBGP),
                Op::Delete(p("fd00:1::/64"), METRIC_EBGP),
            ]
        );
        // Converging: the unwanted route stays, the re-metricked one still goes.
        let ops = plan(&want, &kernel, Stale::Keep);
        assert!(!ops.contains(&Op::Delete(p("198.18.9.0/24"), METRIC_EBGP)));
        assert!(ops.contains(&Op::Delete(p("fd00:1::/64"), METRIC_EBGP)));
    }

    #[test]
    fn never_replaces_another_protocols_route() {
        let want = BTreeMap::from([(p("198.18.1.0/24"), w(&["198.18.0.1"], METRIC_EBGP))]);
        let kernel = Kernel {
            ours: BTreeMap::new(),
            foreign: BTreeSet::from([(p("198.18.1.0/24"), METRIC_EBGP)]),
        };
        assert_eq!(
            plan(&want, &kernel, Stale::Delete),
            vec![Op::Conflict(p("198.18.1.0/24"), METRIC_EBGP)]
        );
        // A foreign route with another metric coexists.
        let kernel = Kernel {
            ours: BTreeMap::new(),
            foreign: BTreeSet::from([(p("198.18.1.0/24"), 0)]),
        };
        assert!(matches!(
            plan(&want, &kernel, Stale::Delete)[..],
            [Op::Replace(..)]
        ));
    }

    #[test]
    fn one_prefix() {
        let installed = BTreeMap::from([(METRIC_IBGP, w(&["198.18.0.1"], 0).next_hops)]);
        let want = w(&["198.18.0.1"], METRIC_EBGP);
        assert_eq!(
            plan_one(p("198.18.1.0/24"), Some(&want), &installed, false),
            vec![
                Op::Replace(p("198.18.1.0/24"), want.clone()),
                Op::Delete(p("198.18.1.0/24"), METRIC_IBGP)
            ]
        );
        assert_eq!(
            plan_one(p("198.18.1.0/24"), None, &installed, false),
            vec![Op::Delete(p("198.18.1.0/24"), METRIC_IBGP)]
        );
        let same = BTreeMap::from([(METRIC_EBGP, want.next_hops.clone())]);
        assert!(plan_one(p("198.18.1.0/24"), Some(&want), &same, false).is_empty());
    }

    /// Applying the plan to the dump yields exactly the wanted routes (with Stale::Delete) and
    /// never touches a foreign one.
    fn apply(kernel: &mut Kernel, ops: &[Op]) {
        for op in ops {
            match op {
                Op::Replace(p, w) => {
                    assert!(!kernel.foreign.contains(&(*p, w.metric)));
                    kernel.ours.insert((*p, w.metric), w.next_hops.clone());
                }
                Op::Delete(p, m) => {
                    kernel.ours.remove(&(*p, *m));
                }
                Op::Conflict(..) => {}
            }
        }
    }

    fn arb_state() -> impl Strategy<Value = (BTreeMap<IpNet, Want>, Kernel)> {
        let prefix = (0u8..6).prop_map(|i| p(&format!("198.18.{i}.0/24")));
        let metric = prop_oneof![Just(METRIC_EBGP), Just(METRIC_IBGP)];
        let nhs = proptest::collection::btree_set(
            (1u8..4).prop_map(|i| IpAddr::from([198, 18, 0, i])),
            1..3,
        );
        let want = proptest::collection::btree_map(
            prefix.clone(),
            (nhs.clone(), metric.clone())
                .prop_map(|(next_hops, metric)| Want { next_hops, metric }),
            0..6,
        );
        let ours = proptest::collection::btree_map((prefix.clone(), metric.clone()), nhs, 0..8);
        let foreign = proptest::collection::btree_set((prefix, metric), 0..3);
        (want, ours, foreign).prop_map(|(want, ours, foreign)| {
            // A (prefix, metric) is ours or foreign, not both.
            let ours = ours
                .into_iter()
                .filter(|(k, _)| !foreign.contains(k))
                .collect();
            (want, Kernel { ours, foreign })
        })
    }

    proptest! {
        #[test]
        fn plan_converges((want, kernel) in arb_state()) {
            let mut k = kernel.clone();
            let ops = plan(&want, &k, Stale::Delete);
            apply(&mut k, &ops);
            for (prefix, w) in &want {
                if !kernel.foreign.contains(&(*prefix, w.metric)) {
                    prop_assert_eq!(k.ours.get(&(*prefix, w.metric)), Some(&w.next_hops));
                }
            }
            for (prefix, metric) in k.ours.keys() {
                prop_assert_eq!(want.get(prefix).map(|w| w.metric), Some(*metric));
            }
            prop_assert_eq!(&k.foreign, &kernel.foreign);
            prop_assert!(plan(&want, &k, Stale::Delete).iter().all(|o| matches!(o, Op::Conflict(..))));
        }
    }
}
