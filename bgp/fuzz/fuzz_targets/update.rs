#![no_main]
//! UPDATE bodies behind a valid header: attributes, MP_REACH/MP_UNREACH, NLRI.
mod common;
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else { return };
    common::check(&common::with_header(2, rest), &common::context(sel));
});
