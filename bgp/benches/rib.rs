//! RIB cost of relaying a table: 100,000 IPv4 /24s from one eBGP peer to another (a benchmark,
//! not a test; `cargo bench -p sart-bgp --bench rib`).
//!
//! Times `receive` of 100 decoded UPDATEs of 1,000 prefixes plus the `drain` that computes the
//! outbound group changes (once at the end, and after every 4 UPDATEs as the speaker does), and
//! separately the encoding of those changes. Memory per route is
//! printed once: the RIB's own estimate of its heap use from its tables' capacities (the
//! workspace forbids `unsafe`, so no counting allocator), and the process's RSS growth.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // benchmark code

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};

use bgp::attribute::LargeCommunity;
use bgp::attribute::NextHop;
use bgp::rib::{BestReport, ExportParams, PeerConfig, PeerId, Rib, RibConfig};
use bgp::{AsPath, Context, Family, Nlri, Origin, PathAttributes, Update};
use criterion::measurement::WallTime;
use criterion::{
    BatchSize, BenchmarkGroup, Criterion, Throughput, criterion_group, criterion_main,
};
use ipnet::Ipv4Net;

const ROUTES: u32 = 100_000;
const PER_UPDATE: u32 = 1_000;

fn updates() -> Vec<Update> {
    updates_in(|i| i)
}

/// The order a BIRD source sends a table in: its own hash order, so consecutive NLRI are far
/// apart in the DUT's table too (a stride permutation of the prefixes).
fn scattered(i: u32) -> u32 {
    ((u64::from(i) * 48_271) % u64::from(ROUTES)) as u32
}

fn updates_in(order: fn(u32) -> u32) -> Vec<Update> {
    let attrs = PathAttributes {
        origin: Some(Origin::Igp),
        as_path: Some(AsPath::sequence([65001, 65100, 4_200_000_000])),
        next_hop: Some(Ipv4Addr::new(192, 0, 2, 1)),
        med: Some(10),
        ..Default::default()
    };
    (0..ROUTES / PER_UPDATE)
        .map(|u| Update {
            attributes: attrs.clone(),
            nlri: (0..PER_UPDATE)
                .map(|i| Nlri::new(prefix(order(u * PER_UPDATE + i))))
                .collect(),
            ..Default::default()
        })
        .collect()
}

/// One UPDATE per prefix, each with its own large community: nothing shares attributes.
fn distinct_updates() -> Vec<Update> {
    (0..ROUTES)
        .map(|i| Update {
            attributes: PathAttributes {
                origin: Some(Origin::Igp),
                as_path: Some(AsPath::sequence([65001, 65100])),
                next_hop: Some(Ipv4Addr::new(192, 0, 2, 1)),
                large_communities: vec![LargeCommunity {
                    global: 65001,
                    local1: i,
                    local2: 0,
                }],
                ..Default::default()
            },
            nlri: vec![Nlri::new(prefix(i))],
            ..Default::default()
        })
        .collect()
}

fn prefix(i: u32) -> Ipv4Net {
    Ipv4Net::new(Ipv4Addr::from(0x0a00_0000 + (i << 8)), 24).unwrap()
}

/// Withdrawals of every prefix, 1,000 to an UPDATE as a BIRD or FRR source packs them.
fn withdrawals() -> Vec<Update> {
    withdrawals_in(|i| i)
}

fn withdrawals_in(order: fn(u32) -> u32) -> Vec<Update> {
    (0..ROUTES / PER_UPDATE)
        .map(|u| Update {
            withdrawn: (0..PER_UPDATE)
                .map(|i| Nlri::new(prefix(order(u * PER_UPDATE + i))))
                .collect(),
            ..Default::default()
        })
        .collect()
}

/// As the speaker does: a drain after every few UPDATEs.
fn relay_in_batches(rib: &mut Rib, from: PeerId, ups: Vec<Update>) -> usize {
    relay_reporting(rib, from, ups, BestReport::Changes)
}

/// `Count`: as a speaker that has no FIB and no watcher drains.
fn relay_reporting(rib: &mut Rib, from: PeerId, ups: Vec<Update>, report: BestReport) -> usize {
    let mut outs = 0;
    for chunk in ups.chunks(4) {
        for u in chunk {
            rib.receive(from, u.clone(), 1).unwrap();
        }
        outs += rib
            .drain_reporting(report)
            .groups
            .iter()
            .map(|g| g.1.len())
            .sum::<usize>();
    }
    outs
}

fn setup() -> (Rib, PeerId) {
    let mut rib = Rib::new(RibConfig {
        asn: 65000,
        router_id: Ipv4Addr::new(10, 0, 0, 254),
        cluster_id: None,
        decision: Default::default(),
    });
    let params = |local: [u8; 4]| ExportParams {
        send: Context::four_octet(),
        families: [Family::IPV4_UNICAST].into_iter().collect(),
        next_hop_v4: Some(NextHop::V4(Ipv4Addr::from(local))),
        next_hop_v6: None,
        extended_next_hop: false,
        next_hop_self: false,
        export: Default::default(),
    };
    let mut add = |asn: u32, n: u8| {
        let id = rib
            .add_peer(PeerConfig {
                asn,
                address: IpAddr::V4(Ipv4Addr::new(192, 0, 2, n)),
                rr_client: false,
                max_prefixes: None,
                import: Default::default(),
            })
            .unwrap();
        rib.establish(id, Ipv4Addr::new(10, 0, 0, n), params([192, 0, 2, 254]))
            .unwrap();
        id
    };
    let a = add(65001, 1);
    add(65002, 2);
    (rib, a)
}

fn load(rib: &mut Rib, from: PeerId, ups: Vec<Update>) -> bgp::rib::Drained {
    for u in ups {
        rib.receive(from, u, 1).unwrap();
    }
    rib.drain()
}

fn rss_bytes() -> usize {
    let s = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: usize = s
        .split_whitespace()
        .nth(1)
        .and_then(|x| x.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

fn report_memory() {
    let ups = updates();
    let (mut rib, a) = setup();
    let before = rss_bytes();
    drop(load(&mut rib, a, ups));
    let after = rss_bytes();
    let est = rib.heap_estimate();
    // RSS growth is an upper bound: glibc keeps freed transient memory (pending changes, the
    // drained output) in its heap. The estimate counts the RIB's live structures.
    eprintln!(
        "rib memory for {ROUTES} routes relayed eBGP->eBGP: estimate {} bytes/route \
         (RSS growth incl. freed transients {} bytes/route; {} interned attribute sets, \
         {} update groups)",
        est / ROUTES as usize,
        (after.saturating_sub(before)) / ROUTES as usize,
        rib.interned_count(),
        rib.group_count(),
    );
}

/// Times relaying `ups` into a fresh RIB, a drain after every 4 UPDATEs as the speaker does.
fn bench_relay(
    g: &mut BenchmarkGroup<'_, WallTime>,
    name: &str,
    ups: &[Update],
    report: BestReport,
) {
    g.bench_function(name, |b| {
        b.iter_batched(
            || (setup(), ups.to_vec()),
            // The RIB is returned so that dropping it is not timed.
            |((mut rib, a), ups)| {
                let n = relay_reporting(&mut rib, a, ups, report);
                black_box((rib, n))
            },
            BatchSize::LargeInput,
        )
    });
}

/// Times withdrawing `gone` (drains as in [`bench_relay`]) from a RIB that `fill` loaded.
fn bench_withdraw(
    g: &mut BenchmarkGroup<'_, WallTime>,
    name: &str,
    gone: &[Update],
    fill: impl Fn(&mut Rib, PeerId),
) {
    g.bench_function(name, |b| {
        b.iter_batched(
            || {
                let (mut rib, a) = setup();
                fill(&mut rib, a);
                (rib, a, gone.to_vec())
            },
            |(mut rib, a, ups)| {
                let n = relay_in_batches(&mut rib, a, ups);
                black_box((rib, n))
            },
            BatchSize::LargeInput,
        )
    });
}

fn bench(c: &mut Criterion) {
    report_memory();
    let ups = updates();
    let mut g = c.benchmark_group("rib");
    g.sample_size(20);
    g.throughput(Throughput::Elements(u64::from(ROUTES)));
    g.bench_function("relay_100k_v4_receive_and_drain", |b| {
        b.iter_batched(
            || (setup(), ups.clone()),
            // The RIB is returned so that dropping it is not timed.
            |((mut rib, a), ups)| {
                let d = load(&mut rib, a, ups);
                black_box((rib, d))
            },
            BatchSize::LargeInput,
        )
    });
    // As the speaker relays: a drain after at most 4,096 prefixes (here 4 UPDATEs of 1,000).
    bench_relay(
        &mut g,
        "relay_100k_v4_receive_and_drain_batched",
        &ups,
        BestReport::Changes,
    );
    let gone = withdrawals();
    bench_withdraw(&mut g, "withdraw_100k_v4_and_drain", &gone, |rib, a| {
        load(rib, a, ups.clone());
    });
    // The same in a BIRD source's order.
    let (ups_s, gone_s) = (updates_in(scattered), withdrawals_in(scattered));
    bench_relay(
        &mut g,
        "relay_100k_v4_scattered_receive_and_drain_batched",
        &ups_s,
        BestReport::Changes,
    );
    bench_relay(
        &mut g,
        "relay_100k_v4_scattered_counting_batched",
        &ups_s,
        BestReport::Count,
    );
    bench_withdraw(
        &mut g,
        "withdraw_100k_v4_scattered_and_drain",
        &gone_s,
        |rib, a| {
            load(rib, a, ups_s.clone());
        },
    );
    let (mut rib, a) = setup();
    let d = load(&mut rib, a, ups.clone());
    let ctx = Context::four_octet();
    g.bench_function("relay_100k_v4_encode_group_updates", |b| {
        b.iter(|| {
            let mut n = 0;
            for (_, out) in &d.groups {
                for u in out {
                    n += u.encode_split(&ctx).unwrap().len();
                }
            }
            black_box(n)
        })
    });
    g.bench_function("full_table_for_new_peer_100k", |b| {
        b.iter(|| black_box(rib.group_table(d.groups[0].0).unwrap()))
    });
    // 100,000 distinct attribute sets: announced one to an UPDATE, withdrawn 1,000 to one,
    // drained every 4 UPDATEs as the speaker does.
    let distinct = distinct_updates();
    g.sample_size(10);
    bench_relay(
        &mut g,
        "relay_100k_distinct_receive_and_drain",
        &distinct,
        BestReport::Changes,
    );
    bench_withdraw(
        &mut g,
        "withdraw_100k_distinct_and_drain",
        &gone,
        |rib, a| {
            relay_in_batches(rib, a, distinct.clone());
        },
    );
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
