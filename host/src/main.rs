//! `dame`: runs the dame-epc components on a laptop, in CI and in tests.
//!
//! The binary is thin: commands parse and check their flags, then hand the
//! work to the very components Spin runs in production (embedded in this
//! binary), composed as `spin.toml` says.

mod app;
mod bindings;
mod commands;
mod components;
mod config_store;
mod events;
mod manifest;
mod outbound;
mod pool;
mod runtime;
mod schedule;
mod warehouse;
mod duck;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "dame", version, about = "Keeps a warehouse copy of the England and Wales EPC open data current")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Fetch certificates month by month and land them as gzipped NDJSON.
    Run(commands::run::Args),
    /// Publish the SQL views over the raw tables (sql/views/*.sql).
    ApplyViews(commands::apply_views::Args),
    /// Show what is landed, per kind and month.
    Status(commands::status::Args),
    /// Forget a month's checkpoints and data so the next run fetches it again.
    Reset(commands::reset::Args),
    /// Serve the EPC APIs (GEPBD and ODC) locally from CSV files.
    Emulate(commands::emulate::Args),
    /// Run the whole pipeline against a local emulator with sample data.
    Demo(commands::demo::Args),
    /// Print the next times the daily run acts, in UTC and London time.
    Schedule(commands::schedule::Args),
    /// Run the manifest's cron triggers here, as Spin would.
    Serve(commands::serve::Args),
    /// Check a Spin manifest and its components as Spin would load them.
    Check(commands::check::Args),
    /// Measure throughput, memory, instantiation and the request rate
    /// against a local emulator (see docs/performance.md).
    Bench(commands::bench::Args),
    /// One measurement of `dame bench`, in a process of its own.
    #[command(hide = true)]
    BenchChild(commands::bench::ChildArgs),
    /// Land years of history from the services' bulk ZIP files instead of the API.
    Backfill(commands::backfill::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // A job is one single-threaded guest whose host calls all run on its
    // store's task: a second worker thread adds nothing to it but a
    // cross-thread wake-up (two futex calls and a context switch) for every
    // HTTP request, which `dame bench` measured at a fifth of a GEPBD run's
    // CPU. Servers (the emulator, `serve`) keep the multi-threaded runtime.
    let single = matches!(cli.command, Command::Run(_) | Command::Demo(_) | Command::Backfill(_) | Command::BenchChild(_));
    let runtime = if single {
        tokio::runtime::Builder::new_current_thread().enable_all().build()
    } else {
        tokio::runtime::Builder::new_multi_thread().enable_all().build()
    }
    .expect("tokio runtime");
    let result = runtime.block_on(async {
        match cli.command {
            Command::Run(a) => commands::run::main(a).await,
            Command::Status(a) => commands::status::main(a).await,
            Command::ApplyViews(a) => commands::apply_views::main(a).await,
            Command::Reset(a) => commands::reset::main(a).await,
            Command::Emulate(a) => commands::emulate::main(a).await,
            Command::Demo(a) => commands::demo::main(a).await,
            Command::Schedule(a) => commands::schedule::main(a),
            Command::Serve(a) => commands::serve::main(a).await,
            Command::Check(a) => commands::check::main(a).await,
            Command::Bench(a) => commands::bench::main(a).await,
            Command::BenchChild(a) => commands::bench::child(a).await,
            Command::Backfill(a) => commands::backfill::main(a).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("dame: {e:#}");
            ExitCode::from(2)
        }
    }
}
