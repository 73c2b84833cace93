// Shared by the fuzz targets: the context from a selector byte, and the round-trip check.

use bgp::{Context, Family, FamilySet, Message};

/// Bit 0: 4-octet AS; bit 1: add-path IPv4; bit 2: add-path IPv6; bit 3: extended messages.
pub fn context(sel: u8) -> Context {
    let mut add_path = FamilySet::new();
    if sel & 2 != 0 {
        add_path.insert(Family::IPV4_UNICAST);
    }
    if sel & 4 != 0 {
        add_path.insert(Family::IPV6_UNICAST);
    }
    Context {
        four_octet_as: sel & 1 != 0,
        add_path,
        extended_message: sel & 8 != 0,
    }
}

/// Wraps `body` in a header of type `ty` with the right length.
pub fn with_header(ty: u8, body: &[u8]) -> Vec<u8> {
    let mut m = vec![0xff; 16];
    m.extend_from_slice(&((19 + body.len()).min(65535) as u16).to_be_bytes());
    m.push(ty);
    m.extend_from_slice(body);
    m
}

/// Anything that decodes cleanly must re-encode and decode to the same value.
pub fn check(bytes: &[u8], ctx: &Context) {
    let Ok(m) = Message::decode(bytes, ctx) else { return };
    if let Message::Update(u) = &m {
        if !u.errors.is_empty() || !u.attributes.unknown.iter().all(|a| a.flags & 0x60 == 0x60) {
            // Discarded attributes and non-propagated unknowns legitimately change the value.
            return;
        }
        if u.attributes.as_path.is_some() && !ctx.four_octet_as {
            // AS4 reconciliation folds two attributes into one; the re-encoding differs.
            return;
        }
    }
    let Ok(again) = m.encode(ctx) else { return };
    let back = Message::decode(&again, ctx).expect("re-encoded message must decode");
    assert_eq!(back, m, "round trip changed the message");
}
