use anyhow::{Context, Result};
use epc_emulator::{Config, DataFile, Emulator};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// Port on 127.0.0.1 (0 picks a free one).
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// ODC-format bulk CSV files (kind recognised from the header); the
    /// built-in samples when none is given.
    #[arg(long = "data")]
    pub data: Vec<PathBuf>,
    /// GEPBD bearer token to require (any non-empty token when absent).
    #[arg(long)]
    pub token: Option<String>,
    /// ODC Basic-auth email to require (with --api-key).
    #[arg(long, requires = "api_key")]
    pub email: Option<String>,
    /// ODC Basic-auth API key to require (with --email).
    #[arg(long, requires = "email")]
    pub api_key: Option<String>,
    /// The emulator's "today", YYYY-MM-DD (default: today in London).
    #[arg(long)]
    pub today: Option<String>,
    /// Seed of the unstable GEPBD ordering.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// The project's sample data, carried in the binary for `dame demo` and a
/// bare `dame emulate`.
pub fn samples() -> Vec<DataFile> {
    [
        ("domestic-E06000001-2021-01-to-08.csv", include_str!("../../../tests/fixtures/odc/domestic-E06000001-2021-01-to-08.csv")),
        ("non-domestic-synthetic.csv", include_str!("../../../tests/fixtures/odc/non-domestic-synthetic.csv")),
        ("display-synthetic.csv", include_str!("../../../tests/fixtures/odc/display-synthetic.csv")),
    ]
    .into_iter()
    .map(|(name, csv)| DataFile::Text { name: name.to_string(), csv: csv.to_string() })
    .collect()
}

pub async fn main(a: Args) -> Result<ExitCode> {
    let today = match &a.today {
        Some(t) => t.parse().with_context(|| format!("--today '{t}' is not a date (YYYY-MM-DD)"))?,
        None => super::london_today(),
    };
    let data = if a.data.is_empty() { samples() } else { a.data.into_iter().map(DataFile::Path).collect() };
    let emulator = Emulator::load(Config {
        data,
        token: a.token,
        odc_email: a.email,
        odc_api_key: a.api_key,
        today: Some(today),
        seed: a.seed,
        latency: None,
    })?;
    let running = emulator.start(([127, 0, 0, 1], a.port).into()).await?;
    println!("EPC API emulator on {} (GEPBD under /api/, ODC under /api/v1/); Ctrl-C stops it", running.url());
    tokio::signal::ctrl_c().await?;
    running.shutdown().await?;
    Ok(ExitCode::SUCCESS)
}
