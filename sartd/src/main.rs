//! `sartd`: the sart daemons. Subcommands that are not built yet say so and exit non-zero rather
//! than pretending to run.

use std::process::ExitCode;

use sartd::bgp;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "sartd", version, about = "sart daemons")]
struct Cli {
    /// Log level (error, warn, info, debug, trace) or a tracing filter.
    #[arg(short = 'l', long, global = true, default_value = "info")]
    level: String,
    /// Log format.
    #[arg(short = 'd', long, global = true, value_enum, default_value_t = LogFormat::Plain)]
    format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Plain,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// BGP speaker.
    Bgp(bgp::Args),
    /// Kernel FIB installer.
    Fib,
    /// Kubernetes controller.
    Controller,
    /// Node agent (speaker driver and CNI IPAM server).
    Agent,
}

fn logging(level: &str, format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_new(level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Plain => b.init(),
        LogFormat::Json => b.json().init(),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    logging(&cli.level, cli.format);
    let name = match cli.command {
        Command::Bgp(args) => return bgp::main(args),
        Command::Fib => "fib",
        Command::Controller => "controller",
        Command::Agent => "agent",
    };
    eprintln!("sartd {name}: not implemented yet");
    ExitCode::from(2)
}
