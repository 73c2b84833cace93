//! Reading the kernel's routing tables over rtnetlink, for the speaker's FIB (the tables it
//! writes and the tables its channels watch) and the agent (the pod routes a node already has).
//! No `setns`: a dump reads the namespace of the handle's socket.

use std::net::{Ipv4Addr, Ipv6Addr};

use futures::TryStreamExt;
use rtnetlink::packet_route::route::{RouteAttribute, RouteMessage};
use rtnetlink::{Handle, RouteMessageBuilder};

/// The kernel's answer to a dump of a family it has no table for (IPv6 disabled).
const ESRCH: i32 = 3;

/// The table a route is in (the attribute, for tables past 255, else the header).
pub fn table_of(m: &RouteMessage) -> u32 {
    m.attributes
        .iter()
        .find_map(|a| match a {
            RouteAttribute::Table(t) => Some(*t),
            _ => None,
        })
        .unwrap_or(u32::from(m.header.table))
}

/// Hands every route of every table, both families, to `each`: one dump per family, read as it
/// comes rather than collected. A family the kernel does not have holds no routes.
pub async fn each_route(
    handle: &Handle,
    mut each: impl FnMut(&RouteMessage),
) -> Result<(), rtnetlink::Error> {
    let requests = [
        RouteMessageBuilder::<Ipv4Addr>::new().build(),
        RouteMessageBuilder::<Ipv6Addr>::new().build(),
    ];
    for req in requests {
        let mut routes = handle.route().get(req).execute();
        loop {
            match routes.try_next().await {
                Ok(Some(m)) => each(&m),
                Ok(None) => break,
                Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code().abs() == ESRCH => break,
                Err(e) => return Err(e),
            }
        }
    }
    Ok(())
}
