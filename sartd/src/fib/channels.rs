//! sart's `sartd fib` configuration: channels that carry routes from subscribers (the BGP
//! speaker, kernel tables) to publishers (kernel tables, the speaker). Here the FIB is part of
//! `sartd bgp`, so a channel from BGP into one kernel table needs no process of its own; what
//! sart's manifests run as a sidecar is read, checked and described, and channels this sartd
//! cannot carry are refused by name.

use serde::Deserialize;

#[derive(Debug, Deserialize)]
pub struct Config {
    /// sart's FibApi address; nothing dials it here.
    #[serde(default)]
    pub endpoint: Option<String>,
    #[serde(default)]
    pub channels: Vec<Channel>,
}

#[derive(Debug, Deserialize)]
pub struct Channel {
    pub name: String,
    #[serde(default)]
    pub ip_version: Option<String>,
    #[serde(default)]
    pub subscribers: Vec<End>,
    #[serde(default)]
    pub publishers: Vec<End>,
}

/// One end of a channel.
#[derive(Debug, Deserialize, PartialEq, Eq)]
#[serde(tag = "protocol", rename_all = "lowercase")]
pub enum End {
    Bgp { endpoint: String },
    Kernel { tables: Vec<u32> },
}

pub fn parse(yaml: &str) -> Result<Config, String> {
    serde_saphyr::from_str(yaml).map_err(|e| format!("fib configuration: {e}"))
}

/// What happens to each channel: a line per channel carried by `sartd bgp`, or the first one
/// that cannot be carried, and why.
pub fn describe(c: &Config) -> Result<Vec<String>, String> {
    let mut lines = Vec::new();
    for ch in &c.channels {
        let from_bgp = ch.subscribers.iter().all(|s| matches!(s, End::Bgp { .. }));
        let tables: Vec<u32> = ch
            .publishers
            .iter()
            .filter_map(|p| match p {
                End::Kernel { tables } => Some(tables.clone()),
                End::Bgp { .. } => None,
            })
            .flatten()
            .collect();
        let into_kernel_only = ch
            .publishers
            .iter()
            .all(|p| matches!(p, End::Kernel { .. }));
        match (
            from_bgp && !ch.subscribers.is_empty(),
            into_kernel_only,
            tables.as_slice(),
        ) {
            (true, true, [table]) => lines.push(format!(
                "channel {}: BGP → kernel table {table} is installed by sartd bgp itself \
                 (--fib or --table-id {table}); nothing to do here",
                ch.name
            )),
            (true, true, _) => {
                return Err(format!(
                    "channel {}: BGP routes into kernel tables {tables:?}: sartd bgp installs \
                     into one table (--table-id)",
                    ch.name
                ));
            }
            _ => {
                return Err(format!(
                    "channel {}: routes from kernel tables into BGP (or between kernel tables) \
                     are not carried by this sartd; announce them with BGPAdvertisements or the \
                     speaker's paths instead",
                    ch.name
                ));
            }
        }
    }
    Ok(lines)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn sarts_sidecar_configuration_is_carried_by_the_speaker() {
        let c = parse(
            "endpoint: 127.0.0.1:5001\nchannels:\n  - name: bgp-to-kernel\n    ip_version: ipv4\n    \
             subscribers:\n      - protocol: bgp\n        endpoint: 127.0.0.1:5010\n    \
             publishers:\n      - protocol: kernel\n        tables:\n          - 254\n",
        )
        .unwrap();
        assert_eq!(
            c.channels[0].subscribers,
            [End::Bgp {
                endpoint: "127.0.0.1:5010".into()
            }]
        );
        let lines = describe(&c).unwrap();
        assert_eq!(lines.len(), 1);
        assert!(lines[0].contains("kernel table 254"), "{lines:?}");
    }

    #[test]
    fn redistribution_and_several_tables_are_refused_by_name() {
        let c = parse(
            "endpoint: localhost:5001\nchannels:\n- name: kernel_tables\n  ip_version: ipv4\n  \
             subscribers:\n    - protocol: kernel\n      tables: [254, 8]\n  publishers:\n    \
             - protocol: bgp\n      endpoint: localhost:5000\n",
        )
        .unwrap();
        assert!(describe(&c).unwrap_err().contains("kernel_tables"));
        let c = parse(
            "channels:\n- name: two\n  subscribers: [{protocol: bgp, endpoint: a}]\n  \
             publishers: [{protocol: kernel, tables: [254, 8]}]\n",
        )
        .unwrap();
        assert!(describe(&c).unwrap_err().contains("one table"));
        assert!(parse("channels: [{name: x, subscribers: [{protocol: ospf}]}]").is_err());
    }
}
