//! Locally originated paths (the API's AddPath, the config's `paths`): per-prefix attributes,
//! held under [`PeerId::LOCAL`] with path id 0, withdrawn by prefix.

use ipnet::IpNet;

use super::Rib;
use super::path::{Attrs, PeerId};
use crate::attribute::PathAttributes;
use crate::attribute::{AsPath, Community, ExtCommunity, LargeCommunity, NextHop, Origin};

/// Attributes of a locally originated route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalRoute {
    pub origin: Origin,
    /// Sent to iBGP peers (100 when unset); never to eBGP peers.
    pub local_pref: Option<u32>,
    pub med: Option<u32>,
    pub communities: Vec<Community>,
    pub ext_communities: Vec<ExtCommunity>,
    pub large_communities: Vec<LargeCommunity>,
    /// Extra copies of our AS prepended toward eBGP peers.
    pub prepend: u8,
    /// Next hop for the FIB and iBGP peers; `None` is next hop self.
    pub next_hop: Option<NextHop>,
}

impl Default for LocalRoute {
    fn default() -> Self {
        LocalRoute {
            origin: Origin::Igp,
            local_pref: None,
            med: None,
            communities: Vec::new(),
            ext_communities: Vec::new(),
            large_communities: Vec::new(),
            prepend: 0,
            next_hop: None,
        }
    }
}

impl LocalRoute {
    fn attrs(self) -> Attrs {
        Attrs {
            next_hop: self.next_hop,
            prepend: self.prepend,
            attrs: PathAttributes {
                origin: Some(self.origin),
                as_path: Some(AsPath::default()),
                med: self.med,
                local_pref: self.local_pref,
                communities: self.communities,
                ext_communities: self.ext_communities,
                large_communities: self.large_communities,
                ..PathAttributes::default()
            },
        }
    }
}

impl Rib {
    /// Originates (or replaces) a local path for `prefix`. `now` as in [`Rib::receive`].
    pub fn originate(&mut self, prefix: IpNet, route: LocalRoute, now: u32) {
        let attrs = self.intern.intern(route.attrs());
        let p = PeerId::LOCAL;
        match prefix.trunc() {
            IpNet::V4(n) => self.insert_paths(p, &attrs, std::iter::once((n, 0)), now),
            IpNet::V6(n) => self.insert_paths(p, &attrs, std::iter::once((n, 0)), now),
        };
        self.intern.release(attrs);
    }

    /// Withdraws the local path for `prefix`; `false` if there was none.
    pub fn withdraw_local(&mut self, prefix: IpNet) -> bool {
        let p = PeerId::LOCAL;
        let n = match prefix.trunc() {
            IpNet::V4(n) => self.remove_paths(p, std::iter::once((n, 0))),
            IpNet::V6(n) => self.remove_paths(p, std::iter::once((n, 0))),
        };
        n > 0
    }
}
