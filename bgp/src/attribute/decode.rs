//! Decoding an UPDATE's path attribute list (RFC 4271 §4.3) with the error handling of RFC 7606:
//! the list is framed and checked here (lengths, duplicates, flags), each value is decoded by
//! [`value`] on its own, and the errors that do not reset the session are collected.

use std::net::Ipv4Addr;

use super::flag::{self, OPTIONAL, PARTIAL, TRANSITIVE};
use super::{
    AS_TRANS, Aggregator, AsPath, Community, ExtCommunity, LargeCommunity, MpReach, MpUnreach,
    Origin, PathAttributes, RawAttribute, code,
};
use crate::context::Context;
use crate::error::{DecodeError, ErrorAction, ErrorKind, UpdateError};
use crate::wire::{Reader, be_u32};

/// Result of decoding the attribute list of one UPDATE.
#[derive(Debug, Default)]
pub(crate) struct Decoded {
    pub attrs: PathAttributes,
    pub mp_reach: Option<MpReach>,
    pub mp_unreach: Option<MpUnreach>,
    pub errors: Vec<UpdateError>,
}

/// One attribute's value, decoded.
enum Value {
    Origin(Origin),
    AsPath(AsPath),
    NextHop(Ipv4Addr),
    Med(u32),
    LocalPref(u32),
    AtomicAggregate,
    Aggregator(Aggregator),
    Communities(Vec<Community>),
    OriginatorId(Ipv4Addr),
    ClusterList(Vec<Ipv4Addr>),
    MpReach(MpReach),
    MpUnreach(MpUnreach),
    ExtCommunities(Vec<ExtCommunity>),
    As4Path(AsPath),
    As4Aggregator(Aggregator),
    LargeCommunities(Vec<LargeCommunity>),
    Otc(u32),
    /// AS4_* between two 4-octet speakers (RFC 6793 §3).
    Ignored,
    /// An optional attribute we do not interpret.
    Unknown,
}

/// Why a value was not taken.
enum Bad {
    /// Handled as RFC 7606 says; the session stays up.
    Soft(ErrorAction, ErrorKind),
    /// The session is reset.
    Hard(DecodeError),
}

/// One attribute as it stands in the list.
struct Attr<'a> {
    flags: u8,
    ty: u8,
    value: &'a [u8],
    /// Message offset of the value.
    value_at: usize,
    /// Message offset of the attribute.
    start: usize,
    /// Flags, type, length and value, for the NOTIFICATION's data.
    whole: &'a [u8],
}

impl Attr<'_> {
    fn length_error(&self) -> ErrorKind {
        ErrorKind::AttributeLength {
            type_code: self.ty,
            len: self.value.len(),
            data: self.whole.to_vec(),
        }
    }

    fn u32(&self) -> Option<u32> {
        (self.value.len() == 4).then(|| be_u32(self.value))
    }

    /// The value as `N`-octet items, if it is a whole number of them (and not empty, if
    /// `nonempty`).
    fn items<const N: usize>(&self, nonempty: bool) -> Option<impl Iterator<Item = &[u8]>> {
        (self.value.len().is_multiple_of(N) && (!nonempty || !self.value.is_empty()))
            .then(|| self.value.chunks_exact(N))
    }
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
        let a = Attr {
            flags,
            ty,
            value,
            value_at,
            start,
            whole: &buf[start - base..value_at - base + len],
        };
        let mp = ty == code::MP_REACH_NLRI || ty == code::MP_UNREACH_NLRI;
        let checked = if seen[usize::from(ty)] {
            if mp {
                Err(Bad::Hard(DecodeError::new(
                    start,
                    ErrorKind::MalformedAttributeList(
                        "MP_REACH_NLRI or MP_UNREACH_NLRI appears twice",
                    ),
                )))
            } else {
                // RFC 7606 §3 g: keep the first occurrence, discard the others.
                Err(Bad::Soft(
                    ErrorAction::AttributeDiscard,
                    ErrorKind::MalformedAttributeList("duplicate attribute"),
                ))
            }
        } else {
            seen[usize::from(ty)] = true;
            match expected_flags(ty) {
                Some(expected) if !flags_ok(flags, expected) => {
                    let kind = ErrorKind::AttributeFlags {
                        type_code: ty,
                        flags,
                        data: a.whole.to_vec(),
                    };
                    if mp {
                        Err(Bad::Hard(DecodeError::new(start, kind)))
                    } else {
                        // RFC 7606 §3 c.
                        Err(Bad::Soft(ErrorAction::TreatAsWithdraw, kind))
                    }
                }
                _ => value_of(&a, ctx),
            }
        };
        match checked {
            Ok(v) => take(&mut d, &mut as4_path, &mut as4_aggregator, &a, v),
            Err(Bad::Soft(action, kind)) => d.errors.push(UpdateError {
                offset: start,
                action,
                kind,
            }),
            Err(Bad::Hard(e)) => return Err(e),
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

/// Stores a decoded value where it belongs.
fn take(
    d: &mut Decoded,
    as4_path: &mut Option<AsPath>,
    as4_aggregator: &mut Option<Aggregator>,
    a: &Attr<'_>,
    v: Value,
) {
    let at = &mut d.attrs;
    match v {
        Value::Origin(o) => at.origin = Some(o),
        Value::AsPath(p) => at.as_path = Some(p),
        Value::NextHop(n) => at.next_hop = Some(n),
        Value::Med(m) => at.med = Some(m),
        Value::LocalPref(l) => at.local_pref = Some(l),
        Value::AtomicAggregate => at.atomic_aggregate = true,
        Value::Aggregator(g) => at.aggregator = Some(g),
        Value::Communities(c) => at.communities = c,
        Value::OriginatorId(o) => at.originator_id = Some(o),
        Value::ClusterList(c) => at.cluster_list = c,
        Value::MpReach(m) => d.mp_reach = Some(m),
        Value::MpUnreach(m) => d.mp_unreach = Some(m),
        Value::ExtCommunities(c) => at.ext_communities = c,
        Value::As4Path(p) => *as4_path = Some(p),
        Value::As4Aggregator(g) => *as4_aggregator = Some(g),
        Value::LargeCommunities(c) => at.large_communities = c,
        Value::Otc(o) => at.otc = Some(o),
        Value::Ignored => {}
        Value::Unknown => at.unknown.push(RawAttribute {
            flags: a.flags & !flag::EXTENDED_LENGTH,
            type_code: a.ty,
            value: a.value.to_vec(),
        }),
    }
}

/// One attribute's value, with the RFC 7606 §7 handling of each malformation.
fn value_of(a: &Attr<'_>, ctx: &Context) -> Result<Value, Bad> {
    let withdraw = |kind| Bad::Soft(ErrorAction::TreatAsWithdraw, kind);
    let discard = |kind| Bad::Soft(ErrorAction::AttributeDiscard, kind);
    let v = a.value;
    Ok(match a.ty {
        code::ORIGIN => match v {
            [o] => Value::Origin(
                Origin::from_value(*o)
                    .ok_or_else(|| withdraw(ErrorKind::InvalidOrigin(a.whole.to_vec())))?,
            ),
            _ => return Err(withdraw(a.length_error())),
        },
        // RFC 7606 §7.2.
        code::AS_PATH => Value::AsPath(
            AsPath::decode(v, ctx.four_octet_as)
                .ok_or_else(|| withdraw(ErrorKind::MalformedAsPath("bad segment")))?,
        ),
        code::NEXT_HOP => Value::NextHop(Ipv4Addr::from(
            <[u8; 4]>::try_from(v).map_err(|_| withdraw(a.length_error()))?,
        )),
        code::MULTI_EXIT_DISC => Value::Med(a.u32().ok_or_else(|| withdraw(a.length_error()))?),
        code::LOCAL_PREF => Value::LocalPref(a.u32().ok_or_else(|| withdraw(a.length_error()))?),
        // RFC 7606 §7.6.
        code::ATOMIC_AGGREGATE if v.is_empty() => Value::AtomicAggregate,
        code::ATOMIC_AGGREGATE => return Err(discard(a.length_error())),
        // RFC 7606 §7.7.
        code::AGGREGATOR => Value::Aggregator(match (ctx.four_octet_as, v.len()) {
            (true, 8) => Aggregator {
                asn: be_u32(v),
                address: Ipv4Addr::from(be_u32(&v[4..])),
            },
            (false, 6) => Aggregator {
                asn: u32::from(u16::from_be_bytes([v[0], v[1]])),
                address: Ipv4Addr::from(be_u32(&v[2..])),
            },
            _ => return Err(discard(a.length_error())),
        }),
        // RFC 7606 §7.8.
        code::COMMUNITIES => Value::Communities(
            a.items::<4>(false)
                .ok_or_else(|| withdraw(a.length_error()))?
                .map(|c| Community(be_u32(c)))
                .collect(),
        ),
        code::ORIGINATOR_ID => Value::OriginatorId(Ipv4Addr::from(
            a.u32().ok_or_else(|| withdraw(a.length_error()))?,
        )),
        // RFC 7606 §7.10.
        code::CLUSTER_LIST => Value::ClusterList(
            a.items::<4>(true)
                .ok_or_else(|| withdraw(a.length_error()))?
                .map(|c| Ipv4Addr::from(be_u32(c)))
                .collect(),
        ),
        code::MP_REACH_NLRI => Value::MpReach(
            MpReach::decode(v, a.value_at, ctx).map_err(|e| Bad::Hard(with_data(e, a.whole)))?,
        ),
        code::MP_UNREACH_NLRI => Value::MpUnreach(
            MpUnreach::decode(v, a.value_at, ctx).map_err(|e| Bad::Hard(with_data(e, a.whole)))?,
        ),
        // RFC 7606 §7.14.
        code::EXTENDED_COMMUNITIES => Value::ExtCommunities(
            a.items::<8>(false)
                .ok_or_else(|| withdraw(a.length_error()))?
                .map(|c| {
                    let mut b = [0u8; 8];
                    b.copy_from_slice(c);
                    ExtCommunity(b)
                })
                .collect(),
        ),
        // RFC 6793 §3: a NEW speaker ignores AS4_* from another NEW speaker.
        code::AS4_PATH | code::AS4_AGGREGATOR if ctx.four_octet_as => Value::Ignored,
        code::AS4_PATH => match AsPath::decode(v, true) {
            Some(p) if !p.segments.iter().any(|s| s.kind.is_confed()) => Value::As4Path(p),
            // RFC 6793 §6: a malformed AS4_PATH is discarded.
            _ => {
                return Err(discard(ErrorKind::OptionalAttribute {
                    type_code: a.ty,
                    reason: "malformed AS4_PATH",
                    data: a.whole.to_vec(),
                }));
            }
        },
        code::AS4_AGGREGATOR if v.len() == 8 => Value::As4Aggregator(Aggregator {
            asn: be_u32(v),
            address: Ipv4Addr::from(be_u32(&v[4..])),
        }),
        code::AS4_AGGREGATOR => return Err(discard(a.length_error())),
        // RFC 8092 §6.
        code::LARGE_COMMUNITY => Value::LargeCommunities(
            a.items::<12>(false)
                .ok_or_else(|| withdraw(a.length_error()))?
                .map(|c| LargeCommunity {
                    global: be_u32(c),
                    local1: be_u32(&c[4..]),
                    local2: be_u32(&c[8..]),
                })
                .collect(),
        ),
        // RFC 9234 §5.
        code::OTC => Value::Otc(a.u32().ok_or_else(|| withdraw(a.length_error()))?),
        _ if a.flags & OPTIONAL == 0 => {
            return Err(Bad::Hard(DecodeError::new(
                a.start,
                ErrorKind::UnrecognizedWellKnown {
                    type_code: a.ty,
                    data: a.whole.to_vec(),
                },
            )));
        }
        _ => Value::Unknown,
    })
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

/// An MP_(UN)REACH error with the whole attribute as its NOTIFICATION data.
fn with_data(mut e: DecodeError, whole: &[u8]) -> DecodeError {
    if let ErrorKind::OptionalAttribute { data, .. } = &mut e.kind
        && data.is_empty()
    {
        *data = whole.to_vec();
    }
    e
}
