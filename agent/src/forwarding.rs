//! The node's forwarding sysctls, and only those (cni and dual modes):
//!
//! - `net.ipv4.ip_forward=1`: pods are routed through the node.
//! - `net.ipv6.conf.all.forwarding=1` only while an IPv6 AddressPool exists (pods' addresses,
//!   or in dual mode Service addresses whose traffic the node may pass on). Forwarding makes Linux
//!   ignore router advertisements on interfaces with `accept_ra=1`, and nodes that take their
//!   IPv6 default route from RAs would lose it: before turning it on, each of the node's own
//!   interfaces with `accept_ra=1` gets `2` (accept RAs while forwarding). Pod veths are left
//!   alone, so a pod's RAs stay ignored, and so is `default`, which new pod veths copy.
//! - When the last IPv6 pool goes, forwarding goes off again if this agent turned it on (a
//!   marker beside the CNI socket in /run, which a reboot clears with the sysctls); a node that
//!   forwarded before sart keeps forwarding.
//!
//! [`plan`] decides from what it is shown; [`apply`] reads and writes /proc/sys.

use std::path::Path;

use tracing::info;

use super::guard::POD_LINK_GROUP;

/// One interface as /proc/sys and /sys show it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Interface {
    pub name: String,
    /// `net.ipv6.conf.<name>.accept_ra`.
    pub accept_ra: u8,
    /// A pod's host-side veth (in sart's link group).
    pub pod: bool,
}

/// What the node has now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct State {
    pub ipv4_forwarding: bool,
    pub ipv6_forwarding: bool,
    /// IPv6 forwarding was turned on by sart.
    pub ours: bool,
    pub interfaces: Vec<Interface>,
}

/// One change, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Write {
    /// A sysctl under /proc/sys (`net/ipv6/conf/all/forwarding`) and its value.
    Sysctl(String, &'static str),
    /// Whether sart owns IPv6 forwarding from now on.
    Ours(bool),
}

/// `ipv6_pool`: whether an IPv6 AddressPool exists; `None` before the pools are known, when IPv6
/// is left as it is (an agent restarting must not turn off the forwarding its pods use).
pub(crate) fn plan(ipv6_pool: Option<bool>, s: &State) -> Vec<Write> {
    let mut w = Vec::new();
    if !s.ipv4_forwarding {
        w.push(Write::Sysctl("net/ipv4/ip_forward".into(), "1"));
    }
    let Some(ipv6_pool) = ipv6_pool else {
        return w;
    };
    match (ipv6_pool, s.ipv6_forwarding, s.ours) {
        // Ours to keep: interfaces that came up since get their RAs kept too.
        (true, _, true) | (true, false, _) => {
            // Noted first: a crash before the sysctl leaves a marker the next run undoes.
            if !s.ours {
                w.push(Write::Ours(true));
            }
            for i in s.interfaces.iter().filter(|i| !i.pod && i.accept_ra == 1) {
                w.push(Write::Sysctl(
                    format!("net/ipv6/conf/{}/accept_ra", i.name),
                    "2",
                ));
            }
            if !s.ipv6_forwarding {
                w.push(Write::Sysctl("net/ipv6/conf/all/forwarding".into(), "1"));
            }
        }
        (false, true, true) => {
            w.push(Write::Sysctl("net/ipv6/conf/all/forwarding".into(), "0"));
            w.push(Write::Ours(false));
        }
        (false, false, true) => w.push(Write::Ours(false)),
        // Forwarding someone else turned on, or none wanted.
        _ => {}
    }
    w
}

#[derive(Debug, thiserror::Error)]
#[error("sysctl {key}: {source}")]
pub struct SysctlError {
    key: String,
    source: std::io::Error,
}

/// The file that says IPv6 forwarding is the agent's own, beside its CNI socket (in /run, a
/// tmpfs: gone with a reboot, as the sysctl is).
pub(crate) fn marker(cni_socket: &Path) -> std::path::PathBuf {
    cni_socket
        .parent()
        .unwrap_or(Path::new("/run/sart"))
        .join("ipv6-forwarding")
}

/// Reads the node's state, writes what [`plan`] says. Blocking: run it off the async workers.
pub(crate) fn apply(marker: &Path, ipv6_pool: Option<bool>) -> Result<(), SysctlError> {
    let s = read(marker)?;
    for w in plan(ipv6_pool, &s) {
        match w {
            Write::Sysctl(key, value) => {
                std::fs::write(format!("/proc/sys/{key}"), value).map_err(|source| {
                    SysctlError {
                        key: key.replace('/', "."),
                        source,
                    }
                })?;
                info!(sysctl = %key.replace('/', "."), value, "set");
            }
            Write::Ours(true) => {
                std::fs::write(marker, b"").map_err(|source| SysctlError {
                    key: marker.display().to_string(),
                    source,
                })?;
            }
            Write::Ours(false) => {
                let _ = std::fs::remove_file(marker);
            }
        }
    }
    Ok(())
}

fn read(marker: &Path) -> Result<State, SysctlError> {
    let get = |key: &str| -> Result<String, SysctlError> {
        std::fs::read_to_string(format!("/proc/sys/{key}"))
            .map(|v| v.trim().to_owned())
            .map_err(|source| SysctlError {
                key: key.replace('/', "."),
                source,
            })
    };
    let mut interfaces = Vec::new();
    // No IPv6 on the node: nothing to read, and nothing to write for it.
    let ipv6 = Path::new("/proc/sys/net/ipv6/conf").exists();
    if ipv6 {
        let dir = std::fs::read_dir("/proc/sys/net/ipv6/conf").map_err(|source| SysctlError {
            key: "net.ipv6.conf".into(),
            source,
        })?;
        for e in dir.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if matches!(name.as_str(), "all" | "default" | "lo") {
                continue;
            }
            // An interface that went meanwhile is simply not there.
            let Ok(ra) = get(&format!("net/ipv6/conf/{name}/accept_ra")) else {
                continue;
            };
            let group = std::fs::read_to_string(format!("/sys/class/net/{name}/netdev_group"))
                .ok()
                .and_then(|g| g.trim().parse::<u32>().ok());
            interfaces.push(Interface {
                accept_ra: ra.parse().unwrap_or(0),
                // Veths are made in the group; the name catches one an older agent made
                // (grouped at its next start) or one read in the middle of being made.
                pod: group == Some(POD_LINK_GROUP) || super::podnet::is_host_ifname(&name),
                name,
            });
        }
    }
    Ok(State {
        ipv4_forwarding: get("net/ipv4/ip_forward")? == "1",
        ipv6_forwarding: ipv6 && get("net/ipv6/conf/all/forwarding")? == "1",
        ours: marker.exists(),
        interfaces,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iface(name: &str, accept_ra: u8, pod: bool) -> Interface {
        Interface {
            name: name.into(),
            accept_ra,
            pod,
        }
    }

    fn node(v6: bool, ours: bool) -> State {
        State {
            ipv4_forwarding: true,
            ipv6_forwarding: v6,
            ours,
            interfaces: vec![
                iface("eth0", 1, false),
                iface("eth1", 0, false),
                iface("eth2", 2, false),
                iface("veth2b08ae25566", 1, true),
            ],
        }
    }

    fn sysctl(k: &str, v: &'static str) -> Write {
        Write::Sysctl(k.into(), v)
    }

    #[test]
    fn ipv6_forwarding_only_with_an_ipv6_pool_and_ras_kept() {
        // No IPv6 pool: nothing for IPv6, whatever the node has.
        assert_eq!(plan(Some(false), &node(false, false)), vec![]);
        // One appears: RAs kept where they were accepted (not on pods' veths, not where
        // disabled), then forwarding.
        assert_eq!(
            plan(Some(true), &node(false, false)),
            vec![
                Write::Ours(true),
                sysctl("net/ipv6/conf/eth0/accept_ra", "2"),
                sysctl("net/ipv6/conf/all/forwarding", "1"),
            ]
        );
        // Ours and on: an uplink that came up since with accept_ra=1 gets 2.
        assert_eq!(
            plan(Some(true), &node(true, true)),
            vec![sysctl("net/ipv6/conf/eth0/accept_ra", "2")]
        );
        // The pool goes: ours goes off; someone else's stays.
        assert_eq!(
            plan(Some(false), &node(true, true)),
            vec![
                sysctl("net/ipv6/conf/all/forwarding", "0"),
                Write::Ours(false)
            ]
        );
        assert_eq!(plan(Some(false), &node(true, false)), vec![]);
        // Forwarding the node had before sart: left as the administrator set it.
        assert_eq!(plan(Some(true), &node(true, false)), vec![]);
        // Pools not known yet: IPv6 as it is, ours included.
        assert_eq!(plan(None, &node(true, true)), vec![]);
        assert_eq!(plan(None, &node(false, false)), vec![]);
    }

    #[test]
    fn ipv4_forwarding_always() {
        let mut s = node(false, false);
        s.ipv4_forwarding = false;
        for v6 in [None, Some(false)] {
            assert_eq!(plan(v6, &s), vec![sysctl("net/ipv4/ip_forward", "1")]);
        }
    }
}
