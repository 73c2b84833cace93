//! Messages and their framing in a stream (RFC 4271 §4): the header ([`crate::header`]) checked
//! against each type's length bounds, then the body decoded by its type's module.

use crate::context::{Context, MAX_MESSAGE_LEN};
use crate::error::{DecodeError, EncodeError, ErrorKind};
use crate::notification::Notification;
use crate::open::Open;
use crate::route_refresh::RouteRefresh;
use crate::update::Update;
use crate::wire::be_u16;

pub use crate::header::{HEADER_LEN, MessageType};
use crate::header::{MARKER, write_header};

/// Length bounds of each type (RFC 4271 §4, RFC 2918 §3, RFC 8654 §4: OPEN and KEEPALIVE
/// never exceed 4096 octets).
fn length_ok(ty: MessageType, len: usize, ctx: &Context) -> bool {
    match ty {
        MessageType::Open => (29..=MAX_MESSAGE_LEN).contains(&len),
        MessageType::Update => len >= 23 && len <= ctx.max_message_len(),
        MessageType::Notification => len >= 21 && len <= ctx.max_message_len(),
        MessageType::Keepalive => len == HEADER_LEN,
        // Wrong ROUTE-REFRESH lengths get their own error (RFC 7313 §5), checked in decode.
        MessageType::RouteRefresh => len <= ctx.max_message_len(),
    }
}

// UPDATE is by far the most common message; boxing it would cost an allocation per message to
// save a few hundred bytes on the rare others.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Open(Open),
    Update(Update),
    Notification(Notification),
    Keepalive,
    RouteRefresh(RouteRefresh),
}

impl Message {
    pub fn message_type(&self) -> MessageType {
        match self {
            Message::Open(_) => MessageType::Open,
            Message::Update(_) => MessageType::Update,
            Message::Notification(_) => MessageType::Notification,
            Message::Keepalive => MessageType::Keepalive,
            Message::RouteRefresh(_) => MessageType::RouteRefresh,
        }
    }

    /// Finds the first message in a stream buffer: `Ok(Some(len))` when `buf` holds all of it,
    /// `Ok(None)` when more bytes are needed. Header errors are reported as soon as the header is in.
    pub fn frame(buf: &[u8], ctx: &Context) -> Result<Option<usize>, DecodeError> {
        if buf.len() < HEADER_LEN {
            // Fail early on a bad marker even before the header is complete.
            let n = buf.len().min(16);
            if buf[..n].iter().any(|&b| b != 0xff) {
                return Err(DecodeError::new(0, ErrorKind::ConnectionNotSynchronized));
            }
            return Ok(None);
        }
        let (len, _) = Self::check_header(buf, ctx)?;
        Ok((buf.len() >= len).then_some(len))
    }

    fn check_header(buf: &[u8], ctx: &Context) -> Result<(usize, MessageType), DecodeError> {
        if buf[..16] != MARKER {
            return Err(DecodeError::new(0, ErrorKind::ConnectionNotSynchronized));
        }
        let raw_len = be_u16(&buf[16..]);
        let len = usize::from(raw_len);
        let ty = MessageType::from_u8(buf[18])
            .ok_or_else(|| DecodeError::new(18, ErrorKind::BadMessageType(buf[18])))?;
        if len < HEADER_LEN || !length_ok(ty, len, ctx) {
            return Err(DecodeError::new(16, ErrorKind::BadMessageLength(raw_len)));
        }
        Ok((len, ty))
    }

    /// Decodes exactly one message occupying all of `buf`.
    pub fn decode(buf: &[u8], ctx: &Context) -> Result<Message, DecodeError> {
        if buf.len() < HEADER_LEN {
            return Err(DecodeError::new(
                buf.len(),
                ErrorKind::BadMessageLength(buf.len() as u16),
            ));
        }
        let (len, ty) = Self::check_header(buf, ctx)?;
        if len != buf.len() {
            return Err(DecodeError::new(
                16,
                ErrorKind::BadMessageLength(len as u16),
            ));
        }
        let body = &buf[HEADER_LEN..];
        Ok(match ty {
            MessageType::Open => Message::Open(Open::decode(body)?),
            MessageType::Update => Message::Update(Update::decode(body, ctx)?),
            MessageType::Notification => Message::Notification(Notification::decode(body)?),
            MessageType::Keepalive => Message::Keepalive,
            MessageType::RouteRefresh => match <&[u8; 4]>::try_from(body) {
                Ok(b) => Message::RouteRefresh(RouteRefresh::decode(b)),
                Err(_) => {
                    return Err(DecodeError::new(
                        16,
                        ErrorKind::RouteRefreshLength(buf.to_vec()),
                    ));
                }
            },
        })
    }

    /// Encodes one message, refusing anything over the context's size limit.
    pub fn encode(&self, ctx: &Context) -> Result<Vec<u8>, EncodeError> {
        let mut out = Vec::new();
        self.encode_into(ctx, &mut out)?;
        Ok(out)
    }

    /// Appends one encoded message to `out`.
    pub fn encode_into(&self, ctx: &Context, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let start = out.len();
        write_header(out, self.message_type());
        match self {
            Message::Open(o) => o.encode_body(out)?,
            Message::Update(u) => u.encode_body(ctx, out)?,
            Message::Notification(n) => n.encode_body(out),
            Message::Keepalive => {}
            Message::RouteRefresh(r) => r.encode_body(out),
        }
        let len = out.len() - start;
        let max = match self {
            Message::Open(_) | Message::Keepalive => MAX_MESSAGE_LEN,
            _ => ctx.max_message_len(),
        };
        if len > max {
            out.truncate(start);
            return Err(EncodeError::TooLong { len, max });
        }
        out[start + 16..start + 18].copy_from_slice(&(len as u16).to_be_bytes());
        Ok(())
    }

    /// Encodes an UPDATE without the size check (for the splitter to measure it).
    pub(crate) fn encode_update_unchecked(
        u: &Update,
        ctx: &Context,
        out: &mut Vec<u8>,
    ) -> Result<(), EncodeError> {
        write_header(out, MessageType::Update);
        u.encode_body(ctx, out)?;
        let len = out.len();
        if let Ok(l) = u16::try_from(len) {
            out[16..18].copy_from_slice(&l.to_be_bytes());
        }
        Ok(())
    }
}

/// Splits a byte stream into messages, decoding each; for tools reading a recorded session.
pub struct MessageReader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> MessageReader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        MessageReader { buf, pos: 0 }
    }

    /// Offset of the next message in the stream.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// The raw bytes of the next message, or `Ok(None)` at the end of the stream. A message cut
    /// short at the end of the stream is an error naming where it starts.
    pub fn next_raw(&mut self, ctx: &Context) -> Result<Option<&'a [u8]>, DecodeError> {
        let rest = &self.buf[self.pos..];
        if rest.is_empty() {
            return Ok(None);
        }
        let at = self.pos;
        match Message::frame(rest, ctx) {
            Ok(Some(len)) => {
                self.pos += len;
                Ok(Some(&rest[..len]))
            }
            Ok(None) => Err(DecodeError::new(
                at,
                ErrorKind::BadMessageLength(if rest.len() >= 18 {
                    be_u16(&rest[16..])
                } else {
                    0
                }),
            )),
            Err(e) => Err(DecodeError::new(at + e.offset, e.kind)),
        }
    }
}
