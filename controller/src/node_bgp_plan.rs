//! What NodeBGP (and which BGPPeers) a node should have, as a pure function of the node, the
//! ClusterBGPs and the BGPPeerTemplates. A node is selected when it carries every label of a
//! ClusterBGP's `nodeSelector` (sart matched any one label); a peer entry applies when the node
//! carries every label of its `nodeBGPSelector`.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::Node;
use kube::ResourceExt;

use k8s::crd::cluster_bgp::{ASN_LABEL, ROUTER_ID_LABEL};
use k8s::crd::{
    AsnSelectionType, BGPPeerSlim, BGPPeerSpec, BGPPeerTemplateSpec, ClusterBGP, NodeBGPSpec,
    PeerConfig, RouterIdSelectionType,
};

/// The node's NodeBGP, and the ClusterBGPs it comes from.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Plan {
    pub spec: NodeBGPSpec,
    pub cluster_bgps: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum PlanError {
    #[error("ClusterBGP {cluster_bgp}: {what}")]
    Invalid { cluster_bgp: String, what: String },
    #[error("ClusterBGPs {first} and {second} give node {node} different {what}")]
    Conflict {
        node: String,
        first: String,
        second: String,
        what: &'static str,
    },
}

fn selected(
    labels: &BTreeMap<String, String>,
    selector: Option<&BTreeMap<String, String>>,
) -> bool {
    selector.is_none_or(|s| s.iter().all(|(k, v)| labels.get(k) == Some(v)))
}

/// ClusterBGPs (by name) that select the node.
pub(crate) fn selecting<'a>(node: &Node, cluster_bgps: &'a [ClusterBGP]) -> Vec<&'a ClusterBGP> {
    let mut v: Vec<&ClusterBGP> = cluster_bgps
        .iter()
        .filter(|c| c.metadata.deletion_timestamp.is_none())
        .filter(|c| selected(node.labels(), c.spec.node_selector.as_ref()))
        .collect();
    v.sort_by_key(|c| c.name_any());
    v
}

/// The first IPv4 `InternalIP` of the node.
pub(crate) fn internal_ipv4(node: &Node) -> Option<Ipv4Addr> {
    node.status
        .as_ref()?
        .addresses
        .as_ref()?
        .iter()
        .filter(|a| a.type_ == "InternalIP")
        .find_map(|a| a.address.parse().ok())
}

fn invalid(c: &ClusterBGP, what: String) -> PlanError {
    PlanError::Invalid {
        cluster_bgp: c.name_any(),
        what,
    }
}

fn asn_of(node: &Node, c: &ClusterBGP) -> Result<u32, PlanError> {
    let asn = match c.spec.asn_selector.from {
        AsnSelectionType::Asn => c
            .spec
            .asn_selector
            .asn
            .ok_or_else(|| invalid(c, "asnSelector.asn is required with from: asn".into()))?,
        AsnSelectionType::Label => {
            let v = node.labels().get(ASN_LABEL).ok_or_else(|| {
                invalid(
                    c,
                    format!("node {} has no {ASN_LABEL} label", node.name_any()),
                )
            })?;
            v.parse().map_err(|_| {
                invalid(
                    c,
                    format!(
                        "node {} label {ASN_LABEL}={v:?} is not an AS number",
                        node.name_any()
                    ),
                )
            })?
        }
    };
    if asn == 0 {
        return Err(invalid(c, "AS 0 is reserved".into()));
    }
    Ok(asn)
}

fn router_id_of(node: &Node, c: &ClusterBGP) -> Result<Ipv4Addr, PlanError> {
    let sel = &c.spec.router_id_selector;
    let parse = |v: &str, from: &str| {
        v.parse::<Ipv4Addr>()
            .map_err(|_| invalid(c, format!("{from} {v:?} is not an IPv4 address")))
    };
    match sel.from {
        RouterIdSelectionType::InternalAddress => internal_ipv4(node).ok_or_else(|| {
            invalid(
                c,
                format!("node {} has no IPv4 InternalIP", node.name_any()),
            )
        }),
        RouterIdSelectionType::Label => {
            let v = node.labels().get(ROUTER_ID_LABEL).ok_or_else(|| {
                invalid(
                    c,
                    format!("node {} has no {ROUTER_ID_LABEL} label", node.name_any()),
                )
            })?;
            parse(v, ROUTER_ID_LABEL)
        }
        RouterIdSelectionType::RouterId => {
            let v = sel.router_id.as_deref().ok_or_else(|| {
                invalid(
                    c,
                    "routerIdSelector.routerId is required with from: routerId".into(),
                )
            })?;
            parse(v, "routerIdSelector.routerId")
        }
    }
}

/// sart's rule: the template gives every field, `peerConfig` overrides `asn` and `addr` (and,
/// additively, whatever else it sets).
fn peer(
    node: &str,
    c: &ClusterBGP,
    pc: &PeerConfig,
    templates: &BTreeMap<String, BGPPeerTemplateSpec>,
) -> Result<BGPPeerSlim, PlanError> {
    let mut t = match &pc.peer_template_ref {
        Some(name) => templates
            .get(name)
            .cloned()
            .ok_or_else(|| invalid(c, format!("BGPPeerTemplate {name} does not exist")))?,
        None => BGPPeerTemplateSpec::default(),
    };
    if let Some(o) = &pc.peer_config {
        t.asn = o.asn.or(t.asn);
        t.addr = o.addr.clone().or(t.addr);
        t.settings = o.settings.clone().or(t.settings);
    }
    let asn = t
        .asn
        .filter(|a| *a != 0)
        .ok_or_else(|| invalid(c, "a peer has no asn".into()))?;
    let addr = t
        .addr
        .filter(|a| a.parse::<std::net::IpAddr>().is_ok())
        .ok_or_else(|| invalid(c, "a peer has no valid addr".into()))?;
    let name = match &pc.peer_template_ref {
        Some(tmpl) => format!("{tmpl}-{node}-{asn}-{addr}"),
        None => format!("{node}-{asn}-{addr}"),
    };
    Ok(BGPPeerSlim {
        // Object names may not contain ':' (IPv6 peers).
        name: name.replace(':', "-"),
        spec: BGPPeerSpec {
            asn,
            addr,
            node_bgp_ref: node.to_owned(),
            cluster_bgp_ref: Some(c.name_any()),
            speaker: c.spec.speaker.clone(),
            settings: t.settings,
        },
    })
}

/// The node's NodeBGP; `None` when no ClusterBGP selects it.
pub(crate) fn plan(
    node: &Node,
    cluster_bgps: &[ClusterBGP],
    templates: &BTreeMap<String, BGPPeerTemplateSpec>,
) -> Result<Option<Plan>, PlanError> {
    let name = node.name_any();
    let mut out: Option<(Plan, String)> = None;
    for c in selecting(node, cluster_bgps) {
        let asn = asn_of(node, c)?;
        let router_id = router_id_of(node, c)?.to_string();
        let mut peers = Vec::new();
        for pc in c.spec.peers.iter().flatten() {
            if selected(node.labels(), pc.node_bgp_selector.as_ref()) {
                peers.push(peer(&name, c, pc, templates)?);
            }
        }
        match &mut out {
            None => {
                out = Some((
                    Plan {
                        spec: NodeBGPSpec {
                            asn,
                            router_id,
                            speaker: c.spec.speaker.clone(),
                            peers: Some(peers),
                        },
                        cluster_bgps: vec![c.name_any()],
                    },
                    c.name_any(),
                ))
            }
            Some((p, first)) => {
                let conflict = |what| PlanError::Conflict {
                    node: name.clone(),
                    first: first.clone(),
                    second: c.name_any(),
                    what,
                };
                if p.spec.asn != asn {
                    return Err(conflict("AS numbers"));
                }
                if p.spec.router_id != router_id {
                    return Err(conflict("router ids"));
                }
                if p.spec.speaker.path != c.spec.speaker.path {
                    return Err(conflict("speaker endpoints"));
                }
                let list = p.spec.peers.get_or_insert_with(Vec::new);
                for np in peers {
                    if !list.iter().any(|q| q.name == np.name) {
                        list.push(np);
                    }
                }
                p.cluster_bgps.push(c.name_any());
            }
        }
    }
    Ok(out.map(|(mut p, _)| {
        if let Some(list) = p.spec.peers.as_mut() {
            list.sort_by(|a, b| a.name.cmp(&b.name));
        }
        p
    }))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use k8s::crd::PeerSettings;
    use serde_json::json;

    fn node(name: &str, labels: serde_json::Value, ip: &str) -> Node {
        serde_json::from_value(json!({
            "metadata": {"name": name, "labels": labels},
            "status": {"addresses": [{"type": "Hostname", "address": name},
                                      {"type": "InternalIP", "address": ip}]}
        }))
        .unwrap()
    }

    fn cluster_bgp(name: &str, spec: serde_json::Value) -> ClusterBGP {
        serde_json::from_value(json!({"apiVersion": "sart.terassyi.net/v1alpha2",
            "kind": "ClusterBGP", "metadata": {"name": name}, "spec": spec}))
        .unwrap()
    }

    fn templates() -> BTreeMap<String, BGPPeerTemplateSpec> {
        BTreeMap::from([(
            "tor".to_string(),
            BGPPeerTemplateSpec {
                asn: Some(65000),
                addr: Some("9.9.9.9".into()),
                settings: PeerSettings {
                    groups: Some(vec!["to-router0".into()]),
                    hold_time: Some(9),
                    ..Default::default()
                },
            },
        )])
    }

    /// The resilience fields travel from the template (overridden by peerConfig) to the BGPPeer.
    #[test]
    fn password_graceful_restart_and_bfd_reach_the_peer() {
        let mut tmpl = templates();
        let t = tmpl.get_mut("tor").unwrap();
        t.settings.password_secret_ref =
            serde_json::from_value(json!({"name": "tor-md5"})).unwrap();
        t.settings.graceful_restart = serde_json::from_value(json!({"restartTime": 60})).unwrap();
        let c = cluster_bgp(
            "a",
            json!({"nodeSelector": {"bgp": "a"}, "asnSelector": {"from": "asn", "asn": 65000},
                "routerIdSelector": {"from": "internalAddress"},
                "speaker": {"path": "127.0.0.1:5000"},
                "peers": [{"peerTemplateRef": "tor", "nodeBGPSelector": {"bgp": "a"},
                           "peerConfig": {"bfd": {"intervalMs": 100}}}]}),
        );
        let n = node("w1", json!({"bgp": "a"}), "10.0.0.11");
        let p = plan(&n, std::slice::from_ref(&c), &tmpl).unwrap().unwrap();
        let spec = &p.spec.peers.unwrap()[0].spec;
        let pw = spec.settings.password_secret_ref.as_ref().unwrap();
        assert_eq!(
            (pw.name.as_str(), pw.namespace.as_deref(), pw.key()),
            ("tor-md5", None, "password")
        );
        assert_eq!(
            spec.settings
                .graceful_restart
                .as_ref()
                .unwrap()
                .restart_time,
            Some(60)
        );
        assert_eq!(spec.settings.bfd.as_ref().unwrap().interval_ms, Some(100));
        assert_eq!(spec.settings.bfd.as_ref().unwrap().multiplier, None);
    }

    #[test]
    fn sart_sample_gives_one_peer_from_the_template() {
        let c = cluster_bgp(
            "a",
            json!({"nodeSelector": {"bgp": "a"}, "asnSelector": {"from": "asn", "asn": 65000},
                "routerIdSelector": {"from": "internalAddress"},
                "speaker": {"path": "127.0.0.1:5000"},
                "peers": [{"peerTemplateRef": "tor", "nodeBGPSelector": {"bgp": "a"}},
                          {"peerTemplateRef": "tor", "peerConfig": {"addr": "7.7.7.7"},
                           "nodeBGPSelector": {"rack": "2"}}]}),
        );
        let n = node("w1", json!({"bgp": "a"}), "10.0.0.11");
        let p = plan(&n, std::slice::from_ref(&c), &templates())
            .unwrap()
            .unwrap();
        assert_eq!(p.spec.asn, 65000);
        assert_eq!(p.spec.router_id, "10.0.0.11");
        let peers = p.spec.peers.unwrap();
        assert_eq!(peers.len(), 1, "the rack=2 entry does not apply");
        assert_eq!(peers[0].name, "tor-w1-65000-9.9.9.9");
        assert_eq!(peers[0].spec.settings.hold_time, Some(9));
        assert_eq!(peers[0].spec.cluster_bgp_ref.as_deref(), Some("a"));
        // A node without the label is not selected (all labels must match).
        let other = node("w2", json!({"bgp": "b"}), "10.0.0.12");
        assert_eq!(plan(&other, &[c], &templates()).unwrap(), None);
    }

    #[test]
    fn labels_supply_asn_and_router_id_and_errors_name_the_problem() {
        let c = cluster_bgp(
            "l",
            json!({"asnSelector": {"from": "label"}, "routerIdSelector": {"from": "label"},
                "speaker": {"path": "127.0.0.1:5000"},
                "peers": [{"peerConfig": {"asn": 65001, "addr": "fd00::1"}}]}),
        );
        let n = node(
            "w1",
            json!({ASN_LABEL: "4200000001", ROUTER_ID_LABEL: "1.1.1.1"}),
            "10.0.0.11",
        );
        let p = plan(&n, std::slice::from_ref(&c), &BTreeMap::new())
            .unwrap()
            .unwrap();
        assert_eq!(
            (p.spec.asn, p.spec.router_id.as_str()),
            (4200000001, "1.1.1.1")
        );
        assert_eq!(p.spec.peers.unwrap()[0].name, "w1-65001-fd00--1");
        let bad = node("w2", json!({ASN_LABEL: "x"}), "10.0.0.12");
        let e = plan(&bad, &[c], &BTreeMap::new()).unwrap_err().to_string();
        assert!(e.contains("is not an AS number"), "{e}");
    }

    #[test]
    fn two_cluster_bgps_merge_peers_or_conflict() {
        let spec = |asn: u32, addr: &str| {
            json!({"asnSelector": {"from": "asn", "asn": asn},
                "routerIdSelector": {"from": "internalAddress"},
                "speaker": {"path": "127.0.0.1:5000"},
                "peers": [{"peerConfig": {"asn": 65001, "addr": addr}}]})
        };
        let n = node("w1", json!({}), "10.0.0.11");
        let p = plan(
            &n,
            &[
                cluster_bgp("x", spec(65000, "1.1.1.1")),
                cluster_bgp("y", spec(65000, "2.2.2.2")),
            ],
            &BTreeMap::new(),
        )
        .unwrap()
        .unwrap();
        assert_eq!(p.spec.peers.unwrap().len(), 2);
        assert_eq!(p.cluster_bgps, ["x", "y"]);
        let e = plan(
            &n,
            &[
                cluster_bgp("x", spec(65000, "1.1.1.1")),
                cluster_bgp("y", spec(65009, "2.2.2.2")),
            ],
            &BTreeMap::new(),
        )
        .unwrap_err();
        assert!(matches!(
            e,
            PlanError::Conflict {
                what: "AS numbers",
                ..
            }
        ));
        let e = plan(
            &n,
            &[cluster_bgp(
                "z",
                json!({"asnSelector": {"from": "asn", "asn": 1},
                "routerIdSelector": {"from": "internalAddress"}, "speaker": {"path": "x"},
                "peers": [{"peerTemplateRef": "missing"}]}),
            )],
            &BTreeMap::new(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("BGPPeerTemplate missing"), "{e}");
    }
}
