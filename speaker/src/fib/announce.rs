//! A channel's BGP publisher: the speaker whose API is at the endpoint originates the channel's
//! destinations (`AddPath`, with the publisher's attributes) and stops when they go
//! (`DeletePath`). This is how routes of a kernel table are redistributed into BGP.
//!
//! Like the speaker's remote FIB, the channel's loop only records what is wanted, and one call
//! batch at a time carries the difference. A speaker forgets paths added through its API when
//! it restarts: the task keeps the speaker's `Watch` stream open, and when it ends, sends
//! everything again once the speaker answers. A speaker without `Watch` (sart's own) is sent
//! everything every [`super::RESYNC`] instead.

use std::collections::BTreeSet;
use std::time::Duration;

use ipnet::IpNet;
use proto::v1;
use proto::v1::bgp_api_client::BgpApiClient;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tonic::Code;
use tonic::transport::Channel;
use tracing::{info, warn};

use super::RESYNC;
use speaker_config::PathSpec;

/// Prefixes per `AddPath`/`DeletePath` call.
const CHUNK: usize = 1000;
const RETRY: Duration = Duration::from_secs(1);

#[derive(Debug)]
pub(super) enum Msg {
    /// Whether the channel has a route for this destination.
    Set(IpNet, bool),
    /// Withdraw everything sent, then answer.
    Exit(oneshot::Sender<()>),
}

enum Outcome {
    Sent {
        add: bool,
        prefixes: Vec<IpNet>,
        ok: bool,
        error: String,
    },
    Watching(tonic::Streaming<v1::WatchEvent>),
    NoWatch,
    Failed(String),
}

struct Announcer {
    client: BgpApiClient<Channel>,
    attributes: Vec<prost_types::Any>,
    want: BTreeSet<IpNet>,
    /// What the speaker originates for us, as far as we know.
    sent: BTreeSet<IpNet>,
    dirty: BTreeSet<IpNet>,
    /// `None`: not asked yet; `Some(false)`: the speaker has no `Watch`.
    watch: Option<bool>,
    next_try: Instant,
    next_resend: Instant,
    connected: bool,
}

pub(super) fn start(endpoint: &str, attributes: &PathSpec) -> Result<mpsc::Sender<Msg>, String> {
    let channel = proto::lazy_channel(endpoint, Duration::from_secs(1), Duration::from_secs(10))
        .map_err(|e| format!("BGP publisher {endpoint}: {e}"))?;
    let mut a = Announcer {
        client: BgpApiClient::new(channel),
        attributes: any_attributes(attributes),
        want: BTreeSet::new(),
        sent: BTreeSet::new(),
        dirty: BTreeSet::new(),
        watch: None,
        next_try: Instant::now(),
        next_resend: Instant::now() + RESYNC,
        connected: true,
    };
    let endpoint = endpoint.to_owned();
    let (tx, mut rx) = mpsc::channel::<Msg>(1024);
    tokio::spawn(async move {
        let mut in_flight: Option<tokio::task::JoinHandle<Outcome>> = None;
        let mut stream: Option<tonic::Streaming<v1::WatchEvent>> = None;
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        loop {
            tokio::select! {
                msg = rx.recv() => match msg {
                    None => return,
                    Some(Msg::Set(p, on)) => {
                        if on { a.want.insert(p); } else { a.want.remove(&p); }
                        a.dirty.insert(p);
                    }
                    Some(Msg::Exit(done)) => {
                        if let Some(job) = in_flight.take() {
                            let _ = job.await;
                        }
                        a.withdraw_all().await;
                        let _ = done.send(());
                        return;
                    }
                },
                done = super::job_done(&mut in_flight), if in_flight.is_some() => {
                    in_flight = None;
                    let out = done.unwrap_or_else(|e| Outcome::Failed(format!("the call task failed: {e}")));
                    match out {
                        Outcome::Watching(s) => {
                            a.watch = Some(true);
                            stream = Some(s);
                        }
                        out => a.outcome(out, &endpoint),
                    }
                }
                ev = async { match stream.as_mut() { Some(s) => s.message().await, None => Ok(None) } }, if stream.is_some() => {
                    if !matches!(ev, Ok(Some(_))) {
                        // The speaker went away: it forgot what we added.
                        stream = None;
                        a.watch = None;
                        a.sent.clear();
                        a.dirty.extend(a.want.iter().copied());
                        a.lost(&endpoint, "the speaker's Watch stream ended".into());
                    }
                }
                _ = tick.tick() => {}
            }
            if in_flight.is_none() {
                in_flight = a.next_job().map(tokio::spawn);
            }
        }
    });
    Ok(tx)
}

type Job = super::Job<Outcome>;

impl Announcer {
    fn next_job(&mut self) -> Option<Job> {
        let now = Instant::now();
        if now < self.next_try {
            return None;
        }
        let mut client = self.client.clone();
        if self.watch.is_none() {
            return Some(Box::pin(async move {
                match client
                    .watch(v1::WatchRequest {
                        peers: true,
                        paths: false,
                    })
                    .await
                {
                    Ok(s) => Outcome::Watching(s.into_inner()),
                    Err(s) if s.code() == Code::Unimplemented => Outcome::NoWatch,
                    Err(s) => Outcome::Failed(format!("Watch: {}", s.message())),
                }
            }));
        }
        if self.watch == Some(false) && now >= self.next_resend {
            // The speaker may have restarted unseen: announce everything again. Withdrawals
            // not yet done stay to do.
            self.next_resend = now + RESYNC;
            let want = &self.want;
            self.sent.retain(|p| !want.contains(p));
            self.dirty.extend(want.iter().copied());
        }
        // Withdrawals first, then announcements, one family and chunk at a time.
        let (want, sent) = (&self.want, &self.sent);
        self.dirty.retain(|p| want.contains(p) != sent.contains(p));
        let dels: Vec<IpNet> = self
            .dirty
            .iter()
            .filter(|p| !want.contains(p))
            .copied()
            .collect();
        let (add, list) = if dels.is_empty() {
            (true, self.dirty.iter().copied().collect::<Vec<_>>())
        } else {
            (false, dels)
        };
        let v4 = list.first()?.addr().is_ipv4();
        let prefixes: Vec<IpNet> = list
            .into_iter()
            .filter(|p| p.addr().is_ipv4() == v4)
            .take(CHUNK)
            .collect();
        for p in &prefixes {
            self.dirty.remove(p);
        }
        let attributes = self.attributes.clone();
        Some(Box::pin(async move {
            let r = call(&mut client, add, &prefixes, attributes).await;
            Outcome::Sent {
                add,
                prefixes,
                ok: r.is_ok(),
                error: r.err().unwrap_or_default(),
            }
        }))
    }

    fn outcome(&mut self, out: Outcome, endpoint: &str) {
        match out {
            Outcome::Sent {
                add,
                prefixes,
                ok: true,
                ..
            } => {
                for p in prefixes {
                    if add {
                        self.sent.insert(p);
                    } else {
                        self.sent.remove(&p);
                    }
                }
                if !self.connected {
                    info!(%endpoint, "BGP publisher: the speaker answers again");
                    self.connected = true;
                }
            }
            Outcome::Sent {
                prefixes, error, ..
            } => {
                self.dirty.extend(prefixes);
                self.lost(endpoint, error);
            }
            Outcome::NoWatch => {
                self.watch = Some(false);
                self.next_resend = Instant::now() + RESYNC;
            }
            Outcome::Watching(_) => {}
            Outcome::Failed(e) => self.lost(endpoint, e),
        }
    }

    /// A call failed: try again after [`RETRY`]. What was sent stays `sent`, so a withdrawal
    /// that failed is retried rather than forgotten.
    fn lost(&mut self, endpoint: &str, error: String) {
        self.next_try = Instant::now() + RETRY;
        if self.connected {
            warn!(%endpoint, %error, "BGP publisher: the speaker does not answer; retrying every second");
            self.connected = false;
        }
    }

    async fn withdraw_all(&mut self) {
        let sent: Vec<IpNet> = std::mem::take(&mut self.sent).into_iter().collect();
        if sent.is_empty() {
            return;
        }
        info!(
            paths = sent.len(),
            "withdrawing the channel's paths from the speaker"
        );
        let mut client = self.client.clone();
        let job = async {
            for v4 in [true, false] {
                let of: Vec<IpNet> = sent
                    .iter()
                    .filter(|p| p.addr().is_ipv4() == v4)
                    .copied()
                    .collect();
                for chunk in of.chunks(CHUNK) {
                    let _ = call(&mut client, false, chunk, Vec::new()).await;
                }
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(10), job).await;
    }
}

async fn call(
    client: &mut BgpApiClient<Channel>,
    add: bool,
    prefixes: &[IpNet],
    attributes: Vec<prost_types::Any>,
) -> Result<(), String> {
    let Some(first) = prefixes.first() else {
        return Ok(());
    };
    let family = Some(v1::AddressFamily {
        afi: if first.addr().is_ipv4() {
            v1::address_family::Afi::Ip4 as i32
        } else {
            v1::address_family::Afi::Ip6 as i32
        },
        safi: v1::address_family::Safi::Unicast as i32,
    });
    let prefixes: Vec<String> = prefixes.iter().map(ToString::to_string).collect();
    let r = if add {
        client
            .add_path(v1::AddPathRequest {
                family,
                prefixes,
                attributes,
            })
            .await
            .map(|_| ())
    } else {
        client
            .delete_path(v1::DeletePathRequest { family, prefixes })
            .await
            .map(|_| ())
    };
    r.map_err(|s| {
        format!(
            "{}: {}",
            if add { "AddPath" } else { "DeletePath" },
            s.message()
        )
    })
}

/// A publisher's attributes as `AddPath` carries them.
pub(super) fn any_attributes(a: &PathSpec) -> Vec<prost_types::Any> {
    let mut out = vec![proto::any(
        "OriginAttribute",
        &v1::OriginAttribute {
            value: a.origin as u32,
        },
    )];
    if let Some(v) = a.local_pref {
        out.push(proto::any(
            "LocalPrefAttribute",
            &v1::LocalPrefAttribute { value: v },
        ));
    }
    if let Some(v) = a.med {
        out.push(proto::any(
            "MultiExitDiscAttribute",
            &v1::MultiExitDiscAttribute { value: v },
        ));
    }
    if a.as_path_prepend > 0 {
        out.push(proto::any(
            "AsPathPrependAttribute",
            &v1::AsPathPrependAttribute {
                count: u32::from(a.as_path_prepend),
            },
        ));
    }
    if !a.communities.is_empty() {
        out.push(proto::any(
            "CommunitiesAttribute",
            &v1::CommunitiesAttribute {
                communities: a.communities.iter().map(ToString::to_string).collect(),
            },
        ));
    }
    if !a.large_communities.is_empty() {
        out.push(proto::any(
            "LargeCommunitiesAttribute",
            &v1::LargeCommunitiesAttribute {
                communities: a
                    .large_communities
                    .iter()
                    .map(ToString::to_string)
                    .collect(),
            },
        ));
    }
    if !a.ext_communities.is_empty() {
        out.push(proto::any(
            "ExtendedCommunitiesAttribute",
            &v1::ExtendedCommunitiesAttribute {
                // Hex round-trips every kind; `rt:`/`soo:` text does not.
                communities: a
                    .ext_communities
                    .iter()
                    .map(|c| format!("{:016x}", u64::from_be_bytes(c.0)))
                    .collect(),
            },
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use prost::Message;
    use speaker_config::{RawAttributes, path_attributes};

    fn announcer(watch: Option<bool>) -> Announcer {
        let channel = proto::lazy_channel(
            "127.0.0.1:9",
            Duration::from_secs(1),
            Duration::from_secs(1),
        )
        .unwrap();
        Announcer {
            client: BgpApiClient::new(channel),
            attributes: Vec::new(),
            want: BTreeSet::new(),
            sent: BTreeSet::new(),
            dirty: BTreeSet::new(),
            watch,
            next_try: Instant::now(),
            next_resend: Instant::now(),
            connected: true,
        }
    }

    /// A withdrawal the speaker did not take is tried again, never forgotten; a resend for a
    /// speaker without Watch keeps it too.
    #[tokio::test]
    async fn a_failed_withdrawal_stays_to_do() {
        let p: IpNet = "198.18.9.0/24".parse().unwrap();
        let kept: IpNet = "198.18.10.0/24".parse().unwrap();
        let mut a = announcer(Some(false));
        a.sent = [p, kept].into();
        a.want = [kept].into();
        a.dirty = [p].into();
        a.next_resend = Instant::now() + RESYNC;
        assert!(a.next_job().is_some());
        assert!(a.dirty.is_empty(), "the withdrawal is in flight");
        a.outcome(
            Outcome::Sent {
                add: false,
                prefixes: vec![p],
                ok: false,
                error: "unavailable".into(),
            },
            "test",
        );
        assert!(a.sent.contains(&p) && a.dirty.contains(&p));
        // The periodic resend (no Watch) announces what is wanted again, the withdrawal stays.
        a.next_try = Instant::now();
        a.next_resend = Instant::now();
        let _ = a.next_job();
        assert!(a.sent.contains(&p), "{:?}", a.sent);
        assert!(!a.sent.contains(&kept));
    }

    #[test]
    fn a_publishers_attributes_reach_addpath_as_the_speaker_reads_them() {
        let raw: RawAttributes = serde_saphyr::from_str(
            "{origin: incomplete, med: 50, local_pref: 200, as_path_prepend: 2, \
             communities: ['65000:10'], large_communities: ['65000:1:2'], \
             ext_communities: ['rt:65000:7', '0x0003fde800000001']}",
        )
        .unwrap();
        let spec = path_attributes(raw, "publishers[0]").unwrap();
        let any = any_attributes(&spec);
        let by = |name: &str| {
            any.iter()
                .find(|a| a.type_url == format!("type.googleapis.com/sart.v1.{name}"))
                .unwrap()
                .value
                .clone()
        };
        assert_eq!(
            v1::OriginAttribute::decode(&by("OriginAttribute")[..])
                .unwrap()
                .value,
            2
        );
        assert_eq!(
            v1::MultiExitDiscAttribute::decode(&by("MultiExitDiscAttribute")[..])
                .unwrap()
                .value,
            50
        );
        assert_eq!(
            v1::LocalPrefAttribute::decode(&by("LocalPrefAttribute")[..])
                .unwrap()
                .value,
            200
        );
        assert_eq!(
            v1::AsPathPrependAttribute::decode(&by("AsPathPrependAttribute")[..])
                .unwrap()
                .count,
            2
        );
        assert_eq!(
            v1::CommunitiesAttribute::decode(&by("CommunitiesAttribute")[..])
                .unwrap()
                .communities,
            ["65000:10"]
        );
        assert_eq!(
            v1::LargeCommunitiesAttribute::decode(&by("LargeCommunitiesAttribute")[..])
                .unwrap()
                .communities,
            ["65000:1:2"]
        );
        // Every extended community, route target or not, reads back as what was configured.
        let ext = v1::ExtendedCommunitiesAttribute::decode(&by("ExtendedCommunitiesAttribute")[..])
            .unwrap()
            .communities;
        let back: Vec<_> = ext
            .iter()
            .map(|c| c.parse::<bgp::attribute::ExtCommunity>().unwrap())
            .collect();
        assert_eq!(back, spec.ext_communities);
        // Nothing configured: only the origin (IGP), as the speaker's default.
        assert_eq!(any_attributes(&PathSpec::default()).len(), 1);
    }
}
