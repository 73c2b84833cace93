//! `sartd fib`'s command line: checks sart's channel file, then runs [`super::daemon`] until a
//! signal. A bad file exits 2 before anything is touched.

use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct FibArgs {
    /// sart's channel file.
    #[arg(short = 'f', long)]
    pub file: Option<PathBuf>,
    /// Where the FibManagerApi listens (default: the file's `endpoint`, else 127.0.0.1:5001).
    #[arg(short = 'e', long)]
    pub endpoint: Option<String>,
}

pub fn fib_main(args: FibArgs) -> ExitCode {
    let Some(path) = args.file else {
        eprintln!(
            "error: sartd fib: -f FILE (sart's channel file) is required; for BGP routes into one \
             table, `sartd bgp --fib kernel` needs no second process"
        );
        return ExitCode::from(2);
    };
    let config = std::fs::read_to_string(&path)
        .map_err(|e| format!("{}: {e}", path.display()))
        .and_then(|text| super::channels::parse(&text));
    let mut config = match config {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: sartd fib: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(e) = args.endpoint {
        config.endpoint = e;
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: sartd fib: starting the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(super::daemon::run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("error: sartd fib: {e:#}");
            ExitCode::FAILURE
        }
    }
}
