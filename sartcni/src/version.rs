//! The CNI spec versions `sart-cni` speaks, and what each allows.

use std::fmt;

/// A spec version we support; ordered, so `v >= Version::V0_4_0` reads as "has CHECK".
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Version {
    V0_3_0,
    V0_3_1,
    V0_4_0,
    V1_0_0,
    V1_1_0,
}

pub const SUPPORTED: [Version; 5] = [
    Version::V0_3_0,
    Version::V0_3_1,
    Version::V0_4_0,
    Version::V1_0_0,
    Version::V1_1_0,
];

impl Version {
    pub const NEWEST: Version = Version::V1_1_0;

    pub fn parse(s: &str) -> Option<Version> {
        SUPPORTED.into_iter().find(|v| v.as_str() == s.trim())
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Version::V0_3_0 => "0.3.0",
            Version::V0_3_1 => "0.3.1",
            Version::V0_4_0 => "0.4.0",
            Version::V1_0_0 => "1.0.0",
            Version::V1_1_0 => "1.1.0",
        }
    }

    /// CHECK arrived in 0.4.0.
    pub fn has_check(self) -> bool {
        self >= Version::V0_4_0
    }

    /// GC and STATUS arrived in 1.1.0.
    pub fn has_gc_and_status(self) -> bool {
        self >= Version::V1_1_0
    }

    /// Before 1.0.0 every `ips[]` entry carries `"version": "4" | "6"`.
    pub fn ips_have_version(self) -> bool {
        self < Version::V1_0_0
    }

    /// Interface `mtu` and route `mtu`/`table`/`scope` are 1.1.0 fields.
    pub fn has_1_1_fields(self) -> bool {
        self >= Version::V1_1_0
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_gates() {
        assert_eq!(Version::parse("0.4.0"), Some(Version::V0_4_0));
        assert_eq!(Version::parse("0.2.0"), None);
        assert_eq!(Version::parse("1.2.0"), None);
        assert!(!Version::V0_3_1.has_check() && Version::V0_4_0.has_check());
        assert!(!Version::V1_0_0.has_gc_and_status() && Version::V1_1_0.has_gc_and_status());
        assert!(Version::V0_4_0.ips_have_version() && !Version::V1_0_0.ips_have_version());
        for v in SUPPORTED {
            assert_eq!(Version::parse(v.as_str()), Some(v));
        }
    }
}
