//! `crdgen [--check] [DIR]`: writes the CRD manifests (default `manifests/crd`), or with
//! `--check` exits 1 naming the files that differ from the Rust types.

use std::path::PathBuf;
use std::process::ExitCode;

use sart_k8s::crdgen;

fn main() -> ExitCode {
    let mut check = false;
    let mut dir = PathBuf::from("manifests/crd");
    for a in std::env::args().skip(1) {
        match a.as_str() {
            "--check" => check = true,
            "-h" | "--help" => {
                println!("usage: crdgen [--check] [DIR]   (DIR defaults to manifests/crd)");
                return ExitCode::SUCCESS;
            }
            s if s.starts_with('-') => {
                eprintln!("crdgen: unknown option {s}");
                return ExitCode::from(2);
            }
            s => dir = PathBuf::from(s),
        }
    }
    let result = if check {
        crdgen::stale(&dir).map(|stale| {
            if stale.is_empty() {
                ExitCode::SUCCESS
            } else {
                eprintln!(
                    "crdgen: {} differ from the Rust types: {}\nrun `cargo run -p sart-k8s --bin crdgen` and commit the result",
                    dir.display(),
                    stale.join(", ")
                );
                ExitCode::FAILURE
            }
        })
    } else {
        crdgen::write(&dir).map(|()| ExitCode::SUCCESS)
    };
    result.unwrap_or_else(|e| {
        eprintln!("crdgen: {e}");
        ExitCode::from(2)
    })
}
