//! Running commands and owning long-running processes by PID.
//!
//! Every process the harness starts is a [`Proc`]: it is signalled by its own PID only, stopped
//! with SIGTERM then SIGKILL, and reaped, also when dropped (including during a panic).

use std::ffi::OsStr;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal};

use crate::error::{Error, Result};

/// How long a process gets between SIGTERM and SIGKILL.
pub const STOP_GRACE: Duration = Duration::from_secs(5);

/// Renders a command line for messages.
pub(crate) fn display_cmd<S: AsRef<OsStr>>(argv: &[S]) -> String {
    argv.iter()
        .map(|a| a.as_ref().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs `argv` to completion; returns its stdout, or an error carrying its stderr.
pub fn run<S: AsRef<OsStr>>(argv: &[S]) -> Result<String> {
    run_with_input(argv, None)
}

/// Like [`run`], with `input` written to the command's stdin.
pub fn run_with_input<S: AsRef<OsStr>>(argv: &[S], input: Option<&str>) -> Result<String> {
    let cmd = display_cmd(argv);
    let Some((prog, args)) = argv.split_first() else {
        return Err(Error::Spawn {
            cmd,
            source: std::io::Error::other("empty command line"),
        });
    };
    let mut command = Command::new(prog);
    command
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command.stdin(if input.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    let mut child = command.spawn().map_err(|source| Error::Spawn {
        cmd: cmd.clone(),
        source,
    })?;
    if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
        use std::io::Write;
        stdin
            .write_all(text.as_bytes())
            .map_err(|source| Error::Spawn {
                cmd: cmd.clone(),
                source,
            })?;
    }
    let out = child.wait_with_output().map_err(|source| Error::Spawn {
        cmd: cmd.clone(),
        source,
    })?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if out.status.success() {
        Ok(stdout)
    } else {
        let mut stderr = String::from_utf8_lossy(&out.stderr).trim().to_owned();
        if stderr.is_empty() {
            stderr = stdout.trim().to_owned();
        }
        Err(Error::Command {
            cmd,
            status: out.status.to_string(),
            stderr,
        })
    }
}

/// Sends `sig` to exactly `pid`.
pub fn signal(pid: u32, sig: Signal) -> Result<()> {
    let name = signal_name(sig);
    let raw = i32::try_from(pid)
        .ok()
        .and_then(Pid::from_raw)
        .ok_or_else(|| Error::Signal {
            pid,
            signal: name,
            source: std::io::Error::other("not a valid pid"),
        })?;
    rustix::process::kill_process(raw, sig).map_err(|e| Error::Signal {
        pid,
        signal: name,
        source: e.into(),
    })
}

fn signal_name(sig: Signal) -> &'static str {
    if sig == Signal::TERM {
        "SIGTERM"
    } else if sig == Signal::KILL {
        "SIGKILL"
    } else if sig == Signal::STOP {
        "SIGSTOP"
    } else if sig == Signal::CONT {
        "SIGCONT"
    } else if sig == Signal::INT {
        "SIGINT"
    } else {
        "signal"
    }
}

/// True if `pid` exists and is not a zombie.
pub fn pid_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // "pid (comm) S ...": the state follows the last ')'.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

/// A long-running process the harness started, known by its PID.
#[derive(Debug)]
pub struct Proc {
    name: String,
    child: Child,
    log: PathBuf,
}

impl Proc {
    /// Starts `argv` with stdin closed and stdout+stderr appended to `log`.
    pub fn spawn<S: AsRef<OsStr>>(name: &str, argv: &[S], log: &Path) -> Result<Proc> {
        let cmd = display_cmd(argv);
        let Some((prog, args)) = argv.split_first() else {
            return Err(Error::Spawn {
                cmd,
                source: std::io::Error::other("empty command line"),
            });
        };
        let out = File::options()
            .create(true)
            .append(true)
            .open(log)
            .map_err(|e| Error::io(log, e))?;
        let err = out.try_clone().map_err(|e| Error::io(log, e))?;
        let child = Command::new(prog)
            .args(args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|source| Error::Spawn { cmd, source })?;
        Ok(Proc {
            name: name.to_owned(),
            child,
            log: log.to_owned(),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The file that receives the process's stdout and stderr.
    pub fn log(&self) -> &Path {
        &self.log
    }

    /// True while the process runs (a stopped, i.e. frozen, process counts as running).
    pub fn is_alive(&self) -> bool {
        pid_alive(self.pid())
    }

    pub fn signal(&self, sig: Signal) -> Result<()> {
        signal(self.pid(), sig)
    }

    /// SIGSTOP: the process keeps its sockets but does nothing (no keepalives).
    pub fn freeze(&self) -> Result<()> {
        self.signal(Signal::STOP)
    }

    /// SIGCONT after [`Proc::freeze`].
    pub fn unfreeze(&self) -> Result<()> {
        self.signal(Signal::CONT)
    }

    /// SIGTERM, up to `grace` to exit, then SIGKILL; always reaps the child.
    pub fn stop(&mut self, grace: Duration) {
        if self.child.try_wait().ok().flatten().is_none() {
            // A frozen process cannot act on SIGTERM: thaw it first.
            let _ = self.signal(Signal::CONT);
            let _ = self.signal(Signal::TERM);
            let deadline = Instant::now() + grace;
            while Instant::now() < deadline {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                sleep(Duration::from_millis(50));
            }
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop(STOP_GRACE);
    }
}

/// The last `lines` lines of a file (or a note that it cannot be read).
pub fn tail(path: &Path, lines: usize) -> String {
    match std::fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let all: Vec<&str> = text.lines().collect();
            let from = all.len().saturating_sub(lines);
            let mut out = String::new();
            if from > 0 {
                out.push_str(&format!("[... {from} earlier lines]\n"));
            }
            for line in &all[from..] {
                out.push_str(line);
                out.push('\n');
            }
            out
        }
        Err(e) => format!("[cannot read {}: {e}]\n", path.display()),
    }
}
