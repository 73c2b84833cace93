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
mod decode;
pub mod mp;

use std::net::Ipv4Addr;

use crate::context::Context;
use crate::error::EncodeError;
use crate::wire::len_u16;

pub use as_path::{AS_TRANS, AsPath, Segment, SegmentType};
pub use community::{Community, ExtCommunity, LargeCommunity};
pub(crate) use decode::decode;
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
    /// The attribute's value (RFC 4271 §5.1.1): 0 IGP, 1 EGP, 2 INCOMPLETE.
    pub fn from_value(v: u8) -> Option<Origin> {
        match v {
            0 => Some(Origin::Igp),
            1 => Some(Origin::Egp),
            2 => Some(Origin::Incomplete),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Origin::Igp => "igp",
            Origin::Egp => "egp",
            Origin::Incomplete => "incomplete",
        }
    }
}

/// An ORIGIN that is none of `igp`, `egp`, `incomplete`, 0, 1, 2.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("origin {0:?}: use igp, egp or incomplete (or 0-2)")]
pub struct ParseOriginError(String);

impl std::str::FromStr for Origin {
    type Err = ParseOriginError;

    /// The names `sart bgp`, the YAML and FRR use, or the attribute's value (RFC 4271 §5.1.1).
    fn from_str(s: &str) -> Result<Origin, ParseOriginError> {
        match s {
            "igp" => Ok(Origin::Igp),
            "egp" => Ok(Origin::Egp),
            "incomplete" => Ok(Origin::Incomplete),
            _ => s
                .parse()
                .ok()
                .and_then(Origin::from_value)
                .ok_or_else(|| ParseOriginError(s.to_owned())),
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
        self.encode_with_next_hop(ctx, self.next_hop, out)
    }

    /// [`PathAttributes::encode`] with `next_hop` as NEXT_HOP instead of `self.next_hop`: a
    /// relayed route's attributes are shared, and need not be copied to change it.
    pub(crate) fn encode_with_next_hop(
        &self,
        ctx: &Context,
        next_hop: Option<Ipv4Addr>,
        out: &mut Vec<u8>,
    ) -> Result<(), EncodeError> {
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
        if let Some(nh) = next_hop {
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
