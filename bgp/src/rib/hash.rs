//! A fast hasher for the RIB's internal maps (prefixes, pointers, small integers).
//!
//! SipHash (std's default) costs more than the rest of a prefix lookup; a 100k-route load does
//! several lookups per route. This is a multiply-rotate hash (FxHash's mix) with a final
//! avalanche, seeded once per process from std's random source, so inputs cannot be precomputed
//! to collide. It is not a keyed PRF: the prefixes come from configured peers, which max-prefix
//! already bounds. The route tables use [`Near`], the same hash over blocks of neighbouring
//! prefixes.

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

/// A `HashMap` keyed by prefixes with [`Near`] hashing.
pub(crate) type PrefixMap<K, V> = std::collections::HashMap<K, V, Near>;

/// Prefixes per block of neighbouring buckets.
const BLOCK: u64 = 8;

/// Hashing for prefix-keyed tables that keeps neighbours together.
///
/// Peers send tables in order, so one UPDATE holds consecutive prefixes of one length. Under a
/// uniform hash each lands in a random bucket, and on a 100k-route table nearly every lookup
/// misses the cache. Here the network numbers `8k .. 8k+7` of one length share one aligned
/// block of 8 buckets (half a group of control bytes, 8 adjacent entries): the block is chosen
/// by the seeded hash of `(k, length)`, the place inside it and the 7-bit tag by the number's
/// low 3 bits, so the 8 never share a tag. Blocks of 16 fill whole groups, and a full group
/// sends the next insertion into another one (measured: slower). Which blocks a peer's
/// prefixes fill is as hard to predict as with [`Fast`].
///
/// It reads the key through `Hash`: IPv4 and IPv6 addresses hash as one `u32`/`u128` in
/// memory order, then the prefix length as a `u8`. Anything else (or a future std that hashes
/// them differently) falls back to [`Fast`]'s hash of the same calls: correct, only without
/// the locality (a unit test notices).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Near;

impl BuildHasher for Near {
    type Hasher = NearHasher;
    fn build_hasher(&self) -> NearHasher {
        NearHasher {
            seen: Seen::Nothing,
            fallback: FastHasher(seed()),
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Seen {
    Nothing,
    V4(u32),
    V6(u128),
    Prefix { number: u128, len: u8 },
    Other,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct NearHasher {
    seen: Seen,
    fallback: FastHasher,
}

impl NearHasher {
    fn other(&mut self) {
        self.seen = Seen::Other;
    }
}

impl Hasher for NearHasher {
    fn write(&mut self, bytes: &[u8]) {
        self.other();
        self.fallback.write(bytes);
    }

    fn write_u8(&mut self, i: u8) {
        self.seen = match self.seen {
            Seen::V4(a) if i <= 32 => Seen::Prefix {
                number: network_number(u128::from(u32::from_be_bytes(a.to_ne_bytes())), 32, i),
                len: i,
            },
            Seen::V6(a) if i <= 128 => Seen::Prefix {
                number: network_number(u128::from_be_bytes(a.to_ne_bytes()), 128, i),
                len: i,
            },
            _ => Seen::Other,
        };
        self.fallback.write_u8(i);
    }

    fn write_u32(&mut self, i: u32) {
        self.seen = match self.seen {
            Seen::Nothing => Seen::V4(i),
            _ => Seen::Other,
        };
        self.fallback.write_u32(i);
    }

    fn write_u128(&mut self, i: u128) {
        self.seen = match self.seen {
            Seen::Nothing => Seen::V6(i),
            _ => Seen::Other,
        };
        self.fallback.write_u128(i);
    }

    fn write_u16(&mut self, i: u16) {
        self.other();
        self.fallback.write_u16(i);
    }

    fn write_u64(&mut self, i: u64) {
        self.other();
        self.fallback.write_u64(i);
    }

    fn write_usize(&mut self, i: usize) {
        self.other();
        self.fallback.write_usize(i);
    }

    fn finish(&self) -> u64 {
        let Seen::Prefix { number, len } = self.seen else {
            return self.fallback.finish();
        };
        let block = number / u128::from(BLOCK);
        let at = (number % u128::from(BLOCK)) as u64;
        let mut h = FastHasher(seed());
        h.write_u128(block);
        h.write_u8(len);
        let m = h.finish();
        // Low bits pick the bucket: a permutation of the block's 8. The top 7 are the tag.
        m ^ at ^ (at << 57)
    }
}

/// The prefix's network number: its first `len` bits as an integer.
fn network_number(addr: u128, bits: u32, len: u8) -> u128 {
    match u32::from(len) {
        0 => 0,
        l => addr >> (bits - l),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn block_of(h: u64) -> u64 {
        h & !(BLOCK - 1) & 0xffff_ffff
    }

    #[test]
    fn near_keeps_consecutive_prefixes_in_one_block_with_distinct_tags() {
        let b = Near;
        let v4 = |i: u32, len: u8| ipnet::Ipv4Net::new((i << (32 - len)).into(), len).unwrap();
        let hs: Vec<u64> = (32u32..40).map(|i| b.hash_one(v4(i, 24))).collect();
        assert!(hs.iter().all(|h| block_of(*h) == block_of(hs[0])));
        let tags: HashSet<u64> = hs.iter().map(|h| h >> 57).collect();
        assert_eq!(tags.len(), 8);
        let places: HashSet<u64> = hs.iter().map(|h| h & (BLOCK - 1)).collect();
        assert_eq!(places.len(), 8);
        // The next 8, another length: other blocks. IPv6 /48s: the same grouping.
        assert_ne!(block_of(b.hash_one(v4(40, 24))), block_of(hs[0]));
        assert_ne!(block_of(b.hash_one(v4(32 << 1, 25))), block_of(hs[0]));
        let v6 = |i: u128| ipnet::Ipv6Net::new((0xfd00u128 << 112 | i << 80).into(), 48).unwrap();
        let h6: Vec<u64> = (0u128..8).map(|i| b.hash_one(v6(i))).collect();
        assert!(h6.iter().all(|h| block_of(*h) == block_of(h6[0])));
        // Same prefix, same hash; other keys fall back to a plain hash.
        assert_eq!(b.hash_one(v4(36, 24)), hs[4]);
        assert_eq!(b.hash_one(7u64), Fast.hash_one(7u64));
    }

    #[test]
    fn near_spreads_blocks() {
        let b = Near;
        let blocks: HashSet<u64> = (0u32..16_000)
            .map(|i| block_of(b.hash_one(ipnet::Ipv4Net::new((i << 8).into(), 24).unwrap())))
            .collect();
        assert!(blocks.len() > 1_800, "{}", blocks.len());
    }

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
