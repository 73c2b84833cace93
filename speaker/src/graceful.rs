//! Graceful restart as the receiving speaker (RFC 4724 §4.2), one peer at a time, without I/O:
//! the speaker tells it what the session did and does to the RIB what it answers.
//!
//! - The connection drops without a NOTIFICATION, both sides do graceful restart and the peer's
//!   restart time is not 0: the peer is probably restarting, so its paths of the families it
//!   listed stay, marked stale, for at most that restart time. Anything else withdraws them.
//! - The session comes back: families the peer no longer preserves forwarding for are swept at
//!   once; the rest wait for its End-of-RIB, or for the stale-path time.
//! - End-of-RIB for a waiting family sweeps what the peer did not send again.

use std::time::{Duration, Instant};

use bgp::fsm::DownReason;
use bgp::{Family, FamilySet, Negotiated};

/// How long stale paths wait for End-of-RIB once the restarted peer is back (FRR's and
/// GoBGP's stale-path time).
pub(crate) const STALE_PATH_TIME: Duration = Duration::from_secs(360);

/// What to do with a peer's paths when its session goes down.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum OnDown {
    /// Keep the paths of these families, stale; the restart time is the peer's.
    Keep {
        families: FamilySet,
        restart_time: u16,
    },
    /// Withdraw every path of the peer.
    Withdraw,
}

/// One peer's stale state: the families whose stale paths wait, and until when.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Stale {
    families: FamilySet,
    deadline: Option<Instant>,
}

impl Stale {
    /// Whether any of the peer's paths are stale (the RIB is asked how many only then).
    pub(crate) fn is_empty(&self) -> bool {
        self.families.is_empty()
    }

    #[cfg(test)]
    fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// The session left Established. `we_do_gr`: graceful restart is configured for this
    /// neighbour; `negotiated`: what the ended session had agreed.
    pub(crate) fn down(
        &mut self,
        we_do_gr: bool,
        negotiated: Option<&Negotiated>,
        reason: &DownReason,
        now: Instant,
    ) -> OnDown {
        let gr = match (negotiated, reason) {
            (Some(n), DownReason::ConnectionLost) if we_do_gr => n.peer_graceful_restart.as_ref(),
            _ => None,
        };
        match gr {
            Some(gr) if gr.restart_time > 0 => {
                let families: FamilySet = gr.families.iter().map(|f| f.family).collect();
                self.families = families.clone();
                self.deadline = Some(now + Duration::from_secs(u64::from(gr.restart_time)));
                OnDown::Keep {
                    families,
                    restart_time: gr.restart_time,
                }
            }
            _ => {
                *self = Stale::default();
                OnDown::Withdraw
            }
        }
    }

    /// The session is Established again: the families whose stale paths go now, because the
    /// peer no longer preserves forwarding for them (or no longer does graceful restart).
    pub(crate) fn established(&mut self, negotiated: &Negotiated, now: Instant) -> Vec<Family> {
        if self.families.is_empty() {
            return Vec::new();
        }
        let preserved = |f: Family| {
            negotiated.peer_graceful_restart.as_ref().is_some_and(|g| {
                g.families
                    .iter()
                    .any(|x| x.family == f && x.forwarding_preserved)
            })
        };
        let (waiting, sweep): (Vec<Family>, Vec<Family>) =
            self.families.iter().partition(|f| preserved(*f));
        self.families = waiting.into_iter().collect();
        self.deadline = (!self.families.is_empty()).then(|| now + STALE_PATH_TIME);
        sweep
    }

    /// End-of-RIB for `family`: whether its stale paths go now (those the peer did not send
    /// again).
    pub(crate) fn end_of_rib(&mut self, family: Family) -> bool {
        if !self.families.contains(family) {
            return false;
        }
        self.families = self.families.iter().filter(|f| *f != family).collect();
        if self.families.is_empty() {
            self.deadline = None;
        }
        true
    }

    /// Whether the restart or stale-path time ran out: then every stale path goes.
    pub(crate) fn expire(&mut self, now: Instant) -> bool {
        if self.deadline.is_some_and(|d| d <= now) {
            *self = Stale::default();
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use bgp::capability::{GracefulRestart, GracefulRestartFamily};
    use bgp::{Context, Notification};

    const V4: Family = Family::IPV4_UNICAST;
    const V6: Family = Family::IPV6_UNICAST;

    fn negotiated(gr: Option<(u16, &[(Family, bool)])>) -> Negotiated {
        Negotiated {
            receive: Context::default(),
            send: Context::default(),
            families: [V4, V6].into_iter().collect(),
            hold_time: 90,
            route_refresh: true,
            enhanced_route_refresh: false,
            extended_next_hop: Vec::new(),
            peer_graceful_restart: gr.map(|(t, fams)| GracefulRestart {
                restarting: false,
                notification: false,
                restart_time: t,
                families: fams
                    .iter()
                    .map(|(family, fwd)| GracefulRestartFamily {
                        family: *family,
                        forwarding_preserved: *fwd,
                    })
                    .collect(),
            }),
            peer_llgr: Vec::new(),
            peer_asn: 65001,
            peer_id: std::net::Ipv4Addr::new(198, 18, 0, 2),
        }
    }

    /// One event of a peer's life, and what the state machine must answer.
    enum Step {
        Down(bool, Option<Negotiated>, DownReason, OnDown),
        Up(Negotiated, Vec<Family>),
        Eor(Family, bool),
        Expire(u64, bool),
    }

    /// Replays `steps` (times in seconds from a common start) and checks every answer.
    fn replay(steps: Vec<Step>) -> Stale {
        let t0 = Instant::now();
        let mut s = Stale::default();
        for (i, step) in steps.into_iter().enumerate() {
            match step {
                Step::Down(gr, n, reason, want) => {
                    assert_eq!(s.down(gr, n.as_ref(), &reason, t0), want, "step {i}")
                }
                Step::Up(n, want) => assert_eq!(s.established(&n, t0), want, "step {i}"),
                Step::Eor(f, want) => assert_eq!(s.end_of_rib(f), want, "step {i}"),
                Step::Expire(at, want) => {
                    assert_eq!(s.expire(t0 + Duration::from_secs(at)), want, "step {i}")
                }
            }
        }
        s
    }

    fn both(t: u16) -> Negotiated {
        negotiated(Some((t, &[(V4, true), (V6, true)])))
    }

    fn keep(t: u16) -> OnDown {
        OnDown::Keep {
            families: [V4, V6].into_iter().collect(),
            restart_time: t,
        }
    }

    #[test]
    fn a_restarting_peer_keeps_its_routes_until_end_of_rib() {
        let s = replay(vec![
            Step::Down(true, Some(both(120)), DownReason::ConnectionLost, keep(120)),
            Step::Expire(119, false),
            Step::Up(both(120), vec![]),
            // Back in time: the stale-path time (360 s from re-establishment) now applies.
            Step::Expire(200, false),
            Step::Eor(V4, true),
            Step::Eor(V4, false),
            Step::Eor(V6, true),
        ]);
        assert!(s.is_empty() && s.deadline().is_none());
    }

    #[test]
    fn routes_are_withdrawn_unless_every_condition_holds() {
        let notif = DownReason::Received(Notification::new(6, 2));
        for (gr, n, reason) in [
            // We do not do graceful restart with this neighbour.
            (false, Some(both(120)), DownReason::ConnectionLost),
            // The peer does not.
            (true, Some(negotiated(None)), DownReason::ConnectionLost),
            // A NOTIFICATION: a deliberate close, not a restart (RFC 4724 without RFC 8538).
            (true, Some(both(120)), notif),
            (true, Some(both(120)), DownReason::HoldTimerExpired),
            // Restart time 0: the peer asks not to be waited for.
            (true, Some(both(0)), DownReason::ConnectionLost),
            (true, None, DownReason::ConnectionLost),
        ] {
            let s = replay(vec![Step::Down(gr, n, reason, OnDown::Withdraw)]);
            assert!(s.is_empty());
        }
    }

    #[test]
    fn families_no_longer_preserved_go_when_the_peer_is_back() {
        let only_v4 = negotiated(Some((120, &[(V4, true), (V6, false)])));
        let s = replay(vec![
            Step::Down(true, Some(both(90)), DownReason::ConnectionLost, keep(90)),
            Step::Up(only_v4, vec![V6]),
            Step::Eor(V6, false),
            Step::Eor(V4, true),
        ]);
        assert!(s.is_empty());
        // Back without graceful restart at all: everything stale goes at once.
        let s = replay(vec![
            Step::Down(true, Some(both(90)), DownReason::ConnectionLost, keep(90)),
            Step::Up(negotiated(None), vec![V4, V6]),
        ]);
        assert!(s.is_empty() && s.deadline().is_none());
    }

    #[test]
    fn timers_sweep_what_never_came_back() {
        // The peer never returns: its restart time runs out.
        replay(vec![
            Step::Down(true, Some(both(30)), DownReason::ConnectionLost, keep(30)),
            Step::Expire(29, false),
            Step::Expire(30, true),
            Step::Expire(31, false),
            Step::Eor(V4, false),
        ]);
        // It returns but never sends End-of-RIB: the stale-path time runs out.
        replay(vec![
            Step::Down(true, Some(both(30)), DownReason::ConnectionLost, keep(30)),
            Step::Up(both(30), vec![]),
            Step::Expire(359, false),
            Step::Expire(360, true),
        ]);
        // A second drop while stale starts over from the new session's capability.
        replay(vec![
            Step::Down(true, Some(both(30)), DownReason::ConnectionLost, keep(30)),
            Step::Up(both(60), vec![]),
            Step::Down(true, Some(both(60)), DownReason::ConnectionLost, keep(60)),
            Step::Expire(59, false),
            Step::Expire(60, true),
        ]);
    }
}
