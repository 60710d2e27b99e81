//! Measures synthetic generation: load time and memory for N domestic
//! certificates a month.
//!
//! ```text
//! cargo run --release -p epc-emulator --example synthetic -- 150000 2024-01..2024-01
//! ```

use std::time::Instant;

use epc_emulator::{Config, DataFile, Emulator, Kind, Synthetic};

fn rss() -> String {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .filter(|l| l.starts_with("VmRSS") || l.starts_with("VmHWM"))
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect::<Vec<_>>()
        .join(", ")
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let per_month: u32 = args.next().unwrap_or_else(|| "150000".into()).parse()?;
    let months = Synthetic::months(&args.next().unwrap_or_else(|| "2024-01".into()))?;
    let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/odc/");
    let data = ["domestic-E06000001-2021-01-to-08.csv", "non-domestic-synthetic.csv", "display-synthetic.csv"]
        .map(|f| DataFile::Path(format!("{fixtures}{f}").into()))
        .to_vec();
    eprintln!("before: {}", rss());
    let started = Instant::now();
    let emulator = Emulator::load(Config {
        data,
        seed: 1,
        synthetic: Some(Synthetic { per_month, months: months.clone(), kinds: vec![Kind::Domestic] }),
        ..Config::default()
    })?;
    let took = started.elapsed();
    let total = emulator.expected().total(Kind::Domestic);
    println!(
        "{} synthetic domestic rows ({per_month} x {} months; {total} domestic in all) loaded in {:.2} s; {}",
        per_month as usize * months.len(),
        months.len(),
        took.as_secs_f64(),
        rss()
    );
    Ok(())
}
