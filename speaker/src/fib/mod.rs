//! The kernel FIB: installs the Loc-RIB's best routes into a routing table with rtnetlink and
//! keeps them there. A component of `sartd bgp` (`--fib kernel` / `fib_table` turn it on), and
//! of `sartd fib`, sart's separate FIB process ([`daemon`]), for each table a channel writes;
//! `sartd bgp --fib HOST:PORT` sends the same commands to such a process ([`remote`]).
//!
//! ```text
//!  speaker ──Routes/Converged/Exit──► FIB task ──replace/delete──► kernel table
//!                                       ▲                              │
//!                                       └──── route notifications ─────┘ (drift repair)
//! ```
//!
//! - [`plan`] is the pure diff; [`kernel`] the rtnetlink shell.
//! - Our routes carry [`kernel::ROUTE_PROTOCOL`]; routes of other protocols are never touched.
//! - Drift: the task listens to the kernel's route notifications. A route of ours deleted or
//!   changed behind our back, or a foreign route that took our place and went, is repaired at
//!   once; a full dump-and-diff every [`RESYNC`] covers lost notifications.
//! - Restart: at start the table's routes of ours are a previous run's. They keep forwarding
//!   until the speaker says the RIB has [`converged`](Command::Converged); then what the RIB
//!   does not want is deleted.
//! - Exit: with graceful restart the routes stay (peers keep forwarding to us, we keep
//!   forwarding to them); without, they are removed.

mod announce;
pub(crate) mod channel;
pub(crate) mod channels;
pub(crate) mod command;
pub(crate) mod daemon;
pub(crate) mod kernel;
pub(crate) mod plan;
pub(crate) mod remote;
pub(crate) mod wire;

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::Duration;

use futures::StreamExt;
use ipnet::IpNet;
use rtnetlink::sys::AsyncSocket as _;
use rtnetlink::{Handle, MulticastGroup};
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, info, warn};

use kernel::{Event, KernelError};
use plan::{Op, Stale, Want};

/// A batch of calls to another process, run as a task of its own so that the loop that
/// started it goes on taking commands ([`remote`], [`announce`]).
type Job<O> = std::pin::Pin<Box<dyn Future<Output = O> + Send>>;

/// The outcome of the job in flight; pending while there is none.
async fn job_done<O>(
    job: &mut Option<tokio::task::JoinHandle<O>>,
) -> Result<O, tokio::task::JoinError> {
    match job.as_mut() {
        Some(j) => j.await,
        None => std::future::pending().await,
    }
}

/// Full dump-and-diff period.
pub(crate) const RESYNC: Duration = Duration::from_secs(30);
/// Kernel writes in flight at once.
const PARALLEL: usize = 64;

#[derive(Debug)]
pub(crate) enum Command {
    /// Best routes changed: the wanted state of each prefix (`None`: not wanted).
    Routes(Vec<(IpNet, Option<Want>)>),
    /// The RIB has converged after start: a previous run's leftovers may go.
    Converged,
    /// sartd is exiting: keep our routes (graceful restart) or remove them.
    Exit {
        keep: bool,
        done: oneshot::Sender<()>,
    },
}

/// Counters for metrics and tests.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Stats {
    pub installed: u64,
    pub deleted: u64,
    pub repaired: u64,
    pub errors: u64,
}

struct Fib {
    handle: Handle,
    table: u32,
    want: BTreeMap<IpNet, Want>,
    /// What we believe the kernel holds of ours: prefix → metric → next hops.
    installed: BTreeMap<IpNet, BTreeMap<u32, BTreeSet<IpAddr>>>,
    foreign: BTreeSet<(IpNet, u32)>,
    stale: Stale,
    /// Prefixes the RIB has spoken about since start: until convergence, only their routes may
    /// be deleted (the others are a previous run's, still forwarding).
    touched: BTreeSet<IpNet>,
    stats: Stats,
}

/// Opens the netlink socket (subscribed to route notifications), reads the table and starts the
/// task. Fails when netlink is unusable, so a misconfiguration shows at start.
pub(crate) async fn start(table: u32) -> Result<mpsc::Sender<Command>, KernelError> {
    let (mut conn, handle, mut messages) = rtnetlink::new_multicast_connection(&[
        MulticastGroup::Ipv4Route,
        MulticastGroup::Ipv6Route,
    ])
    .map_err(KernelError::Socket)?;
    // Bulk installs echo one notification per route: a deep buffer keeps them from being lost
    // (the periodic resync covers it if they are).
    let _ = conn
        .socket_mut()
        .socket_mut()
        .set_rx_buf_sz(8 * 1024 * 1024);
    tokio::spawn(conn);
    let k = kernel::dump(&handle, table).await?;
    let leftovers = k.ours.len();
    let installed = by_prefix(k.ours);
    info!(
        table,
        leftovers,
        protocol = kernel::ROUTE_PROTOCOL,
        "FIB started; routes of a previous run are kept until the RIB converges"
    );
    let mut fib = Fib {
        handle,
        table,
        want: BTreeMap::new(),
        installed,
        foreign: k.foreign,
        stale: Stale::Keep,
        touched: BTreeSet::new(),
        stats: Stats::default(),
    };
    let (tx, mut rx) = mpsc::channel::<Command>(1024);
    tokio::spawn(async move {
        let mut resync = tokio::time::interval(RESYNC);
        resync.tick().await;
        loop {
            tokio::select! {
                cmd = rx.recv() => match cmd {
                    None => return,
                    Some(Command::Routes(changes)) => fib.routes(changes).await,
                    Some(Command::Converged) => {
                        if fib.stale == Stale::Keep {
                            fib.stale = Stale::Delete;
                            fib.touched.clear();
                            info!("RIB converged: removing routes of a previous run it does not want");
                            fib.resync().await;
                        }
                    }
                    Some(Command::Exit { keep, done }) => {
                        if !keep {
                            fib.remove_all().await;
                        }
                        let _ = done.send(());
                        return;
                    }
                },
                Some((msg, _)) = messages.next() => {
                    if let Some(ev) = kernel::event(&msg, fib.table) {
                        fib.notified(ev).await;
                    }
                }
                _ = resync.tick() => fib.resync().await,
            }
        }
    });
    Ok(tx)
}

/// A dump's routes of ours, keyed as the FIB keeps them: prefix → metric → next hops.
fn by_prefix(
    ours: BTreeMap<(IpNet, u32), BTreeSet<IpAddr>>,
) -> BTreeMap<IpNet, BTreeMap<u32, BTreeSet<IpAddr>>> {
    let mut m: BTreeMap<IpNet, BTreeMap<u32, BTreeSet<IpAddr>>> = BTreeMap::new();
    for ((prefix, metric), nhs) in ours {
        m.entry(prefix).or_default().insert(metric, nhs);
    }
    m
}

impl Fib {
    async fn routes(&mut self, changes: Vec<(IpNet, Option<Want>)>) {
        let mut ops = Vec::new();
        for (prefix, want) in changes {
            if self.stale == Stale::Keep {
                self.touched.insert(prefix);
            }
            match want {
                Some(w) => {
                    self.want.insert(prefix, w);
                }
                None => {
                    self.want.remove(&prefix);
                }
            }
            ops.extend(self.plan_one(prefix));
        }
        self.apply(ops).await;
    }

    fn plan_one(&self, prefix: IpNet) -> Vec<Op> {
        let want = self.want.get(&prefix);
        let empty = BTreeMap::new();
        let installed = self.installed.get(&prefix).unwrap_or(&empty);
        let foreign = want.is_some_and(|w| self.foreign.contains(&(prefix, w.metric)));
        let mut ops = plan::plan_one(prefix, want, installed, foreign);
        if self.stale == Stale::Keep && want.is_none() && !self.touched.contains(&prefix) {
            // Not wanted (yet): a previous run's route keeps forwarding until convergence.
            ops.retain(|o| !matches!(o, Op::Delete(..)));
        }
        ops
    }

    /// A route notification: update what we believe, then repair if it differs from the want.
    async fn notified(&mut self, ev: Event) {
        let prefix = match &ev {
            Event::New(s) | Event::Del(s) => s.prefix,
        };
        match ev {
            Event::New(s) if s.ours => {
                self.installed
                    .entry(s.prefix)
                    .or_default()
                    .insert(s.metric, s.next_hops);
            }
            Event::Del(s) if s.ours => {
                if let Some(m) = self.installed.get_mut(&s.prefix) {
                    m.remove(&s.metric);
                    if m.is_empty() {
                        self.installed.remove(&s.prefix);
                    }
                }
            }
            Event::New(s) => {
                self.foreign.insert((s.prefix, s.metric));
            }
            Event::Del(s) => {
                self.foreign.remove(&(s.prefix, s.metric));
            }
        }
        let ops = self.plan_one(prefix);
        if ops.iter().any(|o| !matches!(o, Op::Conflict(..))) {
            info!(%prefix, "kernel route changed behind our back: repairing");
            self.stats.repaired += 1;
            self.apply(ops).await;
        }
    }

    /// Dump, diff, apply: the backstop for lost notifications, and the sweep after convergence.
    async fn resync(&mut self) {
        let k = match kernel::dump(&self.handle, self.table).await {
            Ok(k) => k,
            Err(e) => {
                warn!(error = %e, "FIB resync: dump failed");
                self.stats.errors += 1;
                return;
            }
        };
        let ops = plan::plan(&self.want, &k, self.stale);
        self.installed = by_prefix(k.ours);
        self.foreign = k.foreign;
        if !ops.is_empty() {
            debug!(ops = ops.len(), "FIB resync");
        }
        self.apply(ops).await;
    }

    async fn remove_all(&mut self) {
        let ops: Vec<Op> = self
            .installed
            .iter()
            .flat_map(|(p, ms)| ms.keys().map(|m| Op::Delete(*p, *m)))
            .collect();
        info!(
            routes = ops.len(),
            "removing our kernel routes (no graceful restart)"
        );
        self.want.clear();
        self.apply(ops).await;
    }

    /// Runs the operations, [`PARALLEL`] at a time, and records what succeeded.
    async fn apply(&mut self, ops: Vec<Op>) {
        let (handle, table) = (&self.handle, self.table);
        let results: Vec<(Op, Result<(), KernelError>)> = futures::stream::iter(ops)
            .map(|op| async move {
                let r = match &op {
                    Op::Replace(p, w) => kernel::replace(handle, table, *p, w).await,
                    Op::Delete(p, m) => kernel::delete(handle, table, *p, *m).await,
                    Op::Conflict(..) => Ok(()),
                };
                (op, r)
            })
            .buffer_unordered(PARALLEL)
            .collect()
            .await;
        for (op, r) in results {
            match (op, r) {
                (Op::Conflict(p, m), _) => {
                    warn!(prefix = %p, metric = m, "another protocol's route holds this destination and metric: not replaced");
                }
                (op, Err(e)) => {
                    self.stats.errors += 1;
                    warn!(error = %e, ?op, "kernel route update failed (retried at the next resync)");
                }
                (Op::Replace(p, w), Ok(())) => {
                    self.stats.installed += 1;
                    self.installed
                        .entry(p)
                        .or_default()
                        .insert(w.metric, w.next_hops);
                }
                (Op::Delete(p, m), Ok(())) => {
                    self.stats.deleted += 1;
                    if let Some(ms) = self.installed.get_mut(&p) {
                        ms.remove(&m);
                        if ms.is_empty() {
                            self.installed.remove(&p);
                        }
                    }
                }
            }
        }
    }
}
