//! Rate limit for log lines a peer can cause at will (RFC 7606 attribute errors): a peer
//! sending a broken attribute in every UPDATE must not flood the log. Pure: the caller passes
//! the clock.

use std::time::{Duration, Instant};

/// At most `burst` lines per `window`; lines held back are counted and reported with the next
/// line let through.
#[derive(Debug, Clone)]
pub(crate) struct LogLimit {
    window: Duration,
    burst: u32,
    started: Option<Instant>,
    used: u32,
    held: u64,
}

impl LogLimit {
    pub(crate) fn new(window: Duration, burst: u32) -> Self {
        LogLimit {
            window,
            burst,
            started: None,
            used: 0,
            held: 0,
        }
    }

    /// `Some(n)`: log now, saying that `n` lines were held back since the last one; `None`:
    /// hold this one back.
    pub(crate) fn allow(&mut self, now: Instant) -> Option<u64> {
        if self
            .started
            .is_none_or(|s| now.saturating_duration_since(s) >= self.window)
        {
            self.started = Some(now);
            self.used = 0;
        }
        if self.used < self.burst {
            self.used += 1;
            Some(std::mem::take(&mut self.held))
        } else {
            self.held += 1;
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_per_window_and_the_rest_counted() {
        let t0 = Instant::now();
        let mut l = LogLimit::new(Duration::from_secs(60), 3);
        let first: Vec<Option<u64>> = (0..10).map(|_| l.allow(t0)).collect();
        assert_eq!(
            first,
            [
                Some(0),
                Some(0),
                Some(0),
                None,
                None,
                None,
                None,
                None,
                None,
                None
            ]
        );
        // Still the same window.
        assert_eq!(l.allow(t0 + Duration::from_secs(59)), None);
        // A new window: the 8 held back are reported with the first line.
        assert_eq!(l.allow(t0 + Duration::from_secs(60)), Some(8));
        assert_eq!(l.allow(t0 + Duration::from_secs(61)), Some(0));
    }
}
