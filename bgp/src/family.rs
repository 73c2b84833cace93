//! Address families: AFI (RFC 4760 §3, IANA "Address Family Numbers") and SAFI.

use std::fmt;

/// Address Family Identifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Afi(pub u16);

impl Afi {
    pub const IPV4: Afi = Afi(1);
    pub const IPV6: Afi = Afi(2);
}

/// Subsequent Address Family Identifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Safi(pub u8);

impl Safi {
    pub const UNICAST: Safi = Safi(1);
    pub const MULTICAST: Safi = Safi(2);
}

/// An (AFI, SAFI) pair, the unit of capability negotiation and of End-of-RIB.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Family {
    pub afi: Afi,
    pub safi: Safi,
}

impl Family {
    pub const IPV4_UNICAST: Family = Family::new(Afi::IPV4, Safi::UNICAST);
    pub const IPV6_UNICAST: Family = Family::new(Afi::IPV6, Safi::UNICAST);

    pub const fn new(afi: Afi, safi: Safi) -> Self {
        Family { afi, safi }
    }

    /// Parses the names used in configs and JSON (`ipv4-unicast`, `ipv6-unicast`).
    pub fn from_name(name: &str) -> Option<Family> {
        match name {
            "ipv4-unicast" | "ipv4" => Some(Family::IPV4_UNICAST),
            "ipv6-unicast" | "ipv6" => Some(Family::IPV6_UNICAST),
            _ => None,
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let afi = match self.afi {
            Afi::IPV4 => "ipv4".to_string(),
            Afi::IPV6 => "ipv6".to_string(),
            Afi(n) => format!("afi{n}"),
        };
        let safi = match self.safi {
            Safi::UNICAST => "unicast".to_string(),
            Safi::MULTICAST => "multicast".to_string(),
            Safi(n) => format!("safi{n}"),
        };
        write!(f, "{afi}-{safi}")
    }
}

/// A small set of families, kept sorted; sessions negotiate a handful at most.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct FamilySet(Vec<Family>);

impl FamilySet {
    pub fn new() -> Self {
        FamilySet(Vec::new())
    }

    pub fn insert(&mut self, family: Family) {
        if let Err(at) = self.0.binary_search(&family) {
            self.0.insert(at, family);
        }
    }

    pub fn contains(&self, family: Family) -> bool {
        self.0.contains(&family)
    }

    pub fn iter(&self) -> impl Iterator<Item = Family> + '_ {
        self.0.iter().copied()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl FromIterator<Family> for FamilySet {
    fn from_iter<T: IntoIterator<Item = Family>>(iter: T) -> Self {
        let mut set = FamilySet::new();
        for f in iter {
            set.insert(f);
        }
        set
    }
}
