//! Network namespaces, veth links between them, loopback aliases and nftables link cuts.
//!
//! A [`Netns`] is a cheap handle (clones share one namespace). The namespace is deleted when the
//! last handle is dropped: daemons hold a handle, so a namespace always outlives the processes
//! started in it. Each namespace also gets a scratch directory (configs, sockets, logs) removed
//! with it, and a small reaper process (its own process group) that deletes both if the test
//! process dies without running destructors (SIGKILL, Ctrl-C).
//!
//! Names are `sarti-<pid hex>-<n>[-<label>]`: unique among concurrently running test binaries.

use std::ffi::OsStr;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::sleep;
use std::time::{Duration, Instant};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use rustix::process::{Pid, Signal};

use crate::error::{Error, Result};
use crate::process::{self, Proc, run, run_with_input};

/// Prefix of every namespace (and scratch directory) the harness creates.
pub const PREFIX: &str = "sarti-";

/// Set `SARTI_KEEP=1` to keep scratch directories (configs and logs) after a test.
pub const KEEP_ENV: &str = "SARTI_KEEP";

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A network namespace owned by this process.
#[derive(Clone, Debug)]
pub struct Netns(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    name: String,
    dir: PathBuf,
    reaper: Mutex<Option<Child>>,
}

impl Netns {
    /// Creates a fresh namespace with `lo` up, DAD off and forwarding on (it is a router).
    /// `label` (letters/digits, at most 8 kept) only helps a human reading `ip netns list`.
    pub fn new(label: &str) -> Result<Netns> {
        let label: String = label
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .take(8)
            .collect();
        let pid = std::process::id();
        let mut last_err = None;
        for _ in 0..16 {
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let name = if label.is_empty() {
                format!("{PREFIX}{pid:x}-{n}")
            } else {
                format!("{PREFIX}{pid:x}-{n}-{label}")
            };
            match run(&["ip", "netns", "add", &name]) {
                Ok(_) => return Netns::init(name),
                // A stale namespace of a dead process with a recycled pid: take the next number.
                Err(e) => last_err = Some(e),
            }
        }
        Err(last_err.unwrap_or_else(|| Error::config("netns", "no free namespace name")))
    }

    fn init(name: String) -> Result<Netns> {
        let dir = std::env::temp_dir().join(&name);
        // From here on, Drop cleans up whatever was made.
        let ns = Netns(Arc::new(Inner {
            name,
            dir,
            reaper: Mutex::new(None),
        }));
        if ns.0.dir.exists() {
            std::fs::remove_dir_all(&ns.0.dir).map_err(|e| Error::io(&ns.0.dir, e))?;
        }
        std::fs::create_dir_all(&ns.0.dir).map_err(|e| Error::io(&ns.0.dir, e))?;
        ns.start_reaper()?;
        ns.exec(&[
            "sysctl",
            "-qw",
            "net.ipv6.conf.all.accept_dad=0",
            "net.ipv6.conf.default.accept_dad=0",
            "net.ipv4.ip_forward=1",
            "net.ipv6.conf.all.forwarding=1",
        ])?;
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    fn start_reaper(&self) -> Result<()> {
        const SCRIPT: &str = r#"tail --pid="$1" -f /dev/null >/dev/null 2>&1
for p in $(ip netns pids "$2" 2>/dev/null); do kill -9 "$p" 2>/dev/null; done
ip netns del "$2" 2>/dev/null
rm -rf "$3""#;
        let child = Command::new("sh")
            .arg("-c")
            .arg(SCRIPT)
            .arg("sarti-reaper")
            .arg(std::process::id().to_string())
            .arg(&self.0.name)
            .arg(&self.0.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .map_err(|source| Error::Spawn {
                cmd: "sh (namespace reaper)".into(),
                source,
            })?;
        if let Ok(mut slot) = self.0.reaper.lock() {
            *slot = Some(child);
        }
        Ok(())
    }

    pub fn name(&self) -> &str {
        &self.0.name
    }

    /// Scratch directory of this namespace (removed with it unless `SARTI_KEEP=1`).
    pub fn dir(&self) -> &Path {
        &self.0.dir
    }

    /// `ip -n NAME ARGS...`
    pub fn ip<S: AsRef<OsStr>>(&self, args: &[S]) -> Result<String> {
        let mut argv: Vec<&OsStr> = vec![OsStr::new("ip"), OsStr::new("-n"), self.name().as_ref()];
        argv.extend(args.iter().map(AsRef::as_ref));
        run(&argv)
    }

    /// The argv that runs `argv` inside this namespace.
    pub fn wrap<S: AsRef<OsStr>>(&self, argv: &[S]) -> Vec<std::ffi::OsString> {
        let mut v: Vec<std::ffi::OsString> = vec!["ip".into(), "netns".into(), "exec".into()];
        v.push(self.name().into());
        v.extend(argv.iter().map(|a| a.as_ref().to_owned()));
        v
    }

    /// Runs a command inside the namespace to completion; returns its stdout.
    pub fn exec<S: AsRef<OsStr>>(&self, argv: &[S]) -> Result<String> {
        run(&self.wrap(argv))
    }

    /// Like [`Netns::exec`] with `input` on stdin.
    pub fn exec_with_input<S: AsRef<OsStr>>(&self, argv: &[S], input: &str) -> Result<String> {
        run_with_input(&self.wrap(argv), Some(input))
    }

    /// Starts a long-running process inside the namespace (stdout+stderr to `log`).
    /// `ip netns exec` execs the program, so the PID is the program's own.
    pub fn spawn<S: AsRef<OsStr>>(&self, name: &str, argv: &[S], log: &Path) -> Result<Proc> {
        Proc::spawn(name, &self.wrap(argv), log)
    }

    /// PIDs of every process inside the namespace.
    pub fn pids(&self) -> Vec<u32> {
        run(&["ip", "netns", "pids", self.name()])
            .map(|out| {
                out.split_whitespace()
                    .filter_map(|p| p.parse().ok())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Adds addresses to an interface in one `ip -batch` call (IPv6 without DAD).
    pub fn add_addrs(&self, dev: &str, addrs: &[IpNet]) -> Result<()> {
        let mut batch = String::new();
        for a in addrs {
            let nodad = if a.addr().is_ipv6() { " nodad" } else { "" };
            batch.push_str(&format!("addr add {a} dev {dev}{nodad}\n"));
        }
        run_with_input(&["ip", "-n", self.name(), "-batch", "-"], Some(&batch)).map(drop)
    }

    /// Loopback aliases (e.g. many `198.19.x.y/32` or `127.1.x.y/32` for fan-in tests).
    pub fn add_loopback_addrs(&self, addrs: &[IpNet]) -> Result<()> {
        self.add_addrs("lo", addrs)
    }

    /// Addresses of `dev` (JSON from `ip -j addr`).
    pub fn addrs(&self, dev: &str) -> Result<Vec<IpNet>> {
        let out = self.ip(&["-j", "addr", "show", "dev", dev])?;
        let v: serde_json::Value =
            serde_json::from_str(&out).map_err(|e| Error::parse("ip", "ip -j addr", e))?;
        let mut addrs = Vec::new();
        for link in v.as_array().into_iter().flatten() {
            for info in link["addr_info"].as_array().into_iter().flatten() {
                let (Some(local), Some(len)) = (info["local"].as_str(), info["prefixlen"].as_u64())
                else {
                    continue;
                };
                if let Ok(net) = format!("{local}/{len}").parse::<IpNet>() {
                    addrs.push(net);
                }
            }
        }
        Ok(addrs)
    }

    /// The IPv6 link-local address of `dev` (waits up to 3 s for the kernel to assign it).
    pub fn link_local(&self, dev: &str) -> Result<Ipv6Addr> {
        let deadline = Instant::now() + Duration::from_secs(3);
        loop {
            let found = self.addrs(dev)?.into_iter().find_map(|a| match a.addr() {
                IpAddr::V6(v6) if v6.segments()[0] & 0xffc0 == 0xfe80 => Some(v6),
                _ => None,
            });
            match found {
                Some(a) => return Ok(a),
                None if Instant::now() >= deadline => {
                    return Err(Error::config(
                        self.name(),
                        format!("{dev} has no IPv6 link-local address"),
                    ));
                }
                None => sleep(Duration::from_millis(100)),
            }
        }
    }

    /// The source address the kernel would use to reach `dst` from inside this namespace.
    pub fn source_for(&self, dst: IpAddr) -> Result<IpAddr> {
        let out = self.ip(&["-j", "route", "get", &dst.to_string()])?;
        let v: serde_json::Value =
            serde_json::from_str(&out).map_err(|e| Error::parse("ip", "ip -j route get", e))?;
        v[0]["prefsrc"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| Error::parse("ip", "ip -j route get", format!("no prefsrc in {out}")))
    }

    /// True if a TCP connection attempt from inside the namespace to `addr:port` gets an
    /// answer (accepted, or refused with a RST) within `timeout`: packets flow both ways.
    /// (A data-plane probe that needs no `ping` binary.)
    pub fn tcp_reachable(&self, addr: IpAddr, port: u16, timeout: Duration) -> bool {
        const PROBE: &str = "import socket, sys\n\
try:\n    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=float(sys.argv[3])).close()\n\
except ConnectionRefusedError:\n    pass\n";
        self.exec(&[
            "/usr/bin/python3",
            "-c",
            PROBE,
            &addr.to_string(),
            &port.to_string(),
            &timeout.as_secs_f64().to_string(),
        ])
        .is_ok()
    }

    /// A TCP connection from inside the namespace (the socket stays in it), for a test that
    /// plays a peer by hand. The connect runs on a thread of its own that enters the namespace
    /// and ends.
    pub fn tcp_connect(&self, to: SocketAddr, timeout: Duration) -> Result<std::net::TcpStream> {
        let path = PathBuf::from("/run/netns").join(&self.0.name);
        let r = std::thread::scope(|s| {
            s.spawn(|| -> std::io::Result<std::net::TcpStream> {
                let f = std::fs::File::open(&path)?;
                rustix::thread::move_into_link_name_space(
                    std::os::fd::AsFd::as_fd(&f),
                    Some(rustix::thread::LinkNameSpaceType::Network),
                )?;
                std::net::TcpStream::connect_timeout(&to, timeout)
            })
            .join()
        });
        match r {
            Ok(Ok(s)) => Ok(s),
            Ok(Err(e)) => Err(Error::io(&path, e)),
            Err(_) => Err(Error::config("netns", "the connecting thread panicked")),
        }
    }

    /// Silently drops every packet entering or leaving `dev` (nftables netdev ingress+egress
    /// hooks): the link looks up but is dead, as when a cable is cut behind a switch.
    pub fn cut(&self, dev: &str) -> Result<()> {
        let table = cut_table(dev);
        let rules = format!(
            "table netdev {table} {{\n\
             \x20 chain in {{ type filter hook ingress device \"{dev}\" priority -500; policy drop; }}\n\
             \x20 chain out {{ type filter hook egress device \"{dev}\" priority -500; policy drop; }}\n\
             }}\n"
        );
        self.exec_with_input(&["nft", "-f", "-"], &rules).map(drop)
    }

    /// Undoes [`Netns::cut`].
    pub fn restore(&self, dev: &str) -> Result<()> {
        self.exec(&["nft", "delete", "table", "netdev", &cut_table(dev)])
            .map(drop)
    }

    /// True while `dev` is cut by [`Netns::cut`].
    pub fn is_cut(&self, dev: &str) -> bool {
        self.exec(&["nft", "list", "table", "netdev", &cut_table(dev)])
            .is_ok()
    }
}

fn cut_table(dev: &str) -> String {
    let safe: String = dev
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    format!("sarti_cut_{safe}")
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Daemons hold a handle, so they are gone by now; anything left is a stray helper.
        let deadline = Instant::now() + Duration::from_secs(3);
        loop {
            let pids: Vec<u32> = run(&["ip", "netns", "pids", &self.name])
                .map(|o| {
                    o.split_whitespace()
                        .filter_map(|p| p.parse().ok())
                        .collect()
                })
                .unwrap_or_default();
            if pids.is_empty() || Instant::now() >= deadline {
                break;
            }
            for pid in pids {
                let _ = process::signal(pid, Signal::KILL);
            }
            sleep(Duration::from_millis(50));
        }
        let _ = run(&["ip", "netns", "del", &self.name]);
        if let Ok(mut slot) = self.reaper.lock()
            && let Some(mut child) = slot.take()
        {
            if let Some(pgid) = i32::try_from(child.id()).ok().and_then(Pid::from_raw) {
                let _ = rustix::process::kill_process_group(pgid, Signal::KILL);
            }
            let _ = child.wait();
        }
        let keep = std::env::var(KEEP_ENV).is_ok_and(|v| v == "1");
        if keep {
            eprintln!("[interop] kept {}", self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// One end of a veth link.
#[derive(Clone, Debug)]
pub struct LinkEnd {
    pub netns: Netns,
    pub ifname: String,
    /// Interface address and prefix, e.g. 198.18.1.1/24.
    pub v4: Ipv4Net,
    /// Interface address and prefix, e.g. fd00:1::1/64.
    pub v6: Ipv6Net,
}

impl LinkEnd {
    pub fn ipv4(&self) -> Ipv4Addr {
        self.v4.addr()
    }

    pub fn ipv6(&self) -> Ipv6Addr {
        self.v6.addr()
    }

    pub fn link_local(&self) -> Result<Ipv6Addr> {
        self.netns.link_local(&self.ifname)
    }

    /// Cuts the link at this end (both directions).
    pub fn cut(&self) -> Result<()> {
        self.netns.cut(&self.ifname)
    }

    pub fn restore(&self) -> Result<()> {
        self.netns.restore(&self.ifname)
    }
}

/// A veth pair between two namespaces with an IPv4 /24 (or given) and an IPv6 /64 on it.
#[derive(Clone, Debug)]
pub struct Link {
    pub a: LinkEnd,
    pub b: LinkEnd,
}

impl Link {
    /// `veth{n}` in both namespaces; 198.18.n.1/24 + fd00:n::1/64 on `a`, .2 / ::2 on `b`.
    pub fn veth(a: &Netns, b: &Netns, n: u8) -> Result<Link> {
        let v4: Ipv4Net = format!("198.18.{n}.0/24")
            .parse()
            .map_err(|e| Error::config("link", format!("{e}")))?;
        let v6: Ipv6Net = format!("fd00:{n}::/64")
            .parse()
            .map_err(|e| Error::config("link", format!("{e}")))?;
        let ifname = format!("veth{n}");
        Link::new(a, &ifname, b, &ifname, v4, v6)
    }

    /// A veth pair with explicit names and subnets: host 1 of each subnet on `a`, host 2 on `b`.
    pub fn new(
        a: &Netns,
        if_a: &str,
        b: &Netns,
        if_b: &str,
        v4: Ipv4Net,
        v6: Ipv6Net,
    ) -> Result<Link> {
        let host4 = |i: u32| {
            Ipv4Net::new(Ipv4Addr::from(u32::from(v4.network()) + i), v4.prefix_len())
                .map_err(|e| Error::config("link", e.to_string()))
        };
        let host6 = |i: u128| {
            Ipv6Net::new(
                Ipv6Addr::from(u128::from(v6.network()) + i),
                v6.prefix_len(),
            )
            .map_err(|e| Error::config("link", e.to_string()))
        };
        let end_a = LinkEnd {
            netns: a.clone(),
            ifname: if_a.to_owned(),
            v4: host4(1)?,
            v6: host6(1)?,
        };
        let end_b = LinkEnd {
            netns: b.clone(),
            ifname: if_b.to_owned(),
            v4: host4(2)?,
            v6: host6(2)?,
        };
        // Created directly inside `a`, so names never collide in the root namespace.
        a.ip(&[
            "link",
            "add",
            if_a,
            "type",
            "veth",
            "peer",
            "name",
            if_b,
            "netns",
            b.name(),
        ])?;
        for end in [&end_a, &end_b] {
            end.netns
                .add_addrs(&end.ifname, &[IpNet::V4(end.v4), IpNet::V6(end.v6)])?;
            end.netns.ip(&["link", "set", &end.ifname, "up"])?;
        }
        Ok(Link { a: end_a, b: end_b })
    }

    /// Cuts the link (drops everything at end `a`, both directions).
    pub fn cut(&self) -> Result<()> {
        self.a.cut()
    }

    pub fn restore(&self) -> Result<()> {
        self.a.restore()
    }
}

/// Namespaces named with [`PREFIX`] (for leak checks in tests).
pub fn list_harness_namespaces() -> Vec<String> {
    run(&["ip", "netns", "list"])
        .map(|out| {
            out.lines()
                .filter_map(|l| l.split_whitespace().next())
                .filter(|n| n.starts_with(PREFIX))
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// Namespaces of this process (name contains our pid) — what a leak check should look at when
/// other test binaries run in parallel.
pub fn own_namespaces() -> Vec<String> {
    let own = format!("{PREFIX}{:x}-", std::process::id());
    list_harness_namespaces()
        .into_iter()
        .filter(|n| n.starts_with(&own))
        .collect()
}
