//! The RIB: Adj-RIBs-In, Loc-RIB with the RFC 4271 §9.1 decision process, and Adj-RIBs-Out
//! computed per update group. Pure logic: no I/O, no clock, no logging. The daemon feeds it
//! decoded UPDATEs, local routes and session events, and [`drains`](Rib::drain) the consequences:
//! best-path changes for the FIB and watchers, and outbound changes per update group.
//!
//! ```text
//!  receive(peer, Update) ─┐                           ┌─► BestChange (FIB, watch)
//!  originate(prefix, ..) ─┼─► Table (per family) ─────┤
//!  close(peer) ───────────┘   prefix → paths + flags  └─► per group: OutUpdate (attrs, prefixes)
//!                             changed: state at last drain     per peer: the few corrections
//! ```
//!
//! # Memory layout
//!
//! - Attributes (with the next hop) are interned ([`intern`]): one `Arc<Attrs>` per distinct
//!   value, freed when the last path using it goes.
//! - One hash map per family from prefix to its paths ([`loc`]). A path is 24 bytes: attribute
//!   pointer, `u32` peer, `u32` add-path id, `u32` receive time, flags. A prefix with one path
//!   (the common case) stores it inline; more paths go to one boxed vector. The Adj-RIB-In of a
//!   peer is the paths tagged with that peer; the Loc-RIB is the paths flagged best/multipath.
//! - Adj-RIB-Out is not stored. What a group was sent is a function of the best path at the last
//!   drain ([`export`] is deterministic), so the table keeps, only for prefixes changed since the
//!   last drain, the best path they had then; a drain diffs that against the current best for
//!   every group. Memory per route is therefore the same for one peer or a hundred.
//!
//! # Update groups
//!
//! See [`group`]. [`Rib::establish`] puts a peer into the group of peers with an identical
//! export key and returns its id; [`Rib::drain`] returns the changes once per group;
//! [`Rib::group_table`] / [`Rib::peer_table`] give the full table for a new session or a route
//! refresh, consistent with the last drain (the next drain brings it up to date).
//!
//! # Inbound
//!
//! See [`adj_in`]: classic and MP (IPv4/IPv6 unicast, add-path, RFC 8950 next hops),
//! treat-as-withdraw, loop detection, eBGP LOCAL_PREF discarding, max-prefix. Paths that fail
//! loop detection are treated as withdrawn and not kept (so `Rib::adj_rib_in` shows what was
//! accepted, like a router without soft-reconfiguration inbound).

pub mod adj_in;
pub mod adj_out;
pub mod decision;
pub mod export;
pub mod group;
mod hash;
pub mod intern;
pub mod loc;
pub mod local;
pub mod path;
pub mod peer;
pub mod policy;
mod step;

use std::net::Ipv4Addr;
use std::sync::Arc;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

pub use adj_in::Received;
pub use adj_out::{BestChange, BestReport, BestRoute, Drained};
pub use decision::{Candidate, DecisionConfig, Selection, compare, select};
pub use group::{ExportParams, GroupId, OutUpdate, Prefixes};
pub use local::LocalRoute;
pub use path::{Attrs, PathView, PeerId, PeerKind, SourceInfo, SourceKind};
pub use peer::PeerConfig;
pub use policy::{Action, Export, PolicyError, PrefixList, PrefixRule};
pub use step::Step;

use export::Local;
use group::{GroupKey, Groups};
use intern::Interner;
use loc::{Env, Key, Paths, Table};
use peer::{PeerSlot, Peers, Session};

use crate::family::{Family, FamilySet};

/// Speaker-wide RIB settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RibConfig {
    pub asn: u32,
    pub router_id: Ipv4Addr,
    /// Route-reflection cluster id (RFC 4456 §7); the router id when unset.
    pub cluster_id: Option<Ipv4Addr>,
    pub decision: DecisionConfig,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RibError {
    #[error("unknown peer {0}")]
    UnknownPeer(PeerId),
    #[error("{0} has no established session")]
    NotEstablished(PeerId),
    #[error("{0} already has an established session")]
    AlreadyEstablished(PeerId),
    #[error("unknown update group {0:?}")]
    UnknownGroup(GroupId),
    #[error("a route-reflector client must be an iBGP peer (AS {asn} is not ours)")]
    RrClientNotIbgp { asn: u32 },
    #[error("too many peers")]
    TooManyPeers,
}

/// A prefix with all its paths, as the read API shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub prefix: IpNet,
    /// Best first, then the other multipath members, then the rest.
    pub paths: Vec<PathView>,
}

/// Both families' tables.
#[derive(Debug, Default)]
pub(crate) struct Tables {
    pub v4: Table<Ipv4Net>,
    pub v6: Table<Ipv6Net>,
}

/// The routing information base of one speaker.
#[derive(Debug)]
pub struct Rib {
    local: Local,
    router_id: Ipv4Addr,
    peers: Peers,
    tables: Tables,
    intern: Interner,
    groups: Groups,
}

impl Rib {
    pub fn new(config: RibConfig) -> Rib {
        Rib {
            local: Local {
                asn: config.asn,
                cluster_id: config.cluster_id.unwrap_or(config.router_id),
                decision: config.decision,
            },
            router_id: config.router_id,
            peers: Peers::new(config.asn, config.router_id),
            tables: Tables::default(),
            intern: Interner::default(),
            groups: Groups::default(),
        }
    }

    pub fn asn(&self) -> u32 {
        self.local.asn
    }

    pub fn router_id(&self) -> Ipv4Addr {
        self.router_id
    }

    /// Registers a configured peer. It takes part in nothing until [`Rib::establish`].
    pub fn add_peer(&mut self, config: PeerConfig) -> Result<PeerId, RibError> {
        let kind = match (config.asn == self.local.asn, config.rr_client) {
            (false, false) => PeerKind::Ebgp,
            (false, true) => return Err(RibError::RrClientNotIbgp { asn: config.asn }),
            (true, false) => PeerKind::Ibgp,
            (true, true) => PeerKind::RrClient,
        };
        self.peers
            .add(PeerSlot {
                config,
                kind,
                router_id: Ipv4Addr::UNSPECIFIED,
                session: None,
                paths: 0,
                removed: false,
            })
            .ok_or(RibError::TooManyPeers)
    }

    /// A session came up: records the peer's BGP identifier and puts it in the update group of
    /// its export key. The daemon then sends [`Rib::peer_table`] (or shares one
    /// [`Rib::group_table`] among peers coming up together) and End-of-RIB.
    pub fn establish(
        &mut self,
        peer: PeerId,
        router_id: Ipv4Addr,
        params: ExportParams,
    ) -> Result<GroupId, RibError> {
        let slot = self
            .peers
            .get_mut(peer)
            .ok_or(RibError::UnknownPeer(peer))?;
        if slot.session.is_some() {
            return Err(RibError::AlreadyEstablished(peer));
        }
        let key = GroupKey {
            kind: slot.kind,
            asn: if slot.kind == PeerKind::Ebgp {
                slot.config.asn
            } else {
                0
            },
            params,
        };
        let group = self.groups.join(key, peer);
        slot.router_id = router_id;
        slot.session = Some(Session { group });
        Ok(group)
    }

    /// A session went down: the peer leaves its group and its paths are withdrawn (the
    /// consequences come out of the next [`Rib::drain`]). Returns how many paths were removed.
    pub fn close(&mut self, peer: PeerId) -> Result<usize, RibError> {
        self.end_session(peer)?;
        if let Some(slot) = self.peers.get_mut(peer) {
            slot.paths = 0;
        }
        let env = Env {
            peers: &self.peers,
            cfg: &self.local.decision,
        };
        let n = self.tables.v4.remove_peer(peer, &env, &mut self.intern)
            + self.tables.v6.remove_peer(peer, &env, &mut self.intern);
        Ok(n)
    }

    /// The peer's session ended: it leaves its update group.
    fn end_session(&mut self, peer: PeerId) -> Result<(), RibError> {
        let slot = self
            .peers
            .get_mut(peer)
            .ok_or(RibError::UnknownPeer(peer))?;
        if let Some(s) = slot.session.take() {
            self.groups.leave(s.group, peer);
        }
        Ok(())
    }

    /// A session with a graceful-restart peer went down (RFC 4724 §4.2): the peer leaves its
    /// group; its paths of the families in `keep` (those it said it preserves forwarding for)
    /// stay in use, flagged stale; the rest are withdrawn. Returns how many paths were kept.
    /// [`Rib::sweep_stale`] removes them when the peer's End-of-RIB or the restart timer says.
    pub fn close_graceful(&mut self, peer: PeerId, keep: &FamilySet) -> Result<usize, RibError> {
        self.end_session(peer)?;
        let env = Env {
            peers: &self.peers,
            cfg: &self.local.decision,
        };
        let mut kept = 0;
        if keep.contains(Family::IPV4_UNICAST) {
            kept += self.tables.v4.mark_stale(peer);
        } else {
            self.tables.v4.remove_peer(peer, &env, &mut self.intern);
        }
        if keep.contains(Family::IPV6_UNICAST) {
            kept += self.tables.v6.mark_stale(peer);
        } else {
            self.tables.v6.remove_peer(peer, &env, &mut self.intern);
        }
        if let Some(slot) = self.peers.get_mut(peer) {
            slot.paths = u32::try_from(kept).unwrap_or(u32::MAX);
        }
        Ok(kept)
    }

    /// Removes the peer's stale paths of `family` (all families with `None`): its End-of-RIB
    /// came, or it did not come back in time. Returns how many were removed.
    pub fn sweep_stale(&mut self, peer: PeerId, family: Option<Family>) -> Result<usize, RibError> {
        if self.peers.get(peer).is_none() {
            return Err(RibError::UnknownPeer(peer));
        }
        let env = Env {
            peers: &self.peers,
            cfg: &self.local.decision,
        };
        let mut n = 0;
        if family.is_none_or(|f| f == Family::IPV4_UNICAST) {
            n += self.tables.v4.remove_stale(peer, &env, &mut self.intern);
        }
        if family.is_none_or(|f| f == Family::IPV6_UNICAST) {
            n += self.tables.v6.remove_stale(peer, &env, &mut self.intern);
        }
        if let Some(slot) = self.peers.get_mut(peer) {
            slot.paths = slot
                .paths
                .saturating_sub(u32::try_from(n).unwrap_or(u32::MAX));
        }
        Ok(n)
    }

    /// How many of the peer's paths are stale.
    pub fn stale_count(&self, peer: PeerId) -> usize {
        self.tables.v4.stale_count(peer) + self.tables.v6.stale_count(peer)
    }

    /// Closes the peer and forgets it. Its id is never reused.
    pub fn remove_peer(&mut self, peer: PeerId) -> Result<usize, RibError> {
        let n = self.close(peer)?;
        if let Some(slot) = self.peers.get_mut(peer) {
            slot.removed = true;
        }
        Ok(n)
    }

    /// The update group of an established peer.
    pub fn group_of(&self, peer: PeerId) -> Option<GroupId> {
        self.peers
            .get(peer)
            .and_then(|p| p.session.as_ref())
            .map(|s| s.group)
    }

    /// Members of a group, sorted.
    pub fn group_members(&self, group: GroupId) -> &[PeerId] {
        self.groups.members(group)
    }

    /// Number of update groups.
    pub fn group_count(&self) -> usize {
        self.groups.groups.len()
    }

    /// Paths held from a peer (what max-prefix counts).
    pub fn path_count(&self, peer: PeerId) -> usize {
        self.peers.get(peer).map_or(0, |p| p.paths as usize)
    }

    /// Number of prefixes with at least one path.
    pub fn prefix_count(&self, family: Family) -> usize {
        match family {
            Family::IPV4_UNICAST => self.tables.v4.routes.len(),
            Family::IPV6_UNICAST => self.tables.v6.routes.len(),
            _ => 0,
        }
    }

    /// Number of distinct interned attribute sets.
    pub fn interned_count(&self) -> usize {
        self.intern.len()
    }

    /// Frees interned attributes nothing refers to any more (those the daemon held on to in
    /// views or events when the RIB let go of them). Drains also do this, amortized.
    pub fn gc(&mut self) {
        self.intern.sweep();
    }

    /// Approximate heap bytes held by the tables and the interned attributes (hash-table
    /// buckets, control bytes and boxed path lists; attribute vectors counted by length), for
    /// metrics and the memory benchmark.
    pub fn heap_estimate(&self) -> usize {
        fn table<P: Key>(t: &Table<P>) -> usize {
            let map = |cap: usize, entry: usize| {
                let buckets = (cap * 8 / 7).next_power_of_two();
                buckets * (entry + 1)
            };
            let many: usize = t
                .routes
                .values()
                .map(|ps| match ps {
                    Paths::One(_) => 0,
                    Paths::Many(v) => 24 + v.capacity() * std::mem::size_of::<path::Path>(),
                })
                .sum();
            map(t.routes.capacity(), std::mem::size_of::<(P, Paths)>())
                + many
                + t.changed.capacity() * std::mem::size_of::<(P, loc::Snapshot)>()
        }
        table(&self.tables.v4) + table(&self.tables.v6) + self.intern.heap_estimate()
    }

    /// The Loc-RIB of a family: every prefix with its paths and their flags.
    pub fn routes(&self, family: Family) -> Vec<Route> {
        match family {
            Family::IPV4_UNICAST => self.routes_of(&self.tables.v4),
            Family::IPV6_UNICAST => self.routes_of(&self.tables.v6),
            _ => Vec::new(),
        }
    }

    /// One prefix, exact match.
    pub fn lookup(&self, prefix: IpNet) -> Option<Route> {
        match prefix {
            IpNet::V4(p) => self.tables.v4.routes.get(&p).map(|ps| self.route(p, ps)),
            IpNet::V6(p) => self.tables.v6.routes.get(&p).map(|ps| self.route(p, ps)),
        }
    }

    /// The Adj-RIB-In of a peer (what was accepted from it).
    pub fn adj_rib_in(&self, peer: PeerId, family: Family) -> Vec<(IpNet, PathView)> {
        let pick = |r: Route| {
            r.paths
                .into_iter()
                .filter(|p| p.peer == peer)
                .map(move |p| (r.prefix, p))
        };
        self.routes(family).into_iter().flat_map(pick).collect()
    }

    fn routes_of<P: Key>(&self, t: &Table<P>) -> Vec<Route> {
        let mut v: Vec<Route> = t.routes.iter().map(|(p, ps)| self.route(*p, ps)).collect();
        v.sort_by_key(|a| a.prefix);
        v
    }

    fn route<P: Key>(&self, prefix: P, paths: &Paths) -> Route {
        let slice = paths.as_slice();
        let srcs: Vec<SourceInfo> = slice.iter().map(|p| self.peers.source(p.peer)).collect();
        let cands: Vec<Candidate> = slice
            .iter()
            .zip(&srcs)
            .map(|(p, s)| Candidate {
                attrs: &p.attrs,
                kind: s.kind,
                peer: p.peer,
                router_id: s.router_id,
                peer_address: s.address,
                path_id: p.path_id,
                since: p.since,
            })
            .collect();
        let cfg = &self.local.decision;
        let best = slice.iter().position(|p| p.is_best());
        let reason = |i: usize| -> Option<Step> {
            let b = best?;
            if i != b {
                return compare(&cands[b], &cands[i], cfg).map(|x| x.1);
            }
            // The runner-up: the best of the others.
            let others = (0..cands.len()).filter(|&j| j != b);
            let runner = others.min_by(|&x, &y| {
                compare(&cands[x], &cands[y], cfg).map_or(std::cmp::Ordering::Equal, |r| r.0)
            })?;
            compare(&cands[b], &cands[runner], cfg).map(|x| x.1)
        };
        let mut views: Vec<PathView> = slice
            .iter()
            .enumerate()
            .map(|(i, p)| PathView {
                peer: p.peer,
                path_id: p.path_id,
                attrs: Arc::clone(&p.attrs),
                since: p.since,
                best: p.is_best(),
                multipath: p.is_multipath(),
                stale: p.is_stale(),
                reason: reason(i),
            })
            .collect();
        views.sort_by_key(|v| (!v.best, !v.multipath, v.peer, v.path_id));
        Route {
            prefix: prefix.net(),
            paths: views,
        }
    }
}
