//! The logging flags every sartd binary takes, and the subscriber they set up.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use tracing_subscriber::fmt::writer::BoxMakeWriter;

/// Global flags: valid before or after the subcommand.
#[derive(clap::Args, Debug, Clone)]
pub struct LogArgs {
    /// Log level (error, warn, info, debug, trace) or a tracing filter.
    #[arg(short = 'l', long, global = true, default_value = "info")]
    pub level: String,
    /// Log format.
    #[arg(short = 'd', long, global = true, value_enum, default_value_t = LogFormat::Plain)]
    pub format: LogFormat,
    /// Write logs to this file (appended) instead of standard error.
    #[arg(short = 'o', long, global = true, value_name = "FILE")]
    pub log_file: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum LogFormat {
    Plain,
    Json,
}

/// Installs the global subscriber; an unreadable filter falls back to `info`.
pub fn init(args: &LogArgs) -> Result<(), String> {
    let filter = tracing_subscriber::EnvFilter::try_new(&args.level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colours only for a person at a terminal: files, `kubectl logs` and log collectors get
    // plain text.
    let (writer, ansi) = match args.log_file.as_deref() {
        Some(path) => (
            BoxMakeWriter::new(std::sync::Mutex::new(open(path)?)),
            false,
        ),
        None => (
            BoxMakeWriter::new(std::io::stderr),
            std::io::stderr().is_terminal(),
        ),
    };
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(writer);
    match args.format {
        LogFormat::Plain => b.init(),
        LogFormat::Json => b.json().init(),
    }
    Ok(())
}

fn open(path: &Path) -> Result<std::fs::File, String> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| format!("log file {}: {e}", path.display()))
}
