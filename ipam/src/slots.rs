//! A sparse set of taken integers in an inclusive range, handing out the lowest free one.
//!
//! Shared by the block and address allocators. Sparse because the ranges are huge (an IPv6 /64
//! has 2^64 addresses, a /64 pool cut into /120 blocks has 2^56 blocks) while the taken part is
//! small (nodes, pods). Finding the lowest free value walks the taken values from the start of the
//! range, so it costs O(taken), which is fine for the sizes a cluster has.

use std::collections::BTreeSet;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Slots {
    first: u128,
    last: u128,
    taken: BTreeSet<u128>,
}

/// Why a value could not be taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TakeError {
    OutOfRange,
    Taken,
}

impl Slots {
    /// `first..=last`; callers guarantee `first <= last`.
    pub(crate) fn new(first: u128, last: u128) -> Slots {
        Slots {
            first,
            last,
            taken: BTreeSet::new(),
        }
    }

    pub(crate) fn in_range(&self, value: u128) -> bool {
        (self.first..=self.last).contains(&value)
    }

    pub(crate) fn lowest_free(&self) -> Option<u128> {
        let mut candidate = self.first;
        for &taken in self.taken.range(self.first..) {
            if taken != candidate {
                break;
            }
            // A taken `last` means everything up to it is taken too.
            candidate = taken.checked_add(1).filter(|next| *next <= self.last)?;
        }
        Some(candidate)
    }

    pub(crate) fn take(&mut self, value: u128) -> Result<(), TakeError> {
        if !self.in_range(value) {
            Err(TakeError::OutOfRange)
        } else if self.taken.insert(value) {
            Ok(())
        } else {
            Err(TakeError::Taken)
        }
    }

    pub(crate) fn release(&mut self, value: u128) -> bool {
        self.taken.remove(&value)
    }

    pub(crate) fn is_taken(&self, value: u128) -> bool {
        self.taken.contains(&value)
    }

    pub(crate) fn taken(&self) -> impl Iterator<Item = u128> + '_ {
        self.taken.iter().copied()
    }

    pub(crate) fn allocated(&self) -> u128 {
        self.taken.len() as u128
    }

    /// Size of the range; saturates at `u128::MAX` for the full 2^128 range.
    pub(crate) fn capacity(&self) -> u128 {
        (self.last - self.first).saturating_add(1)
    }

    pub(crate) fn free(&self) -> u128 {
        self.capacity() - self.allocated()
    }
}
