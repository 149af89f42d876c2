//! The `gatehouse` binary: parse the command line, load `.env`, start logging, run.

use clap::Parser;
use gatehouse::cli::{self, Cli};
use gatehouse::config::Config;
use std::process::ExitCode;

/// mimalloc rather than glibc's malloc: a request allocates and frees dozens of small
/// buffers, and under `GET /api/users/me/` glibc's malloc and free took about 8 % of the
/// server's CPU (bench/RESULTS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    // A missing .env is normal; a malformed one is reported.
    if let Err(error) = dotenvy::dotenv() {
        if !error.not_found() {
            eprintln!("error: cannot read .env: {error}");
            return ExitCode::FAILURE;
        }
    }
    if let Err(error) = gatehouse::telemetry::init() {
        eprintln!("error: {error}");
        return ExitCode::FAILURE;
    }
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = cli::run(cli, config).await;
    // Log lines still gathered for writing (`telemetry`) go out before anything else.
    gatehouse::telemetry::finish();
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}
