//! Which peers announce a Service's addresses, as pure functions. `externalTrafficPolicy:
//! Cluster` announces from every node's peers; `Local` only from the peers of nodes with a ready
//! endpoint (EndpointSlice conditions), so traffic never lands on a node that would drop it.
//! The `bgppeer.sart.terassyi.net/group` annotation narrows the peers to those in the groups.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::ResourceExt;

use super::lb_service::LbService;
use k8s::crd::{AdvertiseStatus, BGPPeer, SERVICE_NAME_LABEL};

/// Name of the advertisement of `ip` for a Service: `<service>-<address with . and : as ->`.
/// An IPv6 address that ends in `::` is written as ending in `::0`: a name must end in a letter
/// or digit (RFC 1123).
pub(crate) fn name(service: &str, ip: IpAddr) -> String {
    let mut text = ip.to_string();
    if text.ends_with(':') {
        text.push('0');
    }
    format!("{service}-{}", text.replace(['.', ':'], "-"))
}

/// What [`ready_nodes`] reads of a slice, for the cache: its name, namespace and labels, and of
/// each endpoint its node and readiness (a slice of 100 pods is mostly addresses and pod
/// references).
pub(crate) fn trim_slice(s: &mut EndpointSlice) {
    s.metadata.annotations = None;
    s.metadata.owner_references = None;
    s.ports = None;
    for e in s.endpoints.iter_mut().flatten() {
        let ready = e.conditions.as_ref().and_then(|c| c.ready);
        *e = k8s_openapi::api::discovery::v1::Endpoint {
            node_name: e.node_name.take(),
            conditions: Some(k8s_openapi::api::discovery::v1::EndpointConditions {
                ready,
                ..Default::default()
            }),
            ..Default::default()
        };
    }
}

/// Nodes with at least one ready endpoint of the Service.
pub(crate) fn ready_nodes(svc: &LbService, slices: &[EndpointSlice]) -> BTreeSet<String> {
    let ns = svc.namespace();
    let name = svc.name_any();
    slices
        .iter()
        .filter(|s| s.namespace() == ns)
        .filter(|s| s.labels().get(SERVICE_NAME_LABEL) == Some(&name))
        .flat_map(|s| s.endpoints.iter().flatten())
        // A missing `ready` means ready (the API's convention).
        .filter(|e| e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true))
        .filter_map(|e| e.node_name.clone())
        .collect()
}

/// The BGPPeers (by name) that should announce the Service's addresses.
pub(crate) fn target_peers(
    svc: &LbService,
    peers: &[BGPPeer],
    slices: &[EndpointSlice],
) -> BTreeSet<String> {
    let groups = &svc.groups;
    let nodes = svc.local.then(|| ready_nodes(svc, slices));
    peers
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        // sart's rule: a peer without groups, or a Service without the annotation, matches.
        .filter(|p| match (&p.spec.settings.groups, groups.is_empty()) {
            (_, true) | (None, _) => true,
            (Some(pg), false) => pg.iter().any(|g| groups.contains(g)),
        })
        .filter(|p| {
            nodes
                .as_ref()
                .is_none_or(|n| n.contains(&p.spec.node_bgp_ref))
        })
        .map(|p| p.name_any())
        .collect()
}

/// The next `status.peers`: targets that are new or were being withdrawn start over at
/// `NotAdvertised`; peers no longer targeted go to `Withdraw` (the agent drops the entry once the
/// prefix is gone); everything else is left as the agents wrote it.
pub(crate) fn next_status(
    current: &BTreeMap<String, AdvertiseStatus>,
    targets: &BTreeSet<String>,
) -> BTreeMap<String, AdvertiseStatus> {
    let mut next = current.clone();
    for t in targets {
        match current.get(t) {
            Some(AdvertiseStatus::Advertised | AdvertiseStatus::NotAdvertised) => {}
            _ => {
                next.insert(t.clone(), AdvertiseStatus::NotAdvertised);
            }
        }
    }
    for (p, st) in current {
        if !targets.contains(p) && *st != AdvertiseStatus::Withdraw {
            next.insert(p.clone(), AdvertiseStatus::Withdraw);
        }
    }
    next
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use k8s::crd::{BGPPeerSpec, PeerSettings};
    use serde_json::json;

    fn peer(name: &str, node: &str, groups: Option<&[&str]>) -> BGPPeer {
        BGPPeer::new(
            name,
            BGPPeerSpec {
                asn: 65000,
                addr: "198.18.0.1".into(),
                node_bgp_ref: node.into(),
                settings: PeerSettings {
                    groups: groups.map(|g| g.iter().map(|s| s.to_string()).collect()),
                    ..Default::default()
                },
                ..BGPPeerSpec::default()
            },
        )
    }

    use k8s::crd::bgp_peer::GROUP_ANNOTATION;

    fn svc(etp: &str, groups: Option<&str>) -> LbService {
        let ann = groups.map_or(json!({}), |g| json!({GROUP_ANNOTATION: g}));
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "d", "annotations": ann},
            "spec": {"type": "LoadBalancer", "externalTrafficPolicy": etp}
        }))
        .unwrap()
    }

    fn slice(ready: &[(&str, Option<bool>)]) -> EndpointSlice {
        let eps: Vec<_> = ready
            .iter()
            .map(|(n, r)| json!({"addresses": ["100.64.0.1"], "nodeName": n, "conditions": {"ready": r}}))
            .collect();
        serde_json::from_value(json!({
            "metadata": {"name": "web-abc", "namespace": "d",
                "labels": {"kubernetes.io/service-name": "web"}},
            "addressType": "IPv4", "endpoints": eps
        }))
        .unwrap()
    }

    #[test]
    fn cluster_uses_every_peer_local_only_ready_nodes() {
        let peers = [
            peer("n1-a", "n1", None),
            peer("n2-a", "n2", None),
            peer("n3-a", "n3", None),
        ];
        let slices = [slice(&[
            ("n1", Some(true)),
            ("n2", Some(false)),
            ("n3", None),
        ])];
        assert_eq!(
            target_peers(&svc("Cluster", None), &peers, &slices).len(),
            3
        );
        let local: Vec<String> = target_peers(&svc("Local", None), &peers, &slices)
            .into_iter()
            .collect();
        assert_eq!(local, ["n1-a", "n3-a"]);
        // The last ready endpoint gone: nobody announces.
        assert!(target_peers(&svc("Local", None), &peers, &[]).is_empty());
    }

    #[test]
    fn a_trimmed_slice_gives_the_same_nodes_and_keeps_no_addresses() {
        let full = slice(&[("n1", Some(true)), ("n2", Some(false)), ("n3", None)]);
        let mut trimmed = full.clone();
        trim_slice(&mut trimmed);
        let svc = svc("Local", None);
        assert_eq!(
            ready_nodes(&svc, &[trimmed.clone()]),
            ready_nodes(&svc, &[full])
        );
        assert_eq!(ready_nodes(&svc, &[trimmed.clone()]).len(), 2);
        let eps = trimmed.endpoints.unwrap();
        assert!(eps.iter().all(|e| e.addresses.is_empty()));
    }

    #[test]
    fn groups_narrow_the_peers() {
        let peers = [
            peer("a", "n1", Some(&["tor"])),
            peer("b", "n1", Some(&["spine"])),
            peer("c", "n1", None),
        ];
        let t: Vec<String> = target_peers(&svc("Cluster", Some("tor")), &peers, &[])
            .into_iter()
            .collect();
        assert_eq!(t, ["a", "c"]);
    }

    #[test]
    fn status_transitions() {
        use AdvertiseStatus::*;
        let current = BTreeMap::from([
            ("kept".to_string(), Advertised),
            ("gone".to_string(), Advertised),
            ("back".to_string(), Withdraw),
            ("leaving".to_string(), Withdraw),
        ]);
        let targets: BTreeSet<String> = ["kept", "back", "new"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let next = next_status(&current, &targets);
        assert_eq!(next["kept"], Advertised);
        assert_eq!(next["gone"], Withdraw);
        assert_eq!(next["back"], NotAdvertised);
        assert_eq!(next["new"], NotAdvertised);
        assert_eq!(next["leaving"], Withdraw);
        assert_eq!(name("web", "fd00::1".parse().unwrap()), "web-fd00--1");
        // Found by the lab: the first address of fd00:198:18:200::/120 made an invalid name.
        assert_eq!(
            name("web", "fd00:198:18:200::".parse().unwrap()),
            "web-fd00-198-18-200--0"
        );
        assert_eq!(name("web", "::".parse().unwrap()), "web---0");
    }
}
