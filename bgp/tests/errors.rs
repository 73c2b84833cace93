//! Hand-built malformed messages and the NOTIFICATION (RFC 4271 §6) or RFC 7606 action each one
//! must produce.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use bgp::error::ErrorKind;
use bgp::{Context, ErrorAction, Family, Message, MessageReader, Update};

fn msg(ty: u8, body: &[u8]) -> Vec<u8> {
    let mut m = vec![0xff; 16];
    m.extend_from_slice(&((19 + body.len()) as u16).to_be_bytes());
    m.push(ty);
    m.extend_from_slice(body);
    m
}

/// An UPDATE body from its three sections.
fn update(withdrawn: &[u8], attrs: &[u8], nlri: &[u8]) -> Vec<u8> {
    let mut b = (withdrawn.len() as u16).to_be_bytes().to_vec();
    b.extend_from_slice(withdrawn);
    b.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
    b.extend_from_slice(attrs);
    b.extend_from_slice(nlri);
    msg(2, &b)
}

const ORIGIN_IGP: [u8; 4] = [0x40, 1, 1, 0];
const AS_PATH_65001: [u8; 9] = [0x40, 2, 6, 2, 1, 0, 0, 0xfd, 0xe9];
const NEXT_HOP: [u8; 7] = [0x40, 3, 4, 198, 18, 0, 1];
const NLRI: [u8; 4] = [24, 198, 18, 1];

fn good_attrs() -> Vec<u8> {
    [&ORIGIN_IGP[..], &AS_PATH_65001, &NEXT_HOP].concat()
}

fn ctx() -> Context {
    Context::four_octet()
}

/// Decodes and expects a session reset with this (code, subcode).
fn reset(bytes: &[u8], code: u8, subcode: u8) -> bgp::DecodeError {
    let e = Message::decode(bytes, &ctx()).expect_err("must fail");
    let n = e.notification();
    assert_eq!((n.code, n.subcode), (code, subcode), "{e}");
    e
}

/// Decodes an UPDATE that keeps the session and returns it.
fn soft(bytes: &[u8]) -> Update {
    match Message::decode(bytes, &ctx()) {
        Ok(Message::Update(u)) => u,
        other => panic!("expected an UPDATE, got {other:?}"),
    }
}

#[test]
fn header_errors() {
    let mut m = msg(4, &[]);
    m[3] = 0;
    let e = reset(&m, 1, 1);
    assert_eq!(e.offset, 0);

    let mut m = msg(4, &[]);
    m[17] = 18;
    let e = reset(&m, 1, 2);
    assert_eq!(e.notification().data, vec![0, 18]);

    let e = reset(&msg(9, &[]), 1, 3);
    assert_eq!(e.notification().data, vec![9]);
    assert_eq!(e.offset, 18);

    // KEEPALIVE must be exactly 19 octets.
    reset(&msg(4, &[0]), 1, 2);
    // UPDATE over 4096 without extended messages; fine with them.
    let big = update(&[], &[], &[8, 10].repeat(2100));
    reset(&big, 1, 2);
    let ext = Context {
        extended_message: true,
        ..ctx()
    };
    assert!(matches!(
        Message::decode(&big, &ext),
        Ok(Message::Update(_))
    ));
    // ...but OPEN never exceeds 4096 (RFC 8654 §4).
    let mut open = msg(1, &[4, 0, 1, 0, 90, 1, 1, 1, 1, 0]);
    open.resize(5000, 0);
    open[16..18].copy_from_slice(&5000u16.to_be_bytes());
    assert!(Message::decode(&open, &ext).is_err());
}

#[test]
fn framing() {
    let k = msg(4, &[]);
    assert_eq!(Message::frame(&k[..10], &ctx()), Ok(None));
    assert_eq!(Message::frame(&k, &ctx()), Ok(Some(19)));
    assert!(Message::frame(&[0xff, 0x00], &ctx()).is_err());
    // A stream cut in the middle of a message is an error naming where that message starts.
    let mut s = k.clone();
    s.extend_from_slice(&k[..7]);
    let mut r = MessageReader::new(&s);
    assert!(r.next_raw(&ctx()).unwrap().is_some());
    let e = r.next_raw(&ctx()).unwrap_err();
    assert_eq!(e.offset, 19);
}

#[test]
fn open_errors() {
    // Version 3: data is our version, 2 octets.
    let e = reset(&msg(1, &[3, 0xfd, 0xe9, 0, 90, 198, 18, 0, 1, 0]), 2, 1);
    assert_eq!(e.notification().data, vec![0, 4]);
    reset(&msg(1, &[4, 0xfd, 0xe9, 0, 2, 198, 18, 0, 1, 0]), 2, 6);
    reset(&msg(1, &[4, 0xfd, 0xe9, 0, 90, 0, 0, 0, 0, 0]), 2, 3);
    // Optional parameter type 1 (authentication, deprecated).
    reset(
        &msg(1, &[4, 0xfd, 0xe9, 0, 90, 198, 18, 0, 1, 3, 1, 1, 0]),
        2,
        4,
    );
    // Capability overrunning its parameter.
    reset(
        &msg(1, &[4, 0xfd, 0xe9, 0, 90, 198, 18, 0, 1, 4, 2, 2, 65, 4]),
        2,
        0,
    );
    // Hold time 0 is legal.
    assert!(Message::decode(&msg(1, &[4, 0xfd, 0xe9, 0, 0, 198, 18, 0, 1, 0]), &ctx()).is_ok());
}

#[test]
fn open_with_extended_optional_parameters() {
    // RFC 9072: 255, 255, length 2 octets, parameter length 2 octets.
    let caps = [65, 4, 0xfa, 0x56, 0xea, 0x00];
    let mut body = vec![4, 0x5b, 0xa0, 0, 90, 198, 18, 0, 1, 255, 255];
    body.extend_from_slice(&((caps.len() + 3) as u16).to_be_bytes());
    body.push(2);
    body.extend_from_slice(&(caps.len() as u16).to_be_bytes());
    body.extend_from_slice(&caps);
    let Message::Open(o) = Message::decode(&msg(1, &body), &ctx()).unwrap() else {
        panic!()
    };
    assert_eq!(o.asn(), 4_200_000_000);
}

#[test]
fn update_framing_errors_reset_the_session() {
    // Withdrawn routes length runs past the message.
    let mut m = update(&[], &[], &[]);
    m[19..21].copy_from_slice(&100u16.to_be_bytes());
    reset(&m, 3, 1);
    // An attribute overrunning the attribute list.
    reset(&update(&[], &[0x40, 1, 5, 0], &[]), 3, 1);
    // Prefix length 33.
    let e = reset(&update(&[], &good_attrs(), &[33, 1, 2, 3, 4, 5]), 3, 10);
    assert_eq!(e.offset, 19 + 4 + good_attrs().len());
    // Unrecognized well-known attribute.
    let e = reset(&update(&[], &[0x40, 99, 1, 7], &[]), 3, 2);
    assert_eq!(e.notification().data, vec![0x40, 99, 1, 7]);
    // MP_REACH twice.
    let unreach = [0x80, 15, 3, 0, 2, 1];
    reset(&update(&[], &[unreach, unreach].concat(), &[]), 3, 1);
    // MP_REACH with an IPv6 next hop of 5 octets.
    reset(
        &update(&[], &[0x80, 14, 10, 0, 2, 1, 5, 1, 2, 3, 4, 5, 0], &[]),
        3,
        9,
    );
    // MP_REACH with wrong flags (transitive).
    reset(&update(&[], &[0xc0, 15, 3, 0, 2, 1], &[]), 3, 4);
}

#[test]
fn treat_as_withdraw_errors() {
    // ORIGIN 3.
    let attrs = [&[0x40, 1, 1, 3][..], &AS_PATH_65001, &NEXT_HOP].concat();
    let u = soft(&update(&[], &attrs, &NLRI));
    assert!(u.treat_as_withdraw());
    assert_eq!(u.nlri.len(), 1, "the NLRI is kept so it can be withdrawn");
    let (c, s, d) = u.errors[0].kind.notification();
    assert_eq!((c, s, d), (3, 6, vec![0x40, 1, 1, 3]));

    // Missing AS_PATH.
    let attrs = [&ORIGIN_IGP[..], &NEXT_HOP].concat();
    let u = soft(&update(&[], &attrs, &NLRI));
    assert!(u.treat_as_withdraw());
    assert_eq!(u.errors[0].kind, ErrorKind::MissingWellKnown(2));

    // MED of 3 octets.
    let attrs = [&good_attrs()[..], &[0x80, 4, 3, 0, 0, 1]].concat();
    let u = soft(&update(&[], &attrs, &NLRI));
    assert!(u.treat_as_withdraw());
    assert_eq!(u.errors[0].kind.notification().1, 5);

    // ORIGIN marked optional: flags error.
    let attrs = [&[0xc0, 1, 1, 0][..], &AS_PATH_65001, &NEXT_HOP].concat();
    let u = soft(&update(&[], &attrs, &NLRI));
    assert!(u.treat_as_withdraw());
    assert_eq!(u.errors[0].kind.notification().1, 4);
    assert_eq!(
        u.errors.len(),
        1,
        "a malformed ORIGIN is not also reported missing"
    );

    // Communities not a multiple of 4; large communities not a multiple of 12.
    for bad in [&[0xc0, 8, 3, 0, 0, 1][..], &[0xc0, 32, 4, 0, 0, 0, 1]] {
        let u = soft(&update(&[], &[&good_attrs()[..], bad].concat(), &NLRI));
        assert!(u.treat_as_withdraw());
    }
}

#[test]
fn attribute_discard_errors() {
    // ATOMIC_AGGREGATE with a value, AGGREGATOR of the wrong size: dropped, UPDATE stands.
    let attrs = [&good_attrs()[..], &[0x40, 6, 1, 0], &[0xc0, 7, 3, 0, 0, 1]].concat();
    let u = soft(&update(&[], &attrs, &NLRI));
    assert!(!u.treat_as_withdraw());
    assert!(
        u.errors
            .iter()
            .all(|e| e.action == ErrorAction::AttributeDiscard)
    );
    assert_eq!(u.errors.len(), 2);
    assert!(!u.attributes.atomic_aggregate);
    assert_eq!(u.attributes.aggregator, None);

    // A duplicate attribute: the first one wins.
    let attrs = [
        &good_attrs()[..],
        &[0xc0, 8, 4, 0, 0, 0, 1],
        &[0xc0, 8, 4, 0, 0, 0, 2],
    ]
    .concat();
    let u = soft(&update(&[], &attrs, &NLRI));
    assert_eq!(u.attributes.communities, vec![bgp::attribute::Community(1)]);
    assert!(!u.treat_as_withdraw());
}

#[test]
fn as4_reconciliation_from_a_two_octet_speaker() {
    let two = Context::default();
    // AS_PATH 65010 23456, AS4_PATH 4200000001; AGGREGATOR AS_TRANS + AS4_AGGREGATOR.
    let attrs = [
        &ORIGIN_IGP[..],
        &[0x40, 2, 6, 2, 2, 0xfd, 0xf2, 0x5b, 0xa0],
        &NEXT_HOP,
        &[0xc0, 7, 6, 0x5b, 0xa0, 198, 18, 0, 9],
        &[0xc0, 17, 6, 2, 1, 0xfa, 0x56, 0xea, 0x01],
        &[0xc0, 18, 8, 0xfa, 0x56, 0xea, 0x01, 198, 18, 0, 9],
    ]
    .concat();
    let Message::Update(u) = Message::decode(&update(&[], &attrs, &NLRI), &two).unwrap() else {
        panic!()
    };
    assert_eq!(
        u.attributes.as_path.unwrap().to_string(),
        "65010 4200000001"
    );
    assert_eq!(u.attributes.aggregator.unwrap().asn, 4_200_000_001);
    // A malformed AS4_PATH is discarded and the 2-octet path stands.
    let attrs = [
        &ORIGIN_IGP[..],
        &[0x40, 2, 4, 2, 1, 0xfd, 0xf2],
        &NEXT_HOP,
        &[0xc0, 17, 3, 2, 1, 0],
    ]
    .concat();
    let Message::Update(u) = Message::decode(&update(&[], &attrs, &NLRI), &two).unwrap() else {
        panic!()
    };
    assert_eq!(u.attributes.as_path.unwrap().to_string(), "65010");
    assert_eq!(u.errors[0].action, ErrorAction::AttributeDiscard);
}

#[test]
fn unknown_attributes_propagate_with_partial_bit() {
    let attrs = [&good_attrs()[..], &[0xc0, 200, 2, 1, 2], &[0x80, 201, 1, 9]].concat();
    let u = soft(&update(&[], &attrs, &NLRI));
    assert_eq!(u.attributes.unknown.len(), 2);
    let out = Message::Update(u).encode(&ctx()).unwrap();
    // Transitive one re-sent with Partial; non-transitive one dropped.
    assert!(out.windows(5).any(|w| w == [0xe0, 200, 2, 1, 2]));
    assert!(!out.windows(2).any(|w| w == [0x80, 201]));
}

#[test]
fn end_of_rib_markers() {
    let u = soft(&update(&[], &[], &[]));
    assert_eq!(u.end_of_rib_family(), Some(Family::IPV4_UNICAST));
    let u = soft(&update(&[], &[0x80, 15, 3, 0, 2, 1], &[]));
    assert_eq!(u.end_of_rib_family(), Some(Family::IPV6_UNICAST));
    let eor = Message::Update(Update::end_of_rib(Family::IPV6_UNICAST))
        .encode(&ctx())
        .unwrap();
    assert_eq!(eor, update(&[], &[0x80, 15, 3, 0, 2, 1], &[]));
    assert_eq!(
        soft(&update(&[], &good_attrs(), &NLRI)).end_of_rib_family(),
        None
    );
}

#[test]
fn route_refresh() {
    let Message::RouteRefresh(r) = Message::decode(&msg(5, &[0, 2, 1, 1]), &ctx()).unwrap() else {
        panic!()
    };
    assert_eq!(r.family, Family::IPV6_UNICAST);
    assert_eq!(r.subtype, bgp::RefreshSubtype::BeginningOfRefresh);
    let e = reset(&msg(5, &[0, 2, 0, 1, 0]), 7, 1);
    assert_eq!(e.notification().data.len(), 24, "data is the whole message");
}
