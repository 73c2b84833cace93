//! sart's own flags and configuration files, accepted so that its manifests start this `sartd`
//! instead of crash-looping after an image swap: each maps onto one of ours or is ignored with a
//! warning that says why. Nothing here is needed with our manifests.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::Mode;

/// The flags of sart's `sartd agent` and `sartd controller` that ours do not spell the same way.
#[derive(clap::Args, Debug, Default)]
#[command(next_help_heading = "Accepted from sart's command line")]
pub struct Flags {
    /// sart's configuration file: `mode`, `http_port`, `https_port`, `tls` and `cni_endpoint`
    /// are used (flags win); the other keys are ignored.
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// Ignored (unused by sart too).
    #[arg(short = 'e', long = "endpoint", value_name = "ADDR")]
    pub endpoint: Option<String>,
    /// The port of the HTTP address (`/metrics`, `/healthz`, `/readyz`).
    #[arg(long, value_name = "PORT")]
    pub http_port: Option<u16>,
    /// The controller's webhook port; ignored by the agent, which serves no webhooks.
    #[arg(long, value_name = "PORT")]
    pub https_port: Option<u16>,
    /// The controller's webhook certificate; ignored by the agent.
    #[arg(long, value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,
    /// The key of `--tls-cert`.
    #[arg(long, value_name = "FILE")]
    pub tls_key: Option<PathBuf>,
    /// Ignored: the agent follows peer states on the speaker's Watch stream.
    #[arg(long, value_name = "ADDR")]
    pub peer_state_watcher: Option<String>,
    /// `unix:///path` sets the agent's CNI socket; a TCP address is ignored (the CNI is served
    /// on a unix socket only, out of reach of the node's network).
    #[arg(long, value_name = "ENDPOINT")]
    pub cni_endpoint: Option<String>,
}

/// sart's agent and controller configuration file; every key optional here.
#[derive(Debug, Default, Deserialize)]
struct File {
    http_port: Option<u16>,
    https_port: Option<u16>,
    tls: Option<Tls>,
    mode: Option<FileMode>,
    cni_endpoint: Option<String>,
    endpoint: Option<String>,
    requeue_interval: Option<u64>,
    peer_state_watcher: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Tls {
    cert: PathBuf,
    key: PathBuf,
}

/// sart writes `LB`, `CNI`, `Dual`.
#[derive(Debug, Clone, Copy, Deserialize)]
enum FileMode {
    #[serde(rename = "LB", alias = "lb")]
    Lb,
    #[serde(rename = "CNI", alias = "cni")]
    Cni,
    #[serde(alias = "dual")]
    Dual,
}

impl From<FileMode> for Mode {
    fn from(m: FileMode) -> Mode {
        match m {
            FileMode::Lb => Mode::Lb,
            FileMode::Cni => Mode::Cni,
            FileMode::Dual => Mode::Dual,
        }
    }
}

/// Which daemon the flags were given to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Daemon {
    Agent,
    Controller,
}

/// What sart's flags and file say, in our terms.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Resolved {
    pub mode: Option<Mode>,
    pub http_port: Option<u16>,
    pub https_port: Option<u16>,
    /// Certificate and key files.
    pub tls: Option<(PathBuf, PathBuf)>,
    pub cni_socket: Option<PathBuf>,
    /// One line per flag or key that changes nothing, saying why.
    pub ignored: Vec<String>,
}

/// Maps sart's flags (and the contents of its `-f` file, read by the caller) onto ours; flags
/// win over the file. A file that does not parse is an error: sart refused it too.
pub fn resolve(daemon: Daemon, flags: &Flags, file: Option<&str>) -> Result<Resolved, String> {
    let f: File = match file {
        Some(text) => serde_saphyr::from_str(text).map_err(|e| format!("sart config file: {e}"))?,
        None => File::default(),
    };
    let mut r = Resolved {
        mode: f.mode.map(Mode::from),
        http_port: flags.http_port.or(f.http_port),
        ..Resolved::default()
    };
    let mut ignore = |what: &str, why: &str| r.ignored.push(format!("{what} ignored: {why}"));
    if flags.endpoint.is_some() || f.endpoint.is_some() {
        ignore("endpoint", "sart did not use it either");
    }
    if f.requeue_interval.is_some() {
        ignore(
            "requeue_interval",
            "sartd resynchronises on its own schedule",
        );
    }
    if flags.peer_state_watcher.is_some() || f.peer_state_watcher.is_some() {
        ignore(
            "peer state watcher",
            "the agent follows peer states on the speaker's Watch stream",
        );
    }
    let https_port = flags.https_port.or(f.https_port);
    let tls = match (&flags.tls_cert, &flags.tls_key) {
        (Some(c), Some(k)) => Some((c.clone(), k.clone())),
        (None, None) => f.tls.map(|t| (t.cert, t.key)),
        _ => return Err("--tls-cert and --tls-key go together".into()),
    };
    let cni = flags.cni_endpoint.clone().or(f.cni_endpoint);
    match daemon {
        Daemon::Controller => {
            r.https_port = https_port;
            r.tls = tls;
            if cni.is_some() {
                ignore("cni endpoint", "the controller serves no CNI");
            }
        }
        Daemon::Agent => {
            if https_port.is_some() || tls.is_some() {
                ignore("https port and tls", "the agent serves no webhooks");
            }
            if let Some(e) = cni {
                match e.strip_prefix("unix://") {
                    Some(path) if path.starts_with('/') => r.cni_socket = Some(path.into()),
                    _ => ignore(
                        &format!("cni endpoint {e}"),
                        "the CNI is served on the unix socket --cni-socket only (a TCP port would \
                         let anything on the node's network set up pods); install-cni points \
                         sart-cni there",
                    ),
                }
            }
        }
    }
    Ok(r)
}

/// Reads `-f` and resolves; `Err` is what to print before exiting 2.
pub fn load(daemon: Daemon, flags: &Flags) -> Result<Resolved, String> {
    let text = match &flags.file {
        Some(p) => Some(std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?),
        None => None,
    };
    resolve(daemon, flags, text.as_deref())
}

/// `addr` with its port replaced, when one is given.
pub fn with_port(addr: SocketAddr, port: Option<u16>) -> SocketAddr {
    port.map_or(addr, |p| SocketAddr::new(addr.ip(), p))
}

/// The directory holding `tls.crt` and `tls.key`, when sart's two files are exactly those.
pub fn cert_dir(cert: &Path, key: &Path) -> Option<PathBuf> {
    let dir = cert.parent()?;
    (cert.file_name()? == "tls.crt" && key.file_name()? == "tls.key" && key.parent()? == dir)
        .then(|| dir.to_owned())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn flags() -> Flags {
        Flags::default()
    }

    #[test]
    fn sarts_agent_overlay_keeps_the_mode_and_drops_the_tcp_cni_endpoint() {
        let f = Flags {
            cni_endpoint: Some("0.0.0.0:6000".into()),
            ..flags()
        };
        let r = resolve(Daemon::Agent, &f, None).unwrap();
        assert_eq!(r.cni_socket, None);
        assert_eq!(r.ignored.len(), 1);
        assert!(r.ignored[0].contains("unix socket"), "{:?}", r.ignored);
        let f = Flags {
            cni_endpoint: Some("unix:///run/x.sock".into()),
            ..flags()
        };
        let r = resolve(Daemon::Agent, &f, None).unwrap();
        assert_eq!(r.cni_socket, Some("/run/x.sock".into()));
        assert!(r.ignored.is_empty());
    }

    #[test]
    fn the_file_is_read_and_flags_win() {
        let text = "http_port: 8001\nhttps_port: 9443\nendpoint: 0.0.0.0:5002\n\
                    tls: {cert: /c/tls.crt, key: /c/tls.key}\nrequeue_interval: 1800\n\
                    peer_state_watcher: 0.0.0.0:5003\nmode: CNI\n";
        let r = resolve(Daemon::Agent, &flags(), Some(text)).unwrap();
        assert_eq!(r.mode, Some(Mode::Cni));
        assert_eq!(r.http_port, Some(8001));
        assert_eq!(r.tls, None);
        assert_eq!(r.ignored.len(), 4, "{:?}", r.ignored);
        let f = Flags {
            http_port: Some(8002),
            ..flags()
        };
        let r = resolve(Daemon::Controller, &f, Some(text)).unwrap();
        assert_eq!(r.http_port, Some(8002));
        assert_eq!(r.https_port, Some(9443));
        assert_eq!(r.tls, Some(("/c/tls.crt".into(), "/c/tls.key".into())));
        assert!(resolve(Daemon::Agent, &flags(), Some("mode: [")).is_err());
        assert!(resolve(Daemon::Agent, &flags(), Some("mode: Other")).is_err());
    }

    #[test]
    fn one_tls_file_alone_is_refused() {
        let f = Flags {
            tls_cert: Some("/c/tls.crt".into()),
            ..flags()
        };
        assert!(resolve(Daemon::Controller, &f, None).is_err());
    }

    #[test]
    fn cert_dir_only_for_the_two_usual_names_side_by_side() {
        let p = |s: &str| PathBuf::from(s);
        assert_eq!(
            cert_dir(&p("/etc/sartd/cert/tls.crt"), &p("/etc/sartd/cert/tls.key")),
            Some(p("/etc/sartd/cert"))
        );
        assert_eq!(cert_dir(&p("/a/tls.crt"), &p("/b/tls.key")), None);
        assert_eq!(cert_dir(&p("/a/cert.pem"), &p("/a/key.pem")), None);
    }
}
