//! Generates the `sart.v1` gRPC code from the .proto files with a protoc vendored from crates.io,
//! so building needs no system protoc.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "proto/sart/v1/bgp.proto",
        "proto/sart/v1/cni.proto",
        "proto/sart/v1/fib.proto",
        "proto/sart/v1/fib_manager.proto",
    ];
    for f in files {
        println!("cargo:rerun-if-changed={f}");
    }
    let mut config = tonic_prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    tonic_prost_build::configure().compile_with_config(config, &files, &["proto"])?;
    Ok(())
}
