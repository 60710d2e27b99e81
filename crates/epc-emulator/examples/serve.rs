//! Serves the given ODC CSV files for manual poking, until Ctrl-C:
//!
//! ```text
//! cargo run -p epc-emulator --example serve -- 127.0.0.1:8080 tests/fixtures/odc/*.csv
//! curl -H 'Authorization: Bearer x' 'http://127.0.0.1:8080/api/domestic/search?date_start=2021-01-01&date_end=2021-01-02'
//! ```
//!
//! No credentials are configured, so any bearer token and any Basic
//! credentials are accepted. The real `dame emulate` command lives in the host.

use epc_emulator::{Config, DataFile, Emulator};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:8080".into()).parse()?;
    let data = args.map(|p| DataFile::Path(p.into())).collect();
    let emulator = Emulator::load(Config { data, ..Config::default() })?;
    let running = emulator.start(addr).await?;
    eprintln!("serving on {}", running.url());
    tokio::signal::ctrl_c().await?;
    running.shutdown().await
}
