//! `sartd fib`: runs sart's channels (see [`super::channels`]).
//!
//! ```text
//!  speaker ──FibApi──► BGP subscriber ─┐                      ┌─► kernel tables (FIB tasks)
//!  kernel tables ──notifications/dump──┼─► channel table ─────┤
//!                                      │   (one per channel)  └─► speaker API (AddPath)
//! ```
//!
//! One loop owns every channel's [`Rib`]; servers and watchers send it what they hear and the
//! publishers take its changes, none of which waits on the network. Kernel routes of protocol
//! BGP (186) are never taken from a table: they are the speaker's own (or another BGP
//! daemon's), and taking them back would loop.
//!
//! The kernel tables a channel writes keep a previous run's routes until each of its
//! subscribers has said everything once (the speaker's `EndOfRib`, the first dump of a table),
//! or [`CONVERGE_AFTER`] at the latest, for sart's speaker, which never says so. On exit, the
//! tables keep their routes (the next run takes them over) and the speakers written to withdraw
//! the channel's paths (nothing else would).

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use anyhow::Context as _;
use futures::StreamExt;
use ipnet::IpNet;
use proto::v1;
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::packet_route::route::RouteMessage;
use rtnetlink::sys::AsyncSocket as _;
use rtnetlink::{Handle, MulticastGroup};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{mpsc, oneshot};
use tonic::{Request, Response, Status};
use tracing::{info, warn};

use super::channel::{Change, Origin, Rib, kernel_distance};
use super::channels::{Channel, Config, Publisher, Subscriber};
use super::{Command, RESYNC, announce, kernel, wire};
use daemon::api_listener::Listener;
use daemon::routes::table_of;

/// The latest a written table's leftovers wait for the subscribers to have said everything.
pub(crate) const CONVERGE_AFTER: Duration = Duration::from_secs(120);

enum Input {
    Bgp {
        sub: usize,
        call: Call,
    },
    KernelRoute {
        table: u32,
        prefix: IpNet,
        metric: u32,
        route: Option<super::channel::Route>,
    },
    KernelDump {
        table: u32,
        routes: BTreeMap<(IpNet, u32), super::channel::Route>,
    },
    KernelSynced,
    Channels(oneshot::Sender<Vec<v1::Channel>>),
    Routes(String, oneshot::Sender<Option<Vec<v1::Route>>>),
}

/// A FibApi call, from the speaker sending to a BGP subscriber.
enum Call {
    Set(IpNet, Option<super::channel::Route>),
    AddNextHops(IpNet, super::channel::Route),
    RemoveNextHops(IpNet, BTreeSet<IpAddr>),
    EndOfRib,
    List(Option<bool>, oneshot::Sender<Vec<v1::Route>>),
    Get(IpNet, oneshot::Sender<Option<v1::Route>>),
}

struct Chan {
    cfg: Channel,
    rib: Rib,
    /// Per subscriber: has it said everything once?
    synced: Vec<bool>,
    converged: bool,
    tables: Vec<u32>,
    announcers: Vec<mpsc::Sender<announce::Msg>>,
}

/// A BGP subscriber endpoint (channels may share one): what its callers sent, and the
/// (channel, subscriber) pairs it feeds.
struct BgpSub {
    routes: BTreeMap<IpNet, super::channel::Route>,
    members: Vec<(usize, usize)>,
}

struct Daemon {
    chans: Vec<Chan>,
    subs: Vec<BgpSub>,
    kernel_members: BTreeMap<u32, Vec<(usize, usize)>>,
    fibs: BTreeMap<u32, mpsc::Sender<Command>>,
    /// Changes for each written table since the last flush: a FIB task installs a batch with
    /// many writes in flight, one change at a time with one.
    pending: BTreeMap<u32, Vec<(IpNet, Option<super::plan::Want>)>>,
}

/// Inputs handled before the tables' changes are handed on.
const BATCH: usize = 1024;

pub(crate) async fn run(config: Config) -> anyhow::Result<()> {
    let (tx, mut rx) = mpsc::channel::<Input>(4096);
    let mut d = Daemon {
        chans: Vec::new(),
        subs: Vec::new(),
        kernel_members: BTreeMap::new(),
        fibs: BTreeMap::new(),
        pending: BTreeMap::new(),
    };
    let mut sub_endpoints: Vec<String> = Vec::new();
    for (ci, c) in config.channels.iter().enumerate() {
        let mut chan = Chan {
            cfg: c.clone(),
            rib: Rib::default(),
            synced: vec![false; c.subscribers.len()],
            converged: false,
            tables: Vec::new(),
            announcers: Vec::new(),
        };
        for (si, s) in c.subscribers.iter().enumerate() {
            match s {
                Subscriber::Bgp { endpoint } => {
                    let i = match sub_endpoints.iter().position(|e| e == endpoint) {
                        Some(i) => i,
                        None => {
                            sub_endpoints.push(endpoint.clone());
                            d.subs.push(BgpSub {
                                routes: BTreeMap::new(),
                                members: Vec::new(),
                            });
                            sub_endpoints.len() - 1
                        }
                    };
                    d.subs[i].members.push((ci, si));
                }
                Subscriber::Kernel { tables } => {
                    for t in tables {
                        d.kernel_members.entry(*t).or_default().push((ci, si));
                    }
                }
            }
        }
        for p in &c.publishers {
            match p {
                Publisher::Kernel { tables } => {
                    for t in tables {
                        let fib = super::start(*t)
                            .await
                            .with_context(|| format!("channel {}: kernel table {t}", c.name))?;
                        d.fibs.insert(*t, fib);
                        chan.tables.push(*t);
                    }
                }
                Publisher::Bgp {
                    endpoint,
                    attributes,
                } => chan.announcers.push(
                    announce::start(endpoint, attributes)
                        .map_err(anyhow::Error::msg)
                        .with_context(|| format!("channel {}", c.name))?,
                ),
            }
        }
        info!(channel = %c.name, subscribers = ?c.subscribers, publishers = ?c.publishers, "channel started");
        d.chans.push(chan);
    }
    for (i, endpoint) in sub_endpoints.iter().enumerate() {
        let l = bind(endpoint)
            .await
            .with_context(|| format!("BGP subscriber {endpoint}"))?;
        let svc = v1::fib_api_server::FibApiServer::new(FibApi {
            sub: i,
            tx: tx.clone(),
        });
        daemon::api_listener::serve(
            tonic::transport::Server::builder().add_service(svc),
            l,
            endpoint,
        );
        info!(%endpoint, "BGP subscriber: FibApi listening");
    }
    let l = bind(&config.endpoint)
        .await
        .with_context(|| format!("FibManagerApi {}", config.endpoint))?;
    let svc = v1::fib_manager_api_server::FibManagerApiServer::new(Manager { tx: tx.clone() });
    daemon::api_listener::serve(
        tonic::transport::Server::builder().add_service(svc),
        l,
        &config.endpoint,
    );
    if !d.kernel_members.is_empty() {
        let tables: BTreeSet<u32> = d.kernel_members.keys().copied().collect();
        let watcher = Watcher::open(tables, tx.clone()).context("kernel subscriber")?;
        tokio::spawn(watcher.run());
    }
    drop(tx);

    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let fallback = tokio::time::sleep(CONVERGE_AFTER);
    tokio::pin!(fallback);
    let mut fell_back = false;
    loop {
        tokio::select! {
            Some(input) = rx.recv() => {
                d.input(input).await;
                for _ in 1..BATCH {
                    let Ok(input) = rx.try_recv() else { break };
                    d.input(input).await;
                }
                d.flush().await;
            }
            () = &mut fallback, if !fell_back => {
                fell_back = true;
                for ci in 0..d.chans.len() {
                    if !d.chans[ci].converged {
                        info!(channel = %d.chans[ci].cfg.name, "subscribers did not all say they are done: taking what they sent as everything");
                        d.converge(ci).await;
                    }
                }
            }
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
    }
    info!("shutting down");
    d.flush().await;
    for c in &d.chans {
        for a in &c.announcers {
            let (done, wait) = oneshot::channel();
            if a.send(announce::Msg::Exit(done)).await.is_ok() {
                let _ = tokio::time::timeout(Duration::from_secs(10), wait).await;
            }
        }
    }
    for f in d.fibs.values() {
        let (done, wait) = oneshot::channel();
        if f.send(Command::Exit { keep: true, done }).await.is_ok() {
            let _ = wait.await;
        }
    }
    Ok(())
}

async fn bind(endpoint: &str) -> anyhow::Result<Listener> {
    if let Some(path) = proto::unix_path(endpoint) {
        return Ok(Listener::Unix(daemon::unix_socket::bind(
            std::path::Path::new(path),
        )?));
    }
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host(endpoint)
        .await
        .with_context(|| format!("{endpoint:?} is not host:port or unix:///path"))?
        .collect();
    let addr = addrs
        .first()
        .with_context(|| format!("{endpoint} resolves to nothing"))?;
    Ok(Listener::Tcp(
        tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("listening on {addr}"))?,
    ))
}

impl Daemon {
    async fn input(&mut self, input: Input) {
        match input {
            Input::Bgp { sub, call } => self.call(sub, call).await,
            Input::KernelRoute {
                table,
                prefix,
                metric,
                route,
            } => {
                for (ci, si) in self.kernel_members.get(&table).cloned().unwrap_or_default() {
                    let c = &mut self.chans[ci];
                    if !c.cfg.versions.carries(&prefix) {
                        continue;
                    }
                    let o = Origin {
                        subscriber: si,
                        table,
                        metric,
                    };
                    let changes: Vec<Change> =
                        c.rib.set(o, prefix, route.clone()).into_iter().collect();
                    self.publish(ci, changes).await;
                }
            }
            Input::KernelDump { table, routes } => {
                for (ci, si) in self.kernel_members.get(&table).cloned().unwrap_or_default() {
                    let c = &mut self.chans[ci];
                    let versions = c.cfg.versions;
                    let carried: BTreeMap<(IpNet, u32), super::channel::Route> = routes
                        .iter()
                        .filter(|((p, _), _)| versions.carries(p))
                        .map(|(k, r)| (*k, r.clone()))
                        .collect();
                    let changes = c.rib.replace_table(si, table, &carried);
                    self.publish(ci, changes).await;
                }
            }
            Input::KernelSynced => {
                for (ci, si) in self
                    .kernel_members
                    .values()
                    .flatten()
                    .copied()
                    .collect::<Vec<_>>()
                {
                    self.synced(ci, si).await;
                }
            }
            Input::Channels(reply) => {
                let _ = reply.send(self.chans.iter().map(|c| describe(&c.cfg)).collect());
            }
            Input::Routes(name, reply) => {
                let routes = self.chans.iter().find(|c| c.cfg.name == name).map(|c| {
                    c.rib
                        .selected()
                        .map(|(p, r)| wire::encode(p, r, 0))
                        .collect()
                });
                let _ = reply.send(routes);
            }
        }
    }

    async fn call(&mut self, sub: usize, call: Call) {
        let Some(s) = self.subs.get_mut(sub) else {
            return;
        };
        let (prefix, route) = match call {
            Call::Set(p, r) => (p, r),
            Call::AddNextHops(p, mut r) => {
                if let Some(old) = s.routes.get(&p) {
                    r.next_hops.extend(old.next_hops.iter().copied());
                }
                (p, Some(r))
            }
            Call::RemoveNextHops(p, gone) => {
                let Some(mut r) = s.routes.get(&p).cloned() else {
                    return;
                };
                r.next_hops.retain(|h| !gone.contains(h));
                (p, (!r.next_hops.is_empty()).then_some(r))
            }
            Call::EndOfRib => {
                for (ci, si) in s.members.clone() {
                    self.synced(ci, si).await;
                }
                return;
            }
            Call::List(v4, reply) => {
                let routes = s
                    .routes
                    .iter()
                    .filter(|(p, _)| v4.is_none_or(|v4| p.addr().is_ipv4() == v4))
                    .map(|(p, r)| wire::encode(*p, r, 0))
                    .collect();
                let _ = reply.send(routes);
                return;
            }
            Call::Get(p, reply) => {
                let _ = reply.send(s.routes.get(&p).map(|r| wire::encode(p, r, 0)));
                return;
            }
        };
        match &route {
            Some(r) => s.routes.insert(prefix, r.clone()),
            None => s.routes.remove(&prefix),
        };
        for (ci, si) in s.members.clone() {
            let c = &mut self.chans[ci];
            if !c.cfg.versions.carries(&prefix) {
                continue;
            }
            let changes: Vec<Change> = c
                .rib
                .set(Origin::bgp(si), prefix, route.clone())
                .into_iter()
                .collect();
            self.publish(ci, changes).await;
        }
    }

    async fn synced(&mut self, ci: usize, si: usize) {
        let c = &mut self.chans[ci];
        if let Some(s) = c.synced.get_mut(si) {
            *s = true;
        }
        if c.synced.iter().all(|s| *s) {
            self.converge(ci).await;
        }
    }

    async fn converge(&mut self, ci: usize) {
        if self.chans[ci].converged {
            return;
        }
        // What was selected before goes in first, so none of it is taken for a leftover.
        self.flush().await;
        let c = &mut self.chans[ci];
        c.converged = true;
        for t in &c.tables {
            if let Some(f) = self.fibs.get(t) {
                let _ = f.send(Command::Converged).await;
            }
        }
    }

    /// Hands the changes gathered for each table to its FIB task.
    async fn flush(&mut self) {
        for (t, routes) in std::mem::take(&mut self.pending) {
            if let Some(f) = self.fibs.get(&t) {
                let _ = f.send(Command::Routes(routes)).await;
            }
        }
    }

    /// Hands a channel's changes to its publishers (to its tables at the next flush).
    async fn publish(&mut self, ci: usize, changes: Vec<Change>) {
        if changes.is_empty() {
            return;
        }
        let c = &self.chans[ci];
        let routes: Vec<(IpNet, Option<super::plan::Want>)> = changes
            .iter()
            .map(|ch| (ch.prefix, ch.best.as_ref().and_then(wire::want)))
            .collect();
        for t in &c.tables {
            self.pending
                .entry(*t)
                .or_default()
                .extend(routes.iter().cloned());
        }
        for a in &c.announcers {
            for ch in &changes {
                let _ = a
                    .send(announce::Msg::Set(ch.prefix, ch.best.is_some()))
                    .await;
            }
        }
    }
}

fn describe(c: &Channel) -> v1::Channel {
    let bgp = |endpoint: &str| v1::ChProtocol {
        r#type: "bgp".into(),
        endpoint: endpoint.to_owned(),
        tables: Vec::new(),
    };
    let kernel = |tables: &[u32]| v1::ChProtocol {
        r#type: "kernel".into(),
        endpoint: String::new(),
        tables: tables.iter().map(|t| *t as i32).collect(),
    };
    v1::Channel {
        name: c.name.clone(),
        subscribers: c
            .subscribers
            .iter()
            .map(|s| match s {
                Subscriber::Bgp { endpoint } => bgp(endpoint),
                Subscriber::Kernel { tables } => kernel(tables),
            })
            .collect(),
        publishers: c
            .publishers
            .iter()
            .map(|p| match p {
                Publisher::Bgp { endpoint, .. } => bgp(endpoint),
                Publisher::Kernel { tables } => kernel(tables),
            })
            .collect(),
    }
}

// ------------------------------------------------------------------------------ FibApi server

struct FibApi {
    sub: usize,
    tx: mpsc::Sender<Input>,
}

impl FibApi {
    async fn send(&self, call: Call) -> Result<(), Status> {
        self.tx
            .send(Input::Bgp {
                sub: self.sub,
                call,
            })
            .await
            .map_err(|_| Status::unavailable("sartd fib is shutting down"))
    }
}

fn destination(s: &str) -> Result<IpNet, Status> {
    s.parse::<IpNet>()
        .map(|p| p.trunc())
        .map_err(|_| Status::invalid_argument(format!("destination {s:?} is not a prefix")))
}

/// sart's `IpVersion`: 0 any, 2 IPv4, 10 IPv6.
fn version(v: i32) -> Result<Option<bool>, Status> {
    match v {
        0 => Ok(None),
        2 => Ok(Some(true)),
        10 => Ok(Some(false)),
        v => Err(Status::invalid_argument(format!(
            "ip version {v}: use 2 or 10"
        ))),
    }
}

fn route_of(r: Option<&v1::Route>) -> Result<(IpNet, super::channel::Route), Status> {
    let r = r.ok_or_else(|| Status::invalid_argument("route is required"))?;
    wire::decode(r).map_err(Status::invalid_argument)
}

#[tonic::async_trait]
impl v1::fib_api_server::FibApi for FibApi {
    async fn get_route(
        &self,
        req: Request<v1::GetRouteRequest>,
    ) -> Result<Response<v1::GetRouteResponse>, Status> {
        let p = destination(&req.get_ref().destination)?;
        let (reply, answer) = oneshot::channel();
        self.send(Call::Get(p, reply)).await?;
        let route = answer
            .await
            .map_err(|_| Status::unavailable("shutting down"))?;
        match route {
            Some(route) => Ok(Response::new(v1::GetRouteResponse { route: Some(route) })),
            None => Err(Status::not_found(format!("no route to {p}"))),
        }
    }

    async fn list_routes(
        &self,
        req: Request<v1::ListRoutesRequest>,
    ) -> Result<Response<v1::ListRoutesResponse>, Status> {
        let v = version(req.get_ref().version)?;
        let (reply, answer) = oneshot::channel();
        self.send(Call::List(v, reply)).await?;
        let routes = answer
            .await
            .map_err(|_| Status::unavailable("shutting down"))?;
        Ok(Response::new(v1::ListRoutesResponse { routes }))
    }

    async fn add_route(&self, req: Request<v1::AddRouteRequest>) -> Result<Response<()>, Status> {
        let (p, r) = route_of(req.get_ref().route.as_ref())?;
        self.send(Call::Set(p, Some(r))).await?;
        Ok(Response::new(()))
    }

    async fn delete_route(
        &self,
        req: Request<v1::DeleteRouteRequest>,
    ) -> Result<Response<()>, Status> {
        let p = destination(&req.get_ref().destination)?;
        self.send(Call::Set(p, None)).await?;
        Ok(Response::new(()))
    }

    async fn add_multi_path_route(
        &self,
        req: Request<v1::AddMultiPathRouteRequest>,
    ) -> Result<Response<()>, Status> {
        let (p, r) = route_of(req.get_ref().route.as_ref())?;
        self.send(Call::AddNextHops(p, r)).await?;
        Ok(Response::new(()))
    }

    async fn delete_multi_path_route(
        &self,
        req: Request<v1::DeleteMultiPathRouteRequest>,
    ) -> Result<Response<()>, Status> {
        let r = req.get_ref();
        let p = destination(&r.destination)?;
        let gone = r
            .gateways
            .iter()
            .map(|g| {
                g.parse::<IpAddr>().map_err(|_| {
                    Status::invalid_argument(format!("gateway {g:?} is not an address"))
                })
            })
            .collect::<Result<BTreeSet<IpAddr>, Status>>()?;
        self.send(Call::RemoveNextHops(p, gone)).await?;
        Ok(Response::new(()))
    }

    async fn end_of_rib(&self, _req: Request<v1::EndOfRibRequest>) -> Result<Response<()>, Status> {
        self.send(Call::EndOfRib).await?;
        Ok(Response::new(()))
    }
}

// ----------------------------------------------------------------------- FibManagerApi server

struct Manager {
    tx: mpsc::Sender<Input>,
}

impl Manager {
    async fn channels(&self) -> Result<Vec<v1::Channel>, Status> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Input::Channels(reply))
            .await
            .map_err(|_| Status::unavailable("shutting down"))?;
        answer
            .await
            .map_err(|_| Status::unavailable("shutting down"))
    }
}

#[tonic::async_trait]
impl v1::fib_manager_api_server::FibManagerApi for Manager {
    async fn get_channel(
        &self,
        req: Request<v1::GetChannelRequest>,
    ) -> Result<Response<v1::GetChannelResponse>, Status> {
        let name = &req.get_ref().name;
        let channel = self
            .channels()
            .await?
            .into_iter()
            .find(|c| &c.name == name)
            .ok_or_else(|| Status::not_found(format!("no channel {name:?}")))?;
        Ok(Response::new(v1::GetChannelResponse {
            channel: Some(channel),
        }))
    }

    async fn list_channel(
        &self,
        _req: Request<v1::ListChannelRequest>,
    ) -> Result<Response<v1::ListChannelResponse>, Status> {
        Ok(Response::new(v1::ListChannelResponse {
            channels: self.channels().await?,
        }))
    }

    async fn get_routes(
        &self,
        req: Request<v1::GetRoutesRequest>,
    ) -> Result<Response<v1::GetRoutesResponse>, Status> {
        let name = req.into_inner().channel;
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Input::Routes(name.clone(), reply))
            .await
            .map_err(|_| Status::unavailable("shutting down"))?;
        match answer
            .await
            .map_err(|_| Status::unavailable("shutting down"))?
        {
            Some(routes) => Ok(Response::new(v1::GetRoutesResponse { routes })),
            None => Err(Status::not_found(format!("no channel {name:?}"))),
        }
    }
}

// --------------------------------------------------------------------- the kernel subscriber

/// Follows the subscribed tables: a dump at start and every [`RESYNC`] (notifications can be
/// lost), the kernel's route notifications in between.
struct Watcher {
    tables: BTreeSet<u32>,
    tx: mpsc::Sender<Input>,
    handle: Handle,
    messages: futures::channel::mpsc::UnboundedReceiver<(
        rtnetlink::packet_core::NetlinkMessage<RouteNetlinkMessage>,
        rtnetlink::sys::SocketAddr,
    )>,
}

impl Watcher {
    fn open(tables: BTreeSet<u32>, tx: mpsc::Sender<Input>) -> anyhow::Result<Watcher> {
        let (mut conn, handle, messages) = rtnetlink::new_multicast_connection(&[
            MulticastGroup::Ipv4Route,
            MulticastGroup::Ipv6Route,
        ])
        .context("netlink socket")?;
        let _ = conn
            .socket_mut()
            .socket_mut()
            .set_rx_buf_sz(8 * 1024 * 1024);
        tokio::spawn(conn);
        Ok(Watcher {
            tables,
            tx,
            handle,
            messages,
        })
    }

    async fn run(mut self) {
        let mut first = true;
        let mut resync = tokio::time::interval(RESYNC);
        loop {
            tokio::select! {
                _ = resync.tick() => {
                    match self.dump().await {
                        Ok(()) if first => {
                            first = false;
                            if self.tx.send(Input::KernelSynced).await.is_err() {
                                return;
                            }
                        }
                        Ok(()) => {}
                        Err(e) => warn!(error = %e, "kernel subscriber: dump failed"),
                    }
                }
                m = self.messages.next() => {
                    let Some((m, _)) = m else { return };
                    let (new, msg) = match m.payload {
                        rtnetlink::packet_core::NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewRoute(r)) => (true, r),
                        rtnetlink::packet_core::NetlinkPayload::InnerMessage(RouteNetlinkMessage::DelRoute(r)) => (false, r),
                        _ => continue,
                    };
                    let table = table_of(&msg);
                    if !self.tables.contains(&table) {
                        continue;
                    }
                    let Some((prefix, metric, route)) = taken(&msg, table) else { continue };
                    let input = Input::KernelRoute { table, prefix, metric, route: new.then_some(route) };
                    if self.tx.send(input).await.is_err() {
                        return;
                    }
                }
            }
        }
    }

    async fn dump(&self) -> Result<(), kernel::KernelError> {
        let mut by_table: BTreeMap<u32, BTreeMap<(IpNet, u32), super::channel::Route>> =
            self.tables.iter().map(|t| (*t, BTreeMap::new())).collect();
        daemon::routes::each_route(&self.handle, |m| {
            let table = table_of(m);
            if let Some(t) = by_table.get_mut(&table)
                && let Some((prefix, metric, route)) = taken(m, table)
            {
                t.insert((prefix, metric), route);
            }
        })
        .await
        .map_err(|source| kernel::KernelError::Netlink {
            what: "dumping routes".into(),
            source,
        })?;
        for (table, routes) in by_table {
            if self
                .tx
                .send(Input::KernelDump { table, routes })
                .await
                .is_err()
            {
                break;
            }
        }
        Ok(())
    }
}

/// A kernel route a channel takes: unicast, not BGP's own, not link-local or multicast.
fn taken(m: &RouteMessage, table: u32) -> Option<(IpNet, u32, super::channel::Route)> {
    let seen = kernel::parse(m, table)?;
    if seen.ours || !redistributable(&seen.prefix) {
        return None;
    }
    let protocol = u8::from(m.header.protocol);
    Some((
        seen.prefix,
        seen.metric,
        super::channel::Route {
            next_hops: seen.next_hops,
            distance: kernel_distance(protocol),
            metric: seen.metric,
            protocol,
        },
    ))
}

fn redistributable(p: &IpNet) -> bool {
    match p {
        IpNet::V4(n) => !n.addr().is_multicast() && !n.addr().is_loopback(),
        IpNet::V6(n) => {
            let a = n.addr();
            !a.is_multicast() && !a.is_loopback() && !a.is_unicast_link_local()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::redistributable;

    #[test]
    fn link_local_multicast_and_loopback_stay_in_the_kernel() {
        for (p, yes) in [
            ("198.18.0.0/24", true),
            ("0.0.0.0/0", true),
            ("fd00:1::/64", true),
            ("fe80::/64", false),
            ("ff00::/8", false),
            ("224.0.0.0/4", false),
            ("127.0.0.0/8", false),
        ] {
            assert_eq!(
                redistributable(&p.parse().unwrap_or_else(|_| panic!("{p}"))),
                yes,
                "{p}"
            );
        }
    }
}
