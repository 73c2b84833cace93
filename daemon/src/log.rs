//! The logging flags every sartd binary takes, and the subscriber they set up.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

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
    let b = tracing_subscriber::fmt().with_env_filter(filter);
    if let Some(path) = args.log_file.as_deref() {
        let f = open(path)?;
        let b = b.with_ansi(false).with_writer(std::sync::Mutex::new(f));
        match args.format {
            LogFormat::Plain => b.init(),
            LogFormat::Json => b.json().init(),
        }
        return Ok(());
    }
    // Colours only for a person at a terminal: `kubectl logs` and log collectors get plain text.
    let b = b
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
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
