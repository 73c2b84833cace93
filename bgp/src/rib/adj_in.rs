//! Inbound: an UPDATE from a peer into the Adj-RIB-In and, through selection, the Loc-RIB.
//!
//! - Withdrawals in the classic field and MP_UNREACH (IPv4/IPv6 unicast) remove the
//!   (prefix, peer, path id) path; announcements in the classic field (NEXT_HOP) and MP_REACH
//!   (IPv4 with an IPv4 or IPv6 next hop, RFC 8950; IPv6) add or replace it. Without add-path
//!   the path id is 0; with it, each id is a distinct path (RFC 7911).
//! - An UPDATE with a treat-as-withdraw error withdraws every prefix it announces
//!   (RFC 7606 §2).
//! - Loop detection: our AS in AS_PATH (RFC 4271 §9.1.2), our router id as ORIGINATOR_ID or our
//!   cluster id in CLUSTER_LIST (RFC 4456 §8) make the announcement a withdrawal.
//! - From eBGP peers LOCAL_PREF is discarded (RFC 7606 §7.5), and ORIGINATOR_ID and
//!   CLUSTER_LIST too (RFC 7606 §7.9, §7.10).
//! - End-of-RIB is reported, not stored. Families other than IPv4/IPv6 unicast are ignored.
//! - Import filter: announcements the peer's prefix list denies are treated as withdrawals and
//!   do not count toward max-prefix.
//! - Max-prefix: when the peer's path count exceeds its limit, [`Received::max_prefix_exceeded`]
//!   is set; the daemon sends Cease / Maximum Number of Prefixes Reached (RFC 4486 §4) and
//!   calls [`Rib::close`](super::Rib::close).
//!
//! The attribute set of an UPDATE is interned once and shared by all its prefixes.

use std::sync::Arc;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use super::loc::{Env, Key, Table};
use super::path::PeerKind;
use super::path::{Attrs, Path, PeerId};
use super::{Rib, RibError, Tables};
use crate::attribute::{MpReach, MpUnreach, NextHop, PathAttributes};
use crate::family::Family;
use crate::prefix::Nlri;
use crate::update::Update;

/// What one UPDATE did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Received {
    /// The UPDATE was an End-of-RIB marker for this family (RFC 4724 §2).
    pub end_of_rib: Option<Family>,
    /// Paths added or replaced.
    pub announced: usize,
    /// Paths removed (explicit withdrawals and rejected announcements of held paths).
    pub withdrawn: usize,
    /// Announced prefixes not accepted: treat-as-withdraw or a loop.
    pub rejected: usize,
    /// Announced prefixes the peer's import list denied.
    pub filtered: usize,
    /// The peer now holds more paths than its max-prefix limit.
    pub max_prefix_exceeded: bool,
}

/// Why an UPDATE's announcements are not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reject {
    TreatAsWithdraw,
    AsPathLoop,
    OriginatorLoop,
    ClusterLoop,
}

/// Picks a family's table out of [`Tables`].
pub(crate) trait TableOf: Sized {
    fn of(t: &Tables) -> &Table<Self>;
    fn of_mut(t: &mut Tables) -> &mut Table<Self>;
}

impl TableOf for Ipv4Net {
    fn of(t: &Tables) -> &Table<Self> {
        &t.v4
    }
    fn of_mut(t: &mut Tables) -> &mut Table<Self> {
        &mut t.v4
    }
}

impl TableOf for Ipv6Net {
    fn of(t: &Tables) -> &Table<Self> {
        &t.v6
    }
    fn of_mut(t: &mut Tables) -> &mut Table<Self> {
        &mut t.v6
    }
}

impl Rib {
    /// Processes one decoded UPDATE from `peer`. `now` is the receive time in seconds on any
    /// clock the caller keeps consistent (it is shown by the API and compared by the
    /// prefer-oldest option).
    pub fn receive(
        &mut self,
        peer: PeerId,
        update: Update,
        now: u32,
    ) -> Result<Received, RibError> {
        let slot = self.peers.get(peer).ok_or(RibError::UnknownPeer(peer))?;
        if slot.session.is_none() {
            return Err(RibError::NotEstablished(peer));
        }
        let kind = slot.kind;
        let mut r = Received::default();
        if let Some(f) = update.end_of_rib_family() {
            r.end_of_rib = Some(f);
            return Ok(r);
        }
        let treat_as_withdraw = update.treat_as_withdraw();
        let Update {
            withdrawn,
            mut attributes,
            mp_reach,
            mp_unreach,
            nlri,
            errors: _,
        } = update;

        r.withdrawn += self.withdraw_all(peer, &withdrawn);
        match &mp_unreach {
            Some(MpUnreach::Ipv4Unicast(v)) => r.withdrawn += self.withdraw_all(peer, v),
            Some(MpUnreach::Ipv6Unicast(v)) => r.withdrawn += self.withdraw_all(peer, v),
            _ => {}
        }

        let reject = if treat_as_withdraw {
            Some(Reject::TreatAsWithdraw)
        } else {
            self.loop_check(&attributes)
        };
        if reject.is_some() {
            let n = nlri.len() + mp_len(&mp_reach);
            r.rejected += n;
            r.withdrawn += self.withdraw_all(peer, &nlri);
            match &mp_reach {
                Some(MpReach::Ipv4Unicast { nlri, .. }) => {
                    r.withdrawn += self.withdraw_all(peer, nlri)
                }
                Some(MpReach::Ipv6Unicast { nlri, .. }) => {
                    r.withdrawn += self.withdraw_all(peer, nlri)
                }
                _ => {}
            }
        } else {
            if kind == PeerKind::Ebgp {
                attributes.local_pref = None;
                attributes.originator_id = None;
                attributes.cluster_list.clear();
            }
            if !nlri.is_empty() {
                self.announce_all(peer, attributes.clone(), None, &nlri, now, &mut r);
            }
            match &mp_reach {
                Some(MpReach::Ipv4Unicast { next_hop, nlri }) => {
                    self.announce_all(peer, attributes, Some(*next_hop), nlri, now, &mut r);
                }
                Some(MpReach::Ipv6Unicast { next_hop, nlri }) => {
                    let nh = Some(NextHop::V6(*next_hop));
                    self.announce_all(peer, attributes, nh, nlri, now, &mut r);
                }
                _ => {}
            }
        }
        if let Some(slot) = self.peers.get(peer) {
            r.max_prefix_exceeded = slot.config.max_prefixes.is_some_and(|m| slot.paths > m);
        }
        Ok(r)
    }

    fn loop_check(&self, a: &PathAttributes) -> Option<Reject> {
        if a.as_path
            .as_ref()
            .is_some_and(|p| p.contains(self.local.asn))
        {
            return Some(Reject::AsPathLoop);
        }
        if a.originator_id == Some(self.router_id) {
            return Some(Reject::OriginatorLoop);
        }
        if a.cluster_list.contains(&self.local.cluster_id) {
            return Some(Reject::ClusterLoop);
        }
        None
    }

    /// Adds what the peer's import list permits; what it denies is withdrawn, as if the peer
    /// had never sent it (a path accepted before the list changed goes too).
    fn announce_all<P: Key + TableOf + Into<IpNet>>(
        &mut self,
        peer: PeerId,
        attributes: PathAttributes,
        mp_next_hop: Option<NextHop>,
        nlri: &[Nlri<P>],
        now: u32,
        r: &mut Received,
    ) {
        // Which NLRI the import filter refuses; without a filter (the default) nothing is
        // copied.
        let denied: Vec<bool> = match self.peers.get(peer) {
            Some(s) if !s.config.import.is_empty() => nlri
                .iter()
                .map(|n| !s.config.import.permits(n.prefix))
                .collect(),
            _ => Vec::new(),
        };
        let is_denied = |i: usize| denied.get(i).copied().unwrap_or(false);
        let key = |n: &Nlri<P>| (n.prefix, n.path_id.unwrap_or(0));
        let n_denied = denied.iter().filter(|d| **d).count();
        if n_denied > 0 {
            r.filtered += n_denied;
            r.withdrawn += self.remove_paths(
                peer,
                nlri.iter()
                    .enumerate()
                    .filter(|(i, _)| is_denied(*i))
                    .map(|(_, n)| key(n)),
            );
        }
        if n_denied == nlri.len() {
            return;
        }
        let attrs = self.intern.intern(Attrs::new(attributes, mp_next_hop));
        let added = self.insert_paths(
            peer,
            &attrs,
            nlri.iter()
                .enumerate()
                .filter(|(i, _)| !is_denied(*i))
                .map(|(_, n)| key(n)),
            now,
        );
        self.intern.release(attrs);
        r.announced += added.0;
    }

    /// Inserts paths sharing `attrs`; returns (paths added or replaced, paths new).
    pub(crate) fn insert_paths<P: Key + TableOf>(
        &mut self,
        peer: PeerId,
        attrs: &Arc<Attrs>,
        prefixes: impl Iterator<Item = (P, u32)>,
        now: u32,
    ) -> (usize, usize) {
        let env = Env {
            peers: &self.peers,
            cfg: &self.local.decision,
        };
        let table = P::of_mut(&mut self.tables);
        let (mut n, mut fresh) = (0, 0);
        for (prefix, path_id) in prefixes {
            let path = Path {
                attrs: Arc::clone(attrs),
                peer,
                path_id,
                since: now,
                flags: 0,
            };
            let (old, is_new) = table.announce(prefix, path, &env);
            if let Some(old) = old {
                self.intern.release(old);
            }
            n += 1;
            fresh += usize::from(is_new);
        }
        if let Some(slot) = self.peers.get_mut(peer) {
            slot.paths = slot
                .paths
                .saturating_add(u32::try_from(fresh).unwrap_or(u32::MAX));
        }
        (n, fresh)
    }

    fn withdraw_all<P: Key + TableOf>(&mut self, peer: PeerId, nlri: &[Nlri<P>]) -> usize {
        self.remove_paths(
            peer,
            nlri.iter().map(|n| (n.prefix, n.path_id.unwrap_or(0))),
        )
    }

    /// Removes (prefix, path id) paths of `peer`; returns how many existed.
    pub(crate) fn remove_paths<P: Key + TableOf>(
        &mut self,
        peer: PeerId,
        prefixes: impl Iterator<Item = (P, u32)>,
    ) -> usize {
        let env = Env {
            peers: &self.peers,
            cfg: &self.local.decision,
        };
        let table = P::of_mut(&mut self.tables);
        let mut n = 0;
        for (prefix, id) in prefixes {
            n += table.remove(
                prefix,
                |p| p.peer == peer && p.path_id == id,
                &env,
                &mut self.intern,
            );
        }
        if let Some(slot) = self.peers.get_mut(peer) {
            slot.paths = slot
                .paths
                .saturating_sub(u32::try_from(n).unwrap_or(u32::MAX));
        }
        n
    }
}

fn mp_len(m: &Option<MpReach>) -> usize {
    match m {
        Some(MpReach::Ipv4Unicast { nlri, .. }) => nlri.len(),
        Some(MpReach::Ipv6Unicast { nlri, .. }) => nlri.len(),
        _ => 0,
    }
}
