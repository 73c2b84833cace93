//! `sartd`: the sart daemons. Subcommands that are not built yet say so and exit non-zero rather
//! than pretending to run.

use std::process::ExitCode;

mod upstream;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "sartd", version, about = "sart daemons")]
struct Cli {
    #[command(flatten)]
    log: daemon::log::LogArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// BGP speaker.
    Bgp(speaker::Args),
    /// sart's FIB process: channels from a speaker (`sartd bgp --fib HOST:PORT`) or kernel
    /// tables to kernel tables or a speaker's API. One table needs no second process:
    /// `sartd bgp --fib kernel`.
    Fib(speaker::FibArgs),
    /// Kubernetes controller: AddressPools and LoadBalancer Services.
    Controller(ControllerArgs),
    /// Node agent: drives the local speaker from the node's NodeBGP, BGPPeers and
    /// BGPAdvertisements.
    Agent(AgentArgs),
    /// Installs sart-cni and its conflist on the node (the agent's init container).
    InstallCni(InstallCniArgs),
    /// Prints the version (as sart's `sartd version` did).
    Version,
}

#[derive(clap::Args)]
struct InstallCniArgs {
    /// The conflist to install (its file name is kept).
    #[arg(long, default_value = DEFAULT_CONFLIST)]
    conflist: std::path::PathBuf,
    /// The node's CNI binary directory.
    #[arg(long, default_value = "/opt/cni/bin")]
    bin_dir: std::path::PathBuf,
    /// The node's CNI configuration directory.
    #[arg(long, default_value = "/etc/cni/net.d")]
    conf_dir: std::path::PathBuf,
    /// The sart-cni binary (default: next to this sartd, else where the image keeps it).
    #[arg(long)]
    binary: Option<std::path::PathBuf>,
}

const DEFAULT_CONFLIST: &str = "/etc/sart/cni/10-sart.conflist";

/// Where sart's image keeps the plugin (see Dockerfile): not on PATH, it is for the node.
const IMAGE_CNI_BINARY: &str = "/opt/sart/bin/sart-cni";

fn cni_binary(given: Option<std::path::PathBuf>) -> Option<std::path::PathBuf> {
    given.or_else(|| {
        let beside = std::env::current_exe()
            .ok()
            .map(|p| p.with_file_name("sart-cni"))?;
        Some(if beside.exists() {
            beside
        } else {
            IMAGE_CNI_BINARY.into()
        })
    })
}

fn install_cni(args: InstallCniArgs) -> ExitCode {
    let Some(binary) = cni_binary(args.binary) else {
        eprintln!("sartd install-cni: cannot tell where sart-cni is: pass --binary");
        return ExitCode::FAILURE;
    };
    let (conflist_name, conflist) = match agent::install_cni::read_conflist(&args.conflist) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("sartd install-cni: {e}");
            return ExitCode::FAILURE;
        }
    };
    run_install(agent::install_cni::Install {
        binary,
        conflist_name,
        conflist,
        bin_dir: args.bin_dir,
        conf_dir: args.conf_dir,
    })
}

/// sart's init container runs `cni-installer` with its conflist in `CNI_NETCONF`: ours is
/// installed from it, pointed at the agent's socket, beside sart's directories.
fn sart_cni_installer() -> ExitCode {
    let Some(binary) = cni_binary(None) else {
        eprintln!("cni-installer: cannot tell where sart-cni is");
        return ExitCode::FAILURE;
    };
    let conflist = match std::env::var("CNI_NETCONF") {
        Ok(text) => agent::install_cni::from_sart_netconf(&text, "unix:///run/sart/cni.sock"),
        Err(_) => agent::install_cni::read_conflist(std::path::Path::new(DEFAULT_CONFLIST))
            .map(|(_, body)| body),
    };
    let conflist = match conflist {
        Ok(c) => c,
        Err(e) => {
            eprintln!("cni-installer: {e}");
            return ExitCode::FAILURE;
        }
    };
    run_install(agent::install_cni::Install {
        binary,
        conflist_name: "10-sart.conflist".into(),
        conflist,
        bin_dir: "/opt/cni/bin".into(),
        conf_dir: "/etc/cni/net.d".into(),
    })
}

fn run_install(i: agent::install_cni::Install) -> ExitCode {
    match agent::install_cni::install(&i) {
        Ok(done) => {
            for p in done.written {
                println!("installed {}", p.display());
            }
            for (from, to) in done.set_aside {
                println!("set aside {} as {}", from.display(), to.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("sartd install-cni: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Which half of sart runs: LoadBalancer, pod networking, or both.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Mode {
    Lb,
    Cni,
    Dual,
}

#[derive(clap::Args)]
struct AgentArgs {
    /// This node's name (default: `NODE_NAME`, else `HOSTNAME`, which sart's manifests set).
    #[arg(long, env = "NODE_NAME")]
    node_name: Option<String>,
    /// The speaker's API, `unix:///path` or a loopback `address:port`; given, it is used
    /// whatever the NodeBGP's `speaker.path` says (default: that path, else 127.0.0.1:5000).
    #[arg(long)]
    speaker: Option<String>,
    /// Seconds between full resynchronisations with the speaker.
    #[arg(long, default_value_t = 10)]
    resync: u64,
    /// `cni` and `dual` also serve `sart-cni` on `--cni-socket` and set up pods' networks
    /// [default: lb].
    #[arg(long, value_enum)]
    mode: Option<Mode>,
    /// The unix socket `sart-cni` calls (cni, dual).
    #[arg(long, default_value = "/run/sart/cni.sock")]
    cni_socket: std::path::PathBuf,
    /// Where the agent keeps one record per pod attachment (survives agent restarts).
    #[arg(long, default_value = "/var/lib/sart/cni")]
    cni_state_dir: std::path::PathBuf,
    /// CNI operations served at once; more wait up to 10 s, then get "try again later".
    #[arg(long, default_value_t = 32)]
    cni_parallel: usize,
    /// Seconds an empty pod block is kept before it is released.
    #[arg(long, default_value_t = 300)]
    block_release_after: u64,
    /// Ask for a pool's next block once this node's free addresses in it are at most this
    /// percentage of one block, so pods rarely wait for one; 0 asks only when a block is full.
    #[arg(long, default_value_t = 25, value_parser = clap::value_parser!(u32).range(0..=100))]
    block_prefetch: u32,
    /// Seconds between looks for addresses of pods that no longer exist (freed if older).
    #[arg(long, default_value_t = 60)]
    cni_gc_interval: u64,
    /// Prefixes pods' traffic is never masqueraded to, besides every pod pool (e.g. the Service
    /// CIDR); comma-separated or repeated.
    #[arg(long, value_delimiter = ',')]
    no_masquerade: Vec<ipnet::IpNet>,
    /// Where `/metrics` (sart_agent_*), `/healthz` and `/readyz` are served (plain HTTP; sart's
    /// port, where its manifests probe).
    #[arg(long, default_value = "0.0.0.0:8000")]
    http_addr: std::net::SocketAddr,
    /// The only namespace BGPPeer passwordSecretRefs may name (and their default): every agent
    /// can read every Secret there, so keep only BGP passwords and BFD keys in it.
    #[arg(long, default_value = "sart-bgp-secrets")]
    password_namespace: String,
    #[command(flatten)]
    upstream: upstream::Flags,
}

/// The node's name: the flag or `NODE_NAME`, else `HOSTNAME` (a hostNetwork pod's host name is
/// the node's), else none.
fn node_name(given: Option<String>, hostname: Option<String>) -> Option<String> {
    given
        .or(hostname)
        .map(|n| n.trim().to_owned())
        .filter(|n| !n.is_empty())
}

/// sart's flags and file in our terms, its ignored parts logged; `None` after saying why not.
fn upstream_flags(daemon: upstream::Daemon, flags: &upstream::Flags) -> Option<upstream::Resolved> {
    match upstream::load(daemon, flags) {
        Ok(r) => {
            for line in &r.ignored {
                tracing::warn!("{line}");
            }
            Some(r)
        }
        Err(e) => {
            eprintln!("error: {e}");
            None
        }
    }
}

fn agent(args: AgentArgs) -> ExitCode {
    let Some(node) = node_name(args.node_name, std::env::var("HOSTNAME").ok()) else {
        eprintln!("error: sartd agent: no node name: pass --node-name or set NODE_NAME");
        return ExitCode::from(2);
    };
    let Some(up) = upstream_flags(upstream::Daemon::Agent, &args.upstream) else {
        return ExitCode::from(2);
    };
    let mode = args.mode.or(up.mode).unwrap_or(Mode::Lb);
    let cni_socket = up.cni_socket.unwrap_or(args.cni_socket);
    let opts = agent::Options {
        node: node.clone(),
        speaker: args.speaker,
        resync: std::time::Duration::from_secs(args.resync.max(1)),
        cni: (mode != Mode::Lb).then(|| {
            (
                cni_socket,
                agent::PodOptions {
                    node,
                    state_dir: args.cni_state_dir,
                    parallel: args.cni_parallel,
                    release_after: std::time::Duration::from_secs(args.block_release_after),
                    leak_gc_interval: std::time::Duration::from_secs(args.cni_gc_interval),
                    no_masquerade: args.no_masquerade,
                    prefetch_percent: args.block_prefetch,
                },
            )
        }),
        http: upstream::with_port(args.http_addr, up.http_port),
        password_namespace: args.password_namespace,
    };
    block_on("agent", |client| async move {
        agent::run(client, opts).await.map_err(anyhow::Error::from)
    })
}

/// Runs `f` with a Kubernetes client until it ends, SIGINT or SIGTERM.
fn block_on<F, Fut>(what: &str, f: F) -> ExitCode
where
    F: FnOnce(kube::Client) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("sartd {what}: starting the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result: anyhow::Result<()> = rt.block_on(async {
        let client = kube::Client::try_default()
            .await
            .map_err(|e| anyhow::anyhow!("no Kubernetes client configuration: {e}"))?;
        tokio::select! {
            r = f(client) => r,
            _ = tokio::signal::ctrl_c() => Ok(()),
            _ = terminate() => Ok(()),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("sartd {what}: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[derive(clap::Args)]
struct ControllerArgs {
    /// Namespace of the leader-election Lease.
    #[arg(long, default_value = "kube-system")]
    lease_namespace: String,
    /// Name of the leader-election Lease.
    #[arg(long, default_value = "sart-controller")]
    lease_name: String,
    /// Run without leader election (a single replica only).
    #[arg(long)]
    no_leader_election: bool,
    /// This replica's identity in the Lease (default: $POD_NAME, else the host name).
    #[arg(long, env = "POD_NAME")]
    identity: Option<String>,
    /// `lb` and `dual` handle LoadBalancer Services; `cni` and `dual` hand out pod address
    /// blocks (BlockRequest → AddressBlock) [default: dual].
    #[arg(long, value_enum)]
    mode: Option<Mode>,
    /// The controller's namespace (where its own webhook certificate Secret is kept).
    #[arg(long, env = "POD_NAMESPACE", default_value = "kube-system")]
    namespace: String,
    /// Where `/metrics`, `/healthz` and `/readyz` are served (plain HTTP).
    #[arg(long, default_value = "0.0.0.0:8080")]
    http_bind: std::net::SocketAddr,
    /// Where the admission webhooks listen (HTTPS).
    #[arg(long, default_value = "0.0.0.0:8443")]
    webhook_bind: std::net::SocketAddr,
    /// Serve no webhooks (for clusters without the webhook configurations).
    #[arg(long)]
    no_webhook: bool,
    /// A mounted webhook certificate (`tls.crt`, `tls.key`), e.g. from cert-manager. Without
    /// one the controller makes its own and keeps it in the Secret `--webhook-secret`
    /// [default: /etc/sart/webhook-cert, else sart's /etc/sartd/cert where one is mounted].
    #[arg(long)]
    webhook_cert_dir: Option<std::path::PathBuf>,
    #[arg(long, default_value = "sart-webhook-server-cert")]
    webhook_secret: String,
    /// Names (or addresses) our own certificate is made for; repeatable (default:
    /// sart-webhook-service.<namespace>.svc).
    #[arg(long = "webhook-host")]
    webhook_hosts: Vec<String>,
    /// The webhook configurations whose caBundle we fill with our own certificate's CA.
    #[arg(long, default_value = "sart-validating-webhook-configuration")]
    validating_webhook_configuration: String,
    #[arg(long, default_value = "sart-mutating-webhook-configuration")]
    mutating_webhook_configuration: String,
    #[command(flatten)]
    upstream: upstream::Flags,
}

/// Where sart's manifests mount the webhook certificate.
const SART_CERT_DIR: &str = "/etc/sartd/cert";

/// The webhook certificate directory: ours unless only sart's is mounted.
fn default_cert_dir() -> std::path::PathBuf {
    let ours = std::path::Path::new("/etc/sart/webhook-cert");
    let sart = std::path::Path::new(SART_CERT_DIR);
    if !ours.exists() && sart.join("tls.crt").exists() {
        sart.into()
    } else {
        ours.into()
    }
}

fn controller(args: ControllerArgs) -> ExitCode {
    let Some(up) = upstream_flags(upstream::Daemon::Controller, &args.upstream) else {
        return ExitCode::from(2);
    };
    let tls_dir = match &up.tls {
        Some((cert, key)) => match upstream::cert_dir(cert, key) {
            Some(d) => Some(d),
            None => {
                eprintln!(
                    "error: sartd controller: the webhook certificate is read as tls.crt and \
                     tls.key of one directory: pass it as --webhook-cert-dir"
                );
                return ExitCode::from(2);
            }
        },
        None => None,
    };
    let cert_dir = args
        .webhook_cert_dir
        .or(tls_dir)
        .unwrap_or_else(default_cert_dir);
    let mode = args.mode.or(up.mode).unwrap_or(Mode::Dual);
    let identity = args.identity.unwrap_or_else(|| {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|s| s.trim().to_owned())
            .unwrap_or_else(|_| "sart-controller".into())
    });
    let opts = controller::Options {
        lease: (!args.no_leader_election).then_some((args.lease_namespace, args.lease_name)),
        identity,
        services: mode != Mode::Cni,
        pods: mode != Mode::Lb,
        metrics: controller::metrics::Metrics::default(),
    };
    let metrics = opts.metrics.clone();
    let http_bind = upstream::with_port(args.http_bind, up.http_port);
    let webhook_bind = upstream::with_port(args.webhook_bind, up.https_port);
    let webhook = (!args.no_webhook).then(|| {
        let hosts = if args.webhook_hosts.is_empty() {
            vec![
                format!("sart-webhook-service.{}.svc", args.namespace),
                format!("sart-webhook-service.{}.svc.cluster.local", args.namespace),
            ]
        } else {
            args.webhook_hosts
        };
        controller::webhook::Options {
            bind: webhook_bind,
            cert_dir,
            secret: (args.namespace, args.webhook_secret),
            hosts,
            configurations: (
                args.validating_webhook_configuration,
                args.mutating_webhook_configuration,
            ),
        }
    });
    block_on("controller", |client| async move {
        let m = metrics.clone();
        let webhooks = async {
            match webhook {
                Some(w) => controller::webhook::run(client.clone(), w, m).await,
                None => {
                    m.set_ready();
                    std::future::pending().await
                }
            }
        };
        let http = controller::metrics::serve(http_bind, metrics);
        tokio::select! {
            r = controller::run(client.clone(), opts) => r.map_err(anyhow::Error::from),
            r = webhooks => r.map_err(anyhow::Error::from),
            r = http => r.map_err(|e| anyhow::anyhow!("HTTP server on {http_bind}: {e}")),
        }
    })
}

async fn terminate() {
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut s) => {
            s.recv().await;
        }
        Err(_) => std::future::pending().await,
    }
}

/// The speaker alone, beside this binary (as the image and `cargo build` place it).
const SPEAKER_BINARY: &str = "sartd-bgp";

/// glibc's limit on malloc arenas, read from the environment before `main`.
const MALLOC_ARENA_MAX: &str = "MALLOC_ARENA_MAX";

/// Replaces this process with `sartd-bgp` and the same arguments, so the speaker does not map
/// the controller's and the agent's code. Returns only when that is not possible: `None` when
/// there is no such binary (the speaker then runs here, as before), the error when it is there
/// but would not start.
fn exec_speaker() -> Option<std::io::Error> {
    use std::os::unix::process::CommandExt;
    let exe = std::env::current_exe().ok()?;
    let bin = exe.with_file_name(SPEAKER_BINARY);
    if !bin.is_file() {
        return None;
    }
    let mut speaker = std::process::Command::new(&bin);
    speaker
        .arg0(SPEAKER_BINARY)
        .args(std::env::args_os().skip(1));
    // glibc gives every thread that allocates an arena of its own. The speaker's work is one
    // busy task among many idle ones: one arena held 0.5 MiB less with 500 sessions up, with
    // no CPU difference in the relay bench. glibc reads this before main, so it is set here;
    // an operator's own setting wins.
    if std::env::var_os(MALLOC_ARENA_MAX).is_none() {
        speaker.env(MALLOC_ARENA_MAX, "1");
    }
    let err = speaker.exec();
    Some(std::io::Error::new(
        err.kind(),
        format!("{}: {err}", bin.display()),
    ))
}

fn main() -> ExitCode {
    let argv0 = std::env::args_os().next().map(std::path::PathBuf::from);
    if argv0.as_deref().and_then(|p| p.file_name()) == Some("cni-installer".as_ref()) {
        return sart_cni_installer();
    }
    let cli = Cli::parse();
    if let Err(e) = daemon::log::init(&cli.log) {
        eprintln!("error: {e}");
        return ExitCode::from(2);
    }
    match cli.command {
        Command::Bgp(args) => {
            if let Some(err) = exec_speaker() {
                tracing::warn!("running the speaker in sartd: {err}");
            }
            speaker::main(args)
        }
        Command::Fib(args) => speaker::fib_main(args),
        Command::Controller(args) => controller(args),
        Command::Agent(args) => agent(args),
        Command::InstallCni(args) => install_cni(args),
        Command::Version => {
            println!("sartd {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
    }
}

#[cfg(test)]
mod tests {
    use super::node_name;

    #[test]
    fn the_node_name_falls_back_to_the_host_name() {
        let s = |v: &str| Some(v.to_owned());
        assert_eq!(node_name(s("n1"), s("host")), s("n1"));
        assert_eq!(node_name(None, s("worker-2\n")), s("worker-2"));
        assert_eq!(node_name(None, s(" ")), None);
        assert_eq!(node_name(None, None), None);
    }
}
