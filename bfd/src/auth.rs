//! Authentication of control packets: Keyed SHA1 and Meticulous Keyed SHA1 (RFC 5880 §4.4,
//! §6.7.4). The digest is SHA1 over the whole packet with the key, zero-padded to 20 octets,
//! in the digest field; the sequence number stops replays (exactly, when meticulous; within a
//! window of 3 × Detect Mult packets otherwise).

use std::fmt;

/// Auth Len of both SHA1 methods: type, length, key id, reserved, sequence, 20-octet digest.
pub const SHA1_SECTION_LEN: u8 = 28;
/// The longest key (RFC 5880 §4.4: "padded to a length of 20 bytes").
pub const MAX_KEY_LEN: usize = 20;
/// Where the Authentication Section starts in a packet: right after the mandatory section
/// (RFC 5880 §4.1). The packet module checks at compile time that this is its length.
pub(crate) const SECTION_AT: usize = 24;
/// Where the digest sits in the section: after type, length, key id, reserved and sequence.
const DIGEST_AT: usize = SECTION_AT + 8;

/// bfd.AuthType of the SHA1 methods.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    /// Type 4: the sequence number may repeat, so a packet can be replayed within the window.
    KeyedSha1,
    /// Type 5: every packet carries a higher sequence number than the last.
    MeticulousKeyedSha1,
}

impl Method {
    pub fn code(self) -> u8 {
        match self {
            Method::KeyedSha1 => 4,
            Method::MeticulousKeyedSha1 => 5,
        }
    }

    pub fn from_code(code: u8) -> Option<Method> {
        match code {
            4 => Some(Method::KeyedSha1),
            5 => Some(Method::MeticulousKeyedSha1),
            _ => None,
        }
    }

    /// As BIRD spells it, with dashes: `keyed-sha1`, `meticulous-keyed-sha1`.
    pub fn name(self) -> &'static str {
        match self {
            Method::KeyedSha1 => "keyed-sha1",
            Method::MeticulousKeyedSha1 => "meticulous-keyed-sha1",
        }
    }

    pub fn from_name(name: &str) -> Option<Method> {
        [Method::KeyedSha1, Method::MeticulousKeyedSha1]
            .into_iter()
            .find(|m| m.name() == name)
    }
}

/// A key and its id. Never printed.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Key {
    id: u8,
    padded: [u8; MAX_KEY_LEN],
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("a BFD key is 1 to 20 octets, not {0}")]
    Length(usize),
}

impl Key {
    pub fn new(id: u8, secret: &[u8]) -> Result<Key, KeyError> {
        if secret.is_empty() || secret.len() > MAX_KEY_LEN {
            return Err(KeyError::Length(secret.len()));
        }
        let mut padded = [0u8; MAX_KEY_LEN];
        padded[..secret.len()].copy_from_slice(secret);
        Ok(Key { id, padded })
    }

    pub fn id(&self) -> u8 {
        self.id
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key {{ id: {}, .. }}", self.id)
    }
}

/// The authentication section of a packet (RFC 5880 §4.4), as received or as signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Section {
    pub method: Method,
    pub key_id: u8,
    /// Zero when sent; covered by the digest, so kept as received.
    pub reserved: u8,
    pub sequence: u32,
    pub digest: [u8; 20],
}

impl Section {
    /// Writes the section after the mandatory one in `out` (`out[24..52]`).
    pub(crate) fn write(&self, out: &mut [u8]) {
        out[0] = self.method.code();
        out[1] = SHA1_SECTION_LEN;
        out[2] = self.key_id;
        out[3] = self.reserved;
        out[4..8].copy_from_slice(&self.sequence.to_be_bytes());
        out[8..28].copy_from_slice(&self.digest);
    }

    pub(crate) fn read(b: &[u8]) -> Option<Section> {
        let method = Method::from_code(*b.first()?)?;
        if *b.get(1)? != SHA1_SECTION_LEN || b.len() < usize::from(SHA1_SECTION_LEN) {
            return None;
        }
        let mut digest = [0u8; 20];
        digest.copy_from_slice(&b[8..28]);
        Some(Section {
            method,
            key_id: b[2],
            reserved: b[3],
            sequence: u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
            digest,
        })
    }
}

/// SHA1 over `wire` (a whole signed packet) with the key in place of the digest.
pub(crate) fn digest(wire: &[u8], key: &Key) -> [u8; 20] {
    let mut buf = wire.to_vec();
    if let Some(d) = buf.get_mut(DIGEST_AT..DIGEST_AT + MAX_KEY_LEN) {
        d.copy_from_slice(&key.padded);
    }
    let h = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, &buf);
    let mut out = [0u8; 20];
    out.copy_from_slice(h.as_ref());
    out
}

/// Equal without telling, by its timing, how much of a forged digest was right.
pub(crate) fn same(a: &[u8; 20], b: &[u8; 20]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Why a packet failed authentication (RFC 5880 §6.7.4, §6.8.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("packet authenticated, session not")]
    Unexpected,
    #[error("packet not authenticated")]
    Missing,
    #[error("method {got}, expected {want}")]
    Method {
        got: &'static str,
        want: &'static str,
    },
    #[error("key id {0} not configured")]
    KeyId(u8),
    #[error("sequence number {got} outside {from}..={to}")]
    Sequence { got: u32, from: u32, to: u32 },
    #[error("digest mismatch")]
    Digest,
}

/// A session's authentication: what it is configured with, and bfd.XmitAuthSeq,
/// bfd.RcvAuthSeq and bfd.AuthSeqKnown (RFC 5880 §6.8.1).
#[derive(Debug, Clone)]
pub struct Auth {
    method: Method,
    key: Key,
    xmit_seq: u32,
    /// bfd.RcvAuthSeq when bfd.AuthSeqKnown, with when it was last set.
    rcv: Option<(u32, u64)>,
}

impl Auth {
    /// `initial_seq` must be random (§6.8.1), so that a restarted system is not replayed to.
    pub fn new(method: Method, key: Key, initial_seq: u32) -> Auth {
        Auth {
            method,
            key,
            xmit_seq: initial_seq,
            rcv: None,
        }
    }

    pub fn method(&self) -> Method {
        self.method
    }

    pub fn key_id(&self) -> u8 {
        self.key.id
    }

    /// The section for the next packet, whose other bytes are `unsigned` (the packet encoded
    /// with this section's header and a zero digest). Both methods advance the sequence on
    /// every packet: that is what Meticulous requires and Keyed allows.
    pub(crate) fn sign(&mut self, unsigned: &mut [u8]) -> Section {
        self.xmit_seq = self.xmit_seq.wrapping_add(1);
        let mut s = Section {
            method: self.method,
            key_id: self.key.id,
            reserved: 0,
            sequence: self.xmit_seq,
            digest: [0; 20],
        };
        s.write(&mut unsigned[SECTION_AT..]);
        s.digest = digest(unsigned, &self.key);
        s
    }

    /// Whether `wire` carries this key's digest, with no regard to the sequence number and
    /// without moving it: for deciding whether a packet is worth reporting at all.
    pub fn signed_with_key(&self, section: Option<&Section>, wire: &[u8]) -> bool {
        section.is_some_and(|s| {
            s.method == self.method
                && s.key_id == self.key.id
                && same(&digest(wire, &self.key), &s.digest)
        })
    }

    /// Checks a received packet (§6.7.4; the order of erratum 7083: the sequence number,
    /// then the digest, and only a packet that passes both moves bfd.RcvAuthSeq). `wire` is the
    /// packet as received, `forget_after` how long without an authenticated packet makes
    /// bfd.AuthSeqKnown 0 (twice the detection time).
    pub fn check(
        &mut self,
        section: Option<&Section>,
        wire: &[u8],
        detect_mult: u8,
        now: u64,
        forget_after: u64,
    ) -> Result<(), AuthError> {
        let s = section.ok_or(AuthError::Missing)?;
        if s.method != self.method {
            return Err(AuthError::Method {
                got: s.method.name(),
                want: self.method.name(),
            });
        }
        if s.key_id != self.key.id {
            return Err(AuthError::KeyId(s.key_id));
        }
        if let Some((_, at)) = self.rcv
            && now.saturating_sub(at) >= forget_after
        {
            self.rcv = None;
        }
        if let Some((last, _)) = self.rcv {
            let window = 3 * u32::from(detect_mult);
            let first = match self.method {
                Method::KeyedSha1 => 0,
                Method::MeticulousKeyedSha1 => 1,
            };
            let ahead = s.sequence.wrapping_sub(last);
            if ahead < first || ahead > window {
                return Err(AuthError::Sequence {
                    got: s.sequence,
                    from: last.wrapping_add(first),
                    to: last.wrapping_add(window),
                });
            }
        }
        if !same(&digest(wire, &self.key), &s.digest) {
            return Err(AuthError::Digest);
        }
        self.rcv = Some((s.sequence, now));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// A packet BIRD 2.0.12 sent with `authentication keyed sha1; password "secret" { id 7; }`
    /// (Up, mult 3, 100 ms), as captured: the digest is SHA1 over the packet with "secret"
    /// zero-padded to 20 octets in its place.
    fn bird_like(seq: u32, key: &Key) -> Vec<u8> {
        let mut b = vec![
            0x20, 0xc4, 0x03, 0x34, 0, 0, 0, 1, 0, 0, 0, 2, 0, 1, 0x86, 0xa0, 0, 1, 0x86, 0xa0, 0,
            0, 0, 0,
        ];
        b.extend_from_slice(&[4, 28, 7, 0]);
        b.extend_from_slice(&seq.to_be_bytes());
        b.extend_from_slice(&key.padded);
        let d = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, &b);
        b[32..52].copy_from_slice(d.as_ref());
        b
    }

    #[test]
    fn keys_are_1_to_20_octets_and_never_printed() {
        assert_eq!(Key::new(1, b""), Err(KeyError::Length(0)));
        assert_eq!(Key::new(1, &[b'x'; 21]), Err(KeyError::Length(21)));
        let k = Key::new(9, b"secret").unwrap();
        assert!(!format!("{k:?}").contains("secret"));
        assert_eq!(&k.padded[..7], b"secret\0");
    }

    #[test]
    fn digest_and_sequence_window() {
        let key = Key::new(7, b"secret").unwrap();
        let mut a = Auth::new(Method::KeyedSha1, key, 0);
        let check = |a: &mut Auth, wire: &[u8], now: u64| {
            let s = Section::read(&wire[24..]).unwrap();
            a.check(Some(&s), wire, 3, now, 1_000_000)
        };
        let w = bird_like(1000, &key);
        assert_eq!(check(&mut a, &w, 0), Ok(()));
        // Keyed: the same number again, and up to 3 × 3 ahead.
        assert_eq!(check(&mut a, &w, 1), Ok(()));
        assert_eq!(check(&mut a, &bird_like(1009, &key), 2), Ok(()));
        assert!(matches!(
            check(&mut a, &bird_like(1019, &key), 3),
            Err(AuthError::Sequence {
                got: 1019,
                from: 1009,
                to: 1018
            })
        ));
        // Behind: a replay of an older packet.
        assert!(matches!(
            check(&mut a, &w, 4),
            Err(AuthError::Sequence { .. })
        ));
        // After a long silence any number is taken again.
        assert_eq!(check(&mut a, &w, 2_000_000), Ok(()));
        // One flipped bit anywhere, or another key.
        for i in [1, 7, 30, 40] {
            let mut bad = bird_like(1001, &key);
            bad[i] ^= 1;
            let s = Section::read(&bad[24..]).unwrap();
            assert!(
                a.check(Some(&s), &bad, 3, 2_000_001, 1_000_000).is_err(),
                "{i}"
            );
        }
        let other = bird_like(1001, &Key::new(7, b"secreT").unwrap());
        assert_eq!(check(&mut a, &other, 2_000_002), Err(AuthError::Digest));
        // A failed packet moved nothing: the next good one in the window passes.
        assert_eq!(check(&mut a, &bird_like(1002, &key), 2_000_003), Ok(()));
    }

    #[test]
    fn meticulous_wants_a_higher_number_every_time() {
        let key = Key::new(7, b"secret").unwrap();
        let mut a = Auth::new(Method::MeticulousKeyedSha1, key, 0);
        let mut w = bird_like(u32::MAX, &key);
        w[24] = 5;
        let sign = |w: &mut Vec<u8>, seq: u32| {
            w[28..32].copy_from_slice(&seq.to_be_bytes());
            let d = digest(w, &key);
            w[32..52].copy_from_slice(&d);
        };
        sign(&mut w, u32::MAX);
        let s = |w: &[u8]| Section::read(&w[24..]).unwrap();
        assert_eq!(a.check(Some(&s(&w)), &w, 3, 0, 1_000_000), Ok(()));
        assert!(matches!(
            a.check(Some(&s(&w)), &w, 3, 1, 1_000_000),
            Err(AuthError::Sequence { .. })
        ));
        // Across the wrap.
        sign(&mut w, 0);
        assert_eq!(a.check(Some(&s(&w)), &w, 3, 2, 1_000_000), Ok(()));
    }

    #[test]
    fn method_key_id_and_presence_are_checked_first() {
        let key = Key::new(7, b"secret").unwrap();
        let mut a = Auth::new(Method::MeticulousKeyedSha1, key, 0);
        let w = bird_like(5, &key);
        let s = Section::read(&w[24..]).unwrap();
        assert_eq!(a.check(None, &w, 3, 0, 1), Err(AuthError::Missing));
        assert!(matches!(
            a.check(Some(&s), &w, 3, 0, 1),
            Err(AuthError::Method { .. })
        ));
        let mut b = Auth::new(Method::KeyedSha1, Key::new(8, b"secret").unwrap(), 0);
        assert_eq!(b.check(Some(&s), &w, 3, 0, 1), Err(AuthError::KeyId(7)));
    }

    #[test]
    fn what_we_sign_we_accept() {
        let key = Key::new(1, b"k").unwrap();
        let mut tx = Auth::new(Method::MeticulousKeyedSha1, key, u32::MAX - 1);
        let mut rx = Auth::new(Method::MeticulousKeyedSha1, key, 0);
        for now in 0..5 {
            let mut wire = vec![0u8; 52];
            wire[3] = 52;
            let s = tx.sign(&mut wire);
            wire[32..52].copy_from_slice(&s.digest);
            assert_eq!(rx.check(Some(&s), &wire, 3, now, 10), Ok(()));
        }
    }
}
