//! Egress NAT for pods: pod pools with `natOutgoing: true` have their pods' traffic to anywhere
//! outside every pod pool (and the agent's `--no-masquerade` prefixes) masqueraded to the node's
//! address, for clusters whose routers do not route pod addresses.
//!
//! The agent owns one nftables table, `inet sart_nat`, and nothing else. [`ruleset`] is a pure
//! function of the pools; [`apply`] replaces the whole table in one nft transaction (add, delete,
//! then build it again: atomic, and idempotent whatever was there), or removes it when no pool
//! asks for NAT. It goes through the `nftables` crate, which drives `nft -j`.

use ipnet::IpNet;
use serde_json::{Value, json};

pub(crate) const TABLE: &str = "sart_nat";

#[derive(Debug, thiserror::Error)]
pub(crate) enum NatError {
    #[error("nftables ruleset: {0}")]
    Schema(#[from] serde_json::Error),
    #[error("nft: {0}")]
    Nft(#[from] nftables::helper::NftablesError),
}

/// What the table should hold: the prefixes whose pods are masqueraded, and those never
/// masqueraded to.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Want {
    pub masquerade: Vec<IpNet>,
    pub exempt: Vec<IpNet>,
}

impl Want {
    /// From every valid pod pool (`(cidr, natOutgoing)`) and the extra exempt prefixes.
    pub(crate) fn new(pools: &[(IpNet, bool)], extra: &[IpNet]) -> Want {
        let mut masquerade: Vec<IpNet> = pools
            .iter()
            .filter(|(_, nat)| *nat)
            .map(|(c, _)| c.trunc())
            .collect();
        let mut exempt: Vec<IpNet> = pools
            .iter()
            .map(|(c, _)| c.trunc())
            .chain(extra.iter().map(IpNet::trunc))
            .collect();
        masquerade.sort();
        masquerade.dedup();
        // Interval sets refuse overlapping elements: keep only the outermost prefixes.
        exempt = IpNet::aggregate(&exempt);
        Want { masquerade, exempt }
    }
}

fn prefix(n: &IpNet) -> Value {
    json!({"prefix": {"addr": n.addr().to_string(), "len": n.prefix_len()}})
}

fn commands(want: &Want) -> Vec<Value> {
    let t = json!({"family": "inet", "name": TABLE});
    // "add" first so that "delete" never fails on a table that is not there.
    let mut cmds = vec![
        json!({"add": {"table": t}}),
        json!({"delete": {"table": t}}),
    ];
    if want.masquerade.is_empty() {
        return cmds;
    }
    cmds.push(json!({"add": {"table": t}}));
    cmds.push(
        json!({"add": {"chain": {"family": "inet", "table": TABLE, "name": "postrouting",
        "type": "nat", "hook": "postrouting", "prio": 100, "policy": "accept"}}}),
    );
    for (proto, set, v4) in [("ip", "exempt4", true), ("ip6", "exempt6", false)] {
        let exempt: Vec<Value> = want
            .exempt
            .iter()
            .filter(|n| matches!(n, IpNet::V4(_)) == v4)
            .map(prefix)
            .collect();
        let sources: Vec<Value> = want
            .masquerade
            .iter()
            .filter(|n| matches!(n, IpNet::V4(_)) == v4)
            .map(prefix)
            .collect();
        if sources.is_empty() {
            continue;
        }
        let mut s = json!({"family": "inet", "table": TABLE, "name": set,
            "type": if v4 { "ipv4_addr" } else { "ipv6_addr" }, "flags": ["interval"]});
        if !exempt.is_empty() {
            s["elem"] = Value::Array(exempt);
        }
        cmds.push(json!({"add": {"set": s}}));
        cmds.push(
            json!({"add": {"rule": {"family": "inet", "table": TABLE, "chain": "postrouting",
            "expr": [
                {"match": {"op": "==", "left": {"payload": {"protocol": proto, "field": "saddr"}},
                    "right": {"set": sources}}},
                {"match": {"op": "!=", "left": {"payload": {"protocol": proto, "field": "daddr"}},
                    "right": format!("@{set}")}},
                {"masquerade": null}
            ]}}}),
        );
    }
    cmds
}

/// The nft JSON for `want` (as `nft -j -f` reads it).
pub(crate) fn ruleset(want: &Want) -> Value {
    json!({"nftables": commands(want)})
}

/// Puts the table in the state `want` says, in the calling process's network namespace.
pub(crate) fn apply(want: &Want) -> Result<(), NatError> {
    let r: nftables::schema::Nftables = serde_json::from_value(ruleset(want))?;
    nftables::helper::apply_ruleset(&r)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn only_pools_that_ask_are_masqueraded() {
        let w = Want::new(
            &[
                (net("198.18.64.0/24"), true),
                (net("198.18.65.0/24"), false),
                (net("fd00:64::/64"), false),
            ],
            &[net("10.96.0.0/12"), net("198.18.64.0/25")],
        );
        assert_eq!(w.masquerade, [net("198.18.64.0/24")]);
        // Every pod pool and the extra prefixes are exempt, merged where they overlap.
        assert_eq!(
            w.exempt,
            [
                net("10.96.0.0/12"),
                net("198.18.64.0/23"),
                net("fd00:64::/64")
            ]
        );
        let r = ruleset(&w);
        let cmds = r["nftables"].as_array().unwrap();
        // add, delete, add table, chain, one set and one rule (no IPv6 pool asks).
        assert_eq!(cmds.len(), 6);
        assert_eq!(cmds[4]["add"]["set"]["name"], "exempt4");
        assert_eq!(
            cmds[5]["add"]["rule"]["expr"][0]["match"]["right"]["set"][0]["prefix"]["addr"],
            "198.18.64.0"
        );
        // The crate's schema takes it.
        serde_json::from_value::<nftables::schema::Nftables>(r).unwrap();
    }

    #[test]
    fn no_pool_asking_removes_the_table() {
        let w = Want::new(&[(net("198.18.64.0/24"), false)], &[]);
        assert!(w.masquerade.is_empty());
        let r = ruleset(&w);
        let cmds = r["nftables"].as_array().unwrap();
        assert_eq!(cmds.len(), 2);
        assert!(cmds[1].get("delete").is_some());
    }
}
