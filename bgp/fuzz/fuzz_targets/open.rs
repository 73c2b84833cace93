#![no_main]
//! OPEN bodies behind a valid header: optional parameters and capabilities.
mod common;
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    common::check(&common::with_header(1, data), &common::context(1));
});
