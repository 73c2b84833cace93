//! Which blocks of a pod pool are handed out (the controller's side of BlockRequest →
//! AddressBlock).
//!
//! Sparse: an IPv6 /64 pool of /120 blocks has 2^56 of them, and a cluster takes a few hundred.
//! After a restart the controller rebuilds the state with [`BlockAllocator::mark`] from the
//! AddressBlocks that exist, before handing out new ones.

use ipnet::IpNet;
use thiserror::Error;

use crate::pool::Pool;
use crate::slots::{Slots, TakeError};

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum BlockError {
    #[error("pool {pool} has no free block")]
    Exhausted { pool: IpNet },
    #[error("block index {index} is outside pool {pool}")]
    OutOfRange { pool: IpNet, index: u128 },
    #[error("block index {index} of pool {pool} is already allocated")]
    AlreadyAllocated { pool: IpNet, index: u128 },
}

/// The taken block indexes of one [`Pool`]; hands out the lowest free index first, so that a
/// freed block is reused before the pool grows into new space.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockAllocator {
    pool: Pool,
    slots: Slots,
}

impl BlockAllocator {
    pub fn new(pool: Pool) -> BlockAllocator {
        BlockAllocator {
            pool,
            slots: Slots::new(0, pool.last_index()),
        }
    }

    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// Takes the lowest free index; its block is `self.pool().block(index)`.
    pub fn allocate_lowest(&mut self) -> Result<u128, BlockError> {
        let pool = self.pool.cidr();
        let index = self
            .slots
            .lowest_free()
            .ok_or(BlockError::Exhausted { pool })?;
        self.mark(index)?;
        Ok(index)
    }

    /// Records an index as taken (rebuilding from the cluster). Taking it twice is an error:
    /// two AddressBlocks claim the same addresses.
    pub fn mark(&mut self, index: u128) -> Result<(), BlockError> {
        let pool = self.pool.cidr();
        self.slots.take(index).map_err(|e| match e {
            TakeError::OutOfRange => BlockError::OutOfRange { pool, index },
            TakeError::Taken => BlockError::AlreadyAllocated { pool, index },
        })
    }

    /// Frees an index; `false` if it was not taken (releasing twice is harmless).
    pub fn release(&mut self, index: u128) -> bool {
        self.slots.release(index)
    }

    pub fn is_allocated(&self, index: u128) -> bool {
        self.slots.is_taken(index)
    }

    /// Taken indexes, lowest first.
    pub fn iter(&self) -> impl Iterator<Item = u128> + '_ {
        self.slots.taken()
    }

    pub fn allocated(&self) -> u128 {
        self.slots.allocated()
    }

    pub fn free(&self) -> u128 {
        self.slots.free()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    fn allocator(cidr: &str, block_len: u8) -> BlockAllocator {
        BlockAllocator::new(Pool::new(cidr.parse().unwrap(), block_len).unwrap())
    }

    #[test]
    fn lowest_first_and_reuse_after_release() {
        let mut a = allocator("10.0.0.0/24", 29);
        assert_eq!((a.allocated(), a.free()), (0, 32));
        assert_eq!(a.allocate_lowest(), Ok(0));
        assert_eq!(a.allocate_lowest(), Ok(1));
        assert_eq!(a.allocate_lowest(), Ok(2));
        assert!(a.release(1));
        assert!(!a.release(1));
        assert_eq!(a.allocate_lowest(), Ok(1));
        assert_eq!(a.pool().block(1).unwrap().to_string(), "10.0.0.8/29");
        assert_eq!((a.allocated(), a.free()), (3, 29));
    }

    #[test]
    fn exhaustion() {
        let mut a = allocator("10.0.0.0/30", 31);
        assert_eq!(a.allocate_lowest(), Ok(0));
        assert_eq!(a.allocate_lowest(), Ok(1));
        let e = a.allocate_lowest().unwrap_err();
        assert_eq!(
            e,
            BlockError::Exhausted {
                pool: "10.0.0.0/30".parse().unwrap()
            }
        );
        let mut a = allocator("10.0.0.9/32", 32);
        assert_eq!(a.allocate_lowest(), Ok(0));
        assert!(a.allocate_lowest().is_err());
    }

    #[test]
    fn mark_rebuilds_state() {
        let mut a = allocator("10.0.0.0/16", 24);
        a.mark(0).unwrap();
        a.mark(2).unwrap();
        assert!(matches!(
            a.mark(2),
            Err(BlockError::AlreadyAllocated { index: 2, .. })
        ));
        assert!(matches!(
            a.mark(256),
            Err(BlockError::OutOfRange { index: 256, .. })
        ));
        assert_eq!(a.allocate_lowest(), Ok(1));
        assert_eq!(a.allocate_lowest(), Ok(3));
        assert_eq!(a.iter().collect::<Vec<_>>(), vec![0, 1, 2, 3]);
        assert!(a.is_allocated(3) && !a.is_allocated(4));
    }

    #[test]
    fn ipv6_pool_is_sparse() {
        let mut a = allocator("fd00:1::/64", 120);
        assert_eq!(a.free(), 1 << 56);
        a.mark((1 << 56) - 1).unwrap();
        assert_eq!(a.allocate_lowest(), Ok(0));
        assert_eq!((a.allocated(), a.free()), (2, (1 << 56) - 2));
    }
}
