//! NOTIFICATION message (RFC 4271 §4.5) and the shutdown communication carried in Cease
//! administrative shutdown/reset (RFC 8203, extended to 255 octets by RFC 9003).
//!
//! ```text
//! +---------------+---------------+---------------------+
//! | Error code    | Error subcode |   Data (variable)   |
//! +---------------+---------------+---------------------+
//! ```

use crate::error::{DecodeError, EncodeError, ErrorKind, cease_subcode, code, describe};

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
