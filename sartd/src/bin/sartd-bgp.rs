//! `sartd-bgp`: the BGP speaker alone. `sartd bgp` executes it when it sits beside `sartd`, so
//! a speaker maps only its own code: the controller's and the agent's (kube-rs, k8s-openapi)
//! stay out of its memory. Same flags as `sartd bgp`: `sartd-bgp [-l LEVEL] bgp [ARGS]`.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "sartd-bgp",
    version,
    about = "sart's BGP speaker (what `sartd bgp` runs)"
)]
struct Cli {
    #[command(flatten)]
    log: daemon::log::LogArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// BGP speaker.
    Bgp(speaker::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(e) = daemon::log::init(&cli.log) {
        eprintln!("error: {e}");
        return ExitCode::from(2);
    }
    match cli.command {
        Command::Bgp(args) => speaker::main(args),
    }
}
