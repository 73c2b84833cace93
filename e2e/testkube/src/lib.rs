//! A real Kubernetes control plane for tests: etcd, kube-apiserver, kube-controller-manager and
//! kube-scheduler built from their Go modules by `e2e/controlplane/`, started on free loopback
//! ports, and a `kube::Client` for it.
//!
//! ```no_run
//! # async fn demo() -> Result<(), testkube::Error> {
//! let cluster = testkube::Cluster::shared()?; // one per test binary
//! let client = cluster.client().await?;
//! # Ok(()) }
//! ```
//!
//! A shared cluster lives as long as the test process: a small watcher started with it runs
//! `cluster down` when the process is gone, however it ends. A cluster from [`Cluster::start`] is
//! stopped when dropped (and by the same watcher if the process dies first).

pub mod node;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("could not run {what}: {source}")]
    Spawn {
        what: &'static str,
        source: std::io::Error,
    },
    #[error("`cluster up` failed ({status}); its output:\n{output}")]
    Up { status: String, output: String },
    #[error("kubeconfig {path}: {reason}")]
    Kubeconfig { path: PathBuf, reason: String },
    #[error("the shared cluster failed to start earlier: {0}")]
    SharedFailed(String),
    #[error("node lab: {0}")]
    Lab(String),
    #[error("kubectl {args}: {stderr}")]
    Kubectl { args: String, stderr: String },
}

/// The `cluster` script of the control-plane build.
pub fn cluster_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../controlplane/cluster")
}

/// A `sartd controller` process from [`Cluster::sartd_controller`], killed when dropped.
#[derive(Debug)]
pub struct Controller(std::process::Child);

impl Controller {
    pub fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[derive(Debug)]
pub struct Cluster {
    dir: PathBuf,
    owned: bool,
}

impl Cluster {
    /// Starts a fresh cluster (builds the control plane first if the cache is cold).
    pub fn start() -> Result<Cluster, Error> {
        let dir = std::env::temp_dir().join(format!(
            "sart-testkube-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or_default()
        ));
        let out = Command::new(cluster_script())
            .arg("up")
            .arg(&dir)
            .stdin(Stdio::null())
            .output()
            .map_err(|source| Error::Spawn {
                what: "e2e/controlplane/cluster up",
                source,
            })?;
        if !out.status.success() {
            return Err(Error::Up {
                status: out.status.to_string(),
                output: String::from_utf8_lossy(&out.stderr).into_owned(),
            });
        }
        watch_owner(&dir)?;
        Ok(Cluster { dir, owned: true })
    }

    /// One cluster per test binary, started on first use.
    pub fn shared() -> Result<&'static Cluster, Error> {
        static SHARED: OnceLock<Result<Cluster, String>> = OnceLock::new();
        let r = SHARED.get_or_init(|| {
            Cluster::start()
                .map(|mut c| {
                    // The watcher tears it down when the process exits; statics are never dropped.
                    c.owned = false;
                    c
                })
                .map_err(|e| e.to_string())
        });
        r.as_ref().map_err(|e| Error::SharedFailed(e.clone()))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The admin kubeconfig (`system:masters`); point `kubectl` at it.
    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.join("kubeconfig")
    }

    /// `kubectl ARGS` against this cluster; its stdout, or its stderr as the error.
    pub fn kubectl_ok(&self, args: &[&str]) -> Result<String, Error> {
        let out = self
            .kubectl()
            .args(args)
            .output()
            .map_err(|source| Error::Spawn {
                what: "kubectl",
                source,
            })?;
        if !out.status.success() {
            return Err(Error::Kubectl {
                args: args.join(" "),
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Applies the CRDs of DIR (`-k` when it is a kustomization, as sart's are, else every file)
    /// and waits until every CRD is served.
    pub fn install_crds(&self, dir: &Path) -> Result<(), Error> {
        let how = match dir.join("kustomization.yaml").exists() {
            true => "-k",
            false => "-f",
        };
        self.kubectl_ok(&["apply", how, &dir.to_string_lossy()])?;
        self.kubectl_ok(&[
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            "crd",
            "--all",
        ])?;
        Ok(())
    }

    /// `sartd controller` for this cluster as a process (one replica: no leader election, no
    /// webhooks, no fixed ports), its stderr in `controller.log` of the cluster's directory;
    /// stopped when dropped.
    pub fn sartd_controller(
        &self,
        sartd: &Path,
        mode: &str,
        level: &str,
    ) -> Result<Controller, Error> {
        let spawn = |source| Error::Spawn {
            what: "sartd controller",
            source,
        };
        let mut cmd = Command::new(sartd);
        cmd.args([
            "controller",
            "--no-leader-election",
            "--no-webhook",
            "--http-bind=127.0.0.1:0",
            &format!("--mode={mode}"),
            &format!("--level={level}"),
        ]);
        self.spawn("controller", cmd).map_err(spawn)
    }

    /// Any process that talks to this cluster (`KUBECONFIG` set), its stderr in `<name>.log` of
    /// the cluster's directory; killed when dropped.
    pub fn spawn(&self, name: &str, mut cmd: Command) -> std::io::Result<Controller> {
        let log = std::fs::File::create(self.dir.join(format!("{name}.log")))?;
        let child = cmd
            .env("KUBECONFIG", self.kubeconfig())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()?;
        Ok(Controller(child))
    }

    /// A `kubectl` command aimed at this cluster.
    pub fn kubectl(&self) -> Command {
        let mut c = Command::new("kubectl");
        c.env("KUBECONFIG", self.kubeconfig());
        c
    }

    pub async fn client(&self) -> Result<kube::Client, Error> {
        client(&self.kubeconfig()).await
    }
}

/// A client from a kubeconfig file (a control plane of this crate's, or one the lab made).
pub async fn client(kubeconfig: &Path) -> Result<kube::Client, Error> {
    let bad = |reason: String| Error::Kubeconfig {
        path: kubeconfig.to_owned(),
        reason,
    };
    let kc = kube::config::Kubeconfig::read_from(kubeconfig).map_err(|e| bad(e.to_string()))?;
    let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .map_err(|e| bad(e.to_string()))?;
    kube::Client::try_from(config).map_err(|e| bad(e.to_string()))
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if self.owned {
            let _ = Command::new(cluster_script())
                .arg("down")
                .arg(&self.dir)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// Starts a detached watcher that runs `cluster down DIR` once this process has exited.
fn watch_owner(dir: &Path) -> Result<(), Error> {
    let script = format!(
        "while kill -0 {pid} 2>/dev/null; do sleep 1; done; [ -d \"$1\" ] && exec \"$0\" down \"$1\"",
        pid = std::process::id()
    );
    Command::new("setsid")
        .arg("sh")
        .arg("-c")
        .arg(script)
        .arg(cluster_script())
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|source| Error::Spawn {
            what: "the cluster watcher (setsid sh)",
            source,
        })?;
    Ok(())
}
