//! The real `sart-cni` binary, invoked exactly as a container runtime does: CNI_* in the
//! environment (and nothing else of ours), the configuration on stdin, the answer on stdout and
//! the exit status.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::{Value, json};

/// Runs the binary; (exit success, stdout parsed as JSON or Null when empty).
fn cni(env: &[(&str, &str)], stdin: &str) -> (bool, Value) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sart-cni"))
        .env_clear()
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let v = if text.trim().is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text:?}"))
    };
    (out.status.success(), v)
}

fn netconf(version: &str) -> String {
    json!({"cniVersion": version, "name": "sart-network", "type": "sart-cni",
           "endpoint": "unix:///run/sart/cni.sock", "timeout": 10})
    .to_string()
}

const ADD: [(&str, &str); 4] = [
    ("CNI_COMMAND", "ADD"),
    ("CNI_CONTAINERID", "3f2a9c"),
    ("CNI_NETNS", "/run/netns/sart-test-none"),
    ("CNI_IFNAME", "eth0"),
];

#[test]
fn version_in_every_supported_version() {
    for v in ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"] {
        let (ok, out) = cni(
            &[("CNI_COMMAND", "VERSION")],
            &json!({"cniVersion": v}).to_string(),
        );
        assert!(ok, "{v}: {out}");
        assert_eq!(out["cniVersion"], v);
        assert_eq!(
            out["supportedVersions"],
            json!(["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"])
        );
    }
}

#[test]
fn errors_are_the_specs_json_with_its_codes() {
    let code = |(ok, out): (bool, Value)| {
        assert!(!ok, "expected a failure: {out}");
        out["code"].as_u64().unwrap()
    };
    // Invalid environment (4): the runtime forgot CNI_IFNAME.
    assert_eq!(code(cni(&ADD[..3], &netconf("1.0.0"))), 4);
    // Decoding failure (6).
    assert_eq!(code(cni(&ADD, "{\"cniVersion\": ")), 6);
    // Incompatible version (1), answered in that version.
    let (ok, out) = cni(&ADD, &netconf("0.2.0"));
    assert!(!ok);
    assert_eq!(
        (out["code"].as_u64(), out["cniVersion"].as_str()),
        (Some(1), Some("0.2.0"))
    );
    // Invalid network configuration (7): an endpoint off this host.
    let off_host = json!({"cniVersion": "1.0.0", "name": "n", "type": "sart-cni",
                          "endpoint": "http://198.18.0.1:6000"});
    assert_eq!(code(cni(&ADD, &off_host.to_string())), 7);
    // CHECK before 0.4.0 (1).
    let mut check = ADD;
    check[0] = ("CNI_COMMAND", "CHECK");
    assert_eq!(code(cni(&check, &netconf("0.3.1"))), 1);
    // No agent listening: STATUS says not available (50), ADD try again later (11).
    let nowhere = json!({"cniVersion": "1.1.0", "name": "n", "type": "sart-cni",
                         "endpoint": "unix:///run/sart-test-no-such.sock", "timeout": 2});
    assert_eq!(
        code(cni(&[("CNI_COMMAND", "STATUS")], &nowhere.to_string())),
        50
    );
    assert_eq!(code(cni(&ADD, &nowhere.to_string())), 11);
    // DEL too: only the agent knows what there is to free, so the runtime must retry.
    let mut del = ADD;
    del[0] = ("CNI_COMMAND", "DEL");
    assert_eq!(code(cni(&del, &nowhere.to_string())), 11);
}
