#![no_main]
//! A byte stream of many messages, split by the framer as a session reader would.
mod common;
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else { return };
    let ctx = common::context(sel);
    let mut r = bgp::MessageReader::new(rest);
    while let Ok(Some(raw)) = r.next_raw(&ctx) {
        common::check(raw, &ctx);
    }
});
