//! `sart`: the command line tool for people on a sart node.

mod api;
mod decode;
mod fib;
mod ipam;
mod json;

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Parser)]
#[command(name = "sart", version, about = "Inspect and drive sart on a node")]
struct Cli {
    /// Output format.
    #[arg(short = 'o', long, global = true, value_enum, default_value_t = Output::Plain)]
    output: Output,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Plain,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// BGP speaker: sessions, RIB, and wire decoding.
    Bgp(BgpArgs),
    /// Pod addresses on this node: blocks and allocations (from the agent).
    Ipam(IpamArgs),
    /// `sartd fib` (sart's FIB process): its channels and their routes.
    Fib(FibArgs),
}

#[derive(clap::Args)]
struct FibArgs {
    /// `sartd fib`'s FibManagerApi.
    #[arg(short = 'e', long, default_value = "localhost:5001", global = true)]
    endpoint: String,
    #[command(subcommand)]
    command: fib::FibCommand,
}

#[derive(clap::Args)]
struct IpamArgs {
    /// The agent's CNI socket.
    #[arg(
        short = 'e',
        long,
        default_value = "unix:///run/sart/cni.sock",
        global = true
    )]
    endpoint: String,
    #[command(subcommand)]
    command: ipam::IpamCommand,
}

#[derive(clap::Args)]
struct BgpArgs {
    /// gRPC endpoint of the speaker: `unix:///path` or `host:port`. Default: the manifests'
    /// socket, /run/sart/bgp.sock, when it exists, else localhost:5000.
    #[arg(short = 'e', long, global = true)]
    endpoint: Option<String>,
    /// Seconds to wait for the speaker's answer (not for `watch`, which streams).
    #[arg(long, default_value_t = 10, global = true)]
    timeout: u64,
    #[command(subcommand)]
    command: BgpCommand,
}

#[derive(Subcommand)]
enum BgpCommand {
    /// Decode raw BGP messages (one direction of a session's TCP payload): a table, or JSON
    /// lines with `-o json`.
    Decode(decode::DecodeArgs),
    /// The speaker itself: AS, router id, Loc-RIB, originated paths.
    Global {
        #[command(subcommand)]
        command: api::GlobalCommand,
    },
    /// Neighbours and their sessions and RIBs.
    Neighbor {
        #[command(subcommand)]
        command: api::NeighborCommand,
    },
    /// Stream peer state and best-path changes (both unless one is chosen).
    Watch {
        #[arg(long)]
        peers: bool,
        #[arg(long)]
        paths: bool,
    },
}

/// Where the manifests put the speaker's API.
const SPEAKER_SOCKET: &str = "/run/sart/bgp.sock";

fn speaker_endpoint(given: Option<String>) -> String {
    given.unwrap_or_else(|| {
        if std::path::Path::new(SPEAKER_SOCKET).exists() {
            format!("unix://{SPEAKER_SOCKET}")
        } else {
            "localhost:5000".to_owned()
        }
    })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Ipam(args) => ipam::run(&args.endpoint, &args.command, cli.output),
        Command::Fib(args) => fib::run(&args.endpoint, &args.command, cli.output),
        Command::Bgp(bgp) => {
            let endpoint = speaker_endpoint(bgp.endpoint);
            match bgp.command {
                BgpCommand::Decode(args) => decode::run(&args, cli.output),
                BgpCommand::Global { command } => api::run_global(
                    &endpoint,
                    &command,
                    cli.output,
                    Duration::from_secs(bgp.timeout),
                ),
                BgpCommand::Neighbor { command } => api::run_neighbor(
                    &endpoint,
                    &command,
                    cli.output,
                    Duration::from_secs(bgp.timeout),
                ),
                BgpCommand::Watch { peers, paths } => {
                    api::run_watch(&endpoint, peers, paths, cli.output)
                }
            }
        }
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
