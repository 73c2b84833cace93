//! A pod's interface in the kernel: the one part of the agent that touches it.
//!
//! The model (sart's, with a stable host name):
//! - a veth pair: `veth<11 hex digits>` on the node (a hash of container id and interface, so
//!   it is the same after a restart and fits IFNAMSIZ), the runtime's `CNI_IFNAME` in the pod;
//! - in the pod: each address as a /32 or /128, a scope-link route to the gateway and a default
//!   route through it;
//! - on the node: the gateway address on the host veth (so the node answers ARP and neighbour
//!   discovery for it; the same address on every veth is fine), and a scope-link route to each
//!   pod address through the host veth, with our route protocol [`ROUTE_PROTOCOL`].
//!
//! The gateway is the node's own address of that family (its InternalIP), else a link-local
//! one ([`LINK_LOCAL_V4`], [`LINK_LOCAL_V6`]).
//!
//! Every operation runs on a new OS thread with a runtime of its own: the pod side needs the
//! thread to `setns` into the pod's namespace, which must never happen on a tokio worker. The
//! thread ends with the operation, so no thread is ever handed back in a foreign namespace.

use std::fs::File;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

use futures::TryStreamExt;
use rtnetlink::packet_route::address::{AddressAttribute, AddressFlags};
use rtnetlink::packet_route::link::{InfoData, InfoVeth, LinkAttribute, LinkFlags, LinkMessage};
use rtnetlink::packet_route::route::{RouteAddress, RouteAttribute, RouteProtocol, RouteScope};
use rtnetlink::{Handle, LinkMessageBuilder, LinkUnspec, LinkVeth, RouteMessageBuilder};

use super::guard::POD_LINK_GROUP;
use daemon::routes::{each_route, table_of};

/// Pod routes on the node carry this protocol number (`ip route show proto 50`), sart's.
pub(crate) const ROUTE_PROTOCOL: u8 = 50;
/// The alias of every host veth the agent makes (`ip link` shows it), so that one left behind
/// can be told from anyone else's.
pub(crate) const ALIAS_PREFIX: &str = "sart-cni:";
/// The IPv4 gateway when the node has no IPv4 InternalIP.
pub(crate) const LINK_LOCAL_V4: Ipv4Addr = Ipv4Addr::new(169, 254, 1, 1);
/// The IPv6 gateway when the node has no IPv6 InternalIP.
pub(crate) const LINK_LOCAL_V6: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1);

#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("network namespace {path}: {source}")]
    Netns {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("entering network namespace {path}: {source}")]
    Setns { path: PathBuf, source: nix::Error },
    #[error("netlink: {0}")]
    Socket(std::io::Error),
    #[error("{what}: {source}")]
    Netlink {
        what: String,
        source: rtnetlink::Error,
    },
    #[error("interface {0} not found")]
    NoLink(String),
    #[error("{0}")]
    Check(String),
    #[error("starting a thread for kernel work: {0}")]
    Thread(std::io::Error),
    #[error("the kernel worker thread went away")]
    Lost,
}

/// The gateway addresses pods route through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Gateways {
    pub v4: Ipv4Addr,
    pub v6: Ipv6Addr,
}

impl Gateways {
    /// From the node's addresses: its first of each family, else the link-local one.
    pub(crate) fn from_node(addrs: &[IpAddr]) -> Self {
        let v4 = addrs.iter().find_map(|a| match a {
            IpAddr::V4(v) => Some(*v),
            IpAddr::V6(_) => None,
        });
        let v6 = addrs.iter().find_map(|a| match a {
            IpAddr::V6(v) => Some(*v),
            IpAddr::V4(_) => None,
        });
        Gateways {
            v4: v4.unwrap_or(LINK_LOCAL_V4),
            v6: v6.unwrap_or(LINK_LOCAL_V6),
        }
    }

    pub(crate) fn for_ip(&self, ip: IpAddr) -> IpAddr {
        match ip {
            IpAddr::V4(_) => self.v4.into(),
            IpAddr::V6(_) => self.v6.into(),
        }
    }
}

/// The node-side name of an attachment's veth: stable across restarts and versions (FNV-1a,
/// not std's hasher, whose output may change between Rust releases), 15 bytes at most.
/// Whether `name` has the shape of [`host_ifname`]'s names.
pub(crate) fn is_host_ifname(name: &str) -> bool {
    name.len() == 15
        && name.starts_with("veth")
        && name[4..]
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

pub(crate) fn host_ifname(container_id: &str, ifname: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in container_id
        .bytes()
        .chain(std::iter::once(b'/'))
        .chain(ifname.bytes())
    {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("veth{:011x}", h >> 20)
}

/// What to set up for one attachment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PodLink {
    pub netns: PathBuf,
    pub ifname: String,
    pub host_ifname: String,
    pub addresses: Vec<IpAddr>,
    pub gateways: Gateways,
}

/// What the runtime is told about the interfaces made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Made {
    pub host_mac: String,
    pub pod_mac: String,
}

fn prefix_len(ip: IpAddr) -> u8 {
    if ip.is_ipv4() { 32 } else { 128 }
}

fn mac_string(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn nl(what: impl Into<String>) -> impl FnOnce(rtnetlink::Error) -> NetError {
    let what = what.into();
    move |source| NetError::Netlink { what, source }
}

/// The errno of a netlink refusal (positive), if it is one.
fn errno(e: &rtnetlink::Error) -> Option<i32> {
    match e {
        rtnetlink::Error::NetlinkError(m) => Some(m.raw_code().abs()),
        _ => None,
    }
}

const ENODEV: i32 = 19;
const EEXIST: i32 = 17;
const ESRCH: i32 = 3;
const ENOENT: i32 = 2;

/// Runs `f` on a fresh OS thread with a current-thread runtime, and waits for it without
/// blocking the caller's runtime.
async fn on_thread<T, F, Fut>(name: &str, f: F) -> Result<T, NetError>
where
    T: Send + 'static,
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<T, NetError>>,
{
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            let r = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(NetError::Thread)
                .and_then(|rt| rt.block_on(f()));
            let _ = tx.send(r);
        })
        .map_err(NetError::Thread)?;
    rx.await.map_err(|_| NetError::Lost)?
}

/// A netlink connection in the calling thread's namespace.
fn connect() -> Result<Handle, NetError> {
    let (conn, handle, _) = rtnetlink::new_connection().map_err(NetError::Socket)?;
    tokio::spawn(conn);
    Ok(handle)
}

fn open_netns(path: &Path) -> Result<File, NetError> {
    File::open(path).map_err(|source| NetError::Netns {
        path: path.to_owned(),
        source,
    })
}

/// Moves the calling thread into the namespace (only ever called on our own threads).
fn enter(path: &Path, ns: &File) -> Result<(), NetError> {
    nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWNET).map_err(|source| NetError::Setns {
        path: path.to_owned(),
        source,
    })
}

async fn link_by_name(h: &Handle, name: &str) -> Result<Option<LinkMessage>, NetError> {
    let mut links = h.link().get().match_name(name.to_owned()).execute();
    match links.try_next().await {
        Ok(l) => Ok(l),
        Err(e) if errno(&e) == Some(ENODEV) => Ok(None),
        Err(e) => Err(NetError::Netlink {
            what: format!("looking up {name}"),
            source: e,
        }),
    }
}

fn mac_of(l: &LinkMessage) -> String {
    l.attributes
        .iter()
        .find_map(|a| match a {
            LinkAttribute::Address(m) => Some(mac_string(m)),
            _ => None,
        })
        .unwrap_or_default()
}

async fn add_address(h: &Handle, index: u32, ip: IpAddr, what: &str) -> Result<(), NetError> {
    let mut req = h.address().add(index, ip, prefix_len(ip)).replace();
    // No duplicate address detection: the pod's address is ours alone, and the gateway is meant
    // to be on every host veth; DAD would only hold them tentative for a second.
    if ip.is_ipv6() {
        req.message_mut()
            .attributes
            .push(AddressAttribute::Flags(AddressFlags::Nodad));
    }
    req.execute()
        .await
        .map_err(nl(format!("adding {ip} to {what}")))
}

/// A scope-link route to `dst` through interface `index`.
fn link_route(
    index: u32,
    dst: IpAddr,
    protocol: u8,
) -> rtnetlink::packet_route::route::RouteMessage {
    match dst {
        IpAddr::V4(a) => RouteMessageBuilder::<Ipv4Addr>::new()
            .destination_prefix(a, 32)
            .output_interface(index)
            .scope(RouteScope::Link)
            .protocol(RouteProtocol::Other(protocol))
            .build(),
        IpAddr::V6(a) => RouteMessageBuilder::<Ipv6Addr>::new()
            .destination_prefix(a, 128)
            .output_interface(index)
            .protocol(RouteProtocol::Other(protocol))
            .build(),
    }
}

/// Adds [`link_route`] (in the thread's namespace).
async fn add_link_route(h: &Handle, index: u32, dst: IpAddr, protocol: u8) -> Result<(), NetError> {
    h.route()
        .add(link_route(index, dst, protocol))
        .replace()
        .execute()
        .await
        .map_err(nl(format!("adding a route to {dst}")))
}

async fn add_default_route(h: &Handle, index: u32, gw: IpAddr) -> Result<(), NetError> {
    let msg = match gw {
        IpAddr::V4(g) => RouteMessageBuilder::<Ipv4Addr>::new()
            .gateway(g)
            .output_interface(index)
            .protocol(RouteProtocol::Other(ROUTE_PROTOCOL))
            .build(),
        IpAddr::V6(g) => RouteMessageBuilder::<Ipv6Addr>::new()
            .gateway(g)
            .output_interface(index)
            .protocol(RouteProtocol::Other(ROUTE_PROTOCOL))
            .build(),
    };
    h.route()
        .add(msg)
        .replace()
        .execute()
        .await
        .map_err(nl(format!("adding a default route via {gw}")))
}

async fn delete_link(h: &Handle, name: &str) -> Result<bool, NetError> {
    let Some(l) = link_by_name(h, name).await? else {
        return Ok(false);
    };
    match h.link().del(l.header.index).execute().await {
        Ok(()) => Ok(true),
        Err(e) if errno(&e) == Some(ENODEV) => Ok(false),
        Err(e) => Err(NetError::Netlink {
            what: format!("deleting {name}"),
            source: e,
        }),
    }
}

/// Makes the attachment's interfaces, addresses and routes. Idempotent: an earlier attempt's
/// veth is replaced.
pub(crate) async fn setup(link: PodLink) -> Result<Made, NetError> {
    on_thread("sart-podnet", move || async move {
        let ns = open_netns(&link.netns)?;
        // On the node (this thread starts in the agent's namespace).
        let h = connect()?;
        let veth = || {
            let peer = LinkMessageBuilder::<LinkUnspec>::new()
                .name(link.ifname.clone())
                .setns_by_fd(std::os::fd::AsRawFd::as_raw_fd(&ns))
                .build();
            // In sart's group from the start: guarded (see [`super::guard`]) and never taken
            // for one of the node's own interfaces (see [`super::forwarding`]).
            LinkVeth::new(&link.host_ifname, &link.ifname)
                .link_group(POD_LINK_GROUP)
                .set_info_data(InfoData::Veth(InfoVeth::Peer(peer)))
                .build()
        };
        match h.link().add(veth()).execute().await {
            Ok(()) => {}
            // An earlier attempt's veth (its pod side goes with it): replace it.
            // Else the pod's name is still taken by a veth on its way out (deleted by an agent
            // that has restarted since): give it a second.
            Err(e) if errno(&e) == Some(EEXIST) => {
                delete_link(&h, &link.host_ifname).await?;
                let mut tries = 0;
                loop {
                    match h.link().add(veth()).execute().await {
                        Ok(()) => break,
                        Err(e) if errno(&e) == Some(EEXIST) && tries < 20 => {
                            tries += 1;
                            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        }
                        Err(e) if errno(&e) == Some(EEXIST) => {
                            return Err(NetError::Check(format!(
                                "interface {} already exists in {}",
                                link.ifname,
                                link.netns.display()
                            )));
                        }
                        Err(e) => return Err(nl(format!("creating veth {}", link.host_ifname))(e)),
                    }
                }
            }
            Err(e) => return Err(nl(format!("creating veth {}", link.host_ifname))(e)),
        }
        let host = link_by_name(&h, &link.host_ifname)
            .await?
            .ok_or_else(|| NetError::NoLink(link.host_ifname.clone()))?;
        let hi = host.header.index;
        h.link()
            .set(
                LinkUnspec::new_with_index(hi)
                    .up()
                    .alias(format!("{ALIAS_PREFIX}{}", link.ifname))
                    // Already so from creation; again for a veth an older agent made.
                    .link_group(POD_LINK_GROUP)
                    .build(),
            )
            .execute()
            .await
            .map_err(nl(format!("setting {} up", link.host_ifname)))?;
        let families: Vec<IpAddr> = link
            .addresses
            .iter()
            .map(|ip| link.gateways.for_ip(*ip))
            .collect();
        for gw in &families {
            add_address(&h, hi, *gw, &link.host_ifname).await?;
        }
        for ip in &link.addresses {
            add_link_route(&h, hi, *ip, ROUTE_PROTOCOL).await?;
        }
        let host_mac = mac_of(&host);

        // In the pod.
        enter(&link.netns, &ns)?;
        let p = connect()?;
        let pod = link_by_name(&p, &link.ifname)
            .await?
            .ok_or_else(|| NetError::NoLink(link.ifname.clone()))?;
        let pi = pod.header.index;
        if let Some(lo) = link_by_name(&p, "lo").await?
            && !lo.header.flags.contains(LinkFlags::Up)
        {
            p.link()
                .set(LinkUnspec::new_with_index(lo.header.index).up().build())
                .execute()
                .await
                .map_err(nl("setting lo up"))?;
        }
        p.link()
            .set(LinkUnspec::new_with_index(pi).up().build())
            .execute()
            .await
            .map_err(nl(format!("setting {} up", link.ifname)))?;
        for ip in &link.addresses {
            add_address(&p, pi, *ip, &link.ifname).await?;
        }
        for gw in &families {
            // IPv6 link-local gateways need no route of their own.
            if !matches!(gw, IpAddr::V6(g) if g.is_unicast_link_local()) {
                add_link_route(&p, pi, *gw, ROUTE_PROTOCOL).await?;
            }
            add_default_route(&p, pi, *gw).await?;
        }
        Ok(Made {
            host_mac,
            pod_mac: mac_of(&pod),
        })
    })
    .await
}

/// Removes the attachment from the node: its routes at once (the pod is unreachable when this
/// returns), then its veth (the pod side goes with it). Unregistering a device waits for RCU
/// grace periods, tens of milliseconds that nothing needs to wait for, so the veth is deleted by
/// a thread of its own, by index (a veth made again under the same name is never touched).
/// `None` when there was no veth; else a receiver that turns `true` once the veth is gone.
pub(crate) async fn teardown(
    host_ifname: String,
    addresses: Vec<IpAddr>,
) -> Result<Option<Deletion>, NetError> {
    on_thread("sart-podnet", move || async move {
        let h = connect()?;
        let Some(l) = link_by_name(&h, &host_ifname).await? else {
            return Ok(None);
        };
        let index = l.header.index;
        for ip in &addresses {
            let msg = link_route(index, *ip, ROUTE_PROTOCOL);
            match h.route().del(msg).execute().await {
                Ok(()) => {}
                // Gone already (with the link, or by hand).
                Err(e) if matches!(errno(&e), Some(ESRCH) | Some(ENODEV)) => {}
                Err(e) => return Err(nl(format!("removing the route to {ip}"))(e)),
            }
        }
        let (done, deletion) = tokio::sync::watch::channel(false);
        let name = host_ifname.clone();
        let spawned = std::thread::Builder::new()
            .name("sart-veth-del".into())
            .spawn(move || {
                delete_in_background(name, index);
                let _ = done.send(true);
            });
        if spawned.is_err() {
            // No thread to spare: do it here.
            delete_by_index(&h, index).await?;
            let (_, gone) = tokio::sync::watch::channel(true);
            return Ok(Some(gone));
        }
        Ok(Some(deletion))
    })
    .await
}

/// Turns `true` when a veth [`teardown`] started deleting is gone.
pub(crate) type Deletion = tokio::sync::watch::Receiver<bool>;

async fn delete_by_index(h: &Handle, index: u32) -> Result<(), NetError> {
    match h.link().del(index).execute().await {
        Ok(()) => Ok(()),
        Err(e) if errno(&e) == Some(ENODEV) => Ok(()),
        Err(e) => Err(nl(format!("deleting interface {index}"))(e)),
    }
}

fn delete_in_background(name: String, index: u32) {
    let r = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(NetError::Thread)
        .and_then(|rt| {
            rt.block_on(async {
                let h = connect()?;
                delete_by_index(&h, index).await
            })
        });
    if let Err(e) = r {
        tracing::warn!(veth = %name, error = %e, "deleting a pod's veth");
    }
}

/// Deletes veths this agent made (their alias says so) whose names are not in `known`: left by
/// an agent that died between a DEL and the end of its deletion. How many. The others are put
/// in the pod link group if an older agent made them without it.
pub(crate) async fn sweep(known: std::collections::BTreeSet<String>) -> Result<usize, NetError> {
    on_thread("sart-podnet", move || async move {
        let h = connect()?;
        let links = all_links(&h).await?;
        let mut n = 0;
        for l in links {
            let name = l.attributes.iter().find_map(|a| match a {
                LinkAttribute::IfName(n) => Some(n.clone()),
                _ => None,
            });
            let ours = l
                .attributes
                .iter()
                .any(|a| matches!(a, LinkAttribute::IfAlias(s) if s.starts_with(ALIAS_PREFIX)));
            if let Some(name) = name
                && ours
            {
                if !known.contains(&name) {
                    delete_by_index(&h, l.header.index).await?;
                    n += 1;
                } else if !l.attributes.contains(&LinkAttribute::Group(POD_LINK_GROUP)) {
                    // Made by an agent from before source validation: guard it too.
                    join_pod_group(&h, l.header.index, &name).await?;
                }
            }
        }
        Ok(n)
    })
    .await
}

/// Puts an interface in the pod link group, where source validation covers it.
async fn join_pod_group(h: &Handle, index: u32, name: &str) -> Result<(), NetError> {
    h.link()
        .set(
            LinkUnspec::new_with_index(index)
                .link_group(POD_LINK_GROUP)
                .build(),
        )
        .execute()
        .await
        .map_err(nl(format!("putting {name} in the pod link group")))
}

/// Every interface of the thread's namespace.
async fn all_links(h: &Handle) -> Result<Vec<LinkMessage>, NetError> {
    h.link()
        .get()
        .execute()
        .try_collect()
        .await
        .map_err(nl("listing interfaces"))
}

/// Every host route to a pod address of the pod route protocol, in the main table and in
/// sart's table 120, with the veth it goes through (see [`super::adopt`]).
pub(crate) async fn pod_routes() -> Result<Vec<super::adopt::PodRoute>, NetError> {
    on_thread("sart-podnet", move || async move {
        let h = connect()?;
        let links = all_links(&h).await?;
        let mut out = Vec::new();
        each_route(&h, |r| out.extend(pod_route(r, &links)))
            .await
            .map_err(nl("reading routes"))?;
        Ok(out)
    })
    .await
}

/// `r` as a pod route, if it is one (see [`pod_routes`]).
fn pod_route(
    r: &rtnetlink::packet_route::route::RouteMessage,
    links: &[LinkMessage],
) -> Option<super::adopt::PodRoute> {
    use super::adopt::{MAIN_TABLE, SART_TABLE};
    let table = table_of(r);
    let host_len =
        r.header.destination_prefix_length == 32 || r.header.destination_prefix_length == 128;
    if !host_len
        || r.header.protocol != RouteProtocol::Other(ROUTE_PROTOCOL)
        || (table != MAIN_TABLE && table != SART_TABLE)
    {
        return None;
    }
    let ip = r.attributes.iter().find_map(|a| match a {
        RouteAttribute::Destination(RouteAddress::Inet(d)) => Some(IpAddr::V4(*d)),
        RouteAttribute::Destination(RouteAddress::Inet6(d)) => Some(IpAddr::V6(*d)),
        _ => None,
    })?;
    let oif = r.attributes.iter().find_map(|a| match a {
        RouteAttribute::Oif(o) => Some(*o),
        _ => None,
    })?;
    let link = links.iter().find(|l| l.header.index == oif)?;
    let attr = |f: fn(&LinkAttribute) -> Option<String>| link.attributes.iter().find_map(f);
    Some(super::adopt::PodRoute {
        ip,
        table,
        link: attr(|a| match a {
            LinkAttribute::IfName(n) => Some(n.clone()),
            _ => None,
        })?,
        alias: attr(|a| match a {
            LinkAttribute::IfAlias(s) => Some(s.clone()),
            _ => None,
        }),
    })
}

/// Moves an adopted pod's routes from sart's table 120 to the main table, through the same
/// veth, and puts the veth in the pod link group (source validation covers it from then on).
pub(crate) async fn migrate(host_ifname: String, ips: Vec<IpAddr>) -> Result<(), NetError> {
    on_thread("sart-podnet", move || async move {
        let h = connect()?;
        let l = link_by_name(&h, &host_ifname)
            .await?
            .ok_or_else(|| NetError::NoLink(host_ifname.clone()))?;
        let index = l.header.index;
        for ip in &ips {
            add_link_route(&h, index, *ip, ROUTE_PROTOCOL).await?;
            let mut old = link_route(index, *ip, ROUTE_PROTOCOL);
            old.attributes
                .retain(|a| !matches!(a, RouteAttribute::Table(_)));
            old.header.table = super::adopt::SART_TABLE as u8;
            match h.route().del(old).execute().await {
                Ok(()) => {}
                Err(e) if matches!(errno(&e), Some(ESRCH) | Some(ENODEV)) => {}
                Err(e) => return Err(nl(format!("removing sart's route to {ip}"))(e)),
            }
        }
        join_pod_group(&h, index, &host_ifname).await
    })
    .await
}

/// Removes sart's `ip rule … lookup 120` (both families) once no route is left in table 120.
/// Whether it was removed (or was not there).
pub(crate) async fn drop_sart_rule() -> Result<bool, NetError> {
    use rtnetlink::IpVersion;
    use rtnetlink::packet_route::rule::RuleAttribute;
    on_thread("sart-podnet", move || async move {
        let h = connect()?;
        let mut in_use = false;
        each_route(&h, |r| in_use |= table_of(r) == super::adopt::SART_TABLE)
            .await
            .map_err(nl("reading routes"))?;
        if in_use {
            return Ok(false);
        }
        for v in [IpVersion::V4, IpVersion::V6] {
            let rules: Vec<_> = h
                .rule()
                .get(v)
                .execute()
                .try_collect()
                .await
                .map_err(nl("reading rules"))?;
            for r in rules {
                let table = r
                    .attributes
                    .iter()
                    .find_map(|a| match a {
                        RuleAttribute::Table(t) => Some(*t),
                        _ => None,
                    })
                    .unwrap_or(u32::from(r.header.table));
                if table == super::adopt::SART_TABLE {
                    match h.rule().del(r).execute().await {
                        Ok(()) => {}
                        Err(e) if matches!(errno(&e), Some(ESRCH) | Some(ENOENT)) => {}
                        Err(e) => return Err(nl("removing sart's rule for table 120")(e)),
                    }
                }
            }
        }
        Ok(true)
    })
    .await
}

/// Checks the attachment as [`setup`] left it: the host veth up with a route to each address,
/// and the pod's interface holding every address with a default route per family.
pub(crate) async fn check(link: PodLink) -> Result<(), NetError> {
    on_thread("sart-podnet", move || async move {
        let ns = open_netns(&link.netns)?;
        let h = connect()?;
        let host = link_by_name(&h, &link.host_ifname)
            .await?
            .ok_or_else(|| NetError::NoLink(link.host_ifname.clone()))?;
        for ip in &link.addresses {
            if !has_route(&h, *ip, Some(host.header.index)).await? {
                return Err(NetError::Check(format!(
                    "no route to {ip} through {} on the node",
                    link.host_ifname
                )));
            }
        }
        enter(&link.netns, &ns)?;
        let p = connect()?;
        let pod = link_by_name(&p, &link.ifname)
            .await?
            .ok_or_else(|| NetError::NoLink(link.ifname.clone()))?;
        let have: Vec<IpAddr> = p
            .address()
            .get()
            .set_link_index_filter(pod.header.index)
            .execute()
            .try_collect::<Vec<_>>()
            .await
            .map_err(nl("reading addresses"))?
            .into_iter()
            .flat_map(|m| m.attributes)
            .filter_map(|a| match a {
                AddressAttribute::Address(ip) => Some(ip),
                _ => None,
            })
            .collect();
        for ip in &link.addresses {
            if !have.contains(ip) {
                return Err(NetError::Check(format!(
                    "{} in the pod lacks {ip} (has {have:?})",
                    link.ifname
                )));
            }
            let any = if ip.is_ipv4() {
                IpAddr::V4(Ipv4Addr::UNSPECIFIED)
            } else {
                IpAddr::V6(Ipv6Addr::UNSPECIFIED)
            };
            if !has_route(&p, any, Some(pod.header.index)).await? {
                return Err(NetError::Check(format!(
                    "the pod has no default route for {ip}'s family"
                )));
            }
        }
        Ok(())
    })
    .await
}

/// Whether the main table has a route to exactly `dst` (host prefix, or the default route for
/// an unspecified address) through `oif`.
async fn has_route(h: &Handle, dst: IpAddr, oif: Option<u32>) -> Result<bool, NetError> {
    let (query, want_len) = match dst {
        IpAddr::V4(a) => (
            RouteMessageBuilder::<Ipv4Addr>::new().build(),
            if a.is_unspecified() { 0 } else { 32 },
        ),
        IpAddr::V6(a) => (
            RouteMessageBuilder::<Ipv6Addr>::new().build(),
            if a.is_unspecified() { 0 } else { 128 },
        ),
    };
    let routes: Vec<_> = match h.route().get(query).execute().try_collect().await {
        Ok(r) => r,
        Err(e) if errno(&e) == Some(ESRCH) => Vec::new(),
        Err(e) => return Err(nl("reading routes")(e)),
    };
    Ok(routes.iter().any(|r| {
        let dst_ok = if want_len == 0 {
            r.header.destination_prefix_length == 0
        } else {
            r.header.destination_prefix_length == want_len
                && r.attributes.iter().any(|a| {
                    matches!(a, RouteAttribute::Destination(RouteAddress::Inet(d)) if IpAddr::V4(*d) == dst)
                        || matches!(a, RouteAttribute::Destination(RouteAddress::Inet6(d)) if IpAddr::V6(*d) == dst)
                })
        };
        let oif_ok = oif.is_none_or(|i| {
            r.attributes
                .iter()
                .any(|a| matches!(a, RouteAttribute::Oif(o) if *o == i))
        });
        dst_ok && oif_ok
    }))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn host_names_are_stable_and_short() {
        let a = host_ifname("0123456789abcdef0123456789abcdef", "eth0");
        assert_eq!(a.len(), 15);
        assert!(a.starts_with("veth"));
        // Stable: the same input always gives the same name (the value is pinned so a change
        // of hash, which would strand veths of a running node, fails here).
        assert_eq!(a, "veth2b08ae25566");
        assert!(is_host_ifname(&a));
        for other in ["veth0", "eth0", "vethABCDEF01234", "veth2b08ae255661"] {
            assert!(!is_host_ifname(other), "{other}");
        }
        assert_eq!(host_ifname("c1", "eth0"), host_ifname("c1", "eth0"));
        assert_ne!(host_ifname("c1", "eth0"), host_ifname("c1", "eth1"));
        assert_ne!(host_ifname("c1", "eth0"), host_ifname("c2", "eth0"));
    }

    #[test]
    fn gateways_from_the_node() {
        let g = Gateways::from_node(&["198.18.0.2".parse().unwrap()]);
        assert_eq!(g.v4, Ipv4Addr::new(198, 18, 0, 2));
        assert_eq!(g.v6, LINK_LOCAL_V6);
        let g = Gateways::from_node(&["fd00::2".parse().unwrap()]);
        assert_eq!(g.v4, LINK_LOCAL_V4);
        assert_eq!(
            g.for_ip("fd00:64::1".parse().unwrap()),
            "fd00::2".parse::<IpAddr>().unwrap()
        );
        assert_eq!(mac_string(&[0x0a, 0, 0xff]), "0a:00:ff");
    }
}
