//! Interning of path attributes: one `Arc<Attrs>` per distinct value, however many routes use it.
//!
//! A full table from one peer typically has a few hundred thousand routes but only tens of
//! thousands of distinct attribute sets, and a relayed /24 table often just one; a table where
//! every route has its own (a community per route) is the expensive case, so the value is hashed
//! once, when it is interned. The store is keyed by that hash — SipHash with a per-process
//! random key, so a peer cannot aim collisions at it — and the map only mixes the stored `u64`,
//! so growing it rehashes nothing. Two values with one hash (possible, never seen) share a
//! side list.
//!
//! Releasing a reference does not look the value up (that would hash the whole attribute set
//! once more per withdrawn path); entries nobody else refers to are swept in one pass once the
//! releases since the last sweep reach half the entries, so a sweep costs O(1) per release and
//! dead entries never outnumber live ones by much.

use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;

use super::hash::FastMap;
use super::path::Attrs;

/// `S` hashes the values: std's keyed SipHash, or in tests one that makes everything collide.
#[derive(Debug, Default)]
pub(crate) struct Interner<S = RandomState> {
    by_hash: FastMap<u64, Arc<Attrs>>,
    /// Values whose hash an entry of `by_hash` already has.
    collided: Vec<Arc<Attrs>>,
    keys: S,
    /// Releases since the last sweep.
    released: usize,
}

impl<S: BuildHasher> Interner<S> {
    /// The shared copy of `attrs`.
    pub fn intern(&mut self, attrs: Attrs) -> Arc<Attrs> {
        let h = self.keys.hash_one(&attrs);
        match self.by_hash.get(&h) {
            None => {
                let a = Arc::new(attrs);
                self.by_hash.insert(h, Arc::clone(&a));
                a
            }
            Some(a) if **a == attrs => Arc::clone(a),
            Some(_) => {
                if let Some(a) = self.collided.iter().find(|a| ***a == attrs) {
                    return Arc::clone(a);
                }
                let a = Arc::new(attrs);
                self.collided.push(Arc::clone(&a));
                a
            }
        }
    }

    /// Gives back one reference the RIB held; the entry goes at a later sweep if that was the
    /// last one outside the store.
    pub fn release(&mut self, a: Arc<Attrs>) {
        drop(a);
        self.released += 1;
    }

    /// Drops every entry nobody but the store refers to.
    pub fn sweep(&mut self) {
        self.by_hash.retain(|_, a| Arc::strong_count(a) > 1);
        self.collided.retain(|a| Arc::strong_count(a) > 1);
        self.released = 0;
    }

    /// Sweeps once the releases since the last sweep reach half the entries.
    pub fn maybe_sweep(&mut self) {
        if self.released > 0 && self.released * 2 >= self.len() {
            self.sweep();
        }
    }

    /// Approximate heap bytes: the map's buckets, each `Arc` allocation and the attribute
    /// vectors it owns.
    pub fn heap_estimate(&self) -> usize {
        let per = |a: &Arc<Attrs>| {
            let x = &a.attrs;
            16 + std::mem::size_of::<Attrs>()
                + x.as_path.as_ref().map_or(0, |p| {
                    p.segments
                        .iter()
                        .map(|s| 32 + s.asns.len() * 4)
                        .sum::<usize>()
                })
                + x.communities.len() * 4
                + x.cluster_list.len() * 4
                + x.ext_communities.len() * 8
                + x.large_communities.len() * 12
                + x.unknown.iter().map(|u| 32 + u.value.len()).sum::<usize>()
        };
        self.by_hash.capacity() * 17
            + self.collided.capacity() * 8
            + self
                .by_hash
                .values()
                .chain(&self.collided)
                .map(per)
                .sum::<usize>()
    }

    pub fn len(&self) -> usize {
        self.by_hash.len() + self.collided.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_and_frees() {
        let mut i = Interner::<RandomState>::default();
        let a = i.intern(Attrs::default());
        let b = i.intern(Attrs::default());
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(i.len(), 1);
        i.release(a);
        i.maybe_sweep();
        assert_eq!(i.len(), 1, "still referred to");
        i.release(b);
        i.maybe_sweep();
        assert_eq!(i.len(), 0);
    }

    /// Every value hashes to 0: interning must still tell them apart by content.
    #[derive(Default)]
    struct Colliding;

    impl BuildHasher for Colliding {
        type Hasher = Zero;
        fn build_hasher(&self) -> Zero {
            Zero
        }
    }

    struct Zero;

    impl std::hash::Hasher for Zero {
        fn write(&mut self, _: &[u8]) {}
        fn finish(&self) -> u64 {
            0
        }
    }

    #[test]
    fn values_with_one_hash_stay_apart() {
        let mut i = Interner::<Colliding>::default();
        let nh = |n: u32| Attrs {
            next_hop: Some(crate::attribute::NextHop::V4(n.into())),
            ..Attrs::default()
        };
        let a: Vec<_> = (0..3).map(|n| i.intern(nh(n))).collect();
        let again: Vec<_> = (0..3).map(|n| i.intern(nh(n))).collect();
        assert_eq!(i.len(), 3);
        for (x, y) in a.iter().zip(&again) {
            assert!(Arc::ptr_eq(x, y));
        }
        assert!(!Arc::ptr_eq(&a[0], &a[1]) && !Arc::ptr_eq(&a[1], &a[2]));
        drop(again);
        let gone = a.into_iter().nth(1);
        drop(gone);
        i.released = 3;
        i.maybe_sweep();
        assert_eq!(i.len(), 0, "nothing outside holds them");
    }

    #[test]
    fn dead_entries_never_outnumber_live_ones_by_much() {
        let mut i = Interner::<RandomState>::default();
        let keep: Vec<_> = (0..100u32)
            .map(|n| {
                i.intern(Attrs {
                    prepend: (n % 200) as u8,
                    next_hop: Some(crate::attribute::NextHop::V4(n.into())),
                    ..Attrs::default()
                })
            })
            .collect();
        for n in 100..1000u32 {
            let a = i.intern(Attrs {
                next_hop: Some(crate::attribute::NextHop::V4(n.into())),
                ..Attrs::default()
            });
            i.release(a);
            i.maybe_sweep();
            assert!(i.len() <= 2 * keep.len() + 2, "{} entries", i.len());
        }
    }

    #[test]
    fn sweep_frees_entries_released_while_shared() {
        let mut i = Interner::<RandomState>::default();
        let a = i.intern(Attrs::default());
        let outside = Arc::clone(&a);
        i.release(a);
        assert_eq!(i.len(), 1);
        drop(outside);
        i.maybe_sweep();
        assert_eq!(i.len(), 0);
    }
}
