//! A lab of a bench's own (`e2e/lab/lab up` in a temporary directory), torn down on drop, and
//! how the benches report latencies.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Result, bail};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub struct Lab {
    pub dir: PathBuf,
}

impl Lab {
    /// A lab in a directory named for the bench and this process (not yet up).
    pub fn new(bench: &str) -> Lab {
        Lab {
            dir: std::env::temp_dir().join(format!("{bench}-{}", std::process::id())),
        }
    }

    pub fn lab(&self, args: &[&str]) -> Result<String> {
        let out = Command::new(repo().join("e2e/lab/lab"))
            .args(args)
            .args(["--dir", &self.dir.to_string_lossy()])
            .output()?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if !out.status.success() {
            bail!(
                "lab {}: {}{}",
                args.join(" "),
                text,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(text)
    }

    pub fn kubectl(&self, args: &[&str], input: Option<&str>) -> Result<String> {
        use std::io::Write;
        let mut child = Command::new("kubectl")
            .arg(format!(
                "--kubeconfig={}",
                self.dir.join("cluster/kubeconfig").display()
            ))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        if let Some(i) = input
            && let Some(mut stdin) = child.stdin.take()
        {
            stdin.write_all(i.as_bytes())?;
        }
        let out = child.wait_with_output()?;
        if !out.status.success() {
            bail!(
                "kubectl {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = self.lab(&["down"]);
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).copied().unwrap_or_default()
}

/// Prints n, p50, p90, p99 and max; returns p99 in milliseconds.
pub fn report(what: &str, mut v: Vec<Duration>) -> f64 {
    v.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let p99 = ms(percentile(&v, 0.99));
    println!(
        "{what}: n={} p50 {:.0} ms, p90 {:.0} ms, p99 {p99:.0} ms, max {:.0} ms",
        v.len(),
        ms(percentile(&v, 0.5)),
        ms(percentile(&v, 0.9)),
        ms(*v.last().unwrap_or(&Duration::ZERO))
    );
    p99
}
