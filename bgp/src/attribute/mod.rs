//! Path attributes (RFC 4271 §4.3, §5) and their error handling (RFC 7606 §7).
//!
//! ```text
//! +----------------+----------------+------------------------------+-------------------+
//! | Flags (1)      | Type code (1)  | Length (1, or 2 if Extended) | Value (variable)  |
//! +----------------+----------------+------------------------------+-------------------+
//! Flags: O(ptional) 0x80, T(ransitive) 0x40, P(artial) 0x20, E(xtended length) 0x10
//! ```

pub mod as_path;
pub mod community;
pub mod mp;

use std::net::Ipv4Addr;

use crate::context::Context;
use crate::error::{DecodeError, EncodeError, ErrorAction, ErrorKind, UpdateError};
use crate::open::AS_TRANS;
use crate::wire::{Reader, be_u32, len_u16};

pub use as_path::{AsPath, Segment, SegmentType};
pub use community::{Community, ExtCommunity, LargeCommunity};
pub use mp::{Ipv6NextHop, MpReach, MpUnreach, NextHop};

/// Attribute type codes (IANA "BGP Path Attributes").
pub mod code {
    pub const ORIGIN: u8 = 1;
    pub const AS_PATH: u8 = 2;
    pub const NEXT_HOP: u8 = 3;
    pub const MULTI_EXIT_DISC: u8 = 4;
    pub const LOCAL_PREF: u8 = 5;
    pub const ATOMIC_AGGREGATE: u8 = 6;
    pub const AGGREGATOR: u8 = 7;
    pub const COMMUNITIES: u8 = 8;
    pub const ORIGINATOR_ID: u8 = 9;
    pub const CLUSTER_LIST: u8 = 10;
    pub const MP_REACH_NLRI: u8 = 14;
    pub const MP_UNREACH_NLRI: u8 = 15;
    pub const EXTENDED_COMMUNITIES: u8 = 16;
    pub const AS4_PATH: u8 = 17;
    pub const AS4_AGGREGATOR: u8 = 18;
    pub const LARGE_COMMUNITY: u8 = 32;
    pub const OTC: u8 = 35;
}

pub mod flag {
    pub const OPTIONAL: u8 = 0x80;
    pub const TRANSITIVE: u8 = 0x40;
    pub const PARTIAL: u8 = 0x20;
    pub const EXTENDED_LENGTH: u8 = 0x10;
}

use flag::{OPTIONAL, PARTIAL, TRANSITIVE};

/// ORIGIN (RFC 4271 §5.1.1); the order is the route-selection preference.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Origin {
    #[default]
    Igp,
    Egp,
    Incomplete,
}

impl Origin {
    pub fn name(self) -> &'static str {
        match self {
            Origin::Igp => "igp",
            Origin::Egp => "egp",
            Origin::Incomplete => "incomplete",
        }
    }
}

/// AGGREGATOR (RFC 4271 §5.1.7), always held with the real 4-octet AS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Aggregator {
    pub asn: u32,
    pub address: Ipv4Addr,
}

/// An attribute we do not interpret, kept as received.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RawAttribute {
    pub flags: u8,
    pub type_code: u8,
    pub value: Vec<u8>,
}

/// Every path attribute except MP_REACH/MP_UNREACH, which belong to the UPDATE's NLRI.
/// One field per attribute, so duplicates cannot be represented; this is also the unit a RIB interns.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct PathAttributes {
    pub origin: Option<Origin>,
    pub as_path: Option<AsPath>,
    pub next_hop: Option<Ipv4Addr>,
    pub med: Option<u32>,
    pub local_pref: Option<u32>,
    pub atomic_aggregate: bool,
    pub aggregator: Option<Aggregator>,
    pub communities: Vec<Community>,
    pub originator_id: Option<Ipv4Addr>,
    pub cluster_list: Vec<Ipv4Addr>,
    pub ext_communities: Vec<ExtCommunity>,
    pub large_communities: Vec<LargeCommunity>,
    /// Only-to-Customer (RFC 9234 §5).
    pub otc: Option<u32>,
    /// Unrecognized optional attributes. Transitive ones are propagated with the Partial bit set;
    /// non-transitive ones are never sent (RFC 4271 §5).
    pub unknown: Vec<RawAttribute>,
}

/// The (Optional, Transitive) flags a recognized attribute must carry.
fn expected_flags(ty: u8) -> Option<u8> {
    Some(match ty {
        code::ORIGIN
        | code::AS_PATH
        | code::NEXT_HOP
        | code::LOCAL_PREF
        | code::ATOMIC_AGGREGATE => TRANSITIVE,
        code::MULTI_EXIT_DISC
        | code::ORIGINATOR_ID
        | code::CLUSTER_LIST
        | code::MP_REACH_NLRI
        | code::MP_UNREACH_NLRI => OPTIONAL,
        code::AGGREGATOR
        | code::COMMUNITIES
        | code::EXTENDED_COMMUNITIES
        | code::AS4_PATH
        | code::AS4_AGGREGATOR
        | code::LARGE_COMMUNITY
        | code::OTC => OPTIONAL | TRANSITIVE,
        _ => return None,
    })
}

/// RFC 4271 §4.3: O and T must match the attribute; Partial only on optional transitive ones.
fn flags_ok(flags: u8, expected: u8) -> bool {
    let ot = flags & (OPTIONAL | TRANSITIVE);
    ot == expected && (flags & PARTIAL == 0 || expected == OPTIONAL | TRANSITIVE)
}

/// Result of decoding the attribute list of one UPDATE.
#[derive(Debug, Default)]
pub(crate) struct Decoded {
    pub attrs: PathAttributes,
    pub mp_reach: Option<MpReach>,
    pub mp_unreach: Option<MpUnreach>,
    pub errors: Vec<UpdateError>,
}

/// Decodes the path attributes field starting at message offset `base`. Returns `Err` only for
/// errors that reset the session; the rest are collected in `Decoded::errors`.
pub(crate) fn decode(buf: &[u8], base: usize, ctx: &Context) -> Result<Decoded, DecodeError> {
    let mut d = Decoded::default();
    let mut r = Reader::new(buf, base);
    let mut seen = [false; 256];
    let mut as4_path: Option<AsPath> = None;
    let mut as4_aggregator: Option<Aggregator> = None;
    let truncated = || ErrorKind::MalformedAttributeList("truncated attribute header");

    while !r.is_empty() {
        let start = r.offset();
        let flags = r.u8(truncated)?;
        let ty = r.u8(truncated)?;
        let len = if flags & flag::EXTENDED_LENGTH != 0 {
            usize::from(r.u16(truncated)?)
        } else {
            usize::from(r.u8(truncated)?)
        };
        let value_at = r.offset();
        // RFC 7606 §4: an attribute that overruns the list makes the rest unparseable.
        let value = r.take(len, || {
            ErrorKind::MalformedAttributeList("attribute length exceeds the attribute list")
        })?;
        let whole = || buf[start - base..value_at - base + len].to_vec();
        let mut soft = |action: ErrorAction, kind: ErrorKind| {
            d.errors.push(UpdateError {
                offset: start,
                action,
                kind,
            })
        };

        if seen[usize::from(ty)] {
            if ty == code::MP_REACH_NLRI || ty == code::MP_UNREACH_NLRI {
                return Err(DecodeError::new(
                    start,
                    ErrorKind::MalformedAttributeList(
                        "MP_REACH_NLRI or MP_UNREACH_NLRI appears twice",
                    ),
                ));
            }
            // RFC 7606 §3 g: keep the first occurrence, discard the others.
            soft(
                ErrorAction::AttributeDiscard,
                ErrorKind::MalformedAttributeList("duplicate attribute"),
            );
            continue;
        }
        seen[usize::from(ty)] = true;

        if let Some(expected) = expected_flags(ty)
            && !flags_ok(flags, expected)
        {
            let kind = ErrorKind::AttributeFlags {
                type_code: ty,
                flags,
                data: whole(),
            };
            if ty == code::MP_REACH_NLRI || ty == code::MP_UNREACH_NLRI {
                return Err(DecodeError::new(start, kind));
            }
            // RFC 7606 §3 c.
            soft(ErrorAction::TreatAsWithdraw, kind);
            continue;
        }

        let length_error = || ErrorKind::AttributeLength {
            type_code: ty,
            len,
            data: whole(),
        };
        let u32_value = || (value.len() == 4).then(|| be_u32(value));

        match ty {
            code::ORIGIN => match value {
                [0] => d.attrs.origin = Some(Origin::Igp),
                [1] => d.attrs.origin = Some(Origin::Egp),
                [2] => d.attrs.origin = Some(Origin::Incomplete),
                [_] => soft(
                    ErrorAction::TreatAsWithdraw,
                    ErrorKind::InvalidOrigin(whole()),
                ),
                _ => soft(ErrorAction::TreatAsWithdraw, length_error()),
            },
            code::AS_PATH => match AsPath::decode(value, ctx.four_octet_as) {
                Some(p) => d.attrs.as_path = Some(p),
                // RFC 7606 §7.2.
                None => soft(
                    ErrorAction::TreatAsWithdraw,
                    ErrorKind::MalformedAsPath("bad segment"),
                ),
            },
            code::NEXT_HOP => match <[u8; 4]>::try_from(value) {
                Ok(a) => d.attrs.next_hop = Some(Ipv4Addr::from(a)),
                Err(_) => soft(ErrorAction::TreatAsWithdraw, length_error()),
            },
            code::MULTI_EXIT_DISC => match u32_value() {
                Some(v) => d.attrs.med = Some(v),
                None => soft(ErrorAction::TreatAsWithdraw, length_error()),
            },
            code::LOCAL_PREF => match u32_value() {
                Some(v) => d.attrs.local_pref = Some(v),
                None => soft(ErrorAction::TreatAsWithdraw, length_error()),
            },
            code::ATOMIC_AGGREGATE => {
                if value.is_empty() {
                    d.attrs.atomic_aggregate = true;
                } else {
                    // RFC 7606 §7.6.
                    soft(ErrorAction::AttributeDiscard, length_error());
                }
            }
            code::AGGREGATOR => {
                let parsed = match (ctx.four_octet_as, value.len()) {
                    (true, 8) => Some(Aggregator {
                        asn: be_u32(value),
                        address: Ipv4Addr::from(be_u32(&value[4..])),
                    }),
                    (false, 6) => Some(Aggregator {
                        asn: u32::from(u16::from_be_bytes([value[0], value[1]])),
                        address: Ipv4Addr::from(be_u32(&value[2..])),
                    }),
                    _ => None,
                };
                match parsed {
                    Some(a) => d.attrs.aggregator = Some(a),
                    // RFC 7606 §7.7.
                    None => soft(ErrorAction::AttributeDiscard, length_error()),
                }
            }
            code::COMMUNITIES => {
                if value.len() % 4 == 0 {
                    d.attrs.communities = value
                        .chunks_exact(4)
                        .map(|c| Community(be_u32(c)))
                        .collect();
                } else {
                    // RFC 7606 §7.8.
                    soft(ErrorAction::TreatAsWithdraw, length_error());
                }
            }
            code::ORIGINATOR_ID => match u32_value() {
                Some(v) => d.attrs.originator_id = Some(Ipv4Addr::from(v)),
                None => soft(ErrorAction::TreatAsWithdraw, length_error()),
            },
            code::CLUSTER_LIST => {
                if value.len() % 4 == 0 && !value.is_empty() {
                    d.attrs.cluster_list = value
                        .chunks_exact(4)
                        .map(|c| Ipv4Addr::from(be_u32(c)))
                        .collect();
                } else {
                    // RFC 7606 §7.10.
                    soft(ErrorAction::TreatAsWithdraw, length_error());
                }
            }
            code::MP_REACH_NLRI => {
                d.mp_reach =
                    Some(MpReach::decode(value, value_at, ctx).map_err(|e| with_data(e, whole()))?)
            }
            code::MP_UNREACH_NLRI => {
                d.mp_unreach = Some(
                    MpUnreach::decode(value, value_at, ctx).map_err(|e| with_data(e, whole()))?,
                )
            }
            code::EXTENDED_COMMUNITIES => {
                if value.len() % 8 == 0 {
                    d.attrs.ext_communities = value
                        .chunks_exact(8)
                        .map(|c| {
                            let mut b = [0u8; 8];
                            b.copy_from_slice(c);
                            ExtCommunity(b)
                        })
                        .collect();
                } else {
                    // RFC 7606 §7.14.
                    soft(ErrorAction::TreatAsWithdraw, length_error());
                }
            }
            // RFC 6793 §3: a NEW speaker ignores AS4_* from another NEW speaker.
            code::AS4_PATH | code::AS4_AGGREGATOR if ctx.four_octet_as => {}
            code::AS4_PATH => match AsPath::decode(value, true) {
                Some(p) if !p.segments.iter().any(|s| s.kind.is_confed()) => as4_path = Some(p),
                // RFC 6793 §6: a malformed AS4_PATH is discarded.
                _ => soft(
                    ErrorAction::AttributeDiscard,
                    ErrorKind::OptionalAttribute {
                        type_code: ty,
                        reason: "malformed AS4_PATH",
                        data: whole(),
                    },
                ),
            },
            code::AS4_AGGREGATOR => {
                if value.len() == 8 {
                    as4_aggregator = Some(Aggregator {
                        asn: be_u32(value),
                        address: Ipv4Addr::from(be_u32(&value[4..])),
                    });
                } else {
                    soft(ErrorAction::AttributeDiscard, length_error());
                }
            }
            code::LARGE_COMMUNITY => {
                if value.len() % 12 == 0 {
                    d.attrs.large_communities = value
                        .chunks_exact(12)
                        .map(|c| LargeCommunity {
                            global: be_u32(c),
                            local1: be_u32(&c[4..]),
                            local2: be_u32(&c[8..]),
                        })
                        .collect();
                } else {
                    // RFC 8092 §6.
                    soft(ErrorAction::TreatAsWithdraw, length_error());
                }
            }
            code::OTC => match u32_value() {
                Some(v) => d.attrs.otc = Some(v),
                // RFC 9234 §5.
                None => soft(ErrorAction::TreatAsWithdraw, length_error()),
            },
            _ if flags & OPTIONAL == 0 => {
                return Err(DecodeError::new(
                    start,
                    ErrorKind::UnrecognizedWellKnown {
                        type_code: ty,
                        data: whole(),
                    },
                ));
            }
            _ => d.attrs.unknown.push(RawAttribute {
                flags: flags & !flag::EXTENDED_LENGTH,
                type_code: ty,
                value: value.to_vec(),
            }),
        }
    }

    // RFC 6793 §4.2.3: rebuild the real path and aggregator from a 2-octet speaker's AS4_* attributes.
    if !ctx.four_octet_as {
        let aggregator_is_real = d
            .attrs
            .aggregator
            .is_some_and(|a| a.asn != u32::from(AS_TRANS));
        if !(aggregator_is_real && as4_aggregator.is_some()) {
            if let (Some(agg), Some(a4)) = (d.attrs.aggregator.as_mut(), as4_aggregator) {
                *agg = a4;
            }
            if let (Some(path), Some(p4)) = (d.attrs.as_path.as_mut(), as4_path.as_ref()) {
                *path = path.reconcile(p4);
            }
        }
    }
    Ok(d)
}

fn with_data(mut e: DecodeError, whole: Vec<u8>) -> DecodeError {
    if let ErrorKind::OptionalAttribute { data, .. } = &mut e.kind
        && data.is_empty()
    {
        *data = whole;
    }
    e
}

/// Writes one attribute, using the extended length form only when the value needs it.
pub(crate) fn put(out: &mut Vec<u8>, flags: u8, ty: u8, value: &[u8]) -> Result<(), EncodeError> {
    if value.len() > 255 {
        out.push(flags | flag::EXTENDED_LENGTH);
        out.push(ty);
        out.extend_from_slice(&len_u16(value.len(), "path attribute")?.to_be_bytes());
    } else {
        out.push(flags & !flag::EXTENDED_LENGTH);
        out.push(ty);
        out.push(value.len() as u8);
    }
    out.extend_from_slice(value);
    Ok(())
}

impl PathAttributes {
    /// Encodes every attribute in type-code order. MP_REACH/MP_UNREACH are written by the UPDATE
    /// encoder, first in the list (RFC 7606 §5.1).
    pub(crate) fn encode(&self, ctx: &Context, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let mut v = Vec::with_capacity(64);
        if let Some(o) = self.origin {
            put(out, TRANSITIVE, code::ORIGIN, &[o as u8])?;
        }
        let mut as4_path = None;
        if let Some(p) = &self.as_path {
            v.clear();
            if p.encode(ctx.four_octet_as, &mut v) {
                as4_path = Some(p.as4_path());
            }
            put(out, TRANSITIVE, code::AS_PATH, &v)?;
        }
        if let Some(nh) = self.next_hop {
            put(out, TRANSITIVE, code::NEXT_HOP, &nh.octets())?;
        }
        if let Some(med) = self.med {
            put(out, OPTIONAL, code::MULTI_EXIT_DISC, &med.to_be_bytes())?;
        }
        if let Some(lp) = self.local_pref {
            put(out, TRANSITIVE, code::LOCAL_PREF, &lp.to_be_bytes())?;
        }
        if self.atomic_aggregate {
            put(out, TRANSITIVE, code::ATOMIC_AGGREGATE, &[])?;
        }
        let mut as4_aggregator = None;
        if let Some(a) = self.aggregator {
            v.clear();
            if ctx.four_octet_as {
                v.extend_from_slice(&a.asn.to_be_bytes());
            } else {
                let short = u16::try_from(a.asn).unwrap_or(AS_TRANS);
                if u32::from(short) != a.asn {
                    as4_aggregator = Some(a);
                }
                v.extend_from_slice(&short.to_be_bytes());
            }
            v.extend_from_slice(&a.address.octets());
            put(out, OPTIONAL | TRANSITIVE, code::AGGREGATOR, &v)?;
        }
        if !self.communities.is_empty() {
            v.clear();
            self.communities
                .iter()
                .for_each(|c| v.extend_from_slice(&c.0.to_be_bytes()));
            put(out, OPTIONAL | TRANSITIVE, code::COMMUNITIES, &v)?;
        }
        if let Some(id) = self.originator_id {
            put(out, OPTIONAL, code::ORIGINATOR_ID, &id.octets())?;
        }
        if !self.cluster_list.is_empty() {
            v.clear();
            self.cluster_list
                .iter()
                .for_each(|c| v.extend_from_slice(&c.octets()));
            put(out, OPTIONAL, code::CLUSTER_LIST, &v)?;
        }
        if !self.ext_communities.is_empty() {
            v.clear();
            self.ext_communities
                .iter()
                .for_each(|c| v.extend_from_slice(&c.0));
            put(out, OPTIONAL | TRANSITIVE, code::EXTENDED_COMMUNITIES, &v)?;
        }
        if let Some(p4) = as4_path {
            v.clear();
            p4.encode(true, &mut v);
            put(out, OPTIONAL | TRANSITIVE, code::AS4_PATH, &v)?;
        }
        if let Some(a) = as4_aggregator {
            v.clear();
            v.extend_from_slice(&a.asn.to_be_bytes());
            v.extend_from_slice(&a.address.octets());
            put(out, OPTIONAL | TRANSITIVE, code::AS4_AGGREGATOR, &v)?;
        }
        if !self.large_communities.is_empty() {
            v.clear();
            for c in &self.large_communities {
                v.extend_from_slice(&c.global.to_be_bytes());
                v.extend_from_slice(&c.local1.to_be_bytes());
                v.extend_from_slice(&c.local2.to_be_bytes());
            }
            put(out, OPTIONAL | TRANSITIVE, code::LARGE_COMMUNITY, &v)?;
        }
        if let Some(otc) = self.otc {
            put(out, OPTIONAL | TRANSITIVE, code::OTC, &otc.to_be_bytes())?;
        }
        for a in &self.unknown {
            if a.flags & TRANSITIVE != 0 {
                put(out, a.flags | PARTIAL, a.type_code, &a.value)?;
            }
        }
        Ok(())
    }
}
