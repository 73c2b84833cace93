//! The [`Daemon`] trait every BGP implementation is driven through, and the bookkeeping they
//! share ([`Instance`]: scratch directory, processes, logs, dump on panic).

use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::thread::sleep;
use std::time::{Duration, Instant};

use ipnet::IpNet;

use crate::error::{Error, Result};
use crate::model::{BgpConfig, Family, Rib, Route, Session};
use crate::netns::Netns;
use crate::process::{Proc, STOP_GRACE, tail};

/// Lines of each log shown by [`Daemon::logs`] and on panic.
pub const LOG_TAIL_LINES: usize = 120;

/// Which implementation a [`Daemon`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DaemonKind {
    Frr,
    Bird,
    Gobgp,
    Exabgp,
    Sartd,
}

impl DaemonKind {
    /// The four reference implementations (every one runs today).
    pub const PEERS: [DaemonKind; 4] = [
        DaemonKind::Frr,
        DaemonKind::Bird,
        DaemonKind::Gobgp,
        DaemonKind::Exabgp,
    ];
}

/// A BGP speaker running as real processes inside a namespace.
///
/// `announce`/`withdraw` change the running daemon and the stored config, so a `restart`
/// comes back with the same routes.
pub trait Daemon: Send {
    fn kind(&self) -> DaemonKind;
    /// Where the instance lives, what it runs and what it was told.
    fn instance(&self) -> &Instance;
    /// Instance name (unique within its namespace).
    fn name(&self) -> &str {
        &self.instance().name
    }
    fn netns(&self) -> &Netns {
        &self.instance().netns
    }
    fn config(&self) -> &BgpConfig {
        &self.instance().config
    }
    /// Scratch directory with the generated config, sockets and logs.
    fn dir(&self) -> &Path {
        &self.instance().dir
    }

    /// Starts the processes (after [`Daemon::stop`]); constructors already start.
    fn start(&mut self) -> Result<()>;
    /// SIGTERM, then SIGKILL after a grace period; reaps every process.
    fn stop(&mut self);
    fn restart(&mut self) -> Result<()> {
        self.stop();
        self.start()
    }
    fn is_running(&self) -> bool {
        self.instance().is_running()
    }
    /// PID of the process that speaks BGP.
    fn bgp_pid(&self) -> Option<u32>;
    /// SIGSTOP the BGP process: sockets stay open, nothing is sent (hold-timer tests).
    fn freeze(&self) -> Result<()> {
        let pid = self.bgp_pid().ok_or_else(|| Error::NotRunning {
            daemon: self.name().to_owned(),
        })?;
        crate::process::signal(pid, rustix::process::Signal::STOP)
    }
    fn unfreeze(&self) -> Result<()> {
        let pid = self.bgp_pid().ok_or_else(|| Error::NotRunning {
            daemon: self.name().to_owned(),
        })?;
        crate::process::signal(pid, rustix::process::Signal::CONT)
    }

    /// Every configured neighbour's session.
    fn sessions(&self) -> Result<Vec<Session>>;
    /// One neighbour's session (`None` if the daemon does not know the address).
    fn session(&self, peer: IpAddr) -> Result<Option<Session>> {
        Ok(self.sessions()?.into_iter().find(|s| s.peer == peer))
    }
    fn is_established(&self, peer: IpAddr) -> Result<bool> {
        Ok(self.session(peer)?.is_some_and(|s| s.is_established()))
    }
    /// The daemon's routes of `family` (learned and, where the daemon shows them, local).
    fn rib(&self, family: Family) -> Result<Rib>;

    /// Originates `route` now.
    fn announce(&mut self, route: Route) -> Result<()>;
    /// Stops originating `prefix`.
    fn withdraw(&mut self, prefix: IpNet) -> Result<()>;

    /// Every log file of the instance (daemon logs and captured stdout/stderr).
    fn log_files(&self) -> Vec<PathBuf>;
    /// The tail of every log, for failure messages.
    fn logs(&self) -> String {
        format_logs(self.name(), &self.log_files())
    }
}

pub(crate) fn format_logs(name: &str, files: &[PathBuf]) -> String {
    let mut s = String::new();
    for f in files {
        let _ = writeln!(s, "----- {name}: {} -----", f.display());
        s.push_str(&tail(f, LOG_TAIL_LINES));
    }
    s
}

/// The logs of several daemons, for a failure message or `eprintln!`.
pub fn dump_logs(daemons: &[&dyn Daemon]) -> String {
    daemons.iter().map(|d| d.logs()).collect()
}

/// What every implementation keeps: where it lives, what it runs, what it was told.
#[derive(Debug)]
pub struct Instance {
    pub name: String,
    pub netns: Netns,
    pub dir: PathBuf,
    pub config: BgpConfig,
    /// Started processes, the BGP speaker last (stopped first).
    pub procs: Vec<Proc>,
    pub logs: Vec<PathBuf>,
}

impl Instance {
    pub fn new(netns: &Netns, name: &str, config: BgpConfig) -> Result<Instance> {
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(Error::config(name, "instance names are [A-Za-z0-9_-]+"));
        }
        let dir = netns.dir().join(name);
        if dir.exists() {
            return Err(Error::config(
                name,
                format!(
                    "{} already exists: names must be unique per namespace",
                    dir.display()
                ),
            ));
        }
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        Ok(Instance {
            name: name.to_owned(),
            netns: netns.clone(),
            dir,
            config,
            procs: Vec::new(),
            logs: Vec::new(),
        })
    }

    pub fn path(&self, file: &str) -> PathBuf {
        self.dir.join(file)
    }

    pub fn write(&self, file: &str, contents: &str) -> Result<PathBuf> {
        let p = self.path(file);
        std::fs::write(&p, contents).map_err(|e| Error::io(&p, e))?;
        Ok(p)
    }

    pub fn log(&mut self, file: &str) -> PathBuf {
        let p = self.path(file);
        if !self.logs.contains(&p) {
            self.logs.push(p.clone());
        }
        p
    }

    /// Starts a process in the namespace; its output goes to `<proc>.out` (a listed log).
    pub fn spawn<S: AsRef<std::ffi::OsStr>>(&mut self, proc_name: &str, argv: &[S]) -> Result<()> {
        let log = self.log(&format!("{proc_name}.out"));
        let p = self.netns.spawn(proc_name, argv, &log)?;
        self.procs.push(p);
        Ok(())
    }

    pub fn stop(&mut self) {
        while let Some(mut p) = self.procs.pop() {
            p.stop(STOP_GRACE);
        }
    }

    /// SIGKILL every process and reap it.
    pub fn kill(&mut self) {
        while let Some(mut p) = self.procs.pop() {
            let _ = p.signal(rustix::process::Signal::KILL);
            p.stop(Duration::ZERO);
        }
    }

    pub fn is_running(&self) -> bool {
        !self.procs.is_empty() && self.procs.iter().all(Proc::is_alive)
    }

    pub fn last_pid(&self) -> Option<u32> {
        self.procs.last().filter(|p| p.is_alive()).map(Proc::pid)
    }

    pub fn startup_error(&self, reason: impl Into<String>) -> Error {
        Error::Startup {
            daemon: self.name.clone(),
            reason: reason.into(),
            logs: format_logs(&self.name, &self.logs),
        }
    }

    /// Polls `ready` until it is true; fails early (with logs) if a process died.
    pub fn wait_ready(
        &self,
        what: &str,
        timeout: Duration,
        mut ready: impl FnMut() -> bool,
    ) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if ready() {
                return Ok(());
            }
            if let Some(dead) = self.procs.iter().find(|p| !p.is_alive()) {
                return Err(
                    self.startup_error(format!("{} exited while waiting for {what}", dead.name()))
                );
            }
            if Instant::now() >= deadline {
                return Err(self.startup_error(format!("no {what} after {timeout:?}")));
            }
            sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "[interop] logs of {} (namespace {}):\n{}",
                self.name,
                self.netns.name(),
                format_logs(&self.name, &self.logs)
            );
        }
        self.stop();
    }
}
