//! OPEN message (RFC 4271 §4.2), with RFC 9072 extended optional parameters length.
//!
//! ```text
//! +-----------------+----------------+-----------------+------------------+---------------+
//! | Version (1)     | My AS (2)      | Hold Time (2)   | BGP Id (4)       | Opt Parm Len  |
//! +-----------------+----------------+-----------------+------------------+---------------+
//! |  Optional Parameters (variable): Type (1), Length (1), Value; type 2 = Capabilities    |
//! +-----------------------------------------------------------------------------------------+
//! ```

use std::net::Ipv4Addr;

use crate::attribute::as_path::AS_TRANS;
use crate::capability::Capability;
use crate::error::{DecodeError, EncodeError, ErrorKind};
use crate::family::Family;
use crate::wire::{Reader, len_u8, len_u16};

pub const BGP_VERSION: u8 = 4;

const PARAM_CAPABILITIES: u8 = 2;
/// RFC 9072 §2: marks the extended optional parameters format.
const PARAM_EXTENDED: u8 = 255;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Open {
    /// The 2-octet My AS field (AS_TRANS when the real AS does not fit).
    pub my_as: u16,
    pub hold_time: u16,
    pub bgp_id: Ipv4Addr,
    pub capabilities: Vec<Capability>,
}

impl Open {
    /// Builds an OPEN for `asn`, setting My AS to AS_TRANS and adding the 4-octet AS capability
    /// as RFC 6793 §3 asks, whatever the size of `asn`.
    pub fn new(
        asn: u32,
        hold_time: u16,
        bgp_id: Ipv4Addr,
        mut capabilities: Vec<Capability>,
    ) -> Open {
        capabilities.retain(|c| !matches!(c, Capability::FourOctetAs(_)));
        capabilities.push(Capability::FourOctetAs(asn));
        Open {
            my_as: u16::try_from(asn).unwrap_or(AS_TRANS),
            hold_time,
            bgp_id,
            capabilities,
        }
    }

    /// The sender's AS: the 4-octet AS capability when present, else My AS.
    pub fn asn(&self) -> u32 {
        self.capabilities
            .iter()
            .find_map(|c| match c {
                Capability::FourOctetAs(a) => Some(*a),
                _ => None,
            })
            .unwrap_or(u32::from(self.my_as))
    }

    pub fn has(&self, code: u8) -> bool {
        self.capabilities.iter().any(|c| c.code() == code)
    }

    /// Families from Multiprotocol capabilities; IPv4 unicast when there are none (RFC 4760 §8).
    pub fn families(&self) -> Vec<Family> {
        let v: Vec<Family> = self
            .capabilities
            .iter()
            .filter_map(|c| match c {
                Capability::Multiprotocol(f) => Some(*f),
                _ => None,
            })
            .collect();
        if v.is_empty() {
            vec![Family::IPV4_UNICAST]
        } else {
            v
        }
    }

    /// Decodes the body (after the 19-octet header); offsets in errors count from the message start.
    pub(crate) fn decode(body: &[u8]) -> Result<Open, DecodeError> {
        let short = || ErrorKind::MalformedOpen("message too short");
        let mut r = Reader::new(body, crate::header::HEADER_LEN);
        let version_at = r.offset();
        let version = r.u8(short)?;
        if version != BGP_VERSION {
            return Err(DecodeError::new(
                version_at,
                ErrorKind::UnsupportedVersion(version),
            ));
        }
        let my_as = r.u16(short)?;
        let hold_at = r.offset();
        let hold_time = r.u16(short)?;
        // RFC 4271 §6.2: hold times of one or two seconds MUST be rejected.
        if hold_time == 1 || hold_time == 2 {
            return Err(DecodeError::new(
                hold_at,
                ErrorKind::UnacceptableHoldTime(hold_time),
            ));
        }
        let id_at = r.offset();
        let id = r.u32(short)?;
        // RFC 6286 §2.1: any non-zero value is a valid identifier.
        if id == 0 {
            return Err(DecodeError::new(id_at, ErrorKind::BadBgpIdentifier(id)));
        }
        let mut len = usize::from(r.u8(short)?);
        let mut extended = false;
        if len == 255 && r.rest().first() == Some(&PARAM_EXTENDED) {
            r.u8(short)?;
            len = usize::from(r.u16(short)?);
            extended = true;
        }
        if r.remaining() != len {
            return Err(DecodeError::new(
                r.offset(),
                ErrorKind::MalformedOpen(
                    "optional parameters length disagrees with the message length",
                ),
            ));
        }
        let mut capabilities = Vec::new();
        while !r.is_empty() {
            let at = r.offset();
            let ty = r.u8(short)?;
            let plen = if extended {
                usize::from(r.u16(|| ErrorKind::MalformedOpen("truncated parameter"))?)
            } else {
                usize::from(r.u8(|| ErrorKind::MalformedOpen("truncated parameter"))?)
            };
            let value = r.sub(plen, || {
                ErrorKind::MalformedOpen("parameter runs past the message")
            })?;
            if ty != PARAM_CAPABILITIES {
                return Err(DecodeError::new(
                    at,
                    ErrorKind::UnsupportedOptionalParameter(ty),
                ));
            }
            Capability::decode_all(value, &mut capabilities)?;
        }
        Ok(Open {
            my_as,
            hold_time,
            bgp_id: Ipv4Addr::from(id),
            capabilities,
        })
    }

    pub(crate) fn encode_body(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        out.push(BGP_VERSION);
        out.extend_from_slice(&self.my_as.to_be_bytes());
        out.extend_from_slice(&self.hold_time.to_be_bytes());
        out.extend_from_slice(&self.bgp_id.octets());
        let mut caps = Vec::new();
        for c in &self.capabilities {
            c.encode(&mut caps)?;
        }
        if caps.is_empty() {
            out.push(0);
        } else if caps.len() <= 253 {
            // One Capabilities parameter holding every capability.
            out.push(len_u8(caps.len() + 2, "optional parameters")?);
            out.push(PARAM_CAPABILITIES);
            out.push(len_u8(caps.len(), "capabilities parameter")?);
            out.extend_from_slice(&caps);
        } else {
            // RFC 9072 §2 extended format: 255, 255, 2-octet length, 2-octet parameter lengths.
            out.push(255);
            out.push(PARAM_EXTENDED);
            out.extend_from_slice(&len_u16(caps.len() + 3, "optional parameters")?.to_be_bytes());
            out.push(PARAM_CAPABILITIES);
            out.extend_from_slice(&len_u16(caps.len(), "capabilities parameter")?.to_be_bytes());
            out.extend_from_slice(&caps);
        }
        Ok(())
    }
}
