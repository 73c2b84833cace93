//! The message header (RFC 4271 §4.1): what every message starts with, shared by the message
//! framing and the encoders of each type.
//!
//! ```text
//! +-----------------------------------------------+
//! |            Marker (16 octets of 0xff)         |
//! +-----------------------+-----------+-----------+
//! |     Length (2)        | Type (1)  |
//! +-----------------------+-----------+
//! ```

pub const HEADER_LEN: usize = 19;
pub(crate) const MARKER: [u8; 16] = [0xff; 16];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageType {
    Open,
    Update,
    Notification,
    Keepalive,
    RouteRefresh,
}

impl MessageType {
    pub fn from_u8(v: u8) -> Option<Self> {
        match v {
            1 => Some(MessageType::Open),
            2 => Some(MessageType::Update),
            3 => Some(MessageType::Notification),
            4 => Some(MessageType::Keepalive),
            5 => Some(MessageType::RouteRefresh),
            _ => None,
        }
    }

    pub fn to_u8(self) -> u8 {
        match self {
            MessageType::Open => 1,
            MessageType::Update => 2,
            MessageType::Notification => 3,
            MessageType::Keepalive => 4,
            MessageType::RouteRefresh => 5,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            MessageType::Open => "OPEN",
            MessageType::Update => "UPDATE",
            MessageType::Notification => "NOTIFICATION",
            MessageType::Keepalive => "KEEPALIVE",
            MessageType::RouteRefresh => "ROUTE-REFRESH",
        }
    }
}

pub(crate) fn write_header(out: &mut Vec<u8>, ty: MessageType) {
    out.extend_from_slice(&MARKER);
    out.extend_from_slice(&[0, 0]);
    out.push(ty.to_u8());
}
