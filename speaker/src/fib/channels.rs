//! sart's `sartd fib` configuration: channels that carry routes from subscribers (a BGP
//! speaker sending to the channel's FibApi, kernel tables) to publishers (kernel tables, a BGP
//! speaker's API). Parsed and checked here, run by [`super::daemon`].
//!
//! ```yaml
//! endpoint: 127.0.0.1:5001          # FibManagerApi (sart fib channel ...)
//! channels:
//!   - name: bgp-to-kernel
//!     ip_version: ipv4              # or ipv6; absent: both
//!     subscribers:
//!       - {protocol: bgp, endpoint: 127.0.0.1:5010}   # sartd bgp --fib 127.0.0.1:5010
//!     publishers:
//!       - {protocol: kernel, tables: [254, 8]}
//!   - name: kernel-to-bgp
//!     subscribers:
//!       - {protocol: kernel, tables: [10]}
//!     publishers:
//!       - protocol: bgp
//!         endpoint: 127.0.0.1:5000                    # the speaker's API
//!         attributes: {med: 50, communities: ["65000:10"]}   # not in sart
//! ```

use std::collections::BTreeMap;

use serde::Deserialize;

use speaker_config::{PathSpec, RawAttributes, path_attributes};

/// sart's default FibManagerApi address.
pub(crate) const DEFAULT_ENDPOINT: &str = "127.0.0.1:5001";

#[derive(Debug, Deserialize)]
struct RawConfig {
    #[serde(default)]
    endpoint: Option<String>,
    #[serde(default)]
    channels: Vec<RawChannel>,
}

#[derive(Debug, Deserialize)]
struct RawChannel {
    name: String,
    #[serde(default)]
    ip_version: Option<String>,
    #[serde(default)]
    subscribers: Vec<RawEnd>,
    #[serde(default)]
    publishers: Vec<RawEnd>,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "protocol", rename_all = "lowercase", deny_unknown_fields)]
enum RawEnd {
    Bgp {
        endpoint: String,
        #[serde(default)]
        attributes: Option<RawAttributes>,
    },
    Kernel {
        tables: Vec<u32>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Config {
    pub endpoint: String,
    pub channels: Vec<Channel>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Channel {
    pub name: String,
    pub versions: Versions,
    pub subscribers: Vec<Subscriber>,
    pub publishers: Vec<Publisher>,
}

/// The address families a channel carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Versions {
    V4,
    V6,
    Both,
}

impl Versions {
    pub(crate) fn carries(self, prefix: &ipnet::IpNet) -> bool {
        match self {
            Versions::Both => true,
            Versions::V4 => prefix.addr().is_ipv4(),
            Versions::V6 => prefix.addr().is_ipv6(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Subscriber {
    /// A FibApi served at `endpoint` for a speaker to send its best routes to.
    Bgp { endpoint: String },
    /// The routes of these kernel tables (other than BGP's own).
    Kernel { tables: Vec<u32> },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Publisher {
    /// The speaker whose API is at `endpoint` announces the channel's destinations with these
    /// attributes.
    Bgp {
        endpoint: String,
        attributes: PathSpec,
    },
    /// The channel's routes are installed into these tables.
    Kernel { tables: Vec<u32> },
}

pub(crate) fn parse(yaml: &str) -> Result<Config, String> {
    let raw: RawConfig =
        serde_saphyr::from_str(yaml).map_err(|e| format!("fib configuration: {e}"))?;
    check(raw)
}

fn check(raw: RawConfig) -> Result<Config, String> {
    let mut names = BTreeMap::new();
    // One owner per kernel table and per speaker written to: two channels writing the same
    // table would delete each other's routes.
    let mut table_owner: BTreeMap<u32, String> = BTreeMap::new();
    let mut speaker_owner: BTreeMap<String, String> = BTreeMap::new();
    let mut channels = Vec::new();
    for (i, c) in raw.channels.into_iter().enumerate() {
        let at = format!("channels[{i}] ({})", c.name);
        if c.name.is_empty() {
            return Err(format!("channels[{i}]: name is empty"));
        }
        if names.insert(c.name.clone(), i).is_some() {
            return Err(format!("{at}: a channel of this name comes before"));
        }
        let versions = match c.ip_version.as_deref() {
            None | Some("") => Versions::Both,
            Some("ipv4" | "v4" | "4") => Versions::V4,
            Some("ipv6" | "v6" | "6") => Versions::V6,
            Some(v) => return Err(format!("{at}: ip_version {v:?}: use ipv4 or ipv6")),
        };
        if c.subscribers.is_empty() || c.publishers.is_empty() {
            return Err(format!(
                "{at}: a channel needs at least one subscriber and one publisher"
            ));
        }
        let mut subscribers = Vec::new();
        for (j, s) in c.subscribers.into_iter().enumerate() {
            subscribers.push(match s {
                RawEnd::Bgp {
                    endpoint,
                    attributes: None,
                } => Subscriber::Bgp { endpoint },
                RawEnd::Bgp {
                    attributes: Some(_),
                    ..
                } => {
                    return Err(format!(
                        "{at}: subscribers[{j}]: attributes belong to a BGP publisher"
                    ));
                }
                RawEnd::Kernel { tables } => Subscriber::Kernel {
                    tables: tables_of(&at, &format!("subscribers[{j}]"), tables)?,
                },
            });
        }
        let mut publishers = Vec::new();
        for (j, p) in c.publishers.into_iter().enumerate() {
            let key = format!("publishers[{j}]");
            publishers.push(match p {
                RawEnd::Bgp {
                    endpoint,
                    attributes,
                } => {
                    let attributes = path_attributes(attributes.unwrap_or_default(), &key)
                        .map_err(|e| format!("{at}: {e}"))?;
                    if let Some(other) = speaker_owner.insert(endpoint.clone(), c.name.clone()) {
                        return Err(format!(
                            "{at}: {key}: channel {other} already publishes to the speaker at {endpoint}"
                        ));
                    }
                    Publisher::Bgp {
                        endpoint,
                        attributes,
                    }
                }
                RawEnd::Kernel { tables } => {
                    let tables = tables_of(&at, &key, tables)?;
                    for t in &tables {
                        if *t == 255 {
                            return Err(format!(
                                "{at}: {key}: table 255 is the kernel's local table"
                            ));
                        }
                        if subscribers
                            .iter()
                            .any(|s| matches!(s, Subscriber::Kernel { tables } if tables.contains(t)))
                        {
                            return Err(format!(
                                "{at}: {key}: table {t} is also a subscriber of this channel"
                            ));
                        }
                        if let Some(other) = table_owner.insert(*t, c.name.clone()) {
                            return Err(format!(
                                "{at}: {key}: channel {other} already publishes into table {t}"
                            ));
                        }
                    }
                    Publisher::Kernel { tables }
                }
            });
        }
        channels.push(Channel {
            name: c.name,
            versions,
            subscribers,
            publishers,
        });
    }
    Ok(Config {
        endpoint: raw.endpoint.unwrap_or_else(|| DEFAULT_ENDPOINT.to_owned()),
        channels,
    })
}

fn tables_of(at: &str, key: &str, tables: Vec<u32>) -> Result<Vec<u32>, String> {
    if tables.is_empty() {
        return Err(format!("{at}: {key}: tables is empty"));
    }
    if tables.contains(&0) {
        return Err(format!("{at}: {key}: table 0 is not a routing table"));
    }
    let mut t = tables;
    t.sort_unstable();
    t.dedup();
    Ok(t)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// The ConfigMap sart's manifests mount into the `sartd fib` sidecar.
    const SARTS_SIDECAR: &str = "endpoint: 127.0.0.1:5001\nchannels:\n  - name: bgp-to-kernel\n    \
         ip_version: ipv4\n    subscribers:\n      - protocol: bgp\n        endpoint: 127.0.0.1:5010\n    \
         publishers:\n      - protocol: kernel\n        tables:\n          - 254\n";

    #[test]
    fn sarts_sidecar_configuration_parses() {
        let c = parse(SARTS_SIDECAR).unwrap();
        assert_eq!(c.endpoint, "127.0.0.1:5001");
        assert_eq!(
            c.channels,
            [Channel {
                name: "bgp-to-kernel".into(),
                versions: Versions::V4,
                subscribers: vec![Subscriber::Bgp {
                    endpoint: "127.0.0.1:5010".into()
                }],
                publishers: vec![Publisher::Kernel { tables: vec![254] }],
            }]
        );
    }

    #[test]
    fn redistribution_with_attributes_parses() {
        let c = parse(
            "channels:\n- name: kernel_tables\n  subscribers:\n    - protocol: kernel\n      \
             tables: [254, 8]\n  publishers:\n    - protocol: bgp\n      endpoint: localhost:5000\n      \
             attributes: {med: 50, communities: ['65000:10']}\n",
        )
        .unwrap();
        assert_eq!(c.endpoint, DEFAULT_ENDPOINT);
        let ch = &c.channels[0];
        assert_eq!(ch.versions, Versions::Both);
        assert_eq!(
            ch.subscribers,
            [Subscriber::Kernel {
                tables: vec![8, 254]
            }]
        );
        let Publisher::Bgp { attributes, .. } = &ch.publishers[0] else {
            panic!("{ch:?}")
        };
        assert_eq!(attributes.med, Some(50));
        assert_eq!(attributes.communities.len(), 1);
    }

    #[test]
    fn bad_channels_are_refused_with_where_and_why() {
        for (yaml, says) in [
            (
                "channels: [{name: x, subscribers: [{protocol: ospf}], publishers: []}]",
                "fib configuration",
            ),
            (
                "channels: [{name: x, ip_version: ipv5, subscribers: [{protocol: kernel, tables: [1]}], publishers: [{protocol: kernel, tables: [2]}]}]",
                "ipv5",
            ),
            (
                "channels: [{name: x, subscribers: [{protocol: kernel, tables: [1]}], publishers: []}]",
                "at least one",
            ),
            (
                "channels: [{name: x, subscribers: [{protocol: kernel, tables: [8]}], publishers: [{protocol: kernel, tables: [8]}]}]",
                "also a subscriber",
            ),
            (
                "channels: [{name: x, subscribers: [{protocol: kernel, tables: [1]}], publishers: [{protocol: kernel, tables: [0]}]}]",
                "table 0",
            ),
            (
                "channels: [{name: x, subscribers: [{protocol: bgp, endpoint: a}], publishers: [{protocol: kernel, tables: [255]}]}]",
                "local table",
            ),
            (
                "channels: [{name: x, subscribers: [{protocol: bgp, endpoint: a}], publishers: [{protocol: kernel, tables: [8]}]}, \
                 {name: y, subscribers: [{protocol: bgp, endpoint: b}], publishers: [{protocol: kernel, tables: [8]}]}]",
                "channel x already publishes into table 8",
            ),
            (
                "channels: [{name: x, subscribers: [{protocol: bgp, endpoint: a}], publishers: [{protocol: kernel, tables: [8]}]}, \
                 {name: x, subscribers: [{protocol: bgp, endpoint: b}], publishers: [{protocol: kernel, tables: [9]}]}]",
                "comes before",
            ),
            (
                "channels: [{name: x, subscribers: [{protocol: kernel, tables: [1]}], publishers: [{protocol: bgp, endpoint: a, attributes: {origin: bogus}}]}]",
                "publishers[0].attributes.origin",
            ),
            (
                "channels: [{name: x, subscribers: [{protocol: bgp, endpoint: a, attributes: {med: 1}}], publishers: [{protocol: kernel, tables: [1]}]}]",
                "belong to a BGP publisher",
            ),
        ] {
            let e = parse(yaml).unwrap_err();
            assert!(e.contains(says), "{yaml}: {e}");
        }
    }
}
