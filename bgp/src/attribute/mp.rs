//! MP_REACH_NLRI and MP_UNREACH_NLRI (RFC 4760 §3, §4), IPv6 next hops (RFC 2545 §3) and IPv6 next
//! hops for IPv4 NLRI (RFC 8950 §3).
//!
//! ```text
//! MP_REACH_NLRI                                   MP_UNREACH_NLRI
//! +------------------------------------------+    +-------------------------------+
//! | AFI (2) | SAFI (1) | Next Hop Length (1) |    | AFI (2) | SAFI (1)            |
//! | Next Hop (variable)                      |    | Withdrawn Routes (variable)   |
//! | Reserved (1)                             |    +-------------------------------+
//! | NLRI (variable)                          |
//! +------------------------------------------+
//! ```

use std::net::{Ipv4Addr, Ipv6Addr};

use ipnet::{Ipv4Net, Ipv6Net};

use crate::EncodeError;
use crate::context::Context;
use crate::error::{DecodeError, ErrorKind};
use crate::family::{Afi, Family, Safi};
use crate::prefix::{Nlri, decode_nlri, encode_nlri};
use crate::wire::{be_u16, len_u8};

/// An IPv6 next hop: a global address and, on a shared link, the link-local one (RFC 2545 §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv6NextHop {
    pub global: Ipv6Addr,
    pub link_local: Option<Ipv6Addr>,
}

impl Ipv6NextHop {
    fn wire_len(&self) -> usize {
        if self.link_local.is_some() { 32 } else { 16 }
    }

    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.global.octets());
        if let Some(ll) = self.link_local {
            out.extend_from_slice(&ll.octets());
        }
    }

    fn read(b: &[u8]) -> Option<Ipv6NextHop> {
        let addr =
            |s: &[u8]| -> Option<Ipv6Addr> { <[u8; 16]>::try_from(s).ok().map(Ipv6Addr::from) };
        match b.len() {
            16 => Some(Ipv6NextHop {
                global: addr(b)?,
                link_local: None,
            }),
            32 => Some(Ipv6NextHop {
                global: addr(&b[..16])?,
                link_local: Some(addr(&b[16..])?),
            }),
            _ => None,
        }
    }
}

/// Next hop of IPv4 NLRI in MP_REACH: IPv4, or IPv6 when extended next hop is negotiated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NextHop {
    V4(Ipv4Addr),
    V6(Ipv6NextHop),
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum MpReach {
    Ipv4Unicast {
        next_hop: NextHop,
        nlri: Vec<Nlri<Ipv4Net>>,
    },
    Ipv6Unicast {
        next_hop: Ipv6NextHop,
        nlri: Vec<Nlri<Ipv6Net>>,
    },
    /// A family we do not parse, kept as received.
    Other {
        family: Family,
        next_hop: Vec<u8>,
        nlri: Vec<u8>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum MpUnreach {
    Ipv4Unicast(Vec<Nlri<Ipv4Net>>),
    Ipv6Unicast(Vec<Nlri<Ipv6Net>>),
    Other { family: Family, nlri: Vec<u8> },
}

fn bad(at: usize, why: &'static str) -> DecodeError {
    DecodeError::new(
        at,
        ErrorKind::OptionalAttribute {
            type_code: super::code::MP_REACH_NLRI,
            reason: why,
            data: Vec::new(),
        },
    )
}

impl MpReach {
    pub fn family(&self) -> Family {
        match self {
            MpReach::Ipv4Unicast { .. } => Family::IPV4_UNICAST,
            MpReach::Ipv6Unicast { .. } => Family::IPV6_UNICAST,
            MpReach::Other { family, .. } => *family,
        }
    }

    pub fn is_empty(&self) -> bool {
        match self {
            MpReach::Ipv4Unicast { nlri, .. } => nlri.is_empty(),
            MpReach::Ipv6Unicast { nlri, .. } => nlri.is_empty(),
            MpReach::Other { nlri, .. } => nlri.is_empty(),
        }
    }

    /// Errors here are a session reset (RFC 7606 §7.11): the NLRI cannot be located reliably.
    pub(crate) fn decode(v: &[u8], base: usize, ctx: &Context) -> Result<MpReach, DecodeError> {
        if v.len() < 5 {
            return Err(bad(base, "MP_REACH_NLRI too short"));
        }
        let family = Family::new(Afi(be_u16(v)), Safi(v[2]));
        let nh_len = usize::from(v[3]);
        let Some(nh) = v.get(4..4 + nh_len) else {
            return Err(bad(base + 3, "next hop runs past the attribute"));
        };
        // One reserved octet (formerly the SNPA count, RFC 4760 §3) follows the next hop.
        let nlri_at = 4 + nh_len + 1;
        let Some(nlri) = v.get(nlri_at..) else {
            return Err(bad(base + 4 + nh_len, "missing reserved octet"));
        };
        let add_path = ctx.add_path(family);
        let nlri_base = base + nlri_at;
        Ok(match family {
            Family::IPV4_UNICAST => {
                let next_hop = match nh_len {
                    4 => NextHop::V4(Ipv4Addr::new(nh[0], nh[1], nh[2], nh[3])),
                    _ => NextHop::V6(
                        Ipv6NextHop::read(nh)
                            .ok_or_else(|| bad(base + 3, "bad next hop length for IPv4"))?,
                    ),
                };
                let mut out = Vec::new();
                decode_nlri(nlri, nlri_base, add_path, &mut out)?;
                MpReach::Ipv4Unicast {
                    next_hop,
                    nlri: out,
                }
            }
            Family::IPV6_UNICAST => {
                let next_hop = Ipv6NextHop::read(nh)
                    .ok_or_else(|| bad(base + 3, "bad next hop length for IPv6"))?;
                let mut out = Vec::new();
                decode_nlri(nlri, nlri_base, add_path, &mut out)?;
                MpReach::Ipv6Unicast {
                    next_hop,
                    nlri: out,
                }
            }
            _ => MpReach::Other {
                family,
                next_hop: nh.to_vec(),
                nlri: nlri.to_vec(),
            },
        })
    }

    /// Writes the attribute value header (AFI, SAFI, next hop, reserved).
    pub(crate) fn encode_head(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let f = self.family();
        out.extend_from_slice(&f.afi.0.to_be_bytes());
        out.push(f.safi.0);
        match self {
            MpReach::Ipv4Unicast { next_hop, .. } => match next_hop {
                NextHop::V4(a) => {
                    out.push(4);
                    out.extend_from_slice(&a.octets());
                }
                NextHop::V6(nh) => {
                    out.push(nh.wire_len() as u8);
                    nh.write(out);
                }
            },
            MpReach::Ipv6Unicast { next_hop, .. } => {
                out.push(next_hop.wire_len() as u8);
                next_hop.write(out);
            }
            MpReach::Other { next_hop, .. } => {
                out.push(len_u8(next_hop.len(), "MP_REACH next hop")?);
                out.extend_from_slice(next_hop);
            }
        }
        out.push(0);
        Ok(())
    }

    pub(crate) fn encode_nlri(&self, add_path: bool, out: &mut Vec<u8>) {
        match self {
            MpReach::Ipv4Unicast { nlri, .. } => {
                nlri.iter().for_each(|n| encode_nlri(n, add_path, out))
            }
            MpReach::Ipv6Unicast { nlri, .. } => {
                nlri.iter().for_each(|n| encode_nlri(n, add_path, out))
            }
            MpReach::Other { nlri, .. } => out.extend_from_slice(nlri),
        }
    }
}

impl MpUnreach {
    pub fn family(&self) -> Family {
        match self {
            MpUnreach::Ipv4Unicast(_) => Family::IPV4_UNICAST,
            MpUnreach::Ipv6Unicast(_) => Family::IPV6_UNICAST,
            MpUnreach::Other { family, .. } => *family,
        }
    }

    pub fn is_empty(&self) -> bool {
        match self {
            MpUnreach::Ipv4Unicast(v) => v.is_empty(),
            MpUnreach::Ipv6Unicast(v) => v.is_empty(),
            MpUnreach::Other { nlri, .. } => nlri.is_empty(),
        }
    }

    pub(crate) fn decode(v: &[u8], base: usize, ctx: &Context) -> Result<MpUnreach, DecodeError> {
        if v.len() < 3 {
            return Err(DecodeError::new(
                base,
                ErrorKind::OptionalAttribute {
                    type_code: super::code::MP_UNREACH_NLRI,
                    reason: "MP_UNREACH_NLRI too short",
                    data: Vec::new(),
                },
            ));
        }
        let family = Family::new(Afi(be_u16(v)), Safi(v[2]));
        let add_path = ctx.add_path(family);
        let rest = &v[3..];
        Ok(match family {
            Family::IPV4_UNICAST => {
                let mut out = Vec::new();
                decode_nlri(rest, base + 3, add_path, &mut out)?;
                MpUnreach::Ipv4Unicast(out)
            }
            Family::IPV6_UNICAST => {
                let mut out = Vec::new();
                decode_nlri(rest, base + 3, add_path, &mut out)?;
                MpUnreach::Ipv6Unicast(out)
            }
            _ => MpUnreach::Other {
                family,
                nlri: rest.to_vec(),
            },
        })
    }

    pub(crate) fn encode_value(&self, add_path: bool, out: &mut Vec<u8>) {
        let f = self.family();
        out.extend_from_slice(&f.afi.0.to_be_bytes());
        out.push(f.safi.0);
        match self {
            MpUnreach::Ipv4Unicast(v) => v.iter().for_each(|n| encode_nlri(n, add_path, out)),
            MpUnreach::Ipv6Unicast(v) => v.iter().for_each(|n| encode_nlri(n, add_path, out)),
            MpUnreach::Other { nlri, .. } => out.extend_from_slice(nlri),
        }
    }
}
