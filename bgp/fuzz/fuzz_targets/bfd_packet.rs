#![no_main]
//! BFD control packets (the bfd crate's one decoder): decoding never panics, and whatever
//! decodes survives an encode/decode round trip.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(p) = bfd::Packet::decode(data) {
        assert_eq!(bfd::Packet::decode(&p.encode()), Ok(p));
    }
});
