//! What one established session still has to send: its Adj-RIB-Out changes, in order, with a
//! memory bound that does not depend on how long the peer stops reading.
//!
//! - While the peer keeps up, changes are queued as the UPDATEs the speaker encoded once for the
//!   whole update group (shared, not copied).
//! - Once `limit` octets are queued, further changes are coalesced by prefix: the newest
//!   announcement or withdrawal of a prefix replaces the one before, so a stuck peer costs at
//!   most its queued octets plus one entry per prefix of the table, however long it is stuck
//!   (the send hold timer of RFC 9687 ends it). Coalesced changes are encoded when the writer
//!   gets to them, packed by attribute set.
//! - Markers (End-of-RIB, BoRR/EoRR) keep their place behind the changes queued before them.
//! - A route refresh already queued for a family is not queued again (RFC 2918 asks for the
//!   table; one copy on its way answers every request made meanwhile).
//!
//! Pure: no I/O, no lock. The session wraps it in a mutex shared with the speaker.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use bgp::rib::{Attrs, OutUpdate, Prefixes};
use bgp::{Context, Family, FamilySet};
use ipnet::{Ipv4Net, Ipv6Net};
use tracing::warn;

/// Octets of encoded UPDATEs queued for a peer before changes are coalesced instead.
pub(crate) const DEFAULT_LIMIT: usize = 2 << 20;

/// Coalesced prefixes encoded per [`Outbox::take`]: bounds what the writer holds at once.
const TAKE_PREFIXES: usize = 4096;

#[derive(Debug)]
enum Item {
    Message(Arc<Vec<u8>>),
    Changes(Changes),
    /// A route refresh of this family is queued up to here.
    RefreshEnd(Family),
}

/// The latest change per prefix: attributes to announce, or `None` to withdraw.
#[derive(Debug, Default)]
struct Changes {
    v4: HashMap<Ipv4Net, Option<Arc<Attrs>>>,
    v6: HashMap<Ipv6Net, Option<Arc<Attrs>>>,
}

impl Changes {
    fn len(&self) -> usize {
        self.v4.len() + self.v6.len()
    }

    /// Adds `out`; how many prefixes are new to the set.
    fn merge(&mut self, out: &OutUpdate) -> usize {
        let before = self.len();
        match &out.prefixes {
            Prefixes::V4(v) => {
                for p in v {
                    self.v4.insert(*p, out.attrs.clone());
                }
            }
            Prefixes::V6(v) => {
                for p in v {
                    self.v6.insert(*p, out.attrs.clone());
                }
            }
        }
        self.len() - before
    }

    /// Removes up to `max` prefixes, as change sets grouped by attribute set (withdrawals first,
    /// then announcements; prefixes sorted, so the result does not depend on hashing).
    fn split_off(&mut self, max: usize) -> Vec<OutUpdate> {
        let mut out = Vec::new();
        let n4 = max.min(self.v4.len());
        let keys: Vec<Ipv4Net> = self.v4.keys().take(n4).copied().collect();
        let taken: Vec<(Ipv4Net, Option<Arc<Attrs>>)> = keys
            .into_iter()
            .filter_map(|k| self.v4.remove(&k).map(|a| (k, a)))
            .collect();
        group(taken, Prefixes::V4, &mut out);
        let n6 = (max - n4).min(self.v6.len());
        let keys: Vec<Ipv6Net> = self.v6.keys().take(n6).copied().collect();
        let taken: Vec<(Ipv6Net, Option<Arc<Attrs>>)> = keys
            .into_iter()
            .filter_map(|k| self.v6.remove(&k).map(|a| (k, a)))
            .collect();
        group(taken, Prefixes::V6, &mut out);
        out
    }
}

/// Change sets of one family: one withdrawal, one announcement per attribute set (by pointer:
/// the RIB interns attributes, so equal sets share one).
fn group<P: Ord + Copy>(
    mut taken: Vec<(P, Option<Arc<Attrs>>)>,
    wrap: fn(Vec<P>) -> Prefixes,
    out: &mut Vec<OutUpdate>,
) {
    taken.sort_by_key(|(p, _)| *p);
    let mut withdrawn = Vec::new();
    let mut by_attrs: Vec<(Arc<Attrs>, Vec<P>)> = Vec::new();
    let mut index: HashMap<*const Attrs, usize> = HashMap::new();
    for (p, a) in taken {
        match a {
            None => withdrawn.push(p),
            Some(a) => {
                let i = *index.entry(Arc::as_ptr(&a)).or_insert_with(|| {
                    by_attrs.push((a.clone(), Vec::new()));
                    by_attrs.len() - 1
                });
                by_attrs[i].1.push(p);
            }
        }
    }
    if !withdrawn.is_empty() {
        out.push(OutUpdate {
            attrs: None,
            prefixes: wrap(withdrawn),
            except: None,
        });
    }
    for (a, ps) in by_attrs {
        out.push(OutUpdate {
            attrs: Some(a),
            prefixes: wrap(ps),
            except: None,
        });
    }
}

/// One session's unsent output; see the module documentation.
#[derive(Debug)]
pub(crate) struct Outbox {
    /// How to encode for this peer (what the session negotiated).
    ctx: Context,
    items: VecDeque<Item>,
    /// Octets of the queued messages.
    queued: usize,
    limit: usize,
    /// Prefixes in coalesced change sets.
    coalesced: usize,
    refreshing: FamilySet,
}

impl Outbox {
    pub(crate) fn new(ctx: Context, limit: usize) -> Self {
        Outbox {
            ctx,
            items: VecDeque::new(),
            queued: 0,
            limit,
            coalesced: 0,
            refreshing: FamilySet::new(),
        }
    }

    /// How to encode for this peer.
    pub(crate) fn context(&self) -> &Context {
        &self.ctx
    }

    /// Queues a change. `encoded` gives `out` as UPDATEs for this peer's context (an update
    /// group's shared messages, or encoded here), called only while the queue is under its
    /// limit; past it the change is coalesced instead.
    pub(crate) fn push(
        &mut self,
        out: &OutUpdate,
        encoded: impl FnOnce(&Context) -> Vec<Arc<Vec<u8>>>,
    ) {
        if out.prefixes.is_empty() {
            return;
        }
        if let Some(Item::Changes(c)) = self.items.back_mut() {
            self.coalesced += c.merge(out);
            return;
        }
        if self.queued >= self.limit {
            let mut c = Changes::default();
            self.coalesced += c.merge(out);
            self.items.push_back(Item::Changes(c));
            return;
        }
        for m in encoded(&self.ctx) {
            self.push_message(m);
        }
    }

    /// Queues a change of this peer alone, encoded here if it is not coalesced.
    pub(crate) fn push_own(&mut self, out: &OutUpdate) {
        self.push(out, |ctx| encode(out, ctx));
    }

    /// Queues a message in order: End-of-RIB, a route refresh's BoRR or EoRR.
    pub(crate) fn push_message(&mut self, m: Arc<Vec<u8>>) {
        self.queued += m.len();
        self.items.push_back(Item::Message(m));
    }

    /// Whether a route refresh of `family` should be queued now: not while one is on its way.
    /// When it returns true the caller queues the table and then [`Self::end_refresh`].
    pub(crate) fn start_refresh(&mut self, family: Family) -> bool {
        if self.refreshing.contains(family) {
            return false;
        }
        self.refreshing.insert(family);
        true
    }

    pub(crate) fn end_refresh(&mut self, family: Family) {
        self.items.push_back(Item::RefreshEnd(family));
    }

    /// Messages to write next, in order: at least one when anything is queued, and no more
    /// than about `max_octets` (a coalesced set is encoded [`TAKE_PREFIXES`] prefixes at a time).
    pub(crate) fn take(&mut self, max_octets: usize) -> Vec<Arc<Vec<u8>>> {
        let mut out = Vec::new();
        let mut octets = 0;
        while octets < max_octets {
            let Some(item) = self.items.pop_front() else {
                break;
            };
            match item {
                Item::Message(m) => {
                    self.queued -= m.len();
                    octets += m.len();
                    out.push(m);
                }
                Item::RefreshEnd(f) => {
                    self.refreshing = self.refreshing.iter().filter(|x| *x != f).collect();
                }
                Item::Changes(mut c) => {
                    let before = c.len();
                    let sets = c.split_off(TAKE_PREFIXES);
                    self.coalesced -= before - c.len();
                    if c.len() > 0 {
                        self.items.push_front(Item::Changes(c));
                    }
                    for set in &sets {
                        for m in encode(set, &self.ctx) {
                            octets += m.len();
                            out.push(m);
                        }
                    }
                }
            }
        }
        out
    }

    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Octets of encoded messages queued.
    pub(crate) fn queued_octets(&self) -> usize {
        self.queued
    }

    /// Prefixes whose change waits coalesced.
    pub(crate) fn coalesced_prefixes(&self) -> usize {
        self.coalesced
    }
}

/// `out` as UPDATEs for `ctx`, split to its maximum message size.
pub(crate) fn encode(out: &OutUpdate, ctx: &Context) -> Vec<Arc<Vec<u8>>> {
    match out.encode_split(ctx) {
        Ok(v) => v.into_iter().map(Arc::new).collect(),
        Err(e) => {
            warn!(error = %e, "could not encode an UPDATE");
            Vec::new()
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;
    use bgp::rib::Attrs;
    use bgp::{Message, PathAttributes};

    fn attrs(med: u32) -> Arc<Attrs> {
        Arc::new(Attrs {
            next_hop: Some(bgp::attribute::NextHop::V4("198.18.0.1".parse().unwrap())),
            prepend: 0,
            attrs: PathAttributes {
                origin: Some(bgp::Origin::Igp),
                as_path: Some(bgp::AsPath::default()),
                med: Some(med),
                ..PathAttributes::default()
            },
        })
    }

    fn v4(p: &[&str], a: Option<Arc<Attrs>>) -> OutUpdate {
        OutUpdate {
            attrs: a,
            prefixes: Prefixes::V4(p.iter().map(|s| s.parse().unwrap()).collect()),
            except: None,
        }
    }

    /// What the peer would end up with, replaying the messages: prefix -> MED (None: withdrawn).
    fn replay(msgs: &[Arc<Vec<u8>>], ctx: &Context) -> Vec<(String, Option<u32>)> {
        let mut rib = std::collections::BTreeMap::new();
        for m in msgs {
            let Message::Update(u) = Message::decode(m, ctx).unwrap() else {
                continue;
            };
            for w in &u.withdrawn {
                rib.insert(w.prefix.to_string(), None);
            }
            for n in &u.nlri {
                rib.insert(n.prefix.to_string(), u.attributes.med);
            }
        }
        rib.into_iter().collect()
    }

    fn drain(o: &mut Outbox) -> Vec<Arc<Vec<u8>>> {
        let mut all = Vec::new();
        loop {
            let t = o.take(1 << 16);
            if t.is_empty() {
                return all;
            }
            all.extend(t);
        }
    }

    #[test]
    fn under_the_limit_the_group_messages_are_shared() {
        let ctx = Context::default();
        let mut o = Outbox::new(ctx.clone(), 1 << 20);
        let out = v4(&["198.18.1.0/24"], Some(attrs(1)));
        let enc = encode(&out, &ctx);
        o.push(&out, |_| enc.clone());
        assert_eq!(o.coalesced_prefixes(), 0);
        assert_eq!(o.queued_octets(), enc[0].len());
        let t = o.take(1 << 16);
        assert!(Arc::ptr_eq(&t[0], &enc[0]), "not copied");
        assert!(o.is_empty());
        assert_eq!(o.queued_octets(), 0);
    }

    #[test]
    fn a_stuck_peer_costs_one_entry_per_prefix() {
        let ctx = Context::default();
        let mut o = Outbox::new(ctx.clone(), 100);
        // A flapping table: 1,000 rounds of 50 prefixes announced, re-announced, withdrawn.
        for round in 0..1000u32 {
            for i in 0..50 {
                let p = format!("198.18.{i}.0/24");
                let a = (round % 3 != 2).then(|| attrs(round));
                let out = v4(&[&p], a);
                o.push_own(&out);
            }
        }
        // Only the first messages were kept encoded; the rest is one entry per prefix.
        assert!(o.queued_octets() < 100 + 64, "{}", o.queued_octets());
        assert_eq!(o.coalesced_prefixes(), 50);
        let got = replay(&drain(&mut o), &ctx);
        // Round 999: 999 % 3 == 0, announced with MED 999.
        assert_eq!(got.len(), 50);
        assert!(got.iter().all(|(_, med)| *med == Some(999)), "{got:?}");
        assert_eq!(o.coalesced_prefixes(), 0);
    }

    #[test]
    fn order_is_kept_across_messages_markers_and_coalesced_changes() {
        let ctx = Context::default();
        let mut o = Outbox::new(ctx.clone(), 1);
        // Queued encoded (under the limit at first), then coalesced.
        o.push_own(&v4(&["198.18.1.0/24"], Some(attrs(1))));
        o.push_own(&v4(&["198.18.1.0/24"], None));
        o.push_own(&v4(&["198.18.2.0/24"], Some(attrs(2))));
        let eor = Arc::new(
            Message::Update(bgp::Update::end_of_rib(Family::IPV4_UNICAST))
                .encode(&ctx)
                .unwrap(),
        );
        o.push_message(eor.clone());
        // After the marker: a set of its own, not merged into the one before it.
        o.push_own(&v4(&["198.18.1.0/24"], Some(attrs(3))));
        let msgs = drain(&mut o);
        let eor_at = msgs.iter().position(|m| Arc::ptr_eq(m, &eor)).unwrap();
        assert_eq!(
            replay(&msgs[..eor_at], &ctx),
            [
                ("198.18.1.0/24".to_string(), None),
                ("198.18.2.0/24".to_string(), Some(2))
            ]
        );
        assert_eq!(
            replay(&msgs[eor_at + 1..], &ctx),
            [("198.18.1.0/24".to_string(), Some(3))]
        );
    }

    #[test]
    fn coalesced_changes_are_packed_by_attribute_set() {
        let ctx = Context::default();
        let mut o = Outbox::new(ctx.clone(), 0);
        let shared = attrs(7);
        for i in 0..200 {
            o.push_own(&v4(&[&format!("198.18.{i}.0/24")], Some(shared.clone())));
        }
        let msgs = drain(&mut o);
        assert_eq!(msgs.len(), 1, "200 prefixes, one attribute set: one UPDATE");
        assert_eq!(replay(&msgs, &ctx).len(), 200);
    }

    #[test]
    fn take_is_bounded_and_the_rest_keeps_coalescing() {
        let ctx = Context::default();
        let mut o = Outbox::new(ctx.clone(), 0);
        for i in 0..10_000u32 {
            let p = format!("100.64.{}.{}/32", i / 256, i % 256);
            o.push_own(&v4(&[&p], Some(attrs(i))));
        }
        let first = o.take(1);
        assert!(!first.is_empty());
        assert_eq!(o.coalesced_prefixes(), 10_000 - TAKE_PREFIXES);
        // A change for a prefix still waiting replaces it; one already taken is sent again.
        o.push_own(&v4(&["100.64.0.0/32"], None));
        let mut all = first;
        all.extend(drain(&mut o));
        let got = replay(&all, &ctx);
        assert_eq!(got.len(), 10_000);
        assert!(got.contains(&("100.64.0.0/32".to_string(), None)));
    }

    #[test]
    fn one_refresh_per_family_on_its_way() {
        let mut o = Outbox::new(Context::default(), 1 << 20);
        assert!(o.start_refresh(Family::IPV4_UNICAST));
        assert!(!o.start_refresh(Family::IPV4_UNICAST));
        assert!(o.start_refresh(Family::IPV6_UNICAST));
        o.push_own(&v4(&["198.18.1.0/24"], Some(attrs(1))));
        o.end_refresh(Family::IPV4_UNICAST);
        assert!(!o.start_refresh(Family::IPV4_UNICAST));
        // Once the writer has taken the refresh, another may be queued.
        drain(&mut o);
        assert!(o.start_refresh(Family::IPV4_UNICAST));
        assert!(!o.start_refresh(Family::IPV6_UNICAST));
    }
}
