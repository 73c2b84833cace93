//! Export: what a path looks like when sent to a peer, or whether it is sent at all
//! (RFC 4271 §9.1.3, §5.1; RFC 4456 §8 for route reflection; RFC 1997 well-known communities).
//!
//! To an eBGP peer: never a path learned from that same AS, nor one whose AS_PATH already
//! holds the peer's AS (sender-side loop check); our AS is prepended (plus the configured
//! prepends of a local path), the next hop is ours, LOCAL_PREF, ORIGINATOR_ID and CLUSTER_LIST
//! are removed, and MED is kept only if we set it (a local path). NO_EXPORT and
//! NO_EXPORT_SUBCONFED paths stay inside the AS.
//!
//! To an iBGP peer: iBGP-learned paths only by route reflection (from a client to everyone, from
//! a non-client to clients), with ORIGINATOR_ID set and our cluster id prepended to CLUSTER_LIST;
//! LOCAL_PREF is always present (the value selection used); local paths get next hop self.
//!
//! A peer set to [`Export::Originated`] gets only the speaker's own paths, whatever its role.
//!
//! NO_ADVERTISE paths go to nobody. Unknown transitive attributes ride along (the codec marks
//! them Partial); unknown non-transitive ones are never encoded.
//!
//! The function is pure over (source, attributes, target); [`Exporter`] memoizes it per
//! distinct (attributes, source) during one drain, so a table of 100k routes sharing one
//! attribute set is transformed once per group, and canonicalizes the results so routes with
//! equal outbound attributes are batched together.

use std::net::Ipv4Addr;
use std::sync::Arc;

use super::decision::{DEFAULT_LOCAL_PREF, DecisionConfig};
use super::group::{GroupKey, OutUpdate};
use super::hash::FastMap;
use super::intern::Interner;
use super::loc::Key;
use super::path::PeerKind;
use super::path::{Attrs, PeerId, SourceInfo, SourceKind};
use super::peer::Peers;
use super::policy::Export;
use crate::attribute::{AsPath, Community, NextHop};
use crate::family::Family;

/// The speaker's own facts that export needs.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Local {
    pub asn: u32,
    pub cluster_id: Ipv4Addr,
    pub decision: DecisionConfig,
}

/// The next hop a path takes when it is ours: the session's own address of the family.
fn next_hop_self(target: &GroupKey, family: Family) -> Option<NextHop> {
    if family == Family::IPV6_UNICAST {
        target.params.next_hop_v6.map(NextHop::V6)
    } else {
        target.params.next_hop_v4
    }
}

/// Whether the path's own next hop is sent on to an iBGP peer (else next hop self).
fn keeps_next_hop(target: &GroupKey, family: Family, a: &Attrs) -> bool {
    let keep = match a.next_hop {
        None => false,
        Some(NextHop::V6(_)) if family == Family::IPV4_UNICAST => target.params.extended_next_hop,
        Some(_) => true,
    };
    keep && !target.params.next_hop_self
}

/// Whether `src`'s path `a` is sent to peers of `target` at all: exactly when [`export`] gives
/// attributes, without building them (a withdrawal only needs to know whether the path was sent).
pub(crate) fn admits(target: &GroupKey, family: Family, src: &SourceInfo, a: &Attrs) -> bool {
    let comms = &a.attrs.communities;
    if comms.contains(&Community::NO_ADVERTISE) {
        return false;
    }
    if target.params.export == Export::Originated && src.kind != SourceKind::Local {
        return false;
    }
    match target.kind {
        PeerKind::Ebgp => {
            !(comms.contains(&Community::NO_EXPORT)
                || comms.contains(&Community::NO_EXPORT_SUBCONFED)
                || (src.kind == SourceKind::Ebgp && src.asn == target.asn)
                || a.attrs
                    .as_path
                    .as_ref()
                    .is_some_and(|p| p.contains(target.asn)))
                && next_hop_self(target, family).is_some()
        }
        PeerKind::Ibgp | PeerKind::RrClient => {
            // RFC 4271 §9.2: no iBGP-learned path to an iBGP peer, except by reflection.
            !(src.kind == SourceKind::Ibgp && target.kind == PeerKind::Ibgp)
                && (keeps_next_hop(target, family, a) || next_hop_self(target, family).is_some())
        }
    }
}

/// The attributes `src`'s path `a` is sent with to peers of `target`, or `None`.
pub(crate) fn export(
    local: &Local,
    target: &GroupKey,
    family: Family,
    src: &SourceInfo,
    a: &Attrs,
) -> Option<Attrs> {
    if !admits(target, family, src, a) {
        return None;
    }
    let mut out = a.clone();
    out.prepend = 0;
    let path = out.attrs.as_path.get_or_insert_with(AsPath::default);
    match target.kind {
        PeerKind::Ebgp => {
            let n = usize::from(a.prepend) + 1;
            path.prepend(local.asn, n);
            out.next_hop = next_hop_self(target, family);
            out.attrs.local_pref = None;
            if src.kind != SourceKind::Local {
                out.attrs.med = None;
            }
            out.attrs.originator_id = None;
            out.attrs.cluster_list.clear();
        }
        PeerKind::Ibgp | PeerKind::RrClient => {
            let reflect = matches!(src.kind, SourceKind::Ibgp | SourceKind::RrClient);
            if reflect {
                // RFC 4456 §8.
                out.attrs.originator_id = Some(a.attrs.originator_id.unwrap_or(src.router_id));
                out.attrs.cluster_list.insert(0, local.cluster_id);
            }
            out.attrs.local_pref = Some(match src.kind {
                SourceKind::Ebgp => local.decision.ebgp_local_pref,
                _ => a.attrs.local_pref.unwrap_or(DEFAULT_LOCAL_PREF),
            });
            out.next_hop = if keeps_next_hop(target, family, a) {
                a.next_hop
            } else {
                next_hop_self(target, family)
            };
        }
    }
    Some(out)
}

/// Memoized [`export`] for one group during one drain.
pub(crate) struct Exporter<'a> {
    local: &'a Local,
    peers: &'a Peers,
    key: &'a GroupKey,
    family: Family,
    /// (input attributes address, source) → output. Inputs stay alive for the whole drain, so
    /// an address cannot be reused for another value meanwhile.
    memo: FastMap<(usize, PeerId), Option<Arc<Attrs>>>,
    /// Equal outputs of different inputs share one value, so they are batched together.
    canon: Interner,
}

impl<'a> Exporter<'a> {
    pub fn new(local: &'a Local, peers: &'a Peers, key: &'a GroupKey, family: Family) -> Self {
        Exporter {
            local,
            peers,
            key,
            family,
            memo: FastMap::default(),
            canon: Interner::default(),
        }
    }

    /// Whether `src`'s path `a` was (or is) sent to this group, without building what it was
    /// sent with.
    pub fn admits(&mut self, src: PeerId, a: &Arc<Attrs>) -> bool {
        if let Some(hit) = self.memo.get(&(Arc::as_ptr(a) as usize, src)) {
            return hit.is_some();
        }
        let src = self.peers.source(src);
        admits(self.key, self.family, &src, a)
    }

    pub fn export(&mut self, src: PeerId, a: &Arc<Attrs>) -> Option<Arc<Attrs>> {
        let k = (Arc::as_ptr(a) as usize, src);
        if let Some(hit) = self.memo.get(&k) {
            return hit.clone();
        }
        let src = self.peers.source(src);
        let out = export(self.local, self.key, self.family, &src, a).map(|o| self.canon.intern(o));
        self.memo.insert(k, out.clone());
        out
    }
}

/// Collects announcements by (attributes, excepted peer) and withdrawals, in first-seen order.
pub(crate) struct Batcher<P> {
    index: FastMap<(usize, Option<PeerId>), usize>,
    announce: Vec<(Arc<Attrs>, Option<PeerId>, Vec<P>)>,
    withdraw: Vec<P>,
}

impl<P: Key> Batcher<P> {
    pub fn new() -> Self {
        Batcher {
            index: FastMap::default(),
            announce: Vec::new(),
            withdraw: Vec::new(),
        }
    }

    pub fn announce(&mut self, prefix: P, attrs: &Arc<Attrs>, except: Option<PeerId>) {
        let k = (Arc::as_ptr(attrs) as usize, except);
        let i = *self.index.entry(k).or_insert_with(|| {
            self.announce.push((Arc::clone(attrs), except, Vec::new()));
            self.announce.len() - 1
        });
        if let Some(b) = self.announce.get_mut(i) {
            b.2.push(prefix);
        }
    }

    pub fn withdraw(&mut self, prefix: P) {
        self.withdraw.push(prefix);
    }

    pub fn is_empty(&self) -> bool {
        self.announce.is_empty() && self.withdraw.is_empty()
    }

    /// Withdrawals first, then one entry per attribute set.
    pub fn finish(self, out: &mut Vec<OutUpdate>) {
        if !self.withdraw.is_empty() {
            out.push(OutUpdate {
                attrs: None,
                prefixes: P::wrap(self.withdraw),
                except: None,
            });
        }
        for (attrs, except, v) in self.announce {
            out.push(OutUpdate {
                attrs: Some(attrs),
                prefixes: P::wrap(v),
                except,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use super::*;
    use crate::attribute::{Origin, PathAttributes};
    use crate::context::Context;
    use crate::family::FamilySet;
    use crate::rib::group::ExportParams;

    const LOCAL_AS: u32 = 65000;

    fn local() -> Local {
        Local {
            asn: LOCAL_AS,
            cluster_id: Ipv4Addr::new(10, 0, 0, 100),
            decision: DecisionConfig::default(),
        }
    }

    fn key(kind: PeerKind, asn: u32) -> GroupKey {
        GroupKey {
            kind,
            asn,
            params: ExportParams {
                send: Context::four_octet(),
                families: [Family::IPV4_UNICAST].into_iter().collect::<FamilySet>(),
                next_hop_v4: Some(NextHop::V4(Ipv4Addr::new(192, 0, 2, 1))),
                next_hop_v6: None,
                extended_next_hop: false,
                next_hop_self: false,
                export: Export::All,
            },
        }
    }

    fn src(kind: SourceKind, asn: u32) -> SourceInfo {
        SourceInfo {
            peer: PeerId(1),
            kind,
            asn,
            router_id: Ipv4Addr::new(10, 0, 0, 1),
            address: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 9)),
        }
    }

    fn attrs(path: &[u32]) -> Attrs {
        Attrs {
            next_hop: Some(NextHop::V4(Ipv4Addr::new(192, 0, 2, 9))),
            prepend: 0,
            attrs: PathAttributes {
                origin: Some(Origin::Igp),
                as_path: Some(AsPath::sequence(path.iter().copied())),
                med: Some(5),
                local_pref: Some(300),
                ..Default::default()
            },
        }
    }

    /// A withdrawal asks `admits` what an announcement asked `export`: they must agree on every
    /// combination of target, source, communities, AS path and next hops.
    #[test]
    fn admits_exactly_what_export_sends() {
        let kinds = [PeerKind::Ebgp, PeerKind::Ibgp, PeerKind::RrClient];
        let sources = [
            src(SourceKind::Ebgp, 65001),
            src(SourceKind::Ebgp, 65002),
            src(SourceKind::Ibgp, LOCAL_AS),
            src(SourceKind::RrClient, LOCAL_AS),
            src(SourceKind::Local, LOCAL_AS),
        ];
        let comms = [
            vec![],
            vec![Community::NO_ADVERTISE],
            vec![Community::NO_EXPORT],
            vec![Community::NO_EXPORT_SUBCONFED],
        ];
        let hops = [
            None,
            Some(NextHop::V4(Ipv4Addr::new(192, 0, 2, 9))),
            Some(NextHop::V6(crate::attribute::Ipv6NextHop {
                global: "fd00::9".parse().unwrap_or(std::net::Ipv6Addr::LOCALHOST),
                link_local: None,
            })),
        ];
        let mut checked = 0;
        for kind in kinds {
            for asn in [65002, 65003] {
                for (v4, v6, ext, nhs, export_mode) in [
                    (true, false, false, false, Export::All),
                    (false, true, true, false, Export::All),
                    (false, false, false, true, Export::All),
                    (true, true, false, false, Export::Originated),
                ] {
                    let mut k = key(kind, asn);
                    k.params.next_hop_v4 = v4.then_some(NextHop::V4(Ipv4Addr::new(192, 0, 2, 1)));
                    k.params.next_hop_v6 = v6.then_some(crate::attribute::Ipv6NextHop {
                        global: std::net::Ipv6Addr::LOCALHOST,
                        link_local: None,
                    });
                    k.params.extended_next_hop = ext;
                    k.params.next_hop_self = nhs;
                    k.params.export = export_mode;
                    for s in &sources {
                        for c in &comms {
                            for path in [&[65001][..], &[65001, 65002], &[]] {
                                for nh in hops {
                                    for family in [Family::IPV4_UNICAST, Family::IPV6_UNICAST] {
                                        let mut a = attrs(path);
                                        a.attrs.communities = c.clone();
                                        a.next_hop = nh;
                                        assert_eq!(
                                            admits(&k, family, s, &a),
                                            export(&local(), &k, family, s, &a).is_some(),
                                            "{kind:?} {asn} {s:?} {c:?} {path:?} {nh:?} {family}"
                                        );
                                        checked += 1;
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        assert!(checked > 1000);
    }

    #[test]
    fn ebgp_prepends_sets_next_hop_and_strips() {
        let out = export(
            &local(),
            &key(PeerKind::Ebgp, 65002),
            Family::IPV4_UNICAST,
            &src(SourceKind::Ebgp, 65001),
            &attrs(&[65001]),
        )
        .unwrap();
        assert_eq!(out.attrs.as_path, Some(AsPath::sequence([LOCAL_AS, 65001])));
        assert_eq!(out.next_hop, Some(NextHop::V4(Ipv4Addr::new(192, 0, 2, 1))));
        assert_eq!(out.attrs.local_pref, None);
        assert_eq!(out.attrs.med, None);
    }

    #[test]
    fn ebgp_loop_checks() {
        let a = attrs(&[65001, 65002]);
        let s = src(SourceKind::Ebgp, 65001);
        let f = Family::IPV4_UNICAST;
        assert!(export(&local(), &key(PeerKind::Ebgp, 65002), f, &s, &a).is_none());
        assert!(export(&local(), &key(PeerKind::Ebgp, 65001), f, &s, &a).is_none());
        assert!(export(&local(), &key(PeerKind::Ebgp, 65003), f, &s, &a).is_some());
    }

    #[test]
    fn originated_only_peers_get_no_learned_route() {
        let f = Family::IPV4_UNICAST;
        let a = attrs(&[]);
        for kind in [PeerKind::Ebgp, PeerKind::Ibgp, PeerKind::RrClient] {
            let mut k = key(kind, if kind == PeerKind::Ebgp { 65002 } else { 0 });
            k.params.export = Export::Originated;
            assert!(export(&local(), &k, f, &src(SourceKind::Local, LOCAL_AS), &a).is_some());
            for learned in [SourceKind::Ebgp, SourceKind::Ibgp, SourceKind::RrClient] {
                let s = src(learned, 65009);
                assert!(
                    export(&local(), &k, f, &s, &a).is_none(),
                    "{kind:?} {learned:?}"
                );
            }
        }
    }

    #[test]
    fn well_known_communities() {
        let mut a = attrs(&[65001]);
        a.attrs.communities = vec![Community::NO_EXPORT];
        let s = src(SourceKind::Ebgp, 65001);
        let f = Family::IPV4_UNICAST;
        assert!(export(&local(), &key(PeerKind::Ebgp, 65002), f, &s, &a).is_none());
        assert!(export(&local(), &key(PeerKind::Ibgp, 0), f, &s, &a).is_some());
        a.attrs.communities = vec![Community::NO_ADVERTISE];
        assert!(export(&local(), &key(PeerKind::Ibgp, 0), f, &s, &a).is_none());
    }

    #[test]
    fn ibgp_split_horizon_and_reflection() {
        let a = attrs(&[65001]);
        let f = Family::IPV4_UNICAST;
        let ibgp = src(SourceKind::Ibgp, LOCAL_AS);
        let client = src(SourceKind::RrClient, LOCAL_AS);
        assert!(export(&local(), &key(PeerKind::Ibgp, 0), f, &ibgp, &a).is_none());
        let out = export(&local(), &key(PeerKind::RrClient, 0), f, &ibgp, &a).unwrap();
        assert_eq!(out.attrs.originator_id, Some(Ipv4Addr::new(10, 0, 0, 1)));
        assert_eq!(out.attrs.cluster_list, vec![Ipv4Addr::new(10, 0, 0, 100)]);
        assert_eq!(out.attrs.local_pref, Some(300));
        // Next hop unchanged toward iBGP.
        assert_eq!(out.next_hop, a.next_hop);
        assert!(export(&local(), &key(PeerKind::Ibgp, 0), f, &client, &a).is_some());
    }

    #[test]
    fn local_paths_get_next_hop_self_and_default_local_pref() {
        let mut a = attrs(&[]);
        a.next_hop = None;
        a.attrs.local_pref = None;
        a.prepend = 2;
        let s = SourceInfo {
            kind: SourceKind::Local,
            ..src(SourceKind::Local, LOCAL_AS)
        };
        let f = Family::IPV4_UNICAST;
        let out = export(&local(), &key(PeerKind::Ibgp, 0), f, &s, &a).unwrap();
        assert_eq!(out.attrs.local_pref, Some(100));
        assert_eq!(out.next_hop, Some(NextHop::V4(Ipv4Addr::new(192, 0, 2, 1))));
        assert_eq!(out.attrs.as_path, Some(AsPath::default()));
        let out = export(&local(), &key(PeerKind::Ebgp, 65002), f, &s, &a).unwrap();
        assert_eq!(out.attrs.as_path, Some(AsPath::sequence([LOCAL_AS; 3])));
        assert_eq!(out.attrs.med, Some(5));
    }
}
