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
    /// Builds a prefix from up to `MAX_LEN / 8` network-order bytes; bits past `len` are cleared.
    fn from_wire(bytes: &[u8], len: u8) -> Self;
    fn prefix_len(&self) -> u8;
    /// Network-order address bytes (only the first `ceil(len/8)` are written).
    fn write_addr(&self, out: &mut Vec<u8>);
}

impl Prefix for Ipv4Net {
    const MAX_LEN: u8 = 32;

    #[inline]
    fn from_wire(bytes: &[u8], len: u8) -> Self {
        let mut a = [0u8; 4];
        a[..bytes.len()].copy_from_slice(bytes);
        let raw = u32::from_be_bytes(a) & mask32(len);
        // len <= 32 is checked by the caller, so this cannot fail; fall back to a /0 defensively.
        Ipv4Net::new(Ipv4Addr::from(raw), len).unwrap_or_default()
    }

    #[inline]
    fn prefix_len(&self) -> u8 {
        Ipv4Net::prefix_len(self)
    }

    #[inline]
    fn write_addr(&self, out: &mut Vec<u8>) {
        let n = usize::from(self.prefix_len().div_ceil(8));
        out.extend_from_slice(&self.network().octets()[..n]);
    }
}

impl Prefix for Ipv6Net {
    const MAX_LEN: u8 = 128;

    #[inline]
    fn from_wire(bytes: &[u8], len: u8) -> Self {
        let mut a = [0u8; 16];
        a[..bytes.len()].copy_from_slice(bytes);
        let raw = u128::from_be_bytes(a) & mask128(len);
        Ipv6Net::new(Ipv6Addr::from(raw), len).unwrap_or_default()
    }

    #[inline]
    fn prefix_len(&self) -> u8 {
        Ipv6Net::prefix_len(self)
    }

    #[inline]
    fn write_addr(&self, out: &mut Vec<u8>) {
        let n = usize::from(self.prefix_len().div_ceil(8));
        out.extend_from_slice(&self.network().octets()[..n]);
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
        let Some(bytes) = buf.get(i..i + n) else {
            return Err(DecodeError::new(
                base + i - 1,
                ErrorKind::InvalidNetworkField("prefix runs past the end of the field"),
            ));
        };
        i += n;
        out.push(Nlri {
            path_id,
            prefix: P::from_wire(bytes, len),
        });
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
    if add_path {
        out.extend_from_slice(&n.path_id.unwrap_or(0).to_be_bytes());
    }
    out.push(n.prefix.prefix_len());
    n.prefix.write_addr(out);
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
