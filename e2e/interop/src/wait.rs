//! Polling with a deadline, and the waits every interop test needs.
//!
//! A check returns `Ok(value)` when done or `Err(Pending)` describing what it saw; the timeout
//! error carries the last description, so a failure says what the state was, not just "timeout".

use std::fmt;
use std::net::IpAddr;
use std::thread::sleep;
use std::time::{Duration, Instant};

use ipnet::IpNet;

use crate::daemon::Daemon;
use crate::error::{Error, Result};
use crate::model::{Family, Path, Session};

/// Default poll interval of the helpers.
pub const POLL: Duration = Duration::from_millis(200);

/// "Not yet", with what was observed.
#[derive(Debug, Clone)]
pub struct Pending(pub String);

impl fmt::Display for Pending {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<Error> for Pending {
    fn from(e: Error) -> Pending {
        Pending(format!("error: {e}"))
    }
}

impl From<String> for Pending {
    fn from(s: String) -> Pending {
        Pending(s)
    }
}

impl From<&str> for Pending {
    fn from(s: &str) -> Pending {
        Pending(s.to_owned())
    }
}

/// Calls `check` every `poll` until it returns `Ok` or `timeout` passes (it always runs at
/// least once, and once more at the deadline).
pub fn wait_until<T>(
    what: &str,
    timeout: Duration,
    poll: Duration,
    mut check: impl FnMut() -> Result<T, Pending>,
) -> Result<T> {
    let deadline = Instant::now() + timeout;
    loop {
        let last = match check() {
            Ok(v) => return Ok(v),
            Err(p) => p,
        };
        let now = Instant::now();
        if now >= deadline {
            return Err(Error::Timeout {
                what: what.to_owned(),
                timeout,
                last: last.0,
            });
        }
        sleep(poll.min(deadline - now));
    }
}

/// Checks that `check` keeps returning `Ok` for `duration` (e.g. "the session stays up").
pub fn holds_for(
    what: &str,
    duration: Duration,
    poll: Duration,
    mut check: impl FnMut() -> Result<(), Pending>,
) -> Result<()> {
    let deadline = Instant::now() + duration;
    loop {
        if let Err(p) = check() {
            return Err(Error::Timeout {
                what: format!("{what} (stopped holding)"),
                timeout: duration,
                last: p.0,
            });
        }
        let now = Instant::now();
        if now >= deadline {
            return Ok(());
        }
        sleep(poll.min(deadline - now));
    }
}

fn describe(sessions: &[Session]) -> String {
    if sessions.is_empty() {
        return "no sessions".into();
    }
    sessions
        .iter()
        .map(|s| format!("{} {:?}", s.peer, s.state))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Waits until `daemon`'s session with `peer` is (or, with `up = false`, is no longer)
/// Established.
pub fn wait_session(
    daemon: &dyn Daemon,
    peer: IpAddr,
    up: bool,
    timeout: Duration,
) -> Result<Session> {
    let what = format!(
        "{} session with {peer} to be {}",
        daemon.name(),
        if up { "Established" } else { "down" }
    );
    wait_until(&what, timeout, POLL, || {
        let sessions = daemon.sessions()?;
        match sessions.iter().find(|s| s.peer == peer) {
            Some(s) if s.is_established() == up => Ok(s.clone()),
            None if !up => Ok(Session {
                peer,
                remote_as: None,
                state: crate::model::SessionState::Other("absent".into()),
                hold_time: None,
                remote_router_id: None,
            }),
            _ => Err(Pending(describe(&sessions))),
        }
    })
}

/// Waits until `prefix` is in `daemon`'s RIB with a path satisfying `accept`; returns it.
pub fn wait_route(
    daemon: &dyn Daemon,
    prefix: IpNet,
    timeout: Duration,
    accept: impl Fn(&Path) -> bool,
) -> Result<Path> {
    let what = format!("{} to have a matching route for {prefix}", daemon.name());
    wait_until(&what, timeout, POLL, || {
        let rib = daemon.rib(Family::of(&prefix))?;
        rib.paths(&prefix)
            .iter()
            .find(|p| accept(p))
            .cloned()
            .ok_or_else(|| Pending(rib.summary()))
    })
}

/// Waits until `daemon` has no path for `prefix` learned from a neighbour.
pub fn wait_route_gone(daemon: &dyn Daemon, prefix: IpNet, timeout: Duration) -> Result<()> {
    let what = format!("{} to lose its learned route for {prefix}", daemon.name());
    wait_until(&what, timeout, POLL, || {
        let rib = daemon.rib(Family::of(&prefix))?;
        if rib.paths(&prefix).iter().any(|p| p.peer.is_some()) {
            Err(Pending(rib.summary()))
        } else {
            Ok(())
        }
    })
}
