//! The route table of one address family: Adj-RIBs-In and Loc-RIB in one map.
//!
//! Every path accepted from any peer (and every local path) sits under its prefix, and the
//! decision process marks the best and multipath ones with flag bits. The Adj-RIB-In of a peer
//! is the paths whose `peer` is that peer (a scan; the API and session teardown are the only
//! users), the Loc-RIB is the flagged paths. One map instead of one per peer saves a hash-table
//! entry and a copy of the prefix per route.
//!
//! Memory per route with one path: the map entry (prefix plus a 24-byte [`Paths`]) and the
//! table's spare capacity; attributes are shared. Prefixes with several paths keep them in a
//! boxed vector.
//!
//! Changes are tracked in `changed`: the first time a prefix changes after a drain, the state it
//! had (its best path and a fingerprint of its multipath set) is appended, and its paths are
//! flagged [`CHANGED`](flag::CHANGED). A drain compares that with the current state, so a prefix
//! that changed many times between drains produces at most one outbound change, and what each
//! update group was last sent need not be stored. The flag, not a second map, says whether a
//! prefix already has its snapshot: an announcement costs one hash lookup, not two.
//!
//! A prefix whose last path went loses its flag with its entry; if it comes back before the
//! drain, it is appended again with an empty snapshot. The first entry of a prefix is the
//! state at the last drain, so [`Table::drain_changes`] takes the first and skips the others.

use std::collections::hash_map::Entry;
use std::fmt::Debug;
use std::hash::{BuildHasher, Hash};
use std::sync::Arc;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use super::decision::{Candidate, DecisionConfig, select};
use super::group::Prefixes;
use super::hash::{Fast, FastMap, PrefixMap};
use super::intern::Interner;
use super::path::{Attrs, Path, PeerId, SourceInfo, flag};
use super::peer::Peers;
use crate::family::Family;

/// A prefix type the RIB keeps a table for.
pub(crate) trait Key: Copy + Eq + Hash + Ord + Debug + 'static {
    const FAMILY: Family;
    fn net(self) -> IpNet;
    fn wrap(v: Vec<Self>) -> Prefixes;
}

impl Key for Ipv4Net {
    const FAMILY: Family = Family::IPV4_UNICAST;
    fn net(self) -> IpNet {
        IpNet::V4(self)
    }
    fn wrap(v: Vec<Self>) -> Prefixes {
        Prefixes::V4(v)
    }
}

impl Key for Ipv6Net {
    const FAMILY: Family = Family::IPV6_UNICAST;
    fn net(self) -> IpNet {
        IpNet::V6(self)
    }
    fn wrap(v: Vec<Self>) -> Prefixes {
        Prefixes::V6(v)
    }
}

/// The paths of one prefix; never empty (an empty prefix is removed from the map).
#[derive(Debug, Clone)]
pub(crate) enum Paths {
    One(Path),
    /// Two or more. Boxed so the enum stays one pointer wider than nothing: 24 bytes, the
    /// size of `One`, instead of 32.
    #[allow(clippy::box_collection)]
    Many(Box<Vec<Path>>),
}

impl Paths {
    pub fn as_slice(&self) -> &[Path] {
        match self {
            Paths::One(p) => std::slice::from_ref(p),
            Paths::Many(v) => v,
        }
    }

    fn as_mut_slice(&mut self) -> &mut [Path] {
        match self {
            Paths::One(p) => std::slice::from_mut(p),
            Paths::Many(v) => v,
        }
    }

    pub fn best(&self) -> Option<&Path> {
        self.as_slice().iter().find(|p| p.is_best())
    }

    /// Adds or replaces the path with the same (peer, path id); returns the replaced one.
    fn upsert(&mut self, path: Path) -> Option<Path> {
        if let Some(slot) = self
            .as_mut_slice()
            .iter_mut()
            .find(|p| p.key() == path.key())
        {
            return Some(std::mem::replace(slot, path));
        }
        match self {
            Paths::One(p) => {
                let first = p.clone();
                *self = Paths::Many(Box::new(vec![first, path]));
            }
            Paths::Many(v) => v.push(path),
        }
        None
    }

    /// Removes the paths `f` selects; `None` when nothing is left.
    fn remove_where(
        self,
        mut f: impl FnMut(&Path) -> bool,
        removed: &mut Vec<Path>,
    ) -> Option<Self> {
        match self {
            Paths::One(p) if f(&p) => {
                removed.push(p);
                None
            }
            one @ Paths::One(_) => Some(one),
            Paths::Many(v) => {
                let (gone, mut kept): (Vec<Path>, Vec<Path>) = v.into_iter().partition(|p| f(p));
                removed.extend(gone);
                match kept.len() {
                    0 => None,
                    1 => kept.pop().map(Paths::One),
                    _ => Some(Paths::Many(Box::new(kept))),
                }
            }
        }
    }
}

/// The best path a prefix had when it first changed after the last drain.
#[derive(Debug, Clone)]
pub(crate) struct Exported {
    /// The source; its facts are looked up when needed (slots of removed peers are kept).
    pub peer: PeerId,
    pub path_id: u32,
    pub attrs: Arc<Attrs>,
}

#[derive(Debug, Clone)]
pub(crate) struct Snapshot {
    pub best: Option<Exported>,
    /// Fingerprint of the multipath set (peers, path ids, next hops).
    pub multipath: u64,
}

/// What selection reads besides the paths.
pub(crate) struct Env<'a> {
    pub peers: &'a Peers,
    pub cfg: &'a DecisionConfig,
}

#[derive(Debug)]
pub(crate) struct Table<P> {
    pub routes: PrefixMap<P, Paths>,
    /// Prefixes changed since the last drain, with their state then; see the module docs for
    /// repeats.
    pub changed: Vec<(P, Snapshot)>,
}

impl<P> Default for Table<P> {
    fn default() -> Self {
        Table {
            routes: PrefixMap::default(),
            changed: Vec::new(),
        }
    }
}

/// The change list's capacity kept across drains: enough for the speaker's batches, without
/// holding on to the peak of a session teardown.
const KEEP_CHANGED: usize = 8192;

impl<P: Key> Table<P> {
    /// Visits each prefix changed since the last drain once, with its state then and its paths
    /// now (`None`: gone), and clears the prefixes' flags; one lookup per entry of the list.
    /// Repeats after a first entry and prefixes added and removed since the drain are skipped.
    pub fn drain_changes(&mut self, mut f: impl FnMut(P, Snapshot, Option<&Paths>)) {
        let mut list = std::mem::take(&mut self.changed);
        for (prefix, snap) in list.drain(..) {
            match self.routes.get_mut(&prefix) {
                // Gone: a change unless it had nothing at the last drain.
                None => {
                    if snap.best.is_some() || snap.multipath != 0 {
                        f(prefix, snap, None);
                    }
                }
                Some(paths) => {
                    if is_changed(paths) {
                        clear_changed(paths);
                        f(prefix, snap, Some(paths));
                    }
                }
            }
        }
        // Nothing appended meanwhile (`f` cannot reach the table): keep a modest capacity.
        if list.capacity() <= KEEP_CHANGED {
            self.changed = list;
        }
    }

    /// The snapshot of every prefix changed since the last drain (the first entry of each).
    pub fn snapshots(&self) -> FastMap<P, &Snapshot> {
        let mut m = FastMap::default();
        for (prefix, snap) in &self.changed {
            m.entry(*prefix).or_insert(snap);
        }
        m
    }
}

fn is_changed(paths: &Paths) -> bool {
    paths.as_slice().first().is_some_and(Path::is_changed)
}

fn mark_changed(paths: &mut Paths) {
    for p in paths.as_mut_slice() {
        p.flags |= flag::CHANGED;
    }
}

fn clear_changed(paths: &mut Paths) {
    for p in paths.as_mut_slice() {
        p.flags &= !flag::CHANGED;
    }
}

pub(crate) fn snapshot(paths: Option<&Paths>) -> Snapshot {
    let Some(paths) = paths else {
        return Snapshot {
            best: None,
            multipath: 0,
        };
    };
    Snapshot {
        best: paths.best().map(|b| Exported {
            peer: b.peer,
            path_id: b.path_id,
            attrs: Arc::clone(&b.attrs),
        }),
        multipath: fingerprint(paths),
    }
}

/// Order-independent digest of the multipath set, for "did forwarding change".
pub(crate) fn fingerprint(paths: &Paths) -> u64 {
    paths
        .as_slice()
        .iter()
        .filter(|p| p.is_multipath())
        .map(|p| Fast.hash_one((p.peer, p.path_id, p.attrs.next_hop)))
        .fold(0u64, u64::wrapping_add)
}

/// Flags that are facts about the path or its prefix, not decisions: they survive reselection.
const KEPT: u8 = flag::STALE | flag::CHANGED;

/// Re-runs the decision process over one prefix's paths and sets their flags.
pub(crate) fn reselect(paths: &mut Paths, env: &Env) {
    let slice = paths.as_mut_slice();
    if let [only] = slice {
        only.flags = (only.flags & KEPT) | flag::BEST | flag::MULTIPATH;
        return;
    }
    let srcs: Vec<SourceInfo> = slice.iter().map(|p| env.peers.source(p.peer)).collect();
    let cands: Vec<Candidate> = slice
        .iter()
        .zip(&srcs)
        .map(|(p, s)| Candidate {
            attrs: &p.attrs,
            kind: s.kind,
            peer: p.peer,
            router_id: s.router_id,
            peer_address: s.address,
            path_id: p.path_id,
            since: p.since,
        })
        .collect();
    let sel = select(&cands, env.cfg);
    drop(cands);
    for p in slice.iter_mut() {
        p.flags &= KEPT;
    }
    if let Some(sel) = sel {
        for i in sel.multipath {
            if let Some(p) = slice.get_mut(i) {
                p.flags |= flag::MULTIPATH;
            }
        }
        if let Some(p) = slice.get_mut(sel.best) {
            p.flags |= flag::BEST;
        }
    }
}

impl<P: Key> Table<P> {
    /// Adds or replaces a path; returns the replaced path's attributes for release and whether
    /// the path is new (for per-peer counts).
    pub fn announce(&mut self, prefix: P, path: Path, env: &Env) -> (Option<Arc<Attrs>>, bool) {
        match self.routes.entry(prefix) {
            Entry::Occupied(mut e) => {
                let paths = e.get_mut();
                if !is_changed(paths) {
                    self.changed.push((prefix, snapshot(Some(paths))));
                }
                let old = paths.upsert(path);
                mark_changed(paths);
                reselect(paths, env);
                let is_new = old.is_none();
                (old.map(|p| p.attrs), is_new)
            }
            Entry::Vacant(v) => {
                self.changed.push((prefix, snapshot(None)));
                let mut path = path;
                path.flags = flag::BEST | flag::MULTIPATH | flag::CHANGED;
                v.insert(Paths::One(path));
                (None, true)
            }
        }
    }

    /// Removes the paths of `prefix` that `f` selects, releasing their attributes; returns how
    /// many were removed.
    pub fn remove(
        &mut self,
        prefix: P,
        mut f: impl FnMut(&Path) -> bool,
        env: &Env,
        intern: &mut Interner,
    ) -> usize {
        let Entry::Occupied(slot) = self.routes.entry(prefix) else {
            return 0;
        };
        // The common case, a prefix's only path going: the snapshot is that path as it was,
        // without copying the set.
        if let Paths::One(p) = slot.get() {
            if !f(p) {
                return 0;
            }
            let before = slot.remove();
            if !is_changed(&before) {
                self.changed.push((prefix, snapshot(Some(&before))));
            }
            if let Paths::One(p) = before {
                intern.release(p.attrs);
            }
            return 1;
        }
        let paths = slot.remove();
        let was_changed = is_changed(&paths);
        let mut removed = Vec::new();
        let rest = paths.remove_where(f, &mut removed);
        let n = removed.len();
        if n > 0 && !was_changed {
            // The snapshot describes the state before the removal: what is left plus what was
            // removed, with the flags they had.
            let mut all: Vec<Path> = rest
                .as_ref()
                .map(|r| r.as_slice().to_vec())
                .unwrap_or_default();
            all.extend(removed.iter().cloned());
            let before = match all.len() {
                1 => all.pop().map(Paths::One),
                _ => Some(Paths::Many(Box::new(all))),
            };
            self.changed.push((prefix, snapshot(before.as_ref())));
        }
        if let Some(mut rest) = rest {
            if n > 0 {
                mark_changed(&mut rest);
                reselect(&mut rest, env);
            }
            self.routes.insert(prefix, rest);
        }
        for p in removed {
            intern.release(p.attrs);
        }
        n
    }

    /// Flags every path of `peer` stale (RFC 4724 §4.2: kept and used while the peer restarts);
    /// returns how many. Selection does not change, so nothing is marked dirty.
    pub fn mark_stale(&mut self, peer: PeerId) -> usize {
        let mut n = 0;
        for paths in self.routes.values_mut() {
            for p in paths.as_mut_slice().iter_mut().filter(|p| p.peer == peer) {
                p.flags |= flag::STALE;
                n += 1;
            }
        }
        n
    }

    /// How many paths of `peer` are stale.
    pub fn stale_count(&self, peer: PeerId) -> usize {
        self.routes
            .values()
            .map(|ps| {
                ps.as_slice()
                    .iter()
                    .filter(|p| p.peer == peer && p.is_stale())
                    .count()
            })
            .sum()
    }

    /// Removes the stale paths of `peer`; returns how many.
    pub fn remove_stale(&mut self, peer: PeerId, env: &Env, intern: &mut Interner) -> usize {
        let stale = |p: &Path| p.peer == peer && p.is_stale();
        let prefixes: Vec<P> = self
            .routes
            .iter()
            .filter(|(_, ps)| ps.as_slice().iter().any(stale))
            .map(|(k, _)| *k)
            .collect();
        prefixes
            .into_iter()
            .map(|k| self.remove(k, stale, env, intern))
            .sum()
    }

    /// Removes every path of `peer`; returns how many.
    pub fn remove_peer(&mut self, peer: PeerId, env: &Env, intern: &mut Interner) -> usize {
        let prefixes: Vec<P> = self
            .routes
            .iter()
            .filter(|(_, ps)| ps.as_slice().iter().any(|p| p.peer == peer))
            .map(|(k, _)| *k)
            .collect();
        prefixes
            .into_iter()
            .map(|k| self.remove(k, |p| p.peer == peer, env, intern))
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_route_entries_stay_small() {
        assert_eq!(std::mem::size_of::<Path>(), 24);
        assert_eq!(std::mem::size_of::<Paths>(), 24);
    }
}
