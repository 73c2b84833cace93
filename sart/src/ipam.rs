//! `sart ipam`: the node's pod blocks and the addresses pods hold, from the agent's CNI socket.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Subcommand;
use proto::v1::{self, cni_api_client::CniApiClient};
use serde_json::{Value, json};

use crate::Output;
use crate::api::{block_on, status, table};

#[derive(Subcommand)]
pub enum IpamCommand {
    /// This node's blocks: pool, CIDR, addresses in use and capacity.
    Blocks,
    /// Every pod attachment on this node and the addresses it holds.
    Allocations,
}

async fn read(endpoint: &str) -> anyhow::Result<v1::IpamReply> {
    let channel = proto::connect(endpoint, Duration::from_secs(5))
        .await
        .with_context(|| {
            format!("cannot reach the agent at {endpoint} (is `sartd agent --mode cni` running?)")
        })?;
    Ok(CniApiClient::new(channel)
        .ipam(v1::IpamRequest {})
        .await
        .map_err(status)?
        .into_inner())
}

fn block_json(b: &v1::Block) -> Value {
    json!({"name": b.name, "pool": b.pool, "cidr": b.cidr, "allocated": b.allocated,
           "capacity": b.capacity, "draining": b.draining, "borrowed": b.borrowed,
           "awaitingLoan": b.awaiting_loan, "lent": b.lent, "reserved": b.reserved})
}

/// What the STATE column says: releasing, borrowed (or waiting to be), addresses lent out.
fn block_state(b: &v1::Block) -> String {
    let mut s = match (b.draining, b.borrowed, b.awaiting_loan) {
        (true, _, _) => "releasing".to_owned(),
        (_, true, true) => "borrowed, awaiting loan".to_owned(),
        (_, true, false) => "borrowed".to_owned(),
        _ => "in use".to_owned(),
    };
    for (n, what) in [(&b.lent, "lent"), (&b.reserved, "reserved")] {
        if !n.is_empty() && n != "0" {
            s.push_str(&format!(", {n} {what}"));
        }
    }
    s
}

fn attachment_json(a: &v1::PodAttachment) -> Value {
    json!({"containerID": a.container_id, "ifname": a.ifname, "network": a.network,
           "pod": format!("{}/{}", a.pod_namespace, a.pod_name), "hostInterface": a.host_ifname,
           "netns": a.netns, "addresses": a.addresses})
}

pub fn run(endpoint: &str, cmd: &IpamCommand, output: Output) -> anyhow::Result<ExitCode> {
    block_on(async {
        let r = read(endpoint).await?;
        let text = match (cmd, output) {
            (IpamCommand::Blocks, Output::Json) => {
                Value::Array(r.blocks.iter().map(block_json).collect()).to_string()
            }
            (IpamCommand::Blocks, Output::Plain) => table(
                &["NAME", "POOL", "CIDR", "USED", "CAPACITY", "STATE"],
                r.blocks
                    .iter()
                    .map(|b| {
                        vec![
                            b.name.clone(),
                            b.pool.clone(),
                            b.cidr.clone(),
                            b.allocated.clone(),
                            b.capacity.clone(),
                            block_state(b),
                        ]
                    })
                    .collect(),
            ),
            (IpamCommand::Allocations, Output::Json) => Value::Array(
                r.attachments
                    .iter()
                    .map(attachment_json)
                    .chain(r.held.iter().map(
                        |h| json!({"addresses": [h.address], "held": h.kind, "for": h.holder}),
                    ))
                    .collect(),
            )
            .to_string(),
            (IpamCommand::Allocations, Output::Plain) => table(
                &["POD", "ADDRESSES", "INTERFACE", "CONTAINER"],
                r.attachments
                    .iter()
                    .map(|a| {
                        vec![
                            format!("{}/{}", a.pod_namespace, a.pod_name),
                            a.addresses.join(","),
                            format!("{} ({})", a.ifname, a.host_ifname),
                            a.container_id.clone(),
                        ]
                    })
                    // Held for someone not on this node: lent to a host block, or reserved
                    // for a sticky pod that is away.
                    .chain(r.held.iter().map(|h| {
                        vec![
                            format!(
                                "({} {} {})",
                                h.kind,
                                if h.kind == "lent" { "to" } else { "for" },
                                h.holder
                            ),
                            h.address.clone(),
                            "-".into(),
                            "-".into(),
                        ]
                    }))
                    .collect(),
            ),
        };
        println!("{text}");
        Ok(ExitCode::SUCCESS)
    })
}
