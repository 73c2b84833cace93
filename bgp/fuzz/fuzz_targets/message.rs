#![no_main]
//! Whole messages, header included, in a context chosen by the first byte.
mod common;
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else { return };
    common::check(rest, &common::context(sel));
});
