#![no_main]
//! NOTIFICATION and ROUTE-REFRESH bodies, and the shutdown communication inside.
mod common;
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    for ty in [3, 5] {
        let m = common::with_header(ty, data);
        common::check(&m, &common::context(0));
        if let Ok(bgp::Message::Notification(n)) = bgp::Message::decode(&m, &common::context(0)) {
            let _ = n.shutdown_message();
        }
    }
});
