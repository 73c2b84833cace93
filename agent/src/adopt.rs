//! Pods running on this node that the agent has no record of: wired by sart before this agent
//! took over, or by this agent before its records were lost (a wiped `--cni-state-dir`). Their
//! addresses are still in use, so before serving an ADD the agent records them as it would its
//! own; nothing is handed out twice. Pure: the pods (from the API) and the pod routes (from the
//! kernel) come in, the records to keep and the routes to move come out.
//!
//! sart's trace in the kernel: a host veth whose alias is `<pool>/<container id>/<ifname>` and a
//! scope-link route to each pod address through it in table 120 (with `ip rule pref 2000 lookup
//! 120`). An adopted pod of sart's gets that container id, so the runtime's DEL finds it, and
//! its routes move to the main table, where ours are; the rule goes once table 120 is empty.

use std::collections::BTreeSet;
use std::net::IpAddr;

use super::pod_store::{Stored, StoredAddress};

/// sart's table for pod routes.
pub(crate) const SART_TABLE: u32 = 120;
/// The main table, where ours are.
pub(crate) const MAIN_TABLE: u32 = 254;

/// A pod of this node as the API shows it (not host-network, not finished).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RunningPod {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub ips: Vec<IpAddr>,
}

/// A host route to a pod address (a /32 or /128 of the pod route protocol) on this node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PodRoute {
    pub ip: IpAddr,
    pub table: u32,
    /// The host veth it goes through, and that veth's alias.
    pub link: String,
    pub alias: Option<String>,
}

/// One pod taken in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Adoption {
    pub stored: Stored,
    /// Addresses whose route is in sart's table: to be moved to the main table, through
    /// `stored.host_ifname`.
    pub migrate: Vec<IpAddr>,
}

/// `<pool>/<container id>/<ifname>`, sart's alias on the host veths it made.
pub(crate) fn sart_alias(alias: &str) -> Option<(&str, &str)> {
    let mut parts = alias.split('/');
    let (_pool, cid, ifname) = (parts.next()?, parts.next()?, parts.next()?);
    (parts.next().is_none() && !cid.is_empty() && !ifname.is_empty()).then_some((cid, ifname))
}

/// The pods to adopt: each running pod's addresses that no record holds and that lie in one of
/// this node's blocks (`block_of`), with the host veth the kernel routes them through, if any.
/// A pod some record already names (`recorded_pods`, by namespace and name) is left: its status
/// may still show the addresses of a sandbox it had before. An address is adopted once, for the
/// first pod (by namespace and name) that shows it.
pub(crate) fn plan(
    pods: &[RunningPod],
    recorded: &BTreeSet<IpAddr>,
    recorded_pods: &BTreeSet<(String, String)>,
    routes: &[PodRoute],
    block_of: impl Fn(IpAddr) -> Option<String>,
    now: u64,
) -> Vec<Adoption> {
    let mut pods: Vec<&RunningPod> = pods
        .iter()
        .filter(|p| !recorded_pods.contains(&(p.namespace.clone(), p.name.clone())))
        .collect();
    pods.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    let mut taken = recorded.clone();
    let mut out = Vec::new();
    for p in pods {
        let addresses: Vec<StoredAddress> = p
            .ips
            .iter()
            .filter(|ip| !taken.contains(ip))
            .filter_map(|ip| block_of(*ip).map(|block| StoredAddress { ip: *ip, block }))
            .collect();
        if addresses.is_empty() {
            continue;
        }
        taken.extend(addresses.iter().map(|a| a.ip));
        let route = routes
            .iter()
            .find(|r| addresses.iter().any(|a| a.ip == r.ip));
        let sarts = route.and_then(|r| r.alias.as_deref().and_then(sart_alias));
        let key = if p.uid.is_empty() {
            format!("{}.{}", p.namespace, p.name)
        } else {
            p.uid.clone()
        };
        let (container_id, ifname) = match sarts {
            Some((cid, ifname)) => (cid.to_owned(), ifname.to_owned()),
            None => (format!("adopted-{key}"), "eth0".to_owned()),
        };
        let host_ifname = route.map_or_else(|| format!("adopted-{key}"), |r| r.link.clone());
        let migrate = routes
            .iter()
            .filter(|r| r.table == SART_TABLE && r.link == host_ifname)
            .filter(|r| addresses.iter().any(|a| a.ip == r.ip))
            .map(|r| r.ip)
            .collect();
        out.push(Adoption {
            stored: Stored {
                container_id,
                ifname,
                // Unknown: the runtime's CNI GC (per network) leaves it; DEL and the leak GC
                // free it.
                network: String::new(),
                netns: String::new(),
                pod_namespace: p.namespace.clone(),
                pod_name: p.name.clone(),
                host_ifname,
                addresses,
                pod_uid: p.uid.clone(),
                created: now,
            },
            migrate,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn pod(name: &str, ips: &[&str]) -> RunningPod {
        RunningPod {
            namespace: "default".into(),
            name: name.into(),
            uid: format!("uid-{name}"),
            ips: ips.iter().map(|s| ip(s)).collect(),
        }
    }

    /// 198.18.40.0/29 is this node's block.
    fn block_of(a: IpAddr) -> Option<String> {
        let n: ipnet::IpNet = "198.18.40.0/29".parse().unwrap();
        n.contains(&a).then(|| "pods-0".to_owned())
    }

    #[test]
    fn sarts_pod_keeps_its_container_id_and_moves_its_route() {
        let routes = [PodRoute {
            ip: ip("198.18.40.2"),
            table: SART_TABLE,
            link: "veth1234abcd".into(),
            alias: Some("pods/1234abcd5678/eth0".into()),
        }];
        let a = plan(
            &[pod("web-0", &["198.18.40.2"])],
            &BTreeSet::new(),
            &BTreeSet::new(),
            &routes,
            block_of,
            7,
        );
        assert_eq!(a.len(), 1);
        let s = &a[0].stored;
        assert_eq!(
            (s.container_id.as_str(), s.ifname.as_str()),
            ("1234abcd5678", "eth0")
        );
        assert_eq!(s.host_ifname, "veth1234abcd");
        assert_eq!(s.addresses[0].block, "pods-0");
        assert_eq!((s.pod_uid.as_str(), s.created), ("uid-web-0", 7));
        assert_eq!(a[0].migrate, [ip("198.18.40.2")]);
    }

    #[test]
    fn our_own_pod_without_a_record_keeps_its_veth_and_route() {
        let routes = [PodRoute {
            ip: ip("198.18.40.1"),
            table: MAIN_TABLE,
            link: "veth0123456789a".into(),
            alias: Some("sart-cni:eth0".into()),
        }];
        let a = plan(
            &[pod("db-0", &["198.18.40.1", "fd00:40::1"])],
            &BTreeSet::new(),
            &BTreeSet::new(),
            &routes,
            block_of,
            0,
        );
        let s = &a[0].stored;
        assert_eq!(s.container_id, "adopted-uid-db-0");
        assert_eq!(s.host_ifname, "veth0123456789a");
        // Only what lies in this node's blocks.
        assert_eq!(s.addresses.len(), 1);
        assert!(a[0].migrate.is_empty());
    }

    #[test]
    fn recorded_foreign_and_doubly_claimed_addresses_are_left() {
        let recorded = BTreeSet::from([ip("198.18.40.1")]);
        let pods = [
            pod("a", &["198.18.40.1"]),
            pod("b", &["198.18.99.1"]),
            pod("c", &["198.18.40.3"]),
            pod("d", &["198.18.40.3"]),
            // Recorded with a new address; its status still shows the old one.
            pod("e", &["198.18.40.5"]),
        ];
        let known = BTreeSet::from([("default".to_owned(), "e".to_owned())]);
        let a = plan(&pods, &recorded, &known, &[], block_of, 0);
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].stored.pod_name, "c");
        assert_eq!(a[0].stored.host_ifname, "adopted-uid-c");
    }

    #[test]
    fn only_sarts_three_part_alias_names_a_container() {
        assert_eq!(sart_alias("pods/abc/eth0"), Some(("abc", "eth0")));
        assert_eq!(sart_alias("sart-cni:eth0"), None);
        assert_eq!(sart_alias("a/b"), None);
        assert_eq!(sart_alias("a/b/c/d"), None);
        assert_eq!(sart_alias("a//eth0"), None);
    }
}
