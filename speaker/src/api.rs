//! The `sart.v1.BgpApi` gRPC service: each call becomes a request to the speaker task and waits
//! for its answer. Bad arguments are `InvalidArgument`, unknown neighbours `NotFound`, at once.

use std::net::{IpAddr, Ipv4Addr};
use std::pin::Pin;
use std::str::FromStr;

use bgp::Family;
use bgp::attribute::Community;
use bgp::fsm::SessionConfig;
use bgp::rib::{Action, Export};
use futures::Stream;
use ipnet::IpNet;
use proto::v1;
use proto::v1::bgp_api_server::BgpApi;
use tokio::sync::{mpsc, oneshot};
use tonic::{Request, Response, Status};

use super::request::{self, ApiError, RouteView, WatchEvent};
use speaker_config::{
    self, BfdAuthInput, BfdInput, GracefulRestartInput, MaxPrefixInput, NeighborInput, PathSpec,
    PrefixRuleInput, Ttl,
};

pub(crate) struct Api {
    pub tx: mpsc::Sender<request::Request>,
}

fn unavailable() -> Status {
    Status::unavailable("the speaker is shutting down")
}

impl From<ApiError> for Status {
    fn from(e: ApiError) -> Status {
        match e {
            ApiError::NotFound(m) => Status::not_found(m),
            ApiError::InvalidArgument(m) => Status::invalid_argument(m),
            ApiError::FailedPrecondition(m) => Status::failed_precondition(m),
        }
    }
}

impl Api {
    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> request::Request,
    ) -> Result<T, Status> {
        let (tx, rx) = oneshot::channel();
        self.tx.send(make(tx)).await.map_err(|_| unavailable())?;
        rx.await.map_err(|_| unavailable())
    }
}

fn family(f: Option<v1::AddressFamily>) -> Result<Family, Status> {
    let f = f.unwrap_or(v1::AddressFamily {
        afi: v1::address_family::Afi::Ip4 as i32,
        safi: v1::address_family::Safi::Unicast as i32,
    });
    match (
        v1::address_family::Afi::try_from(f.afi),
        v1::address_family::Safi::try_from(f.safi),
    ) {
        (Ok(v1::address_family::Afi::Ip4), Ok(v1::address_family::Safi::Unicast)) => {
            Ok(Family::IPV4_UNICAST)
        }
        (Ok(v1::address_family::Afi::Ip6), Ok(v1::address_family::Safi::Unicast)) => {
            Ok(Family::IPV6_UNICAST)
        }
        _ => Err(Status::invalid_argument(
            "family: only ipv4/ipv6 unicast are supported",
        )),
    }
}

fn proto_family(f: Family) -> v1::AddressFamily {
    v1::AddressFamily {
        afi: if f == Family::IPV6_UNICAST {
            v1::address_family::Afi::Ip6 as i32
        } else {
            v1::address_family::Afi::Ip4 as i32
        },
        safi: v1::address_family::Safi::Unicast as i32,
    }
}

/// A `Peer` as written, for the one validation every neighbour goes through. Protobuf has no
/// absent number, so 0 and "" mean "the default" here.
fn neighbor_input(p: v1::Peer) -> Result<NeighborInput, Status> {
    let nonzero = |v: u32| Some(v).filter(|v| *v != 0);
    let text = |s: String| Some(s).filter(|s| !s.is_empty());
    let families = p
        .families
        .iter()
        .map(|f| family(Some(*f)).map(|f| f.to_string()))
        .collect::<Result<Vec<_>, _>>()?;
    let export = match v1::Export::try_from(p.export) {
        Ok(v1::Export::Unspecified) => None,
        Ok(v1::Export::All) => Some("all"),
        Ok(v1::Export::Originated) => Some("originated"),
        Err(_) => return Err(Status::invalid_argument(format!("export {}", p.export))),
    };
    let bfd = match p.bfd {
        None => None,
        Some(b) => {
            let auth = match b.auth {
                None => None,
                Some(a) => {
                    let method = u8::try_from(a.method)
                        .ok()
                        .and_then(bfd::Method::from_code)
                        .ok_or_else(|| {
                            Status::invalid_argument(format!(
                                "bfd.auth.type: {}: keyed-sha1 (4) or meticulous-keyed-sha1 (5)",
                                a.method
                            ))
                        })?;
                    Some(BfdAuthInput {
                        method: method.name().to_string(),
                        key_id: a.key_id,
                        password: a.password,
                    })
                }
            };
            Some(BfdInput {
                interval_ms: nonzero(b.interval_ms),
                multiplier: nonzero(b.multiplier),
                multihop: Some(b.multihop),
                auth,
            })
        }
    };
    Ok(NeighborInput {
        name: text(p.name),
        asn: Some(p.asn),
        address: text(p.address),
        router_id: text(p.router_id),
        passive: Some(p.passive_open),
        hold_time: nonzero(p.hold_time),
        keepalive_time: nonzero(p.keepalive_time),
        families: (!families.is_empty()).then_some(families),
        ttl_security: Some(p.ttl_security),
        max_prefix: p.max_prefix.map(|m| MaxPrefixInput::Full {
            limit: m.limit,
            warning_only: m.warning_only,
            restart_after: m.restart_after,
        }),
        export: export.map(str::to_string),
        import: Some(
            p.import_prefixes
                .into_iter()
                .map(|r| PrefixRuleInput {
                    prefix: r.prefix,
                    ge: r.ge,
                    le: r.le,
                    action: Some(if r.deny { "deny" } else { "permit" }.to_string()),
                })
                .collect(),
        ),
        password: text(p.password),
        graceful_restart: p.graceful_restart.map(|g| GracefulRestartInput {
            restart_time: nonzero(g.restart_time),
        }),
        bfd,
        ..NeighborInput::default()
    })
}

fn addr(s: &str) -> Result<IpAddr, Status> {
    IpAddr::from_str(s).map_err(|_| Status::invalid_argument(format!("{s:?} is not an IP address")))
}

fn prefixes(v: &[String], f: Family) -> Result<Vec<IpNet>, Status> {
    if v.is_empty() {
        return Err(Status::invalid_argument("no prefixes given"));
    }
    v.iter()
        .map(|s| {
            let p = IpNet::from_str(s)
                .map_err(|_| Status::invalid_argument(format!("{s:?} is not a prefix (CIDR)")))?
                .trunc();
            let fits = match p {
                IpNet::V4(_) => f == Family::IPV4_UNICAST,
                IpNet::V6(_) => f == Family::IPV6_UNICAST,
            };
            if !fits {
                return Err(Status::invalid_argument(format!(
                    "{s} is not in family {f}"
                )));
            }
            Ok(p)
        })
        .collect()
}

/// The `Any` attributes of AddPath, by their sart type URLs.
fn path_spec(attrs: &[prost_types::Any]) -> Result<PathSpec, Status> {
    let mut spec = PathSpec::default();
    let bad = |name: &str| Status::invalid_argument(format!("attribute {name} does not decode"));
    for a in attrs {
        let name = a.type_url.rsplit('/').next().unwrap_or("");
        let v = &a.value[..];
        use prost::Message;
        match name {
            "sart.v1.OriginAttribute" => {
                let n = v1::OriginAttribute::decode(v).map_err(|_| bad(name))?.value;
                spec.origin = u8::try_from(n)
                    .ok()
                    .and_then(bgp::Origin::from_value)
                    .ok_or_else(|| Status::invalid_argument(format!("origin {n}: use 0-2")))?;
            }
            "sart.v1.LocalPrefAttribute" => {
                spec.local_pref = Some(
                    v1::LocalPrefAttribute::decode(v)
                        .map_err(|_| bad(name))?
                        .value,
                )
            }
            "sart.v1.MultiExitDiscAttribute" => {
                spec.med = Some(
                    v1::MultiExitDiscAttribute::decode(v)
                        .map_err(|_| bad(name))?
                        .value,
                )
            }
            "sart.v1.AsPathPrependAttribute" => {
                let n = v1::AsPathPrependAttribute::decode(v)
                    .map_err(|_| bad(name))?
                    .count;
                spec.as_path_prepend = u8::try_from(n)
                    .ok()
                    .filter(|n| *n <= 32)
                    .ok_or_else(|| Status::invalid_argument("prepend: at most 32"))?;
            }
            "sart.v1.CommunitiesAttribute" => {
                for c in v1::CommunitiesAttribute::decode(v)
                    .map_err(|_| bad(name))?
                    .communities
                {
                    spec.communities.push(
                        Community::from_str(&c)
                            .map_err(|e| Status::invalid_argument(e.to_string()))?,
                    );
                }
            }
            "sart.v1.LargeCommunitiesAttribute" => {
                for c in v1::LargeCommunitiesAttribute::decode(v)
                    .map_err(|_| bad(name))?
                    .communities
                {
                    spec.large_communities.push(c.parse().map_err(
                        |e: bgp::attribute::community::ParseCommunityError| {
                            Status::invalid_argument(e.to_string())
                        },
                    )?);
                }
            }
            "sart.v1.ExtendedCommunitiesAttribute" => {
                for c in v1::ExtendedCommunitiesAttribute::decode(v)
                    .map_err(|_| bad(name))?
                    .communities
                {
                    spec.ext_communities.push(c.parse().map_err(
                        |e: bgp::attribute::community::ParseCommunityError| {
                            Status::invalid_argument(e.to_string())
                        },
                    )?);
                }
            }
            other => {
                return Err(Status::invalid_argument(format!(
                    "unknown attribute type {other:?}"
                )));
            }
        }
    }
    Ok(spec)
}

fn path(r: &RouteView) -> v1::Path {
    let f = match r.prefix {
        IpNet::V4(_) => Family::IPV4_UNICAST,
        IpNet::V6(_) => Family::IPV6_UNICAST,
    };
    let a = &r.attrs;
    v1::Path {
        nlri: r.prefix.to_string(),
        family: Some(proto_family(f)),
        origin: a.origin.map_or(0, |o| o as u32),
        next_hops: r.next_hop.iter().map(request::next_hop_text).collect(),
        segments: a
            .as_path
            .iter()
            .flat_map(|p| p.segments.iter())
            .map(|s| v1::AsSegment {
                r#type: match s.kind {
                    bgp::attribute::SegmentType::Set | bgp::attribute::SegmentType::ConfedSet => {
                        v1::as_segment::Type::AsSet as i32
                    }
                    _ => v1::as_segment::Type::AsSequence as i32,
                },
                elm: s.asns.clone(),
            })
            .collect(),
        local_pref: a.local_pref.unwrap_or(0),
        med: a.med.unwrap_or(0),
        peer_asn: r.peer_asn,
        peer_addr: r.peer.map(|p| p.to_string()).unwrap_or_default(),
        best: r.best,
        timestamp: Some(prost_types::Timestamp {
            seconds: i64::from(r.since),
            nanos: 0,
        }),
        path_id: r.path_id,
        communities: a.communities.iter().map(|c| c.to_string()).collect(),
        large_communities: a.large_communities.iter().map(|c| c.to_string()).collect(),
        ext_communities: a.ext_communities.iter().map(|c| c.to_string()).collect(),
        reason: r.reason.unwrap_or("").to_string(),
        multipath: r.multipath,
    }
}

fn peer(n: &request::NeighborView) -> v1::Peer {
    let s = &n.status;
    let counter = |c: &super::session::Counters| v1::MessageCounter {
        open: c.open as u32,
        update: c.update as u32,
        keepalive: c.keepalive as u32,
        notification: c.notification as u32,
        route_refresh: c.route_refresh as u32,
    };
    let (negotiated_hold, negotiated_keepalive) = match &s.negotiated {
        Some(neg) if neg.hold_time > 0 => {
            let mut sc = SessionConfig::new(0, Ipv4Addr::UNSPECIFIED, n.config.asn);
            sc.keepalive_time = n.config.keepalive_time;
            let k = sc.keepalive_interval(neg.hold_time).as_secs();
            (u32::from(neg.hold_time), u32::try_from(k).unwrap_or(0))
        }
        _ => (0, 0),
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    v1::Peer {
        name: n.config.name.clone(),
        asn: n.config.asn,
        address: n.config.address.to_string(),
        router_id: s
            .negotiated
            .as_ref()
            .map(|x| x.peer_id)
            .or(n.config.router_id)
            .map(|i| i.to_string())
            .unwrap_or_default(),
        families: n.config.families.iter().map(|f| proto_family(*f)).collect(),
        hold_time: u32::from(n.config.hold_time),
        keepalive_time: n.config.keepalive_time.map_or(0, u32::from),
        negotiated_hold_time: negotiated_hold,
        negotiated_keepalive_time: negotiated_keepalive,
        max_prefix: n.config.max_prefix.map(|m| v1::MaxPrefix {
            limit: m.limit,
            warning_only: m.warning_only,
            restart_after: m.restart_after(),
        }),
        export: match n.config.export {
            Export::All => v1::Export::All,
            Export::Originated => v1::Export::Originated,
        } as i32,
        ttl_security: n.config.ttl == Ttl::Security,
        import_prefixes: n
            .config
            .import
            .rules()
            .iter()
            .map(|r| {
                let (ge, le) = r.lengths();
                v1::PrefixRule {
                    prefix: r.prefix().to_string(),
                    ge: Some(u32::from(ge)),
                    le: Some(u32::from(le)),
                    deny: r.action() == Action::Deny,
                }
            })
            .collect(),
        uptime: s.established_at.map(|t| prost_types::Timestamp {
            seconds: i64::try_from(t).unwrap_or(i64::MAX),
            nanos: 0,
        }),
        uptime_seconds: s.established_at.map_or(0, |t| now.saturating_sub(t)),
        send_counter: Some(counter(&s.sent)),
        recv_counter: Some(counter(&s.received)),
        state: s.state.api_number(),
        passive_open: n.config.passive,
        capabilities: Vec::new(),
        last_error: s.last_error.clone().unwrap_or_default(),
        prefixes_received: n.prefixes_received as u64,
        prefixes_advertised: 0,
        // Write-only.
        password: String::new(),
        graceful_restart: n.config.graceful_restart.map(|g| v1::GracefulRestart {
            restart_time: u32::from(g.restart_time),
        }),
        bfd: n.config.bfd.map(|b| v1::BfdConfig {
            interval_ms: b.interval_ms,
            multiplier: u32::from(b.multiplier),
            multihop: b.hops == bfd::Hops::Multi,
            auth: b.auth.map(|a| v1::BfdAuth {
                method: i32::from(a.method.code()),
                key_id: u32::from(a.key.id()),
                // Write-only.
                password: String::new(),
            }),
        }),
        bfd_status: n.bfd.as_ref().map(|b| v1::BfdStatus {
            state: b.state.to_string(),
            remote_diagnostic: b.remote_diagnostic.to_string(),
            detect_time_ms: b.detect_time_ms,
            up_transitions: b.up_transitions,
            auth_failures: b.auth_failures,
        }),
        graceful_restart_status: n
            .config
            .graceful_restart
            .map(|_| v1::GracefulRestartStatus {
                negotiated: s
                    .negotiated
                    .as_ref()
                    .is_some_and(|x| x.peer_graceful_restart.is_some()),
                peer_restart_time: s
                    .negotiated
                    .as_ref()
                    .and_then(|x| x.peer_graceful_restart.as_ref())
                    .map_or(0, |g| u32::from(g.restart_time)),
                stale_paths: n.stale_paths as u64,
            }),
    }
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<v1::WatchEvent, Status>> + Send>>;

#[tonic::async_trait]
impl BgpApi for Api {
    async fn health(&self, _: Request<v1::HealthRequest>) -> Result<Response<()>, Status> {
        self.ask(request::Request::Info).await?;
        Ok(Response::new(()))
    }

    async fn get_bgp_info(
        &self,
        _: Request<v1::GetBgpInfoRequest>,
    ) -> Result<Response<v1::GetBgpInfoResponse>, Status> {
        let i = self.ask(request::Request::Info).await?;
        Ok(Response::new(v1::GetBgpInfoResponse {
            info: Some(v1::BgpInfo {
                asn: i.asn,
                router_id: i.router_id.to_string(),
                port: u32::from(i.port),
                multi_path: i.max_paths > 1,
            }),
        }))
    }

    async fn get_neighbor(
        &self,
        req: Request<v1::GetNeighborRequest>,
    ) -> Result<Response<v1::GetNeighborResponse>, Status> {
        let a = addr(&req.get_ref().addr)?;
        let all = self.ask(request::Request::Neighbors).await?;
        let n = all
            .iter()
            .find(|n| n.config.address == a)
            .ok_or_else(|| Status::not_found(format!("no neighbor {a}")))?;
        Ok(Response::new(v1::GetNeighborResponse {
            peer: Some(peer(n)),
        }))
    }

    async fn list_neighbor(
        &self,
        _: Request<v1::ListNeighborRequest>,
    ) -> Result<Response<v1::ListNeighborResponse>, Status> {
        let all = self.ask(request::Request::Neighbors).await?;
        Ok(Response::new(v1::ListNeighborResponse {
            peers: all.iter().map(peer).collect(),
        }))
    }

    async fn get_path(
        &self,
        req: Request<v1::GetPathRequest>,
    ) -> Result<Response<v1::GetPathResponse>, Status> {
        let f = family(req.get_ref().family)?;
        let v = self.ask(|tx| request::Request::Routes(f, tx)).await?;
        Ok(Response::new(v1::GetPathResponse {
            paths: v.iter().map(path).collect(),
        }))
    }

    async fn get_neighbor_path(
        &self,
        req: Request<v1::GetNeighborPathRequest>,
    ) -> Result<Response<v1::GetNeighborPathResponse>, Status> {
        let r = req.get_ref();
        let a = addr(&r.addr)?;
        let f = family(r.family)?;
        let v = match v1::get_neighbor_path_request::Kind::try_from(r.kind) {
            Ok(v1::get_neighbor_path_request::Kind::In) => {
                self.ask(|tx| request::Request::AdjRibIn(a, f, tx))
                    .await??
            }
            Ok(v1::get_neighbor_path_request::Kind::Out) => {
                self.ask(|tx| request::Request::AdjRibOut(a, f, tx))
                    .await??
            }
            _ => return Err(Status::invalid_argument("kind: use IN or OUT")),
        };
        Ok(Response::new(v1::GetNeighborPathResponse {
            paths: v.iter().map(path).collect(),
        }))
    }

    async fn get_path_by_prefix(
        &self,
        req: Request<v1::GetPathByPrefixRequest>,
    ) -> Result<Response<v1::GetPathByPrefixResponse>, Status> {
        let r = req.get_ref();
        let f = family(r.family)?;
        let p = prefixes(std::slice::from_ref(&r.prefix), f)?
            .into_iter()
            .next()
            .ok_or_else(|| Status::invalid_argument("no prefix"))?;
        let v = self.ask(|tx| request::Request::Lookup(p, tx)).await?;
        Ok(Response::new(v1::GetPathByPrefixResponse {
            paths: v.iter().map(path).collect(),
        }))
    }

    async fn set_as(&self, req: Request<v1::SetAsRequest>) -> Result<Response<()>, Status> {
        let asn = req.get_ref().asn;
        if asn == 0 {
            return Err(Status::invalid_argument("AS 0 is reserved"));
        }
        self.ask(|tx| request::Request::SetAs(asn, tx)).await??;
        Ok(Response::new(()))
    }

    async fn set_router_id(
        &self,
        req: Request<v1::SetRouterIdRequest>,
    ) -> Result<Response<()>, Status> {
        let s = &req.get_ref().router_id;
        let id = Ipv4Addr::from_str(s)
            .ok()
            .filter(|i| !i.is_unspecified())
            .ok_or_else(|| {
                Status::invalid_argument(format!(
                    "{s:?} is not a router id (non-zero IPv4 address)"
                ))
            })?;
        self.ask(|tx| request::Request::SetRouterId(id, tx))
            .await??;
        Ok(Response::new(()))
    }

    async fn clear_bgp_info(
        &self,
        _: Request<v1::ClearBgpInfoRequest>,
    ) -> Result<Response<()>, Status> {
        Err(Status::unimplemented("ClearBgpInfo: restart sartd instead"))
    }

    async fn add_peer(&self, req: Request<v1::AddPeerRequest>) -> Result<Response<()>, Status> {
        let p = req
            .into_inner()
            .peer
            .ok_or_else(|| Status::invalid_argument("peer is required"))?;
        let n = neighbor_input(p)?
            .validate()
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        self.ask(|tx| request::Request::AddNeighbor(Box::new(n), tx))
            .await??;
        Ok(Response::new(()))
    }

    async fn delete_peer(
        &self,
        req: Request<v1::DeletePeerRequest>,
    ) -> Result<Response<()>, Status> {
        let a = addr(&req.get_ref().addr)?;
        self.ask(|tx| request::Request::DeleteNeighbor(a, tx))
            .await??;
        Ok(Response::new(()))
    }

    async fn add_path(
        &self,
        req: Request<v1::AddPathRequest>,
    ) -> Result<Response<v1::AddPathResponse>, Status> {
        let r = req.get_ref();
        let f = family(r.family)?;
        let ps = prefixes(&r.prefixes, f)?;
        let spec = path_spec(&r.attributes)?;
        self.ask(|tx| request::Request::AddPaths(ps, Box::new(spec), tx))
            .await??;
        Ok(Response::new(v1::AddPathResponse {}))
    }

    async fn delete_path(
        &self,
        req: Request<v1::DeletePathRequest>,
    ) -> Result<Response<v1::DeletePathResponse>, Status> {
        let r = req.get_ref();
        let f = family(r.family)?;
        let ps = prefixes(&r.prefixes, f)?;
        self.ask(|tx| request::Request::DeletePaths(ps, tx))
            .await??;
        Ok(Response::new(v1::DeletePathResponse {}))
    }

    async fn configure_multi_path(
        &self,
        req: Request<v1::ConfigureMultiPathRequest>,
    ) -> Result<Response<()>, Status> {
        let r = req.get_ref();
        let n = match (r.enable, r.max_paths) {
            (false, _) => 1,
            (true, 0) => speaker_config::DEFAULT_MAX_PATHS,
            (true, n) => n as usize,
        };
        self.ask(|tx| request::Request::SetMaxPaths(n, tx))
            .await??;
        Ok(Response::new(()))
    }

    async fn reset_neighbor(
        &self,
        req: Request<v1::ResetNeighborRequest>,
    ) -> Result<Response<()>, Status> {
        let r = req.get_ref();
        let a = addr(&r.addr)?;
        let kind = match v1::reset_neighbor_request::Kind::try_from(r.kind) {
            Ok(v1::reset_neighbor_request::Kind::SoftIn) => request::ResetKind::SoftIn,
            Ok(v1::reset_neighbor_request::Kind::SoftOut) => request::ResetKind::SoftOut,
            Ok(v1::reset_neighbor_request::Kind::Hard) => request::ResetKind::Hard,
            _ => {
                return Err(Status::invalid_argument(
                    "kind: use SOFT_IN, SOFT_OUT or HARD",
                ));
            }
        };
        self.ask(|tx| request::Request::Reset(a, kind, tx))
            .await??;
        Ok(Response::new(()))
    }

    type WatchStream = WatchStream;

    async fn watch(
        &self,
        req: Request<v1::WatchRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let r = *req.get_ref();
        let (tx, mut rx) = mpsc::channel::<WatchEvent>(1024);
        self.tx
            .send(request::Request::Watch(tx))
            .await
            .map_err(|_| unavailable())?;
        let stream = async_stream(
            move |out: mpsc::Sender<Result<v1::WatchEvent, Status>>| async move {
                while let Some(ev) = rx.recv().await {
                    let event = match ev {
                        WatchEvent::Peer {
                            name,
                            address,
                            asn,
                            state,
                        } if r.peers => v1::watch_event::Event::Peer(v1::PeerStateChange {
                            name,
                            address: address.to_string(),
                            asn,
                            state: state.api_number(),
                        }),
                        WatchEvent::Best { prefix, next_hops } if r.paths => {
                            let f = if prefix.addr().is_ipv4() {
                                Family::IPV4_UNICAST
                            } else {
                                Family::IPV6_UNICAST
                            };
                            v1::watch_event::Event::Path(v1::BestPathChange {
                                prefix: prefix.to_string(),
                                family: Some(proto_family(f)),
                                withdrawn: next_hops.is_empty(),
                                next_hops,
                            })
                        }
                        _ => continue,
                    };
                    if out
                        .send(Ok(v1::WatchEvent { event: Some(event) }))
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            },
        );
        Ok(Response::new(stream))
    }
}

/// A stream fed by a task writing into a bounded channel.
fn async_stream<F, Fut>(f: F) -> WatchStream
where
    F: FnOnce(mpsc::Sender<Result<v1::WatchEvent, Status>>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(f(tx));
    Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn yaml(n: &str) -> Result<speaker_config::Neighbor, String> {
        speaker_config::parse(&format!("neighbors: [{n}]"))
            .map(|mut c| c.neighbors.remove(0))
            .map_err(|e| e.reason)
    }

    fn grpc(p: v1::Peer) -> Result<speaker_config::Neighbor, String> {
        neighbor_input(p)
            .map_err(|s| s.message().to_string())?
            .validate()
            .map_err(|e| e.reason)
    }

    #[test]
    fn the_api_and_yaml_make_the_same_neighbour() {
        let peer = v1::Peer {
            asn: 65001,
            address: "198.18.0.2".into(),
            ..Default::default()
        };
        assert_eq!(
            grpc(peer.clone()),
            yaml("{asn: 65001, address: 198.18.0.2}")
        );
        let full = v1::Peer {
            hold_time: 9,
            keepalive_time: 3,
            ttl_security: true,
            graceful_restart: Some(v1::GracefulRestart { restart_time: 0 }),
            max_prefix: Some(v1::MaxPrefix {
                limit: 10,
                warning_only: false,
                restart_after: Some(0),
            }),
            export: v1::Export::Originated as i32,
            ..peer.clone()
        };
        assert_eq!(
            grpc(full),
            yaml(
                "{asn: 65001, address: 198.18.0.2, hold_time: 9, keepalive_time: 3, ttl_security: true, \
                 graceful_restart: {}, max_prefix: {limit: 10, restart_after: 0}, export: originated}"
            )
        );
        // Refused for the same reason, whichever way it came.
        for (bad, written) in [
            (
                v1::Peer {
                    hold_time: 2,
                    ..peer.clone()
                },
                "{asn: 65001, address: 198.18.0.2, hold_time: 2}",
            ),
            (
                v1::Peer {
                    hold_time: 9,
                    keepalive_time: 4,
                    ..peer.clone()
                },
                "{asn: 65001, address: 198.18.0.2, hold_time: 9, keepalive_time: 4}",
            ),
            (
                v1::Peer {
                    asn: 0,
                    ..peer.clone()
                },
                "{asn: 0, address: 198.18.0.2}",
            ),
        ] {
            let (a, b) = (grpc(bad).unwrap_err(), yaml(written).unwrap_err());
            assert_eq!(a, b, "{written}");
        }
    }
}
