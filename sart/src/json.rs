//! JSON and one-line views of decoded messages, for `sart bgp decode`.

use bgp::attribute::{MpReach, MpUnreach, NextHop, PathAttributes};
use bgp::capability::{AddPathMode, Capability, Role};
use bgp::{Context, Message, Nlri, Update};
use serde_json::{Value, json};

fn nlri<P: std::fmt::Display>(n: &Nlri<P>) -> Value {
    match n.path_id {
        None => json!(n.prefix.to_string()),
        Some(id) => json!({"prefix": n.prefix.to_string(), "path_id": id}),
    }
}

fn list<P: std::fmt::Display>(v: &[Nlri<P>]) -> impl Iterator<Item = Value> + '_ {
    v.iter().map(nlri)
}

fn next_hop(nh: &NextHop) -> (Value, Value) {
    match nh {
        NextHop::V4(a) => (json!(a.to_string()), Value::Null),
        NextHop::V6(v6) => (
            json!(v6.global.to_string()),
            v6.link_local.map_or(Value::Null, |l| json!(l.to_string())),
        ),
    }
}

fn family(f: bgp::Family) -> Value {
    json!(f.to_string())
}

pub fn message(m: &Message, offset: usize, len: usize, ctx: &Context) -> Value {
    let mut v = match m {
        Message::Open(o) => json!({
            "type": "OPEN",
            "version": bgp::open::BGP_VERSION,
            "my_as": o.my_as,
            "asn": o.asn(),
            "hold_time": o.hold_time,
            "bgp_id": o.bgp_id.to_string(),
            "capabilities": o.capabilities.iter().map(capability).collect::<Vec<_>>(),
        }),
        Message::Update(u) => update(u, ctx),
        Message::Notification(n) => json!({
            "type": "NOTIFICATION",
            "code": n.code,
            "subcode": n.subcode,
            "description": n.description(),
            "data": hex::encode(&n.data),
            "shutdown_message": n.shutdown_message(),
        }),
        Message::Keepalive => json!({"type": "KEEPALIVE"}),
        Message::RouteRefresh(r) => json!({
            "type": "ROUTE-REFRESH",
            "family": family(r.family),
            "subtype": match r.subtype {
                bgp::RefreshSubtype::Request => "request".to_string(),
                bgp::RefreshSubtype::BeginningOfRefresh => "begin".to_string(),
                bgp::RefreshSubtype::EndOfRefresh => "end".to_string(),
                bgp::RefreshSubtype::Reserved(n) => format!("reserved-{n}"),
            },
        }),
    };
    if let Value::Object(o) = &mut v {
        o.insert("offset".into(), json!(offset));
        o.insert("length".into(), json!(len));
    }
    v
}

fn update(u: &Update, ctx: &Context) -> Value {
    let mut announced: Vec<Value> = list(&u.nlri).collect();
    let mut withdrawn: Vec<Value> = list(&u.withdrawn).collect();
    let mut attrs = attributes(&u.attributes);
    let mut families = Vec::new();
    if let Some(r) = &u.mp_reach {
        families.push(family(r.family()));
        let (nh, ll) = match r {
            MpReach::Ipv4Unicast { next_hop: nh, nlri } => {
                announced.extend(list(nlri));
                next_hop(nh)
            }
            MpReach::Ipv6Unicast { next_hop: nh, nlri } => {
                announced.extend(list(nlri));
                next_hop(&NextHop::V6(*nh))
            }
            MpReach::Other { next_hop, nlri, .. } => {
                attrs["mp_reach_raw"] =
                    json!({"next_hop": hex::encode(next_hop), "nlri": hex::encode(nlri)});
                (Value::Null, Value::Null)
            }
        };
        attrs["mp_next_hop"] = nh;
        attrs["mp_link_local_next_hop"] = ll;
    }
    if let Some(r) = &u.mp_unreach {
        match r {
            MpUnreach::Ipv4Unicast(v) => withdrawn.extend(list(v)),
            MpUnreach::Ipv6Unicast(v) => withdrawn.extend(list(v)),
            MpUnreach::Other { nlri, .. } => attrs["mp_unreach_raw"] = json!(hex::encode(nlri)),
        }
    }
    json!({
        "type": "UPDATE",
        "announced": announced,
        "withdrawn": withdrawn,
        "end_of_rib": u.end_of_rib_family().map(family),
        "attributes": attrs,
        "treat_as_withdraw": u.treat_as_withdraw(),
        "errors": u.errors.iter().map(|e| {
            let (code, subcode, _) = e.kind.notification();
            json!({
                "offset": e.offset,
                "action": format!("{:?}", e.action),
                "error": e.kind.to_string(),
                "code": code,
                "subcode": subcode,
            })
        }).collect::<Vec<_>>(),
        "context": {
            "four_octet_as": ctx.four_octet_as,
            "add_path": ctx.add_path.iter().map(family).collect::<Vec<_>>(),
            "extended_message": ctx.extended_message,
        },
    })
}

fn attributes(a: &PathAttributes) -> Value {
    let mut v = json!({});
    let o = &mut v;
    if let Some(x) = a.origin {
        o["origin"] = json!(x.name());
    }
    if let Some(p) = &a.as_path {
        o["as_path"] = json!(p.to_string());
        o["as_path_segments"] = p
            .segments
            .iter()
            .map(|s| json!({"type": s.kind.name(), "asns": s.asns}))
            .collect();
    }
    if let Some(x) = a.next_hop {
        o["next_hop"] = json!(x.to_string());
    }
    if let Some(x) = a.med {
        o["med"] = json!(x);
    }
    if let Some(x) = a.local_pref {
        o["local_pref"] = json!(x);
    }
    if a.atomic_aggregate {
        o["atomic_aggregate"] = json!(true);
    }
    if let Some(x) = a.aggregator {
        o["aggregator"] = json!({"asn": x.asn, "address": x.address.to_string()});
    }
    if !a.communities.is_empty() {
        o["communities"] = a.communities.iter().map(|c| json!(c.to_string())).collect();
    }
    if let Some(x) = a.originator_id {
        o["originator_id"] = json!(x.to_string());
    }
    if !a.cluster_list.is_empty() {
        o["cluster_list"] = a
            .cluster_list
            .iter()
            .map(|c| json!(c.to_string()))
            .collect();
    }
    if !a.ext_communities.is_empty() {
        o["ext_communities"] = a
            .ext_communities
            .iter()
            .map(|c| json!(c.to_string()))
            .collect();
        o["ext_communities_hex"] = a
            .ext_communities
            .iter()
            .map(|c| json!(hex::encode(c.0)))
            .collect();
    }
    if !a.large_communities.is_empty() {
        o["large_communities"] = a
            .large_communities
            .iter()
            .map(|c| json!(c.to_string()))
            .collect();
    }
    if let Some(x) = a.otc {
        o["otc"] = json!(x);
    }
    if !a.unknown.is_empty() {
        o["unknown"] = a
            .unknown
            .iter()
            .map(|r| json!({"type": r.type_code, "flags": r.flags, "value": hex::encode(&r.value)}))
            .collect();
    }
    v
}

fn capability(c: &Capability) -> Value {
    let (name, detail) = match c {
        Capability::Multiprotocol(f) => ("multiprotocol", json!(family(*f))),
        Capability::RouteRefresh => ("route-refresh", Value::Null),
        Capability::ExtendedNextHop(v) => (
            "extended-next-hop",
            v.iter()
                .map(|e| json!({"family": family(e.family), "next_hop_afi": e.next_hop_afi.0}))
                .collect(),
        ),
        Capability::ExtendedMessage => ("extended-message", Value::Null),
        Capability::Role(r) => (
            "role",
            json!(match r {
                Role::Provider => "provider".to_string(),
                Role::RouteServer => "route-server".to_string(),
                Role::RouteServerClient => "route-server-client".to_string(),
                Role::Customer => "customer".to_string(),
                Role::Peer => "peer".to_string(),
                Role::Unknown(n) => format!("unknown-{n}"),
            }),
        ),
        Capability::GracefulRestart(g) => (
            "graceful-restart",
            json!({
                "restarting": g.restarting,
                "notification": g.notification,
                "restart_time": g.restart_time,
                "families": g.families.iter().map(|f| json!({
                    "family": family(f.family), "forwarding_preserved": f.forwarding_preserved
                })).collect::<Vec<_>>(),
            }),
        ),
        Capability::FourOctetAs(a) => ("four-octet-as", json!(a)),
        Capability::AddPath(v) => (
            "add-path",
            v.iter()
                .map(|a| {
                    json!({"family": family(a.family), "mode": match a.mode {
                        AddPathMode::Receive => "receive",
                        AddPathMode::Send => "send",
                        AddPathMode::Both => "both",
                    }})
                })
                .collect(),
        ),
        Capability::EnhancedRouteRefresh => ("enhanced-route-refresh", Value::Null),
        Capability::LongLivedGracefulRestart(v) => (
            "long-lived-graceful-restart",
            v.iter()
                .map(|l| {
                    json!({"family": family(l.family), "forwarding_preserved": l.forwarding_preserved, "stale_time": l.stale_time})
                })
                .collect(),
        ),
        Capability::Fqdn { hostname, domain } => ("fqdn", json!({"hostname": hostname, "domain": domain})),
        Capability::Unknown { value, .. } => ("unknown", json!(hex::encode(value))),
    };
    json!({"code": c.code(), "name": name, "value": detail})
}

/// One line for a person: offset, type and the gist.
pub fn summary(m: &Message, offset: usize) -> String {
    let gist = match m {
        Message::Open(o) => format!(
            "AS {} id {} hold {} caps [{}]",
            o.asn(),
            o.bgp_id,
            o.hold_time,
            o.capabilities
                .iter()
                .map(|c| c.code().to_string())
                .collect::<Vec<_>>()
                .join(",")
        ),
        Message::Update(u) => {
            let ann = u.nlri.len()
                + match &u.mp_reach {
                    Some(MpReach::Ipv4Unicast { nlri, .. }) => nlri.len(),
                    Some(MpReach::Ipv6Unicast { nlri, .. }) => nlri.len(),
                    _ => 0,
                };
            let wd = u.withdrawn.len()
                + match &u.mp_unreach {
                    Some(MpUnreach::Ipv4Unicast(v)) => v.len(),
                    Some(MpUnreach::Ipv6Unicast(v)) => v.len(),
                    _ => 0,
                };
            match u.end_of_rib_family() {
                Some(f) => format!("End-of-RIB {f}"),
                None => format!(
                    "{ann} announced, {wd} withdrawn{}{}",
                    u.attributes
                        .as_path
                        .as_ref()
                        .map(|p| format!(", path [{p}]"))
                        .unwrap_or_default(),
                    if u.treat_as_withdraw() {
                        ", TREAT-AS-WITHDRAW"
                    } else {
                        ""
                    }
                ),
            }
        }
        Message::Notification(n) => format!(
            "{}/{} {}{}",
            n.code,
            n.subcode,
            n.description(),
            n.shutdown_message()
                .map(|s| format!(": {s:?}"))
                .unwrap_or_default()
        ),
        Message::Keepalive => String::new(),
        Message::RouteRefresh(r) => format!("{} {:?}", r.family, r.subtype),
    };
    format!("{offset:>8}  {:<13} {gist}", m.message_type().name())
}
