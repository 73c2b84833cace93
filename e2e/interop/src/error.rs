//! The harness's one error type.

use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("could not run `{cmd}`: {source}")]
    Spawn { cmd: String, source: std::io::Error },
    #[error("`{cmd}` failed ({status}): {stderr}")]
    Command {
        cmd: String,
        status: String,
        stderr: String,
    },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("signal {signal} to pid {pid}: {source}")]
    Signal {
        pid: u32,
        signal: &'static str,
        source: std::io::Error,
    },
    #[error("{daemon}: cannot parse {what}: {reason}")]
    Parse {
        daemon: String,
        what: String,
        reason: String,
    },
    #[error("invalid configuration for {daemon}: {reason}")]
    Config { daemon: String, reason: String },
    #[error("{daemon} does not support {what} in this harness")]
    Unsupported { daemon: String, what: String },
    #[error("{daemon}: {what} is not available yet ({why})")]
    NotAvailable {
        daemon: String,
        what: String,
        why: String,
    },
    #[error("{daemon} is not running")]
    NotRunning { daemon: String },
    #[error("{daemon} did not start: {reason}\n{logs}")]
    Startup {
        daemon: String,
        reason: String,
        logs: String,
    },
    #[error("timed out after {timeout:?} waiting for {what}; last observed: {last}")]
    Timeout {
        what: String,
        timeout: Duration,
        last: String,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Error {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn parse(daemon: &str, what: impl Into<String>, reason: impl ToString) -> Error {
        Error::Parse {
            daemon: daemon.to_owned(),
            what: what.into(),
            reason: reason.to_string(),
        }
    }

    pub(crate) fn config(daemon: &str, reason: impl Into<String>) -> Error {
        Error::Config {
            daemon: daemon.to_owned(),
            reason: reason.into(),
        }
    }

    pub(crate) fn unsupported(daemon: &str, what: impl Into<String>) -> Error {
        Error::Unsupported {
            daemon: daemon.to_owned(),
            what: what.into(),
        }
    }
}
