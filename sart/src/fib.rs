//! `sart fib channel ...`: the channels of `sartd fib` (sart's FIB process) and the routes each
//! has selected, from its FibManagerApi.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Subcommand;
use proto::v1::{self, fib_manager_api_client::FibManagerApiClient};
use serde_json::{Value, json};

use crate::Output;
use crate::api::{block_on, status, table};

#[derive(Subcommand)]
pub enum FibCommand {
    /// Channels: what each takes routes from and hands them to.
    Channel {
        #[command(subcommand)]
        command: ChannelCommand,
    },
}

#[derive(Subcommand)]
pub enum ChannelCommand {
    /// Every channel.
    List,
    /// One channel.
    Get { name: String },
    /// The route a channel selected for each destination.
    Route { name: String },
}

fn end_text(p: &v1::ChProtocol) -> String {
    match p.r#type.as_str() {
        "kernel" => format!(
            "kernel tables {}",
            p.tables
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(",")
        ),
        t => format!("{t} {}", p.endpoint),
    }
}

fn end_json(p: &v1::ChProtocol) -> Value {
    match p.r#type.as_str() {
        "kernel" => json!({"protocol": "kernel", "tables": p.tables}),
        t => json!({"protocol": t, "endpoint": p.endpoint}),
    }
}

fn channel_json(c: &v1::Channel) -> Value {
    json!({"name": c.name,
           "subscribers": c.subscribers.iter().map(end_json).collect::<Vec<_>>(),
           "publishers": c.publishers.iter().map(end_json).collect::<Vec<_>>()})
}

fn channels_text(cs: &[v1::Channel]) -> String {
    let join = |ends: &[v1::ChProtocol]| ends.iter().map(end_text).collect::<Vec<_>>().join("; ");
    table(
        &["NAME", "FROM", "TO"],
        cs.iter()
            .map(|c| vec![c.name.clone(), join(&c.subscribers), join(&c.publishers)])
            .collect(),
    )
}

/// sart's protocol numbers by name, as `ip route` shows them.
fn protocol_name(p: i32) -> String {
    v1::Protocol::try_from(p)
        .map(|p| p.as_str_name().to_lowercase())
        .unwrap_or_else(|_| p.to_string())
}

fn route_json(r: &v1::Route) -> Value {
    json!({"destination": r.destination, "protocol": protocol_name(r.protocol), "ad": r.ad,
           "priority": r.priority,
           "nextHops": r.next_hops.iter().map(|h| h.gateway.clone()).collect::<Vec<_>>()})
}

pub fn run(endpoint: &str, cmd: &FibCommand, output: Output) -> anyhow::Result<ExitCode> {
    let FibCommand::Channel { command } = cmd;
    block_on(async {
        let channel = proto::connect(endpoint, Duration::from_secs(5))
            .await
            .with_context(|| format!("cannot reach sartd fib at {endpoint} (is it running?)"))?;
        // A channel's whole table is one answer.
        let mut c = FibManagerApiClient::new(channel).max_decoding_message_size(256 << 20);
        let text = match command {
            ChannelCommand::List => {
                let cs = c
                    .list_channel(v1::ListChannelRequest {})
                    .await
                    .map_err(status)?
                    .into_inner()
                    .channels;
                match output {
                    Output::Json => Value::Array(cs.iter().map(channel_json).collect()).to_string(),
                    Output::Plain => channels_text(&cs),
                }
            }
            ChannelCommand::Get { name } => {
                let ch = c
                    .get_channel(v1::GetChannelRequest { name: name.clone() })
                    .await
                    .map_err(status)?
                    .into_inner()
                    .channel
                    .unwrap_or_default();
                match output {
                    Output::Json => channel_json(&ch).to_string(),
                    Output::Plain => channels_text(&[ch]),
                }
            }
            ChannelCommand::Route { name } => {
                let routes = c
                    .get_routes(v1::GetRoutesRequest {
                        channel: name.clone(),
                    })
                    .await
                    .map_err(status)?
                    .into_inner()
                    .routes;
                match output {
                    Output::Json => {
                        Value::Array(routes.iter().map(route_json).collect()).to_string()
                    }
                    Output::Plain => table(
                        &["DESTINATION", "NEXT HOPS", "PROTOCOL", "DISTANCE", "METRIC"],
                        routes
                            .iter()
                            .map(|r| {
                                vec![
                                    r.destination.clone(),
                                    r.next_hops
                                        .iter()
                                        .map(|h| h.gateway.clone())
                                        .collect::<Vec<_>>()
                                        .join(","),
                                    protocol_name(r.protocol),
                                    r.ad.to_string(),
                                    r.priority.to_string(),
                                ]
                            })
                            .collect(),
                    ),
                }
            }
        };
        println!("{text}");
        Ok(ExitCode::SUCCESS)
    })
}
