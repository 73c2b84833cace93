//! NLRI prefixes (RFC 4271 §4.3, RFC 4760 §5) with the optional add-path identifier (RFC 7911 §3).
//!
//! ```text
//! +---------------------------+
//! |   Path Identifier (4)     |   only when add-path is negotiated for the family
//! +---------------------------+
//! |   Length (1 octet, bits)  |
//! +---------------------------+
//! |   Prefix (variable)       |   ceil(Length / 8) octets
//! +---------------------------+
//! ```
//!
//! Decoding is the hot path of a full-table load, so the loops here avoid per-prefix allocation
//! and bounds checks beyond one length test.

use std::net::{Ipv4Addr, Ipv6Addr};

use ipnet::{Ipv4Net, Ipv6Net};

use crate::error::{DecodeError, ErrorKind};

/// One NLRI entry: a prefix and, with add-path, its path identifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Nlri<P> {
    pub path_id: Option<u32>,
    pub prefix: P,
}

impl<P> Nlri<P> {
    pub fn new(prefix: P) -> Self {
        Nlri {
            path_id: None,
            prefix,
        }
    }

    pub fn with_path_id(prefix: P, path_id: u32) -> Self {
        Nlri {
            path_id: Some(path_id),
            prefix,
        }
    }
}

/// An address prefix type that can appear in NLRI.
pub trait Prefix: Copy + Sized {
    const MAX_LEN: u8;
    /// Builds a prefix of `len` bits from `rest`, which holds at least `ceil(len/8)` bytes (and
    /// usually the entries that follow); bits past `len` are cleared.
    fn read(rest: &[u8], len: u8) -> Self;
    fn prefix_len(&self) -> u8;
    /// Appends the entry (path identifier, length, significant address bytes) in one write.
    fn write_entry(&self, path_id: Option<u32>, out: &mut Vec<u8>);
}

/// Copies the significant bytes of `addr` behind an optional path id and the length octet.
#[inline]
fn write_entry_bytes<const N: usize>(
    addr: [u8; N],
    len: u8,
    path_id: Option<u32>,
    out: &mut Vec<u8>,
) {
    let n = usize::from(len.div_ceil(8));
    match path_id {
        None => {
            // One length octet and N address octets; only 1 + n are used.
            let mut e = [0u8; 17];
            e[0] = len;
            e[1..1 + N].copy_from_slice(&addr);
            out.extend_from_slice(&e[..1 + n]);
        }
        Some(id) => {
            let mut e = [0u8; 21];
            e[..4].copy_from_slice(&id.to_be_bytes());
            e[4] = len;
            e[5..5 + N].copy_from_slice(&addr);
            out.extend_from_slice(&e[..5 + n]);
        }
    }
}

impl Prefix for Ipv4Net {
    const MAX_LEN: u8 = 32;

    #[inline]
    fn read(rest: &[u8], len: u8) -> Self {
        // Fast path: load four bytes at once and mask; bytes of the next entry fall outside the mask.
        let raw = match rest.first_chunk::<4>() {
            Some(b) => u32::from_be_bytes(*b),
            None => {
                let mut a = [0u8; 4];
                a[..rest.len()].copy_from_slice(rest);
                u32::from_be_bytes(a)
            }
        } & mask32(len);
        // len <= 32 is checked by the caller, so this cannot fail; fall back to a /0 defensively.
        Ipv4Net::new(Ipv4Addr::from(raw), len).unwrap_or_default()
    }

    #[inline]
    fn prefix_len(&self) -> u8 {
        Ipv4Net::prefix_len(self)
    }

    #[inline]
    fn write_entry(&self, path_id: Option<u32>, out: &mut Vec<u8>) {
        write_entry_bytes(self.network().octets(), self.prefix_len(), path_id, out);
    }
}

impl Prefix for Ipv6Net {
    const MAX_LEN: u8 = 128;

    #[inline]
    fn read(rest: &[u8], len: u8) -> Self {
        let raw = match rest.first_chunk::<16>() {
            Some(b) => u128::from_be_bytes(*b),
            None => {
                let mut a = [0u8; 16];
                let n = rest.len().min(16);
                a[..n].copy_from_slice(&rest[..n]);
                u128::from_be_bytes(a)
            }
        } & mask128(len);
        Ipv6Net::new(Ipv6Addr::from(raw), len).unwrap_or_default()
    }

    #[inline]
    fn prefix_len(&self) -> u8 {
        Ipv6Net::prefix_len(self)
    }

    #[inline]
    fn write_entry(&self, path_id: Option<u32>, out: &mut Vec<u8>) {
        write_entry_bytes(self.network().octets(), self.prefix_len(), path_id, out);
    }
}

#[inline]
fn mask32(len: u8) -> u32 {
    if len == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(len))
    }
}

#[inline]
fn mask128(len: u8) -> u128 {
    if len == 0 {
        0
    } else {
        u128::MAX << (128 - u32::from(len))
    }
}

/// Decodes a packed NLRI field. `base` is the field's offset in the message, for errors.
/// A malformed field is an "Invalid Network Field" (RFC 4271 §6.3); RFC 7606 §5.3 makes it a
/// session reset because the rest of the field can no longer be located.
pub fn decode_nlri<P: Prefix>(
    buf: &[u8],
    base: usize,
    add_path: bool,
    out: &mut Vec<Nlri<P>>,
) -> Result<(), DecodeError> {
    // Smallest entry is one byte (a default route); reserve for the common /24-ish case.
    out.reserve(buf.len() / if add_path { 8 } else { 4 });
    let mut i = 0;
    while i < buf.len() {
        let start = i;
        let path_id = if add_path {
            let Some(b) = buf.get(i..i + 4) else {
                return Err(DecodeError::new(
                    base + start,
                    ErrorKind::InvalidNetworkField("truncated path identifier"),
                ));
            };
            i += 4;
            Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        } else {
            None
        };
        let Some(&len) = buf.get(i) else {
            return Err(DecodeError::new(
                base + start,
                ErrorKind::InvalidNetworkField("truncated prefix length"),
            ));
        };
        if len > P::MAX_LEN {
            return Err(DecodeError::new(
                base + i,
                ErrorKind::InvalidNetworkField("prefix length too long"),
            ));
        }
        i += 1;
        let n = usize::from(len.div_ceil(8));
        if buf.len() - i < n {
            return Err(DecodeError::new(
                base + i - 1,
                ErrorKind::InvalidNetworkField("prefix runs past the end of the field"),
            ));
        }
        out.push(Nlri {
            path_id,
            prefix: P::read(&buf[i..], len),
        });
        i += n;
    }
    Ok(())
}

/// Size of one entry on the wire.
#[inline]
pub fn nlri_wire_len<P: Prefix>(n: &Nlri<P>, add_path: bool) -> usize {
    usize::from(add_path) * 4 + 1 + usize::from(n.prefix.prefix_len().div_ceil(8))
}

/// Appends one entry. With `add_path` a missing identifier is sent as 0.
#[inline]
pub fn encode_nlri<P: Prefix>(n: &Nlri<P>, add_path: bool, out: &mut Vec<u8>) {
    let id = if add_path {
        Some(n.path_id.unwrap_or(0))
    } else {
        None
    };
    n.prefix.write_entry(id, out);
}

/// Encodes entries from the front of `nlri` while they fit in `room` bytes; returns how many.
pub fn encode_nlri_filling<P: Prefix>(
    nlri: &[Nlri<P>],
    add_path: bool,
    room: usize,
    out: &mut Vec<u8>,
) -> usize {
    let limit = out.len() + room;
    let per_id = usize::from(add_path) * 4 + 1;
    for (i, n) in nlri.iter().enumerate() {
        if out.len() + per_id + usize::from(n.prefix.prefix_len().div_ceil(8)) > limit {
            return i;
        }
        encode_nlri(n, add_path, out);
    }
    nlri.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_packed_v4_with_host_bits_cleared() {
        // 198.18.1.0/24, 0.0.0.0/0, 198.18.0.0/15 with a stray host bit.
        let buf = [24, 198, 18, 1, 0, 15, 198, 19];
        let mut out: Vec<Nlri<Ipv4Net>> = vec![];
        decode_nlri(&buf, 0, false, &mut out).unwrap();
        let got: Vec<String> = out.iter().map(|n| n.prefix.to_string()).collect();
        assert_eq!(got, ["198.18.1.0/24", "0.0.0.0/0", "198.18.0.0/15"]);
    }

    #[test]
    fn rejects_overlong_and_truncated() {
        let mut out: Vec<Nlri<Ipv4Net>> = vec![];
        let e = decode_nlri(&[33, 1, 2, 3, 4, 5], 10, false, &mut out).unwrap_err();
        assert_eq!(e.offset, 10);
        assert_eq!(e.kind.notification().1, 10);
        let e = decode_nlri(&[24, 1, 2], 0, false, &mut out).unwrap_err();
        assert!(matches!(e.kind, ErrorKind::InvalidNetworkField(_)));
        let e = decode_nlri::<Ipv6Net>(&[0, 0, 0], 0, true, &mut vec![]).unwrap_err();
        assert!(matches!(e.kind, ErrorKind::InvalidNetworkField(_)));
    }

    #[test]
    fn add_path_round_trip() {
        let n = Nlri::with_path_id("fd00:1::/64".parse::<Ipv6Net>().unwrap(), 7);
        let mut buf = vec![];
        encode_nlri(&n, true, &mut buf);
        assert_eq!(buf.len(), nlri_wire_len(&n, true));
        let mut out = vec![];
        decode_nlri::<Ipv6Net>(&buf, 0, true, &mut out).unwrap();
        assert_eq!(out, vec![n]);
    }
}
