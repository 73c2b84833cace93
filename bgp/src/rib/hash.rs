//! A fast hasher for the RIB's internal maps (prefixes, pointers, small integers).
//!
//! SipHash (std's default) costs more than the rest of a prefix lookup; a 100k-route load does
//! several lookups per route. This is a multiply-rotate hash (FxHash's mix) with a final
//! avalanche, seeded once per process from std's random source, so inputs cannot be precomputed
//! to collide. It is not a keyed PRF: the prefixes come from configured peers, which max-prefix
//! already bounds.

use std::hash::{BuildHasher, Hasher, RandomState};
use std::sync::OnceLock;

const K: u64 = 0xf135_7aea_2e62_a9c5;

fn seed() -> u64 {
    static SEED: OnceLock<u64> = OnceLock::new();
    *SEED.get_or_init(|| RandomState::new().hash_one(0x5a17_u64))
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Fast;

impl BuildHasher for Fast {
    type Hasher = FastHasher;
    fn build_hasher(&self) -> FastHasher {
        FastHasher(seed())
    }
}

impl Default for Fast {
    fn default() -> Self {
        Fast
    }
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct FastHasher(u64);

impl FastHasher {
    #[inline]
    fn add(&mut self, x: u64) {
        self.0 = (self.0.rotate_left(26) ^ x).wrapping_mul(K);
    }
}

impl Hasher for FastHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut b = [0u8; 8];
            b.copy_from_slice(c);
            self.add(u64::from_le_bytes(b));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut b = [0u8; 8];
            b[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(b) ^ ((rest.len() as u64) << 59));
        }
    }

    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    #[inline]
    fn write_u16(&mut self, i: u16) {
        self.add(u64::from(i));
    }

    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.add(u64::from(i));
    }

    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }

    #[inline]
    fn write_u128(&mut self, i: u128) {
        self.add(i as u64);
        self.add((i >> 64) as u64);
    }

    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        // murmur3's fmix64: hashbrown takes bucket bits from the low end and tag bits from the
        // high end, so both must depend on every input bit.
        let mut h = self.0;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^ (h >> 33)
    }
}

/// A `HashMap` with [`Fast`] hashing.
pub(crate) type FastMap<K, V> = std::collections::HashMap<K, V, Fast>;

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn spreads_prefixes() {
        let b = Fast;
        let hashes: HashSet<u64> = (0u32..10_000)
            .map(|i| b.hash_one(ipnet::Ipv4Net::new((i << 8).into(), 24).ok()))
            .collect();
        assert_eq!(hashes.len(), 10_000);
        // Low bits (bucket index) spread too.
        let low: HashSet<u64> = hashes.iter().map(|h| h & 0x3fff).collect();
        assert!(low.len() > 5_000, "{}", low.len());
    }
}
