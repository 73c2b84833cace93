#![no_main]
//! Packed NLRI fields, IPv4 and IPv6, with and without path identifiers; decoding then encoding
//! must give back the same entries.
use bgp::prefix::{Nlri, decode_nlri, encode_nlri};
use ipnet::{Ipv4Net, Ipv6Net};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else { return };
    let add_path = sel & 1 != 0;
    if sel & 2 == 0 {
        let mut v: Vec<Nlri<Ipv4Net>> = Vec::new();
        if decode_nlri(rest, 0, add_path, &mut v).is_ok() {
            let mut out = Vec::new();
            v.iter().for_each(|n| encode_nlri(n, add_path, &mut out));
            let mut again = Vec::new();
            decode_nlri(&out, 0, add_path, &mut again).expect("re-encoded NLRI must decode");
            assert_eq!(again, v);
        }
    } else {
        let mut v: Vec<Nlri<Ipv6Net>> = Vec::new();
        if decode_nlri(rest, 0, add_path, &mut v).is_ok() {
            let mut out = Vec::new();
            v.iter().for_each(|n| encode_nlri(n, add_path, &mut out));
            let mut again = Vec::new();
            decode_nlri(&out, 0, add_path, &mut again).expect("re-encoded NLRI must decode");
            assert_eq!(again, v);
        }
    }
});
