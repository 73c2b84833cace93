//! MetalLB as a benchmark peer: its binaries and CRDs from `e2e/metallb/build` (built from its Go
//! module, cached), and how its processes are started outside a Pod.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

/// The namespace MetalLB's controller and speakers read their configuration from.
pub const NAMESPACE: &str = "metallb-system";

/// `e2e/metallb/build [ARG]`: the directory it prints (binaries, or with `crds` the CRDs).
pub fn build(arg: Option<&str>) -> Result<PathBuf> {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut cmd = Command::new(repo.join("e2e/metallb/build"));
    cmd.args(arg);
    let out = cmd.output().context("running e2e/metallb/build")?;
    if !out.status.success() {
        bail!(
            "e2e/metallb/build failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(PathBuf::from(String::from_utf8(out.stdout)?.trim()))
}

/// A Pod object MetalLB's processes read as their own (the controller owns its
/// ConfigurationState with it); scheduled by no one, so nothing runs it.
pub fn self_pod(name: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, namespace: {NAMESPACE}}}\n\
         spec: {{schedulerName: none, containers: [{{name: {name}, image: none}}]}}\n"
    )
}

/// MetalLB's controller: one replica, no webhooks, no fixed ports; `class` limits it to
/// Services of that `loadBalancerClass`.
pub fn controller(class: Option<&str>) -> Result<Command> {
    let mut cmd = Command::new(build(None)?.join("controller"));
    cmd.args([
        "--pod-name=controller",
        "--webhook-mode=disabled",
        "--disable-cert-rotation",
    ]);
    Ok(common(cmd, class))
}

/// What both processes take: the namespace, no fixed ports, quiet logs, the class if any.
fn common(mut cmd: Command, class: Option<&str>) -> Command {
    cmd.args([
        &format!("--namespace={NAMESPACE}"),
        "--port=0",
        "--health-probe-port=0",
        "--log-level=warn",
    ]);
    if let Some(c) = class {
        cmd.arg(format!("--lb-class={c}"));
    }
    cmd
}

/// MetalLB's speaker for `node` in its native BGP mode, without memberlist (one speaker per
/// node, no layer 2), reading its Pod object `pod`.
#[allow(dead_code)] // sart-lab-bench only
pub fn speaker(node: &str, pod: &str, class: Option<&str>) -> Result<Command> {
    let mut cmd = Command::new(build(None)?.join("speaker"));
    cmd.env("METALLB_BGP_TYPE", "native")
        .args([format!("--node-name={node}"), format!("--pod-name={pod}")]);
    Ok(common(cmd, class))
}
