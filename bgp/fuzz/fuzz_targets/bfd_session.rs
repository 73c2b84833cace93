#![no_main]
//! The BFD receive path: an Up session fed arbitrary control packets from a sender that does
//! not know its discriminator (what a pod on the node, or anyone spoofing the peer's address,
//! can send) never leaves Up and never panics; whatever decodes is also fed with the right
//! discriminator, which may change the state but never panics. An authenticated Up session
//! (RFC 5880 §6.7.4) takes nothing of it, even with the right discriminators: without the key
//! nothing the fuzzer makes carries a valid digest.
use bfd::{Auth, Config, Key, Method, Packet, Session, State};

const MS: u64 = 1_000;
const LOCAL: u32 = 0x5a5a_5a5a;

fn up_pair(auth: bool) -> (Session, Session) {
    let cfg = Config {
        desired_min_tx: 100_000,
        required_min_rx: 100_000,
        detect_mult: 3,
    };
    let (mut a, mut b) = (Session::new(cfg, LOCAL, 0), Session::new(cfg, 7, 0));
    if auth {
        let key = |seq| Auth::new(Method::KeyedSha1, Key::new(1, b"fuzz").unwrap(), seq);
        (a, b) = (a.with_auth(key(1)), b.with_auth(key(100)));
    }
    for _ in 0..4 {
        if let (_, Some(p)) = a.poll_timers(0) {
            b.receive(&p, 0);
        }
        if let (_, Some(p)) = b.poll_timers(0) {
            a.receive(&p, 0);
        }
    }
    assert_eq!(a.state(), State::Up);
    (a, b)
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let (mut a, _) = up_pair(false);
    let (mut signed, _) = up_pair(true);
    let mut now = MS;
    for chunk in data.chunks(bfd::packet::MAX_LEN) {
        let Ok(p) = Packet::decode(chunk) else {
            continue;
        };
        now += MS;
        if p.your_discriminator != LOCAL {
            assert_eq!(a.receive(&p, now), None, "{p:?}");
            assert_eq!(a.state(), State::Up, "{p:?}");
        }
        let mut b = a.clone();
        let mut right = p;
        right.your_discriminator = LOCAL;
        let _ = b.receive(&right, now);
        let _ = b.poll_timers(now);
        right.my_discriminator = 7;
        assert_eq!(signed.receive(&right, now), None, "{right:?}");
        assert_eq!(signed.state(), State::Up, "{right:?}");
    }
});
