//! Outbound: draining accumulated changes into best-path events and per-group UPDATE contents,
//! and full tables for new sessions and route refresh.
//!
//! A drain walks the prefixes changed since the previous drain. For each it compares the best
//! path recorded at the first change with the current one, reports a [`BestChange`] when the
//! best path or the multipath set's next hops differ, and, for every update group, exports both
//! (memoized per attribute set) and emits an announcement or withdrawal when the exported
//! results differ. Announcements are grouped by attribute set, so a group's changes become as
//! few UPDATEs as [`Update::encode_split`](crate::Update::encode_split) can pack.

use std::collections::HashMap;
use std::sync::Arc;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use super::adj_in::TableOf;
use super::export::{Batcher, Exporter};
use super::group::{Group, GroupId, OutUpdate};
use super::loc::{Exported, Key, Paths, fingerprint};
use super::path::{Attrs, PeerId};
use super::{Rib, RibError};
use crate::attribute::NextHop;
use crate::family::Family;

/// The best path of a prefix changed: new best and ECMP next hops, or `None` when unreachable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BestChange {
    pub prefix: IpNet,
    pub best: Option<BestRoute>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BestRoute {
    pub peer: PeerId,
    pub path_id: u32,
    pub attrs: Arc<Attrs>,
    /// Next hops of the multipath set, best first, without duplicates; empty for a local path
    /// without a next hop (nothing to install).
    pub next_hops: Vec<NextHop>,
}

/// What a drain says about best paths.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BestReport {
    /// Every change, with its next hops (for a FIB or a watcher).
    Changes,
    /// Only how many: building the changes costs an allocation per prefix.
    Count,
}

/// Everything a drain produced.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Drained {
    /// Empty when drained with [`BestReport::Count`].
    pub best: Vec<BestChange>,
    /// Prefixes whose best path or multipath next hops changed.
    pub best_changed: usize,
    /// Per update group: encode each once, send to every member but `except`.
    pub groups: Vec<(GroupId, Vec<OutUpdate>)>,
    /// Per peer: corrections for the member a group announcement excluded.
    pub peers: Vec<(PeerId, Vec<OutUpdate>)>,
}

impl Drained {
    pub fn is_empty(&self) -> bool {
        self.best_changed == 0 && self.groups.is_empty() && self.peers.is_empty()
    }
}

/// Pointer equality of canonical (memoized) export results.
fn same(a: &Option<Arc<Attrs>>, b: &Option<Arc<Attrs>>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(x), Some(y)) => Arc::ptr_eq(x, y),
        _ => false,
    }
}

impl Rib {
    /// Computes the consequences of everything since the last drain. Call it after a batch of
    /// [`Rib::receive`]/[`Rib::originate`]/[`Rib::close`] calls: a prefix changed several times
    /// in between is reported once.
    pub fn drain(&mut self) -> Drained {
        self.drain_reporting(BestReport::Changes)
    }

    /// [`Rib::drain`], with best-path changes reported as `report` says.
    pub fn drain_reporting(&mut self, report: BestReport) -> Drained {
        let mut d = Drained::default();
        let mut releases = Vec::new();
        let mut groups: HashMap<GroupId, Vec<OutUpdate>> = HashMap::new();
        let mut peers: HashMap<PeerId, Vec<OutUpdate>> = HashMap::new();
        let mut best = BestOut {
            report,
            changes: &mut d.best,
            count: 0,
        };
        self.drain_family::<Ipv4Net>(&mut best, &mut groups, &mut peers, &mut releases);
        self.drain_family::<Ipv6Net>(&mut best, &mut groups, &mut peers, &mut releases);
        d.best_changed = best.count;
        d.groups = groups.into_iter().collect();
        d.groups.sort_by_key(|g| g.0);
        d.peers = peers.into_iter().collect();
        d.peers.sort_by_key(|p| p.0);
        // Only now: memoization keys are addresses, which must stay alive during the drain.
        for a in releases {
            self.intern.release(a);
        }
        self.intern.maybe_sweep();
        d
    }

    fn drain_family<P: Key + TableOf>(
        &mut self,
        best_out: &mut BestOut<'_>,
        groups_out: &mut HashMap<GroupId, Vec<OutUpdate>>,
        peers_out: &mut HashMap<PeerId, Vec<OutUpdate>>,
        releases: &mut Vec<Arc<Attrs>>,
    ) {
        let table = P::of_mut(&mut self.tables);
        if table.changed.is_empty() {
            return;
        }
        // (prefix, best at last drain, best now)
        let mut changes: Vec<(P, Option<Exported>, Option<Exported>)> =
            Vec::with_capacity(table.changed.len());
        table.drain_changes(|prefix, snap, paths| {
            let new = paths.and_then(|ps| ps.best()).map(|b| Exported {
                peer: b.peer,
                path_id: b.path_id,
                attrs: Arc::clone(&b.attrs),
            });
            let best_same = match (&snap.best, &new) {
                (None, None) => true,
                (Some(o), Some(n)) => {
                    o.peer == n.peer && o.path_id == n.path_id && Arc::ptr_eq(&o.attrs, &n.attrs)
                }
                _ => false,
            };
            let fp = paths.map_or(0, fingerprint);
            if !best_same || fp != snap.multipath {
                best_out.count += 1;
                if best_out.report == BestReport::Changes {
                    best_out
                        .changes
                        .push(best_change(prefix.net(), new.as_ref(), paths));
                }
            }
            changes.push((prefix, snap.best, new));
        });

        for (gid, g) in &self.groups.groups {
            if !g.key.params.families.contains(P::FAMILY) {
                continue;
            }
            let mut ex = Exporter::new(&self.local, &self.peers, &g.key, P::FAMILY);
            let mut batch = Batcher::<P>::new();
            let mut extra: HashMap<PeerId, Batcher<P>> = HashMap::new();
            for (prefix, old, new) in &changes {
                diff_one(g, &mut ex, &mut batch, &mut extra, *prefix, old, new);
            }
            if !batch.is_empty() {
                batch.finish(groups_out.entry(*gid).or_default());
            }
            for (p, b) in extra {
                b.finish(peers_out.entry(p).or_default());
            }
        }
        for (_, old, new) in changes {
            releases.extend(old.map(|e| e.attrs));
            drop(new);
        }
    }

    /// The full outbound table of a group as of the last drain (send it, then End-of-RIB, to
    /// peers that just came up together; each gets everything but `except`).
    pub fn group_table(&self, group: GroupId) -> Result<Vec<OutUpdate>, RibError> {
        let g = self
            .groups
            .groups
            .get(&group)
            .ok_or(RibError::UnknownGroup(group))?;
        let mut out = Vec::new();
        self.table_family::<Ipv4Net>(g, None, &mut out);
        self.table_family::<Ipv6Net>(g, None, &mut out);
        Ok(out)
    }

    /// The full outbound table for one peer as of the last drain: for a new session (then
    /// End-of-RIB) or a route refresh request (RFC 2918).
    pub fn peer_table(&self, peer: PeerId) -> Result<Vec<OutUpdate>, RibError> {
        let slot = self.peers.get(peer).ok_or(RibError::UnknownPeer(peer))?;
        let s = slot
            .session
            .as_ref()
            .ok_or(RibError::NotEstablished(peer))?;
        let g = self
            .groups
            .groups
            .get(&s.group)
            .ok_or(RibError::UnknownGroup(s.group))?;
        let mut out = Vec::new();
        self.table_family::<Ipv4Net>(g, Some(peer), &mut out);
        self.table_family::<Ipv6Net>(g, Some(peer), &mut out);
        Ok(out)
    }

    /// The Adj-RIB-Out of a peer for one family: each prefix with the attributes it was sent
    /// (as of the last drain).
    pub fn adj_rib_out(
        &self,
        peer: PeerId,
        family: Family,
    ) -> Result<Vec<(IpNet, Arc<Attrs>)>, RibError> {
        let mut v = Vec::new();
        for u in self.peer_table(peer)? {
            let Some(a) = u.attrs else { continue };
            if u.prefixes.family() != family {
                continue;
            }
            match u.prefixes {
                super::Prefixes::V4(ps) => {
                    v.extend(ps.into_iter().map(|p| (IpNet::V4(p), Arc::clone(&a))))
                }
                super::Prefixes::V6(ps) => {
                    v.extend(ps.into_iter().map(|p| (IpNet::V6(p), Arc::clone(&a))))
                }
            }
        }
        v.sort_by_key(|a| a.0);
        Ok(v)
    }

    fn table_family<P: Key + TableOf>(
        &self,
        g: &Group,
        peer: Option<PeerId>,
        out: &mut Vec<OutUpdate>,
    ) {
        if !g.key.params.families.contains(P::FAMILY) {
            return;
        }
        let table = P::of(&self.tables);
        let mut ex = Exporter::new(&self.local, &self.peers, &g.key, P::FAMILY);
        let mut batch = Batcher::<P>::new();
        let mut emit = |prefix: P, src: PeerId, attrs: &Arc<Attrs>| {
            if peer == Some(src) {
                return;
            }
            if let Some(a) = ex.export(src, attrs) {
                let except = (peer.is_none() && g.has(src)).then_some(src);
                batch.announce(prefix, &a, except);
            }
        };
        let snapshots = table.snapshots();
        for (prefix, paths) in &table.routes {
            // A prefix changed since the last drain is shown as it was then.
            match snapshots.get(prefix) {
                Some(snap) => {
                    if let Some(e) = &snap.best {
                        emit(*prefix, e.peer, &e.attrs);
                    }
                }
                None => {
                    if let Some(b) = paths.best() {
                        emit(*prefix, b.peer, &b.attrs);
                    }
                }
            }
        }
        for (prefix, snap) in &snapshots {
            if table.routes.contains_key(prefix) {
                continue;
            }
            if let Some(e) = &snap.best {
                emit(*prefix, e.peer, &e.attrs);
            }
        }
        batch.finish(out);
    }
}

/// Where a drain puts its best-path changes.
struct BestOut<'a> {
    report: BestReport,
    changes: &'a mut Vec<BestChange>,
    count: usize,
}

/// The new best route of a prefix, with the next hops of its multipath set: the best path's
/// first, then the others', without duplicates.
fn best_change(prefix: IpNet, new: Option<&Exported>, paths: Option<&Paths>) -> BestChange {
    BestChange {
        prefix,
        best: new.zip(paths).map(|(n, ps)| {
            let mp = |best: bool| {
                ps.as_slice()
                    .iter()
                    .filter(move |p| p.is_multipath() && p.is_best() == best)
            };
            let mut next_hops: Vec<NextHop> = Vec::new();
            for nh in mp(true).chain(mp(false)).filter_map(|p| p.attrs.next_hop) {
                if !next_hops.contains(&nh) {
                    next_hops.push(nh);
                }
            }
            BestRoute {
                peer: n.peer,
                path_id: n.path_id,
                attrs: Arc::clone(&n.attrs),
                next_hops,
            }
        }),
    }
}

/// One prefix's outbound change for one group; see the module docs of
/// [`group`](super::group) for the exclusion of the source peer.
fn diff_one<P: Key>(
    g: &Group,
    ex: &mut Exporter,
    batch: &mut Batcher<P>,
    extra: &mut HashMap<PeerId, Batcher<P>>,
    prefix: P,
    old: &Option<Exported>,
    new: &Option<Exported>,
) {
    let Some(new) = new else {
        // Gone: a withdrawal where it had been sent, and nothing else to work out.
        if old.as_ref().is_some_and(|e| ex.admits(e.peer, &e.attrs)) {
            batch.withdraw(prefix);
        }
        return;
    };
    let old_o = old.as_ref().and_then(|e| ex.export(e.peer, &e.attrs));
    let new_o = ex.export(new.peer, &new.attrs);
    let so = old.as_ref().map(|e| e.peer).filter(|p| g.has(*p));
    let sn = Some(new.peer).filter(|p| g.has(*p));
    let changed = !same(&old_o, &new_o);
    if changed {
        match &new_o {
            Some(a) => batch.announce(prefix, a, sn),
            None => batch.withdraw(prefix),
        }
    }
    // The new source is a member and gets nothing: withdraw what it had, if anything.
    if let (Some(sn), Some(_)) = (sn, &new_o)
        && so != Some(sn)
        && old_o.is_some()
    {
        extra
            .entry(sn)
            .or_insert_with(Batcher::new)
            .withdraw(prefix);
    }
    // The old source was a member and had nothing: it needs the route if the group got no
    // announcement that reached it.
    if let (Some(so), Some(a)) = (so, &new_o)
        && sn != Some(so)
        && old_o.is_some()
        && !changed
    {
        extra
            .entry(so)
            .or_insert_with(Batcher::new)
            .announce(prefix, a, None);
    }
}
