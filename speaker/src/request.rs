//! What the API asks of the speaker and the views it gets back: the speaker's side of the gRPC
//! service, free of protobuf types.

use std::net::{IpAddr, Ipv4Addr};

use bgp::Family;
use bgp::attribute::NextHop;
use bgp::fsm::State;
use ipnet::IpNet;
use tokio::sync::{mpsc, oneshot};

use super::session::Status;
use speaker_config::{Neighbor, PathSpec};

/// Requests from the API, each with its reply channel.
#[derive(Debug)]
pub(crate) enum Request {
    Info(oneshot::Sender<Info>),
    Neighbors(oneshot::Sender<Vec<NeighborView>>),
    AddNeighbor(Box<Neighbor>, oneshot::Sender<Result<(), ApiError>>),
    DeleteNeighbor(IpAddr, oneshot::Sender<Result<(), ApiError>>),
    AddPaths(
        Vec<IpNet>,
        Box<PathSpec>,
        oneshot::Sender<Result<(), ApiError>>,
    ),
    DeletePaths(Vec<IpNet>, oneshot::Sender<Result<(), ApiError>>),
    SetAs(u32, oneshot::Sender<Result<(), ApiError>>),
    SetRouterId(Ipv4Addr, oneshot::Sender<Result<(), ApiError>>),
    SetMaxPaths(usize, oneshot::Sender<Result<(), ApiError>>),
    Routes(Family, oneshot::Sender<Vec<RouteView>>),
    Lookup(IpNet, oneshot::Sender<Vec<RouteView>>),
    AdjRibIn(
        IpAddr,
        Family,
        oneshot::Sender<Result<Vec<RouteView>, ApiError>>,
    ),
    AdjRibOut(
        IpAddr,
        Family,
        oneshot::Sender<Result<Vec<RouteView>, ApiError>>,
    ),
    Watch(mpsc::Sender<WatchEvent>),
    Reset(IpAddr, ResetKind, oneshot::Sender<Result<(), ApiError>>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ResetKind {
    SoftIn,
    SoftOut,
    Hard,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ApiError {
    NotFound(String),
    InvalidArgument(String),
    FailedPrecondition(String),
}

impl ApiError {
    pub(crate) fn no_neighbor(addr: IpAddr) -> ApiError {
        ApiError::NotFound(format!("no neighbor {addr}"))
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Info {
    pub asn: u32,
    pub router_id: Ipv4Addr,
    pub port: u16,
    pub max_paths: usize,
}

#[derive(Debug, Clone)]
pub(crate) struct NeighborView {
    pub config: Neighbor,
    pub status: Status,
    pub prefixes_received: usize,
    pub stale_paths: usize,
    pub bfd: Option<BfdView>,
}

/// A BFD session as the API shows it.
#[derive(Debug, Clone)]
pub(crate) struct BfdView {
    pub state: &'static str,
    pub remote_diagnostic: &'static str,
    pub detect_time_ms: u32,
    pub up_transitions: u64,
    pub auth_failures: u64,
}

/// One path as the API shows it.
#[derive(Debug, Clone)]
pub(crate) struct RouteView {
    pub prefix: IpNet,
    pub path_id: u32,
    pub peer: Option<IpAddr>,
    pub peer_asn: u32,
    pub attrs: bgp::PathAttributes,
    pub next_hop: Option<NextHop>,
    pub best: bool,
    pub multipath: bool,
    pub reason: Option<&'static str>,
    pub since: u32,
}

/// Events for `Watch` subscribers.
#[derive(Debug, Clone)]
pub(crate) enum WatchEvent {
    Peer {
        name: String,
        address: IpAddr,
        asn: u32,
        state: State,
    },
    Best {
        prefix: IpNet,
        next_hops: Vec<String>,
    },
}

pub(crate) fn next_hop_text(nh: &NextHop) -> String {
    match nh {
        NextHop::V4(a) => a.to_string(),
        NextHop::V6(v) => v.global.to_string(),
    }
}
