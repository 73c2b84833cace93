//! Pod pools, as pure functions: which block answers a BlockRequest, and which peers announce a
//! node's block. The I/O is in [`super::pod_block`].
//!
//! A block is named `<pool>-<index>`, so two writers (a restarted controller, a cache that is
//! behind) can never create two blocks over the same addresses: the second create is refused
//! by the API server. The request a block answers is recorded on it ([`REQUEST_ANNOTATION`](k8s::crd::address_block::REQUEST_ANNOTATION)),
//! so a request is never served twice.
//!
//! A request may name one address (a pod's static address). The node then gets the block
//! holding it if no node has that block; else a host block of that one address, named
//! `<pool>-host-<address>` (so one address is lent once), which the holder of the block lends.

use std::collections::BTreeSet;
use std::net::IpAddr;

use ipam::BlockAllocator;
use ipnet::IpNet;
use kube::ResourceExt;

use k8s::crd::address_block::{REQUEST_ANNOTATION, host_block_name};
use k8s::crd::{AddressBlock, AddressType, BGPPeer, BlockRequest};
use k8s::pools::{Refusal as PoolRefusal, ValidPool};

/// The block to create for a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct NewBlock {
    pub name: String,
    pub index: u128,
    pub cidr: IpNet,
    pub pool: String,
    pub node: String,
    pub auto_assign: bool,
    /// A host block: the block whose holder lends the address, and that holder.
    pub lent: Option<Lender>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Lender {
    pub block: String,
    pub node: String,
}

/// Why a request cannot be served now; `reason()` goes into its condition and an Event.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Refusal {
    #[error("AddressPool {0} does not exist")]
    UnknownPool(String),
    #[error("AddressPool {0} is for Services, not pods")]
    NotPodPool(String),
    #[error("AddressPool {pool} is not usable: {why}")]
    PoolRefused { pool: String, why: PoolRefusal },
    #[error("AddressPool {0} is being deleted")]
    PoolDeleting(String),
    #[error("Node {0} does not exist")]
    UnknownNode(String),
    #[error("AddressPool {pool} ({cidr}) has no free block")]
    Exhausted { pool: String, cidr: IpNet },
    #[error("{0:?} is not one address (a /32 or /128)")]
    BadAddress(String),
    #[error("address {ip} is not in AddressPool {pool}")]
    OutsidePool { pool: String, ip: IpAddr },
    #[error("address {ip} is already lent to node {node}")]
    Taken { ip: IpAddr, node: String },
    #[error("the block holding {ip} is changing hands; asking again shortly")]
    BlockMoving { ip: IpAddr },
}

impl Refusal {
    pub(crate) fn reason(&self) -> &'static str {
        match self {
            Refusal::UnknownPool(_) => "PoolNotFound",
            Refusal::NotPodPool(_) => "NotPodPool",
            Refusal::PoolRefused { .. } => "PoolNotReady",
            Refusal::PoolDeleting(_) => "PoolDeleting",
            Refusal::UnknownNode(_) => "NodeNotFound",
            Refusal::Exhausted { .. } => "PoolExhausted",
            Refusal::BadAddress(_) => "InvalidAddress",
            Refusal::OutsidePool { .. } => "OutsidePool",
            Refusal::Taken { .. } => "AddressTaken",
            Refusal::BlockMoving { .. } => "BlockMoving",
        }
    }
}

/// What to do about a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Decision {
    /// This block already answers it.
    Served(String),
    Create(NewBlock),
    Refuse(Refusal),
}

/// The pool as the request sees it: `None` when no AddressPool has the name.
pub(crate) struct PoolView<'a> {
    pub verdict: Option<Result<&'a ValidPool, &'a PoolRefusal>>,
    pub deleting: bool,
}

/// The block's position in its pool, from its CIDR (what the addresses are), else its status.
pub(crate) fn index_of(pool: &ValidPool, block: &AddressBlock) -> Option<u128> {
    match block.spec.cidr.parse::<IpNet>() {
        Ok(cidr) => pool.pool.index_of(cidr),
        Err(_) => block.status.as_ref().map(|s| u128::from(s.index)),
    }
}

/// The pool index a block keeps from being handed out: its own, or for a host block the index
/// of the block it was lent from (gone with its node, say, the address is still in use).
fn occupied(pool: &ValidPool, block: &AddressBlock) -> Option<u128> {
    if block.spec.lent_from.is_none() {
        return index_of(pool, block);
    }
    let host: IpNet = block.spec.cidr.parse().ok()?;
    pool.pool.block_containing(host.addr())
}

/// Decides a request. `blocks` is every AddressBlock; `claimed` holds indexes of the pool
/// taken moments ago that `blocks` may not show yet.
pub(crate) fn decide(
    req: &BlockRequest,
    pool: PoolView<'_>,
    node_exists: bool,
    blocks: &[AddressBlock],
    claimed: &BTreeSet<u128>,
) -> Decision {
    let uid = req.uid().unwrap_or_default();
    if let Some(b) = blocks
        .iter()
        .find(|b| !uid.is_empty() && b.annotations().get(REQUEST_ANNOTATION) == Some(&uid))
    {
        return Decision::Served(b.name_any());
    }
    let name = &req.spec.pool;
    let valid = match pool.verdict {
        None => return Decision::Refuse(Refusal::UnknownPool(name.clone())),
        Some(Err(why)) => {
            return Decision::Refuse(Refusal::PoolRefused {
                pool: name.clone(),
                why: why.clone(),
            });
        }
        Some(Ok(v)) => v,
    };
    if valid.kind != AddressType::Pod {
        return Decision::Refuse(Refusal::NotPodPool(name.clone()));
    }
    if pool.deleting {
        return Decision::Refuse(Refusal::PoolDeleting(name.clone()));
    }
    if !node_exists {
        return Decision::Refuse(Refusal::UnknownNode(req.spec.node.clone()));
    }
    if let Some(cidr) = &req.spec.cidr {
        return for_address(req, valid, cidr, blocks, claimed);
    }
    let mut alloc = BlockAllocator::new(valid.pool);
    let taken = blocks
        .iter()
        .filter(|b| b.spec.pool_ref == *name)
        .filter_map(|b| occupied(valid, b))
        .chain(claimed.iter().copied());
    for i in taken {
        // Twice is fine here (a claim the cache now shows); out of range cannot be taken.
        let _ = alloc.mark(i);
    }
    let exhausted = || {
        Decision::Refuse(Refusal::Exhausted {
            pool: name.clone(),
            cidr: valid.pool.cidr(),
        })
    };
    let Ok(index) = alloc.allocate_lowest() else {
        return exhausted();
    };
    let Some(cidr) = valid.pool.block(index) else {
        return exhausted();
    };
    Decision::Create(NewBlock {
        name: block_name(name, index),
        index,
        cidr,
        pool: name.clone(),
        node: req.spec.node.clone(),
        auto_assign: valid.auto_assign,
        lent: None,
    })
}

/// A request for the block holding one address: that block if nobody holds it, else the
/// address alone, lent by its holder.
fn for_address(
    req: &BlockRequest,
    valid: &ValidPool,
    cidr: &str,
    blocks: &[AddressBlock],
    claimed: &BTreeSet<u128>,
) -> Decision {
    let pool = &req.spec.pool;
    let node = &req.spec.node;
    let ip = match cidr.parse::<IpNet>() {
        Ok(n) if n.prefix_len() == n.max_prefix_len() => n.addr(),
        _ => return Decision::Refuse(Refusal::BadAddress(cidr.to_owned())),
    };
    let Some(index) = valid.pool.block_containing(ip) else {
        return Decision::Refuse(Refusal::OutsidePool {
            pool: pool.clone(),
            ip,
        });
    };
    let host = IpNet::from(ip);
    let host_name = host_block_name(pool, ip);
    if let Some(h) = blocks.iter().find(|b| b.name_any() == host_name) {
        return match h.spec.node_ref.as_deref() {
            Some(n) if n == node && h.metadata.deletion_timestamp.is_none() => {
                Decision::Served(host_name)
            }
            Some(n) if n != node => Decision::Refuse(Refusal::Taken {
                ip,
                node: n.to_owned(),
            }),
            _ => Decision::Refuse(Refusal::BlockMoving { ip }),
        };
    }
    let holder = blocks.iter().find(|b| {
        b.spec.pool_ref == *pool && b.spec.lent_from.is_none() && index_of(valid, b) == Some(index)
    });
    let Some(holder) = holder else {
        let lent_out = blocks
            .iter()
            .any(|b| b.spec.pool_ref == *pool && occupied(valid, b) == Some(index));
        if claimed.contains(&index) || lent_out {
            // Made moments ago for a node the cache does not show yet, or gone while some of
            // its addresses are still lent.
            return Decision::Refuse(Refusal::BlockMoving { ip });
        }
        let Some(cidr) = valid.pool.block(index) else {
            return Decision::Refuse(Refusal::OutsidePool {
                pool: pool.clone(),
                ip,
            });
        };
        return Decision::Create(NewBlock {
            name: block_name(pool, index),
            index,
            cidr,
            pool: pool.clone(),
            node: node.clone(),
            auto_assign: valid.auto_assign,
            lent: None,
        });
    };
    let holder_node = holder.spec.node_ref.clone().unwrap_or_default();
    if holder_node == *node {
        // Ours already: the agent's cache was behind.
        return Decision::Served(holder.name_any());
    }
    if holder.metadata.deletion_timestamp.is_some() || holder_node.is_empty() {
        return Decision::Refuse(Refusal::BlockMoving { ip });
    }
    if valid.pool.block_len() == host.prefix_len() {
        // The block is that one address.
        return Decision::Refuse(Refusal::Taken {
            ip,
            node: holder_node,
        });
    }
    Decision::Create(NewBlock {
        name: host_name,
        index,
        cidr: host,
        pool: pool.clone(),
        node: node.clone(),
        auto_assign: false,
        lent: Some(Lender {
            block: holder.name_any(),
            node: holder_node,
        }),
    })
}

pub(crate) fn block_name(pool: &str, index: u128) -> String {
    format!("{pool}-{index}")
}

/// The BGPPeers that announce a node's pod block: every peer of the node.
pub(crate) fn block_peers(node: &str, peers: &[BGPPeer]) -> BTreeSet<String> {
    peers
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter(|p| p.spec.node_bgp_ref == node)
        .map(|p| p.name_any())
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;
    use ipam::Pool;
    use k8s::crd::{AddressBlockSpec, BGPPeerSpec, BlockRequestSpec};
    use proptest::prelude::*;

    fn pool(cidr: &str, block: u8) -> ValidPool {
        ValidPool {
            name: "pods".into(),
            kind: AddressType::Pod,
            pool: Pool::new(cidr.parse().unwrap(), block).unwrap(),
            auto_assign: true,
            namespaces: k8s::pools::Namespaces::All,
        }
    }

    fn req(uid: &str, node: &str) -> BlockRequest {
        let mut r = BlockRequest::new(
            &format!("pods-{node}"),
            BlockRequestSpec {
                pool: "pods".into(),
                node: node.into(),
                cidr: None,
            },
        );
        r.metadata.uid = Some(uid.into());
        r
    }

    fn block(b: &NewBlock, uid: &str) -> AddressBlock {
        let mut a = AddressBlock::new(
            &b.name,
            AddressBlockSpec {
                cidr: b.cidr.to_string(),
                block_type: AddressType::Pod,
                pool_ref: b.pool.clone(),
                node_ref: Some(b.node.clone()),
                auto_assign: b.auto_assign,
                lent_from: b.lent.as_ref().map(|l| l.block.clone()),
            },
        );
        a.metadata.annotations = Some([(REQUEST_ANNOTATION.into(), uid.into())].into());
        a
    }

    fn ok(p: &ValidPool) -> PoolView<'_> {
        PoolView {
            verdict: Some(Ok(p)),
            deleting: false,
        }
    }

    fn create(d: Decision) -> NewBlock {
        match d {
            Decision::Create(b) => b,
            d => panic!("expected a new block, got {d:?}"),
        }
    }

    #[test]
    fn lowest_free_block_then_served() {
        let p = pool("198.18.0.0/24", 29);
        let none = BTreeSet::new();
        let b0 = create(decide(&req("u0", "n1"), ok(&p), true, &[], &none));
        assert_eq!((b0.name.as_str(), b0.index), ("pods-0", 0));
        assert_eq!(b0.cidr.to_string(), "198.18.0.0/29");
        let blocks = vec![block(&b0, "u0")];
        // The same request again (the agent has not deleted it yet): the same block.
        assert_eq!(
            decide(&req("u0", "n1"), ok(&p), true, &blocks, &none),
            Decision::Served("pods-0".into())
        );
        let b1 = create(decide(&req("u1", "n2"), ok(&p), true, &blocks, &none));
        assert_eq!(b1.cidr.to_string(), "198.18.0.8/29");
        // A claim the cache does not show yet is skipped.
        let b2 = create(decide(
            &req("u2", "n2"),
            ok(&p),
            true,
            &blocks,
            &BTreeSet::from([1]),
        ));
        assert_eq!(b2.index, 2);
    }

    #[test]
    fn ipv6_64_into_120() {
        let p = pool("fd00:10::/64", 120);
        let mut blocks = Vec::new();
        for (i, want) in ["fd00:10::/120", "fd00:10::100/120", "fd00:10::200/120"]
            .iter()
            .enumerate()
        {
            let uid = format!("u{i}");
            let b = create(decide(
                &req(&uid, "n1"),
                ok(&p),
                true,
                &blocks,
                &BTreeSet::new(),
            ));
            assert_eq!(b.cidr.to_string(), *want);
            blocks.push(block(&b, &uid));
        }
    }

    #[test]
    fn refusals() {
        let p = pool("198.18.0.0/30", 31);
        let none = BTreeSet::new();
        let r = req("u", "n1");
        let refused = |d: Decision| match d {
            Decision::Refuse(r) => r.reason(),
            d => panic!("expected a refusal, got {d:?}"),
        };
        let missing = PoolView {
            verdict: None,
            deleting: false,
        };
        assert_eq!(
            refused(decide(&r, missing, true, &[], &none)),
            "PoolNotFound"
        );
        let deleting = PoolView {
            verdict: Some(Ok(&p)),
            deleting: true,
        };
        assert_eq!(
            refused(decide(&r, deleting, true, &[], &none)),
            "PoolDeleting"
        );
        assert_eq!(
            refused(decide(&r, ok(&p), false, &[], &none)),
            "NodeNotFound"
        );
        let mut svc = pool("198.18.0.0/30", 30);
        svc.kind = AddressType::Service;
        assert_eq!(
            refused(decide(&r, ok(&svc), true, &[], &none)),
            "NotPodPool"
        );
        let full = BTreeSet::from([0, 1]);
        assert_eq!(
            refused(decide(&r, ok(&p), true, &[], &full)),
            "PoolExhausted"
        );
    }

    fn for_ip(uid: &str, node: &str, ip: &str) -> BlockRequest {
        let mut r = req(uid, node);
        r.spec.cidr = Some(ip.into());
        r
    }

    #[test]
    fn an_address_gets_its_free_block_else_a_loan() {
        let p = pool("198.18.0.0/24", 29);
        let none = BTreeSet::new();
        // Nobody holds 198.18.0.16/29: n1 gets that block, not the lowest free one.
        let b2 = create(decide(
            &for_ip("u0", "n1", "198.18.0.20/32"),
            ok(&p),
            true,
            &[],
            &none,
        ));
        assert_eq!((b2.name.as_str(), b2.lent.as_ref()), ("pods-2", None));
        assert_eq!(b2.cidr.to_string(), "198.18.0.16/29");
        let mut blocks = vec![block(&b2, "u0")];
        // n2 asks for an address of n1's block: the address alone, lent by n1.
        let h = create(decide(
            &for_ip("u1", "n2", "198.18.0.21/32"),
            ok(&p),
            true,
            &blocks,
            &none,
        ));
        assert_eq!(h.name, "pods-host-198-18-0-21");
        assert_eq!(h.cidr.to_string(), "198.18.0.21/32");
        assert_eq!((h.node.as_str(), h.auto_assign), ("n2", false));
        assert_eq!(
            h.lent,
            Some(Lender {
                block: "pods-2".into(),
                node: "n1".into()
            })
        );
        blocks.push(block(&h, "u1"));
        // Asked again by n2 (a new request): the same host block; by n3: taken.
        assert_eq!(
            decide(
                &for_ip("u2", "n2", "198.18.0.21/32"),
                ok(&p),
                true,
                &blocks,
                &none
            ),
            Decision::Served("pods-host-198-18-0-21".into())
        );
        let refused = decide(
            &for_ip("u3", "n3", "198.18.0.21/32"),
            ok(&p),
            true,
            &blocks,
            &none,
        );
        assert_eq!(
            refused,
            Decision::Refuse(Refusal::Taken {
                ip: "198.18.0.21".parse().unwrap(),
                node: "n2".into()
            })
        );
        // n1 asking for an address of its own block: its cache was behind.
        assert_eq!(
            decide(
                &for_ip("u4", "n1", "198.18.0.22/32"),
                ok(&p),
                true,
                &blocks,
                &none
            ),
            Decision::Served("pods-2".into())
        );
        // A host block never counts as its pool's block: the next plain request gets block 0.
        let b0 = create(decide(&req("u5", "n3"), ok(&p), true, &blocks, &none));
        assert_eq!(b0.index, 0);
        // A block created moments ago that the cache does not show: ask again.
        assert_eq!(
            decide(
                &for_ip("u6", "n3", "198.18.0.9/32"),
                ok(&p),
                true,
                &blocks,
                &BTreeSet::from([1])
            ),
            Decision::Refuse(Refusal::BlockMoving {
                ip: "198.18.0.9".parse().unwrap()
            })
        );
    }

    #[test]
    fn bad_addresses_and_single_address_blocks() {
        let p = pool("198.18.0.0/24", 29);
        let none = BTreeSet::new();
        let reason = |d: Decision| match d {
            Decision::Refuse(r) => r.reason(),
            d => panic!("expected a refusal, got {d:?}"),
        };
        for bad in ["198.18.0.0/29", "banana", "198.18.0.1/33"] {
            assert_eq!(
                reason(decide(&for_ip("u", "n1", bad), ok(&p), true, &[], &none)),
                "InvalidAddress"
            );
        }
        assert_eq!(
            reason(decide(
                &for_ip("u", "n1", "198.19.0.1/32"),
                ok(&p),
                true,
                &[],
                &none
            )),
            "OutsidePool"
        );
        // Blocks of one address cannot be lent: the holder has it.
        let one = pool("198.18.0.0/30", 32);
        let b = create(decide(
            &for_ip("u", "n1", "198.18.0.1/32"),
            ok(&one),
            true,
            &[],
            &none,
        ));
        assert_eq!(b.cidr.to_string(), "198.18.0.1/32");
        let blocks = vec![block(&b, "u")];
        assert_eq!(
            reason(decide(
                &for_ip("v", "n2", "198.18.0.1/32"),
                ok(&one),
                true,
                &blocks,
                &none
            )),
            "AddressTaken"
        );
    }

    #[test]
    fn peers_of_the_node() {
        let peer = |name: &str, node: &str| {
            BGPPeer::new(
                name,
                BGPPeerSpec {
                    node_bgp_ref: node.into(),
                    ..BGPPeerSpec::default()
                },
            )
        };
        let peers = [peer("a", "n1"), peer("b", "n2"), peer("c", "n1")];
        let got: Vec<String> = block_peers("n1", &peers).into_iter().collect();
        assert_eq!(got, ["a", "c"]);
    }

    proptest! {
        /// Whatever was handed out before (and in whatever order blocks were released), a new
        /// block never overlaps one that exists.
        #[test]
        fn never_two_blocks_on_the_same_addresses(
            ops in proptest::collection::vec(any::<(bool, u8)>(), 1..60),
        ) {
            let p = pool("198.18.0.0/26", 29);
            let mut blocks: Vec<AddressBlock> = Vec::new();
            for (n, (add, pick)) in ops.into_iter().enumerate() {
                if add || blocks.is_empty() {
                    let uid = format!("u{n}");
                    match decide(&req(&uid, "n1"), ok(&p), true, &blocks, &BTreeSet::new()) {
                        Decision::Create(b) => {
                            for other in &blocks {
                                let o: IpNet = other.spec.cidr.parse().unwrap();
                                prop_assert!(!ipam::pool::overlap(&o, &b.cidr));
                            }
                            blocks.push(block(&b, &uid));
                        }
                        Decision::Refuse(Refusal::Exhausted { .. }) => prop_assert_eq!(blocks.len(), 8),
                        d => prop_assert!(false, "unexpected {:?}", d),
                    }
                } else {
                    blocks.remove(usize::from(pick) % blocks.len());
                }
            }
        }
    }
}
