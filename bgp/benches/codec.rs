//! Codec throughput on realistic UPDATEs (a benchmark, not a test; `make bench`).
//! Results go to docs/benchmarks.md in prefixes per second on one core.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // benchmark code

use std::hint::black_box;
use std::net::{Ipv4Addr, Ipv6Addr};

use bgp::attribute::{Community, ExtCommunity, Ipv6NextHop, LargeCommunity, MpReach};
use bgp::{AsPath, Context, Message, Nlri, Origin, PathAttributes, Update};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ipnet::{Ipv4Net, Ipv6Net};

fn plain_attrs() -> PathAttributes {
    PathAttributes {
        origin: Some(Origin::Igp),
        as_path: Some(AsPath::sequence([65001, 65002, 4_200_000_000])),
        next_hop: Some(Ipv4Addr::new(198, 18, 0, 1)),
        med: Some(10),
        ..Default::default()
    }
}

fn heavy_attrs() -> PathAttributes {
    PathAttributes {
        communities: (0..40).map(|i| Community::new(65001, i)).collect(),
        large_communities: (0..10)
            .map(|i| LargeCommunity {
                global: 4_200_000_000,
                local1: i,
                local2: i * 7,
            })
            .collect(),
        ext_communities: (0..8)
            .map(|i| ExtCommunity::route_target(65001, i))
            .collect(),
        as_path: Some(AsPath::sequence((0..12).map(|i| 4_200_000_000 + i))),
        local_pref: Some(200),
        ..plain_attrs()
    }
}

fn v4_prefixes(n: u32) -> Vec<Nlri<Ipv4Net>> {
    (0..n)
        .map(|i| Nlri::new(Ipv4Net::new(Ipv4Addr::from(0x6400_0000 + (i << 8)), 24).unwrap()))
        .collect()
}

fn v6_prefixes(n: u32) -> Vec<Nlri<Ipv6Net>> {
    (0..n)
        .map(|i| {
            let a = 0xfd00_0000_0000_0000_0000_0000_0000_0000u128 | (u128::from(i) << 80);
            Nlri::new(Ipv6Net::new(Ipv6Addr::from(a), 48).unwrap())
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let ctx = Context::four_octet();
    let mut g = c.benchmark_group("decode");

    // 1,000 IPv4 /24s in one 4 KiB UPDATE.
    let msg = Message::Update(Update {
        attributes: plain_attrs(),
        nlri: v4_prefixes(1000),
        ..Default::default()
    })
    .encode(&ctx)
    .unwrap();
    g.throughput(Throughput::Elements(1000));
    g.bench_function("ipv4_1k_per_update", |b| {
        b.iter(|| Message::decode(black_box(&msg), &ctx).unwrap())
    });

    let v6 = Update {
        attributes: PathAttributes {
            next_hop: None,
            ..plain_attrs()
        },
        mp_reach: Some(MpReach::Ipv6Unicast {
            next_hop: Ipv6NextHop {
                global: "fd00::1".parse().unwrap(),
                link_local: Some("fe80::1".parse().unwrap()),
            },
            nlri: v6_prefixes(500),
        }),
        ..Default::default()
    };
    let msg = Message::Update(v6.clone()).encode(&ctx).unwrap();
    g.throughput(Throughput::Elements(500));
    g.bench_function("ipv6_500_per_update", |b| {
        b.iter(|| Message::decode(black_box(&msg), &ctx).unwrap())
    });

    let msg = Message::Update(Update {
        attributes: heavy_attrs(),
        nlri: v4_prefixes(100),
        ..Default::default()
    })
    .encode(&ctx)
    .unwrap();
    g.throughput(Throughput::Elements(100));
    g.bench_function("attribute_heavy_100_per_update", |b| {
        b.iter(|| Message::decode(black_box(&msg), &ctx).unwrap())
    });
    g.finish();

    let mut g = c.benchmark_group("encode");
    let big = Update {
        attributes: plain_attrs(),
        nlri: v4_prefixes(100_000),
        ..Default::default()
    };
    g.throughput(Throughput::Elements(100_000));
    g.bench_function("ipv4_100k_packed", |b| {
        b.iter(|| black_box(&big).encode_split(&ctx).unwrap())
    });
    let big6 = Update {
        mp_reach: Some(MpReach::Ipv6Unicast {
            next_hop: Ipv6NextHop {
                global: "fd00::1".parse().unwrap(),
                link_local: None,
            },
            nlri: v6_prefixes(100_000),
        }),
        ..v6
    };
    g.bench_function("ipv6_100k_packed", |b| {
        b.iter(|| black_box(&big6).encode_split(&ctx).unwrap())
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(std::time::Duration::from_secs(3));
    targets = bench
}
criterion_main!(benches);
