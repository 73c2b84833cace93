//! Route selection: the decision process of RFC 4271 §9.1.2.2 with sart's additions.
//!
//! Steps, in order (the first that tells two paths apart decides; [`Step`] names it):
//!
//! 1. highest LOCAL_PREF — absent means 100 for iBGP and local paths; eBGP paths never carry
//!    one (it is discarded on receipt, RFC 7606 §7.5) and get [`DecisionConfig::ebgp_local_pref`];
//! 2. locally originated over learned — sart's choice, as FRR and Cisco do with their weight and
//!    "locally originated" steps: a prefix this node announces wins over the same prefix heard back;
//! 3. shortest AS_PATH (`AsPath::path_len`: a set counts 1, confederation segments 0);
//! 4. lowest ORIGIN (IGP < EGP < INCOMPLETE);
//! 5. lowest MED, only between paths from the same neighbour AS unless
//!    [`DecisionConfig::always_compare_med`]; a missing MED is 0 (RFC 4271 §9.1.2.2 c);
//! 6. eBGP over iBGP (the IGP cost step that follows in the RFC is skipped: every next hop is
//!    treated as equally close);
//! 7. optionally, the oldest of two eBGP paths (RFC 5004), [`DecisionConfig::prefer_oldest`];
//! 8. lowest router id: ORIGINATOR_ID when present (RFC 4456 §9), else the peer's BGP identifier;
//! 9. shortest CLUSTER_LIST (RFC 4456 §9);
//! 10. lowest peer address;
//! 11. lowest add-path identifier, then lowest peer id: never equal for two distinct paths, so the
//!     order is total.
//!
//! The MED step is not transitive (A beats B on MED, B beats C on eBGP-over-iBGP, C beats A on
//! MED is possible), so a best path found by pairwise comparison could depend on the order paths
//! arrived in. [`select`] therefore applies the steps as the RFC writes them: each step removes
//! from the whole candidate set the paths it finds worse. The result depends only on the set.
//! [`compare`] is the pairwise view of the same steps, used to rank multipath members and to
//! tell the API why one path beat another.
//!
//! ECMP: the paths still in the set after step 6 are equally good for forwarding; with eBGP best
//! paths they must also have the same neighbour AS (FRR's default, `multipath-relax` off). The
//! multipath set is those paths ranked by the remaining steps, best first, cut at `max_paths`.

use std::cmp::Ordering;
use std::net::{IpAddr, Ipv4Addr};
use std::num::NonZeroUsize;

use super::path::{Attrs, PeerId, SourceKind};
use super::step::Step;

/// LOCAL_PREF of a path that has none (RFC 4271 §5.1.5 leaves it to configuration; 100 is what
/// every implementation uses).
pub const DEFAULT_LOCAL_PREF: u32 = 100;

/// Options of the decision process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecisionConfig {
    /// LOCAL_PREF given to eBGP-learned paths.
    pub ebgp_local_pref: u32,
    /// Compare MED between paths from different neighbour ASes too.
    pub always_compare_med: bool,
    /// Prefer the oldest of two eBGP paths before comparing router ids (RFC 5004).
    pub prefer_oldest: bool,
    /// Size limit of the multipath (ECMP) set; 1 turns multipath off.
    pub max_paths: NonZeroUsize,
}

impl Default for DecisionConfig {
    fn default() -> Self {
        DecisionConfig {
            ebgp_local_pref: DEFAULT_LOCAL_PREF,
            always_compare_med: false,
            prefer_oldest: false,
            max_paths: NonZeroUsize::MIN,
        }
    }
}

/// Everything the decision process looks at for one path.
#[derive(Debug, Clone, Copy)]
pub struct Candidate<'a> {
    pub attrs: &'a Attrs,
    pub kind: SourceKind,
    pub peer: PeerId,
    /// The peer's BGP identifier (ours for a local path).
    pub router_id: Ipv4Addr,
    /// The peer's address (unspecified for a local path).
    pub peer_address: IpAddr,
    pub path_id: u32,
    /// Receive time; smaller is older.
    pub since: u32,
}

impl Candidate<'_> {
    /// LOCAL_PREF as the decision process sees it.
    pub fn local_pref(&self, cfg: &DecisionConfig) -> u32 {
        match self.kind {
            SourceKind::Ebgp => cfg.ebgp_local_pref,
            _ => self.attrs.attrs.local_pref.unwrap_or(DEFAULT_LOCAL_PREF),
        }
    }

    fn neighbor_as(&self) -> Option<u32> {
        self.attrs
            .attrs
            .as_path
            .as_ref()
            .and_then(|p| p.neighbor_as())
    }

    fn path_len(&self) -> usize {
        self.attrs
            .attrs
            .as_path
            .as_ref()
            .map_or(0, |p| p.path_len())
    }

    fn router_id(&self) -> Ipv4Addr {
        self.attrs.attrs.originator_id.unwrap_or(self.router_id)
    }
}

/// Orders `a` against `b` on one step: `Less` means `a` is preferred.
pub fn step_cmp(step: Step, a: &Candidate, b: &Candidate, cfg: &DecisionConfig) -> Ordering {
    match step {
        Step::LocalPref => b.local_pref(cfg).cmp(&a.local_pref(cfg)),
        Step::LocallyOriginated => {
            let local = |c: &Candidate| c.kind == SourceKind::Local;
            local(b).cmp(&local(a))
        }
        Step::AsPathLen => a.path_len().cmp(&b.path_len()),
        Step::Origin => {
            // A path without ORIGIN cannot come from a peer (treat-as-withdraw); rank it last.
            let o = |c: &Candidate| c.attrs.attrs.origin.map_or(3, |o| o as u8);
            o(a).cmp(&o(b))
        }
        Step::Med => {
            if cfg.always_compare_med || a.neighbor_as() == b.neighbor_as() {
                let m = |c: &Candidate| c.attrs.attrs.med.unwrap_or(0);
                m(a).cmp(&m(b))
            } else {
                Ordering::Equal
            }
        }
        Step::EbgpOverIbgp => {
            let ebgp = |c: &Candidate| c.kind == SourceKind::Ebgp;
            ebgp(b).cmp(&ebgp(a))
        }
        Step::Oldest => {
            if cfg.prefer_oldest && a.kind == SourceKind::Ebgp && b.kind == SourceKind::Ebgp {
                a.since.cmp(&b.since)
            } else {
                Ordering::Equal
            }
        }
        Step::RouterId => a.router_id().cmp(&b.router_id()),
        Step::ClusterListLen => a
            .attrs
            .attrs
            .cluster_list
            .len()
            .cmp(&b.attrs.attrs.cluster_list.len()),
        Step::PeerAddress => a.peer_address.cmp(&b.peer_address),
        Step::PathId => (a.path_id, a.peer).cmp(&(b.path_id, b.peer)),
    }
}

/// Compares two paths step by step: `Less` means `a` is preferred, and the step is the one that
/// decided. `None` only when the two candidates are the same path.
pub fn compare(a: &Candidate, b: &Candidate, cfg: &DecisionConfig) -> Option<(Ordering, Step)> {
    Step::ALL
        .iter()
        .find_map(|&s| match step_cmp(s, a, b, cfg) {
            Ordering::Equal => None,
            o => Some((o, s)),
        })
}

/// The outcome of selection over one prefix's paths (indices into the candidate slice).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    pub best: usize,
    /// The ECMP set, best first; always contains `best`, at most `max_paths` long.
    pub multipath: Vec<usize>,
}

/// Runs the decision process over `cands` (see the module documentation). `None` when empty.
pub fn select(cands: &[Candidate], cfg: &DecisionConfig) -> Option<Selection> {
    match cands.len() {
        0 => return None,
        1 => {
            return Some(Selection {
                best: 0,
                multipath: vec![0],
            });
        }
        _ => {}
    }
    let mut left: Vec<usize> = (0..cands.len()).collect();
    let mut pool = Vec::new();
    for step in Step::ALL {
        if step == Step::Med {
            // RFC 4271 §9.1.2.2 c: remove a path if another one still in the set, from the
            // same neighbour AS, has a lower MED.
            let keep: Vec<usize> = left
                .iter()
                .copied()
                .filter(|&i| {
                    !left
                        .iter()
                        .any(|&j| step_cmp(step, &cands[j], &cands[i], cfg) == Ordering::Less)
                })
                .collect();
            left = keep;
        } else if let Some(&first) = left.first() {
            // Every other step is a total preorder: keep the paths equal to the best one.
            let top = left[1..].iter().fold(first, |t, &i| {
                if step_cmp(step, &cands[i], &cands[t], cfg) == Ordering::Less {
                    i
                } else {
                    t
                }
            });
            left.retain(|&i| step_cmp(step, &cands[i], &cands[top], cfg) == Ordering::Equal);
        }
        if step == Step::LAST_MULTIPATH_STEP {
            pool = left.clone();
        }
    }
    let best = *left.first()?;
    let mut multipath = Vec::new();
    if cfg.max_paths.get() > 1 {
        let nas = cands[best].neighbor_as();
        let ebgp = cands[best].kind == SourceKind::Ebgp;
        pool.retain(|&i| !ebgp || cands[i].neighbor_as() == nas);
        pool.sort_by(|&i, &j| {
            compare(&cands[i], &cands[j], cfg).map_or(Ordering::Equal, |(o, _)| o)
        });
        multipath = pool;
        multipath.truncate(cfg.max_paths.get());
    }
    if multipath.first() != Some(&best) {
        // The pool's ranking agrees with elimination; this only guards the invariant.
        multipath.retain(|&i| i != best);
        multipath.insert(0, best);
        multipath.truncate(cfg.max_paths.get());
    }
    Some(Selection { best, multipath })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attribute::{AsPath, Origin, PathAttributes};

    fn attrs(f: impl FnOnce(&mut PathAttributes)) -> Attrs {
        let mut a = PathAttributes {
            origin: Some(Origin::Igp),
            as_path: Some(AsPath::sequence([65001])),
            ..Default::default()
        };
        f(&mut a);
        Attrs {
            attrs: a,
            ..Default::default()
        }
    }

    fn cand(a: &Attrs, kind: SourceKind, n: u8) -> Candidate<'_> {
        Candidate {
            attrs: a,
            kind,
            peer: PeerId(u32::from(n)),
            router_id: Ipv4Addr::new(10, 0, 0, n),
            peer_address: IpAddr::V4(Ipv4Addr::new(192, 0, 2, n)),
            path_id: 0,
            since: 100,
        }
    }

    /// Asserts that `better` beats `worse` at `step`, both ways round.
    fn decides(step: Step, better: &Candidate, worse: &Candidate, cfg: &DecisionConfig) {
        assert_eq!(
            compare(better, worse, cfg),
            Some((Ordering::Less, step)),
            "{step:?}"
        );
        assert_eq!(compare(worse, better, cfg), Some((Ordering::Greater, step)));
        let sel = select(&[*worse, *better], cfg).unwrap();
        assert_eq!(sel.best, 1, "{step:?} via select");
    }

    #[test]
    fn local_pref_decides() {
        let cfg = DecisionConfig::default();
        let (hi, lo) = (attrs(|a| a.local_pref = Some(200)), attrs(|_| {}));
        decides(
            Step::LocalPref,
            &cand(&hi, SourceKind::Ibgp, 2),
            &cand(&lo, SourceKind::Ibgp, 1),
            &cfg,
        );
        // eBGP paths get the configured default, whatever they carry.
        let cfg = DecisionConfig {
            ebgp_local_pref: 50,
            ..cfg
        };
        decides(
            Step::LocalPref,
            &cand(&lo, SourceKind::Ibgp, 2),
            &cand(&hi, SourceKind::Ebgp, 1),
            &cfg,
        );
    }

    #[test]
    fn locally_originated_decides() {
        let a = attrs(|_| {});
        decides(
            Step::LocallyOriginated,
            &cand(&a, SourceKind::Local, 2),
            &cand(&a, SourceKind::Ebgp, 1),
            &DecisionConfig::default(),
        );
    }

    #[test]
    fn as_path_len_decides() {
        let short = attrs(|_| {});
        let long = attrs(|a| a.as_path = Some(AsPath::sequence([65001, 65002])));
        decides(
            Step::AsPathLen,
            &cand(&short, SourceKind::Ebgp, 2),
            &cand(&long, SourceKind::Ebgp, 1),
            &DecisionConfig::default(),
        );
    }

    #[test]
    fn origin_decides() {
        let igp = attrs(|_| {});
        let inc = attrs(|a| a.origin = Some(Origin::Incomplete));
        decides(
            Step::Origin,
            &cand(&igp, SourceKind::Ebgp, 2),
            &cand(&inc, SourceKind::Ebgp, 1),
            &DecisionConfig::default(),
        );
    }

    #[test]
    fn med_decides_only_within_one_neighbour_as() {
        let cfg = DecisionConfig::default();
        let low = attrs(|_| {}); // missing MED counts as 0
        let high = attrs(|a| a.med = Some(10));
        decides(
            Step::Med,
            &cand(&low, SourceKind::Ebgp, 2),
            &cand(&high, SourceKind::Ebgp, 1),
            &cfg,
        );
        let other_as = attrs(|a| {
            a.med = Some(10);
            a.as_path = Some(AsPath::sequence([65009]));
        });
        let r = compare(
            &cand(&low, SourceKind::Ebgp, 2),
            &cand(&other_as, SourceKind::Ebgp, 1),
            &cfg,
        );
        assert_eq!(r.map(|x| x.1), Some(Step::RouterId));
        let always = DecisionConfig {
            always_compare_med: true,
            ..cfg
        };
        decides(
            Step::Med,
            &cand(&low, SourceKind::Ebgp, 2),
            &cand(&other_as, SourceKind::Ebgp, 1),
            &always,
        );
    }

    #[test]
    fn ebgp_over_ibgp_decides() {
        let a = attrs(|_| {});
        decides(
            Step::EbgpOverIbgp,
            &cand(&a, SourceKind::Ebgp, 2),
            &cand(&a, SourceKind::Ibgp, 1),
            &DecisionConfig::default(),
        );
    }

    #[test]
    fn oldest_decides_when_enabled() {
        let a = attrs(|_| {});
        let mut old = cand(&a, SourceKind::Ebgp, 2);
        old.since = 5;
        let new = cand(&a, SourceKind::Ebgp, 1);
        let cfg = DecisionConfig {
            prefer_oldest: true,
            ..DecisionConfig::default()
        };
        decides(Step::Oldest, &old, &new, &cfg);
        // Off by default: the router id decides.
        let r = compare(&old, &new, &DecisionConfig::default());
        assert_eq!(r, Some((Ordering::Greater, Step::RouterId)));
    }

    #[test]
    fn router_id_decides_and_uses_originator_id() {
        let a = attrs(|_| {});
        decides(
            Step::RouterId,
            &cand(&a, SourceKind::Ibgp, 1),
            &cand(&a, SourceKind::Ibgp, 2),
            &DecisionConfig::default(),
        );
        // Peer 2 reflects a path originated by 10.0.0.0: lower than peer 1's id.
        let reflected = attrs(|a| a.originator_id = Some(Ipv4Addr::new(10, 0, 0, 0)));
        decides(
            Step::RouterId,
            &cand(&reflected, SourceKind::Ibgp, 2),
            &cand(&a, SourceKind::Ibgp, 1),
            &DecisionConfig::default(),
        );
    }

    #[test]
    fn cluster_list_decides() {
        let id = Ipv4Addr::new(10, 9, 9, 9);
        let short = attrs(|a| {
            a.originator_id = Some(id);
            a.cluster_list = vec![id];
        });
        let long = attrs(|a| {
            a.originator_id = Some(id);
            a.cluster_list = vec![id, id];
        });
        decides(
            Step::ClusterListLen,
            &cand(&short, SourceKind::Ibgp, 2),
            &cand(&long, SourceKind::Ibgp, 1),
            &DecisionConfig::default(),
        );
    }

    #[test]
    fn peer_address_decides() {
        let a = attrs(|_| {});
        let mut low = cand(&a, SourceKind::Ibgp, 2);
        let mut high = cand(&a, SourceKind::Ibgp, 1);
        low.router_id = high.router_id;
        low.peer_address = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 0));
        high.peer_address = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 9));
        decides(Step::PeerAddress, &low, &high, &DecisionConfig::default());
    }

    #[test]
    fn path_id_decides_between_add_path_paths() {
        let a = attrs(|_| {});
        let one = cand(&a, SourceKind::Ebgp, 1);
        let mut two = one;
        two.path_id = 2;
        decides(Step::PathId, &one, &two, &DecisionConfig::default());
        assert_eq!(compare(&one, &one, &DecisionConfig::default()), None);
    }

    #[test]
    fn med_elimination_is_order_independent() {
        // The classic MED cycle: A (AS 1, MED 10, iBGP), B (AS 1, MED 5, iBGP, higher id) and
        // C (AS 2, eBGP). Pairwise: B < A (MED), C < B (eBGP), A ? C (eBGP) ...
        let a = attrs(|x| x.med = Some(10));
        let b = attrs(|x| x.med = Some(5));
        let c = attrs(|x| x.as_path = Some(AsPath::sequence([65002])));
        let cands = [
            cand(&a, SourceKind::Ibgp, 1),
            cand(&b, SourceKind::Ibgp, 3),
            cand(&c, SourceKind::Ibgp, 2),
        ];
        let cfg = DecisionConfig::default();
        let best_of = |order: [usize; 3]| {
            let v: Vec<Candidate> = order.iter().map(|&i| cands[i]).collect();
            let s = select(&v, &cfg).unwrap();
            v[s.best].peer
        };
        let first = best_of([0, 1, 2]);
        for o in [[0, 2, 1], [1, 0, 2], [1, 2, 0], [2, 0, 1], [2, 1, 0]] {
            assert_eq!(best_of(o), first);
        }
    }

    #[test]
    fn multipath_needs_equal_steps_and_same_neighbour_as() {
        let a = attrs(|_| {});
        let other = attrs(|x| x.as_path = Some(AsPath::sequence([65009])));
        let cfg = DecisionConfig {
            max_paths: NonZeroUsize::new(4).unwrap(),
            ..DecisionConfig::default()
        };
        let cands = [
            cand(&a, SourceKind::Ebgp, 3),
            cand(&a, SourceKind::Ebgp, 1),
            cand(&other, SourceKind::Ebgp, 2),
            cand(&a, SourceKind::Ibgp, 4),
        ];
        let s = select(&cands, &cfg).unwrap();
        assert_eq!(s.best, 1);
        assert_eq!(s.multipath, vec![1, 0]);
        let two = DecisionConfig {
            max_paths: NonZeroUsize::new(1).unwrap(),
            ..cfg
        };
        assert_eq!(select(&cands, &two).unwrap().multipath, vec![1]);
    }
}
