//! A BGP peer played by hand over one TCP connection from a namespace: for what no daemon can
//! be told to do, such as stop reading, or send 100,000 distinct attribute sets as fast as
//! the socket takes them. Messages come from the `bgp` crate's encoder.

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bgp::attribute::LargeCommunity;
use bgp::{
    AsPath, Capability, Context, Family, Message, Nlri, Open, Origin, PathAttributes, Update,
};

use crate::error::{Error, Result};
use crate::netns::Netns;

/// One session: OPEN (hold 9 s, IPv4 unicast, 4-octet AS) and KEEPALIVE sent on connect. A
/// writer thread then sends the payload once [`HandPeer::go`] is called, a KEEPALIVE between
/// chunks and every 2 s after, until dropped or the connection fails. Nothing is read unless
/// [`HandPeer::drain_input`] is called: a peer that never reads fills its receive window and
/// then the other side's send buffer.
pub struct HandPeer {
    stream: TcpStream,
    go: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    writer: Option<JoinHandle<()>>,
}

impl HandPeer {
    /// Connects from `ns` to `to:179` as `asn`/`id`; `payload` is whole messages per chunk.
    pub fn connect(
        ns: &Netns,
        to: IpAddr,
        asn: u32,
        id: Ipv4Addr,
        payload: Vec<Vec<u8>>,
    ) -> Result<HandPeer> {
        let io = |e: std::io::Error| Error::io("hand-played peer", e);
        let mut s = ns.tcp_connect(SocketAddr::new(to, 179), Duration::from_secs(5))?;
        let ctx = Context::default();
        let open = Open::new(
            asn,
            9,
            id,
            vec![Capability::Multiprotocol(Family::IPV4_UNICAST)],
        );
        let enc = |m: Message| {
            m.encode(&ctx)
                .map_err(|e| Error::config("hand-played peer", e.to_string()))
        };
        s.write_all(&enc(Message::Open(open))?).map_err(io)?;
        let keepalive = enc(Message::Keepalive)?;
        s.write_all(&keepalive).map_err(io)?;
        let mut w = s.try_clone().map_err(io)?;
        let (go, stop) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicBool::new(false)),
        );
        let (go2, stop2) = (go.clone(), stop.clone());
        // One writer per socket: messages never interleave.
        let writer = std::thread::spawn(move || {
            let mut last = Instant::now();
            let mut payload = payload.into_iter();
            while !stop2.load(Ordering::Relaxed) {
                let chunk = go2
                    .load(Ordering::Relaxed)
                    .then(|| payload.next())
                    .flatten();
                let wrote = match chunk {
                    Some(c) => w.write_all(&c),
                    None => {
                        std::thread::sleep(Duration::from_millis(100));
                        Ok(())
                    }
                };
                if wrote.is_err() {
                    return;
                }
                if last.elapsed() >= Duration::from_secs(2) {
                    last = Instant::now();
                    if w.write_all(&keepalive).is_err() {
                        return;
                    }
                }
            }
        });
        Ok(HandPeer {
            stream: s,
            go,
            stop,
            writer: Some(writer),
        })
    }

    /// Starts sending the payload.
    pub fn go(&self) {
        self.go.store(true, Ordering::Relaxed);
    }

    /// Reads (and drops) whatever the other side sends, on a thread of its own.
    pub fn drain_input(&self) -> Result<()> {
        let mut r = self
            .stream
            .try_clone()
            .map_err(|e| Error::io("hand-played peer", e))?;
        std::thread::spawn(move || std::io::copy(&mut r, &mut std::io::sink()));
        Ok(())
    }
}

impl Drop for HandPeer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
        if let Some(w) = self.writer.take() {
            let _ = w.join();
        }
    }
}

/// `n` IPv4 /24s from 100.64.0.0 up, originated by `asn` with next hop `next_hop`, each with a
/// large community of its own, in chunks of 1,000 messages. A community crosses into other
/// ASes (a MED would be dropped there and the routes packed together again), so no two share
/// attributes on either side of a relay: one UPDATE each.
pub fn distinct_routes(n: u32, asn: u32, next_hop: Ipv4Addr) -> Vec<Vec<u8>> {
    let ctx = Context::four_octet();
    let mut chunks: Vec<Vec<u8>> = Vec::new();
    for i in 0..n {
        if i % 1000 == 0 {
            chunks.push(Vec::with_capacity(64 * 1000));
        }
        let Ok(prefix) = ipnet::Ipv4Net::new(Ipv4Addr::from(0x6440_0000 + (i << 8)), 24) else {
            continue;
        };
        let u = Update {
            attributes: PathAttributes {
                origin: Some(Origin::Igp),
                as_path: Some(AsPath::sequence([asn])),
                next_hop: Some(next_hop),
                large_communities: vec![LargeCommunity {
                    global: asn,
                    local1: i,
                    local2: 0,
                }],
                ..PathAttributes::default()
            },
            nlri: vec![Nlri::new(prefix)],
            ..Update::default()
        };
        if let (Ok(m), Some(last)) = (Message::Update(u).encode(&ctx), chunks.last_mut()) {
            last.extend(m);
        }
    }
    chunks
}
