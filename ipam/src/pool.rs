//! An address pool cut into equally sized blocks: the arithmetic behind AddressPool `blockSize`.
//!
//! Block `i` of a pool starts `i * 2^(max_len - block_len)` addresses after the pool's network
//! address. All of it is `u128` arithmetic, so it is the same for IPv4 and IPv6 and for any pool
//! and block size (sart computed the offset with `2 ^ n`, an XOR, which was only right for /24
//! pools with /29 blocks).

use std::net::IpAddr;

use ipnet::IpNet;
use thiserror::Error;

use crate::family::{IpFamily, bounds, from_u128, is_normal, to_u128};

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PoolError {
    #[error("pool CIDR {cidr} has host bits set (the network is {})", cidr.trunc())]
    HostBitsSet { cidr: IpNet },
    #[error(
        "block prefix length /{block_len} is invalid for pool {cidr}: \
         it must be between /{} and /{}",
        cidr.prefix_len(),
        cidr.max_prefix_len()
    )]
    InvalidBlockLen { cidr: IpNet, block_len: u8 },
}

/// A pool CIDR (always its network address) and the prefix length of its blocks, which is at
/// least the pool's own prefix length and at most the address width.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Pool {
    cidr: IpNet,
    block_len: u8,
}

impl Pool {
    pub fn new(cidr: IpNet, block_len: u8) -> Result<Pool, PoolError> {
        if !is_normal(&cidr) {
            return Err(PoolError::HostBitsSet { cidr });
        }
        if block_len < cidr.prefix_len() || block_len > cidr.max_prefix_len() {
            return Err(PoolError::InvalidBlockLen { cidr, block_len });
        }
        Ok(Pool { cidr, block_len })
    }

    pub fn cidr(&self) -> IpNet {
        self.cidr
    }

    pub fn block_len(&self) -> u8 {
        self.block_len
    }

    pub fn family(&self) -> IpFamily {
        IpFamily::of_net(&self.cidr)
    }

    /// log2 of the number of blocks.
    fn index_bits(&self) -> u32 {
        u32::from(self.block_len - self.cidr.prefix_len())
    }

    /// log2 of the number of addresses in a block.
    fn host_bits(&self) -> u32 {
        u32::from(self.cidr.max_prefix_len() - self.block_len)
    }

    /// The highest block index (exact even where [`Pool::block_count`] saturates).
    pub fn last_index(&self) -> u128 {
        1u128
            .checked_shl(self.index_bits())
            .map_or(u128::MAX, |count| count - 1)
    }

    /// Number of blocks; saturates at `u128::MAX` for the one case that does not fit (a `::/0`
    /// pool of /128 blocks has 2^128).
    pub fn block_count(&self) -> u128 {
        self.last_index().saturating_add(1)
    }

    /// Block number `index`, or `None` past the end of the pool.
    pub fn block(&self, index: u128) -> Option<IpNet> {
        if index > self.last_index() {
            return None;
        }
        // index < 2^index_bits, so the shift stays within the pool's host bits; a shift by 128
        // only happens for a /0 pool of /0 blocks, whose only index is 0.
        let offset = index.checked_shl(self.host_bits()).unwrap_or(0);
        let start = to_u128(self.cidr.network()) + offset;
        IpNet::new(from_u128(self.family(), start), self.block_len).ok()
    }

    /// The index of `block`, if it is exactly one of this pool's blocks (same family, block
    /// prefix length, aligned, inside the pool).
    pub fn index_of(&self, block: IpNet) -> Option<u128> {
        if block.prefix_len() != self.block_len || !is_normal(&block) {
            return None;
        }
        self.block_containing(block.addr())
    }

    /// The index of the block that holds `ip`, if the pool does.
    pub fn block_containing(&self, ip: IpAddr) -> Option<u128> {
        if !self.contains(ip) {
            return None;
        }
        let offset = to_u128(ip) - to_u128(self.cidr.network());
        Some(offset.checked_shr(self.host_bits()).unwrap_or(0))
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        self.cidr.contains(&ip)
    }

    /// Whether the two pools share an address (pools of different families never do).
    pub fn overlaps(&self, other: &Pool) -> bool {
        overlap(&self.cidr, &other.cidr)
    }
}

/// Whether two networks share at least one address.
pub fn overlap(a: &IpNet, b: &IpNet) -> bool {
    let ((a_first, a_last), (b_first, b_last)) = (bounds(a), bounds(b));
    IpFamily::of_net(a) == IpFamily::of_net(b) && a_first <= b_last && b_first <= a_last
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use proptest::prelude::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    fn pool(cidr: &str, block_len: u8) -> Pool {
        Pool::new(net(cidr), block_len).unwrap()
    }

    #[test]
    fn slash24_into_slash29() {
        let p = pool("10.0.0.0/24", 29);
        assert_eq!(p.block_count(), 32);
        for i in 0..32u128 {
            let b = p.block(i).unwrap();
            assert_eq!(b, net(&format!("10.0.0.{}/29", 8 * i)));
            assert_eq!(p.index_of(b), Some(i));
        }
        assert_eq!(p.block(32), None);
        assert_eq!(p.block_containing("10.0.0.13".parse().unwrap()), Some(1));
    }

    #[test]
    fn slash16_into_slash24() {
        let p = pool("10.1.0.0/16", 24);
        assert_eq!(p.block_count(), 256);
        // Where an XOR offset (`2 ^ 8`) goes wrong: block i is i * 256 addresses in.
        assert_eq!(p.block(3), Some(net("10.1.3.0/24")));
        assert_eq!(p.block(255), Some(net("10.1.255.0/24")));
        assert_eq!(p.block(256), None);
        assert_eq!(p.index_of(net("10.1.200.0/24")), Some(200));
    }

    #[test]
    fn ipv6_slash64_into_slash120() {
        let p = pool("fd00:1::/64", 120);
        assert_eq!(p.block_count(), 1 << 56);
        assert_eq!(p.family(), IpFamily::Ipv6);
        assert_eq!(p.block(0), Some(net("fd00:1::/120")));
        assert_eq!(p.block(1), Some(net("fd00:1::100/120")));
        assert_eq!(p.block(0x1234), Some(net("fd00:1::12:3400/120")));
        let last = p.block((1 << 56) - 1).unwrap();
        assert_eq!(last, net("fd00:1::ffff:ffff:ffff:ff00/120"));
        assert_eq!(p.index_of(last), Some((1 << 56) - 1));
        assert_eq!(p.block(1 << 56), None);
    }

    #[test]
    fn single_block_pools() {
        let p = pool("10.0.0.7/32", 32);
        assert_eq!(p.block_count(), 1);
        assert_eq!(p.block(0), Some(net("10.0.0.7/32")));
        assert_eq!(p.block(1), None);
        let p = pool("10.0.100.0/24", 24);
        assert_eq!(p.block_count(), 1);
        assert_eq!(p.index_of(net("10.0.100.0/24")), Some(0));
        let p = pool("0.0.0.0/0", 0);
        assert_eq!(p.block(0), Some(net("0.0.0.0/0")));
        let p = pool("::/0", 0);
        assert_eq!((p.block_count(), p.block(0)), (1, Some(net("::/0"))));
    }

    #[test]
    fn whole_ipv6_space_in_host_routes_saturates() {
        let p = pool("::/0", 128);
        assert_eq!(p.block_count(), u128::MAX);
        assert_eq!(p.last_index(), u128::MAX);
        assert_eq!(
            p.block(u128::MAX),
            Some(net("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128"))
        );
        assert_eq!(pool("0.0.0.0/0", 32).block_count(), 1 << 32);
    }

    #[test]
    fn index_of_rejects_foreign_blocks() {
        let p = pool("10.0.0.0/24", 29);
        assert_eq!(p.index_of(net("10.0.0.8/28")), None, "wrong size");
        assert_eq!(p.index_of(net("10.0.0.9/29")), None, "not aligned");
        assert_eq!(p.index_of(net("10.0.1.0/29")), None, "outside");
        assert_eq!(p.index_of(net("fd00::/125")), None, "other family");
    }

    #[test]
    fn errors() {
        let e = Pool::new(net("10.0.0.1/24"), 29).unwrap_err();
        assert_eq!(
            e,
            PoolError::HostBitsSet {
                cidr: net("10.0.0.1/24")
            }
        );
        assert!(e.to_string().contains("10.0.0.1/24"), "{e}");
        assert!(e.to_string().contains("10.0.0.0/24"), "{e}");
        let e = Pool::new(net("10.0.0.0/24"), 23).unwrap_err();
        assert_eq!(
            e.to_string(),
            "block prefix length /23 is invalid for pool 10.0.0.0/24: \
             it must be between /24 and /32"
        );
        assert!(Pool::new(net("10.0.0.0/24"), 33).is_err());
        assert!(Pool::new(net("fd00::/64"), 129).is_err());
        assert!(Pool::new(net("fd00::/64"), 128).is_ok());
    }

    #[test]
    fn overlaps() {
        assert!(pool("10.0.0.0/8", 24).overlaps(&pool("10.1.0.0/16", 24)));
        assert!(pool("10.1.0.0/16", 24).overlaps(&pool("10.0.0.0/8", 24)));
        assert!(!pool("10.0.0.0/24", 24).overlaps(&pool("10.0.1.0/24", 24)));
        assert!(!pool("0.0.0.0/0", 0).overlaps(&pool("::/0", 0)));
    }

    /// A pool of either family with an arbitrary prefix, block length and network address.
    fn any_pool() -> impl Strategy<Value = Pool> {
        (any::<bool>(), any::<u128>(), any::<u8>(), any::<u8>()).prop_map(|(v6, addr, a, b)| {
            let bits = if v6 { 128 } else { 32 };
            let (len, block_len) = (a % (bits + 1), b % (bits + 1));
            let (len, block_len) = (len.min(block_len), len.max(block_len));
            let ip = from_u128(if v6 { IpFamily::Ipv6 } else { IpFamily::Ipv4 }, addr);
            Pool::new(IpNet::new(ip, len).unwrap().trunc(), block_len).unwrap()
        })
    }

    proptest! {
        #[test]
        fn blocks_round_trip_disjoint_inside(p in any_pool(), i: u128, j: u128) {
            let (i, j) = (i % p.block_count(), j % p.block_count());
            let (a, b) = (p.block(i).unwrap(), p.block(j).unwrap());
            for (index, block) in [(i, a), (j, b)] {
                prop_assert_eq!(p.index_of(block), Some(index));
                prop_assert_eq!(block.prefix_len(), p.block_len());
                prop_assert!(p.cidr().contains(&block));
                prop_assert_eq!(p.block_containing(block.broadcast()), Some(index));
            }
            prop_assert_eq!(i == j, overlap(&a, &b));
            prop_assert_eq!(i < j, a.network() < b.network());
        }

        #[test]
        fn past_the_end_is_none(p in any_pool(), k in 0u128..1000) {
            if let Some(index) = p.last_index().checked_add(1 + k) {
                prop_assert_eq!(p.block(index), None);
            }
        }
    }
}
