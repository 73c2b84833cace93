//! What the agent must tell its speaker, as a pure function of what Kubernetes wants (the node's
//! NodeBGP, its BGPPeers, the BGPAdvertisements naming those peers) and what the speaker has.
//! The agent owns the speaker's neighbours and locally originated paths: whatever the cluster
//! does not ask for is removed, so a restart of either side converges without bookkeeping.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};

use ipnet::IpNet;

use k8s::crd::bgp_peer_template::{
    BfdSpec, GracefulRestartSpec, MaxPrefixSpec, PasswordSecretRef, PrefixAction, PrefixRuleSpec,
};
use k8s::crd::{AddressType, AdvertiseStatus, BGPAdvertisement, BGPPeer, NodeBGPSpec};
use speaker_config::{BfdConfig, DEFAULT_HOLD_TIME, DEFAULT_RESTART_TIME, prefix_rule};

/// A neighbour as the speaker should have it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct WantPeer {
    /// The BGPPeer's name (the speaker's neighbour name).
    pub name: String,
    pub address: IpAddr,
    pub asn: u32,
    pub hold_time: Option<u32>,
    pub keepalive_time: Option<u32>,
    pub password_secret_ref: Option<PasswordSecretRef>,
    pub graceful_restart: Option<GracefulRestartSpec>,
    pub bfd: Option<BfdSpec>,
    pub max_prefix: Option<MaxPrefixSpec>,
    pub announce_learned: bool,
    pub ttl_security: bool,
    pub import_prefixes: Vec<PrefixRuleSpec>,
}

impl WantPeer {
    /// The settings the speaker reports back, with its defaults filled in.
    pub(crate) fn knobs(&self) -> Knobs {
        let bfd_default = BfdConfig::default();
        Knobs {
            restart_time: self
                .graceful_restart
                .as_ref()
                .map(|g| g.restart_time.unwrap_or(u32::from(DEFAULT_RESTART_TIME))),
            bfd: self.bfd.as_ref().map(|b| BfdKnobs {
                interval_ms: b.interval_ms.unwrap_or(bfd_default.interval_ms),
                multiplier: b.multiplier.unwrap_or(u32::from(bfd_default.multiplier)),
                multihop: b.multihop.unwrap_or(false),
                auth: b
                    .authentication
                    .as_ref()
                    .map(|a| (a.auth_type.method(), a.key_id)),
            }),
            hold_time: self
                .hold_time
                .filter(|h| *h != 0)
                .unwrap_or(u32::from(DEFAULT_HOLD_TIME)),
            keepalive_time: self.keepalive_time.unwrap_or(0),
            max_prefix: self
                .max_prefix
                .as_ref()
                .map(|m| (m.limit, m.warning_only.unwrap_or(false), m.restart_after)),
            announce_learned: self.announce_learned,
            ttl_security: self.ttl_security,
            // As the speaker reports them back: canonical prefix, resolved lengths. A rule the
            // speaker would refuse stays as written, so it never looks applied.
            import: self
                .import_prefixes
                .iter()
                .map(|r| {
                    let action = r.action.unwrap_or_default();
                    match prefix_rule(&r.prefix, r.ge, r.le, Some(action.name())) {
                        Ok(rule) => {
                            let (ge, le) = rule.lengths();
                            ImportRule {
                                prefix: rule.prefix().to_string(),
                                ge: u32::from(ge),
                                le: u32::from(le),
                                deny: action == PrefixAction::Deny,
                            }
                        }
                        Err(_) => ImportRule {
                            prefix: r.prefix.clone(),
                            ge: r.ge.unwrap_or(u32::MAX),
                            le: r.le.unwrap_or(u32::MAX),
                            deny: action == PrefixAction::Deny,
                        },
                    }
                })
                .collect(),
        }
    }
}

/// What a neighbour is set up with and only takes effect when it is added: timers, graceful
/// restart, BFD and policy. A BGPPeer that changes any is deleted from the speaker and added
/// again, so its session restarts with them (as FRR resets a session whose timers change).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Knobs {
    /// Graceful restart's restart time; `None`: off.
    pub restart_time: Option<u32>,
    /// `None`: no BFD.
    pub bfd: Option<BfdKnobs>,
    /// Configured hold time, the speaker's default filled in.
    pub hold_time: u32,
    /// Configured keepalive; 0: a third of the hold time.
    pub keepalive_time: u32,
    /// (limit, warning only, restart after).
    pub max_prefix: Option<(u32, bool, Option<u32>)>,
    pub announce_learned: bool,
    /// GTSM (RFC 5082).
    pub ttl_security: bool,
    pub import: Vec<ImportRule>,
}

/// A neighbour with nothing set, as the speaker reports it.
impl Default for Knobs {
    fn default() -> Self {
        Knobs {
            restart_time: None,
            bfd: None,
            hold_time: u32::from(DEFAULT_HOLD_TIME),
            keepalive_time: 0,
            max_prefix: None,
            announce_learned: false,
            ttl_security: false,
            import: Vec::new(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ImportRule {
    pub prefix: String,
    pub ge: u32,
    pub le: u32,
    pub deny: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct BfdKnobs {
    pub interval_ms: u32,
    pub multiplier: u32,
    pub multihop: bool,
    /// Method and key id; the key itself is never reported back (a new one takes effect when
    /// the peer is re-created, as a new TCP MD5 password does).
    pub auth: Option<(bfd::Method, u32)>,
}

/// A neighbour as the speaker has it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct HavePeer {
    pub address: IpAddr,
    pub asn: u32,
    pub name: String,
    pub knobs: Knobs,
    /// The speaker reports configured timers and policy. One from before that (met while a
    /// DaemonSet rolls) is compared on graceful restart and BFD only: else every sync would
    /// restart its sessions over values it cannot show.
    pub full: bool,
}

impl HavePeer {
    /// Whether the speaker's neighbour is what `w` asks for (else it is added again).
    fn is(&self, w: &WantPeer) -> bool {
        let want = w.knobs();
        self.asn == w.asn
            && if self.full {
                self.knobs == want
            } else {
                (self.knobs.restart_time, self.knobs.bfd) == (want.restart_time, want.bfd)
            }
    }
}

/// The speaker's state, as read through the API.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Have {
    pub asn: u32,
    pub router_id: Option<Ipv4Addr>,
    pub multipath: bool,
    pub peers: Vec<HavePeer>,
    /// Locally originated prefixes.
    pub paths: BTreeSet<IpNet>,
}

/// One API call, in the order they must be made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Step {
    SetAs(u32),
    SetRouterId(Ipv4Addr),
    MultiPath(bool),
    DeletePeer(IpAddr),
    AddPeer(Box<WantPeer>),
    AddPath(IpNet),
    DeletePath(IpNet),
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("NodeBGP routerId {0:?} is not an IPv4 address")]
    RouterId(String),
}

/// The BGPPeers of this node, keyed by address; the oldest (then first by name) wins when two
/// name the same address.
pub(crate) fn want_peers(peers: &[BGPPeer]) -> BTreeMap<IpAddr, WantPeer> {
    let mut sorted: Vec<&BGPPeer> = peers
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .collect();
    sorted.sort_by_key(|p| {
        (
            p.metadata.creation_timestamp.as_ref().map(|t| t.0),
            p.metadata.name.clone(),
        )
    });
    let mut out = BTreeMap::new();
    for p in sorted {
        let Ok(address) = p.spec.addr.parse::<IpAddr>() else {
            continue;
        };
        out.entry(address).or_insert_with(|| WantPeer {
            name: p.metadata.name.clone().unwrap_or_default(),
            address,
            asn: p.spec.asn,
            hold_time: p.spec.settings.hold_time,
            keepalive_time: p.spec.settings.keepalive_time,
            password_secret_ref: p.spec.settings.password_secret_ref.clone(),
            graceful_restart: p.spec.settings.graceful_restart.clone(),
            bfd: p.spec.settings.bfd.clone(),
            max_prefix: p.spec.settings.max_prefix.clone(),
            announce_learned: p.spec.settings.announce_learned.unwrap_or(false),
            ttl_security: p.spec.settings.ttl_security.unwrap_or(false),
            import_prefixes: p.spec.settings.import_prefixes.clone().unwrap_or_default(),
        });
    }
    out
}

/// What the node originates, and the advertisements it refuses.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Paths {
    pub want: BTreeSet<IpNet>,
    /// `namespace/name cidr` of advertisements for our peers whose prefix lies in no valid
    /// AddressPool of their type: whoever can write a BGPAdvertisement must not be able to make
    /// nodes announce any prefix they like.
    pub outside_pools: BTreeSet<String>,
}

/// Prefixes this node must originate: those of advertisements that ask any of `peers` (BGPPeer
/// names) for `NotAdvertised` or `Advertised`, and lie inside one of `pools` of their type.
pub(crate) fn want_paths(
    ads: &[BGPAdvertisement],
    peers: &BTreeSet<String>,
    pools: &[(IpNet, AddressType)],
) -> Paths {
    let mut out = Paths::default();
    for a in ads {
        let ours = a.metadata.deletion_timestamp.is_none()
            && a.status
                .as_ref()
                .and_then(|s| s.peers.as_ref())
                .is_some_and(|m| {
                    m.iter()
                        .any(|(peer, st)| peers.contains(peer) && *st != AdvertiseStatus::Withdraw)
                });
        let Some(prefix) = ours
            .then(|| a.spec.cidr.parse::<IpNet>().ok())
            .flatten()
            .map(|n| n.trunc())
        else {
            continue;
        };
        if pools
            .iter()
            .any(|(pool, kind)| *kind == a.spec.ad_type && pool.contains(&prefix))
        {
            out.want.insert(prefix);
        } else {
            out.outside_pools.insert(format!(
                "{}/{} {prefix}",
                a.metadata.namespace.as_deref().unwrap_or_default(),
                a.metadata.name.as_deref().unwrap_or_default()
            ));
        }
    }
    out
}

/// The calls that turn `have` into what the NodeBGP, peers and paths ask for. A neighbour whose
/// AS, graceful restart or BFD changed is deleted and added again (a session cannot change its
/// peer AS or its capabilities in place).
pub(crate) fn plan(
    node_bgp: &NodeBGPSpec,
    peers: &BTreeMap<IpAddr, WantPeer>,
    paths: &BTreeSet<IpNet>,
    have: &Have,
) -> Result<Vec<Step>, PlanError> {
    let router_id: Ipv4Addr = node_bgp
        .router_id
        .parse()
        .map_err(|_| PlanError::RouterId(node_bgp.router_id.clone()))?;
    let mut steps = Vec::new();
    if have.asn != node_bgp.asn {
        steps.push(Step::SetAs(node_bgp.asn));
    }
    if have.router_id != Some(router_id) {
        steps.push(Step::SetRouterId(router_id));
    }
    let multipath = node_bgp.speaker.multipath.unwrap_or(false);
    if have.multipath != multipath {
        steps.push(Step::MultiPath(multipath));
    }
    // Changing AS or router id restarts every session on the speaker, which keeps them.
    for h in &have.peers {
        match peers.get(&h.address) {
            Some(w) if h.is(w) => {}
            _ => steps.push(Step::DeletePeer(h.address)),
        }
    }
    // Paths before peers: a restarted speaker sends its whole table and End-of-RIB as soon as
    // a session comes up, and a graceful-restart peer drops whatever is not in it.
    for p in paths.difference(&have.paths) {
        steps.push(Step::AddPath(*p));
    }
    for p in have.paths.difference(paths) {
        steps.push(Step::DeletePath(*p));
    }
    for (addr, w) in peers {
        let present = have.peers.iter().any(|h| h.address == *addr && h.is(w));
        if !present {
            steps.push(Step::AddPeer(Box::new(w.clone())));
        }
    }
    Ok(steps)
}

/// With no NodeBGP for the node: every neighbour and every path goes (AS and router id stay,
/// so sessions come back at once if a NodeBGP appears).
pub(crate) fn unconfigure(have: &Have) -> Vec<Step> {
    have.paths
        .iter()
        .map(|p| Step::DeletePath(*p))
        .chain(have.peers.iter().map(|p| Step::DeletePeer(p.address)))
        .collect()
}

/// The new `status.peers` of an advertisement after this node's speaker originates (or not)
/// its prefix: our peers asked for it become `Advertised` once the session is up, and
/// `Withdraw` entries of our peers are dropped once the prefix is gone. `None` when unchanged.
pub(crate) fn advertisement_status(
    ad: &BGPAdvertisement,
    our_peers: &BTreeMap<String, bool>,
    originated: bool,
) -> Option<BTreeMap<String, AdvertiseStatus>> {
    let current = ad.status.as_ref()?.peers.as_ref()?;
    let mut next = current.clone();
    for (peer, st) in current {
        let Some(&established) = our_peers.get(peer) else {
            continue;
        };
        match st {
            AdvertiseStatus::NotAdvertised if originated && established => {
                next.insert(peer.clone(), AdvertiseStatus::Advertised);
            }
            AdvertiseStatus::Withdraw if !originated => {
                next.remove(peer);
            }
            _ => {}
        }
    }
    (next != *current).then_some(next)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use k8s::crd::{BGPAdvertisementSpec, BGPPeerSpec, SpeakerConfig};
    use k8s::crd::{BGPAdvertisementStatus, Protocol};

    fn node_bgp() -> NodeBGPSpec {
        NodeBGPSpec {
            asn: 65010,
            router_id: "198.18.0.10".into(),
            speaker: SpeakerConfig {
                path: "127.0.0.1:5000".into(),
                timeout: None,
                multipath: Some(true),
            },
            peers: None,
        }
    }

    fn peer(name: &str, addr: &str, asn: u32) -> BGPPeer {
        BGPPeer::new(
            name,
            BGPPeerSpec {
                asn,
                addr: addr.into(),
                node_bgp_ref: "n1".into(),
                ..BGPPeerSpec::default()
            },
        )
    }

    fn pools() -> Vec<(IpNet, AddressType)> {
        vec![
            ("198.18.100.0/24".parse().unwrap(), AddressType::Service),
            ("198.18.200.0/24".parse().unwrap(), AddressType::Pod),
        ]
    }

    fn ad(cidr: &str, peers: &[(&str, AdvertiseStatus)]) -> BGPAdvertisement {
        let mut a = BGPAdvertisement::new(
            "ad",
            BGPAdvertisementSpec {
                cidr: cidr.into(),
                ad_type: k8s::crd::AddressType::Service,
                protocol: Protocol::Ipv4,
                attrs: None,
            },
        );
        a.status = Some(BGPAdvertisementStatus {
            peers: Some(peers.iter().map(|(p, s)| (p.to_string(), *s)).collect()),
        });
        a
    }

    #[test]
    fn fresh_speaker_gets_everything_in_order() {
        let peers = want_peers(&[peer("p1", "198.18.0.1", 65000)]);
        let paths = want_paths(
            &[ad(
                "198.18.100.1/32",
                &[("p1", AdvertiseStatus::NotAdvertised)],
            )],
            &["p1".to_string()].into(),
            &pools(),
        )
        .want;
        let steps = plan(&node_bgp(), &peers, &paths, &Have::default()).unwrap();
        assert_eq!(steps[0], Step::SetAs(65010));
        assert_eq!(steps[1], Step::SetRouterId("198.18.0.10".parse().unwrap()));
        assert_eq!(steps[2], Step::MultiPath(true));
        // Paths first: the table is complete when the session comes up (graceful restart).
        assert_eq!(steps[3], Step::AddPath("198.18.100.1/32".parse().unwrap()));
        assert!(matches!(&steps[4], Step::AddPeer(w) if w.name == "p1"));
        assert_eq!(steps.len(), 5);
    }

    #[test]
    fn without_a_node_bgp_everything_goes() {
        let have = Have {
            asn: 65010,
            router_id: Some("198.18.0.10".parse().unwrap()),
            multipath: true,
            peers: vec![HavePeer {
                address: "198.18.0.1".parse().unwrap(),
                asn: 65000,
                name: "p1".into(),
                knobs: Knobs::default(),
                full: true,
            }],
            paths: ["198.18.100.1/32".parse().unwrap()].into(),
        };
        assert_eq!(
            unconfigure(&have),
            vec![
                Step::DeletePath("198.18.100.1/32".parse().unwrap()),
                Step::DeletePeer("198.18.0.1".parse().unwrap()),
            ]
        );
        assert!(unconfigure(&Have::default()).is_empty());
    }

    #[test]
    fn converged_speaker_needs_nothing_and_strays_are_removed() {
        let peers = want_peers(&[peer("p1", "198.18.0.1", 65000)]);
        let paths: BTreeSet<IpNet> = ["198.18.100.1/32".parse().unwrap()].into();
        let mut have = Have {
            asn: 65010,
            router_id: Some("198.18.0.10".parse().unwrap()),
            multipath: true,
            peers: vec![HavePeer {
                address: "198.18.0.1".parse().unwrap(),
                asn: 65000,
                name: "p1".into(),
                knobs: Knobs::default(),
                full: true,
            }],
            paths: paths.clone(),
        };
        assert_eq!(plan(&node_bgp(), &peers, &paths, &have).unwrap(), vec![]);
        have.peers.push(HavePeer {
            address: "198.18.0.9".parse().unwrap(),
            asn: 1,
            name: "old".into(),
            knobs: Knobs::default(),
            full: true,
        });
        have.paths.insert("198.18.100.9/32".parse().unwrap());
        have.peers[0].asn = 65001;
        let steps = plan(&node_bgp(), &peers, &paths, &have).unwrap();
        assert_eq!(
            steps,
            vec![
                Step::DeletePeer("198.18.0.1".parse().unwrap()),
                Step::DeletePeer("198.18.0.9".parse().unwrap()),
                Step::DeletePath("198.18.100.9/32".parse().unwrap()),
                Step::AddPeer(Box::new(peers.values().next().unwrap().clone())),
            ]
        );
    }

    #[test]
    fn graceful_restart_or_bfd_changes_add_the_peer_again() {
        let mut p = peer("p1", "198.18.0.1", 65000);
        p.spec.settings.graceful_restart = Some(GracefulRestartSpec { restart_time: None });
        p.spec.settings.bfd = Some(BfdSpec {
            interval_ms: Some(100),
            multiplier: None,
            multihop: Some(true),
            authentication: None,
        });
        let peers = want_peers(&[p.clone()]);
        let paths = BTreeSet::new();
        // What the speaker reports for that peer: the defaults filled in.
        let reported = Knobs {
            restart_time: Some(120),
            bfd: Some(BfdKnobs {
                interval_ms: 100,
                multiplier: 3,
                multihop: true,
                auth: None,
            }),
            ..Knobs::default()
        };
        let mut have = Have {
            asn: 65010,
            router_id: Some("198.18.0.10".parse().unwrap()),
            multipath: true,
            peers: vec![HavePeer {
                address: "198.18.0.1".parse().unwrap(),
                asn: 65000,
                name: "p1".into(),
                knobs: reported.clone(),
                full: true,
            }],
            paths: BTreeSet::new(),
        };
        assert_eq!(plan(&node_bgp(), &peers, &paths, &have).unwrap(), vec![]);
        let again = vec![
            Step::DeletePeer("198.18.0.1".parse().unwrap()),
            Step::AddPeer(Box::new(peers.values().next().unwrap().clone())),
        ];
        // The speaker has other BFD timers, no BFD, or no graceful restart: added again.
        for knobs in [
            Knobs {
                bfd: Some(BfdKnobs {
                    interval_ms: 300,
                    ..reported.bfd.unwrap()
                }),
                ..reported.clone()
            },
            Knobs {
                bfd: Some(BfdKnobs {
                    multihop: false,
                    ..reported.bfd.unwrap()
                }),
                ..reported.clone()
            },
            Knobs {
                bfd: None,
                ..reported.clone()
            },
            // GTSM the BGPPeer does not ask for.
            Knobs {
                ttl_security: true,
                ..reported.clone()
            },
            // Authentication the BGPPeer does not ask for.
            Knobs {
                bfd: Some(BfdKnobs {
                    auth: Some((bfd::Method::KeyedSha1, 1)),
                    ..reported.bfd.unwrap()
                }),
                ..reported.clone()
            },
            Knobs {
                restart_time: None,
                ..reported.clone()
            },
        ] {
            have.peers[0].knobs = knobs.clone();
            assert_eq!(
                plan(&node_bgp(), &peers, &paths, &have).unwrap(),
                again,
                "{knobs:?}"
            );
        }
        // And the other way: the BGPPeer turns both off.
        p.spec.settings.graceful_restart = None;
        p.spec.settings.bfd = None;
        have.peers[0].knobs = reported;
        let peers = want_peers(&[p]);
        assert_eq!(
            plan(&node_bgp(), &peers, &paths, &have).unwrap(),
            vec![
                Step::DeletePeer("198.18.0.1".parse().unwrap()),
                Step::AddPeer(Box::new(peers.values().next().unwrap().clone())),
            ]
        );
    }

    #[test]
    fn timer_and_policy_changes_add_the_peer_again() {
        let mut p = peer("p1", "198.18.0.1", 65000);
        p.spec.settings.hold_time = Some(9);
        p.spec.settings.keepalive_time = Some(3);
        p.spec.settings.max_prefix = Some(MaxPrefixSpec {
            limit: 100,
            warning_only: None,
            restart_after: Some(0),
        });
        p.spec.settings.import_prefixes = Some(vec![PrefixRuleSpec {
            // Written with host bits and only `le`: the speaker reports it canonical.
            prefix: "10.1.2.3/8".into(),
            ge: None,
            le: Some(24),
            action: None,
        }]);
        let peers = want_peers(&[p.clone()]);
        let reported = Knobs {
            hold_time: 9,
            keepalive_time: 3,
            max_prefix: Some((100, false, Some(0))),
            import: vec![ImportRule {
                prefix: "10.0.0.0/8".into(),
                ge: 8,
                le: 24,
                deny: false,
            }],
            ..Knobs::default()
        };
        let mut have = Have {
            asn: 65010,
            router_id: Some("198.18.0.10".parse().unwrap()),
            multipath: true,
            peers: vec![HavePeer {
                address: "198.18.0.1".parse().unwrap(),
                asn: 65000,
                name: "p1".into(),
                knobs: reported.clone(),
                full: true,
            }],
            paths: BTreeSet::new(),
        };
        let paths = BTreeSet::new();
        assert_eq!(plan(&node_bgp(), &peers, &paths, &have).unwrap(), vec![]);
        let again = vec![
            Step::DeletePeer("198.18.0.1".parse().unwrap()),
            Step::AddPeer(Box::new(peers.values().next().unwrap().clone())),
        ];
        for knobs in [
            Knobs {
                hold_time: 90,
                ..reported.clone()
            },
            Knobs {
                keepalive_time: 0,
                ..reported.clone()
            },
            Knobs {
                max_prefix: Some((100, true, Some(0))),
                ..reported.clone()
            },
            Knobs {
                max_prefix: None,
                ..reported.clone()
            },
            Knobs {
                announce_learned: true,
                ..reported.clone()
            },
            Knobs {
                import: Vec::new(),
                ..reported.clone()
            },
        ] {
            have.peers[0].knobs = knobs.clone();
            assert_eq!(
                plan(&node_bgp(), &peers, &paths, &have).unwrap(),
                again,
                "{knobs:?}"
            );
        }
        // A rule the speaker would refuse never looks applied.
        p.spec.settings.import_prefixes = Some(vec![PrefixRuleSpec {
            prefix: "10.0.0.0/8".into(),
            ge: Some(4),
            le: None,
            action: None,
        }]);
        have.peers[0].knobs = reported.clone();
        let peers = want_peers(&[p]);
        assert_eq!(plan(&node_bgp(), &peers, &paths, &have).unwrap().len(), 2);
        // A speaker from before timers and policy were reported (a DaemonSet mid-roll) shows
        // defaults there: left alone, not restarted on every sync.
        have.peers[0].knobs = Knobs::default();
        have.peers[0].full = false;
        assert_eq!(plan(&node_bgp(), &peers, &paths, &have).unwrap(), vec![]);
        // Its graceful restart and BFD are still compared.
        have.peers[0].knobs.restart_time = Some(120);
        assert_eq!(plan(&node_bgp(), &peers, &paths, &have).unwrap().len(), 2);
    }

    #[test]
    fn withdraw_only_and_other_nodes_peers_do_not_originate() {
        let ours: BTreeSet<String> = ["p1".to_string()].into();
        let ads = [
            ad("198.18.100.1/32", &[("p1", AdvertiseStatus::Withdraw)]),
            ad(
                "198.18.100.2/32",
                &[("other-node-peer", AdvertiseStatus::NotAdvertised)],
            ),
        ];
        assert_eq!(want_paths(&ads, &ours, &pools()), Paths::default());
    }

    #[test]
    fn only_prefixes_inside_a_pool_of_their_type_are_originated() {
        let ours: BTreeSet<String> = ["p1".to_string()].into();
        let asks = [("p1", AdvertiseStatus::NotAdvertised)];
        let mut pod_block = ad("198.18.200.0/29", &asks);
        pod_block.spec.ad_type = AddressType::Pod;
        let mut vip_as_pod = ad("198.18.100.8/32", &asks);
        vip_as_pod.spec.ad_type = AddressType::Pod;
        let ads = [
            ad("198.18.100.7/32", &asks),
            pod_block,
            // Somebody else's prefix, or all of it: in no pool.
            ad("0.0.0.0/0", &asks),
            ad("203.0.113.0/24", &asks),
            // In a pool, but of the other type; and wider than its pool.
            vip_as_pod,
            ad("198.18.100.0/23", &asks),
        ];
        let p = want_paths(&ads, &ours, &pools());
        assert_eq!(
            p.want,
            ["198.18.100.7/32", "198.18.200.0/29"]
                .iter()
                .map(|s| s.parse().unwrap())
                .collect()
        );
        assert_eq!(p.outside_pools.len(), 4, "{p:?}");
        assert!(p.outside_pools.contains("/ad 0.0.0.0/0"), "{p:?}");
        // Without pools nothing is originated.
        assert!(want_paths(&ads, &ours, &[]).want.is_empty());
    }

    #[test]
    fn status_moves_to_advertised_and_withdraw_entries_go() {
        let a = ad(
            "198.18.100.1/32",
            &[
                ("p1", AdvertiseStatus::NotAdvertised),
                ("p2", AdvertiseStatus::NotAdvertised),
                ("x", AdvertiseStatus::NotAdvertised),
            ],
        );
        let ours = BTreeMap::from([("p1".to_string(), true), ("p2".to_string(), false)]);
        let next = advertisement_status(&a, &ours, true).unwrap();
        assert_eq!(next["p1"], AdvertiseStatus::Advertised);
        assert_eq!(
            next["p2"],
            AdvertiseStatus::NotAdvertised,
            "session not up yet"
        );
        assert_eq!(next["x"], AdvertiseStatus::NotAdvertised, "not our peer");
        let w = ad("198.18.100.1/32", &[("p1", AdvertiseStatus::Withdraw)]);
        assert!(advertisement_status(&w, &ours, false).unwrap().is_empty());
        assert_eq!(advertisement_status(&w, &ours, true), None);
    }
}
