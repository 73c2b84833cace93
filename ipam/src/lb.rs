//! LoadBalancer addresses for Services: pools in, assignments out, no Kubernetes client inside.
//!
//! The controller feeds it the AddressPools of type `service` ([`Allocator::new`],
//! [`Allocator::set_pools`]), then every Service's current `status.loadBalancer.ingress` IPs
//! ([`Allocator::restore`]) before asking for anything new ([`Allocator::assign`]), so a
//! controller restart moves no address.
//!
//! Rules, compatible with sart and extended where sart is silent:
//! - Without a pool list (annotation `sart.terassyi.net/addresspool`), a Service gets one address
//!   per family from that family's auto-assign pool (the lowest name if there are several).
//! - With a pool list, it gets one address from each listed pool of a family the Service uses, as
//!   in sart (two IPv4 pools listed → two IPv4 addresses). Listed pools of other families are
//!   skipped, so one annotation fits single- and dual-stack Services alike.
//! - Requested addresses (annotation `sart.terassyi.net/loadBalancerIPs`) must lie in an allowed
//!   pool (a listed one, or else any auto-assign pool); each stands in for the automatic address
//!   of its pool or family.
//! - Otherwise the lowest free address of the pool is given, starting at its network address
//!   (every address is usable, as in sart, whose docs show 10.0.1.0 given out).
//! - Two Services share an address only under MetalLB's rule: the same non-empty sharing key
//!   (annotation `sart.terassyi.net/allow-shared-ip`), no common (protocol, port), and the same
//!   backends for `externalTrafficPolicy: Local` (see [`LbRequest::local_selector`]). A Service
//!   with a sharing key joins an address already in use under that key before taking a free one.
//!   A shared address is free again when its last holder lets go.
//! - A pool's namespaceSelector decides which namespaces may use it ([`LbRequest::allowed_pools`],
//!   computed by the caller): for auto-assignment (pools with a selector before those without,
//!   then by name), named pools and requested addresses alike. Addresses are shared only within
//!   one namespace, and a refusal names another namespace's Service as [`Holder::OtherNamespace`].
//! - Pool changes move nothing by themselves. A Service's next `assign` keeps each address that
//!   still fits (in an allowed pool, sharing still allowed) and replaces the others; until then,
//!   addresses outside every pool are listed by [`Allocator::orphans`].

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;
use thiserror::Error;

use crate::family::{IpFamily, bounds, from_u128, is_normal};

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum LbError {
    #[error("address pool {pool:?} does not exist")]
    UnknownPool { pool: String },
    #[error("no address pool for {family}")]
    NoPool { family: IpFamily },
    #[error("requested address {ip} is not in any allowed address pool")]
    NotInPool { ip: IpAddr },
    #[error("requested address {ip} is taken by {by}")]
    RequestedIpTaken { ip: IpAddr, by: Holder },
    #[error("address pool {pool:?} is exhausted")]
    PoolExhausted { pool: String },
    #[error("{ip} is already held by {by}, and the two may not share it")]
    RestoreConflict { ip: IpAddr, by: Holder },
    #[error("address pool {pool:?} does not admit namespace {namespace:?} (its namespaceSelector)")]
    PoolNotAllowed { pool: String, namespace: String },
    #[error("address pool {pool:?} is defined more than once")]
    DuplicatePool { pool: String },
    #[error("address pool {pool:?}: CIDR {cidr} has host bits set")]
    HostBitsSet { pool: String, cidr: IpNet },
}

/// Who holds an address, as a Service may be told: its own namespace's Services by name,
/// others' not at all (a tenant learns nothing of another's Services from a refusal).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Holder {
    Service(ServiceKey),
    OtherNamespace,
}

impl Holder {
    fn seen_from(by: ServiceKey, asking: &ServiceKey) -> Holder {
        if by.namespace == asking.namespace {
            Holder::Service(by)
        } else {
            Holder::OtherNamespace
        }
    }
}

impl fmt::Display for Holder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Holder::Service(k) => write!(f, "{k}"),
            Holder::OtherNamespace => f.write_str("a Service of another namespace"),
        }
    }
}

/// An AddressPool of type `service`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LbPool {
    pub name: String,
    pub cidr: IpNet,
    pub auto_assign: bool,
    /// It has a namespaceSelector: among the auto-assign pools a namespace may use, those made
    /// for some namespaces come before those for all.
    pub selective: bool,
}

impl LbPool {
    fn family(&self) -> IpFamily {
        IpFamily::of_net(&self.cidr)
    }
}

/// A Service, by namespace and name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServiceKey {
    pub namespace: String,
    pub name: String,
}

impl ServiceKey {
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> ServiceKey {
        ServiceKey {
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

impl fmt::Display for ServiceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// A Service port's protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum L4Protocol {
    Tcp,
    Udp,
    Sctp,
}

/// The families a Service wants addresses for, from `spec.ipFamilies` (the first is the
/// primary) and `spec.ipFamilyPolicy`. The caller maps `SingleStack` (and `PreferDualStack`
/// with a single entry in `ipFamilies`) to `Single`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FamilyPolicy {
    Single(IpFamily),
    /// Both families where a pool exists; at least one.
    PreferDual(IpFamily),
    /// Both families, or an error.
    RequireDual(IpFamily),
}

impl FamilyPolicy {
    fn families(self) -> Vec<IpFamily> {
        match self {
            FamilyPolicy::Single(f) => vec![f],
            FamilyPolicy::PreferDual(f) | FamilyPolicy::RequireDual(f) => vec![f, f.other()],
        }
    }
}

/// What a Service asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LbRequest {
    pub families: FamilyPolicy,
    /// Pool names from `sart.terassyi.net/addresspool`; empty means the auto-assign pools.
    pub pools: Vec<String>,
    /// Addresses from `sart.terassyi.net/loadBalancerIPs`.
    pub ips: Vec<IpAddr>,
    /// `sart.terassyi.net/allow-shared-ip`; `None` or empty never shares.
    pub sharing_key: Option<String>,
    /// The Service's (protocol, port) pairs.
    pub ports: BTreeSet<(L4Protocol, u16)>,
    /// `None` for `externalTrafficPolicy: Cluster`; for `Local`, a canonical rendering of
    /// `spec.selector`. Sharing requires equality, which is MetalLB's rule: an address is
    /// advertised from the nodes with endpoints, so Local Services on one address must have the
    /// same endpoints, and Local cannot share with Cluster.
    pub local_selector: Option<String>,
    /// The pools the Service's namespace may use (their namespaceSelectors admit it); `None`:
    /// every pool.
    pub allowed_pools: Option<BTreeSet<String>>,
}

impl LbRequest {
    /// A request for the auto-assign pools, no requested addresses, no sharing.
    pub fn new(families: FamilyPolicy) -> LbRequest {
        LbRequest {
            families,
            pools: Vec::new(),
            ips: Vec::new(),
            sharing_key: None,
            ports: BTreeSet::new(),
            local_selector: None,
            allowed_pools: None,
        }
    }

    fn allows(&self, pool: &str) -> bool {
        self.allowed_pools.as_ref().is_none_or(|a| a.contains(pool))
    }

    /// MetalLB's sharing rule (symmetric).
    pub fn can_share_with(&self, other: &LbRequest) -> bool {
        let same_key = match (&self.sharing_key, &other.sharing_key) {
            (Some(a), Some(b)) => !a.is_empty() && a == b,
            _ => false,
        };
        same_key
            && self.local_selector == other.local_selector
            && self.ports.is_disjoint(&other.ports)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Holding {
    request: LbRequest,
    ips: Vec<IpAddr>,
}

/// One address a request needs: an address in any of `accept` fills it; failing that, the
/// lowest free one of `from`.
struct Need<'a> {
    accept: Vec<&'a LbPool>,
    from: &'a LbPool,
}

impl Need<'_> {
    fn accepts(&self, ip: IpAddr) -> bool {
        self.accept.iter().any(|p| p.cidr.contains(&ip))
    }
}

/// The LoadBalancer address allocator. See the module documentation for the rules.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Allocator {
    pools: BTreeMap<String, LbPool>,
    services: BTreeMap<ServiceKey, Holding>,
    /// Who holds each address, in key order: usually one Service (a set would take a whole
    /// B-tree node for it).
    holders: BTreeMap<IpAddr, Vec<ServiceKey>>,
}

impl Allocator {
    pub fn new(pools: Vec<LbPool>) -> Result<Allocator, LbError> {
        let mut allocator = Allocator::default();
        allocator.set_pools(pools)?;
        Ok(allocator)
    }

    /// Replaces the pools. No address moves: a Service keeps what it holds until its next
    /// [`Allocator::assign`], and those outside every pool show up in [`Allocator::orphans`].
    /// On error the pools are unchanged.
    pub fn set_pools(&mut self, pools: Vec<LbPool>) -> Result<(), LbError> {
        let mut by_name = BTreeMap::new();
        for pool in pools {
            if !is_normal(&pool.cidr) {
                return Err(LbError::HostBitsSet {
                    pool: pool.name,
                    cidr: pool.cidr,
                });
            }
            if by_name.contains_key(&pool.name) {
                return Err(LbError::DuplicatePool { pool: pool.name });
            }
            by_name.insert(pool.name.clone(), pool);
        }
        self.pools = by_name;
        Ok(())
    }

    /// The pools, by name.
    pub fn pools(&self) -> impl Iterator<Item = &LbPool> {
        self.pools.values()
    }

    /// Records the addresses a Service already has (its status), with no regard to pools, so
    /// that nothing moves. Call it for every Service before any [`Allocator::assign`], in a
    /// stable order (e.g. oldest Service first): when an address is held by an earlier Service
    /// that may not share it, the later one keeps its other addresses and gets
    /// [`LbError::RestoreConflict`]; its next `assign` gives it a replacement. Restoring a
    /// Service again replaces what was recorded for it.
    pub fn restore(
        &mut self,
        key: &ServiceKey,
        request: LbRequest,
        ips: &[IpAddr],
    ) -> Result<(), LbError> {
        let mut conflict = None;
        let mut kept = Vec::new();
        for &ip in ips {
            match self.blocker(key, &request, ip) {
                Some(by) => {
                    conflict.get_or_insert(LbError::RestoreConflict {
                        ip,
                        by: Holder::seen_from(by, key),
                    });
                }
                None => kept.push(ip),
            }
        }
        self.commit(key, request, kept);
        conflict.map_or(Ok(()), Err)
    }

    /// The addresses for a Service (sorted). What the Service holds and still fits is kept, so
    /// asking again with the same request returns the same addresses; what no longer fits is
    /// released. On error nothing changes.
    pub fn assign(&mut self, key: &ServiceKey, request: LbRequest) -> Result<Vec<IpAddr>, LbError> {
        let ips = self.plan(key, &request)?;
        self.commit(key, request, ips.clone());
        Ok(ips)
    }

    /// Lets go of what a Service holds in pools its namespace may no longer use (the pools its
    /// `request` allows); returns what it keeps. For a Service whose [`Allocator::assign`] was
    /// refused with [`LbError::PoolNotAllowed`], which changes nothing by itself.
    pub fn retain_allowed(&mut self, key: &ServiceKey, request: &LbRequest) -> Vec<IpAddr> {
        let held = self.ips(key).map(<[IpAddr]>::to_vec).unwrap_or_default();
        let allowed = |ip: &IpAddr| {
            self.pools
                .values()
                .filter(|p| p.cidr.contains(ip))
                .all(|p| request.allows(&p.name))
        };
        let (keep, drop): (Vec<IpAddr>, Vec<IpAddr>) = held.into_iter().partition(allowed);
        for ip in drop {
            self.unhold(key, ip);
        }
        if let Some(h) = self.services.get_mut(key) {
            h.ips = keep.clone();
        }
        keep
    }

    /// Forgets a Service and returns what it held; shared addresses stay with the others.
    pub fn release(&mut self, key: &ServiceKey) -> Vec<IpAddr> {
        let ips = self.services.remove(key).map(|h| h.ips).unwrap_or_default();
        for &ip in &ips {
            self.unhold(key, ip);
        }
        ips
    }

    /// What a Service holds, if it is known.
    pub fn ips(&self, key: &ServiceKey) -> Option<&[IpAddr]> {
        self.services.get(key).map(|h| h.ips.as_slice())
    }

    /// The request a Service's addresses were last assigned or restored for (without its
    /// `allowed_pools`, which is not kept).
    pub fn request(&self, key: &ServiceKey) -> Option<&LbRequest> {
        self.services.get(key).map(|h| &h.request)
    }

    /// Every known Service with its addresses, by key.
    pub fn services(&self) -> impl Iterator<Item = (&ServiceKey, &[IpAddr])> {
        self.services.iter().map(|(k, h)| (k, h.ips.as_slice()))
    }

    /// The Services holding an address.
    pub fn holders(&self, ip: IpAddr) -> impl Iterator<Item = &ServiceKey> {
        self.holders.get(&ip).into_iter().flatten()
    }

    /// Addresses held outside every pool (a pool was deleted or shrunk), by Service.
    pub fn orphans(&self) -> Vec<(ServiceKey, IpAddr)> {
        let in_a_pool = |ip: &IpAddr| self.pools.values().any(|p| p.cidr.contains(ip));
        self.services
            .iter()
            .flat_map(|(key, h)| {
                h.ips
                    .iter()
                    .filter(|ip| !in_a_pool(ip))
                    .map(move |ip| (key.clone(), *ip))
            })
            .collect()
    }

    /// The first other holder of `ip` that `key` may not share it with: sharing needs the
    /// same namespace (a sharing key is not a secret) and MetalLB's rule.
    fn blocker(&self, key: &ServiceKey, request: &LbRequest, ip: IpAddr) -> Option<ServiceKey> {
        self.holders(ip)
            .filter(|holder| *holder != key)
            .find(|holder| {
                holder.namespace != key.namespace
                    || self
                        .services
                        .get(*holder)
                        .is_none_or(|h| !request.can_share_with(&h.request))
            })
            .cloned()
    }

    fn needs(&self, key: &ServiceKey, request: &LbRequest) -> Result<Vec<Need<'_>>, LbError> {
        let families = request.families.families();
        let mut needs = Vec::new();
        if request.pools.is_empty() {
            for &family in &families {
                let mut autos: Vec<&LbPool> = self
                    .pools
                    .values()
                    .filter(|p| p.auto_assign && p.family() == family && request.allows(&p.name))
                    .collect();
                // Pools for some namespaces first, then by name.
                autos.sort_by_key(|p| (!p.selective, p.name.clone()));
                if let Some(&from) = autos.first() {
                    needs.push(Need {
                        accept: autos,
                        from,
                    });
                }
            }
        } else {
            let mut seen = BTreeSet::new();
            for name in &request.pools {
                let pool = self
                    .pools
                    .get(name)
                    .ok_or_else(|| LbError::UnknownPool { pool: name.clone() })?;
                if !request.allows(name) {
                    return Err(LbError::PoolNotAllowed {
                        pool: name.clone(),
                        namespace: key.namespace.clone(),
                    });
                }
                if seen.insert(name) && families.contains(&pool.family()) {
                    needs.push(Need {
                        accept: vec![pool],
                        from: pool,
                    });
                }
            }
        }
        let missing = |family: &IpFamily| !needs.iter().any(|n| n.from.family() == *family);
        let required = match request.families {
            FamilyPolicy::PreferDual(primary) if needs.is_empty() => vec![primary],
            FamilyPolicy::PreferDual(_) => vec![],
            FamilyPolicy::Single(_) | FamilyPolicy::RequireDual(_) => families,
        };
        match required.into_iter().find(missing) {
            Some(family) => Err(LbError::NoPool { family }),
            None => Ok(needs),
        }
    }

    fn plan(&self, key: &ServiceKey, request: &LbRequest) -> Result<Vec<IpAddr>, LbError> {
        let needs = self.needs(key, request)?;
        let mut filled = vec![false; needs.len()];
        let mut chosen: Vec<IpAddr> = Vec::new();
        // Requested addresses first: each fills the first open need that accepts it.
        for &ip in &request.ips {
            if chosen.contains(&ip) {
                continue;
            }
            if !needs.iter().any(|n| n.accepts(ip)) {
                if let Some(p) = self
                    .pools
                    .values()
                    .find(|p| p.cidr.contains(&ip) && !request.allows(&p.name))
                {
                    return Err(LbError::PoolNotAllowed {
                        pool: p.name.clone(),
                        namespace: key.namespace.clone(),
                    });
                }
                return Err(LbError::NotInPool { ip });
            }
            if let Some(by) = self.blocker(key, request, ip) {
                return Err(LbError::RequestedIpTaken {
                    ip,
                    by: Holder::seen_from(by, key),
                });
            }
            if let Some(i) = (0..needs.len()).find(|&i| !filled[i] && needs[i].accepts(ip)) {
                filled[i] = true;
            }
            chosen.push(ip);
        }
        // Then what the Service already holds and still fits.
        let held = self.ips(key).unwrap_or_default();
        for (need, filled) in needs.iter().zip(filled.iter_mut()).filter(|(_, f)| !**f) {
            let keep = held.iter().find(|&&ip| {
                !chosen.contains(&ip)
                    && need.accepts(ip)
                    && self.blocker(key, request, ip).is_none()
            });
            if let Some(&ip) = keep {
                chosen.push(ip);
                *filled = true;
            }
        }
        // Then new addresses.
        for (need, _) in needs.iter().zip(&filled).filter(|(_, f)| !**f) {
            let ip = self.pick(key, request, need.from, &chosen).ok_or_else(|| {
                LbError::PoolExhausted {
                    pool: need.from.name.clone(),
                }
            })?;
            chosen.push(ip);
        }
        chosen.sort();
        Ok(chosen)
    }

    /// An address of `pool` for `key`: one already shared under its sharing key if there is
    /// one, else the lowest address nobody else holds.
    fn pick(
        &self,
        key: &ServiceKey,
        request: &LbRequest,
        pool: &LbPool,
        chosen: &[IpAddr],
    ) -> Option<IpAddr> {
        let (network, broadcast) = (pool.cidr.network(), pool.cidr.broadcast());
        let unused = |ip: &IpAddr| !chosen.contains(ip);
        if request.sharing_key.as_ref().is_some_and(|k| !k.is_empty()) {
            let joinable = self
                .holders
                .range(network..=broadcast)
                .find(|(ip, holders)| {
                    unused(ip)
                        && holders.iter().any(|h| h != key)
                        && self.blocker(key, request, **ip).is_none()
                });
            if let Some((ip, _)) = joinable {
                return Some(*ip);
            }
        }
        // Each step past a candidate passes an address that is held or chosen, so this walks at
        // most (held + chosen) addresses.
        let (mut value, last) = bounds(&pool.cidr);
        loop {
            let ip = from_u128(pool.family(), value);
            if unused(&ip) && self.holders(ip).all(|h| h == key) {
                return Some(ip);
            }
            value = value.checked_add(1).filter(|v| *v <= last)?;
        }
    }

    fn commit(&mut self, key: &ServiceKey, mut request: LbRequest, mut ips: Vec<IpAddr>) {
        ips.sort();
        ips.dedup();
        self.release(key);
        for &ip in &ips {
            let holders = self.holders.entry(ip).or_default();
            if let Err(at) = holders.binary_search(key) {
                holders.insert(at, key.clone());
            }
        }
        // Which pools the namespace may use is asked anew at every assignment: kept, it would
        // be a set of pool names per Service that nothing reads.
        request.allowed_pools = None;
        self.services.insert(key.clone(), Holding { request, ips });
    }

    fn unhold(&mut self, key: &ServiceKey, ip: IpAddr) {
        if let Some(holders) = self.holders.get_mut(&ip) {
            holders.retain(|h| h != key);
            if holders.is_empty() {
                self.holders.remove(&ip);
            }
        }
    }
}
