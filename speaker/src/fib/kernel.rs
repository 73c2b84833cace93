//! The FIB's rtnetlink shell: dump a table, replace and delete our routes, and parse the
//! kernel's route notifications. No `setns`: the FIB works in the namespace sartd runs in, on
//! the runtime's own threads.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use daemon::routes::{each_route, table_of};
use ipnet::IpNet;
use rtnetlink::packet_core::{NetlinkMessage, NetlinkPayload};
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::packet_route::route::{
    RouteAddress, RouteAttribute, RouteMessage, RouteProtocol, RouteType, RouteVia,
};
use rtnetlink::{Handle, RouteMessageBuilder, RouteNextHopBuilder};

use super::plan::{Kernel, Want};

/// Kernel routes the FIB installs carry RTPROT_BGP (`ip route show proto bgp`), as sart's own
/// FIB and FRR's zebra do: an upgraded node's routes from sart are ours to keep or remove, and
/// tools that look for BGP routes find them. Every route of this protocol in our table is taken
/// as ours, so no other BGP daemon may write the same table. Pod routes of the CNI carry 50.
pub(crate) const ROUTE_PROTOCOL: u8 = 186;

#[derive(Debug, thiserror::Error)]
pub(crate) enum KernelError {
    #[error("netlink socket: {0}")]
    Socket(#[source] std::io::Error),
    #[error("{what}: {source}")]
    Netlink {
        what: String,
        #[source]
        source: rtnetlink::Error,
    },
    #[error("{0}")]
    Invalid(String),
}

/// One route of the table, as a notification or a dump shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Seen {
    pub prefix: IpNet,
    pub metric: u32,
    pub ours: bool,
    pub next_hops: BTreeSet<IpAddr>,
}

/// A notification about the table: a route appeared (or changed) or went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Event {
    New(Seen),
    Del(Seen),
}

fn addr(a: &RouteAddress) -> Option<IpAddr> {
    match a {
        RouteAddress::Inet(v4) => Some(IpAddr::V4(*v4)),
        RouteAddress::Inet6(v6) => Some(IpAddr::V6(*v6)),
        _ => None,
    }
}

fn gateway(attrs: &[RouteAttribute]) -> Option<IpAddr> {
    attrs.iter().find_map(|a| match a {
        RouteAttribute::Gateway(g) => addr(g),
        RouteAttribute::Via(RouteVia::Inet6(v6)) => Some(IpAddr::V6(*v6)),
        RouteAttribute::Via(RouteVia::Inet(v4)) => Some(IpAddr::V4(*v4)),
        _ => None,
    })
}

/// The route of `table` a message describes; `None` for other tables and non-unicast routes.
pub(crate) fn parse(m: &RouteMessage, table: u32) -> Option<Seen> {
    if table_of(m) != table || m.header.kind != RouteType::Unicast {
        return None;
    }
    let len = m.header.destination_prefix_length;
    let dst = m.attributes.iter().find_map(|a| match a {
        RouteAttribute::Destination(d) => addr(d),
        _ => None,
    });
    let prefix = match (m.header.address_family, dst) {
        (_, Some(IpAddr::V4(a))) => IpNet::new(IpAddr::V4(a), len).ok()?,
        (_, Some(IpAddr::V6(a))) => IpNet::new(IpAddr::V6(a), len).ok()?,
        (rtnetlink::packet_route::AddressFamily::Inet, None) => {
            IpNet::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0).ok()?
        }
        (rtnetlink::packet_route::AddressFamily::Inet6, None) => {
            IpNet::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0).ok()?
        }
        _ => return None,
    };
    let metric = m
        .attributes
        .iter()
        .find_map(|a| match a {
            RouteAttribute::Priority(p) => Some(*p),
            _ => None,
        })
        .unwrap_or(0);
    let mut next_hops: BTreeSet<IpAddr> = gateway(&m.attributes).into_iter().collect();
    for a in &m.attributes {
        if let RouteAttribute::MultiPath(hops) = a {
            next_hops.extend(hops.iter().filter_map(|h| gateway(&h.attributes)));
        }
    }
    Some(Seen {
        prefix,
        metric,
        ours: m.header.protocol == RouteProtocol::from(ROUTE_PROTOCOL),
        next_hops,
    })
}

/// A notification from the route multicast groups, if it is about `table`.
pub(crate) fn event(msg: &NetlinkMessage<RouteNetlinkMessage>, table: u32) -> Option<Event> {
    match &msg.payload {
        NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewRoute(m)) => {
            parse(m, table).map(Event::New)
        }
        NetlinkPayload::InnerMessage(RouteNetlinkMessage::DelRoute(m)) => {
            parse(m, table).map(Event::Del)
        }
        _ => None,
    }
}

/// Everything in `table`, both families.
pub(crate) async fn dump(handle: &Handle, table: u32) -> Result<Kernel, KernelError> {
    let mut k = Kernel::default();
    each_route(handle, |m| {
        let Some(seen) = parse(m, table) else {
            return;
        };
        if seen.ours {
            k.ours.insert((seen.prefix, seen.metric), seen.next_hops);
        } else {
            k.foreign.insert((seen.prefix, seen.metric));
        }
    })
    .await
    .map_err(|source| KernelError::Netlink {
        what: format!("dumping table {table}"),
        source,
    })?;
    Ok(k)
}

fn base(
    prefix: IpNet,
    metric: u32,
    table: u32,
) -> Result<RouteMessageBuilder<IpAddr>, KernelError> {
    RouteMessageBuilder::<IpAddr>::new()
        .destination_prefix(prefix.addr(), prefix.prefix_len())
        .map(|b| {
            b.table_id(table)
                .protocol(RouteProtocol::from(ROUTE_PROTOCOL))
                .priority(metric)
        })
        .map_err(|e| KernelError::Invalid(format!("{prefix}: {e}")))
}

/// Adds or replaces our route: one next hop, or one multipath route for ECMP.
pub(crate) async fn replace(
    handle: &Handle,
    table: u32,
    prefix: IpNet,
    want: &Want,
) -> Result<(), KernelError> {
    let b = base(prefix, want.metric, table)?;
    let msg = match want.next_hops.iter().collect::<Vec<_>>()[..] {
        [] => return Err(KernelError::Invalid(format!("{prefix}: no next hop"))),
        [one] => b
            .gateway(*one)
            .map_err(|e| KernelError::Invalid(format!("{prefix}: {e}")))?
            .build(),
        ref many => {
            let af = if prefix.addr().is_ipv4() {
                rtnetlink::packet_route::AddressFamily::Inet
            } else {
                rtnetlink::packet_route::AddressFamily::Inet6
            };
            let hops = many
                .iter()
                .map(|nh| RouteNextHopBuilder::new(af).via(**nh).map(|h| h.build()))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| KernelError::Invalid(format!("{prefix}: {e}")))?;
            b.multipath(hops).build()
        }
    };
    handle
        .route()
        .add(msg)
        .replace()
        .execute()
        .await
        .map_err(|e| KernelError::Netlink {
            what: format!("installing {prefix} via {:?}", want.next_hops),
            source: e,
        })
}

/// Deletes our route (destination, metric). A route already gone is not an error.
pub(crate) async fn delete(
    handle: &Handle,
    table: u32,
    prefix: IpNet,
    metric: u32,
) -> Result<(), KernelError> {
    let msg = base(prefix, metric, table)?.build();
    match handle.route().del(msg).execute().await {
        Ok(()) => Ok(()),
        // ESRCH: the kernel's answer for a route that is not there.
        Err(rtnetlink::Error::NetlinkError(m))
            if m.raw_code().abs() == nix::errno::Errno::ESRCH as i32 =>
        {
            Ok(())
        }
        Err(e) => Err(KernelError::Netlink {
            what: format!("deleting {prefix} metric {metric}"),
            source: e,
        }),
    }
}
