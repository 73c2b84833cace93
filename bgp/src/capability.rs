//! Capabilities advertised in OPEN (RFC 5492) and the ones we understand.
//!
//! ```text
//! +------------------------------+
//! | Capability Code (1 octet)    |
//! +------------------------------+
//! | Capability Length (1 octet)  |
//! +------------------------------+
//! | Capability Value (variable)  |
//! +------------------------------+
//! ```

use crate::EncodeError;
use crate::error::{DecodeError, ErrorKind};
use crate::family::{Afi, Family, Safi};
use crate::wire::{Reader, be_u16, be_u32, len_u8};

pub mod code {
    pub const MULTIPROTOCOL: u8 = 1;
    pub const ROUTE_REFRESH: u8 = 2;
    pub const EXTENDED_NEXT_HOP: u8 = 5;
    pub const EXTENDED_MESSAGE: u8 = 6;
    pub const ROLE: u8 = 9;
    pub const GRACEFUL_RESTART: u8 = 64;
    pub const FOUR_OCTET_AS: u8 = 65;
    pub const ADD_PATH: u8 = 69;
    pub const ENHANCED_ROUTE_REFRESH: u8 = 70;
    pub const LONG_LIVED_GRACEFUL_RESTART: u8 = 71;
    pub const FQDN: u8 = 73;
}

/// RFC 8950 §3: one (NLRI AFI, NLRI SAFI, Next Hop AFI) tuple.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ExtendedNextHop {
    pub family: Family,
    pub next_hop_afi: Afi,
}

/// RFC 9234 §4.1 BGP roles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    Provider,
    RouteServer,
    RouteServerClient,
    Customer,
    Peer,
    Unknown(u8),
}

impl Role {
    pub fn from_u8(v: u8) -> Role {
        match v {
            0 => Role::Provider,
            1 => Role::RouteServer,
            2 => Role::RouteServerClient,
            3 => Role::Customer,
            4 => Role::Peer,
            n => Role::Unknown(n),
        }
    }

    pub fn to_u8(self) -> u8 {
        match self {
            Role::Provider => 0,
            Role::RouteServer => 1,
            Role::RouteServerClient => 2,
            Role::Customer => 3,
            Role::Peer => 4,
            Role::Unknown(n) => n,
        }
    }

    /// RFC 9234 §4.2: the role the peer must have for ours to make sense.
    pub fn expected_peer_role(self) -> Option<Role> {
        match self {
            Role::Provider => Some(Role::Customer),
            Role::Customer => Some(Role::Provider),
            Role::RouteServer => Some(Role::RouteServerClient),
            Role::RouteServerClient => Some(Role::RouteServer),
            Role::Peer => Some(Role::Peer),
            Role::Unknown(_) => None,
        }
    }
}

/// RFC 4724 §3 graceful restart capability.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct GracefulRestart {
    /// R bit: the sender has restarted.
    pub restarting: bool,
    /// N bit (RFC 8538): the sender supports graceful restart for NOTIFICATIONs.
    pub notification: bool,
    /// 12 bits, seconds.
    pub restart_time: u16,
    pub families: Vec<GracefulRestartFamily>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct GracefulRestartFamily {
    pub family: Family,
    /// F bit: forwarding state was preserved across the restart.
    pub forwarding_preserved: bool,
}

/// RFC 7911 §4 send/receive value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AddPathMode {
    Receive,
    Send,
    Both,
}

impl AddPathMode {
    pub fn can_receive(self) -> bool {
        matches!(self, AddPathMode::Receive | AddPathMode::Both)
    }

    pub fn can_send(self) -> bool {
        matches!(self, AddPathMode::Send | AddPathMode::Both)
    }

    fn to_u8(self) -> u8 {
        match self {
            AddPathMode::Receive => 1,
            AddPathMode::Send => 2,
            AddPathMode::Both => 3,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AddPathFamily {
    pub family: Family,
    pub mode: AddPathMode,
}

/// RFC 9494 §2 long-lived graceful restart, per family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LlgrFamily {
    pub family: Family,
    pub forwarding_preserved: bool,
    /// 24 bits, seconds.
    pub stale_time: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Capability {
    /// RFC 4760 §8.
    Multiprotocol(Family),
    /// RFC 2918.
    RouteRefresh,
    ExtendedNextHop(Vec<ExtendedNextHop>),
    /// RFC 8654.
    ExtendedMessage,
    Role(Role),
    GracefulRestart(GracefulRestart),
    /// RFC 6793 §3: the speaker's real AS number.
    FourOctetAs(u32),
    AddPath(Vec<AddPathFamily>),
    /// RFC 7313.
    EnhancedRouteRefresh,
    LongLivedGracefulRestart(Vec<LlgrFamily>),
    /// draft-walton-bgp-hostname-capability (FRR sends it).
    Fqdn {
        hostname: String,
        domain: String,
    },
    /// Anything else, kept as received.
    Unknown {
        code: u8,
        value: Vec<u8>,
    },
}

fn malformed(r: &Reader<'_>, code: u8, reason: &'static str) -> DecodeError {
    DecodeError::new(r.offset(), ErrorKind::MalformedCapability { code, reason })
}

fn family_at(b: &[u8]) -> Family {
    Family::new(Afi(be_u16(b)), Safi(b[2]))
}

impl Capability {
    pub fn code(&self) -> u8 {
        match self {
            Capability::Multiprotocol(_) => code::MULTIPROTOCOL,
            Capability::RouteRefresh => code::ROUTE_REFRESH,
            Capability::ExtendedNextHop(_) => code::EXTENDED_NEXT_HOP,
            Capability::ExtendedMessage => code::EXTENDED_MESSAGE,
            Capability::Role(_) => code::ROLE,
            Capability::GracefulRestart(_) => code::GRACEFUL_RESTART,
            Capability::FourOctetAs(_) => code::FOUR_OCTET_AS,
            Capability::AddPath(_) => code::ADD_PATH,
            Capability::EnhancedRouteRefresh => code::ENHANCED_ROUTE_REFRESH,
            Capability::LongLivedGracefulRestart(_) => code::LONG_LIVED_GRACEFUL_RESTART,
            Capability::Fqdn { .. } => code::FQDN,
            Capability::Unknown { code, .. } => *code,
        }
    }

    /// Decodes the capabilities in one Capabilities optional parameter (there may be several).
    pub(crate) fn decode_all(
        mut r: Reader<'_>,
        out: &mut Vec<Capability>,
    ) -> Result<(), DecodeError> {
        while !r.is_empty() {
            let code = r.u8(|| ErrorKind::MalformedOpen("truncated capability"))?;
            let len = r.u8(|| ErrorKind::MalformedOpen("truncated capability"))?;
            let v = r.sub(usize::from(len), || {
                ErrorKind::MalformedOpen("capability runs past its parameter")
            })?;
            out.push(Capability::decode_one(code, v)?);
        }
        Ok(())
    }

    fn decode_one(code: u8, r: Reader<'_>) -> Result<Capability, DecodeError> {
        let b = r.rest();
        let fixed = |n: usize| -> Result<(), DecodeError> {
            if b.len() == n {
                Ok(())
            } else {
                Err(malformed(&r, code, "wrong length"))
            }
        };
        let tuples = |n: usize| -> Result<std::slice::ChunksExact<'_, u8>, DecodeError> {
            if b.len().is_multiple_of(n) {
                Ok(b.chunks_exact(n))
            } else {
                Err(malformed(
                    &r,
                    code,
                    "length is not a multiple of its entries",
                ))
            }
        };
        Ok(match code {
            code::MULTIPROTOCOL => {
                fixed(4)?;
                // AFI (2), reserved (1), SAFI (1).
                Capability::Multiprotocol(Family::new(Afi(be_u16(b)), Safi(b[3])))
            }
            code::ROUTE_REFRESH => {
                fixed(0)?;
                Capability::RouteRefresh
            }
            code::EXTENDED_NEXT_HOP => Capability::ExtendedNextHop(
                tuples(6)?
                    .map(|t| ExtendedNextHop {
                        // RFC 8950: NLRI SAFI is carried in 2 octets.
                        family: Family::new(Afi(be_u16(t)), Safi(t[3])),
                        next_hop_afi: Afi(be_u16(&t[4..])),
                    })
                    .collect(),
            ),
            code::EXTENDED_MESSAGE => {
                fixed(0)?;
                Capability::ExtendedMessage
            }
            code::ROLE => {
                fixed(1)?;
                Capability::Role(Role::from_u8(b[0]))
            }
            code::GRACEFUL_RESTART => {
                if b.len() < 2 || !(b.len() - 2).is_multiple_of(4) {
                    return Err(malformed(&r, code, "wrong length"));
                }
                let head = be_u16(b);
                Capability::GracefulRestart(GracefulRestart {
                    restarting: head & 0x8000 != 0,
                    notification: head & 0x4000 != 0,
                    restart_time: head & 0x0fff,
                    families: b[2..]
                        .chunks_exact(4)
                        .map(|t| GracefulRestartFamily {
                            family: family_at(t),
                            forwarding_preserved: t[3] & 0x80 != 0,
                        })
                        .collect(),
                })
            }
            code::FOUR_OCTET_AS => {
                fixed(4)?;
                Capability::FourOctetAs(be_u32(b))
            }
            code::ADD_PATH => {
                let mut v = Vec::new();
                for t in tuples(4)? {
                    let mode = match t[3] {
                        1 => AddPathMode::Receive,
                        2 => AddPathMode::Send,
                        3 => AddPathMode::Both,
                        _ => return Err(malformed(&r, code, "bad send/receive value")),
                    };
                    v.push(AddPathFamily {
                        family: family_at(t),
                        mode,
                    });
                }
                Capability::AddPath(v)
            }
            code::ENHANCED_ROUTE_REFRESH => {
                fixed(0)?;
                Capability::EnhancedRouteRefresh
            }
            code::LONG_LIVED_GRACEFUL_RESTART => Capability::LongLivedGracefulRestart(
                tuples(7)?
                    .map(|t| LlgrFamily {
                        family: family_at(t),
                        forwarding_preserved: t[3] & 0x80 != 0,
                        stale_time: u32::from_be_bytes([0, t[4], t[5], t[6]]),
                    })
                    .collect(),
            ),
            code::FQDN => {
                let mut fr = r.clone();
                let hl = fr.u8(|| ErrorKind::MalformedCapability {
                    code,
                    reason: "truncated",
                })?;
                let h = fr.take(usize::from(hl), || ErrorKind::MalformedCapability {
                    code,
                    reason: "truncated hostname",
                })?;
                let dl = fr.u8(|| ErrorKind::MalformedCapability {
                    code,
                    reason: "truncated",
                })?;
                let d = fr.take(usize::from(dl), || ErrorKind::MalformedCapability {
                    code,
                    reason: "truncated domain",
                })?;
                Capability::Fqdn {
                    hostname: String::from_utf8_lossy(h).into_owned(),
                    domain: String::from_utf8_lossy(d).into_owned(),
                }
            }
            _ => Capability::Unknown {
                code,
                value: b.to_vec(),
            },
        })
    }

    /// Appends code, length and value.
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        out.push(self.code());
        let len_at = out.len();
        out.push(0);
        match self {
            Capability::Multiprotocol(f) => {
                out.extend_from_slice(&f.afi.0.to_be_bytes());
                out.push(0);
                out.push(f.safi.0);
            }
            Capability::RouteRefresh
            | Capability::ExtendedMessage
            | Capability::EnhancedRouteRefresh => {}
            Capability::ExtendedNextHop(v) => {
                for t in v {
                    out.extend_from_slice(&t.family.afi.0.to_be_bytes());
                    out.extend_from_slice(&u16::from(t.family.safi.0).to_be_bytes());
                    out.extend_from_slice(&t.next_hop_afi.0.to_be_bytes());
                }
            }
            Capability::Role(role) => out.push(role.to_u8()),
            Capability::GracefulRestart(gr) => {
                if gr.restart_time > 0x0fff {
                    return Err(EncodeError::Invalid("graceful restart time exceeds 4095 s"));
                }
                let head = u16::from(gr.restarting) << 15
                    | u16::from(gr.notification) << 14
                    | gr.restart_time;
                out.extend_from_slice(&head.to_be_bytes());
                for f in &gr.families {
                    out.extend_from_slice(&f.family.afi.0.to_be_bytes());
                    out.push(f.family.safi.0);
                    out.push(if f.forwarding_preserved { 0x80 } else { 0 });
                }
            }
            Capability::FourOctetAs(asn) => out.extend_from_slice(&asn.to_be_bytes()),
            Capability::AddPath(v) => {
                for t in v {
                    out.extend_from_slice(&t.family.afi.0.to_be_bytes());
                    out.push(t.family.safi.0);
                    out.push(t.mode.to_u8());
                }
            }
            Capability::LongLivedGracefulRestart(v) => {
                for t in v {
                    if t.stale_time > 0x00ff_ffff {
                        return Err(EncodeError::Invalid("LLGR stale time exceeds 24 bits"));
                    }
                    out.extend_from_slice(&t.family.afi.0.to_be_bytes());
                    out.push(t.family.safi.0);
                    out.push(if t.forwarding_preserved { 0x80 } else { 0 });
                    out.extend_from_slice(&t.stale_time.to_be_bytes()[1..]);
                }
            }
            Capability::Fqdn { hostname, domain } => {
                out.push(len_u8(hostname.len(), "FQDN hostname")?);
                out.extend_from_slice(hostname.as_bytes());
                out.push(len_u8(domain.len(), "FQDN domain")?);
                out.extend_from_slice(domain.as_bytes());
            }
            Capability::Unknown { value, .. } => out.extend_from_slice(value),
        }
        out[len_at] = len_u8(out.len() - len_at - 1, "capability value")?;
        Ok(())
    }
}
