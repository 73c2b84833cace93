//! Per-peer routing policy: which learned routes are accepted (a prefix list) and which routes
//! are announced (everything selected, or only what the speaker originates).
//!
//! A prefix list is an ordered list of rules; the first rule that matches a prefix decides,
//! and a prefix no rule matches is denied, as in FRR's `ip prefix-list` and Junos' route
//! filters. An empty list accepts everything (no filter configured).

use ipnet::IpNet;

/// Which selected routes a peer is sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Export {
    /// Every selected route export rules allow: a full BGP speaker, the default.
    #[default]
    All,
    /// Only routes this speaker originates: a node never becomes a transit path between
    /// its peers.
    Originated,
}

/// What a matching rule does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Action {
    #[default]
    Permit,
    Deny,
}

/// One rule: prefixes inside `prefix` whose length lies in `min_len..=max_len`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PrefixRule {
    prefix: IpNet,
    min_len: u8,
    max_len: u8,
    action: Action,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("{prefix}: ge {ge} must lie in {len}-{max}")]
    Ge {
        prefix: IpNet,
        ge: u8,
        len: u8,
        max: u8,
    },
    #[error("{prefix}: le {le} must lie in {min}-{max}")]
    Le {
        prefix: IpNet,
        le: u8,
        min: u8,
        max: u8,
    },
}

impl PrefixRule {
    /// A rule with FRR's `ge`/`le` meaning: neither is an exact match; `ge` alone allows
    /// lengths from `ge` to the family's maximum; `le` alone from the prefix's own length.
    pub fn new(
        prefix: IpNet,
        ge: Option<u8>,
        le: Option<u8>,
        action: Action,
    ) -> Result<PrefixRule, PolicyError> {
        let prefix = prefix.trunc();
        let (len, max) = (prefix.prefix_len(), prefix.max_prefix_len());
        let min_len = match ge {
            Some(ge) if ge < len || ge > max => {
                return Err(PolicyError::Ge {
                    prefix,
                    ge,
                    len,
                    max,
                });
            }
            Some(ge) => ge,
            None => len,
        };
        let max_len = match (ge, le) {
            (_, Some(le)) if le < min_len || le > max => {
                return Err(PolicyError::Le {
                    prefix,
                    le,
                    min: min_len,
                    max,
                });
            }
            (_, Some(le)) => le,
            (Some(_), None) => max,
            (None, None) => len,
        };
        Ok(PrefixRule {
            prefix,
            min_len,
            max_len,
            action,
        })
    }

    pub fn prefix(&self) -> IpNet {
        self.prefix
    }

    /// The (ge, le) this rule was written with, in the shortest form.
    pub fn lengths(&self) -> (u8, u8) {
        (self.min_len, self.max_len)
    }

    pub fn action(&self) -> Action {
        self.action
    }

    fn matches(&self, p: IpNet) -> bool {
        (self.min_len..=self.max_len).contains(&p.prefix_len()) && self.prefix.contains(&p)
    }
}

/// Ordered rules; empty: accept everything.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct PrefixList(Vec<PrefixRule>);

impl PrefixList {
    pub fn new(rules: Vec<PrefixRule>) -> PrefixList {
        PrefixList(rules)
    }

    pub fn rules(&self) -> &[PrefixRule] {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `p` passes: the first matching rule's action; no match, denied.
    pub fn permits(&self, p: impl Into<IpNet>) -> bool {
        if self.0.is_empty() {
            return true;
        }
        let p = p.into();
        self.0
            .iter()
            .find(|r| r.matches(p))
            .is_some_and(|r| r.action == Action::Permit)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    fn rule(p: &str, ge: Option<u8>, le: Option<u8>, a: Action) -> PrefixRule {
        PrefixRule::new(net(p), ge, le, a).unwrap()
    }

    #[test]
    fn lengths_as_frr_reads_ge_and_le() {
        assert_eq!(
            rule("10.0.0.0/8", None, None, Action::Permit).lengths(),
            (8, 8)
        );
        assert_eq!(
            rule("10.0.0.0/8", Some(24), None, Action::Permit).lengths(),
            (24, 32)
        );
        assert_eq!(
            rule("10.0.0.0/8", None, Some(16), Action::Permit).lengths(),
            (8, 16)
        );
        assert_eq!(
            rule("10.0.0.0/8", Some(16), Some(24), Action::Permit).lengths(),
            (16, 24)
        );
        assert_eq!(
            rule("fd00::/8", Some(48), None, Action::Permit).lengths(),
            (48, 128)
        );
        // Host bits are dropped, as FRR does.
        assert_eq!(
            rule("10.1.2.3/8", None, None, Action::Permit).prefix(),
            net("10.0.0.0/8")
        );
        for (ge, le) in [
            (Some(4), None),
            (Some(33), None),
            (None, Some(4)),
            (Some(24), Some(16)),
        ] {
            assert!(PrefixRule::new(net("10.0.0.0/8"), ge, le, Action::Permit).is_err());
        }
    }

    #[test]
    fn first_match_decides_and_no_match_denies() {
        let list = PrefixList::new(vec![
            rule("10.2.0.0/16", None, Some(32), Action::Deny),
            rule("10.0.0.0/8", Some(24), Some(24), Action::Permit),
        ]);
        assert!(list.permits(net("10.1.0.0/24")));
        assert!(
            !list.permits(net("10.2.0.0/24")),
            "denied by the first rule"
        );
        assert!(!list.permits(net("10.3.0.0/25")), "matches no rule");
        assert!(
            !list.permits(net("10.0.0.0/8")),
            "too short for the second rule"
        );
        assert!(!list.permits(net("192.0.2.0/24")));
        assert!(
            !list.permits(net("fd00::/64")),
            "families never match each other"
        );
        assert!(PrefixList::default().permits(net("192.0.2.0/24")));
    }
}
