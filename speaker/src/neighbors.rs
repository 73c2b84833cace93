//! The neighbour table's entries, and how a neighbour's configuration becomes its session's:
//! the OPEN's capabilities, the timers, where to connect.

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use bgp::fsm::SessionConfig;
use bgp::rib::PeerId;
use bgp::{Capability, Family, Negotiated};

use super::graceful::Stale;
use super::session::{Endpoint, Output};
use speaker_config::Neighbor;

/// What the speaker keeps of one neighbour; its session task is the driver's.
#[derive(Debug)]
pub(crate) struct Peer {
    pub neighbor: Neighbor,
    pub id: PeerId,
    /// What the session negotiated and where its UPDATEs go, while established.
    pub up: Option<Up>,
    /// Graceful restart as the receiving speaker (RFC 4724 §4.2).
    pub stale: Stale,
    /// Past the max-prefix limit in this session (a warning-only limit warns once).
    pub over_limit: bool,
    pub max_prefix_exceeded: u64,
}

/// An established session.
#[derive(Debug)]
pub(crate) struct Up {
    pub negotiated: Negotiated,
    pub output: Arc<Output>,
}

impl Peer {
    pub(crate) fn new(neighbor: Neighbor, id: PeerId) -> Peer {
        Peer {
            neighbor,
            id,
            up: None,
            stale: Stale::default(),
            over_limit: false,
            max_prefix_exceeded: 0,
        }
    }

    pub(crate) fn negotiated(&self) -> Option<&Negotiated> {
        self.up.as_ref().map(|u| &u.negotiated)
    }

    /// Whether the running session keeps our routes when we go away (RFC 4724 §4.1).
    pub(crate) fn keeps_our_routes(&self) -> bool {
        self.neighbor.graceful_restart.is_some()
            && self
                .negotiated()
                .is_some_and(|n| n.peer_graceful_restart.is_some())
    }
}

/// The session of `n` for a speaker of `asn`/`router_id`; `restarting` sets the R bit.
pub(crate) fn session_config(
    asn: u32,
    router_id: Ipv4Addr,
    n: &Neighbor,
    restarting: bool,
) -> SessionConfig {
    let mut sc = SessionConfig::new(asn, router_id, n.asn);
    sc.hold_time = n.hold_time;
    sc.keepalive_time = n.keepalive_time;
    sc.send_hold_time = n.send_hold_time.map(|t| Duration::from_secs(t.into()));
    sc.passive = n.passive;
    sc.capabilities = capabilities(n, restarting);
    sc
}

pub(crate) fn endpoint(n: &Neighbor, port: u16) -> Endpoint {
    Endpoint {
        address: n.address,
        port,
        local_address: n.local_address,
        ttl: n.ttl,
        router_id: n.router_id,
        password: n.password.clone(),
    }
}

fn capabilities(n: &Neighbor, restarting: bool) -> Vec<Capability> {
    let mut caps: Vec<Capability> = n
        .families
        .iter()
        .map(|f| Capability::Multiprotocol(*f))
        .collect();
    if let Some(gr) = n.graceful_restart {
        // Forwarding state is preserved for every family: the kernel keeps forwarding to what we
        // advertise (pod blocks, VIPs, installed routes) while sartd restarts.
        caps.push(Capability::GracefulRestart(
            bgp::capability::GracefulRestart {
                restarting,
                notification: false,
                restart_time: gr.restart_time,
                families: n
                    .families
                    .iter()
                    .map(|f| bgp::capability::GracefulRestartFamily {
                        family: *f,
                        forwarding_preserved: true,
                    })
                    .collect(),
            },
        ));
    }
    caps.push(Capability::RouteRefresh);
    caps.push(Capability::EnhancedRouteRefresh);
    // IPv4 routes over an IPv6 session need IPv6 next hops (RFC 8950).
    if n.address.is_ipv6() && n.families.contains(&Family::IPV4_UNICAST) {
        caps.push(Capability::ExtendedNextHop(vec![
            bgp::capability::ExtendedNextHop {
                family: Family::IPV4_UNICAST,
                next_hop_afi: bgp::Afi::IPV6,
            },
        ]));
    }
    caps
}
