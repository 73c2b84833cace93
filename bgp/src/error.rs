//! Decode errors, each mapped to the NOTIFICATION it causes (RFC 4271 §4.5, §6) and, for UPDATE
//! attribute errors, to the RFC 7606 handling.

use thiserror::Error;

/// NOTIFICATION error codes (RFC 4271 §4.5, RFC 7313 §5, RFC 9687 §3).
pub mod code {
    pub const MESSAGE_HEADER: u8 = 1;
    pub const OPEN_MESSAGE: u8 = 2;
    pub const UPDATE_MESSAGE: u8 = 3;
    pub const HOLD_TIMER_EXPIRED: u8 = 4;
    pub const FSM: u8 = 5;
    pub const CEASE: u8 = 6;
    pub const ROUTE_REFRESH: u8 = 7;
    pub const SEND_HOLD_TIMER_EXPIRED: u8 = 8;
}

/// Message Header Error subcodes (RFC 4271 §6.1).
pub mod header_subcode {
    pub const CONNECTION_NOT_SYNCHRONIZED: u8 = 1;
    pub const BAD_MESSAGE_LENGTH: u8 = 2;
    pub const BAD_MESSAGE_TYPE: u8 = 3;
}

/// OPEN Message Error subcodes (RFC 4271 §6.2, RFC 5492 §5, RFC 9234 §4.2).
pub mod open_subcode {
    pub const UNSPECIFIC: u8 = 0;
    pub const UNSUPPORTED_VERSION: u8 = 1;
    pub const BAD_PEER_AS: u8 = 2;
    pub const BAD_BGP_IDENTIFIER: u8 = 3;
    pub const UNSUPPORTED_OPTIONAL_PARAMETER: u8 = 4;
    pub const UNACCEPTABLE_HOLD_TIME: u8 = 6;
    pub const UNSUPPORTED_CAPABILITY: u8 = 7;
    pub const ROLE_MISMATCH: u8 = 11;
}

/// UPDATE Message Error subcodes (RFC 4271 §6.3).
pub mod update_subcode {
    pub const MALFORMED_ATTRIBUTE_LIST: u8 = 1;
    pub const UNRECOGNIZED_WELL_KNOWN: u8 = 2;
    pub const MISSING_WELL_KNOWN: u8 = 3;
    pub const ATTRIBUTE_FLAGS: u8 = 4;
    pub const ATTRIBUTE_LENGTH: u8 = 5;
    pub const INVALID_ORIGIN: u8 = 6;
    pub const INVALID_NEXT_HOP: u8 = 8;
    pub const OPTIONAL_ATTRIBUTE: u8 = 9;
    pub const INVALID_NETWORK_FIELD: u8 = 10;
    pub const MALFORMED_AS_PATH: u8 = 11;
}

/// Cease subcodes (RFC 4486, RFC 8203).
pub mod cease_subcode {
    pub const MAX_PREFIXES: u8 = 1;
    pub const ADMINISTRATIVE_SHUTDOWN: u8 = 2;
    pub const PEER_DECONFIGURED: u8 = 3;
    pub const ADMINISTRATIVE_RESET: u8 = 4;
    pub const CONNECTION_REJECTED: u8 = 5;
    pub const OTHER_CONFIGURATION_CHANGE: u8 = 6;
    pub const CONNECTION_COLLISION_RESOLUTION: u8 = 7;
    pub const OUT_OF_RESOURCES: u8 = 8;
    pub const HARD_RESET: u8 = 9;
    pub const BFD_DOWN: u8 = 10;
}

/// FSM Error subcodes (RFC 6608).
pub mod fsm_subcode {
    pub const UNSPECIFIED: u8 = 0;
    pub const UNEXPECTED_IN_OPEN_SENT: u8 = 1;
    pub const UNEXPECTED_IN_OPEN_CONFIRM: u8 = 2;
    pub const UNEXPECTED_IN_ESTABLISHED: u8 = 3;
}

/// What the receiver does about a malformed UPDATE (RFC 7606 §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ErrorAction {
    /// Drop the attribute and carry on with the rest of the UPDATE.
    AttributeDiscard,
    /// Keep the session but treat every NLRI of the UPDATE as withdrawn.
    TreatAsWithdraw,
    /// Send the NOTIFICATION and close the session.
    SessionReset,
}

/// One thing wrong with a message. `data` fields hold what RFC 4271 §6 puts in the NOTIFICATION's Data.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ErrorKind {
    #[error("marker is not all ones")]
    ConnectionNotSynchronized,
    #[error("bad message length {0}")]
    BadMessageLength(u16),
    #[error("bad message type {0}")]
    BadMessageType(u8),

    #[error("unsupported BGP version {0}")]
    UnsupportedVersion(u8),
    #[error("unacceptable hold time {0}")]
    UnacceptableHoldTime(u16),
    #[error("BGP identifier {0:#010x} is not valid")]
    BadBgpIdentifier(u32),
    #[error("unsupported optional parameter type {0}")]
    UnsupportedOptionalParameter(u8),
    #[error("malformed OPEN optional parameters: {0}")]
    MalformedOpen(&'static str),
    #[error("malformed capability {code}: {reason}")]
    MalformedCapability { code: u8, reason: &'static str },

    #[error("malformed attribute list: {0}")]
    MalformedAttributeList(&'static str),
    #[error("unrecognized well-known attribute {type_code}")]
    UnrecognizedWellKnown { type_code: u8, data: Vec<u8> },
    #[error("missing well-known attribute {0}")]
    MissingWellKnown(u8),
    #[error("attribute {type_code} has wrong flags {flags:#04x}")]
    AttributeFlags {
        type_code: u8,
        flags: u8,
        data: Vec<u8>,
    },
    #[error("attribute {type_code} has wrong length {len}")]
    AttributeLength {
        type_code: u8,
        len: usize,
        data: Vec<u8>,
    },
    #[error("invalid ORIGIN value")]
    InvalidOrigin(Vec<u8>),
    #[error("invalid NEXT_HOP: {reason}")]
    InvalidNextHop { reason: &'static str, data: Vec<u8> },
    #[error("malformed optional attribute {type_code}: {reason}")]
    OptionalAttribute {
        type_code: u8,
        reason: &'static str,
        data: Vec<u8>,
    },
    #[error("invalid network field: {0}")]
    InvalidNetworkField(&'static str),
    #[error("malformed AS_PATH: {0}")]
    MalformedAsPath(&'static str),

    #[error("ROUTE-REFRESH with invalid length")]
    RouteRefreshLength(Vec<u8>),
}

impl ErrorKind {
    /// The (code, subcode, data) of the NOTIFICATION this error causes.
    pub fn notification(&self) -> (u8, u8, Vec<u8>) {
        use ErrorKind::*;
        match self {
            ConnectionNotSynchronized => (
                code::MESSAGE_HEADER,
                header_subcode::CONNECTION_NOT_SYNCHRONIZED,
                vec![],
            ),
            BadMessageLength(len) => (
                code::MESSAGE_HEADER,
                header_subcode::BAD_MESSAGE_LENGTH,
                len.to_be_bytes().to_vec(),
            ),
            BadMessageType(t) => (
                code::MESSAGE_HEADER,
                header_subcode::BAD_MESSAGE_TYPE,
                vec![*t],
            ),
            // RFC 4271 §6.2: data is the largest locally supported version, 2 octets.
            UnsupportedVersion(_) => (
                code::OPEN_MESSAGE,
                open_subcode::UNSUPPORTED_VERSION,
                4u16.to_be_bytes().to_vec(),
            ),
            UnacceptableHoldTime(_) => (
                code::OPEN_MESSAGE,
                open_subcode::UNACCEPTABLE_HOLD_TIME,
                vec![],
            ),
            BadBgpIdentifier(_) => (code::OPEN_MESSAGE, open_subcode::BAD_BGP_IDENTIFIER, vec![]),
            UnsupportedOptionalParameter(_) => (
                code::OPEN_MESSAGE,
                open_subcode::UNSUPPORTED_OPTIONAL_PARAMETER,
                vec![],
            ),
            MalformedOpen(_) | MalformedCapability { .. } => {
                (code::OPEN_MESSAGE, open_subcode::UNSPECIFIC, vec![])
            }
            MalformedAttributeList(_) => (
                code::UPDATE_MESSAGE,
                update_subcode::MALFORMED_ATTRIBUTE_LIST,
                vec![],
            ),
            UnrecognizedWellKnown { data, .. } => (
                code::UPDATE_MESSAGE,
                update_subcode::UNRECOGNIZED_WELL_KNOWN,
                data.clone(),
            ),
            MissingWellKnown(t) => (
                code::UPDATE_MESSAGE,
                update_subcode::MISSING_WELL_KNOWN,
                vec![*t],
            ),
            AttributeFlags { data, .. } => (
                code::UPDATE_MESSAGE,
                update_subcode::ATTRIBUTE_FLAGS,
                data.clone(),
            ),
            AttributeLength { data, .. } => (
                code::UPDATE_MESSAGE,
                update_subcode::ATTRIBUTE_LENGTH,
                data.clone(),
            ),
            InvalidOrigin(data) => (
                code::UPDATE_MESSAGE,
                update_subcode::INVALID_ORIGIN,
                data.clone(),
            ),
            InvalidNextHop { data, .. } => (
                code::UPDATE_MESSAGE,
                update_subcode::INVALID_NEXT_HOP,
                data.clone(),
            ),
            OptionalAttribute { data, .. } => (
                code::UPDATE_MESSAGE,
                update_subcode::OPTIONAL_ATTRIBUTE,
                data.clone(),
            ),
            InvalidNetworkField(_) => (
                code::UPDATE_MESSAGE,
                update_subcode::INVALID_NETWORK_FIELD,
                vec![],
            ),
            MalformedAsPath(_) => (
                code::UPDATE_MESSAGE,
                update_subcode::MALFORMED_AS_PATH,
                vec![],
            ),
            RouteRefreshLength(data) => (code::ROUTE_REFRESH, 1, data.clone()),
        }
    }
}

/// A message that could not be decoded: what is wrong and where (byte offset from the start of the
/// message, header included).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{kind} (at byte {offset}; NOTIFICATION {})", notification_name(.kind))]
pub struct DecodeError {
    pub offset: usize,
    pub kind: ErrorKind,
}

impl DecodeError {
    pub fn new(offset: usize, kind: ErrorKind) -> Self {
        DecodeError { offset, kind }
    }

    /// The NOTIFICATION to send for this error.
    pub fn notification(&self) -> crate::Notification {
        let (code, subcode, data) = self.kind.notification();
        crate::Notification {
            code,
            subcode,
            data,
        }
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

fn notification_name(kind: &ErrorKind) -> String {
    let (code, subcode, _) = kind.notification();
    format!("{code}/{subcode} {}", describe(code, subcode))
}

/// A recoverable UPDATE error (RFC 7606): the session stays up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdateError {
    pub offset: usize,
    pub action: ErrorAction,
    pub kind: ErrorKind,
}

/// Failure to encode: the message would break a protocol limit.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EncodeError {
    #[error("message of {len} bytes exceeds the limit of {max}")]
    TooLong { len: usize, max: usize },
    #[error("{what} of {len} bytes does not fit its length field")]
    FieldTooLong { what: &'static str, len: usize },
    #[error("{0}")]
    Invalid(&'static str),
}
