//! The `mounter` binary: parses the command line, installs logging and runs.

use clap::Parser as _;

fn main() -> std::process::ExitCode {
    let args = mounter::cli::Args::parse();
    mounter::logging::init();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::error!(%error, "cannot start the async runtime");
            return std::process::ExitCode::FAILURE;
        }
    };
    // The signal handlers need the runtime, and must be in place before mounting.
    match runtime.block_on(async { args.run(mounter::shutdown_signal()).await }) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(error = %mounter::error_chain(&*error), "mounter failed");
            std::process::ExitCode::FAILURE
        }
    }
}
