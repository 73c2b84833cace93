//! Routes on sart's FibApi (`sart.v1.Route`) and as a channel or the kernel FIB keeps them.

use std::collections::BTreeSet;
use std::net::IpAddr;

use ipnet::IpNet;
use proto::v1;

use super::channel;
use super::plan::{METRIC_IBGP, Want};

/// The kernel's protocol number for BGP routes.
pub(crate) const PROTOCOL_BGP: u8 = 186;

/// A route the speaker wants in the kernel, as the FibApi carries it.
pub(crate) fn from_want(prefix: IpNet, want: &Want, table: u32) -> v1::Route {
    let distance = if want.metric == METRIC_IBGP { 200 } else { 20 };
    encode(
        prefix,
        &channel::Route {
            next_hops: want.next_hops.clone(),
            distance,
            metric: want.metric,
            protocol: PROTOCOL_BGP,
        },
        table,
    )
}

/// sart's `IpVersion` of a prefix.
pub(crate) fn version(prefix: IpNet) -> v1::IpVersion {
    match prefix {
        IpNet::V4(_) => v1::IpVersion::V4,
        IpNet::V6(_) => v1::IpVersion::V6,
    }
}

pub(crate) fn encode(prefix: IpNet, r: &channel::Route, table: u32) -> v1::Route {
    v1::Route {
        table,
        version: version(prefix) as i32,
        destination: prefix.to_string(),
        protocol: i32::from(r.protocol),
        scope: v1::Scope::Universe as i32,
        r#type: v1::Type::Unicast as i32,
        next_hops: r
            .next_hops
            .iter()
            .map(|g| v1::NextHop {
                gateway: g.to_string(),
                weight: 1,
                flags: 0,
                interface: 0,
            })
            .collect(),
        source: String::new(),
        ad: i32::from(r.distance),
        priority: r.metric,
        ibgp: r.distance == 200,
    }
}

/// A FibApi route: its destination, and the route with its distance (sart's `ad`) and metric
/// (sart's `priority`, else the distance, as sart's speaker leaves it 0).
pub(crate) fn decode(r: &v1::Route) -> Result<(IpNet, channel::Route), String> {
    let prefix: IpNet = r
        .destination
        .parse()
        .map_err(|_| format!("destination {:?} is not a prefix", r.destination))?;
    let next_hops = r
        .next_hops
        .iter()
        .map(|h| {
            h.gateway
                .parse::<IpAddr>()
                .map_err(|_| format!("{prefix}: gateway {:?} is not an address", h.gateway))
        })
        .collect::<Result<BTreeSet<IpAddr>, String>>()?;
    if next_hops.is_empty() {
        return Err(format!("{prefix}: no next hop"));
    }
    let distance = u8::try_from(r.ad).unwrap_or(u8::MAX);
    let protocol = match u8::try_from(r.protocol) {
        Ok(0) | Err(_) => PROTOCOL_BGP,
        Ok(p) => p,
    };
    Ok((
        prefix.trunc(),
        channel::Route {
            next_hops,
            distance,
            metric: if r.priority == 0 {
                u32::from(distance)
            } else {
                r.priority
            },
            protocol,
        },
    ))
}

/// What a kernel table gets for a selected route: `None` for a route without a gateway, which
/// only makes sense in the table it came from.
pub(crate) fn want(r: &channel::Route) -> Option<Want> {
    (!r.next_hops.is_empty()).then(|| Want {
        next_hops: r.next_hops.clone(),
        metric: r.metric,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_speakers_routes_go_over_the_wire_and_back() {
        let prefix: IpNet = "198.18.7.0/24".parse().unwrap();
        let want = Want {
            next_hops: ["198.18.0.1".parse().unwrap(), "198.18.0.2".parse().unwrap()].into(),
            metric: METRIC_IBGP,
        };
        let w = from_wire_roundtrip(prefix, &want);
        assert_eq!(w.0, prefix);
        assert_eq!(w.1.distance, 200);
        assert_eq!(super::want(&w.1), Some(want));
    }

    fn from_wire_roundtrip(prefix: IpNet, want: &Want) -> (IpNet, channel::Route) {
        let r = from_want(prefix, want, 254);
        assert_eq!(r.version, v1::IpVersion::V4 as i32);
        assert!(r.ibgp);
        decode(&r).unwrap()
    }

    #[test]
    fn sarts_routes_without_a_priority_rank_by_distance() {
        let r = v1::Route {
            destination: "2001:db8::/32".into(),
            version: v1::IpVersion::V6 as i32,
            ad: v1::AdministrativeDistance::Adebgp as i32,
            next_hops: vec![v1::NextHop {
                gateway: "fd00::1".into(),
                ..Default::default()
            }],
            ..Default::default()
        };
        let (_, route) = decode(&r).unwrap();
        assert_eq!(
            (route.distance, route.metric, route.protocol),
            (20, 20, 186)
        );
        let mut bad = r.clone();
        bad.next_hops.clear();
        assert!(decode(&bad).unwrap_err().contains("no next hop"));
        bad.destination = "nope".into();
        assert!(decode(&bad).unwrap_err().contains("not a prefix"));
    }

    #[test]
    fn connected_routes_stay_out_of_other_tables() {
        let r = channel::Route {
            next_hops: BTreeSet::new(),
            distance: 0,
            metric: 0,
            protocol: 2,
        };
        assert_eq!(want(&r), None);
    }
}
