//! `sluice`: the event-to-function platform in one binary.
//!
//! # Layout
//! - [`cli`]: the command line (`sluice dev`, `sluice start`).
//! - [`config`]: layered configuration and its validation.
//! - [`serve`]: wiring the store, broker, scheduler, executor and API, and shutdown.

mod cli;
mod config;
mod serve;

use clap::Parser;

/// Many small, short-lived allocations on several threads (JSON bodies, rows):
/// mimalloc serves them for a fraction of glibc malloc's cost.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    let cli = cli::Cli::parse();
    let env: Vec<(String, String)> = std::env::vars().collect();
    let config = match cli.config(&env) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("sluice: {err:#}");
            return std::process::ExitCode::from(2);
        }
    };
    serve::init_tracing(&config);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("sluice: cannot start the async runtime: {err}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve::run(config)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = format!("{err:#}"), "sluice stopped with an error");
            eprintln!("sluice: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
