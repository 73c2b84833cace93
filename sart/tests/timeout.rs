//! `sart bgp` against a speaker that accepts the connection and then never answers (a stuck
//! speaker, or the wrong port): a clear error within `--timeout`, exit code 1, not a hang.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::net::TcpListener;
use std::process::Command;
use std::time::{Duration, Instant};

#[test]
fn a_silent_speaker_is_an_error_within_the_timeout() {
    // Accepts (the kernel completes the handshake from the backlog) and never reads or writes.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap().to_string();
    let start = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_sart"))
        .args(["bgp", "-e", &addr, "--timeout", "2", "neighbor", "list"])
        .output()
        .unwrap();
    let took = start.elapsed();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("did not answer within 2s"), "{err}");
    assert!(took < Duration::from_secs(10), "took {took:?}");
    drop(silent);
}
