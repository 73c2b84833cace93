//! Which addresses of one range are handed out: pod IPs inside a node's block (the agent), or
//! any other range where the lowest free address should go first.
//!
//! Sparse, so an IPv6 /64 block (2^64 addresses) costs only what is allocated.

use std::net::IpAddr;

use ipnet::IpNet;
use thiserror::Error;

use crate::family::{IpFamily, bounds, from_u128, is_normal, to_u128};
use crate::slots::{Slots, TakeError};

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AddressError {
    #[error("range {range} has host bits set (the network is {})", range.trunc())]
    HostBitsSet { range: IpNet },
    #[error("{range} has no free address")]
    Exhausted { range: IpNet },
    #[error("{ip} is outside {range}")]
    OutOfRange { ip: IpAddr, range: IpNet },
    #[error("{ip} is the network or broadcast address of {range}, which are not given out")]
    NotUsable { ip: IpAddr, range: IpNet },
    #[error("{ip} is already allocated")]
    AlreadyAllocated { ip: IpAddr },
}

/// Which addresses of the range may be given out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Usable {
    /// Every address, network and broadcast included. sart addresses pods with /32 (/128) and
    /// routes each one, so nothing on the wire needs the first or last address of a block; LB
    /// pools work the same way (sart's docs show 10.0.1.0 given to a Service).
    #[default]
    All,
    /// Everything but the first and last address, as on a shared subnet. Ranges of one or two
    /// addresses (/31, /32, /127, /128) keep all of them (RFC 3021, RFC 6164).
    ExcludeNetworkAndBroadcast,
}

/// The allocated addresses of one range; hands out the lowest free address first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressAllocator {
    range: IpNet,
    usable: Usable,
    slots: Slots,
}

impl AddressAllocator {
    pub fn new(range: IpNet, usable: Usable) -> Result<AddressAllocator, AddressError> {
        if !is_normal(&range) {
            return Err(AddressError::HostBitsSet { range });
        }
        let (mut first, mut last) = bounds(&range);
        if usable == Usable::ExcludeNetworkAndBroadcast && last - first >= 2 {
            (first, last) = (first + 1, last - 1);
        }
        Ok(AddressAllocator {
            range,
            usable,
            slots: Slots::new(first, last),
        })
    }

    pub fn range(&self) -> IpNet {
        self.range
    }

    pub fn usable(&self) -> Usable {
        self.usable
    }

    fn family(&self) -> IpFamily {
        IpFamily::of_net(&self.range)
    }

    pub fn allocate_lowest(&mut self) -> Result<IpAddr, AddressError> {
        let range = self.range;
        let value = self
            .slots
            .lowest_free()
            .ok_or(AddressError::Exhausted { range })?;
        let ip = from_u128(self.family(), value);
        self.allocate(ip)?;
        Ok(ip)
    }

    /// Takes one specific address: a pod asking for its previous IP, or rebuilding after a
    /// restart.
    pub fn allocate(&mut self, ip: IpAddr) -> Result<(), AddressError> {
        let range = self.range;
        if !range.contains(&ip) {
            return Err(AddressError::OutOfRange { ip, range });
        }
        self.slots.take(to_u128(ip)).map_err(|e| match e {
            TakeError::OutOfRange => AddressError::NotUsable { ip, range },
            TakeError::Taken => AddressError::AlreadyAllocated { ip },
        })
    }

    /// Frees an address; `false` if it was not allocated (releasing twice is harmless).
    pub fn release(&mut self, ip: IpAddr) -> bool {
        self.range.contains(&ip) && self.slots.release(to_u128(ip))
    }

    pub fn is_allocated(&self, ip: IpAddr) -> bool {
        self.range.contains(&ip) && self.slots.is_taken(to_u128(ip))
    }

    /// Allocated addresses, lowest first.
    pub fn iter(&self) -> impl Iterator<Item = IpAddr> + '_ {
        let family = self.family();
        self.slots
            .taken()
            .map(move |value| from_u128(family, value))
    }

    pub fn allocated(&self) -> u128 {
        self.slots.allocated()
    }

    pub fn free(&self) -> u128 {
        self.slots.free()
    }

    /// How many addresses may be given out at all; saturates at `u128::MAX` for `::/0`.
    pub fn capacity(&self) -> u128 {
        self.slots.capacity()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn allocator(range: &str, usable: Usable) -> AddressAllocator {
        AddressAllocator::new(range.parse().unwrap(), usable).unwrap()
    }

    #[test]
    fn all_addresses_of_a_block_lowest_first() {
        let mut a = allocator("10.1.0.8/29", Usable::All);
        assert_eq!(a.capacity(), 8);
        let got: Vec<_> = (0..8).map(|_| a.allocate_lowest().unwrap()).collect();
        assert_eq!(got.first(), Some(&ip("10.1.0.8")));
        assert_eq!(got.last(), Some(&ip("10.1.0.15")));
        assert!(matches!(
            a.allocate_lowest(),
            Err(AddressError::Exhausted { .. })
        ));
        assert!(a.release(ip("10.1.0.11")));
        assert!(!a.release(ip("10.1.0.11")));
        assert!(!a.release(ip("10.9.9.9")));
        assert_eq!(a.allocate_lowest(), Ok(ip("10.1.0.11")));
    }

    #[test]
    fn network_and_broadcast_excluded_on_request() {
        let mut a = allocator("10.0.0.0/30", Usable::ExcludeNetworkAndBroadcast);
        assert_eq!(a.capacity(), 2);
        assert_eq!(a.allocate_lowest(), Ok(ip("10.0.0.1")));
        assert_eq!(a.allocate_lowest(), Ok(ip("10.0.0.2")));
        assert!(a.allocate_lowest().is_err());
        assert!(matches!(
            a.allocate(ip("10.0.0.3")),
            Err(AddressError::NotUsable { .. })
        ));
        assert!(matches!(
            a.allocate(ip("10.0.0.0")),
            Err(AddressError::NotUsable { .. })
        ));
        assert_eq!(
            allocator("10.0.0.0/31", Usable::ExcludeNetworkAndBroadcast).capacity(),
            2
        );
        assert_eq!(
            allocator("10.0.0.5/32", Usable::ExcludeNetworkAndBroadcast).capacity(),
            1
        );
    }

    #[test]
    fn specific_addresses() {
        let mut a = allocator("10.0.1.0/24", Usable::All);
        a.allocate(ip("10.0.1.0")).unwrap();
        a.allocate(ip("10.0.1.2")).unwrap();
        assert_eq!(
            a.allocate(ip("10.0.1.2")),
            Err(AddressError::AlreadyAllocated { ip: ip("10.0.1.2") })
        );
        let e = a.allocate(ip("10.0.2.1")).unwrap_err();
        assert_eq!(e.to_string(), "10.0.2.1 is outside 10.0.1.0/24");
        assert!(a.allocate(ip("fd00::1")).is_err());
        assert_eq!(a.allocate_lowest(), Ok(ip("10.0.1.1")));
        assert!(a.is_allocated(ip("10.0.1.1")) && !a.is_allocated(ip("10.0.1.3")));
        assert_eq!(
            a.iter().collect::<Vec<_>>(),
            vec![ip("10.0.1.0"), ip("10.0.1.1"), ip("10.0.1.2")]
        );
        assert_eq!((a.allocated(), a.free()), (3, 253));
    }

    #[test]
    fn ipv6_slash64_is_sparse() {
        let mut a = allocator("fd00:1:2:3::/64", Usable::All);
        assert_eq!(a.capacity(), 1 << 64);
        assert_eq!(a.allocate_lowest(), Ok(ip("fd00:1:2:3::")));
        a.allocate(ip("fd00:1:2:3:ffff:ffff:ffff:ffff")).unwrap();
        assert_eq!(a.allocate_lowest(), Ok(ip("fd00:1:2:3::1")));
        assert_eq!(a.free(), (1 << 64) - 3);
        let mut a = allocator("fd00::/120", Usable::ExcludeNetworkAndBroadcast);
        assert_eq!(a.allocate_lowest(), Ok(ip("fd00::1")));
        // The very top of the address space, and all of it.
        let mut a = allocator("ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe/127", Usable::All);
        a.allocate(ip("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"))
            .unwrap();
        assert_eq!(
            a.allocate_lowest(),
            Ok(ip("ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe"))
        );
        assert!(a.allocate_lowest().is_err());
        assert_eq!(allocator("::/0", Usable::All).capacity(), u128::MAX);
    }

    #[test]
    fn host_bits_rejected() {
        let e = AddressAllocator::new("10.0.0.1/24".parse().unwrap(), Usable::All).unwrap_err();
        assert!(matches!(e, AddressError::HostBitsSet { .. }));
    }
}
