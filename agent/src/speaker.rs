//! The local speaker's `BgpApi`, over one lazily connected channel that reconnects by itself.
//! Every call has a deadline, so a hung speaker cannot stall the agent.

use std::net::IpAddr;
use std::time::Duration;

use ipnet::IpNet;
use proto::v1;
use proto::v1::bgp_api_client::BgpApiClient;
use tonic::transport::Channel;

use super::plan::{BfdKnobs, Have, HavePeer, ImportRule, Knobs, Step};
use k8s::crd::PeerState;
use k8s::crd::bgp_peer_template::PrefixAction;

#[derive(Debug, thiserror::Error)]
pub enum SpeakerError {
    #[error("speaker endpoint {endpoint:?}: {reason}")]
    Endpoint { endpoint: String, reason: String },
    #[error("speaker {call}: {status}")]
    Call {
        call: &'static str,
        status: tonic::Status,
    },
}

/// The speaker's API takes the node's BGP passwords and drives its routing: the agent reaches
/// it only on this node, over a unix socket or a loopback address, whatever a NodeBGP says.
pub(crate) fn local(endpoint: &str) -> Result<(), String> {
    if let Some(p) = proto::unix_path(endpoint) {
        return if p.starts_with('/') {
            Ok(())
        } else {
            Err("a unix socket path must be absolute".into())
        };
    }
    let rest = endpoint
        .strip_prefix("http://")
        .or_else(|| endpoint.strip_prefix("https://"))
        .unwrap_or(endpoint);
    let authority = rest.split('/').next().unwrap_or_default();
    let host = match proto::split_authority(authority) {
        (h, Some(_)) => h,
        (_, None) => return Err("expected unix:///path or host:port".into()),
    };
    if proto::is_loopback_host(host) {
        Ok(())
    } else {
        Err(format!(
            "{} is not this node: the agent reaches its speaker only over a unix socket or loopback (it sends BGP passwords there)",
            host.trim_start_matches('[').trim_end_matches(']')
        ))
    }
}

/// What a new neighbour needs from Secrets: its TCP MD5 password and its BFD key.
#[derive(Clone, Default)]
pub(crate) struct Secrets {
    pub md5: Option<String>,
    pub bfd: Option<String>,
}

#[derive(Clone)]
pub(crate) struct Speaker {
    endpoint: String,
    client: BgpApiClient<Channel>,
}

fn call(call: &'static str) -> impl FnOnce(tonic::Status) -> SpeakerError {
    move |status| SpeakerError::Call { call, status }
}

fn family(net: &IpNet) -> v1::AddressFamily {
    let afi = match net {
        IpNet::V4(_) => v1::address_family::Afi::Ip4,
        IpNet::V6(_) => v1::address_family::Afi::Ip6,
    };
    v1::AddressFamily {
        afi: afi as i32,
        safi: v1::address_family::Safi::Unicast as i32,
    }
}

pub(crate) fn peer_state(s: i32) -> PeerState {
    use v1::peer::State;
    match State::try_from(s) {
        Ok(State::Idle) => PeerState::Idle,
        Ok(State::Connect) => PeerState::Connect,
        Ok(State::Active) => PeerState::Active,
        Ok(State::OpenSent) => PeerState::OpenSent,
        Ok(State::OpenConfirm) => PeerState::OpenConfirm,
        Ok(State::Established) => PeerState::Established,
        _ => PeerState::Unknown,
    }
}

impl Speaker {
    /// `unix:///path`, or `host:port` / a URL on loopback; nothing is dialled until the first
    /// call.
    pub(crate) fn new(endpoint: &str, timeout: Duration) -> Result<Speaker, SpeakerError> {
        let bad = |reason: String| SpeakerError::Endpoint {
            endpoint: endpoint.to_owned(),
            reason,
        };
        local(endpoint).map_err(bad)?;
        let channel = proto::lazy_channel(endpoint, Duration::from_secs(2), timeout)
            .map_err(|e| bad(e.to_string()))?;
        Ok(Speaker {
            endpoint: endpoint.to_owned(),
            client: BgpApiClient::new(channel),
        })
    }

    pub(crate) fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// AS, router id, multipath, neighbours (with their states) and local paths.
    pub(crate) async fn read(&self) -> Result<(Have, Vec<(IpAddr, PeerState)>), SpeakerError> {
        let mut c = self.client.clone();
        let info = c
            .get_bgp_info(v1::GetBgpInfoRequest {})
            .await
            .map_err(call("GetBgpInfo"))?
            .into_inner()
            .info
            .unwrap_or_default();
        let peers = c
            .list_neighbor(v1::ListNeighborRequest {})
            .await
            .map_err(call("ListNeighbor"))?
            .into_inner()
            .peers;
        let mut have = Have {
            asn: info.asn,
            router_id: info
                .router_id
                .parse()
                .ok()
                .filter(|r: &std::net::Ipv4Addr| !r.is_unspecified()),
            multipath: info.multi_path,
            ..Have::default()
        };
        let mut states = Vec::new();
        for p in peers {
            if let Ok(address) = p.address.parse() {
                have.peers.push(HavePeer {
                    address,
                    asn: p.asn,
                    name: p.name,
                    knobs: Knobs {
                        restart_time: p.graceful_restart.map(|g| g.restart_time),
                        bfd: p.bfd.map(|b| BfdKnobs {
                            interval_ms: b.interval_ms,
                            multiplier: b.multiplier,
                            multihop: b.multihop,
                            // The speaker reports only the methods it has (codes 4 and 5).
                            auth: b.auth.and_then(|a| {
                                let method = u8::try_from(a.method).ok()?;
                                Some((bfd::Method::from_code(method)?, a.key_id))
                            }),
                        }),
                        hold_time: p.hold_time,
                        keepalive_time: p.keepalive_time,
                        max_prefix: p
                            .max_prefix
                            .map(|m| (m.limit, m.warning_only, m.restart_after)),
                        announce_learned: p.export != v1::Export::Originated as i32,
                        ttl_security: p.ttl_security,
                        import: p
                            .import_prefixes
                            .iter()
                            .map(|r| ImportRule {
                                prefix: r.prefix.clone(),
                                ge: r.ge.unwrap_or(0),
                                le: r.le.unwrap_or(0),
                                deny: r.deny,
                            })
                            .collect(),
                    },
                    // A speaker that knows the field never reports it unspecified.
                    full: p.export != v1::Export::Unspecified as i32,
                });
                states.push((address, peer_state(p.state)));
            }
        }
        for afi in [v1::address_family::Afi::Ip4, v1::address_family::Afi::Ip6] {
            let paths = c
                .get_path(v1::GetPathRequest {
                    family: Some(v1::AddressFamily {
                        afi: afi as i32,
                        safi: v1::address_family::Safi::Unicast as i32,
                    }),
                })
                .await
                .map_err(call("GetPath"))?
                .into_inner()
                .paths;
            // Locally originated paths have no peer.
            have.paths.extend(
                paths
                    .iter()
                    .filter(|p| p.peer_addr.is_empty())
                    .filter_map(|p| p.nlri.parse::<IpNet>().ok()),
            );
        }
        Ok((have, states))
    }

    /// Carries out one step; `password` is the resolved TCP MD5 key of an AddPeer.
    pub(crate) async fn apply(&self, step: &Step, secrets: Secrets) -> Result<(), SpeakerError> {
        let mut c = self.client.clone();
        match step {
            Step::SetAs(asn) => {
                c.set_as(v1::SetAsRequest { asn: *asn })
                    .await
                    .map_err(call("SetAS"))?;
            }
            Step::SetRouterId(id) => {
                c.set_router_id(v1::SetRouterIdRequest {
                    router_id: id.to_string(),
                })
                .await
                .map_err(call("SetRouterId"))?;
            }
            Step::MultiPath(enable) => {
                c.configure_multi_path(v1::ConfigureMultiPathRequest {
                    enable: *enable,
                    ..Default::default()
                })
                .await
                .map_err(call("ConfigureMultiPath"))?;
            }
            Step::DeletePeer(addr) => {
                c.delete_peer(v1::DeletePeerRequest {
                    addr: addr.to_string(),
                })
                .await
                .map_err(call("DeletePeer"))?;
            }
            Step::AddPeer(w) => {
                c.add_peer(v1::AddPeerRequest {
                    peer: Some(v1::Peer {
                        name: w.name.clone(),
                        asn: w.asn,
                        address: w.address.to_string(),
                        hold_time: w.hold_time.unwrap_or(0),
                        keepalive_time: w.keepalive_time.unwrap_or(0),
                        password: secrets.md5.unwrap_or_default(),
                        graceful_restart: w.graceful_restart.as_ref().map(|g| {
                            v1::GracefulRestart {
                                restart_time: g.restart_time.unwrap_or(0),
                            }
                        }),
                        bfd: w.bfd.as_ref().map(|b| v1::BfdConfig {
                            interval_ms: b.interval_ms.unwrap_or(0),
                            multiplier: b.multiplier.unwrap_or(0),
                            multihop: b.multihop.unwrap_or(false),
                            auth: b.authentication.as_ref().map(|a| v1::BfdAuth {
                                method: i32::from(a.auth_type.method().code()),
                                key_id: a.key_id,
                                password: secrets.bfd.clone().unwrap_or_default(),
                            }),
                        }),
                        max_prefix: w.max_prefix.as_ref().map(|m| v1::MaxPrefix {
                            limit: m.limit,
                            warning_only: m.warning_only.unwrap_or(false),
                            restart_after: m.restart_after,
                        }),
                        // Kubernetes mode: a node announces only what it originates unless
                        // the BGPPeer asks for more.
                        ttl_security: w.ttl_security,
                        export: if w.announce_learned {
                            v1::Export::All
                        } else {
                            v1::Export::Originated
                        } as i32,
                        import_prefixes: w
                            .import_prefixes
                            .iter()
                            .map(|r| v1::PrefixRule {
                                prefix: r.prefix.clone(),
                                ge: r.ge,
                                le: r.le,
                                deny: r.action == Some(PrefixAction::Deny),
                            })
                            .collect(),
                        ..Default::default()
                    }),
                })
                .await
                .map_err(call("AddPeer"))?;
            }
            Step::AddPath(p) => {
                c.add_path(v1::AddPathRequest {
                    family: Some(family(p)),
                    prefixes: vec![p.to_string()],
                    attributes: Vec::new(),
                })
                .await
                .map_err(call("AddPath"))?;
            }
            Step::DeletePath(p) => {
                c.delete_path(v1::DeletePathRequest {
                    family: Some(family(p)),
                    prefixes: vec![p.to_string()],
                })
                .await
                .map_err(call("DeletePath"))?;
            }
        }
        Ok(())
    }

    /// The speaker's peer state changes, until the stream breaks.
    pub(crate) async fn watch(&self) -> Result<tonic::Streaming<v1::WatchEvent>, SpeakerError> {
        let mut c = self.client.clone();
        Ok(c.watch(v1::WatchRequest {
            peers: true,
            paths: false,
        })
        .await
        .map_err(call("Watch"))?
        .into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::local;

    #[test]
    fn only_a_unix_socket_or_loopback() {
        for ok in [
            "unix:///run/sart/bgp.sock",
            "unix:/run/sart/bgp.sock",
            "127.0.0.1:5000",
            "127.9.9.9:5000",
            "localhost:5000",
            "[::1]:5000",
            "http://127.0.0.1:5000",
            "http://[::1]:5000/",
        ] {
            assert_eq!(local(ok), Ok(()), "{ok}");
        }
        for bad in [
            "198.18.0.1:5000",
            "speaker.example:5000",
            "http://10.0.0.1:5000",
            "[fd00::1]:5000",
            "0.0.0.0:5000",
            "unix:relative.sock",
            "127.0.0.1",
            "",
        ] {
            assert!(local(bad).is_err(), "{bad}");
        }
        assert!(local("198.18.0.1:5000").unwrap_err().contains("198.18.0.1"));
    }
}
