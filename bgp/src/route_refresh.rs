//! ROUTE-REFRESH message (RFC 2918 §3) with the RFC 7313 §3.2 message subtypes.
//!
//! ```text
//! +-------------------------------+----------------+---------------+
//! |             AFI (2)           |  Subtype (1)   |    SAFI (1)   |
//! +-------------------------------+----------------+---------------+
//! ```

use crate::family::{Afi, Family, Safi};
use crate::wire::be_u16;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RefreshSubtype {
    /// 0: a plain route refresh request.
    Request,
    /// 1: Beginning of Route Refresh.
    BeginningOfRefresh,
    /// 2: End of Route Refresh.
    EndOfRefresh,
    /// 3-255: reserved; RFC 7313 §5 says to ignore the message.
    Reserved(u8),
}

impl RefreshSubtype {
    pub fn from_u8(v: u8) -> Self {
        match v {
            0 => RefreshSubtype::Request,
            1 => RefreshSubtype::BeginningOfRefresh,
            2 => RefreshSubtype::EndOfRefresh,
            n => RefreshSubtype::Reserved(n),
        }
    }

    pub fn to_u8(self) -> u8 {
        match self {
            RefreshSubtype::Request => 0,
            RefreshSubtype::BeginningOfRefresh => 1,
            RefreshSubtype::EndOfRefresh => 2,
            RefreshSubtype::Reserved(n) => n,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RouteRefresh {
    pub family: Family,
    pub subtype: RefreshSubtype,
}

impl RouteRefresh {
    pub fn request(family: Family) -> Self {
        RouteRefresh {
            family,
            subtype: RefreshSubtype::Request,
        }
    }

    /// `body` is exactly 4 octets (the caller checked the length).
    pub(crate) fn decode(body: &[u8; 4]) -> Self {
        RouteRefresh {
            family: Family::new(Afi(be_u16(body)), Safi(body[3])),
            subtype: RefreshSubtype::from_u8(body[2]),
        }
    }

    pub(crate) fn encode_body(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.family.afi.0.to_be_bytes());
        out.push(self.subtype.to_u8());
        out.push(self.family.safi.0);
    }
}
