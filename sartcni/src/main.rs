//! `sart-cni`: not implemented yet. It answers every command with a CNI error (code 11, "try again
//! later") on stdout, as the CNI spec asks of a plugin that cannot serve, and exits non-zero.

use std::process::ExitCode;

fn main() -> ExitCode {
    let err = serde_json::json!({
        "cniVersion": "1.1.0",
        "code": 11,
        "msg": "sart-cni is not implemented yet",
    });
    println!("{err}");
    ExitCode::FAILURE
}
