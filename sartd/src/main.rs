//! `sartd`: the sart daemons. Each subcommand arrives with its issue; until then it says so and
//! exits non-zero rather than pretending to run.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "sartd", version, about = "sart daemons")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// BGP speaker.
    Bgp,
    /// Kernel FIB installer.
    Fib,
    /// Kubernetes controller.
    Controller,
    /// Node agent (speaker driver and CNI IPAM server).
    Agent,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let name = match cli.command {
        Command::Bgp => "bgp",
        Command::Fib => "fib",
        Command::Controller => "controller",
        Command::Agent => "agent",
    };
    eprintln!("sartd {name}: not implemented yet");
    ExitCode::from(2)
}
