//! NOTIFICATION message (RFC 4271 §4.5) and the shutdown communication carried in Cease
//! administrative shutdown/reset (RFC 8203, extended to 255 octets by RFC 9003).
//!
//! ```text
//! +---------------+---------------+---------------------+
//! | Error code    | Error subcode |   Data (variable)   |
//! +---------------+---------------+---------------------+
//! ```

use crate::error::{DecodeError, EncodeError, ErrorKind, cease_subcode, code};

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Notification {
    pub code: u8,
    pub subcode: u8,
    pub data: Vec<u8>,
}

impl Notification {
    pub fn new(code: u8, subcode: u8) -> Self {
        Notification {
            code,
            subcode,
            data: Vec::new(),
        }
    }

    /// A Cease with a shutdown communication (RFC 9003 §2). `reset` picks Administrative Reset over
    /// Administrative Shutdown.
    pub fn shutdown(message: &str, reset: bool) -> Result<Self, EncodeError> {
        let len = crate::wire::len_u8(message.len(), "shutdown communication")?;
        let mut data = Vec::with_capacity(message.len() + 1);
        data.push(len);
        data.extend_from_slice(message.as_bytes());
        Ok(Notification {
            code: code::CEASE,
            subcode: if reset {
                cease_subcode::ADMINISTRATIVE_RESET
            } else {
                cease_subcode::ADMINISTRATIVE_SHUTDOWN
            },
            data,
        })
    }

    /// The shutdown communication, if this is an administrative shutdown/reset that carries a
    /// well-formed one.
    pub fn shutdown_message(&self) -> Option<&str> {
        if self.code != code::CEASE
            || !matches!(
                self.subcode,
                cease_subcode::ADMINISTRATIVE_SHUTDOWN | cease_subcode::ADMINISTRATIVE_RESET
            )
        {
            return None;
        }
        let (&len, rest) = self.data.split_first()?;
        let msg = rest.get(..usize::from(len))?;
        if len == 0 {
            return None;
        }
        std::str::from_utf8(msg).ok()
    }

    pub fn description(&self) -> &'static str {
        describe(self.code, self.subcode)
    }

    pub(crate) fn decode(body: &[u8]) -> Result<Notification, DecodeError> {
        match body {
            [code, subcode, data @ ..] => Ok(Notification {
                code: *code,
                subcode: *subcode,
                data: data.to_vec(),
            }),
            // Callers check the minimum length from the header; keep this total anyway.
            _ => Err(DecodeError::new(
                16,
                ErrorKind::BadMessageLength(19 + body.len() as u16),
            )),
        }
    }

    pub(crate) fn encode_body(&self, out: &mut Vec<u8>) {
        out.push(self.code);
        out.push(self.subcode);
        out.extend_from_slice(&self.data);
    }
}

/// Human-readable names of error codes and subcodes, for logs and the CLI.
pub fn describe(code: u8, subcode: u8) -> &'static str {
    match (code, subcode) {
        (1, 1) => "Message Header Error / Connection Not Synchronized",
        (1, 2) => "Message Header Error / Bad Message Length",
        (1, 3) => "Message Header Error / Bad Message Type",
        (1, _) => "Message Header Error",
        (2, 1) => "OPEN Message Error / Unsupported Version Number",
        (2, 2) => "OPEN Message Error / Bad Peer AS",
        (2, 3) => "OPEN Message Error / Bad BGP Identifier",
        (2, 4) => "OPEN Message Error / Unsupported Optional Parameter",
        (2, 6) => "OPEN Message Error / Unacceptable Hold Time",
        (2, 7) => "OPEN Message Error / Unsupported Capability",
        (2, 11) => "OPEN Message Error / Role Mismatch",
        (2, _) => "OPEN Message Error",
        (3, 1) => "UPDATE Message Error / Malformed Attribute List",
        (3, 2) => "UPDATE Message Error / Unrecognized Well-known Attribute",
        (3, 3) => "UPDATE Message Error / Missing Well-known Attribute",
        (3, 4) => "UPDATE Message Error / Attribute Flags Error",
        (3, 5) => "UPDATE Message Error / Attribute Length Error",
        (3, 6) => "UPDATE Message Error / Invalid ORIGIN Attribute",
        (3, 8) => "UPDATE Message Error / Invalid NEXT_HOP Attribute",
        (3, 9) => "UPDATE Message Error / Optional Attribute Error",
        (3, 10) => "UPDATE Message Error / Invalid Network Field",
        (3, 11) => "UPDATE Message Error / Malformed AS_PATH",
        (3, _) => "UPDATE Message Error",
        (4, _) => "Hold Timer Expired",
        (5, 1) => "Finite State Machine Error / Unexpected Message in OpenSent",
        (5, 2) => "Finite State Machine Error / Unexpected Message in OpenConfirm",
        (5, 3) => "Finite State Machine Error / Unexpected Message in Established",
        (5, _) => "Finite State Machine Error",
        (6, 1) => "Cease / Maximum Number of Prefixes Reached",
        (6, 2) => "Cease / Administrative Shutdown",
        (6, 3) => "Cease / Peer De-configured",
        (6, 4) => "Cease / Administrative Reset",
        (6, 5) => "Cease / Connection Rejected",
        (6, 6) => "Cease / Other Configuration Change",
        (6, 7) => "Cease / Connection Collision Resolution",
        (6, 8) => "Cease / Out of Resources",
        (6, 9) => "Cease / Hard Reset",
        (6, 10) => "Cease / BFD Down",
        (6, _) => "Cease",
        (7, 1) => "ROUTE-REFRESH Message Error / Invalid Message Length",
        (7, _) => "ROUTE-REFRESH Message Error",
        (8, _) => "Send Hold Timer Expired",
        _ => "Unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shutdown_communication_round_trip() {
        let n = Notification::shutdown("maintenance until 14:00 UTC", false).unwrap();
        assert_eq!(n.subcode, cease_subcode::ADMINISTRATIVE_SHUTDOWN);
        assert_eq!(n.shutdown_message(), Some("maintenance until 14:00 UTC"));
        assert!(Notification::shutdown(&"x".repeat(256), false).is_err());
    }

    #[test]
    fn malformed_communication_is_not_a_message() {
        let n = Notification {
            code: 6,
            subcode: 2,
            data: vec![10, b'a'],
        };
        assert_eq!(n.shutdown_message(), None);
        let n = Notification {
            code: 6,
            subcode: 2,
            data: vec![2, 0xff, 0xfe],
        };
        assert_eq!(n.shutdown_message(), None);
    }
}
