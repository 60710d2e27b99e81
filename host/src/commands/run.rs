use crate::app::{App, GoogleEnv, Job, LandingTarget, Secrets, WarehouseTarget};
use crate::events::{self, Display};
use anyhow::{Result, bail};
use epc_model::{Source, parse_kinds};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// Which EPC API: gepbd (live) or odc (retired in 2026).
    #[arg(long, default_value = "gepbd")]
    pub source: String,
    /// The API's base URL (default: the source's public URL).
    #[arg(long)]
    pub api_url: Option<String>,
    /// Kinds, comma-separated: domestic, non-domestic, display.
    #[arg(long, default_value = "domestic,non-domestic")]
    pub kind: String,
    /// First month, YYYY-MM (default: the previous calendar month, London).
    #[arg(long)]
    pub start_month: Option<String>,
    /// Last month, YYYY-MM.
    #[arg(long)]
    pub end_month: Option<String>,
    /// Landing folder, or gs://BUCKET[/PREFIX].
    #[arg(long, default_value = "./data")]
    pub landing: String,
    /// Where landed months are loaded: duckdb:FILE (default: epc.duckdb in
    /// the landing folder), bigquery:PROJECT.DATASET, or none.
    #[arg(long)]
    pub warehouse: Option<String>,
    /// BigQuery location for the dataset.
    #[arg(long, default_value = "europe-west2")]
    pub region: String,
    /// Rows per search request, 1-5000.
    #[arg(long, default_value_t = 5000)]
    pub page_size: u32,
    /// Requests allowed to the EPC API, N/Ds (default: just under GEPBD's
    /// 6,000 per 5 minutes).
    #[arg(long, default_value = "5760/300s")]
    pub request_budget: String,
    /// How many months before the first are checked again for late
    /// arrivals (GEPBD).
    #[arg(long, default_value_t = 2)]
    pub recheck_months: u32,
    /// Stop starting new work after this many seconds; the rest is
    /// deferred to the next run (0: no limit).
    #[arg(long, default_value_t = 0)]
    pub budget: u32,
    /// Log lines as JSON (as the component writes them) instead of progress.
    #[arg(long)]
    pub json_log: bool,
    /// A Spin manifest to run instead of the built-in spin.toml.
    #[arg(long)]
    pub manifest: Option<PathBuf>,
}

/// The warehouse asked for: by default an embedded DuckDB file beside a
/// landing folder (none for a bucket: BigQuery must be named), `none` for
/// landing only.
pub fn warehouse_target(flag: Option<&str>, region: &str, landing: &LandingTarget) -> Result<Option<WarehouseTarget>> {
    let warehouse = match (flag, landing) {
        (Some("none"), _) => None,
        (Some(w), _) => Some(WarehouseTarget::parse(w, region)?),
        (None, LandingTarget::Folder(dir)) => Some(WarehouseTarget::DuckDb(dir.join("epc.duckdb"))),
        (None, LandingTarget::Bucket(_)) => None,
    };
    match (&warehouse, landing) {
        (Some(WarehouseTarget::BigQuery { .. }), LandingTarget::Folder(_)) => {
            bail!("BigQuery loads from Cloud Storage: with --warehouse bigquery:…, land in a bucket (--landing gs://BUCKET)")
        }
        (Some(WarehouseTarget::DuckDb(_)), LandingTarget::Bucket(_)) => {
            bail!("the DuckDB warehouse loads from a landing folder: with --landing gs://…, use --warehouse bigquery:PROJECT.DATASET")
        }
        _ => Ok(warehouse),
    }
}

/// Checks every flag before anything runs, so bad input stops with one line
/// that names the problem and the fix, and nothing is written.
pub fn job(a: &Args, secrets: Secrets) -> Result<Job> {
    let source: Source = a.source.parse()?;
    let kinds = parse_kinds(&a.kind)?;
    let range = super::months(a.start_month.as_deref(), a.end_month.as_deref(), super::london_today())?;
    let api_url = a.api_url.clone().unwrap_or_else(|| source.default_url().to_string());
    if !(api_url.starts_with("https://") || api_url.starts_with("http://")) {
        bail!("--api-url '{api_url}' is not an http(s) URL, e.g. {}", source.default_url());
    }
    if !(1..=5000).contains(&a.page_size) {
        bail!("--page-size {} is out of range: use 1 to 5000", a.page_size);
    }
    let landing = LandingTarget::parse(&a.landing)?;
    if let LandingTarget::Bucket(url) = &landing {
        let bucket = url.trim_start_matches("gs://").split('/').next().unwrap_or("");
        epc_model::warehouse::check_bucket(bucket)?;
    }
    let warehouse = warehouse_target(a.warehouse.as_deref(), &a.region, &landing)?;
    secrets.check(source)?;
    let google = GoogleEnv::from_env()?;
    http_client::RequestBudget::parse(&a.request_budget).map_err(|e| anyhow::anyhow!("--request-budget: {e}"))?;
    Ok(Job { source, api_url, kinds, range, landing, warehouse, page_size: a.page_size, request_budget: a.request_budget.clone(), budget_seconds: a.budget, recheck_months: a.recheck_months, secrets, google })
}

pub async fn main(a: Args) -> Result<ExitCode> {
    let job = job(&a, Secrets::from_env())?;
    let app = App::new(a.manifest.as_deref())?;
    execute(&app, &job, if a.json_log { Display::Json } else { Display::Human }).await
}

/// Runs a job and prints its summary; the exit code says how it went.
pub async fn execute(app: &App, job: &Job, display: Display) -> Result<ExitCode> {
    let (result, summary) = app.run(job, display).await?;
    println!("{}", events::table(&summary));
    match result {
        Err(e) => {
            eprintln!("dame: {e}");
            Ok(ExitCode::from(2))
        }
        Ok(_) if summary.failed() > 0 => {
            eprintln!("dame: {} month(s) failed; run the same command again to resume them", summary.failed());
            Ok(ExitCode::from(1))
        }
        Ok(_) => {
            let deferred = summary.rows.iter().filter(|r| r.outcome == "deferred").count();
            if deferred > 0 {
                eprintln!("dame: the time budget was spent with {deferred} step(s) left; run the same command again to continue");
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
