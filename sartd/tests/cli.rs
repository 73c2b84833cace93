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

/// Runs `c` for `d`: whether it was still running then (it is killed), and its stderr.
fn runs_for(mut c: Command, d: Duration) -> (bool, String) {
    let mut child = c
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(d);
    let running = child.try_wait().unwrap().is_none();
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    (running, String::from_utf8_lossy(&out.stderr).into_owned())
}

/// `bgp` on loopback only, every port chosen by the kernel.
fn loopback_bgp(c: &mut Command) -> &mut Command {
    c.args(["bgp", "-a", "65000", "-r", "198.18.0.9", "--port", "0"])
        .args(["--api-addr", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0"])
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
    let mut c = sartd();
    loopback_bgp(&mut c).args(["--exporter", "127.0.0.1:5010"]);
    let (running, err) = runs_for(c, Duration::from_secs(1));
    assert!(running, "sartd bgp --exporter exited: {err}");
    assert!(err.contains("exporter (--exporter) ignored"), "{err}");
}

/// Starts `bin bgp` on loopback (with `env`) and returns, a second later, the executable its
/// process runs and that process's environment.
fn speaker_exe(bin: &std::path::Path, env: &[(&str, &str)]) -> (std::path::PathBuf, Vec<String>) {
    let mut c = Command::new(bin);
    loopback_bgp(&mut c)
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = c.spawn().unwrap();
    std::thread::sleep(Duration::from_secs(1));
    let exe = std::fs::read_link(format!("/proc/{}/exe", child.id()));
    let environ = std::fs::read(format!("/proc/{}/environ", child.id())).unwrap_or_default();
    let running = child.try_wait().unwrap().is_none();
    let _ = child.kill();
    let _ = child.wait();
    assert!(running, "{} bgp exited", bin.display());
    let environ = environ
        .split(|&b| b == 0)
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .collect();
    (exe.unwrap(), environ)
}

#[test]
fn bgp_runs_the_speaker_binary_beside_sartd_else_itself() {
    let sartd = std::path::PathBuf::from(env!("CARGO_BIN_EXE_sartd"));
    let beside = sartd.with_file_name("sartd-bgp");
    assert!(beside.is_file(), "cargo builds sartd-bgp with sartd");
    // Same process, replaced by the speaker alone, with one malloc arena unless told otherwise.
    let (exe, env) = speaker_exe(&sartd, &[]);
    assert_eq!(exe, beside.canonicalize().unwrap());
    assert!(env.iter().any(|v| v == "MALLOC_ARENA_MAX=1"), "{env:?}");
    let (_, env) = speaker_exe(&sartd, &[("MALLOC_ARENA_MAX", "4")]);
    assert!(env.iter().any(|v| v == "MALLOC_ARENA_MAX=4"), "{env:?}");
    // A sartd without it runs the speaker itself.
    let d = tmp("alone");
    let alone = d.join("sartd");
    std::fs::copy(&sartd, &alone).unwrap();
    assert_eq!(speaker_exe(&alone, &[]).0, alone.canonicalize().unwrap());
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn agent_without_a_node_name_is_refused_with_a_reason() {
    let out = sartd().arg("agent").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no node name"), "{err}");
}

fn tmp(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("sartd-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn fib_refuses_a_channel_file_it_cannot_run_with_the_channel_and_why() {
    // What a running `sartd fib` does is tested in network namespaces (e2e/interop fib_channels).
    let d = tmp("fib");
    let two = d.join("two-writers.yaml");
    std::fs::write(
        &two,
        "channels:\n- name: a\n  subscribers: [{protocol: bgp, endpoint: 127.0.0.1:5010}]\n  \
         publishers: [{protocol: kernel, tables: [8]}]\n- name: b\n  \
         subscribers: [{protocol: kernel, tables: [9]}]\n  publishers: [{protocol: kernel, tables: [8]}]\n",
    )
    .unwrap();
    let out = sartd().args(["fib", "-f"]).arg(&two).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("channel a already publishes into table 8"),
        "{err}"
    );

    let out = sartd().arg("fib").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("-f FILE"));
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn sarts_agent_and_controller_flags_are_accepted() {
    // Past the command line, each stops at the missing cluster (exit 1), not at a flag (exit 2).
    let d = tmp("flags");
    let kubeconfig = d.join("none");
    let log = d.join("agent.log");
    let out = sartd()
        .env("KUBECONFIG", &kubeconfig)
        .env("HOSTNAME", "worker-1")
        .arg("-o")
        .arg(&log)
        .args([
            "agent",
            "--mode=cni",
            "--cni-endpoint=0.0.0.0:6000",
            "--http-port=0",
        ])
        .args(["--peer-state-watcher=0.0.0.0:5003", "-e", "0.0.0.0:5002"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(
        logged.contains("cni endpoint 0.0.0.0:6000 ignored"),
        "{logged}"
    );
    assert!(logged.contains("peer state watcher ignored"), "{logged}");

    let out = sartd()
        .env("KUBECONFIG", &kubeconfig)
        .args(["controller", "--http-port=0", "--https-port=0", "-e", "x"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let out = sartd()
        .args(["controller", "--tls-cert=/nowhere/tls.crt"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("go together"));
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn called_cni_installer_it_is_sarts_installer() {
    // Without CNI_NETCONF it reads our default conflist, absent here: it fails before writing
    // to the host's CNI directories.
    let default = std::path::Path::new("/etc/sart/cni/10-sart.conflist");
    assert!(
        !default.exists(),
        "{} exists: this test would install it",
        default.display()
    );
    let d = tmp("installer");
    let link = d.join("cni-installer");
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_sartd"), &link).unwrap();
    let out = Command::new(&link)
        .env_remove("CNI_NETCONF")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("cni-installer: /etc/sart/cni/10-sart.conflist"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&d);
}
