use anyhow::{Context, Result};
use epc_emulator::{BulkFiles, Config, DataFile, DeltaEvent, Emulator, Faults, Kind, RateLimit, Recommendations, Synthetic, UprnEvent};
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
    /// Seed of everything the emulator makes up: the unstable GEPBD
    /// ordering, recommendations, faults, synthetic months, file URLs.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Serve made-up recommendations (domestic suggested_improvements, CEPC/DEC
    /// recommendation reports with ~5% missing, ODC /recommendations/{lmk-key}).
    #[arg(long)]
    pub recommendations: bool,
    /// A change for GEPBD's /api/deltas, applied once its day is past:
    /// removed:CERTIFICATE@TIME or uprn:CERTIFICATE=UPRN@TIME (TIME is RFC 3339
    /// or a date; CERTIFICATE a certificate number or LMK key). Repeatable.
    #[arg(long = "delta", value_name = "EVENT")]
    pub deltas: Vec<DeltaEvent>,
    /// eventType of UPRN changes in the deltas: uprn_updated (the spec's) or
    /// address_id_updated (the documentation's).
    #[arg(long, default_value = "uprn_updated")]
    pub uprn_event: UprnEvent,
    /// Serve bulk files (GEPBD /api/files/..., ODC /api/v1/files) through 302s
    /// to short-lived URLs.
    #[arg(long)]
    pub bulk_files: bool,
    /// How long a bulk file URL stays valid (e.g. 30s, 2m).
    #[arg(long, default_value = "30s", value_parser = duration)]
    pub bulk_url_lifetime: std::time::Duration,
    /// Faults to inject into API responses: a profile (chaos, none) or
    /// CLASS=RATE[:PARAM],... with classes 429 (PARAM: Retry-After seconds),
    /// 429bare, 500, 502, 503, reset, cut, slow (PARAM: delay, e.g. 30s),
    /// truncate, badjson, badutf8, dup, total; e.g. chaos or
    /// 429=0.05,500=0.02,reset=0.01,slow=0.01:30s,dup=0.05.
    #[arg(long, value_name = "PROFILE|SPEC")]
    pub faults: Option<Faults>,
    /// GEPBD's per-IP rate limit, LIMIT/WINDOW (the service's is 6000/300s).
    #[arg(long, value_name = "LIMIT/WINDOW")]
    pub rate_limit: Option<RateLimit>,
    /// Generate this many synthetic certificates per month and kind, from
    /// the loaded rows (needs --synthetic-months).
    #[arg(long, requires = "synthetic_months", value_name = "N")]
    pub synthetic_per_month: Option<u32>,
    /// Months to generate: 2024-01..2024-03, 2024-01,2024-05 or 2024-01.
    #[arg(long, requires = "synthetic_per_month", value_name = "MONTHS")]
    pub synthetic_months: Option<String>,
    /// Kinds to generate, comma-separated.
    #[arg(long, default_value = "domestic", value_delimiter = ',')]
    pub synthetic_kinds: Vec<Kind>,
}

fn duration(s: &str) -> Result<std::time::Duration, String> {
    epc_emulator::parse_duration(s).map_err(|e| format!("{e:#}"))
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
        recommendations: a.recommendations.then(Recommendations::default),
        deltas: a.deltas,
        uprn_event: a.uprn_event,
        faults: a.faults.unwrap_or_default(),
        rate_limit: a.rate_limit,
        synthetic: match (a.synthetic_per_month, &a.synthetic_months) {
            (Some(per_month), Some(months)) => Some(Synthetic {
                per_month,
                months: Synthetic::months(months)?,
                kinds: a.synthetic_kinds,
            }),
            _ => None,
        },
        files: a.bulk_files.then_some(BulkFiles { url_lifetime: a.bulk_url_lifetime, dir: None }),
    })?;
    let running = emulator.start(([127, 0, 0, 1], a.port).into()).await?;
    println!("EPC API emulator on {} (GEPBD under /api/, ODC under /api/v1/); Ctrl-C stops it", running.url());
    tokio::signal::ctrl_c().await?;
    running.shutdown().await?;
    Ok(ExitCode::SUCCESS)
}
