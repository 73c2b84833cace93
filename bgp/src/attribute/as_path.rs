//! AS_PATH (RFC 4271 §4.3, §5.1.2), 2- and 4-octet encodings (RFC 6793), confederation segments
//! (RFC 5065 §3), and the AS4_PATH reconciliation of RFC 6793 §4.2.3.
//!
//! ```text
//! +--------------+----------------+-------------------------------------+
//! | Type (1)     | Count (1)      | Count x AS number (2 or 4 octets)   |
//! +--------------+----------------+-------------------------------------+
//! ```

use std::fmt;

/// RFC 6793 §9: the 2-octet stand-in for a 4-octet AS number.
pub const AS_TRANS: u16 = 23456;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SegmentType {
    Set,
    Sequence,
    ConfedSequence,
    ConfedSet,
}

impl SegmentType {
    pub fn from_u8(v: u8) -> Option<Self> {
        match v {
            1 => Some(SegmentType::Set),
            2 => Some(SegmentType::Sequence),
            3 => Some(SegmentType::ConfedSequence),
            4 => Some(SegmentType::ConfedSet),
            _ => None,
        }
    }

    pub fn to_u8(self) -> u8 {
        match self {
            SegmentType::Set => 1,
            SegmentType::Sequence => 2,
            SegmentType::ConfedSequence => 3,
            SegmentType::ConfedSet => 4,
        }
    }

    pub fn is_confed(self) -> bool {
        matches!(self, SegmentType::ConfedSequence | SegmentType::ConfedSet)
    }

    pub fn name(self) -> &'static str {
        match self {
            SegmentType::Set => "set",
            SegmentType::Sequence => "sequence",
            SegmentType::ConfedSequence => "confed-sequence",
            SegmentType::ConfedSet => "confed-set",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Segment {
    pub kind: SegmentType,
    pub asns: Vec<u32>,
}

/// An AS path. Always held with real 4-octet AS numbers; AS_TRANS only appears on the wire.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct AsPath {
    pub segments: Vec<Segment>,
}

impl AsPath {
    pub fn sequence(asns: impl IntoIterator<Item = u32>) -> AsPath {
        let asns: Vec<u32> = asns.into_iter().collect();
        if asns.is_empty() {
            return AsPath::default();
        }
        AsPath {
            segments: vec![Segment {
                kind: SegmentType::Sequence,
                asns,
            }],
        }
    }

    /// Path length for route selection (RFC 4271 §9.1.2.2 a): a set counts as one, confederation
    /// segments count as zero (RFC 5065 §5.3).
    pub fn path_len(&self) -> usize {
        self.segments
            .iter()
            .map(|s| match s.kind {
                SegmentType::Sequence => s.asns.len(),
                SegmentType::Set => 1,
                SegmentType::ConfedSequence | SegmentType::ConfedSet => 0,
            })
            .sum()
    }

    pub fn contains(&self, asn: u32) -> bool {
        self.segments.iter().any(|s| s.asns.contains(&asn))
    }

    /// The neighbouring AS: the first AS of a leading AS_SEQUENCE (RFC 4271 §9.1.2.2 c).
    pub fn neighbor_as(&self) -> Option<u32> {
        match self.segments.first() {
            Some(Segment {
                kind: SegmentType::Sequence,
                asns,
            }) => asns.first().copied(),
            _ => None,
        }
    }

    /// Prepends `asn` `count` times to the leading sequence (RFC 4271 §5.1.2).
    pub fn prepend(&mut self, asn: u32, count: usize) {
        match self.segments.first_mut() {
            Some(s) if s.kind == SegmentType::Sequence => {
                s.asns.splice(0..0, std::iter::repeat_n(asn, count));
            }
            _ => self.segments.insert(
                0,
                Segment {
                    kind: SegmentType::Sequence,
                    asns: vec![asn; count],
                },
            ),
        }
    }

    /// Decodes the attribute value; `None` means malformed per RFC 7606 §7.2.
    pub(crate) fn decode(mut b: &[u8], four_octet: bool) -> Option<AsPath> {
        let width = if four_octet { 4 } else { 2 };
        let mut segments = Vec::new();
        while !b.is_empty() {
            let [t, n, rest @ ..] = b else {
                return None;
            };
            let kind = SegmentType::from_u8(*t)?;
            let n = usize::from(*n);
            if n == 0 || rest.len() < n * width {
                return None;
            }
            let (body, rest) = rest.split_at(n * width);
            let asns = if four_octet {
                body.chunks_exact(4)
                    .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
                    .collect()
            } else {
                body.chunks_exact(2)
                    .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
                    .collect()
            };
            segments.push(Segment { kind, asns });
            b = rest;
        }
        Some(AsPath { segments })
    }

    /// Encodes the value. In 2-octet form, AS numbers that do not fit become AS_TRANS and the
    /// return value says so (the caller then adds AS4_PATH, RFC 6793 §4.2.2).
    pub(crate) fn encode(&self, four_octet: bool, out: &mut Vec<u8>) -> bool {
        let mut lossy = false;
        for s in &self.segments {
            // A segment holds at most 255 AS numbers; longer ones are split.
            for chunk in s.asns.chunks(255) {
                out.push(s.kind.to_u8());
                out.push(chunk.len() as u8);
                for &asn in chunk {
                    if four_octet {
                        out.extend_from_slice(&asn.to_be_bytes());
                    } else {
                        let short = u16::try_from(asn).unwrap_or_else(|_| {
                            lossy = true;
                            AS_TRANS
                        });
                        out.extend_from_slice(&short.to_be_bytes());
                    }
                }
            }
        }
        lossy
    }

    /// The AS4_PATH to send with a 2-octet AS_PATH: the path without confederation segments.
    pub(crate) fn as4_path(&self) -> AsPath {
        AsPath {
            segments: self
                .segments
                .iter()
                .filter(|s| !s.kind.is_confed())
                .cloned()
                .collect(),
        }
    }

    /// RFC 6793 §4.2.3: merge AS_PATH received from a 2-octet speaker with its AS4_PATH.
    pub fn reconcile(&self, as4: &AsPath) -> AsPath {
        let n = self.path_len();
        let n4 = as4.path_len();
        if n < n4 {
            // The AS4_PATH is longer than the path it annotates: ignore it.
            return self.clone();
        }
        let mut need = n - n4;
        let mut segments = Vec::new();
        for s in &self.segments {
            match s.kind {
                SegmentType::ConfedSequence | SegmentType::ConfedSet => segments.push(s.clone()),
                _ if need == 0 => break,
                SegmentType::Sequence => {
                    let take = need.min(s.asns.len());
                    segments.push(Segment {
                        kind: SegmentType::Sequence,
                        asns: s.asns[..take].to_vec(),
                    });
                    need -= take;
                }
                SegmentType::Set => {
                    segments.push(s.clone());
                    need -= 1;
                }
            }
        }
        // Where the leading part ends in a sequence and AS4_PATH starts with one, they are one
        // sequence on the wire-independent path.
        let mut rest = as4.segments.iter().cloned();
        if let (Some(last), Some(first)) = (segments.last_mut(), as4.segments.first())
            && last.kind == SegmentType::Sequence
            && first.kind == SegmentType::Sequence
            && last.asns.len() + first.asns.len() <= 255
        {
            last.asns.extend_from_slice(&first.asns);
            rest.next();
        }
        segments.extend(rest);
        AsPath { segments }
    }
}

impl fmt::Display for AsPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for s in &self.segments {
            if !first {
                f.write_str(" ")?;
            }
            first = false;
            let (open, close) = match s.kind {
                SegmentType::Sequence => ("", ""),
                SegmentType::Set => ("{", "}"),
                SegmentType::ConfedSequence => ("(", ")"),
                SegmentType::ConfedSet => ("[", "]"),
            };
            let list: Vec<String> = s.asns.iter().map(u32::to_string).collect();
            let sep = if matches!(s.kind, SegmentType::Set | SegmentType::ConfedSet) {
                ","
            } else {
                " "
            };
            write!(f, "{open}{}{close}", list.join(sep))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seq(v: &[u32]) -> Segment {
        Segment {
            kind: SegmentType::Sequence,
            asns: v.to_vec(),
        }
    }

    #[test]
    fn reconcile_takes_leading_as_from_as_path() {
        // A 2-octet speaker 65010 prepended itself in front of AS_TRANS + 4200000001.
        let as_path = AsPath {
            segments: vec![seq(&[65010, 23456, 65020])],
        };
        let as4 = AsPath {
            segments: vec![seq(&[4200000001, 65020])],
        };
        assert_eq!(
            as_path.reconcile(&as4),
            AsPath {
                segments: vec![seq(&[65010, 4200000001, 65020])]
            }
        );
        // AS4_PATH longer than AS_PATH: ignored.
        let long = AsPath::sequence([1, 2, 3, 4]);
        assert_eq!(as_path.reconcile(&long), as_path);
    }

    #[test]
    fn two_octet_encoding_marks_as_trans() {
        let p = AsPath::sequence([65001, 4200000000]);
        let mut out = vec![];
        assert!(p.encode(false, &mut out));
        assert_eq!(out, [2, 2, 0xfd, 0xe9, 0x5b, 0xa0]);
        assert_eq!(
            AsPath::decode(&out, false),
            Some(AsPath::sequence([65001, 23456]))
        );
    }

    #[test]
    fn malformed_paths() {
        assert_eq!(AsPath::decode(&[2, 0], true), None);
        assert_eq!(AsPath::decode(&[5, 1, 0, 0, 0, 1], true), None);
        assert_eq!(AsPath::decode(&[2, 2, 0, 0, 0, 1], true), None);
        assert_eq!(AsPath::decode(&[2], true), None);
    }

    #[test]
    fn path_len_counts_sets_once_and_confeds_never() {
        let p = AsPath {
            segments: vec![
                Segment {
                    kind: SegmentType::ConfedSequence,
                    asns: vec![1, 2],
                },
                seq(&[3, 4]),
                Segment {
                    kind: SegmentType::Set,
                    asns: vec![5, 6, 7],
                },
            ],
        };
        assert_eq!(p.path_len(), 3);
        assert_eq!(p.to_string(), "(1 2) 3 4 {5,6,7}");
    }
}
