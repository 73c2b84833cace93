//! `sart bgp global ...` and `sart bgp neighbor ...`: the speaker's gRPC API (`sart.v1.BgpApi`)
//! from the command line, with sart's command tree, plain tables or JSON (camelCase, as sart).

use std::process::ExitCode;

use anyhow::{Context as _, bail};
use clap::Subcommand;
use proto::v1;
use proto::v1::bgp_api_client::BgpApiClient;
use serde_json::{Value, json};
use tonic::transport::Channel;

use crate::Output;

#[derive(Subcommand, Debug)]
pub enum GlobalCommand {
    /// AS number, router id and multipath setting.
    Get,
    /// Exit 0 when the speaker answers.
    Health,
    /// Set the AS number, router id or multipath.
    Set {
        #[arg(long)]
        asn: Option<u32>,
        #[arg(long)]
        router_id: Option<String>,
        #[arg(long)]
        multi_path: Option<bool>,
    },
    /// The Loc-RIB and locally originated paths.
    Rib {
        #[command(subcommand)]
        command: RibCommand,
    },
}

#[derive(Subcommand, Debug)]
pub enum RibCommand {
    /// Show the Loc-RIB of a family.
    Get {
        #[arg(short = 'a', long, default_value = "ipv4")]
        afi: String,
        #[arg(short = 's', long, default_value = "unicast")]
        safi: String,
    },
    /// Originate prefixes, e.g. `-t origin=igp -t local_pref=200 -t med=10 -t community=65000:1`.
    Add {
        prefixes: Vec<String>,
        #[arg(short = 'a', long, default_value = "ipv4")]
        afi: String,
        #[arg(short = 't', long = "attribute")]
        attributes: Vec<String>,
    },
    /// Withdraw originated prefixes.
    Del {
        prefixes: Vec<String>,
        #[arg(short = 'a', long, default_value = "ipv4")]
        afi: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum NeighborCommand {
    /// One neighbour by address.
    Get { addr: String },
    /// Every neighbour.
    List,
    /// Add a neighbour.
    Add {
        addr: String,
        asn: u32,
        #[arg(long)]
        passive: bool,
        #[arg(long)]
        name: Option<String>,
    },
    /// Remove a neighbour (its session is closed with a Cease).
    Del { addr: String },
    /// Reset a session: `soft-in` asks the peer to resend (route refresh), `soft-out` resends
    /// ours, `hard` closes it with a Cease / Administrative Reset.
    Reset {
        addr: String,
        #[arg(value_parser = ["soft-in", "soft-out", "hard"])]
        kind: String,
    },
    /// Routes received from (`-k in`) or advertised to (`-k out`) a neighbour.
    Rib {
        addr: String,
        #[arg(short = 'k', long, default_value = "in")]
        kind: String,
        #[arg(short = 'a', long, default_value = "ipv4")]
        afi: String,
    },
}

fn family(afi: &str, safi: &str) -> anyhow::Result<v1::AddressFamily> {
    let afi = match afi {
        "ipv4" | "4" => v1::address_family::Afi::Ip4,
        "ipv6" | "6" => v1::address_family::Afi::Ip6,
        other => bail!("unknown address family {other:?}: use ipv4 or ipv6"),
    };
    let safi = match safi {
        "unicast" => v1::address_family::Safi::Unicast,
        "multicast" => v1::address_family::Safi::Multicast,
        other => bail!("unknown sub-address family {other:?}: use unicast"),
    };
    Ok(v1::AddressFamily {
        afi: afi as i32,
        safi: safi as i32,
    })
}

async fn client(endpoint: &str) -> anyhow::Result<BgpApiClient<Channel>> {
    proto::connect(endpoint, std::time::Duration::from_secs(5))
        .await
        .map(BgpApiClient::new)
        .with_context(|| {
            format!("cannot reach the speaker's API at {endpoint} (is `sartd bgp` running?)")
        })
}

/// Turns a gRPC status into a one-line error.
pub(crate) fn status(e: tonic::Status) -> anyhow::Error {
    anyhow::anyhow!("{:?}: {}", e.code(), e.message())
}

pub fn state_name(s: i32) -> &'static str {
    match v1::peer::State::try_from(s) {
        Ok(v1::peer::State::Idle) => "Idle",
        Ok(v1::peer::State::Connect) => "Connect",
        Ok(v1::peer::State::Active) => "Active",
        Ok(v1::peer::State::OpenSent) => "OpenSent",
        Ok(v1::peer::State::OpenConfirm) => "OpenConfirm",
        Ok(v1::peer::State::Established) => "Established",
        _ => "Unknown",
    }
}

fn family_json(f: &Option<v1::AddressFamily>) -> Value {
    let f = f.unwrap_or_default();
    let afi = match v1::address_family::Afi::try_from(f.afi) {
        Ok(v1::address_family::Afi::Ip4) => "ipv4",
        Ok(v1::address_family::Afi::Ip6) => "ipv6",
        _ => "unknown",
    };
    let safi = match v1::address_family::Safi::try_from(f.safi) {
        Ok(v1::address_family::Safi::Unicast) => "unicast",
        Ok(v1::address_family::Safi::Multicast) => "multicast",
        _ => "unknown",
    };
    json!({"afi": afi, "safi": safi})
}

fn counter_json(c: &Option<v1::MessageCounter>) -> Value {
    let c = c.unwrap_or_default();
    json!({"open": c.open, "update": c.update, "keepalive": c.keepalive,
           "notification": c.notification, "routeRefresh": c.route_refresh})
}

fn peer_json(p: &v1::Peer) -> Value {
    json!({
        "name": p.name,
        "address": p.address,
        "asn": p.asn,
        "routerId": p.router_id,
        "state": state_name(p.state),
        "uptime": p.uptime_seconds,
        // What the session runs with once Established (sart's meaning), else what is set.
        "holdTime": if p.negotiated_hold_time > 0 { p.negotiated_hold_time } else { p.hold_time },
        "keepAliveTime": p.negotiated_keepalive_time,
        "configured": {
            "holdTime": p.hold_time,
            "keepAliveTime": p.keepalive_time,
            "maxPrefix": p.max_prefix.map(|m| json!({
                "limit": m.limit,
                "warningOnly": m.warning_only,
                "restartAfter": m.restart_after,
            })),
            "ttlSecurity": p.ttl_security,
            "export": match v1::Export::try_from(p.export) {
                Ok(v1::Export::Originated) => "originated",
                _ => "all",
            },
            "importPrefixes": p.import_prefixes.iter().map(|r| json!({
                "prefix": r.prefix, "ge": r.ge, "le": r.le,
                "action": if r.deny { "deny" } else { "permit" },
            })).collect::<Vec<_>>(),
        },
        "families": p.families.iter().map(|f| family_json(&Some(*f))).collect::<Vec<_>>(),
        "passiveOpen": p.passive_open,
        "sendCounter": counter_json(&p.send_counter),
        "receiveCounter": counter_json(&p.recv_counter),
        "prefixesReceived": p.prefixes_received,
        "prefixesAdvertised": p.prefixes_advertised,
        "lastError": p.last_error,
        "gracefulRestart": p.graceful_restart.map(|g| json!({"restartTime": g.restart_time})),
        "gracefulRestartStatus": p.graceful_restart_status.map(|g| json!({
            "negotiated": g.negotiated,
            "peerRestartTime": g.peer_restart_time,
            "stalePaths": g.stale_paths,
        })),
        "bfd": p.bfd.as_ref().map(|b| json!({
            "intervalMs": b.interval_ms,
            "multiplier": b.multiplier,
            "multihop": b.multihop,
            "auth": b.auth.as_ref().map(|a| json!({
                "type": match v1::bfd_auth::Method::try_from(a.method) {
                    Ok(v1::bfd_auth::Method::KeyedSha1) => "keyed-sha1",
                    Ok(v1::bfd_auth::Method::MeticulousKeyedSha1) => "meticulous-keyed-sha1",
                    _ => "unspecified",
                },
                "keyId": a.key_id,
            })),
        })),
        "bfdStatus": p.bfd_status.as_ref().map(|b| json!({
            "state": b.state,
            "remoteDiagnostic": b.remote_diagnostic,
            "detectTimeMs": b.detect_time_ms,
            "upTransitions": b.up_transitions,
            "authFailures": b.auth_failures,
        })),
    })
}

fn path_json(p: &v1::Path) -> Value {
    json!({
        "nlri": p.nlri,
        "pathId": p.path_id,
        "family": family_json(&p.family),
        "origin": p.origin,
        "nextHops": p.next_hops,
        "segments": p.segments.iter().map(|s| json!({
            "type": if s.r#type == v1::as_segment::Type::AsSet as i32 { "set" } else { "sequence" },
            "elm": s.elm,
        })).collect::<Vec<_>>(),
        "localPref": p.local_pref,
        "med": p.med,
        "communities": p.communities,
        "largeCommunities": p.large_communities,
        "extCommunities": p.ext_communities,
        "peerAsn": p.peer_asn,
        "peerAddr": p.peer_addr,
        "best": p.best,
        "multipath": p.multipath,
        "reason": p.reason,
        "timestamp": p.timestamp.as_ref().map(|t| t.seconds.to_string()).unwrap_or_default(),
    })
}

/// Left-aligned columns, for people.
pub(crate) fn table(header: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut w: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            w[i] = w[i].max(c.len());
        }
    }
    let line = |cells: Vec<String>| {
        cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<width$}", width = w[i]))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
    };
    let mut out = vec![line(header.iter().map(|h| h.to_string()).collect())];
    out.extend(rows.into_iter().map(line));
    out.join("\n")
}

fn as_path_text(p: &v1::Path) -> String {
    p.segments
        .iter()
        .map(|s| {
            let asns: Vec<String> = s.elm.iter().map(u32::to_string).collect();
            if s.r#type == v1::as_segment::Type::AsSet as i32 {
                format!("{{{}}}", asns.join(","))
            } else {
                asns.join(" ")
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn paths_out(paths: &[v1::Path], output: Output) -> String {
    match output {
        Output::Json => {
            json!({"paths": paths.iter().map(path_json).collect::<Vec<_>>()}).to_string()
        }
        Output::Plain => table(
            &[
                "",
                "PREFIX",
                "NEXT HOP",
                "AS PATH",
                "LOCAL PREF",
                "MED",
                "PEER",
            ],
            paths
                .iter()
                .map(|p| {
                    vec![
                        if p.best {
                            "*>"
                        } else if p.multipath {
                            "*="
                        } else {
                            "*"
                        }
                        .to_string(),
                        p.nlri.clone(),
                        p.next_hops.join(","),
                        as_path_text(p),
                        p.local_pref.to_string(),
                        p.med.to_string(),
                        if p.peer_addr.is_empty() {
                            "local".to_string()
                        } else {
                            p.peer_addr.clone()
                        },
                    ]
                })
                .collect(),
        ),
    }
}

fn peers_out(peers: &[v1::Peer], output: Output) -> String {
    match output {
        Output::Json => {
            json!({"peers": peers.iter().map(peer_json).collect::<Vec<_>>()}).to_string()
        }
        Output::Plain => table(
            &[
                "NAME",
                "ADDRESS",
                "ASN",
                "ROUTER ID",
                "STATE",
                "UPTIME",
                "RECEIVED",
                "ADVERTISED",
            ],
            peers
                .iter()
                .map(|p| {
                    vec![
                        p.name.clone(),
                        p.address.clone(),
                        p.asn.to_string(),
                        p.router_id.clone(),
                        state_name(p.state).to_string(),
                        if p.uptime_seconds > 0 {
                            format!("{}s", p.uptime_seconds)
                        } else {
                            "-".to_string()
                        },
                        p.prefixes_received.to_string(),
                        p.prefixes_advertised.to_string(),
                    ]
                })
                .collect(),
        ),
    }
}

/// `-t key=value` into the Any attributes of AddPath.
fn attributes(kv: &[String]) -> anyhow::Result<Vec<prost_types::Any>> {
    let mut out = Vec::new();
    let (mut comm, mut large, mut ext) = (vec![], vec![], vec![]);
    for item in kv {
        let (k, v) = item
            .split_once('=')
            .with_context(|| format!("attribute {item:?}: expected KEY=VALUE"))?;
        let num = || {
            v.parse::<u32>()
                .with_context(|| format!("attribute {k}: {v:?} is not a number"))
        };
        match k {
            "origin" => {
                let origin: bgp::Origin = v.parse().context("attribute origin")?;
                let value = origin as u32;
                out.push(proto::any(
                    "OriginAttribute",
                    &v1::OriginAttribute { value },
                ));
            }
            "local_pref" => out.push(proto::any(
                "LocalPrefAttribute",
                &v1::LocalPrefAttribute { value: num()? },
            )),
            "med" => out.push(proto::any(
                "MultiExitDiscAttribute",
                &v1::MultiExitDiscAttribute { value: num()? },
            )),
            "community" => comm.push(v.to_string()),
            "large_community" => large.push(v.to_string()),
            "ext_community" => ext.push(v.to_string()),
            "prepend" => out.push(proto::any(
                "AsPathPrependAttribute",
                &v1::AsPathPrependAttribute { count: num()? },
            )),
            _ => bail!(
                "unknown attribute {k:?}: use origin, local_pref, med, community, large_community, ext_community, prepend"
            ),
        }
    }
    if !comm.is_empty() {
        out.push(proto::any(
            "CommunitiesAttribute",
            &v1::CommunitiesAttribute { communities: comm },
        ));
    }
    if !large.is_empty() {
        out.push(proto::any(
            "LargeCommunitiesAttribute",
            &v1::LargeCommunitiesAttribute { communities: large },
        ));
    }
    if !ext.is_empty() {
        out.push(proto::any(
            "ExtendedCommunitiesAttribute",
            &v1::ExtendedCommunitiesAttribute { communities: ext },
        ));
    }
    Ok(out)
}

pub fn run_global(
    endpoint: &str,
    cmd: &GlobalCommand,
    output: Output,
    timeout: std::time::Duration,
) -> anyhow::Result<ExitCode> {
    block_on_within(endpoint, timeout, async {
        let mut c = client(endpoint).await?;
        let text = match cmd {
            GlobalCommand::Health => {
                c.health(v1::HealthRequest {}).await.map_err(status)?;
                match output {
                    Output::Json => json!({"health": "ok"}).to_string(),
                    Output::Plain => "ok".to_string(),
                }
            }
            GlobalCommand::Get => {
                let info = c
                    .get_bgp_info(v1::GetBgpInfoRequest {})
                    .await
                    .map_err(status)?
                    .into_inner()
                    .info
                    .unwrap_or_default();
                match output {
                    Output::Json => {
                        json!({"asn": info.asn, "routerId": info.router_id, "port": info.port,
                                           "multiPath": info.multi_path})
                        .to_string()
                    }
                    Output::Plain => table(
                        &["ASN", "ROUTER ID", "PORT", "MULTIPATH"],
                        vec![vec![
                            info.asn.to_string(),
                            info.router_id,
                            info.port.to_string(),
                            info.multi_path.to_string(),
                        ]],
                    ),
                }
            }
            GlobalCommand::Set {
                asn,
                router_id,
                multi_path,
            } => {
                if asn.is_none() && router_id.is_none() && multi_path.is_none() {
                    bail!("nothing to set: give --asn, --router-id or --multi-path");
                }
                if let Some(asn) = asn {
                    c.set_as(v1::SetAsRequest { asn: *asn })
                        .await
                        .map_err(status)?;
                }
                if let Some(id) = router_id {
                    c.set_router_id(v1::SetRouterIdRequest {
                        router_id: id.clone(),
                    })
                    .await
                    .map_err(status)?;
                }
                if let Some(m) = multi_path {
                    c.configure_multi_path(v1::ConfigureMultiPathRequest {
                        enable: *m,
                        max_paths: 0,
                    })
                    .await
                    .map_err(status)?;
                }
                String::new()
            }
            GlobalCommand::Rib { command } => match command {
                RibCommand::Get { afi, safi } => {
                    let r = c
                        .get_path(v1::GetPathRequest {
                            family: Some(family(afi, safi)?),
                        })
                        .await
                        .map_err(status)?
                        .into_inner();
                    paths_out(&r.paths, output)
                }
                RibCommand::Add {
                    prefixes,
                    afi,
                    attributes: kv,
                } => {
                    c.add_path(v1::AddPathRequest {
                        family: Some(family(afi, "unicast")?),
                        prefixes: prefixes.clone(),
                        attributes: attributes(kv)?,
                    })
                    .await
                    .map_err(status)?;
                    String::new()
                }
                RibCommand::Del { prefixes, afi } => {
                    c.delete_path(v1::DeletePathRequest {
                        family: Some(family(afi, "unicast")?),
                        prefixes: prefixes.clone(),
                    })
                    .await
                    .map_err(status)?;
                    String::new()
                }
            },
        };
        if !text.is_empty() {
            println!("{text}");
        }
        Ok(ExitCode::SUCCESS)
    })
}

pub fn run_neighbor(
    endpoint: &str,
    cmd: &NeighborCommand,
    output: Output,
    timeout: std::time::Duration,
) -> anyhow::Result<ExitCode> {
    block_on_within(endpoint, timeout, async {
        let mut c = client(endpoint).await?;
        let text = match cmd {
            NeighborCommand::Get { addr } => {
                let p = c
                    .get_neighbor(v1::GetNeighborRequest { addr: addr.clone() })
                    .await
                    .map_err(status)?
                    .into_inner()
                    .peer
                    .unwrap_or_default();
                match output {
                    Output::Json => peer_json(&p).to_string(),
                    Output::Plain => peers_out(std::slice::from_ref(&p), output),
                }
            }
            NeighborCommand::List => {
                let r = c
                    .list_neighbor(v1::ListNeighborRequest {})
                    .await
                    .map_err(status)?
                    .into_inner();
                peers_out(&r.peers, output)
            }
            NeighborCommand::Add {
                addr,
                asn,
                passive,
                name,
            } => {
                c.add_peer(v1::AddPeerRequest {
                    peer: Some(v1::Peer {
                        name: name.clone().unwrap_or_else(|| format!("{asn}/{addr}")),
                        asn: *asn,
                        address: addr.clone(),
                        passive_open: *passive,
                        ..Default::default()
                    }),
                })
                .await
                .map_err(status)?;
                String::new()
            }
            NeighborCommand::Del { addr } => {
                c.delete_peer(v1::DeletePeerRequest { addr: addr.clone() })
                    .await
                    .map_err(status)?;
                String::new()
            }
            NeighborCommand::Reset { addr, kind } => {
                let kind = match kind.as_str() {
                    "soft-in" => v1::reset_neighbor_request::Kind::SoftIn,
                    "soft-out" => v1::reset_neighbor_request::Kind::SoftOut,
                    _ => v1::reset_neighbor_request::Kind::Hard,
                };
                c.reset_neighbor(v1::ResetNeighborRequest {
                    addr: addr.clone(),
                    kind: kind as i32,
                })
                .await
                .map_err(status)?;
                String::new()
            }
            NeighborCommand::Rib { addr, kind, afi } => {
                let kind = match kind.as_str() {
                    "in" => v1::get_neighbor_path_request::Kind::In,
                    "out" => v1::get_neighbor_path_request::Kind::Out,
                    other => bail!("unknown kind {other:?}: use in or out"),
                };
                let r = c
                    .get_neighbor_path(v1::GetNeighborPathRequest {
                        kind: kind as i32,
                        addr: addr.clone(),
                        family: Some(family(afi, "unicast")?),
                    })
                    .await
                    .map_err(status)?
                    .into_inner();
                paths_out(&r.paths, output)
            }
        };
        if !text.is_empty() {
            println!("{text}");
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// [`block_on`], giving up when the speaker has not answered within `timeout`.
fn block_on_within<F: std::future::Future<Output = anyhow::Result<ExitCode>>>(
    endpoint: &str,
    timeout: std::time::Duration,
    f: F,
) -> anyhow::Result<ExitCode> {
    block_on(async {
        tokio::time::timeout(timeout, f).await.unwrap_or_else(|_| {
            Err(anyhow::anyhow!(
                "the speaker's API at {endpoint} did not answer within {timeout:?} (see --timeout)"
            ))
        })
    })
}

pub(crate) fn block_on<F: std::future::Future<Output = anyhow::Result<ExitCode>>>(
    f: F,
) -> anyhow::Result<ExitCode> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?
        .block_on(f)
}

/// `sart bgp watch`: peer state and best-path changes as they happen, one line each (JSON with
/// `-o json`), until interrupted. Not in sart; it is the stream the agent uses.
pub fn run_watch(
    endpoint: &str,
    peers: bool,
    paths: bool,
    output: Output,
) -> anyhow::Result<ExitCode> {
    use std::io::Write;
    block_on(async {
        let mut c = client(endpoint).await?;
        let (peers, paths) = if !peers && !paths {
            (true, true)
        } else {
            (peers, paths)
        };
        let mut stream = c
            .watch(v1::WatchRequest { peers, paths })
            .await
            .map_err(status)?
            .into_inner();
        let stdout = std::io::stdout();
        while let Some(ev) = stream.message().await.map_err(status)? {
            let line = match ev.event {
                Some(v1::watch_event::Event::Peer(p)) => match output {
                    Output::Json => {
                        json!({"type": "peer", "name": p.name, "address": p.address, "asn": p.asn,
                                           "state": state_name(p.state)})
                        .to_string()
                    }
                    Output::Plain => format!(
                        "peer {} ({}, AS {}) {}",
                        p.address,
                        p.name,
                        p.asn,
                        state_name(p.state)
                    ),
                },
                Some(v1::watch_event::Event::Path(b)) => match output {
                    Output::Json => {
                        json!({"type": "path", "prefix": b.prefix, "nextHops": b.next_hops,
                                           "withdrawn": b.withdrawn})
                        .to_string()
                    }
                    Output::Plain if b.withdrawn => format!("path {} withdrawn", b.prefix),
                    Output::Plain => format!("path {} via {}", b.prefix, b.next_hops.join(",")),
                },
                None => continue,
            };
            let mut out = stdout.lock();
            if writeln!(out, "{line}").and_then(|()| out.flush()).is_err() {
                break;
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}
