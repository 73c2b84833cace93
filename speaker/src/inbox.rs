//! What a session has read and not yet handled. Whole messages are framed in place and handed
//! out as slices of the read buffer, never copied; before each read, only the start of an
//! incomplete message moves to the front. An idle session gives the buffer back between its
//! small reads (KEEPALIVEs), so it costs nothing while it waits.
//!
//! Framing is pure; [`Inbox::read_from`] is the only I/O, one non-blocking read.

use bgp::{Context, DecodeError, Message};
use tokio::net::tcp::OwnedReadHalf;

/// Room made for one read.
const READ: usize = 64 * 1024;
/// Reads (and the writer's writes) under this many octets are an idle session's: its buffers
/// are given back.
pub(crate) const IDLE_IO: usize = 4096;

/// What a read brought.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Read {
    Data,
    /// Readiness can be spurious: nothing was there after all.
    Nothing,
    /// The peer closed its side.
    Closed,
}

#[derive(Debug, Default)]
pub(crate) struct Inbox {
    buf: Vec<u8>,
    /// Where the next message starts in `buf`.
    start: usize,
    /// Size of the last read, to tell an idle session from a busy one.
    last_read: usize,
    /// Framing failed: the broken bytes were handed out, and nothing more will be.
    broken: bool,
}

impl Inbox {
    /// The length of the next message if it is all in; an error if the stream cannot be framed.
    fn frame(&self) -> Result<Option<usize>, DecodeError> {
        // The largest limit: the session decodes with the negotiated one.
        let ctx = Context {
            extended_message: true,
            ..Context::default()
        };
        Message::frame(&self.buf[self.start..], &ctx)
    }

    /// Whether [`Inbox::next`] has something to hand out without reading.
    pub(crate) fn has_message(&self) -> bool {
        !self.broken && !matches!(self.frame(), Ok(None))
    }

    /// Framing failed: nothing more is handed out, so there is no point reading.
    pub(crate) fn is_broken(&self) -> bool {
        self.broken
    }

    /// The next whole message. If the stream cannot be framed, everything left is handed out
    /// once (decoding it yields the right NOTIFICATION) and nothing after it.
    pub(crate) fn next(&mut self) -> Option<&[u8]> {
        if self.broken {
            return None;
        }
        match self.frame() {
            Ok(Some(len)) => {
                let at = self.start;
                self.start += len;
                Some(&self.buf[at..at + len])
            }
            Ok(None) => None,
            Err(_) => {
                self.broken = true;
                Some(&self.buf[self.start..])
            }
        }
    }

    /// Moves the start of an incomplete message to the front, and gives the buffer back if an
    /// idle session emptied it. Called before waiting for the socket.
    pub(crate) fn settle(&mut self) {
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        if self.buf.is_empty() && self.last_read < IDLE_IO {
            self.buf = Vec::new();
        }
    }

    /// Reads what the socket has, without waiting.
    pub(crate) fn read_from(&mut self, r: &OwnedReadHalf) -> std::io::Result<Read> {
        self.settle();
        // Room for one read, not written to until the kernel fills it.
        self.buf.reserve(READ);
        match r.try_read_buf(&mut self.buf) {
            Ok(0) => Ok(Read::Closed),
            Ok(n) => {
                self.last_read = n;
                Ok(Read::Data)
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                self.last_read = 0;
                Ok(Read::Nothing)
            }
            Err(e) => Err(e),
        }
    }

    #[cfg(test)]
    fn push(&mut self, bytes: &[u8]) {
        self.settle();
        self.buf.extend_from_slice(bytes);
        self.last_read = bytes.len();
    }

    #[cfg(test)]
    fn capacity(&self) -> usize {
        self.buf.capacity()
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;
    use std::time::Duration;

    use bgp::{Nlri, Origin, PathAttributes, Update};
    use tokio::io::AsyncWriteExt;
    use tokio::net::{TcpListener, TcpStream};

    use super::*;

    fn keepalive() -> Vec<u8> {
        Message::Keepalive.encode(&Context::default()).unwrap()
    }

    fn update(i: u32) -> Vec<u8> {
        let u = Update {
            attributes: PathAttributes {
                origin: Some(Origin::Igp),
                next_hop: Some(Ipv4Addr::new(198, 18, 0, 1)),
                med: Some(i),
                ..Default::default()
            },
            nlri: (0..50)
                .map(|j| {
                    let n = 0x0a00_0000 + ((i * 50 + j) << 8);
                    Nlri::new(ipnet::Ipv4Net::new(Ipv4Addr::from(n), 24).unwrap())
                })
                .collect(),
            ..Default::default()
        };
        Message::Update(u).encode(&Context::default()).unwrap()
    }

    fn drain(inbox: &mut Inbox) -> Vec<Vec<u8>> {
        let mut v = Vec::new();
        while inbox.has_message() {
            v.push(inbox.next().unwrap().to_vec());
        }
        assert!(inbox.next().is_none(), "has_message and next agree");
        v
    }

    #[test]
    fn hands_out_whole_messages_however_the_stream_is_cut() {
        let stream: Vec<u8> = [keepalive(), update(1), keepalive(), update(2)].concat();
        for cut in [1, 5, 19, 23, 100, stream.len()] {
            let mut inbox = Inbox::default();
            let mut got = Vec::new();
            for part in stream.chunks(cut) {
                inbox.push(part);
                got.extend(drain(&mut inbox));
            }
            assert_eq!(
                got,
                [keepalive(), update(1), keepalive(), update(2)],
                "cut {cut}"
            );
        }
    }

    #[test]
    fn an_idle_session_keeps_no_buffer() {
        let mut inbox = Inbox::default();
        inbox.push(&keepalive());
        assert_eq!(drain(&mut inbox).len(), 1);
        inbox.settle();
        assert_eq!(inbox.capacity(), 0);
        // A busy one keeps it for the next read.
        let big: Vec<u8> = (0..100).flat_map(update).collect();
        inbox.push(&big);
        assert_eq!(drain(&mut inbox).len(), 100);
        inbox.settle();
        assert!(inbox.capacity() > 0);
    }

    #[test]
    fn a_stream_that_cannot_be_framed_is_handed_out_once() {
        let mut inbox = Inbox::default();
        let mut bad = keepalive();
        bad[0] = 0; // not the marker
        inbox.push(&[keepalive(), bad.clone()].concat());
        assert_eq!(inbox.next().unwrap(), keepalive());
        assert_eq!(inbox.next().unwrap(), bad);
        assert!(Message::decode(&bad, &Context::default()).is_err());
        inbox.push(&keepalive());
        assert!(!inbox.has_message());
        assert!(inbox.next().is_none());
    }

    /// Over a socket: a burst far larger than one read, then the peer's close.
    #[tokio::test]
    async fn reads_a_burst_then_the_close() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let (r, _w) = server.into_split();
        let burst: Vec<Vec<u8>> = (0..1000).map(update).collect();
        assert!(burst.iter().map(Vec::len).sum::<usize>() > 3 * READ);
        let bytes = burst.concat();
        let writer = tokio::spawn(async move {
            client.write_all(&bytes).await.unwrap();
            client.shutdown().await.unwrap();
        });
        let mut inbox = Inbox::default();
        let mut got = Vec::new();
        let closed = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                got.extend(drain(&mut inbox));
                inbox.settle();
                r.readable().await.unwrap();
                if inbox.read_from(&r).unwrap() == Read::Closed {
                    break;
                }
            }
        })
        .await;
        assert!(closed.is_ok(), "the close was seen");
        assert_eq!(got, burst);
        writer.await.unwrap();
    }
}
