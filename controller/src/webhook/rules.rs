//! What the admission webhooks allow and add, as pure functions of the object, its previous
//! version (on UPDATE) and the other objects of its kind. sart's rules, plus the checks sart
//! documents but never enforced: pools may not overlap, and a pool's addresses and a peer's
//! identity never change in place.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use serde_json::{Value, json};

use k8s::crd::address_block;
use k8s::crd::bgp_peer;
use k8s::crd::{AddressBlock, AddressPool, AddressType, BGPPeer, BGPPeerSpec};
use k8s::pools;
use speaker_config::{
    BfdInput, GracefulRestartInput, MaxPrefixInput, NeighborInput, PrefixRuleInput,
};

/// A pool is checked as the controller will see it once stored: against every other pool, the
/// older one winning an overlap. A new pool is the youngest.
pub(super) fn check_pool(
    new: &AddressPool,
    old: Option<&AddressPool>,
    all: &[AddressPool],
) -> Result<(), String> {
    let parsed = pools::parse(new).map_err(|e| e.to_string())?;
    if let Some(old) = old {
        // A refused old version may be fixed; a valid one keeps its addresses.
        if let Ok(was) = pools::parse(old) {
            if was.pool.cidr() != parsed.pool.cidr() {
                return Err(format!(
                    "spec.cidr is immutable ({} → {}): create another pool instead",
                    was.pool.cidr(),
                    parsed.pool.cidr()
                ));
            }
            if was.pool.block_len() != parsed.pool.block_len() {
                return Err(format!(
                    "spec.blockSize is immutable ({} → {})",
                    was.pool.block_len(),
                    parsed.pool.block_len()
                ));
            }
            if was.kind != parsed.kind {
                return Err(format!(
                    "spec.type is immutable ({} → {})",
                    was.kind, parsed.kind
                ));
            }
        }
    }
    let name = new.name_any();
    let mut candidate = new.clone();
    if candidate.metadata.creation_timestamp.is_none() {
        candidate.metadata.creation_timestamp = Some(Time(Timestamp::now()));
    }
    let mut view: Vec<AddressPool> = all
        .iter()
        .filter(|p| p.name_any() != name)
        .cloned()
        .collect();
    view.push(candidate);
    match pools::validate(&view).remove(&name) {
        Some(Err(e)) => Err(e.to_string()),
        _ => Ok(()),
    }
}

/// sart's BGPPeer rules: one peer per (asn, addr, node); those never change; the node label, if
/// set, names the peer's node. Timer values the speaker would refuse are refused here, so the
/// error reaches whoever applies the object rather than a node's log.
pub(super) fn check_peer(
    new: &BGPPeer,
    old: Option<&BGPPeer>,
    all: &[BGPPeer],
) -> Result<(), String> {
    let s = &new.spec;
    neighbor_input(s)
        .validate()
        .map_err(|e| format!("spec.{}: {}", crd_field(&e.key), e.reason))?;
    if let Some(label) = new.labels().get(bgp_peer::NODE_LABEL)
        && *label != s.node_bgp_ref
    {
        return Err(format!(
            "label {} is {label:?} but spec.nodeBGPRef is {:?}",
            bgp_peer::NODE_LABEL,
            s.node_bgp_ref
        ));
    }
    match old {
        Some(o) => {
            let o = &o.spec;
            if (o.asn, &o.addr, &o.node_bgp_ref) != (s.asn, &s.addr, &s.node_bgp_ref) {
                return Err(format!(
                    "spec.asn, spec.addr and spec.nodeBGPRef are immutable \
                     ({}, {}, {} → {}, {}, {}): create another peer instead",
                    o.asn, o.addr, o.node_bgp_ref, s.asn, s.addr, s.node_bgp_ref
                ));
            }
        }
        None => {
            if let Some(dup) = all.iter().find(|p| {
                p.name_any() != new.name_any()
                    && p.spec.asn == s.asn
                    && p.spec.addr == s.addr
                    && p.spec.node_bgp_ref == s.node_bgp_ref
            }) {
                return Err(format!(
                    "BGPPeer {} already peers with AS{} at {} from node {}",
                    dup.name_any(),
                    s.asn,
                    s.addr,
                    s.node_bgp_ref
                ));
            }
        }
    }
    Ok(())
}

/// The peer as its node's speaker will be asked to take it, for the validation every neighbour
/// goes through, so what the speaker would refuse is refused here. The MD5 and BFD keys are in
/// Secrets only the agent reads: they are left out (the schema bounds the BFD key id).
fn neighbor_input(s: &BGPPeerSpec) -> NeighborInput {
    NeighborInput {
        asn: Some(s.asn),
        address: Some(s.addr.clone()),
        hold_time: s.settings.hold_time,
        keepalive_time: s.settings.keepalive_time,
        ttl_security: s.settings.ttl_security,
        max_prefix: s
            .settings
            .max_prefix
            .as_ref()
            .map(|m| MaxPrefixInput::Full {
                limit: m.limit,
                warning_only: m.warning_only.unwrap_or(false),
                restart_after: m.restart_after,
            }),
        import: s.settings.import_prefixes.as_ref().map(|rules| {
            rules
                .iter()
                .map(|r| PrefixRuleInput {
                    prefix: r.prefix.clone(),
                    ge: r.ge,
                    le: r.le,
                    action: r.action.map(|a| a.name().to_string()),
                })
                .collect()
        }),
        graceful_restart: s
            .settings
            .graceful_restart
            .as_ref()
            .map(|g| GracefulRestartInput {
                restart_time: g.restart_time,
            }),
        bfd: s.settings.bfd.as_ref().map(|b| BfdInput {
            interval_ms: b.interval_ms,
            multiplier: b.multiplier,
            multihop: b.multihop,
            auth: None,
        }),
        ..NeighborInput::default()
    }
}

/// A neighbour field as YAML names it, as the BGPPeer names it.
fn crd_field(key: &str) -> String {
    const NAMES: [(&str, &str); 8] = [
        ("address", "addr"),
        ("hold_time", "holdTime"),
        ("keepalive_time", "keepaliveTime"),
        ("ttl_security", "ttlSecurity"),
        ("max_prefix", "maxPrefix"),
        ("import", "importPrefixes"),
        (
            "graceful_restart.restart_time",
            "gracefulRestart.restartTime",
        ),
        ("bfd.interval_ms", "bfd.intervalMs"),
    ];
    NAMES
        .iter()
        .find_map(|(yaml, crd)| key.strip_prefix(yaml).map(|rest| format!("{crd}{rest}")))
        .unwrap_or_else(|| key.to_string())
}

/// A JSON patch (RFC 6902) that sets one label, made whether or not the object has labels.
fn add_label(labels_present: bool, key: &str, value: &str) -> Value {
    if labels_present {
        // RFC 6901: `/` in a key is written `~1` (and `~` as `~0`).
        let escaped = key.replace('~', "~0").replace('/', "~1");
        json!([{"op": "add", "path": format!("/metadata/labels/{escaped}"), "value": value}])
    } else {
        json!([{"op": "add", "path": "/metadata/labels", "value": {key: value}}])
    }
}

/// The node label on a peer, when it is missing.
pub(super) fn mutate_peer(p: &BGPPeer) -> Option<Value> {
    if p.labels().contains_key(bgp_peer::NODE_LABEL) {
        return None;
    }
    Some(add_label(
        p.metadata.labels.is_some(),
        bgp_peer::NODE_LABEL,
        &p.spec.node_bgp_ref,
    ))
}

/// A pod block must name its node, and carries it as a label.
pub(super) fn mutate_block(b: &AddressBlock) -> Result<Option<Value>, String> {
    if b.spec.block_type != AddressType::Pod {
        return Ok(None);
    }
    let Some(node) = b.spec.node_ref.as_deref().filter(|n| !n.is_empty()) else {
        return Err("a pod AddressBlock needs spec.nodeRef".into());
    };
    if b.labels()
        .get(address_block::NODE_LABEL)
        .map(String::as_str)
        == Some(node)
    {
        return Ok(None);
    }
    Ok(Some(add_label(
        b.metadata.labels.is_some(),
        address_block::NODE_LABEL,
        node,
    )))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use k8s::crd::bgp_peer_template::{MaxPrefixSpec, PrefixRuleSpec};
    use k8s::crd::{AddressBlockSpec, AddressPoolSpec, BGPPeerSpec};

    fn pool(name: &str, cidr: &str, block: Option<u32>, auto: bool, age: i64) -> AddressPool {
        let mut p = AddressPool::new(
            name,
            AddressPoolSpec {
                cidr: cidr.into(),
                pool_type: AddressType::Service,
                alloc_type: None,
                block_size: block,
                auto_assign: Some(auto),
                nat_outgoing: None,
                namespace_selector: None,
            },
        );
        p.metadata.creation_timestamp = Some(Time(Timestamp::from_second(age).unwrap()));
        p
    }

    #[test]
    fn pools() {
        let a = pool("a", "198.18.0.0/24", None, true, 1);
        let all = [a.clone()];
        let mut new = pool("b", "198.18.1.0/24", None, false, 0);
        new.metadata.creation_timestamp = None;
        assert_eq!(check_pool(&new, None, &all), Ok(()));
        // Overlap and a second auto-assign pool are refused for the newcomer.
        let mut over = new.clone();
        over.spec.cidr = "198.18.0.128/25".into();
        assert!(
            check_pool(&over, None, &all)
                .unwrap_err()
                .contains("overlaps pool a")
        );
        let mut auto = new.clone();
        auto.spec.auto_assign = Some(true);
        assert!(
            check_pool(&auto, None, &all)
                .unwrap_err()
                .contains("auto-assign")
        );
        let mut bad = new.clone();
        bad.spec.cidr = "198.18.1.1/24".into();
        assert!(
            check_pool(&bad, None, &all)
                .unwrap_err()
                .contains("host bits")
        );
        bad.spec.cidr = "198.18.1.0/24".into();
        bad.spec.block_size = Some(33);
        assert!(
            check_pool(&bad, None, &all)
                .unwrap_err()
                .contains("blockSize")
        );
        // Updates: autoAssign may change, the addresses may not.
        let mut off = a.clone();
        off.spec.auto_assign = Some(false);
        assert_eq!(check_pool(&off, Some(&a), &all), Ok(()));
        let mut moved = a.clone();
        moved.spec.cidr = "198.18.8.0/24".into();
        assert!(
            check_pool(&moved, Some(&a), &all)
                .unwrap_err()
                .contains("immutable")
        );
        let mut resized = a.clone();
        resized.spec.block_size = Some(28);
        assert!(
            check_pool(&resized, Some(&a), &all)
                .unwrap_err()
                .contains("blockSize is immutable")
        );
    }

    fn peer(name: &str, asn: u32, addr: &str, node: &str) -> BGPPeer {
        BGPPeer::new(
            name,
            BGPPeerSpec {
                asn,
                addr: addr.into(),
                node_bgp_ref: node.into(),
                ..BGPPeerSpec::default()
            },
        )
    }

    #[test]
    fn peers() {
        let a = peer("a", 65000, "198.18.0.1", "n1");
        let all = [a.clone()];
        assert_eq!(
            check_peer(&peer("b", 65000, "198.18.0.1", "n2"), None, &all),
            Ok(())
        );
        let dup = check_peer(&peer("b", 65000, "198.18.0.1", "n1"), None, &all).unwrap_err();
        assert!(dup.contains("BGPPeer a already peers"), "{dup}");
        // Re-applying the same object is not a duplicate of itself.
        assert_eq!(check_peer(&a, None, &all), Ok(()));
        let mut moved = a.clone();
        moved.spec.addr = "198.18.0.2".into();
        assert!(
            check_peer(&moved, Some(&a), &all)
                .unwrap_err()
                .contains("immutable")
        );
        let mut hold = a.clone();
        hold.spec.settings.hold_time = Some(9);
        assert_eq!(check_peer(&hold, Some(&a), &all), Ok(()));
        let mut wrong = a.clone();
        wrong.metadata.labels = Some([(bgp_peer::NODE_LABEL.into(), "n9".into())].into());
        assert!(check_peer(&wrong, None, &[]).unwrap_err().contains("n9"));
        // Timers the speaker refuses, refused at the door.
        for (hold, keepalive, ok) in [
            (Some(0), None, true),
            (Some(3), Some(1), true),
            (Some(2), None, false),
            (Some(70_000), None, false),
            (Some(9), Some(4), false),
            (None, Some(30), true),
            (None, Some(31), false),
        ] {
            let mut t = a.clone();
            t.spec.settings.hold_time = hold;
            t.spec.settings.keepalive_time = keepalive;
            let r = check_peer(&t, None, &[]);
            assert_eq!(
                r.is_ok(),
                ok,
                "hold {hold:?} keepalive {keepalive:?}: {r:?}"
            );
        }
        // The speaker's reason, under the BGPPeer's name for the field.
        let mut hold2 = a.clone();
        hold2.spec.settings.hold_time = Some(2);
        assert_eq!(
            check_peer(&hold2, None, &[]),
            Err("spec.holdTime: 2 s: must be 0 or 3-65535 (RFC 4271 §4.2)".to_string())
        );
        let mut limit0 = a.clone();
        limit0.spec.settings.max_prefix = Some(MaxPrefixSpec {
            limit: 0,
            ..Default::default()
        });
        assert!(
            check_peer(&limit0, None, &[])
                .unwrap_err()
                .contains("spec.maxPrefix")
        );
        let mut bad_rule = a.clone();
        bad_rule.spec.settings.import_prefixes = Some(vec![
            PrefixRuleSpec {
                prefix: "10.0.0.0/8".into(),
                ..Default::default()
            },
            PrefixRuleSpec {
                prefix: "10.0.0.0/8".into(),
                ge: Some(33),
                ..Default::default()
            },
        ]);
        assert!(
            check_peer(&bad_rule, None, &[])
                .unwrap_err()
                .contains("spec.importPrefixes[1]")
        );
        let mut bad_addr = a.clone();
        bad_addr.spec.addr = "198.18.0.300".into();
        assert!(
            check_peer(&bad_addr, None, &[])
                .unwrap_err()
                .contains("not an IP address")
        );
    }

    #[test]
    fn labels() {
        let mut p = peer("a", 65000, "198.18.0.1", "n1");
        assert_eq!(
            mutate_peer(&p),
            Some(json!([{"op": "add", "path": "/metadata/labels",
                         "value": {"bgppeer.sart.terassyi.net/node": "n1"}}]))
        );
        p.metadata.labels = Some([("x".into(), "y".into())].into());
        assert_eq!(
            mutate_peer(&p),
            Some(json!([{"op": "add",
                "path": "/metadata/labels/bgppeer.sart.terassyi.net~1node", "value": "n1"}]))
        );
        let mut b = AddressBlock::new(
            "p-0",
            AddressBlockSpec {
                cidr: "198.18.0.0/29".into(),
                block_type: AddressType::Pod,
                pool_ref: "p".into(),
                node_ref: None,
                auto_assign: false,
                lent_from: None,
            },
        );
        assert!(mutate_block(&b).unwrap_err().contains("nodeRef"));
        b.spec.node_ref = Some("n1".into());
        assert!(mutate_block(&b).unwrap().is_some());
        b.metadata.labels = Some([(address_block::NODE_LABEL.into(), "n1".into())].into());
        assert_eq!(mutate_block(&b), Ok(None));
        b.spec.block_type = AddressType::Service;
        b.spec.node_ref = None;
        assert_eq!(mutate_block(&b), Ok(None));
    }
}
