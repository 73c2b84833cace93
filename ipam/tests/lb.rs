#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::net::IpAddr;

use ipam::IpFamily::{Ipv4, Ipv6};
use ipam::lb::{
    Allocator, FamilyPolicy, Holder, L4Protocol, LbError, LbPool, LbRequest, ServiceKey,
};

type Got = Result<Vec<IpAddr>, LbError>;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn ips(list: &[&str]) -> Vec<IpAddr> {
    list.iter().map(|s| ip(s)).collect()
}

fn ok(list: &[&str]) -> Got {
    Ok(ips(list))
}

fn exhausted(pool: &str) -> Got {
    Err(LbError::PoolExhausted { pool: pool.into() })
}

fn taken(addr: &str, by: &str) -> Got {
    Err(LbError::RequestedIpTaken {
        ip: ip(addr),
        by: Holder::Service(svc(by)),
    })
}

fn no_pool(family: ipam::IpFamily) -> Got {
    Err(LbError::NoPool { family })
}

fn pool(name: &str, cidr: &str, auto_assign: bool) -> LbPool {
    LbPool {
        name: name.into(),
        cidr: cidr.parse().unwrap(),
        auto_assign,
        selective: false,
    }
}

fn svc(name: &str) -> ServiceKey {
    ServiceKey::new("default", name)
}

fn put(a: &mut Allocator, name: &str, request: LbRequest) -> Got {
    a.assign(&svc(name), request)
}

fn held(a: &Allocator, name: &str) -> Vec<IpAddr> {
    a.ips(&svc(name)).unwrap_or_default().to_vec()
}

fn v4() -> LbRequest {
    LbRequest::new(FamilyPolicy::Single(Ipv4))
}

fn family(families: FamilyPolicy) -> LbRequest {
    LbRequest::new(families)
}

fn with_pools(mut r: LbRequest, pools: &[&str]) -> LbRequest {
    r.pools = pools.iter().map(|p| p.to_string()).collect();
    r
}

fn with_ips(mut r: LbRequest, list: &[&str]) -> LbRequest {
    r.ips = ips(list);
    r
}

fn shared(mut r: LbRequest, key: &str, ports: &[u16]) -> LbRequest {
    r.sharing_key = Some(key.into());
    r.ports = ports.iter().map(|p| (L4Protocol::Tcp, *p)).collect();
    r
}

/// sart's sample pools plus an IPv6 one.
fn sample() -> Allocator {
    Allocator::new(vec![
        pool("default-lb-pool", "10.0.1.0/24", true),
        pool("non-default-lb-pool", "10.0.100.0/24", false),
        pool("v6", "fd00:1::/64", true),
    ])
    .unwrap()
}

#[test]
fn lowest_address_first_from_the_network_address() {
    let mut a = sample();
    assert_eq!(put(&mut a, "a", v4()), ok(&["10.0.1.0"]));
    assert_eq!(put(&mut a, "b", v4()), ok(&["10.0.1.1"]));
    assert_eq!(a.release(&svc("a")), ips(&["10.0.1.0"]));
    assert_eq!(put(&mut a, "c", v4()), ok(&["10.0.1.0"]));
    assert_eq!(held(&a, "b"), ips(&["10.0.1.1"]));
}

#[test]
fn assign_is_idempotent() {
    let mut a = sample();
    let first = put(&mut a, "a", v4());
    put(&mut a, "b", v4()).unwrap();
    let before = a.clone();
    assert_eq!(put(&mut a, "a", v4()), first);
    assert_eq!(a, before);
}

#[test]
fn families() {
    let mut a = sample();
    let dual = family(FamilyPolicy::RequireDual(Ipv6));
    assert_eq!(put(&mut a, "d", dual), ok(&["10.0.1.0", "fd00:1::"]));
    let v6 = family(FamilyPolicy::Single(Ipv6));
    assert_eq!(put(&mut a, "s6", v6), ok(&["fd00:1::1"]));

    let mut b = Allocator::new(vec![pool("p", "10.0.1.0/24", true)]).unwrap();
    let prefer = family(FamilyPolicy::PreferDual(Ipv6));
    assert_eq!(put(&mut b, "p", prefer.clone()), ok(&["10.0.1.0"]));
    let require = family(FamilyPolicy::RequireDual(Ipv4));
    assert_eq!(put(&mut b, "r", require), no_pool(Ipv6));
    assert_eq!(
        put(&mut b, "s", family(FamilyPolicy::Single(Ipv6))),
        no_pool(Ipv6)
    );
    let mut none = Allocator::new(vec![]).unwrap();
    assert_eq!(put(&mut none, "p", prefer), no_pool(Ipv6));
}

#[test]
fn listed_pools_give_one_address_each() {
    let mut a = sample();
    let r = with_pools(v4(), &["non-default-lb-pool"]);
    assert_eq!(put(&mut a, "a", r), ok(&["10.0.100.0"]));
    // Adding a pool keeps the address already held.
    let r = with_pools(v4(), &["default-lb-pool", "non-default-lb-pool"]);
    assert_eq!(put(&mut a, "a", r), ok(&["10.0.1.0", "10.0.100.0"]));
    // Switching pools moves the address; the old one is free again.
    let r = with_pools(v4(), &["default-lb-pool"]);
    assert_eq!(put(&mut a, "a", r), ok(&["10.0.1.0"]));
    assert_eq!(a.holders(ip("10.0.100.0")).count(), 0);
    // A listed IPv6 pool is skipped by an IPv4-only Service and used by a dual-stack one.
    let r = with_pools(v4(), &["default-lb-pool", "v6"]);
    assert_eq!(put(&mut a, "a", r.clone()), ok(&["10.0.1.0"]));
    let dual = LbRequest {
        families: FamilyPolicy::RequireDual(Ipv4),
        ..r
    };
    assert_eq!(put(&mut a, "a", dual), ok(&["10.0.1.0", "fd00:1::"]));
    assert_eq!(put(&mut a, "b", with_pools(v4(), &["v6"])), no_pool(Ipv4));
    let unknown = Err(LbError::UnknownPool {
        pool: "nope".into(),
    });
    assert_eq!(put(&mut a, "b", with_pools(v4(), &["nope"])), unknown);
}

#[test]
fn several_auto_assign_pools_lowest_name_wins() {
    let pools = vec![
        pool("zz", "10.0.2.0/24", true),
        pool("aa", "10.0.3.0/24", true),
    ];
    let mut a = Allocator::new(pools).unwrap();
    assert_eq!(put(&mut a, "a", v4()), ok(&["10.0.3.0"]));
    // A requested address may come from any auto-assign pool.
    assert_eq!(
        put(&mut a, "b", with_ips(v4(), &["10.0.2.9"])),
        ok(&["10.0.2.9"])
    );
}

#[test]
fn requested_addresses() {
    let mut a = sample();
    let r = with_ips(with_pools(v4(), &["non-default-lb-pool"]), &["10.0.100.20"]);
    assert_eq!(put(&mut a, "a", r.clone()), ok(&["10.0.100.20"]));
    assert_eq!(put(&mut a, "a", r.clone()), ok(&["10.0.100.20"]));
    assert_eq!(put(&mut a, "b", r), taken("10.0.100.20", "a"));
    // Not in an allowed pool: the non-auto pool without listing it, or outside every pool.
    for addr in ["10.0.100.5", "192.0.2.1"] {
        let not_in_pool = Err(LbError::NotInPool { ip: ip(addr) });
        assert_eq!(put(&mut a, "b", with_ips(v4(), &[addr])), not_in_pool);
    }
    // A requested address stands in for its family's automatic one; the other family gets one.
    let r = with_ips(family(FamilyPolicy::PreferDual(Ipv4)), &["10.0.1.7"]);
    assert_eq!(put(&mut a, "c", r), ok(&["10.0.1.7", "fd00:1::"]));
    // Changing the requested address moves the Service.
    assert_eq!(
        put(&mut a, "d", with_ips(v4(), &["10.0.1.8"])),
        ok(&["10.0.1.8"])
    );
    assert_eq!(
        put(&mut a, "d", with_ips(v4(), &["10.0.1.9"])),
        ok(&["10.0.1.9"])
    );
    assert_eq!(a.holders(ip("10.0.1.8")).count(), 0);
}

#[test]
fn exhaustion_is_an_error_and_changes_nothing() {
    let pools = vec![
        pool("tiny", "10.0.0.0/31", true),
        pool("one", "10.9.0.1/32", false),
    ];
    let mut a = Allocator::new(pools).unwrap();
    put(&mut a, "a", v4()).unwrap();
    put(&mut a, "b", v4()).unwrap();
    let before = a.clone();
    assert_eq!(put(&mut a, "c", v4()), exhausted("tiny"));
    assert_eq!(
        put(&mut a, "c", with_pools(v4(), &["one", "tiny"])),
        exhausted("tiny")
    );
    assert_eq!(a, before);
    assert_eq!(
        put(&mut a, "c", with_pools(v4(), &["one"])),
        ok(&["10.9.0.1"])
    );
    assert_eq!(
        put(&mut a, "d", with_pools(v4(), &["one"])),
        exhausted("one")
    );
    // A failed change leaves the Service with what it had.
    assert_eq!(
        put(&mut a, "a", with_pools(v4(), &["one"])),
        exhausted("one")
    );
    assert_eq!(held(&a, "a"), ips(&["10.0.0.0"]));
}

#[test]
fn sharing_follows_metallb() {
    let mut a = sample();
    assert_eq!(
        put(&mut a, "dns-tcp", shared(v4(), "dns", &[53])),
        ok(&["10.0.1.0"])
    );
    // Same key, other ports: joins the shared address.
    let mut udp = shared(v4(), "dns", &[]);
    udp.ports = BTreeSet::from([(L4Protocol::Udp, 53)]);
    assert_eq!(put(&mut a, "dns-udp", udp), ok(&["10.0.1.0"]));
    // Same key, a common port: its own address.
    assert_eq!(
        put(&mut a, "dns-tcp2", shared(v4(), "dns", &[53])),
        ok(&["10.0.1.1"])
    );
    // Other key or no key: its own address; asking for the shared one fails.
    assert_eq!(
        put(&mut a, "web", shared(v4(), "web", &[80])),
        ok(&["10.0.1.2"])
    );
    let r = with_ips(v4(), &["10.0.1.0"]);
    assert_eq!(put(&mut a, "x", r), taken("10.0.1.0", "dns-tcp"));
    // externalTrafficPolicy Local needs the same selector.
    let mut local = shared(v4(), "web", &[443]);
    local.local_selector = Some("app=web".into());
    assert_eq!(put(&mut a, "web-local", local), ok(&["10.0.1.3"]));
    // An empty key never shares.
    assert_eq!(put(&mut a, "e1", shared(v4(), "", &[1])), ok(&["10.0.1.4"]));
    assert_eq!(put(&mut a, "e2", shared(v4(), "", &[2])), ok(&["10.0.1.5"]));
    // A shared address is freed by its last holder only.
    a.release(&svc("dns-tcp"));
    assert_eq!(
        a.holders(ip("10.0.1.0")).collect::<Vec<_>>(),
        vec![&svc("dns-udp")]
    );
    a.release(&svc("dns-udp"));
    assert_eq!(put(&mut a, "y", v4()), ok(&["10.0.1.0"]));
}

#[test]
fn a_port_change_that_breaks_sharing_moves_the_service() {
    let mut a = sample();
    put(&mut a, "a", shared(v4(), "k", &[80])).unwrap();
    assert_eq!(
        put(&mut a, "b", shared(v4(), "k", &[443])),
        ok(&["10.0.1.0"])
    );
    assert_eq!(
        put(&mut a, "b", shared(v4(), "k", &[80, 443])),
        ok(&["10.0.1.1"])
    );
    assert_eq!(held(&a, "a"), ips(&["10.0.1.0"]));
}

#[test]
fn restore_keeps_every_address_and_reports_conflicts() {
    let mut a = sample();
    // Restored addresses stay, even outside every pool or not the lowest.
    a.restore(&svc("a"), v4(), &ips(&["10.0.1.5"])).unwrap();
    a.restore(&svc("old"), v4(), &ips(&["192.0.2.1"])).unwrap();
    assert_eq!(put(&mut a, "a", v4()), ok(&["10.0.1.5"]));
    assert_eq!(put(&mut a, "b", v4()), ok(&["10.0.1.0"]));
    // Two Services on one address that may not share: the first keeps it.
    let e = a.restore(&svc("c"), v4(), &ips(&["10.0.1.5", "10.0.1.6"]));
    assert_eq!(
        e,
        Err(LbError::RestoreConflict {
            ip: ip("10.0.1.5"),
            by: Holder::Service(svc("a"))
        })
    );
    assert_eq!(held(&a, "c"), ips(&["10.0.1.6"]));
    assert_eq!(held(&a, "a"), ips(&["10.0.1.5"]));
    // Services that may share restore side by side.
    for (name, port) in [("s1", 1), ("s2", 2)] {
        a.restore(&svc(name), shared(v4(), "k", &[port]), &ips(&["10.0.1.9"]))
            .unwrap();
    }
    assert_eq!(a.holders(ip("10.0.1.9")).count(), 2);
    // The orphan keeps its address until it is assigned again.
    assert_eq!(a.orphans(), vec![(svc("old"), ip("192.0.2.1"))]);
    assert_eq!(put(&mut a, "old", v4()), ok(&["10.0.1.1"]));
    assert_eq!(a.orphans(), vec![]);
}

#[test]
fn pool_changes_move_nothing_until_reassigned() {
    let mut a = sample();
    put(&mut a, "a", v4()).unwrap();
    put(&mut a, "b", with_pools(v4(), &["non-default-lb-pool"])).unwrap();
    a.set_pools(vec![pool("default-lb-pool", "10.0.1.0/24", true)])
        .unwrap();
    assert_eq!(a.orphans(), vec![(svc("b"), ip("10.0.100.0"))]);
    assert_eq!(put(&mut a, "a", v4()), ok(&["10.0.1.0"]));
    let r = with_pools(v4(), &["non-default-lb-pool"]);
    let unknown = Err(LbError::UnknownPool {
        pool: "non-default-lb-pool".into(),
    });
    assert_eq!(put(&mut a, "b", r), unknown);
    assert_eq!(held(&a, "b"), ips(&["10.0.100.0"]));
    // Another auto-assign pool with a lower name takes new Services; old ones stay.
    let pools = vec![
        pool("default-lb-pool", "10.0.1.0/24", true),
        pool("a", "10.0.7.0/24", true),
    ];
    a.set_pools(pools).unwrap();
    assert_eq!(put(&mut a, "a", v4()), ok(&["10.0.1.0"]));
    assert_eq!(put(&mut a, "c", v4()), ok(&["10.0.7.0"]));
}

#[test]
fn invalid_pools() {
    let pools = vec![
        pool("p", "10.0.1.0/24", true),
        pool("p", "10.0.2.0/24", true),
    ];
    assert_eq!(
        Allocator::new(pools),
        Err(LbError::DuplicatePool { pool: "p".into() })
    );
    let e = Allocator::new(vec![pool("p", "10.0.1.1/24", true)]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "address pool \"p\": CIDR 10.0.1.1/24 has host bits set"
    );
    let mut a = sample();
    assert!(a.set_pools(vec![pool("p", "10.0.1.1/24", true)]).is_err());
    assert_eq!(a.pools().count(), 3);
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    /// Small pools so that exhaustion and sharing happen often; "big" overlaps "small".
    fn pools() -> Vec<LbPool> {
        vec![
            pool("auto4", "10.0.0.0/30", true),
            pool("big", "10.1.0.0/29", false),
            pool("small", "10.1.0.4/30", false),
            pool("auto6", "fd00::/126", true),
        ]
    }

    const NAMES: [&str; 5] = ["auto4", "big", "small", "auto6", "missing"];
    const IPS: [&str; 6] = [
        "10.0.0.1",
        "10.1.0.5",
        "10.1.0.0",
        "fd00::2",
        "192.0.2.1",
        "10.0.0.3",
    ];

    fn request() -> impl Strategy<Value = LbRequest> {
        let family = prop_oneof![3 => Just(Ipv4), 1 => Just(Ipv6)];
        let policy = (0..4u8, family).prop_map(|(k, f)| match k {
            0 | 1 => FamilyPolicy::Single(f),
            2 => FamilyPolicy::PreferDual(f),
            _ => FamilyPolicy::RequireDual(f),
        });
        let name = prop_oneof![9 => prop::sample::select(&NAMES[..4]), 1 => Just(NAMES[4])];
        let pools = prop_oneof![2 => Just(vec![]), 1 => prop::collection::vec(name, 1..3)];
        let addr = prop::sample::select(&IPS[..]);
        let requested = prop_oneof![3 => Just(vec![]), 1 => prop::collection::vec(addr, 1..3)];
        let other_key = prop::sample::select(&["j", ""][..]).prop_map(Some);
        let key = prop_oneof![1 => Just(None), 2 => Just(Some("k")), 1 => other_key];
        let port = (
            prop_oneof![Just(L4Protocol::Tcp), Just(L4Protocol::Udp)],
            1..4u16,
        );
        let ports = prop::collection::btree_set(port, 0..3);
        let selector = prop::sample::select(&["a", "b"][..]).prop_map(Some);
        let local = prop_oneof![3 => Just(None), 1 => selector];
        (policy, pools, requested, key, ports, local).prop_map(
            |(families, pools, list, key, ports, local)| LbRequest {
                families,
                pools: pools.into_iter().map(String::from).collect(),
                ips: ips(&list),
                sharing_key: key.map(String::from),
                ports,
                local_selector: local.map(String::from),
                allowed_pools: None,
            },
        )
    }

    #[derive(Debug, Clone)]
    enum Op {
        Assign(usize, LbRequest),
        Release(usize),
        Restart(u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => (0..6usize, request()).prop_map(|(s, r)| Op::Assign(s, r)),
            2 => (0..6usize).prop_map(Op::Release),
            1 => any::<u64>().prop_map(Op::Restart),
        ]
    }

    fn key(i: usize) -> ServiceKey {
        ServiceKey::new("ns", format!("s{i}"))
    }

    /// Every pair of holders of an address may share it under their current requests.
    fn check_sharing(a: &Allocator) -> Result<(), TestCaseError> {
        for (k, held) in a.services() {
            for &ip in held {
                for other in a.holders(ip).filter(|o| *o != k) {
                    let (r1, r2) = (a.request(k).unwrap(), a.request(other).unwrap());
                    prop_assert!(r1.can_share_with(r2), "{k} and {other} share {ip}");
                }
                prop_assert!(a.holders(ip).any(|h| h == k));
            }
        }
        Ok(())
    }

    /// A controller restart: a fresh allocator with the same pools, every Service restored in a
    /// shuffled order.
    fn restart(a: &Allocator, seed: u64) -> Allocator {
        let mut services: Vec<(ServiceKey, LbRequest, Vec<IpAddr>)> = a
            .services()
            .map(|(k, ips)| (k.clone(), a.request(k).unwrap().clone(), ips.to_vec()))
            .collect();
        let mut state = seed;
        for i in (1..services.len()).rev() {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            services.swap(i, (state >> 33) as usize % (i + 1));
        }
        let mut fresh = Allocator::new(a.pools().cloned().collect()).unwrap();
        for (k, r, ips) in services {
            fresh.restore(&k, r, &ips).unwrap();
        }
        fresh
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]
        #[test]
        fn allocator_invariants(ops in prop::collection::vec(op(), 1..40)) {
            let mut a = Allocator::new(pools()).unwrap();
            for op in ops {
                match op {
                    Op::Assign(s, r) => {
                        let before = a.clone();
                        match a.assign(&key(s), r.clone()) {
                            Ok(got) => {
                                prop_assert!(!got.is_empty());
                                prop_assert_eq!(a.ips(&key(s)), Some(&got[..]));
                                for ip in &r.ips {
                                    prop_assert!(got.contains(ip));
                                }
                                let after = a.clone();
                                let again = a.assign(&key(s), r);
                                prop_assert_eq!(again, Ok(got), "not idempotent");
                                prop_assert_eq!(&a, &after);
                            }
                            Err(e) => {
                                prop_assert_eq!(&a, &before, "failed assign changed state");
                                if let LbError::PoolExhausted { pool } = e {
                                    let p = a.pools().find(|p| p.name == pool).unwrap().cidr;
                                    for ip in p.hosts().chain([p.network(), p.broadcast()]) {
                                        let others = a.holders(ip).any(|h| *h != key(s));
                                        prop_assert!(others, "{} free in {}", ip, pool);
                                    }
                                }
                            }
                        }
                    }
                    Op::Release(s) => {
                        let released = a.release(&key(s));
                        prop_assert_eq!(a.ips(&key(s)), None);
                        for ip in released {
                            prop_assert!(a.holders(ip).all(|h| *h != key(s)));
                            let Some(pool) = a.pools().find(|p| p.cidr.contains(&ip)) else {
                                continue;
                            };
                            if a.holders(ip).count() == 0 {
                                // Free again: a newcomer asking for it gets it.
                                let family = if ip.is_ipv4() { Ipv4 } else { Ipv6 };
                                let r = LbRequest {
                                    pools: vec![pool.name.clone()],
                                    ips: vec![ip],
                                    ..LbRequest::new(FamilyPolicy::Single(family))
                                };
                                let got = a.clone().assign(&ServiceKey::new("probe", "p"), r);
                                prop_assert_eq!(got, Ok(vec![ip]));
                            }
                        }
                    }
                    Op::Restart(seed) => {
                        let fresh = restart(&a, seed);
                        prop_assert_eq!(&fresh, &a, "restart changed state");
                        a = fresh;
                    }
                }
                check_sharing(&a)?;
            }
        }
    }
}

/// Pools fenced by namespaceSelector, as the controller hands them over: the pools a
/// namespace may use in the request, selective pools marked.
#[test]
fn namespaces_use_only_their_pools_share_only_among_themselves_and_learn_nothing_of_others() {
    let mut tenant = pool("tenant-a", "10.0.2.0/24", true);
    tenant.selective = true;
    let mut a = Allocator::new(vec![
        pool("default-lb-pool", "10.0.1.0/24", true),
        tenant,
        pool("non-default-lb-pool", "10.0.100.0/24", false),
    ])
    .unwrap();
    let in_ns = |ns: &str, name: &str| ServiceKey::new(ns, name);
    let allow = |mut r: LbRequest, pools: &[&str]| {
        r.allowed_pools = Some(pools.iter().map(|p| p.to_string()).collect());
        r
    };
    let a_pools = ["default-lb-pool", "tenant-a", "non-default-lb-pool"];
    let b_pools = ["default-lb-pool", "non-default-lb-pool"];
    // Auto: a's own pool before the one for everybody; b never gets it.
    assert_eq!(
        a.assign(&in_ns("a", "web"), allow(v4(), &a_pools)),
        ok(&["10.0.2.0"])
    );
    assert_eq!(
        a.assign(&in_ns("b", "web"), allow(v4(), &b_pools)),
        ok(&["10.0.1.0"])
    );
    // Named, or by address: refused, naming only the pool.
    let refused = Err(LbError::PoolNotAllowed {
        pool: "tenant-a".into(),
        namespace: "b".into(),
    });
    let named = allow(with_pools(v4(), &["tenant-a"]), &b_pools);
    assert_eq!(a.assign(&in_ns("b", "named"), named), refused);
    let squat = allow(with_ips(v4(), &["10.0.2.9"]), &b_pools);
    assert_eq!(a.assign(&in_ns("b", "squat"), squat), refused);
    assert_eq!(
        a.ips(&in_ns("b", "squat")),
        None,
        "nothing held after a refusal"
    );
    // a's address: b cannot take it, nor join it with a's sharing key, and is not told whose.
    let shared_a = allow(shared(v4(), "k", &[80]), &a_pools);
    assert_eq!(
        a.assign(&in_ns("a", "dns"), shared_a.clone()),
        ok(&["10.0.2.1"])
    );
    let grab = allow(with_ips(shared(v4(), "k", &[53]), &["10.0.1.0"]), &b_pools);
    assert_eq!(
        a.assign(
            &in_ns("a", "grab"),
            allow(with_ips(v4(), &["10.0.1.0"]), &a_pools)
        ),
        Err(LbError::RequestedIpTaken {
            ip: ip("10.0.1.0"),
            by: Holder::OtherNamespace
        })
    );
    let err = a.assign(&in_ns("b", "grab"), grab.clone()).unwrap_err();
    assert!(!err.to_string().contains("a/"), "{err}");
    let join = allow(shared(v4(), "k", &[53]), &a_pools);
    assert_eq!(a.assign(&in_ns("a", "dns-udp"), join), ok(&["10.0.2.1"]));
    let join_b = allow(
        with_pools(shared(v4(), "k", &[54]), &["default-lb-pool"]),
        &b_pools,
    );
    assert_eq!(
        a.assign(&in_ns("b", "dns"), join_b),
        ok(&["10.0.1.1"]),
        "the same key in another namespace shares nothing"
    );
    let e = a
        .assign(
            &in_ns("b", "x"),
            allow(with_ips(shared(v4(), "k", &[55]), &["10.0.2.1"]), &b_pools),
        )
        .unwrap_err();
    assert_eq!(
        e,
        LbError::PoolNotAllowed {
            pool: "tenant-a".into(),
            namespace: "b".into()
        }
    );
    // A namespace taken off a pool: the Service that named it (or asked for an address in it)
    // is refused and lets go of what it had there.
    let named_a = allow(with_pools(v4(), &["tenant-a"]), &a_pools);
    let had = a.assign(&in_ns("a", "named"), named_a).unwrap();
    let now_refused = allow(with_pools(v4(), &["tenant-a"]), &b_pools);
    assert!(matches!(
        a.assign(&in_ns("a", "named"), now_refused.clone()),
        Err(LbError::PoolNotAllowed { .. })
    ));
    assert_eq!(
        a.ips(&in_ns("a", "named")),
        Some(&had[..]),
        "a refusal changes nothing"
    );
    assert!(
        a.retain_allowed(&in_ns("a", "named"), &now_refused)
            .is_empty()
    );
    assert_eq!(a.holders(had[0]).count(), 0, "free again");
    // Restoring b onto a's address (a bad status): a keeps it, b is told nothing of a.
    let e = a.restore(&in_ns("b", "old"), v4(), &ips(&["10.0.2.0"]));
    assert_eq!(
        e,
        Err(LbError::RestoreConflict {
            ip: ip("10.0.2.0"),
            by: Holder::OtherNamespace
        })
    );
}
