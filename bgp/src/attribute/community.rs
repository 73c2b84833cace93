//! Communities: standard (RFC 1997), extended (RFC 4360) and large (RFC 8092).

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

/// A standard community, `asn:value` in 16 + 16 bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Community(pub u32);

impl Community {
    pub const NO_EXPORT: Community = Community(0xFFFF_FF01);
    pub const NO_ADVERTISE: Community = Community(0xFFFF_FF02);
    pub const NO_EXPORT_SUBCONFED: Community = Community(0xFFFF_FF03);
    /// RFC 8326.
    pub const GRACEFUL_SHUTDOWN: Community = Community(0xFFFF_0000);
    /// RFC 9494.
    pub const LLGR_STALE: Community = Community(0xFFFF_0006);
    pub const NO_LLGR: Community = Community(0xFFFF_0007);

    pub fn new(asn: u16, value: u16) -> Self {
        Community(u32::from(asn) << 16 | u32::from(value))
    }
}

impl fmt::Display for Community {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.0 >> 16, self.0 & 0xffff)
    }
}

/// Parse error for the textual forms of communities.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what} {input:?}: expected {expected}")]
pub struct ParseCommunityError {
    what: &'static str,
    input: String,
    expected: &'static str,
}

impl FromStr for Community {
    type Err = ParseCommunityError;

    /// `65001:100`, or a well-known name (`no-export`, `no-advertise`, `no-export-subconfed`,
    /// `graceful-shutdown`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ParseCommunityError {
            what: "community",
            input: s.to_string(),
            expected: "ASN:VALUE with 16-bit numbers, or a well-known name",
        };
        match s {
            "no-export" => return Ok(Community::NO_EXPORT),
            "no-advertise" => return Ok(Community::NO_ADVERTISE),
            "no-export-subconfed" => return Ok(Community::NO_EXPORT_SUBCONFED),
            "graceful-shutdown" => return Ok(Community::GRACEFUL_SHUTDOWN),
            _ => {}
        }
        let (a, v) = s.split_once(':').ok_or_else(err)?;
        Ok(Community::new(
            a.parse().map_err(|_| err())?,
            v.parse().map_err(|_| err())?,
        ))
    }
}

/// A large community, `global:local1:local2`, three 32-bit numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LargeCommunity {
    pub global: u32,
    pub local1: u32,
    pub local2: u32,
}

impl fmt::Display for LargeCommunity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.global, self.local1, self.local2)
    }
}

impl FromStr for LargeCommunity {
    type Err = ParseCommunityError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ParseCommunityError {
            what: "large community",
            input: s.to_string(),
            expected: "GLOBAL:LOCAL1:LOCAL2 with 32-bit numbers",
        };
        let mut it = s.split(':').map(|p| p.parse::<u32>().map_err(|_| err()));
        let c = LargeCommunity {
            global: it.next().ok_or_else(err)??,
            local1: it.next().ok_or_else(err)??,
            local2: it.next().ok_or_else(err)??,
        };
        if it.next().is_some() {
            return Err(err());
        }
        Ok(c)
    }
}

/// An extended community: 8 octets, type and subtype first (RFC 4360 §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ExtCommunity(pub [u8; 8]);

impl ExtCommunity {
    /// Two-octet-AS-specific route target (type 0x00, subtype 0x02).
    pub fn route_target(asn: u16, value: u32) -> Self {
        let mut b = [0u8; 8];
        b[1] = 0x02;
        b[2..4].copy_from_slice(&asn.to_be_bytes());
        b[4..].copy_from_slice(&value.to_be_bytes());
        ExtCommunity(b)
    }

    pub fn type_high(&self) -> u8 {
        self.0[0]
    }

    pub fn subtype(&self) -> u8 {
        self.0[1]
    }
}

impl FromStr for ExtCommunity {
    type Err = ParseCommunityError;

    /// What [`Display`](fmt::Display) writes: `rt:` or `soo:` with `ASN:VALUE` (a 2-octet AS
    /// takes a 4-octet value; a larger AS is 4-octet-AS-specific with a 2-octet value) or
    /// `IPV4:VALUE`, or any community as 16 hex digits (`0x` optional).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ParseCommunityError {
            what: "extended community",
            input: s.to_string(),
            expected: "rt:ASN:VALUE, soo:ASN:VALUE, rt:IPV4:VALUE or 16 hex digits",
        };
        let typed = [("rt:", 0x02u8), ("soo:", 0x03)]
            .into_iter()
            .find_map(|(p, sub)| s.strip_prefix(p).map(|rest| (rest, sub)));
        let Some((rest, sub)) = typed else {
            let hex = s.strip_prefix("0x").unwrap_or(s);
            if hex.len() != 16 {
                return Err(err());
            }
            let n = u64::from_str_radix(hex, 16).map_err(|_| err())?;
            return Ok(ExtCommunity(n.to_be_bytes()));
        };
        let (a, v) = rest.split_once(':').ok_or_else(err)?;
        let mut b = [0u8; 8];
        b[1] = sub;
        if let Ok(ip) = a.parse::<Ipv4Addr>() {
            b[0] = 0x01;
            b[2..6].copy_from_slice(&ip.octets());
            b[6..].copy_from_slice(&v.parse::<u16>().map_err(|_| err())?.to_be_bytes());
            return Ok(ExtCommunity(b));
        }
        let asn = a.parse::<u32>().map_err(|_| err())?;
        match u16::try_from(asn) {
            Ok(short) => {
                b[2..4].copy_from_slice(&short.to_be_bytes());
                b[4..].copy_from_slice(&v.parse::<u32>().map_err(|_| err())?.to_be_bytes());
            }
            Err(_) => {
                b[0] = 0x02;
                b[2..6].copy_from_slice(&asn.to_be_bytes());
                b[6..].copy_from_slice(&v.parse::<u16>().map_err(|_| err())?.to_be_bytes());
            }
        }
        Ok(ExtCommunity(b))
    }
}

impl fmt::Display for ExtCommunity {
    /// Route targets and origins in the usual `rt:`/`soo:` forms, anything else as hex.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = &self.0;
        // The transitivity bit (0x40) does not change the layout.
        let kind = match b[1] {
            0x02 => Some("rt"),
            0x03 => Some("soo"),
            _ => None,
        };
        match (b[0] & !0x40, kind) {
            (0x00, Some(k)) => write!(
                f,
                "{k}:{}:{}",
                u16::from_be_bytes([b[2], b[3]]),
                u32::from_be_bytes([b[4], b[5], b[6], b[7]])
            ),
            (0x01, Some(k)) => write!(
                f,
                "{k}:{}:{}",
                Ipv4Addr::new(b[2], b[3], b[4], b[5]),
                u16::from_be_bytes([b[6], b[7]])
            ),
            (0x02, Some(k)) => write!(
                f,
                "{k}:{}:{}",
                u32::from_be_bytes([b[2], b[3], b[4], b[5]]),
                u16::from_be_bytes([b[6], b[7]])
            ),
            _ => {
                write!(f, "0x")?;
                for x in b {
                    write!(f, "{x:02x}")?;
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extended_communities_read_back_what_they_print() {
        for text in [
            "rt:65000:7",
            "soo:65000:4294967295",
            "rt:198.18.0.1:100",
            "rt:4200000000:9",
            "0x8000000000000001",
        ] {
            let c: ExtCommunity = text.parse().unwrap();
            assert_eq!(c.to_string(), text);
        }
        assert_eq!(
            "rt:65000:7".parse::<ExtCommunity>().unwrap(),
            ExtCommunity::route_target(65000, 7)
        );
        assert_eq!(
            "0003fde800000001"
                .parse::<ExtCommunity>()
                .unwrap()
                .to_string(),
            "soo:65000:1"
        );
        for bad in [
            "rt:65000",
            "rt:x:1",
            "rt:198.18.0.1:70000",
            "0x01",
            "zz",
            "rt:4200000000:70000",
        ] {
            assert!(bad.parse::<ExtCommunity>().is_err(), "{bad}");
        }
    }

    #[test]
    fn text_forms() {
        assert_eq!(
            "65001:100".parse::<Community>().unwrap().to_string(),
            "65001:100"
        );
        assert_eq!(
            "no-export".parse::<Community>().unwrap(),
            Community::NO_EXPORT
        );
        assert!("65536:1".parse::<Community>().is_err());
        let l: LargeCommunity = "4200000000:1:2".parse().unwrap();
        assert_eq!(l.to_string(), "4200000000:1:2");
        assert!("1:2".parse::<LargeCommunity>().is_err());
        assert!("1:2:3:4".parse::<LargeCommunity>().is_err());
        assert_eq!(
            ExtCommunity::route_target(65000, 100).to_string(),
            "rt:65000:100"
        );
        assert_eq!(
            ExtCommunity([0x80, 0x06, 0, 0, 0, 0, 0, 0]).to_string(),
            "0x8006000000000000"
        );
    }
}
