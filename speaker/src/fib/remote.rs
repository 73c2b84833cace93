//! The speaker's FIB in another process: `sartd bgp --fib HOST:PORT` sends its best routes to
//! the FibApi there (a `sartd fib` channel's BGP subscriber, as in sart's manifests), which
//! installs them into its tables or passes them on.
//!
//! It takes the same commands as the kernel FIB and never makes the speaker wait on the other
//! process: commands only update what is wanted, and one call batch at a time carries the
//! difference. What the other side holds is read with `ListRoutes` when a connection is new and
//! every [`super::RESYNC`] (a restarted `sartd fib` holds nothing), and the difference is sent.
//! Once the speaker's RIB has converged and the other side holds it all, `EndOfRib` says so.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use futures::StreamExt;
use ipnet::IpNet;
use proto::v1;
use proto::v1::fib_api_client::FibApiClient;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tonic::Code;
use tonic::transport::Channel;
use tracing::{info, warn};

use super::plan::Want;
use super::{Command, RESYNC, wire};

/// Calls in flight at once.
const PARALLEL: usize = 256;
/// The largest `ListRoutes` answer taken (some 4 million routes).
const LIST_LIMIT: usize = 256 << 20;
/// After a failed call, the next attempt.
const RETRY: Duration = Duration::from_secs(1);

/// What a batch of calls came back with.
enum Outcome {
    /// `ListRoutes`: what the other side holds.
    Listed(BTreeMap<IpNet, Want>),
    /// Each prefix sent with what it was set to, and whether that worked.
    Sent(Vec<(IpNet, Option<Want>, bool)>),
    EndOfRib,
    Failed(String),
}

struct Remote {
    client: FibApiClient<Channel>,
    table: u32,
    want: BTreeMap<IpNet, Want>,
    /// What the other side holds, as far as we know; `None` until listed.
    sent: Option<BTreeMap<IpNet, Want>>,
    /// Prefixes whose wanted state may differ from `sent`.
    dirty: BTreeSet<IpNet>,
    converged: bool,
    end_of_rib_sent: bool,
    next_list: Instant,
    connected: bool,
}

/// Starts the task. Nothing is dialled until there is something to say; an unreachable
/// endpoint is retried every second and reported once.
pub(crate) fn start(endpoint: &str, table: u32) -> Result<mpsc::Sender<Command>, String> {
    let channel = proto::lazy_channel(endpoint, Duration::from_secs(1), Duration::from_secs(10))
        .map_err(|e| format!("FIB endpoint {endpoint}: {e}"))?;
    let mut r = Remote {
        // A full table in one ListRoutes answer is ~60 bytes a route: past tonic's 4 MiB
        // default from ~70,000 routes.
        client: FibApiClient::new(channel).max_decoding_message_size(LIST_LIMIT),
        table,
        want: BTreeMap::new(),
        sent: None,
        dirty: BTreeSet::new(),
        converged: false,
        end_of_rib_sent: false,
        next_list: Instant::now(),
        connected: true,
    };
    let endpoint = endpoint.to_owned();
    let (tx, mut rx) = mpsc::channel::<Command>(1024);
    info!(%endpoint, table, "FIB: best routes go to the FibApi at this endpoint");
    tokio::spawn(async move {
        let mut in_flight: Option<tokio::task::JoinHandle<Outcome>> = None;
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        loop {
            tokio::select! {
                cmd = rx.recv() => match cmd {
                    None => return,
                    Some(Command::Routes(changes)) => {
                        for (p, w) in changes {
                            match w {
                                Some(w) => r.want.insert(p, w),
                                None => r.want.remove(&p),
                            };
                            r.dirty.insert(p);
                        }
                    }
                    Some(Command::Converged) => r.converged = true,
                    Some(Command::Exit { keep, done }) => {
                        if let Some(job) = in_flight.take() {
                            let _ = job.await;
                        }
                        if !keep {
                            r.remove_all().await;
                        }
                        let _ = done.send(());
                        return;
                    }
                },
                done = super::job_done(&mut in_flight), if in_flight.is_some() => {
                    in_flight = None;
                    let out = done.unwrap_or_else(|e| Outcome::Failed(format!("the call task failed: {e}")));
                    r.outcome(out, &endpoint);
                }
                _ = tick.tick() => {}
            }
            if in_flight.is_none() {
                in_flight = r.next_job().map(tokio::spawn);
            }
        }
    });
    Ok(tx)
}

impl Remote {
    /// The next batch of calls, if there is anything to do now.
    fn next_job(&mut self) -> Option<Job> {
        let mut client = self.client.clone();
        let now = Instant::now();
        let Some(sent) = &self.sent else {
            if now < self.next_list {
                return None;
            }
            return Some(boxed(async move { list(&mut client).await }));
        };
        if now >= self.next_list && self.dirty.is_empty() {
            return Some(boxed(async move { list(&mut client).await }));
        }
        if !self.dirty.is_empty() {
            let table = self.table;
            let mut calls = Vec::new();
            for p in std::mem::take(&mut self.dirty) {
                let w = self.want.get(&p).cloned();
                if w.as_ref() != sent.get(&p) {
                    calls.push((p, w));
                }
            }
            if !calls.is_empty() {
                return Some(boxed(async move { send(client, table, calls).await }));
            }
        }
        if self.converged && !self.end_of_rib_sent {
            return Some(boxed(async move {
                match client.end_of_rib(v1::EndOfRibRequest {}).await {
                    Ok(_) => Outcome::EndOfRib,
                    // sart's own FIB does not know it.
                    Err(s) if s.code() == Code::Unimplemented => Outcome::EndOfRib,
                    Err(s) => Outcome::Failed(format!("EndOfRib: {}", s.message())),
                }
            }));
        }
        None
    }

    fn outcome(&mut self, out: Outcome, endpoint: &str) {
        match out {
            Outcome::Listed(held) => {
                self.next_list = Instant::now() + RESYNC;
                if self.sent.as_ref() != Some(&held) {
                    // New connection, or the other side restarted or lost something.
                    self.end_of_rib_sent = false;
                    self.dirty.extend(held.keys().copied());
                    self.dirty.extend(self.want.keys().copied());
                }
                self.sent = Some(held);
                if !self.connected {
                    info!(%endpoint, "FIB endpoint reachable again");
                    self.connected = true;
                }
            }
            Outcome::Sent(results) => {
                let mut failed = false;
                if let Some(sent) = self.sent.as_mut() {
                    for (p, w, ok) in results {
                        match (ok, w) {
                            (true, Some(w)) => {
                                sent.insert(p, w);
                            }
                            (true, None) => {
                                sent.remove(&p);
                            }
                            (false, _) => {
                                failed = true;
                                self.dirty.insert(p);
                            }
                        }
                    }
                }
                if failed {
                    self.lost(endpoint, "some routes were refused".into());
                }
            }
            Outcome::EndOfRib => self.end_of_rib_sent = true,
            Outcome::Failed(e) => self.lost(endpoint, e),
        }
    }

    /// A call failed: list again (after [`RETRY`]) before sending more.
    fn lost(&mut self, endpoint: &str, error: String) {
        if let Some(sent) = self.sent.take() {
            self.dirty.extend(sent.into_keys());
        }
        self.next_list = Instant::now() + RETRY;
        if self.connected {
            warn!(%endpoint, %error, "FIB endpoint: routes not delivered; retrying every second");
            self.connected = false;
        }
    }

    async fn remove_all(&mut self) {
        let Some(sent) = self.sent.take() else { return };
        let calls: Vec<(IpNet, Option<Want>)> = sent.into_keys().map(|p| (p, None)).collect();
        info!(
            routes = calls.len(),
            "removing our routes from the FIB endpoint (no graceful restart)"
        );
        let job = send(self.client.clone(), self.table, calls);
        let _ = tokio::time::timeout(Duration::from_secs(10), job).await;
    }
}

type Job = super::Job<Outcome>;

fn boxed(f: impl Future<Output = Outcome> + Send + 'static) -> Job {
    Box::pin(f)
}

async fn list(client: &mut FibApiClient<Channel>) -> Outcome {
    match client
        .list_routes(v1::ListRoutesRequest {
            table: 0,
            version: 0,
        })
        .await
    {
        Ok(r) => Outcome::Listed(
            r.into_inner()
                .routes
                .iter()
                .filter_map(|r| wire::decode(r).ok())
                .filter_map(|(p, r)| wire::want(&r).map(|w| (p, w)))
                .collect(),
        ),
        Err(s) => Outcome::Failed(format!("ListRoutes: {}", s.message())),
    }
}

async fn send(
    client: FibApiClient<Channel>,
    table: u32,
    calls: Vec<(IpNet, Option<Want>)>,
) -> Outcome {
    let results = futures::stream::iter(calls)
        .map(|(p, w)| {
            let mut client = client.clone();
            async move {
                let route = w.as_ref().map(|want| wire::from_want(p, want, table));
                let version = wire::version(p) as i32;
                let ok = match route {
                    Some(route) => client
                        .add_route(v1::AddRouteRequest {
                            table,
                            version,
                            route: Some(route),
                            replace: true,
                        })
                        .await
                        .is_ok(),
                    None => client
                        .delete_route(v1::DeleteRouteRequest {
                            table,
                            version,
                            destination: p.to_string(),
                        })
                        .await
                        .is_ok(),
                };
                (p, w, ok)
            }
        })
        .buffer_unordered(PARALLEL)
        .collect()
        .await;
    Outcome::Sent(results)
}
