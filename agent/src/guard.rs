//! Source validation on pod interfaces: the node drops every packet a pod sends from an address
//! that is not its own, IPv4 and IPv6 alike, before anything else on the node sees it. A pod
//! with CAP_NET_RAW (containerd's default) can otherwise speak as the node's router to the
//! node's own daemons (a forged BFD Down resets a BGP session) or send forged traffic beyond.
//!
//! Every host veth the agent makes is in link group [`POD_LINK_GROUP`], and one static rule in
//! the agent's table `inet sart_guard` does a strict reverse-path check on that group, as
//! `rp_filter=1` does for IPv4 only: the source must be routed back out of the very interface
//! the packet came in on. Each pod address has its host route through its own veth, so a pod
//! passes with its addresses (and IPv6 link-local ones, for neighbour discovery) and nothing
//! else. Nothing changes per pod: a veth is guarded from the moment it exists, and goes with
//! its rule when it is deleted. Other interfaces (uplinks, other CNIs' veths) are untouched.

use serde_json::{Value, json};

/// The table, in the `inet` family; the agent owns it and nothing else touches it.
pub(crate) const TABLE: &str = "sart_guard";

/// The link group (`ip link show group 21313`) of every host veth the agent makes ("SA").
pub(crate) const POD_LINK_GROUP: u32 = 0x5341;

#[derive(Debug, thiserror::Error)]
pub enum GuardError {
    #[error("nftables ruleset: {0}")]
    Schema(#[from] serde_json::Error),
    #[error("nft (source validation of pod interfaces): {0}")]
    Nft(#[from] nftables::helper::NftablesError),
}

/// The nft JSON that (re)writes the table: added, deleted and built again in one transaction,
/// so it is atomic and idempotent whatever was there.
pub(crate) fn ruleset() -> Value {
    let t = json!({"family": "inet", "name": TABLE});
    json!({"nftables": [
        {"add": {"table": t}},
        {"delete": {"table": t}},
        {"add": {"table": t}},
        // Priority raw (-300): before conntrack and NAT, so nothing on the node sees the packet.
        {"add": {"chain": {"family": "inet", "table": TABLE, "name": "prerouting",
            "type": "filter", "hook": "prerouting", "prio": -300, "policy": "accept"}}},
        {"add": {"rule": {"family": "inet", "table": TABLE, "chain": "prerouting", "expr": [
            {"match": {"op": "==", "left": {"meta": {"key": "iifgroup"}},
                "right": POD_LINK_GROUP}},
            {"match": {"op": "==", "left": {"fib": {"result": "oif", "flags": ["saddr", "iif"]}},
                "right": false}},
            {"counter": null},
            {"drop": null}
        ]}}}
    ]})
}

/// Writes the table in the calling process's network namespace.
pub(crate) fn apply() -> Result<(), GuardError> {
    let r: nftables::schema::Nftables = serde_json::from_value(ruleset())?;
    nftables::helper::apply_ruleset(&r)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn one_rule_on_the_pod_group_that_the_nftables_schema_takes() {
        let r = ruleset();
        let cmds = r["nftables"].as_array().unwrap();
        let rules: Vec<&Value> = cmds
            .iter()
            .filter(|c| c["add"]["rule"].is_object())
            .collect();
        assert_eq!(rules.len(), 1);
        let expr = &rules[0]["add"]["rule"]["expr"];
        assert_eq!(expr[0]["match"]["right"], POD_LINK_GROUP);
        assert_eq!(expr[3], json!({"drop": null}));
        serde_json::from_value::<nftables::schema::Nftables>(r).unwrap();
    }
}
