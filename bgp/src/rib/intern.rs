//! Interning of path attributes: one `Arc<Attrs>` per distinct value, however many routes use it.
//!
//! A full table from one peer typically has a few hundred thousand routes but only tens of
//! thousands of distinct attribute sets, and a relayed /24 table often just one. The store is a
//! `HashSet<Arc<Attrs>>`; an entry is dropped when the RIB releases the last reference it holds
//! ([`Interner::release`]), and a sweep catches the entries whose last outside reference (a view
//! or an event handed to the daemon) went away later.

use std::collections::HashSet;
use std::sync::Arc;

use super::path::Attrs;

#[derive(Debug, Default)]
pub(crate) struct Interner {
    set: HashSet<Arc<Attrs>>,
    /// Releases that could not free their entry because someone else held it; a sweep is due
    /// once these outnumber the entries (amortized O(1) per release).
    deferred: usize,
}

impl Interner {
    /// The shared copy of `attrs`.
    pub fn intern(&mut self, attrs: Attrs) -> Arc<Attrs> {
        if let Some(a) = self.set.get(&attrs) {
            return Arc::clone(a);
        }
        let a = Arc::new(attrs);
        self.set.insert(Arc::clone(&a));
        a
    }

    /// Gives back one reference the RIB held; frees the entry when only the store is left.
    pub fn release(&mut self, a: Arc<Attrs>) {
        // The store's copy plus `a`.
        if Arc::strong_count(&a) == 2 {
            self.set.remove(&*a);
        } else {
            self.deferred += 1;
        }
    }

    /// Drops every entry nobody but the store refers to.
    pub fn sweep(&mut self) {
        self.set.retain(|a| Arc::strong_count(a) > 1);
        self.deferred = 0;
    }

    /// Sweeps if enough releases were deferred to pay for it.
    pub fn maybe_sweep(&mut self) {
        if self.deferred > 0 && self.deferred >= self.set.len() {
            self.sweep();
        }
    }

    /// Approximate heap bytes: the set's buckets, each `Arc` allocation and the attribute
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
        self.set.capacity() * 9 + self.set.iter().map(per).sum::<usize>()
    }

    pub fn len(&self) -> usize {
        self.set.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_and_frees() {
        let mut i = Interner::default();
        let a = i.intern(Attrs::default());
        let b = i.intern(Attrs::default());
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(i.len(), 1);
        i.release(a);
        assert_eq!(i.len(), 1);
        i.release(b);
        assert_eq!(i.len(), 0);
    }

    #[test]
    fn sweep_frees_entries_released_while_shared() {
        let mut i = Interner::default();
        let a = i.intern(Attrs::default());
        let outside = Arc::clone(&a);
        i.release(a);
        assert_eq!(i.len(), 1);
        drop(outside);
        i.maybe_sweep();
        assert_eq!(i.len(), 0);
    }
}
