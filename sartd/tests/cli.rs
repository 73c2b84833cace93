//! sart's command lines, as its manifests run them, on this `sartd`: what they need to start (or
//! to refuse with a reason) instead of crash-looping an upgraded DaemonSet.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::process::{Command, Stdio};
use std::time::Duration;

fn sartd() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sartd"));
    c.env_remove("NODE_NAME").env_remove("HOSTNAME");
    c
}

#[test]
fn version_subcommand() {
    let out = sartd().arg("version").output().unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("sartd {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn bgp_with_an_exporter_runs_and_says_it_is_ignored() {
    // Loopback only, every port chosen by the kernel.
    let mut child = sartd()
        .args(["bgp", "-a", "65000", "-r", "198.18.0.9", "--port", "0"])
        .args(["--api-addr", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0"])
        .args(["--exporter", "127.0.0.1:5010"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(1));
    let running = child.try_wait().unwrap().is_none();
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(running, "sartd bgp --exporter exited: {err}");
    assert!(err.contains("exporter (--exporter) ignored"), "{err}");
}

#[test]
fn agent_without_a_node_name_is_refused_with_a_reason() {
    let out = sartd().arg("agent").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no node name"), "{err}");
}
