//! UPDATE message (RFC 4271 §4.3), End-of-RIB (RFC 4724 §2) and packing of many NLRI into as few
//! messages as the size limit allows.
//!
//! ```text
//! +-----------------------------------------------------+
//! |   Withdrawn Routes Length (2 octets)                |
//! |   Withdrawn Routes (variable)                       |
//! |   Total Path Attribute Length (2 octets)            |
//! |   Path Attributes (variable)                        |
//! |   Network Layer Reachability Information (variable) |
//! +-----------------------------------------------------+
//! ```

use ipnet::{Ipv4Net, Ipv6Net};

use crate::attribute::{self, MpReach, MpUnreach, PathAttributes, code, flag};
use crate::context::Context;
use crate::error::{DecodeError, EncodeError, ErrorAction, ErrorKind, UpdateError};
use crate::family::Family;
use crate::header::{HEADER_LEN, MessageType, write_header};
use crate::prefix::{Nlri, Prefix, decode_nlri, encode_nlri, encode_nlri_filling};
use crate::wire::len_u16;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Update {
    /// Withdrawn IPv4 unicast routes in the classic field.
    pub withdrawn: Vec<Nlri<Ipv4Net>>,
    pub attributes: PathAttributes,
    pub mp_reach: Option<MpReach>,
    pub mp_unreach: Option<MpUnreach>,
    /// IPv4 unicast NLRI in the classic field.
    pub nlri: Vec<Nlri<Ipv4Net>>,
    /// RFC 7606 errors the session survives: attributes discarded, or the whole UPDATE to be
    /// treated as a withdrawal. Empty for a well-formed UPDATE.
    pub errors: Vec<UpdateError>,
}

impl Update {
    /// The End-of-RIB marker for `family` (RFC 4724 §2).
    pub fn end_of_rib(family: Family) -> Update {
        let mut u = Update::default();
        if family != Family::IPV4_UNICAST {
            u.mp_unreach = Some(match family {
                Family::IPV6_UNICAST => MpUnreach::Ipv6Unicast(Vec::new()),
                _ => MpUnreach::Other {
                    family,
                    nlri: Vec::new(),
                },
            });
        }
        u
    }

    /// The family this UPDATE marks End-of-RIB for, if it is such a marker.
    pub fn end_of_rib_family(&self) -> Option<Family> {
        if !self.withdrawn.is_empty()
            || !self.nlri.is_empty()
            || self.mp_reach.is_some()
            || self.attributes != PathAttributes::default()
        {
            return None;
        }
        match &self.mp_unreach {
            None => Some(Family::IPV4_UNICAST),
            Some(u) if u.is_empty() => Some(u.family()),
            Some(_) => None,
        }
    }

    /// RFC 7606: every NLRI in this UPDATE must be handled as withdrawn.
    pub fn treat_as_withdraw(&self) -> bool {
        self.errors
            .iter()
            .any(|e| e.action == ErrorAction::TreatAsWithdraw)
    }

    /// Decodes the body after the header. `Err` is a session reset; softer errors land in `errors`.
    pub(crate) fn decode(body: &[u8], ctx: &Context) -> Result<Update, DecodeError> {
        let mut r = crate::wire::Reader::new(body, HEADER_LEN);
        let short = || ErrorKind::MalformedAttributeList("UPDATE too short");
        let wlen = usize::from(r.u16(short)?);
        let w_at = r.offset();
        let w = r.take(wlen, || {
            ErrorKind::MalformedAttributeList("withdrawn routes length exceeds the message")
        })?;
        let alen = usize::from(r.u16(short)?);
        let a_at = r.offset();
        let a = r.take(alen, || {
            ErrorKind::MalformedAttributeList("total path attribute length exceeds the message")
        })?;
        let n_at = r.offset();
        let n = r.rest();

        let v4_add_path = ctx.add_path(Family::IPV4_UNICAST);
        let mut withdrawn = Vec::new();
        decode_nlri(w, w_at, v4_add_path, &mut withdrawn)?;
        let decoded = attribute::decode(a, a_at, ctx)?;
        let mut nlri = Vec::new();
        decode_nlri(n, n_at, v4_add_path, &mut nlri)?;

        let mut u = Update {
            withdrawn,
            attributes: decoded.attrs,
            mp_reach: decoded.mp_reach,
            mp_unreach: decoded.mp_unreach,
            nlri,
            errors: decoded.errors,
        };
        u.check_mandatory(a_at);
        Ok(u)
    }

    /// RFC 4271 §5 / RFC 7606 §3 d: ORIGIN and AS_PATH with any NLRI, NEXT_HOP with classic NLRI;
    /// a missing one is treat-as-withdraw.
    fn check_mandatory(&mut self, at: usize) {
        let reach = self.mp_reach.as_ref().is_some_and(|m| !m.is_empty());
        if self.nlri.is_empty() && !reach {
            return;
        }
        let mut missing = Vec::new();
        if self.attributes.origin.is_none() {
            missing.push(code::ORIGIN);
        }
        if self.attributes.as_path.is_none() {
            missing.push(code::AS_PATH);
        }
        if !self.nlri.is_empty() && self.attributes.next_hop.is_none() {
            missing.push(code::NEXT_HOP);
        }
        // An attribute present but malformed is reported once, as malformed, not also as missing.
        let reported = |ty: u8| {
            self.errors.iter().any(|e| match &e.kind {
                ErrorKind::AttributeFlags { type_code, .. }
                | ErrorKind::AttributeLength { type_code, .. } => *type_code == ty,
                ErrorKind::InvalidOrigin(_) => ty == code::ORIGIN,
                ErrorKind::MalformedAsPath(_) => ty == code::AS_PATH,
                _ => false,
            })
        };
        let missing: Vec<u8> = missing.into_iter().filter(|t| !reported(*t)).collect();
        for ty in missing {
            self.errors.push(UpdateError {
                offset: at,
                action: ErrorAction::TreatAsWithdraw,
                kind: ErrorKind::MissingWellKnown(ty),
            });
        }
    }

    /// Encodes the body into `out` (no size check; the message encoder does that).
    pub(crate) fn encode_body(&self, ctx: &Context, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let v4_add_path = ctx.add_path(Family::IPV4_UNICAST);
        let at = out.len();
        out.extend_from_slice(&[0, 0]);
        self.withdrawn
            .iter()
            .for_each(|n| encode_nlri(n, v4_add_path, out));
        patch_len(out, at, "withdrawn routes")?;
        let at = out.len();
        out.extend_from_slice(&[0, 0]);
        if let Some(reach) = &self.mp_reach {
            let mut v = Vec::new();
            reach.encode_head(&mut v)?;
            reach.encode_nlri(ctx.add_path(reach.family()), &mut v);
            attribute::put(out, flag::OPTIONAL, code::MP_REACH_NLRI, &v)?;
        }
        if let Some(unreach) = &self.mp_unreach {
            let mut v = Vec::new();
            unreach.encode_value(ctx.add_path(unreach.family()), &mut v);
            attribute::put(out, flag::OPTIONAL, code::MP_UNREACH_NLRI, &v)?;
        }
        self.attributes.encode(ctx, out)?;
        patch_len(out, at, "path attributes")?;
        self.nlri
            .iter()
            .for_each(|n| encode_nlri(n, v4_add_path, out));
        Ok(())
    }

    /// One message announcing the IPv4 `nlri` in the classic field with `attributes`, whose
    /// NEXT_HOP is replaced by `next_hop`: what [`Update::encode_split`] gives for such an
    /// UPDATE when it fits in one message, without building the UPDATE. `None` when it does
    /// not fit.
    pub fn encode_ipv4_announcement(
        attributes: &PathAttributes,
        next_hop: std::net::Ipv4Addr,
        nlri: &[Ipv4Net],
        ctx: &Context,
    ) -> Result<Option<Vec<u8>>, EncodeError> {
        let max = ctx.max_message_len();
        // Every prefix takes at least one octet.
        if nlri.len() >= max {
            return Ok(None);
        }
        let add_path = ctx.add_path(Family::IPV4_UNICAST);
        // Room for the header, the attributes of a relayed route and the prefixes: one
        // allocation in the common case.
        let mut m = Vec::with_capacity((HEADER_LEN + 4 + 96 + 9 * nlri.len()).min(max));
        write_header(&mut m, MessageType::Update);
        m.extend_from_slice(&[0, 0, 0, 0]);
        attributes.encode_with_next_hop(ctx, Some(next_hop), &mut m)?;
        patch_len(&mut m, HEADER_LEN + 2, "path attributes")?;
        for p in nlri {
            encode_nlri(&Nlri::new(*p), add_path, &mut m);
            // Too long: given up as soon as it shows.
            if m.len() > max {
                return Ok(None);
            }
        }
        finish(m).map(Some)
    }

    /// Encodes this UPDATE as complete messages, splitting NLRI and withdrawals over as many
    /// messages as the size limit needs and filling each one (announcements repeat the
    /// attributes). An UPDATE that fits is encoded as one message, byte for byte as `encode`.
    pub fn encode_split(&self, ctx: &Context) -> Result<Vec<Vec<u8>>, EncodeError> {
        let max = ctx.max_message_len();
        // Every entry takes at least one octet: only try a single message when it can fit.
        if self.prefix_count() < max {
            let mut single = Vec::new();
            if crate::Message::encode_update_unchecked(self, ctx, &mut single).is_ok()
                && single.len() <= max
            {
                return Ok(vec![single]);
            }
        }
        let mut msgs = Vec::new();
        let v4ap = ctx.add_path(Family::IPV4_UNICAST);

        // Classic withdrawals: header, withdrawn length, routes, empty attribute length.
        let mut rest = &self.withdrawn[..];
        while !rest.is_empty() {
            let mut m = start_update(max);
            m.extend_from_slice(&[0, 0]);
            let n = encode_nlri_filling(rest, v4ap, max - HEADER_LEN - 4, &mut m);
            rest = advance(rest, n, max)?;
            patch_len(&mut m, HEADER_LEN, "withdrawn routes")?;
            m.extend_from_slice(&[0, 0]);
            msgs.push(finish(m)?);
        }

        if let Some(unreach) = &self.mp_unreach {
            let family = unreach.family();
            let ap = ctx.add_path(family);
            match unreach {
                MpUnreach::Ipv4Unicast(v) => pack_mp(
                    &mut msgs,
                    max,
                    &[],
                    &family_head(family),
                    v,
                    ap,
                    code::MP_UNREACH_NLRI,
                )?,
                MpUnreach::Ipv6Unicast(v) => pack_mp(
                    &mut msgs,
                    max,
                    &[],
                    &family_head(family),
                    v,
                    ap,
                    code::MP_UNREACH_NLRI,
                )?,
                MpUnreach::Other { nlri, .. } => {
                    let mut v = family_head(family);
                    v.extend_from_slice(nlri);
                    let mut m = start_update(max);
                    m.extend_from_slice(&[0, 0, 0, 0]);
                    attribute::put(&mut m, flag::OPTIONAL, code::MP_UNREACH_NLRI, &v)?;
                    patch_len(&mut m, HEADER_LEN + 2, "path attributes")?;
                    msgs.push(finish(m)?);
                }
            }
        }

        let mut attrs = Vec::new();
        self.attributes.encode(ctx, &mut attrs)?;
        let too_long = || EncodeError::TooLong {
            len: HEADER_LEN + 4 + attrs.len(),
            max,
        };
        let mut rest = &self.nlri[..];
        while !rest.is_empty() {
            let room = (max - HEADER_LEN - 4)
                .checked_sub(attrs.len())
                .ok_or_else(too_long)?;
            let mut m = start_update(max);
            m.extend_from_slice(&[0, 0]);
            m.extend_from_slice(&len_u16(attrs.len(), "path attributes")?.to_be_bytes());
            m.extend_from_slice(&attrs);
            let n = encode_nlri_filling(rest, v4ap, room, &mut m);
            rest = advance(rest, n, max)?;
            msgs.push(finish(m)?);
        }

        if let Some(reach) = &self.mp_reach {
            let mut head = Vec::new();
            reach.encode_head(&mut head)?;
            let ap = ctx.add_path(reach.family());
            match reach {
                MpReach::Ipv4Unicast { nlri, .. } => {
                    pack_mp(&mut msgs, max, &attrs, &head, nlri, ap, code::MP_REACH_NLRI)?
                }
                MpReach::Ipv6Unicast { nlri, .. } => {
                    pack_mp(&mut msgs, max, &attrs, &head, nlri, ap, code::MP_REACH_NLRI)?
                }
                MpReach::Other { nlri, .. } => {
                    let mut v = head;
                    v.extend_from_slice(nlri);
                    let mut m = start_update(max);
                    m.extend_from_slice(&[0, 0, 0, 0]);
                    attribute::put(&mut m, flag::OPTIONAL, code::MP_REACH_NLRI, &v)?;
                    m.extend_from_slice(&attrs);
                    patch_len(&mut m, HEADER_LEN + 2, "path attributes")?;
                    msgs.push(finish(m)?);
                }
            }
        }
        if msgs.iter().any(|m| m.len() > max) || msgs.is_empty() {
            return Err(too_long());
        }
        Ok(msgs)
    }

    /// Prefixes announced or withdrawn, in the classic fields and the MP attributes.
    pub fn prefix_count(&self) -> usize {
        let reach = match &self.mp_reach {
            Some(MpReach::Ipv4Unicast { nlri, .. }) => nlri.len(),
            Some(MpReach::Ipv6Unicast { nlri, .. }) => nlri.len(),
            Some(MpReach::Other { nlri, .. }) => nlri.len(),
            None => 0,
        };
        let unreach = match &self.mp_unreach {
            Some(MpUnreach::Ipv4Unicast(v)) => v.len(),
            Some(MpUnreach::Ipv6Unicast(v)) => v.len(),
            Some(MpUnreach::Other { nlri, .. }) => nlri.len(),
            None => 0,
        };
        self.withdrawn.len() + self.nlri.len() + reach + unreach
    }

    /// Builds announcements of IPv6 prefixes, the common case for a speaker originating routes.
    pub fn announce_ipv6(
        attributes: PathAttributes,
        next_hop: attribute::Ipv6NextHop,
        nlri: Vec<Nlri<Ipv6Net>>,
    ) -> Update {
        Update {
            attributes,
            mp_reach: Some(MpReach::Ipv6Unicast { next_hop, nlri }),
            ..Update::default()
        }
    }
}

/// Packs MP_REACH (`ty`, with `attrs` after it) or MP_UNREACH NLRI into messages.
/// The MP attribute always uses the extended length form so it can be filled in place.
fn pack_mp<P: Prefix>(
    msgs: &mut Vec<Vec<u8>>,
    max: usize,
    attrs: &[u8],
    head: &[u8],
    nlri: &[Nlri<P>],
    add_path: bool,
    ty: u8,
) -> Result<(), EncodeError> {
    let fixed = HEADER_LEN + 4 + 4 + head.len() + attrs.len();
    let room = max
        .checked_sub(fixed)
        .ok_or(EncodeError::TooLong { len: fixed, max })?;
    let mut rest = nlri;
    while !rest.is_empty() {
        let mut m = start_update(max);
        // Withdrawn routes length 0, then the attribute length placeholder.
        m.extend_from_slice(&[0, 0, 0, 0]);
        m.extend_from_slice(&[flag::OPTIONAL | flag::EXTENDED_LENGTH, ty, 0, 0]);
        let value_at = m.len();
        m.extend_from_slice(head);
        let n = encode_nlri_filling(rest, add_path, room, &mut m);
        rest = advance(rest, n, max)?;
        let value_len = len_u16(m.len() - value_at, "MP attribute")?;
        m[value_at - 2..value_at].copy_from_slice(&value_len.to_be_bytes());
        m.extend_from_slice(attrs);
        patch_len(&mut m, HEADER_LEN + 2, "path attributes")?;
        msgs.push(finish(m)?);
    }
    Ok(())
}

fn family_head(f: Family) -> Vec<u8> {
    let mut v = f.afi.0.to_be_bytes().to_vec();
    v.push(f.safi.0);
    v
}

/// Moves past `n` packed entries; none packed means one entry cannot fit in an empty message.
fn advance<T>(rest: &[T], n: usize, max: usize) -> Result<&[T], EncodeError> {
    if n == 0 {
        return Err(EncodeError::TooLong { len: max + 1, max });
    }
    Ok(&rest[n..])
}

fn start_update(max: usize) -> Vec<u8> {
    let mut m = Vec::with_capacity(max);
    write_header(&mut m, MessageType::Update);
    m
}

/// Fills in the header length of a finished message.
fn finish(mut m: Vec<u8>) -> Result<Vec<u8>, EncodeError> {
    let len = len_u16(m.len(), "message")?;
    m[16..18].copy_from_slice(&len.to_be_bytes());
    Ok(m)
}

/// Writes the byte count after the 2-octet length placeholder at `at` into it.
fn patch_len(out: &mut [u8], at: usize, what: &'static str) -> Result<(), EncodeError> {
    let len = len_u16(out.len() - at - 2, what)?;
    out[at..at + 2].copy_from_slice(&len.to_be_bytes());
    Ok(())
}
