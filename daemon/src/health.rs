//! Liveness and readiness as the kubelet probes them, for the speaker and the agent.
//!
//! `/healthz` fails once the process's main loop, having run, has not run again for `stall`: the
//! loop is stuck, and only a restart helps (a process still waiting for the API server before
//! its first turn is not stuck: a restart would wait again). `/readyz` fails until the process
//! says it serves (and whenever it says it no longer does), with the reason as the body, so
//! `kubectl describe pod` shows why. [`router`] serves both beside `/metrics`.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;

#[derive(Debug)]
pub struct Health {
    start: Instant,
    /// Milliseconds since `start` at the main loop's last turn; [`NO_BEAT`] before the first.
    beat_ms: AtomicU64,
    stall: Duration,
    ready: AtomicBool,
    /// Why the process is not ready, while it is not.
    waiting_for: Mutex<&'static str>,
}

const NO_BEAT: u64 = u64::MAX;

/// Whether a loop that last ran at `beat` (never: `None`) is stuck at `now`: for how long, if
/// it is.
pub fn stalled(beat: Option<Duration>, now: Duration, stall: Duration) -> Option<Duration> {
    let quiet = now.saturating_sub(beat?);
    (quiet > stall).then_some(quiet)
}

impl Health {
    pub fn new(stall: Duration) -> Arc<Health> {
        Arc::new(Health {
            start: Instant::now(),
            beat_ms: AtomicU64::new(NO_BEAT),
            stall,
            ready: AtomicBool::new(false),
            waiting_for: Mutex::new("starting"),
        })
    }

    /// The main loop ran.
    pub fn beat(&self) {
        let ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(NO_BEAT - 1);
        self.beat_ms.store(ms, Ordering::Release);
    }

    pub fn set_ready(&self) {
        self.ready.store(true, Ordering::Release);
    }

    /// Not ready, and why.
    pub fn set_not_ready(&self, why: &'static str) {
        if let Ok(mut w) = self.waiting_for.lock() {
            *w = why;
        }
        self.ready.store(false, Ordering::Release);
    }

    fn liveness(&self) -> Result<(), String> {
        let beat = Some(self.beat_ms.load(Ordering::Acquire))
            .filter(|ms| *ms != NO_BEAT)
            .map(Duration::from_millis);
        match stalled(beat, self.start.elapsed(), self.stall) {
            None => Ok(()),
            Some(quiet) => Err(format!("main loop stalled for {} s", quiet.as_secs())),
        }
    }

    fn readiness(&self) -> Result<(), String> {
        if self.ready.load(Ordering::Acquire) {
            return Ok(());
        }
        Err(self
            .waiting_for
            .lock()
            .map_or_else(|_| "not ready".to_string(), |w| w.to_string()))
    }

    /// `/healthz` and `/readyz`, to merge into a process's HTTP router.
    pub fn routes(self: &Arc<Self>) -> Router {
        let (live, ready) = (self.clone(), self.clone());
        Router::new()
            .route("/healthz", get(move || answer(live.liveness())))
            .route("/readyz", get(move || answer(ready.readiness())))
    }
}

/// `/metrics` (what `render` writes, Prometheus text), `/healthz` and `/readyz`.
pub fn router<F>(render: F, health: &Arc<Health>) -> Router
where
    F: Fn() -> Result<String, std::fmt::Error> + Clone + Send + Sync + 'static,
{
    Router::new()
        .route(
            "/metrics",
            get(move || {
                let body = render();
                async move {
                    match body {
                        Ok(body) => (StatusCode::OK, body),
                        Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, "encoding failed".into()),
                    }
                }
            }),
        )
        .merge(health.routes())
}

async fn answer(r: Result<(), String>) -> (StatusCode, String) {
    match r {
        Ok(()) => (StatusCode::OK, "ok".into()),
        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, why),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_loop_is_stalled_only_past_the_bound() {
        let s = Duration::from_secs;
        assert_eq!(stalled(Some(s(10)), s(20), s(30)), None);
        assert_eq!(stalled(Some(s(10)), s(40), s(30)), None);
        assert_eq!(stalled(Some(s(10)), s(41), s(30)), Some(s(31)));
        // A beat stamped after `now` was read (another thread) is not a stall.
        assert_eq!(stalled(Some(s(50)), s(40), s(30)), None);
        // Not yet started (waiting for the API server, say) is not stuck.
        assert_eq!(stalled(None, s(400), s(30)), None);
    }

    #[test]
    fn ready_only_when_told_and_says_why_not() {
        let h = Health::new(Duration::from_secs(30));
        assert_eq!(h.liveness(), Ok(()));
        h.beat();
        assert_eq!(h.liveness(), Ok(()));
        assert_eq!(h.readiness(), Err("starting".into()));
        h.set_ready();
        assert_eq!(h.readiness(), Ok(()));
        h.set_not_ready("no speaker");
        assert_eq!(h.readiness(), Err("no speaker".into()));
    }
}
