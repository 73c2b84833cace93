//! Pod pools, as pure functions: which block answers a BlockRequest, and which peers announce a
//! node's block. The I/O is in [`super::pod_block`].
//!
//! A block is named `<pool>-<index>`, so two writers (a restarted controller, a cache that is
//! behind) can never create two blocks over the same addresses: the second create is refused
//! by the API server. The request a block answers is recorded on it ([`REQUEST_ANNOTATION`]),
//! so a request is never served twice.

use std::collections::BTreeSet;

use ipam::BlockAllocator;
use ipnet::IpNet;
use kube::ResourceExt;

use super::pools::{Refusal as PoolRefusal, ValidPool};
use crate::kubernetes::crd::{AddressBlock, AddressType, BGPPeer, BlockRequest};

/// On an AddressBlock: the uid of the BlockRequest it was made for.
pub const REQUEST_ANNOTATION: &str = "sart.terassyi.net/block-request";

/// The block to create for a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewBlock {
    pub name: String,
    pub index: u128,
    pub cidr: IpNet,
    pub pool: String,
    pub node: String,
    pub auto_assign: bool,
}

/// Why a request cannot be served now; `reason()` goes into its condition and an Event.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
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
}

impl Refusal {
    pub fn reason(&self) -> &'static str {
        match self {
            Refusal::UnknownPool(_) => "PoolNotFound",
            Refusal::NotPodPool(_) => "NotPodPool",
            Refusal::PoolRefused { .. } => "PoolNotReady",
            Refusal::PoolDeleting(_) => "PoolDeleting",
            Refusal::UnknownNode(_) => "NodeNotFound",
            Refusal::Exhausted { .. } => "PoolExhausted",
        }
    }
}

/// What to do about a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// This block already answers it.
    Served(String),
    Create(NewBlock),
    Refuse(Refusal),
}

/// The pool as the request sees it: `None` when no AddressPool has the name.
pub struct PoolView<'a> {
    pub verdict: Option<Result<&'a ValidPool, &'a PoolRefusal>>,
    pub deleting: bool,
}

/// The block's position in its pool, from its CIDR (what the addresses are), else its status.
pub fn index_of(pool: &ValidPool, block: &AddressBlock) -> Option<u128> {
    match block.spec.cidr.parse::<IpNet>() {
        Ok(cidr) => pool.pool.index_of(cidr),
        Err(_) => block.status.as_ref().map(|s| u128::from(s.index)),
    }
}

/// Decides a request. `blocks` is every AddressBlock; `claimed` holds indexes of the pool
/// taken moments ago that `blocks` may not show yet.
pub fn decide(
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
    let mut alloc = BlockAllocator::new(valid.pool);
    let taken = blocks
        .iter()
        .filter(|b| b.spec.pool_ref == *name)
        .filter_map(|b| index_of(valid, b))
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
    })
}

pub fn block_name(pool: &str, index: u128) -> String {
    format!("{pool}-{index}")
}

/// The BGPPeers that announce a node's pod block: every peer of the node.
pub fn block_peers(node: &str, peers: &[BGPPeer]) -> BTreeSet<String> {
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
    use crate::kubernetes::crd::{AddressBlockSpec, BGPPeerSpec, BlockRequestSpec};
    use ipam::Pool;
    use proptest::prelude::*;

    fn pool(cidr: &str, block: u8) -> ValidPool {
        ValidPool {
            name: "pods".into(),
            kind: AddressType::Pod,
            pool: Pool::new(cidr.parse().unwrap(), block).unwrap(),
            auto_assign: true,
            namespaces: crate::kubernetes::controller::pools::Namespaces::All,
        }
    }

    fn req(uid: &str, node: &str) -> BlockRequest {
        let mut r = BlockRequest::new(
            &format!("pods-{node}"),
            BlockRequestSpec {
                pool: "pods".into(),
                node: node.into(),
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
