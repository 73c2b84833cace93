//! A node's pod addresses, as plain state: the node's blocks, each with its allocator, and one
//! record per attachment (container id, interface). Pure: the agent persists the records, asks
//! for blocks and sets up interfaces around it.
//!
//! - An attachment's addresses are given once: ADD again for the same attachment returns them
//!   (a runtime retrying after a timeout gets the same answer, and nothing leaks).
//! - Addresses come from the node's blocks of the chosen pool, lowest block first, lowest
//!   address first, so a pod recreated at once gets its old address back (sart's e2e checks it).
//! - When every block of a pool is full the answer is [`Allocation::NeedBlock`]: the caller asks
//!   the controller for one and tries again.
//! - Release is idempotent, and GC frees every attachment not in the runtime's list.
//! - A static address in another node's block comes as a host block (one address) that the
//!   other node lends: usable only once it says so, and never for pool allocation. The lender
//!   keeps a lent address allocated in its own block until the host block goes.
//! - A reserved address (a sticky pod's, see `AddressReservation`) stays allocated in its block
//!   while no pod has it; whoever may take it (the pod of that name, a loan for it) is the
//!   caller's decision.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ipam::{AddressAllocator, AddressError, Usable};
use ipnet::IpNet;

use super::pod_pool::Choice;

/// One attachment, as the CNI names it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Attachment {
    pub container_id: String,
    pub ifname: String,
}

/// What an attachment holds: each address with the block it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Record {
    pub addresses: Vec<(IpAddr, String)>,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum IpamError {
    #[error("block {block} ({cidr}): {source}")]
    BadBlock {
        block: String,
        cidr: IpNet,
        source: AddressError,
    },
    #[error("block {0} is known with another pool or CIDR")]
    BlockChanged(String),
    #[error("block {block} still holds {count} addresses")]
    BlockInUse { block: String, count: u128 },
    #[error("address {ip} is taken")]
    Taken { ip: IpAddr },
    #[error("address {ip} is in no block of this node")]
    NotOnThisNode { ip: IpAddr },
    #[error("record of {attachment:?}: {ip} is not in block {block}")]
    BadRecord {
        attachment: Attachment,
        ip: IpAddr,
        block: String,
    },
}

/// The answer to an ADD.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Allocation {
    /// The attachment's addresses (new, or those it already had).
    Done(Vec<IpAddr>),
    /// Every block of this pool is full (or there is none yet): ask for one, then try again.
    NeedBlock(String),
}

impl Block {
    /// Whether pool allocation may take addresses from it: one of the node's own blocks, not
    /// being released.
    fn gives_out(&self) -> bool {
        !self.draining && self.borrowed.is_none()
    }
}

#[derive(Clone, Debug)]
struct Block {
    pool: String,
    alloc: AddressAllocator,
    /// Being released: keeps what it holds, gives out nothing new.
    draining: bool,
    /// A host block borrowed from another node: `Some(lent)`, usable once the lender has lent
    /// it. `None` for the node's own blocks.
    borrowed: Option<bool>,
}

/// A block's use, for its status and the node CLI.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct BlockUse {
    pub name: String,
    pub pool: String,
    pub cidr: IpNet,
    pub allocated: u128,
    pub capacity: u128,
    pub draining: bool,
    /// A host block borrowed from another node (and whether it is lent yet).
    pub borrowed: Option<bool>,
    /// Addresses of this block lent to other nodes.
    pub lent: u128,
    /// Addresses of this block reserved for sticky pods (whether a pod has them now or not).
    pub reserved: u128,
}

/// An address of one of this node's blocks lent to another node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Loan {
    pub block: String,
    pub ip: IpAddr,
}

#[derive(Clone, Debug, Default)]
pub(crate) struct NodeIpam {
    blocks: BTreeMap<String, Block>,
    records: BTreeMap<Attachment, Record>,
    /// By host block name (the borrower's block).
    loans: BTreeMap<String, Loan>,
    /// Reserved addresses of this node's blocks.
    reserved: BTreeSet<IpAddr>,
}

impl NodeIpam {
    /// Adds a block of this node (idempotent for the same pool and CIDR).
    pub(crate) fn add_block(
        &mut self,
        name: &str,
        pool: &str,
        cidr: IpNet,
    ) -> Result<(), IpamError> {
        self.add(name, pool, cidr, None)
    }

    /// Adds (or updates) a host block borrowed from another node, usable once `lent`.
    pub(crate) fn add_borrowed(
        &mut self,
        name: &str,
        pool: &str,
        ip: IpAddr,
        lent: bool,
    ) -> Result<(), IpamError> {
        self.add(name, pool, IpNet::from(ip), Some(lent))
    }

    fn add(
        &mut self,
        name: &str,
        pool: &str,
        cidr: IpNet,
        borrowed: Option<bool>,
    ) -> Result<(), IpamError> {
        if let Some(b) = self.blocks.get_mut(name) {
            if b.pool == pool
                && b.alloc.range() == cidr
                && b.borrowed.is_some() == borrowed.is_some()
            {
                b.borrowed = borrowed;
                return Ok(());
            }
            return Err(IpamError::BlockChanged(name.into()));
        }
        let alloc =
            AddressAllocator::new(cidr, Usable::All).map_err(|source| IpamError::BadBlock {
                block: name.into(),
                cidr,
                source,
            })?;
        self.blocks.insert(
            name.into(),
            Block {
                pool: pool.into(),
                alloc,
                draining: false,
                borrowed,
            },
        );
        Ok(())
    }

    /// Lends `ip` of this node's block `block` to host block `host` of another node: the address
    /// is kept from this node's pods until [`Self::end_loan`]. Idempotent.
    pub(crate) fn lend(&mut self, host: &str, block: &str, ip: IpAddr) -> Result<(), IpamError> {
        if self.loans.contains_key(host) {
            return Ok(());
        }
        let free_reserved = self.reserved.contains(&ip) && !self.held(ip);
        let b = self
            .blocks
            .get_mut(block)
            .filter(|b| b.borrowed.is_none() && b.alloc.range().contains(&ip))
            .ok_or(IpamError::NotOnThisNode { ip })?;
        Self::take(b, ip, free_reserved)?;
        self.loans.insert(
            host.into(),
            Loan {
                block: block.into(),
                ip,
            },
        );
        Ok(())
    }

    /// The borrower's host block is gone: the address is this node's to give again.
    pub(crate) fn end_loan(&mut self, host: &str) -> Option<Loan> {
        let loan = self.loans.remove(host)?;
        if !self.reserved.contains(&loan.ip)
            && let Some(b) = self.blocks.get_mut(&loan.block)
        {
            b.alloc.release(loan.ip);
        }
        Some(loan)
    }

    /// Keeps `ip` for a reservation when one of this node's blocks holds it (whether it does).
    pub(crate) fn reserve(&mut self, ip: IpAddr) -> bool {
        let Some(b) = self
            .blocks
            .values_mut()
            .find(|b| b.borrowed.is_none() && b.alloc.range().contains(&ip))
        else {
            return false;
        };
        if !self.reserved.contains(&ip) {
            // Already allocated: the pod it is reserved for has it (or a loan for it).
            let _ = b.alloc.allocate(ip);
            self.reserved.insert(ip);
        }
        true
    }

    /// The reservation ended: the address is free once nobody has it.
    pub(crate) fn unreserve(&mut self, ip: IpAddr) {
        if !self.reserved.remove(&ip) || self.held(ip) {
            return;
        }
        if let Some(b) = self
            .blocks
            .values_mut()
            .find(|b| b.borrowed.is_none() && b.alloc.range().contains(&ip))
        {
            b.alloc.release(ip);
        }
    }

    pub(crate) fn reserved(&self) -> &BTreeSet<IpAddr> {
        &self.reserved
    }

    /// Whether a pod of this node or a loan has `ip`.
    fn held(&self, ip: IpAddr) -> bool {
        self.holder(ip).is_some() || self.loans.values().any(|l| l.ip == ip)
    }

    /// Takes `ip` in `b` unless it is reserved and free: then it is already allocated.
    fn take(b: &mut Block, ip: IpAddr, free_reserved: bool) -> Result<(), IpamError> {
        if free_reserved {
            return Ok(());
        }
        b.alloc.allocate(ip).map_err(|_| IpamError::Taken { ip })
    }

    /// Every loan, by host block name.
    pub(crate) fn loans(&self) -> &BTreeMap<String, Loan> {
        &self.loans
    }

    /// The block of this node `ip` lies in: one of its own, or a host block borrowed for it
    /// (the narrowest).
    pub(crate) fn block_of(&self, ip: IpAddr) -> Option<&str> {
        self.blocks
            .iter()
            .filter(|(_, b)| b.alloc.range().contains(&ip))
            .max_by_key(|(_, b)| b.alloc.range().prefix_len())
            .map(|(name, _)| name.as_str())
    }

    /// The attachment holding `ip`, if a pod of this node has it.
    pub(crate) fn holder(&self, ip: IpAddr) -> Option<&Attachment> {
        self.records
            .iter()
            .find(|(_, r)| r.addresses.iter().any(|(a, _)| *a == ip))
            .map(|(a, _)| a)
    }

    /// Drops an empty block (one holding addresses is refused).
    pub(crate) fn remove_block(&mut self, name: &str) -> Result<(), IpamError> {
        match self.blocks.get(name) {
            None => Ok(()),
            Some(b) if b.alloc.allocated() > 0 => Err(IpamError::BlockInUse {
                block: name.into(),
                count: b.alloc.allocated(),
            }),
            Some(_) => {
                self.blocks.remove(name);
                Ok(())
            }
        }
    }

    /// Stops (or, with `false`, resumes) giving out addresses of a block; whether it exists.
    pub(crate) fn drain(&mut self, name: &str, draining: bool) -> bool {
        match self.blocks.get_mut(name) {
            Some(b) => {
                b.draining = draining;
                true
            }
            None => false,
        }
    }

    /// Every block with its use, by name.
    pub(crate) fn usage(&self) -> Vec<BlockUse> {
        self.blocks
            .iter()
            .map(|(name, b)| BlockUse {
                name: name.clone(),
                pool: b.pool.clone(),
                cidr: b.alloc.range(),
                allocated: b.alloc.allocated(),
                capacity: b.alloc.capacity(),
                draining: b.draining,
                borrowed: b.borrowed,
                lent: self.loans.values().filter(|l| l.block == *name).count() as u128,
                reserved: self
                    .reserved
                    .iter()
                    .filter(|ip| b.alloc.range().contains(*ip))
                    .count() as u128,
            })
            .collect()
    }

    /// Whether a pool has a block that could give an address now.
    pub(crate) fn has_room(&self, pool: &str) -> bool {
        self.blocks
            .values()
            .any(|b| b.pool == pool && b.gives_out() && b.alloc.free() > 0)
    }

    /// Whether the node should ask for another block of `pool` before an ADD needs it: the pool
    /// is in use here, and what its blocks (not draining) have free is at most `percent` of one
    /// block. 0 never asks ahead.
    pub(crate) fn running_low(&self, pool: &str, percent: u32) -> bool {
        self.low_without(pool, percent, None)
    }

    /// Whether an empty block is kept rather than released: without it, its pool would be
    /// running low and ask for a block again at the next ADD.
    pub(crate) fn keep_as_spare(&self, name: &str, percent: u32) -> bool {
        self.blocks
            .get(name)
            .is_some_and(|b| self.low_without(&b.pool, percent, Some(name)))
    }

    fn low_without(&self, pool: &str, percent: u32, except: Option<&str>) -> bool {
        let (free, block) = self
            .blocks
            .iter()
            .filter(|(name, b)| b.pool == pool && b.gives_out() && Some(name.as_str()) != except)
            .fold((0u128, 0u128), |(free, block), (_, b)| {
                (free + b.alloc.free(), block.max(b.alloc.capacity()))
            });
        percent > 0 && block > 0 && free.saturating_mul(100) <= block.saturating_mul(percent.into())
    }

    /// Blocks holding no address (the shell reads [`Self::usage`]).
    #[cfg(test)]
    pub(crate) fn empty_blocks(&self) -> Vec<String> {
        self.blocks
            .iter()
            .filter(|(_, b)| b.alloc.allocated() == 0)
            .map(|(n, _)| n.clone())
            .collect()
    }

    pub(crate) fn record(&self, a: &Attachment) -> Option<&Record> {
        self.records.get(a)
    }

    #[cfg(test)]
    pub(crate) fn records(&self) -> impl Iterator<Item = (&Attachment, &Record)> {
        self.records.iter()
    }

    /// Gives `a` its addresses as `choice` says. Nothing is taken unless everything is.
    pub(crate) fn allocate(
        &mut self,
        a: &Attachment,
        choice: &Choice,
    ) -> Result<Allocation, IpamError> {
        if let Some(r) = self.records.get(a) {
            return Ok(Allocation::Done(
                r.addresses.iter().map(|(ip, _)| *ip).collect(),
            ));
        }
        // Plan on a copy: a failure half-way leaves nothing taken.
        let mut next = self.blocks.clone();
        let mut got: Vec<(IpAddr, String)> = Vec::new();
        match choice {
            Choice::Static(ips) => {
                for (ip, _pool) in ips {
                    let free_reserved = self.reserved.contains(ip) && !self.held(*ip);
                    let (name, b) = next
                        .iter_mut()
                        .find(|(_, b)| {
                            !b.draining && b.borrowed != Some(false) && b.alloc.range().contains(ip)
                        })
                        .ok_or(IpamError::NotOnThisNode { ip: *ip })?;
                    Self::take(b, *ip, free_reserved)?;
                    got.push((*ip, name.clone()));
                }
            }
            Choice::Pools(pools) => {
                for pool in pools {
                    let found = next
                        .iter_mut()
                        .filter(|(_, b)| b.pool == *pool && b.gives_out())
                        .find_map(|(name, b)| b.alloc.allocate_lowest().ok().map(|ip| (ip, name)));
                    match found {
                        Some((ip, name)) => got.push((ip, name.clone())),
                        None => return Ok(Allocation::NeedBlock(pool.clone())),
                    }
                }
            }
        }
        self.blocks = next;
        let ips = got.iter().map(|(ip, _)| *ip).collect();
        self.records.insert(a.clone(), Record { addresses: got });
        Ok(Allocation::Done(ips))
    }

    /// Frees what `a` holds; what it returns was freed (nothing, the second time).
    pub(crate) fn release(&mut self, a: &Attachment) -> Vec<IpAddr> {
        let Some(r) = self.records.remove(a) else {
            return Vec::new();
        };
        for (ip, block) in &r.addresses {
            if self.reserved.contains(ip) {
                continue;
            }
            if let Some(b) = self.blocks.get_mut(block) {
                b.alloc.release(*ip);
            }
        }
        r.addresses.into_iter().map(|(ip, _)| ip).collect()
    }

    /// Frees every attachment not in `valid`; the ones freed. (The shell collects per
    /// network, through its own records.)
    #[cfg(test)]
    pub(crate) fn gc(&mut self, valid: &BTreeSet<Attachment>) -> Vec<Attachment> {
        let stale: Vec<Attachment> = self
            .records
            .keys()
            .filter(|a| !valid.contains(*a))
            .cloned()
            .collect();
        for a in &stale {
            self.release(a);
        }
        stale
    }

    /// Takes a persisted record back after a restart (the blocks first).
    pub(crate) fn restore(&mut self, a: Attachment, r: Record) -> Result<(), IpamError> {
        let mut next = self.blocks.clone();
        for (ip, block) in &r.addresses {
            let free_reserved = self.reserved.contains(ip) && !self.held(*ip);
            let b = next.get_mut(block).ok_or_else(|| IpamError::BadRecord {
                attachment: a.clone(),
                ip: *ip,
                block: block.clone(),
            })?;
            Self::take(b, *ip, free_reserved)?;
        }
        self.blocks = next;
        self.records.insert(a, r);
        Ok(())
    }

    /// The families an attachment has addresses of.
    #[cfg(test)]
    pub(crate) fn families(&self, a: &Attachment) -> BTreeSet<ipam::IpFamily> {
        self.records
            .get(a)
            .map(|r| {
                r.addresses
                    .iter()
                    .map(|(ip, _)| ipam::IpFamily::of(*ip))
                    .collect()
            })
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;
    use ipam::IpFamily;
    use proptest::prelude::*;

    fn att(id: &str) -> Attachment {
        Attachment {
            container_id: id.into(),
            ifname: "eth0".into(),
        }
    }

    fn pools(names: &[&str]) -> Choice {
        Choice::Pools(names.iter().map(|s| s.to_string()).collect())
    }

    fn done(a: Allocation) -> Vec<String> {
        match a {
            Allocation::Done(ips) => ips.iter().map(ToString::to_string).collect(),
            other => panic!("expected addresses, got {other:?}"),
        }
    }

    #[test]
    fn block_of_finds_the_narrowest_block_holding_an_address() {
        let mut n = NodeIpam::default();
        n.add_block("pods-0", "pods", "198.18.0.0/29".parse().unwrap())
            .unwrap();
        n.add_borrowed(
            "pods-host-198.18.9.5",
            "pods",
            "198.18.9.5".parse().unwrap(),
            true,
        )
        .unwrap();
        let at = |s: &str| n.block_of(s.parse().unwrap());
        assert_eq!(at("198.18.0.7"), Some("pods-0"));
        assert_eq!(at("198.18.9.5"), Some("pods-host-198.18.9.5"));
        assert_eq!(at("198.18.0.8"), None);
    }

    #[test]
    fn a_reserved_address_waits_for_its_pod_here_or_on_loan() {
        let ip: IpAddr = "198.18.0.3".parse().unwrap();
        let want = Choice::Static(vec![(ip, "pods".into())]);
        let mut n = NodeIpam::default();
        n.add_block("pods-0", "pods", "198.18.0.0/29".parse().unwrap())
            .unwrap();
        // The sticky pod got it from the pool; then its reservation arrives.
        for i in 0..4 {
            n.allocate(&att(&format!("p{i}")), &pools(&["pods"]))
                .unwrap();
        }
        assert_eq!(n.holder(ip), Some(&att("p3")));
        assert!(n.reserve(ip));
        assert!(!n.reserve("198.19.0.1".parse().unwrap()));
        // The pod goes: the address stays allocated, pool allocation skips it.
        n.release(&att("p3"));
        assert_eq!(n.usage()[0].allocated, 4);
        assert_eq!(n.usage()[0].reserved, 1);
        assert_eq!(
            done(n.allocate(&att("q"), &pools(&["pods"])).unwrap()),
            ["198.18.0.4"]
        );
        // The pod of that name comes back (the caller checked the name): it gets it again.
        assert_eq!(
            done(n.allocate(&att("p3b"), &want).unwrap()),
            ["198.18.0.3"]
        );
        // Held now: a second taker is refused.
        assert_eq!(n.allocate(&att("r"), &want), Err(IpamError::Taken { ip }));
        n.release(&att("p3b"));
        // It moves to another node: lent from the reservation, and kept after the loan.
        n.lend("pods-host-198-18-0-3", "pods-0", ip).unwrap();
        assert_eq!(n.allocate(&att("r"), &want), Err(IpamError::Taken { ip }));
        n.end_loan("pods-host-198-18-0-3");
        assert_eq!(n.usage()[0].allocated, 5);
        // The reservation ends while nobody has it: free again.
        n.unreserve(ip);
        assert_eq!(n.usage()[0].allocated, 4);
        assert_eq!(done(n.allocate(&att("r"), &want).unwrap()), ["198.18.0.3"]);
        // Ended while a pod has it: the pod keeps it, and frees it on release.
        assert!(n.reserve(ip));
        n.unreserve(ip);
        n.release(&att("r"));
        assert_eq!(n.usage()[0].allocated, 4);
    }

    #[test]
    fn lent_addresses_stay_with_the_borrower_until_the_loan_ends() {
        let ip: IpAddr = "198.18.0.5".parse().unwrap();
        let want = Choice::Static(vec![(ip, "pods".into())]);
        // The lender: block pods-0 holds the address.
        let mut lender = NodeIpam::default();
        lender
            .add_block("pods-0", "pods", "198.18.0.0/29".parse().unwrap())
            .unwrap();
        lender.lend("pods-host-198-18-0-5", "pods-0", ip).unwrap();
        // Idempotent, and counted in the block's use.
        lender.lend("pods-host-198-18-0-5", "pods-0", ip).unwrap();
        assert_eq!(lender.usage()[0].lent, 1);
        assert_eq!(lender.usage()[0].allocated, 1);
        // Neither a static ADD nor pool allocation there gets it, nor can the block go.
        assert_eq!(
            lender.allocate(&att("c1"), &want),
            Err(IpamError::Taken { ip })
        );
        for n in 0..7 {
            let got = done(
                lender
                    .allocate(&att(&format!("p{n}")), &pools(&["pods"]))
                    .unwrap(),
            );
            assert!(!got.contains(&ip.to_string()));
        }
        assert!(lender.remove_block("pods-0").is_err());
        // The loan ends: the address is the lender's again.
        assert_eq!(
            lender.end_loan("pods-host-198-18-0-5"),
            Some(Loan {
                block: "pods-0".into(),
                ip
            })
        );
        assert_eq!(lender.end_loan("pods-host-198-18-0-5"), None);
        assert_eq!(
            done(lender.allocate(&att("c1"), &want).unwrap()),
            ["198.18.0.5"]
        );
        // An address a pod holds is not lent, and the pod is named.
        assert_eq!(
            lender.lend("pods-host-198-18-0-5", "pods-0", ip),
            Err(IpamError::Taken { ip })
        );
        assert_eq!(lender.holder(ip), Some(&att("c1")));

        // The borrower: the host block is no use until lent, and never for pool allocation.
        let mut borrower = NodeIpam::default();
        borrower
            .add_borrowed("pods-host-198-18-0-5", "pods", ip, false)
            .unwrap();
        assert_eq!(
            borrower.allocate(&att("c2"), &want),
            Err(IpamError::NotOnThisNode { ip })
        );
        borrower
            .add_borrowed("pods-host-198-18-0-5", "pods", ip, true)
            .unwrap();
        assert_eq!(
            borrower.allocate(&att("c3"), &pools(&["pods"])),
            Ok(Allocation::NeedBlock("pods".into()))
        );
        assert!(!borrower.running_low("pods", 100));
        assert_eq!(
            done(borrower.allocate(&att("c2"), &want).unwrap()),
            ["198.18.0.5"]
        );
        assert_eq!(borrower.usage()[0].borrowed, Some(true));
        // One address: a second pod asking is refused.
        assert_eq!(
            borrower.allocate(&att("c4"), &want),
            Err(IpamError::Taken { ip })
        );
        borrower.release(&att("c2"));
        assert_eq!(borrower.empty_blocks(), ["pods-host-198-18-0-5"]);
    }

    #[test]
    fn running_low_asks_ahead_within_a_quarter_of_a_block() {
        let mut n = NodeIpam::default();
        // Not in use here: nothing to ask ahead for (the first ADD asks).
        assert!(!n.running_low("pods", 25));
        n.add_block("pods-0", "pods", "198.18.64.0/29".parse().unwrap())
            .unwrap();
        let mut low = Vec::new();
        for i in 0..8 {
            low.push(n.running_low("pods", 25));
            n.allocate(&att(&format!("p{i}")), &pools(&["pods"]))
                .unwrap();
        }
        // 8 free .. 3 free: enough; 2 free and below: ask.
        assert_eq!(low, [false, false, false, false, false, false, true, true]);
        assert!(n.running_low("pods", 25));
        assert!(!n.running_low("pods", 0), "0 never asks ahead");
        assert!(!n.running_low("other", 25));
        // A second block counts with the first.
        n.add_block("pods-1", "pods", "198.18.64.8/29".parse().unwrap())
            .unwrap();
        assert!(!n.running_low("pods", 25));
        // The empty second block is the pool's spare: released, the next ADD would ask again.
        assert!(n.keep_as_spare("pods-1", 25));
        assert!(!n.keep_as_spare("pods-1", 0));
        assert!(!n.keep_as_spare("nothing", 25));
        // A draining block gives nothing: it does not count.
        assert!(n.drain("pods-1", true));
        assert!(n.running_low("pods", 25));
        // Once the pods go, no block is a spare: the last one is not kept for nobody.
        for i in 0..8 {
            n.release(&att(&format!("p{i}")));
        }
        assert!(n.drain("pods-1", false));
        assert!(!n.keep_as_spare("pods-1", 25));
        assert!(!n.keep_as_spare("pods-0", 25));
    }

    #[test]
    fn lowest_first_then_need_a_block() {
        let mut n = NodeIpam::default();
        assert_eq!(
            n.allocate(&att("a"), &pools(&["pods"])).unwrap(),
            Allocation::NeedBlock("pods".into())
        );
        n.add_block("pods-0", "pods", "198.18.64.0/31".parse().unwrap())
            .unwrap();
        assert_eq!(
            done(n.allocate(&att("a"), &pools(&["pods"])).unwrap()),
            ["198.18.64.0"]
        );
        // The same attachment again: the same address, nothing more taken.
        assert_eq!(
            done(n.allocate(&att("a"), &pools(&["pods"])).unwrap()),
            ["198.18.64.0"]
        );
        assert_eq!(
            done(n.allocate(&att("b"), &pools(&["pods"])).unwrap()),
            ["198.18.64.1"]
        );
        assert_eq!(
            n.allocate(&att("c"), &pools(&["pods"])).unwrap(),
            Allocation::NeedBlock("pods".into())
        );
        n.add_block("pods-3", "pods", "198.18.64.6/31".parse().unwrap())
            .unwrap();
        assert_eq!(
            done(n.allocate(&att("c"), &pools(&["pods"])).unwrap()),
            ["198.18.64.6"]
        );
        // A pod recreated at once gets its address back.
        assert_eq!(
            n.release(&att("a")),
            ["198.18.64.0".parse::<IpAddr>().unwrap()]
        );
        assert!(n.release(&att("a")).is_empty());
        assert_eq!(
            done(n.allocate(&att("a2"), &pools(&["pods"])).unwrap()),
            ["198.18.64.0"]
        );
    }

    #[test]
    fn a_draining_block_gives_nothing_new() {
        let mut n = NodeIpam::default();
        n.add_block("pods-0", "pods", "198.18.64.0/30".parse().unwrap())
            .unwrap();
        assert_eq!(
            done(n.allocate(&att("a"), &pools(&["pods"])).unwrap()),
            ["198.18.64.0"]
        );
        assert!(n.drain("pods-0", true));
        assert!(!n.has_room("pods"));
        assert_eq!(
            n.allocate(&att("b"), &pools(&["pods"])).unwrap(),
            Allocation::NeedBlock("pods".into())
        );
        // What it holds stays until released; then it is empty and can go.
        assert!(n.empty_blocks().is_empty());
        n.release(&att("a"));
        assert_eq!(n.empty_blocks(), ["pods-0"]);
        assert!(n.drain("pods-0", false));
        assert!(n.has_room("pods"));
        assert_eq!(n.usage()[0].capacity, 4);
        assert!(!n.drain("nope", true));
    }

    #[test]
    fn dual_stack_is_all_or_nothing() {
        let mut n = NodeIpam::default();
        n.add_block("pods-0", "pods", "198.18.64.0/30".parse().unwrap())
            .unwrap();
        // No IPv6 block yet: nothing is taken from the IPv4 one.
        assert_eq!(
            n.allocate(&att("a"), &pools(&["pods", "pods6"])).unwrap(),
            Allocation::NeedBlock("pods6".into())
        );
        assert_eq!(n.empty_blocks(), ["pods-0"]);
        n.add_block("pods6-0", "pods6", "fd00:64::/120".parse().unwrap())
            .unwrap();
        assert_eq!(
            done(n.allocate(&att("a"), &pools(&["pods", "pods6"])).unwrap()),
            ["198.18.64.0", "fd00:64::"]
        );
        assert_eq!(
            n.families(&att("a")),
            BTreeSet::from([IpFamily::Ipv4, IpFamily::Ipv6])
        );
    }

    #[test]
    fn static_addresses_blocks_and_restore() {
        let mut n = NodeIpam::default();
        n.add_block("t-0", "tenant", "198.18.65.0/29".parse().unwrap())
            .unwrap();
        let want = |ip: &str| Choice::Static(vec![(ip.parse().unwrap(), "tenant".into())]);
        assert_eq!(
            done(n.allocate(&att("a"), &want("198.18.65.5")).unwrap()),
            ["198.18.65.5"]
        );
        assert_eq!(
            n.allocate(&att("b"), &want("198.18.65.5")),
            Err(IpamError::Taken {
                ip: "198.18.65.5".parse().unwrap()
            })
        );
        assert_eq!(
            n.allocate(&att("b"), &want("198.18.66.5")),
            Err(IpamError::NotOnThisNode {
                ip: "198.18.66.5".parse().unwrap()
            })
        );
        // A block holding addresses stays; a changed block is refused.
        assert!(matches!(
            n.remove_block("t-0"),
            Err(IpamError::BlockInUse { .. })
        ));
        assert!(matches!(
            n.add_block("t-0", "tenant", "198.18.65.8/29".parse().unwrap()),
            Err(IpamError::BlockChanged(_))
        ));
        // After a restart: blocks, then records, give the same state.
        let saved: Vec<(Attachment, Record)> =
            n.records().map(|(a, r)| (a.clone(), r.clone())).collect();
        let mut m = NodeIpam::default();
        m.add_block("t-0", "tenant", "198.18.65.0/29".parse().unwrap())
            .unwrap();
        for (a, r) in saved {
            m.restore(a, r).unwrap();
        }
        assert_eq!(
            m.allocate(&att("b"), &want("198.18.65.5")),
            Err(IpamError::Taken {
                ip: "198.18.65.5".parse().unwrap()
            })
        );
        // GC keeps only what the runtime still uses.
        assert_eq!(m.gc(&BTreeSet::new()), [att("a")]);
        m.remove_block("t-0").unwrap();
    }

    proptest! {
        /// Under any mix of adds, deletes and GCs, no address is ever held twice and every
        /// record's addresses are allocated in their block.
        #[test]
        fn never_an_address_twice(ops in proptest::collection::vec((0u8..3, 0u8..12), 1..80)) {
            let mut n = NodeIpam::default();
            n.add_block("p-0", "p", "198.18.64.0/30".parse().unwrap()).unwrap();
            n.add_block("p-1", "p", "198.18.64.4/30".parse().unwrap()).unwrap();
            for (op, who) in ops {
                let a = att(&format!("c{who}"));
                match op {
                    0 => { let _ = n.allocate(&a, &pools(&["p"])).unwrap(); }
                    1 => { n.release(&a); }
                    _ => {
                        let keep: BTreeSet<Attachment> =
                            (0..12).filter(|i| i % 2 == 0).map(|i| att(&format!("c{i}"))).collect();
                        n.gc(&keep);
                    }
                }
                let mut seen = BTreeSet::new();
                for (_, r) in n.records() {
                    for (ip, block) in &r.addresses {
                        prop_assert!(seen.insert(*ip), "{} held twice", ip);
                        prop_assert!(n.blocks[block].alloc.is_allocated(*ip));
                    }
                }
                let allocated: u128 = n.blocks.values().map(|b| b.alloc.allocated()).sum();
                prop_assert_eq!(allocated, seen.len() as u128);
            }
        }
    }
}
