//! Deadlines for the FSM's timers, polled by the session task's select loop.

use std::time::Duration;

use bgp::fsm::Timer;
use tokio::time::Instant;

const ALL: [Timer; 5] = [
    Timer::ConnectRetry,
    Timer::Hold,
    Timer::Keepalive,
    Timer::IdleHold,
    Timer::SendHold,
];

fn slot(t: Timer) -> usize {
    match t {
        Timer::ConnectRetry => 0,
        Timer::Hold => 1,
        Timer::Keepalive => 2,
        Timer::IdleHold => 3,
        Timer::SendHold => 4,
    }
}

#[derive(Debug, Default)]
pub(crate) struct Timers {
    deadlines: [Option<Instant>; 5],
}

impl Timers {
    pub(crate) fn start(&mut self, t: Timer, after: Duration) {
        self.deadlines[slot(t)] = Some(Instant::now() + after);
    }

    pub(crate) fn stop(&mut self, t: Timer) {
        self.deadlines[slot(t)] = None;
    }

    /// The earliest running timer and its deadline.
    pub(crate) fn next(&self) -> Option<(Timer, Instant)> {
        ALL.iter()
            .filter_map(|t| self.deadlines[slot(*t)].map(|d| (*t, d)))
            .min_by_key(|(_, d)| *d)
    }

    /// Takes the timer off the list (it fired).
    pub(crate) fn fire(&mut self, t: Timer) {
        self.stop(t);
    }
}
