//! Replay tests: sequences of inputs to the core, and what it must decide and send. Sessions are
//! played by outboxes the test reads (or, for a stuck peer, never reads).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bgp::attribute::{AsPath, Origin};
use bgp::capability::{GracefulRestart, GracefulRestartFamily};
use bgp::error::{cease_subcode, code};
use bgp::fsm::{DownReason, Restart, State};
use bgp::{Context, Family, FamilySet, Message, Negotiated, Nlri, PathAttributes, Update};
use ipnet::Ipv4Net;

use super::{Core, Effect};

use crate::metrics::Metrics;
use crate::request::ResetKind;
use crate::session::{FromSession, Output, ToSession};

const V4: Family = Family::IPV4_UNICAST;

fn addr(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(198, 18, 0, last))
}

/// A speaker of AS 65000 with the neighbours of `neighbors` (YAML flow sequence).
fn core(neighbors: &str, t0: Instant) -> Core {
    let yaml = format!("asn: 65000\nrouter_id: 198.18.0.1\nneighbors: {neighbors}\n");
    let c = speaker_config::parse(&yaml).unwrap();
    let mut core = Core::new(c, 179, Metrics::new(), t0);
    for n in core.configured_neighbors() {
        core.add_neighbor(n, t0).unwrap();
    }
    core.take_effects();
    core
}

/// What a session with `asn` negotiates: IPv4, route refresh, and graceful restart with
/// `gr_time` when given.
fn negotiated(asn: u32, gr_time: Option<u16>, enhanced: bool) -> Negotiated {
    Negotiated {
        receive: Context::four_octet(),
        send: Context::four_octet(),
        families: [V4].into_iter().collect::<FamilySet>(),
        hold_time: 90,
        route_refresh: true,
        enhanced_route_refresh: enhanced,
        extended_next_hop: Vec::new(),
        peer_graceful_restart: gr_time.map(|t| GracefulRestart {
            restarting: false,
            notification: false,
            restart_time: t,
            families: vec![GracefulRestartFamily {
                family: V4,
                forwarding_preserved: true,
            }],
        }),
        peer_llgr: Vec::new(),
        peer_asn: asn,
        peer_id: Ipv4Addr::new(198, 18, 1, asn as u8),
    }
}

/// Brings the session with `peer` up, with room for 1 MiB of encoded UPDATEs in its outbox.
fn establish(core: &mut Core, peer: IpAddr, n: Negotiated, t: Instant) -> Arc<Output> {
    establish_limited(core, peer, n, 1 << 20, t)
}

/// The same with an outbox that queues at most `limit` octets before it coalesces.
fn establish_limited(
    core: &mut Core,
    peer: IpAddr,
    n: Negotiated,
    limit: usize,
    t: Instant,
) -> Arc<Output> {
    let output = Output::new();
    output.open_with_limit(n.send.clone(), limit);
    core.session_event(
        FromSession::Established {
            peer,
            negotiated: Box::new(n),
            local: SocketAddr::new(addr(1), 179),
            output: output.clone(),
        },
        t,
    );
    output
}

fn prefix(i: u32) -> Ipv4Net {
    let [_, a, b, _] = (0x0a00_0000u32 + (i << 8)).to_be_bytes();
    Ipv4Net::new(Ipv4Addr::new(10, a, b, 0), 24).unwrap()
}

/// One UPDATE per prefix, each with its own community (a MED would not cross to another AS), so
/// nothing packs.
fn announce(from_asn: u32, nh: IpAddr, range: std::ops::Range<u32>) -> Vec<Update> {
    let IpAddr::V4(nh) = nh else { unreachable!() };
    range
        .map(|i| Update {
            attributes: PathAttributes {
                origin: Some(Origin::Igp),
                as_path: Some(AsPath::sequence([from_asn])),
                next_hop: Some(nh),
                communities: vec![bgp::attribute::Community::new(65001, i as u16)],
                ..PathAttributes::default()
            },
            nlri: vec![Nlri {
                path_id: None,
                prefix: prefix(i),
            }],
            ..Update::default()
        })
        .collect()
}

fn withdraw(range: std::ops::Range<u32>) -> Update {
    Update {
        withdrawn: range
            .map(|i| Nlri {
                path_id: None,
                prefix: prefix(i),
            })
            .collect(),
        ..Update::default()
    }
}

fn receive(core: &mut Core, peer: IpAddr, updates: Vec<Update>, t: Instant) {
    core.session_event(FromSession::Updates { peer, updates }, t);
}

/// What a peer's view of our table is after it read everything queued: prefixes announced
/// and not withdrawn since, End-of-RIBs and route refresh markers seen.
#[derive(Default, Debug)]
struct Reader {
    table: BTreeSet<Ipv4Net>,
    end_of_rib: usize,
    markers: Vec<bgp::RefreshSubtype>,
    messages: usize,
}

impl Reader {
    fn read(&mut self, output: &Output) {
        loop {
            let msgs = output.take(64 * 1024);
            if msgs.is_empty() {
                return;
            }
            let ctx = Context::four_octet();
            for buf in msgs {
                let mut r = bgp::MessageReader::new(&buf);
                while let Some(m) = r.next_raw(&ctx).unwrap() {
                    self.message(Message::decode(m, &ctx).unwrap());
                }
            }
        }
    }

    fn message(&mut self, m: Message) {
        self.messages += 1;
        match m {
            Message::Update(u) => {
                if u.end_of_rib_family().is_some() {
                    self.end_of_rib += 1;
                }
                for w in &u.withdrawn {
                    self.table.remove(&w.prefix);
                }
                for n in &u.nlri {
                    self.table.insert(n.prefix);
                }
            }
            Message::RouteRefresh(r) => self.markers.push(r.subtype),
            other => panic!("unexpected {other:?}"),
        }
    }
}

fn sessions(effects: &[Effect]) -> Vec<(IpAddr, String)> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Session(a, cmd) => Some((*a, format!("{cmd:?}"))),
            _ => None,
        })
        .collect()
}

fn closed_with(effects: &[Effect], peer: IpAddr) -> Option<(bgp::Notification, Restart)> {
    effects.iter().find_map(|e| match e {
        Effect::Session(a, ToSession::Close(n, r)) if *a == peer => Some((n.clone(), *r)),
        _ => None,
    })
}

const THREE: &str = "[{asn: 65001, address: 198.18.0.11}, {asn: 65002, address: 198.18.0.12}, {asn: 65003, address: 198.18.0.13}]";

#[test]
fn a_peer_that_reads_nothing_costs_its_table_and_holds_up_no_one() {
    let t0 = Instant::now();
    let (source, sink, stuck) = (addr(11), addr(12), addr(13));
    let mut c = core(THREE, t0);
    establish(&mut c, source, negotiated(65001, None, false), t0);
    let sink_out = establish(&mut c, sink, negotiated(65002, None, false), t0);
    // A few KiB of encoded UPDATEs, then only changes coalesced by prefix.
    let stuck_out = establish_limited(&mut c, stuck, negotiated(65003, None, false), 4096, t0);
    let mut reader = Reader::default();
    reader.read(&sink_out);
    assert_eq!(reader.end_of_rib, 1);

    const N: u32 = 2000;
    // Announced, withdrawn and announced again, in batches the way the driver drains.
    for round in 0..3 {
        for chunk in (0..N).step_by(250) {
            let updates = if round == 1 {
                vec![withdraw(chunk..chunk + 250)]
            } else {
                announce(65001, source, chunk..chunk + 250)
            };
            receive(&mut c, source, updates, t0);
            c.flush(false);
            assert!(c.take_effects().is_empty(), "the core waits on nobody");
            reader.read(&sink_out);
        }
        let (octets, coalesced) = stuck_out.backlog();
        assert!(octets < 4096 + 4096, "queued {octets} octets");
        assert!(
            coalesced <= N as usize,
            "{coalesced} prefixes for a table of {N}"
        );
    }
    let want: BTreeSet<Ipv4Net> = (0..N).map(prefix).collect();
    assert_eq!(reader.table, want, "the sink has every route");

    // Once the stuck peer reads, it gets the table as it is now, not the history.
    let mut late = Reader::default();
    late.read(&stuck_out);
    assert_eq!(late.table, want);
    assert!(
        late.messages < 3 * N as usize,
        "{} messages: changes were coalesced",
        late.messages
    );
}

#[test]
fn the_source_is_not_sent_its_own_routes_and_originated_only_gets_ours() {
    let t0 = Instant::now();
    let mut c = core(
        "[{asn: 65001, address: 198.18.0.11}, {asn: 65002, address: 198.18.0.12, export: originated}]",
        t0,
    );
    let a = establish(&mut c, addr(11), negotiated(65001, None, false), t0);
    let b = establish(&mut c, addr(12), negotiated(65002, None, false), t0);
    receive(&mut c, addr(11), announce(65001, addr(11), 0..3), t0);
    c.add_paths(vec!["198.19.0.0/24".parse().unwrap()], &Default::default());
    c.flush(false);
    let (mut ra, mut rb) = (Reader::default(), Reader::default());
    ra.read(&a);
    rb.read(&b);
    let ours: Ipv4Net = "198.19.0.0/24".parse().unwrap();
    assert_eq!(ra.table, BTreeSet::from([ours]));
    assert_eq!(rb.table, BTreeSet::from([ours]), "no transit by default");
}

#[test]
fn max_prefix_closes_with_cease_1_once_past_the_limit() {
    let t0 = Instant::now();
    let mut c = core(
        "[{asn: 65001, address: 198.18.0.11, max_prefix: {limit: 2, restart_after: 30}}, {asn: 65002, address: 198.18.0.12, max_prefix: {limit: 2, warning_only: true}}]",
        t0,
    );
    let (hard, warn) = (addr(11), addr(12));
    establish(&mut c, hard, negotiated(65001, None, false), t0);
    establish(&mut c, warn, negotiated(65002, None, false), t0);
    receive(&mut c, hard, announce(65001, hard, 0..2), t0);
    assert!(
        closed_with(&c.take_effects(), hard).is_none(),
        "at the limit"
    );
    receive(&mut c, hard, announce(65001, hard, 2..3), t0);
    let (n, restart) = closed_with(&c.take_effects(), hard).expect("closed past the limit");
    assert_eq!(
        (n.code, n.subcode),
        (code::CEASE, cease_subcode::MAX_PREFIXES)
    );
    // RFC 4486 §4: AFI 1, SAFI 1, the limit.
    assert_eq!(n.data, [0, 1, 1, 0, 0, 0, 2]);
    assert_eq!(restart, Restart::After(Duration::from_secs(30)));

    receive(&mut c, warn, announce(65002, warn, 0..5), t0);
    assert!(
        c.take_effects().is_empty(),
        "a warning-only limit keeps the session"
    );
    let counted = c.peers().find(|p| p.neighbor.address == warn).unwrap();
    assert_eq!(
        (counted.max_prefix_exceeded, counted.prefixes_received),
        (1, 5)
    );
}

#[test]
fn route_refresh_sends_the_table_once_bracketed_when_enhanced() {
    let t0 = Instant::now();
    let mut c = core(THREE, t0);
    let (src, plain, enhanced) = (addr(11), addr(12), addr(13));
    establish(&mut c, src, negotiated(65001, None, false), t0);
    let p = establish(&mut c, plain, negotiated(65002, None, false), t0);
    let e = establish(&mut c, enhanced, negotiated(65003, None, true), t0);
    receive(&mut c, src, announce(65001, src, 0..4), t0);
    c.flush(false);
    let (mut rp, mut re) = (Reader::default(), Reader::default());
    rp.read(&p);
    re.read(&e);
    for peer in [plain, enhanced] {
        // Asked twice before reading: one table is on its way already.
        for _ in 0..2 {
            c.session_event(FromSession::RouteRefresh { peer, family: V4 }, t0);
        }
    }
    let (mut rp, mut re) = (Reader::default(), Reader::default());
    rp.read(&p);
    re.read(&e);
    assert_eq!(rp.table.len(), 4);
    assert!(rp.markers.is_empty());
    assert_eq!(re.table.len(), 4);
    assert_eq!(
        re.markers,
        [
            bgp::RefreshSubtype::BeginningOfRefresh,
            bgp::RefreshSubtype::EndOfRefresh
        ]
    );
    assert_eq!(rp.messages, 4, "one table, not two");
    // Not negotiated: ignored (RFC 2918 §4).
    c.session_event(
        FromSession::RouteRefresh {
            peer: plain,
            family: Family::IPV6_UNICAST,
        },
        t0,
    );
    assert!(p.take(1 << 20).is_empty());
}

#[test]
fn a_restarting_peer_keeps_its_routes_until_end_of_rib_then_loses_the_rest() {
    let t0 = Instant::now();
    let mut c = core(
        "[{asn: 65001, address: 198.18.0.11, graceful_restart: {}}, {asn: 65002, address: 198.18.0.12}]",
        t0,
    );
    let (gr, other) = (addr(11), addr(12));
    establish(&mut c, gr, negotiated(65001, Some(120), false), t0);
    let o = establish(&mut c, other, negotiated(65002, None, false), t0);
    receive(&mut c, gr, announce(65001, gr, 0..10), t0);
    c.flush(false);
    let mut ro = Reader::default();
    ro.read(&o);
    assert_eq!(ro.table.len(), 10);

    c.session_event(
        FromSession::Down {
            peer: gr,
            reason: DownReason::ConnectionLost,
        },
        t0,
    );
    c.flush(false);
    ro.read(&o);
    assert_eq!(ro.table.len(), 10, "kept while the peer restarts");
    let stale = |c: &Core| {
        c.peers()
            .find(|p| p.neighbor.address == gr)
            .unwrap()
            .stale_paths
    };
    assert_eq!(stale(&c), 10);

    // Back, it sends six of its routes again and End-of-RIB: the four others go.
    let t1 = t0 + Duration::from_secs(30);
    establish(&mut c, gr, negotiated(65001, Some(120), false), t1);
    receive(&mut c, gr, announce(65001, gr, 0..6), t1);
    assert_eq!(stale(&c), 4);
    receive(&mut c, gr, vec![Update::end_of_rib(V4)], t1);
    assert_eq!(stale(&c), 0);
    c.flush(false);
    ro.read(&o);
    assert_eq!(ro.table, (0..6).map(prefix).collect());

    // A close with a NOTIFICATION is no restart: everything goes at once.
    c.session_event(
        FromSession::Down {
            peer: gr,
            reason: DownReason::Received(bgp::Notification::new(6, 2)),
        },
        t1,
    );
    c.flush(false);
    ro.read(&o);
    assert!(ro.table.is_empty());
}

#[test]
fn stale_routes_of_a_peer_that_never_returns_expire() {
    let t0 = Instant::now();
    let mut c = core(
        "[{asn: 65001, address: 198.18.0.11, graceful_restart: {}}]",
        t0,
    );
    let gr = addr(11);
    establish(&mut c, gr, negotiated(65001, Some(30), false), t0);
    receive(&mut c, gr, announce(65001, gr, 0..3), t0);
    c.session_event(
        FromSession::Down {
            peer: gr,
            reason: DownReason::ConnectionLost,
        },
        t0,
    );
    assert!(!c.expire_stale(t0 + Duration::from_secs(29)));
    assert_eq!(c.routes(V4).len(), 3);
    assert!(c.expire_stale(t0 + Duration::from_secs(30)));
    assert!(c.routes(V4).is_empty());
}

#[test]
fn learned_best_paths_reach_the_fib_and_convergence_waits_for_end_of_rib() {
    let t0 = Instant::now();
    let mut c = core(
        "[{asn: 65001, address: 198.18.0.11, graceful_restart: {}}, {asn: 65000, address: 198.18.0.12}]",
        t0,
    );
    c.set_fib();
    c.add_paths(vec!["198.19.0.0/24".parse().unwrap()], &Default::default());
    let (ebgp, ibgp) = (addr(11), addr(12));
    establish(&mut c, ebgp, negotiated(65001, Some(120), false), t0);
    c.check_converged(t0);
    assert!(c.take_effects().is_empty(), "the iBGP peer is not up yet");
    establish(&mut c, ibgp, negotiated(65000, None, false), t0);
    c.check_converged(t0);
    assert!(
        c.take_effects().is_empty(),
        "no End-of-RIB from the GR peer yet"
    );

    receive(&mut c, ebgp, announce(65001, ebgp, 0..2), t0);
    c.flush(false);
    let effects = c.take_effects();
    let [Effect::FibRoutes(changes)] = &effects[..] else {
        panic!("{effects:?}")
    };
    // Learned paths only: our own /24 is not installed.
    assert_eq!(changes.len(), 3);
    for (prefix, want) in changes {
        let Some(want) = want else {
            assert_eq!(prefix.to_string(), "198.19.0.0/24");
            continue;
        };
        assert_eq!(want.next_hops, BTreeSet::from([ebgp]));
        assert_eq!(want.metric, crate::fib::plan::METRIC_EBGP);
    }

    receive(&mut c, ebgp, vec![Update::end_of_rib(V4)], t0);
    c.check_converged(t0);
    assert!(matches!(c.take_effects()[..], [Effect::FibConverged]));
    c.check_converged(t0);
    assert!(c.take_effects().is_empty(), "told once");

    // Without End-of-RIB, the speaker's restart time ends the wait.
    let mut c = core(
        "[{asn: 65001, address: 198.18.0.11, graceful_restart: {}}]",
        t0,
    );
    c.set_fib();
    establish(&mut c, ebgp, negotiated(65001, Some(120), false), t0);
    c.check_converged(t0 + Duration::from_secs(119));
    assert!(c.take_effects().is_empty());
    c.check_converged(t0 + Duration::from_secs(120));
    assert!(matches!(c.take_effects()[..], [Effect::FibConverged]));
}

#[test]
fn bfd_down_closes_the_session_at_once() {
    let t0 = Instant::now();
    let mut c = core(THREE, t0);
    c.bfd_changed(addr(11), true, "None");
    assert!(c.take_effects().is_empty());
    c.bfd_changed(addr(11), false, "ControlDetectionTimeExpired");
    let (n, restart) = closed_with(&c.take_effects(), addr(11)).unwrap();
    assert_eq!((n.code, n.subcode), (code::CEASE, cease_subcode::BFD_DOWN));
    assert_eq!(restart, Restart::IdleHold);
    c.bfd_changed(addr(99), false, "ControlDetectionTimeExpired");
    assert!(c.take_effects().is_empty(), "not a neighbour");
}

#[test]
fn neighbours_come_and_go_with_their_session_bfd_and_key() {
    let t0 = Instant::now();
    let mut c = core("[]", t0);
    let n = speaker_config::parse(
        "asn: 65000\nrouter_id: 198.18.0.1\nneighbors: [{asn: 65001, address: 198.18.0.11, password: s3cret, bfd: {}}]\n",
    )
    .unwrap()
    .neighbors
    .remove(0);
    c.add_neighbor(n.clone(), t0).unwrap();
    let effects = c.take_effects();
    assert!(matches!(
        &effects[..],
        [
            Effect::BfdAdd { .. },
            Effect::Spawn { .. },
            Effect::Session(_, ToSession::Start)
        ]
    ));
    assert!(matches!(
        c.add_neighbor(n, t0),
        Err(crate::request::ApiError::InvalidArgument(_))
    ));
    c.delete_neighbor(addr(11)).unwrap();
    let effects = c.take_effects();
    assert!(matches!(
        &effects[..],
        [
            Effect::Session(_, ToSession::Stop(Some(_))),
            Effect::Forget {
                had_password: true,
                ..
            },
            Effect::BfdRemove(_)
        ]
    ));
    assert!(c.delete_neighbor(addr(11)).is_err());
    assert!(c.neighbor(addr(11)).is_none());
}

#[test]
fn resets_ask_what_the_session_negotiated() {
    let t0 = Instant::now();
    let mut c = core(THREE, t0);
    let (a, b) = (addr(11), addr(12));
    // Not established: only a hard reset, which starts a session held down.
    assert!(c.reset(a, ResetKind::SoftIn, State::Idle).is_err());
    c.reset(a, ResetKind::Hard, State::Idle).unwrap();
    assert_eq!(sessions(&c.take_effects()), [(a, "Start".to_string())]);
    c.reset(a, ResetKind::Hard, State::Established).unwrap();
    let (n, _) = closed_with(&c.take_effects(), a).unwrap();
    assert_eq!(n.subcode, cease_subcode::ADMINISTRATIVE_RESET);

    let mut without = negotiated(65002, None, false);
    without.route_refresh = false;
    let out = establish(&mut c, b, without, t0);
    Reader::default().read(&out);
    assert!(c.reset(b, ResetKind::SoftIn, State::Established).is_err());
    c.add_paths(vec!["198.19.0.0/24".parse().unwrap()], &Default::default());
    c.flush(false);
    Reader::default().read(&out);
    c.reset(b, ResetKind::SoftOut, State::Established).unwrap();
    let mut r = Reader::default();
    r.read(&out);
    assert_eq!(r.table.len(), 1, "the table again");
}

#[test]
fn a_speaker_wide_change_restarts_every_session_on_a_new_rib() {
    let t0 = Instant::now();
    let mut c = core(THREE, t0);
    c.delete_neighbor(addr(13)).unwrap();
    c.take_effects();
    assert!(!c.set_as(65000).unwrap(), "no change, no restart");
    assert!(c.set_max_paths(0).is_err());
    assert!(c.set_as(0).is_err());
    assert!(c.take_effects().is_empty());
    assert!(c.set_as(65100).unwrap());
    let stopped: BTreeSet<IpAddr> = sessions(&c.take_effects())
        .into_iter()
        .map(|(a, cmd)| {
            assert!(cmd.starts_with("Stop"));
            a
        })
        .collect();
    assert_eq!(stopped, BTreeSet::from([addr(11), addr(12)]));
    // The running set (without the deleted neighbour) is what starts again.
    let again: Vec<IpAddr> = c.configured_neighbors().iter().map(|n| n.address).collect();
    assert_eq!(again, [addr(11), addr(12)]);
    assert_eq!(c.info().asn, 65100);
    assert!(c.peers().next().is_none());
}
