//! `sart-cni`: run by the container runtime with the CNI_* environment and the network
//! configuration on stdin; prints the result or the CNI error JSON on stdout.

use std::io::{Read, Write};
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut stdin = Vec::new();
    if let Err(e) = std::io::stdin().read_to_end(&mut stdin) {
        let err = sartcni::error::CniError::new(
            sartcni::error::Code::Io,
            format!("reading the configuration: {e}"),
        );
        println!(
            "{}",
            err.to_json(sartcni::version::Version::NEWEST.as_str())
        );
        return ExitCode::FAILURE;
    }
    let out = sartcni::run(|k| std::env::var(k).ok(), &stdin, &sartcni::grpc::GrpcAgent);
    let mut o = std::io::stdout().lock();
    // DEL, CHECK, GC and STATUS print nothing on success. Nothing to do if stdout is gone: the
    // runtime has stopped listening.
    if !out.stdout.is_empty() {
        let _ = writeln!(o, "{}", out.stdout).and_then(|()| o.flush());
    }
    if out.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
