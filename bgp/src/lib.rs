//! `bgp`: the BGP-4 protocol as pure logic: bytes in, typed messages out, and back.
//!
//! No sockets, no async runtime, no logging. A session's negotiated [`Context`] is an explicit
//! input to decoding and encoding, derived from the two OPENs by [`negotiate`].

pub mod attribute;
pub mod capability;
pub mod context;
pub mod error;
pub mod family;
pub mod fsm;
mod header;
pub mod message;
pub mod notification;
pub mod open;
pub mod prefix;
pub mod rib;
pub mod route_refresh;
pub mod update;
mod wire;

pub use attribute::{AsPath, Origin, PathAttributes};
pub use capability::Capability;
pub use context::{Context, Negotiated, negotiate};
pub use error::{DecodeError, EncodeError, ErrorAction, ErrorKind, UpdateError};
pub use family::{Afi, Family, FamilySet, Safi};
pub use message::{Message, MessageReader, MessageType};
pub use notification::Notification;
pub use open::Open;
pub use prefix::Nlri;
pub use route_refresh::{RefreshSubtype, RouteRefresh};
pub use update::Update;
