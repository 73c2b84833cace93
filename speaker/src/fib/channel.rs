//! A `sartd fib` channel's table: the routes its subscribers offer for each destination, and
//! the one it selects and hands to its publishers. Pure: the daemon feeds it what the BGP
//! subscriber's callers and the kernel tables say, and sends the changes it returns on.
//!
//! Selection is by administrative distance (connected 0, static 1, eBGP 20, iBGP 200, as sart
//! and zebra rank protocols), then metric, then the order the subscribers are listed in.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ipnet::IpNet;

/// One route a subscriber offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Route {
    /// Empty for a route through an interface only (a connected route).
    pub next_hops: BTreeSet<IpAddr>,
    pub distance: u8,
    pub metric: u32,
    /// The kernel's protocol number of the route (186 for BGP).
    pub protocol: u8,
}

/// Where a route comes from: the subscriber's place in the channel, and for a kernel
/// subscriber the table and metric that tell its routes for one destination apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Origin {
    pub subscriber: usize,
    pub table: u32,
    pub metric: u32,
}

impl Origin {
    /// A BGP subscriber holds one route per destination.
    pub(crate) fn bgp(subscriber: usize) -> Origin {
        Origin {
            subscriber,
            table: 0,
            metric: 0,
        }
    }
}

/// The channel's selection for a destination changed (`None`: nothing is selected any more).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Change {
    pub prefix: IpNet,
    pub best: Option<Route>,
}

#[derive(Debug, Default)]
pub(crate) struct Rib {
    routes: BTreeMap<IpNet, BTreeMap<Origin, Route>>,
}

impl Rib {
    /// The selected route for `prefix`.
    pub(crate) fn best(&self, prefix: &IpNet) -> Option<&Route> {
        self.routes.get(prefix).and_then(select)
    }

    /// Every destination with its selected route.
    pub(crate) fn selected(&self) -> impl Iterator<Item = (IpNet, &Route)> {
        self.routes
            .iter()
            .filter_map(|(p, rs)| select(rs).map(|r| (*p, r)))
    }

    /// What `origin` offers for `prefix` now (`None`: nothing). The change of selection, if any.
    pub(crate) fn set(
        &mut self,
        origin: Origin,
        prefix: IpNet,
        route: Option<Route>,
    ) -> Option<Change> {
        let before = self.best(&prefix).cloned();
        match route {
            Some(r) => {
                self.routes.entry(prefix).or_default().insert(origin, r);
            }
            None => {
                if let Some(rs) = self.routes.get_mut(&prefix) {
                    rs.remove(&origin);
                    if rs.is_empty() {
                        self.routes.remove(&prefix);
                    }
                }
            }
        }
        let after = self.best(&prefix).cloned();
        (before != after).then_some(Change {
            prefix,
            best: after,
        })
    }

    /// Everything a subscriber's `table` holds now (a dump): routes not in it are gone.
    pub(crate) fn replace_table(
        &mut self,
        subscriber: usize,
        table: u32,
        now: &BTreeMap<(IpNet, u32), Route>,
    ) -> Vec<Change> {
        let gone: Vec<(IpNet, Origin)> = self
            .routes
            .iter()
            .flat_map(|(p, rs)| {
                rs.keys()
                    .filter(|o| o.subscriber == subscriber && o.table == table)
                    .filter(|o| !now.contains_key(&(*p, o.metric)))
                    .map(|o| (*p, *o))
            })
            .collect();
        let mut changes = Vec::new();
        for (p, o) in gone {
            changes.extend(self.set(o, p, None));
        }
        for ((p, metric), r) in now {
            let o = Origin {
                subscriber,
                table,
                metric: *metric,
            };
            if self.routes.get(p).and_then(|rs| rs.get(&o)) != Some(r) {
                changes.extend(self.set(o, *p, Some(r.clone())));
            }
        }
        changes
    }
}

fn select(rs: &BTreeMap<Origin, Route>) -> Option<&Route> {
    rs.iter()
        .min_by_key(|(o, r)| (r.distance, r.metric, o.subscriber, o.table, o.metric))
        .map(|(_, r)| r)
}

/// The administrative distance of a kernel route by its protocol: what the kernel made for an
/// address (connected) ranks first, static routes next, then routing daemons by their usual
/// distances; anything else ranks as static.
pub(crate) fn kernel_distance(protocol: u8) -> u8 {
    match protocol {
        2 => 0,     // kernel
        186 => 20,  // bgp
        187 => 115, // isis
        188 => 110, // ospf
        189 => 120, // rip
        _ => 1,     // boot, static, dhcp, ...
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    fn route(nh: &str, distance: u8, metric: u32) -> Route {
        Route {
            next_hops: [nh.parse().unwrap()].into(),
            distance,
            metric,
            protocol: 4,
        }
    }

    #[test]
    fn the_lowest_distance_wins_and_only_changes_are_reported() {
        let mut rib = Rib::default();
        let p = net("198.18.1.0/24");
        let ibgp = route("198.18.0.1", 200, 200);
        let stat = route("198.18.0.2", 1, 0);
        assert_eq!(
            rib.set(Origin::bgp(0), p, Some(ibgp.clone())),
            Some(Change {
                prefix: p,
                best: Some(ibgp.clone())
            })
        );
        let k = Origin {
            subscriber: 1,
            table: 8,
            metric: 0,
        };
        assert_eq!(
            rib.set(k, p, Some(stat.clone())).unwrap().best,
            Some(stat.clone())
        );
        // The iBGP route changing behind the static one changes nothing selected.
        assert_eq!(
            rib.set(Origin::bgp(0), p, Some(route("198.18.0.3", 200, 200))),
            None
        );
        assert_eq!(rib.set(k, p, None).unwrap().best.unwrap().distance, 200);
        assert_eq!(rib.set(Origin::bgp(0), p, None).unwrap().best, None);
        assert_eq!(rib.selected().count(), 0);
        assert_eq!(rib.set(Origin::bgp(0), p, None), None);
    }

    #[test]
    fn a_dump_replaces_what_a_table_held() {
        let mut rib = Rib::default();
        let (a, b) = (net("198.18.1.0/24"), net("198.18.2.0/24"));
        let first: BTreeMap<(IpNet, u32), Route> = [
            ((a, 0), route("198.18.0.1", 1, 0)),
            ((b, 10), route("198.18.0.1", 1, 10)),
        ]
        .into();
        assert_eq!(rib.replace_table(0, 10, &first).len(), 2);
        // The same dump again changes nothing.
        assert!(rib.replace_table(0, 10, &first).is_empty());
        // Another table of the same subscriber is left alone.
        let other: BTreeMap<(IpNet, u32), Route> = [((a, 5), route("198.18.0.9", 1, 5))].into();
        rib.replace_table(0, 11, &other);
        let second: BTreeMap<(IpNet, u32), Route> = [((b, 10), route("198.18.0.1", 1, 10))].into();
        let changes = rib.replace_table(0, 10, &second);
        assert_eq!(
            changes,
            [Change {
                prefix: a,
                best: Some(route("198.18.0.9", 1, 5))
            }]
        );
    }

    #[test]
    fn connected_routes_rank_before_static_and_bgp() {
        assert!(kernel_distance(2) < kernel_distance(4));
        assert!(kernel_distance(4) < kernel_distance(186));
        assert_eq!(kernel_distance(186), 20);
    }
}
