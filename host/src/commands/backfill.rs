//! `dame backfill`: years of history from the services' bulk ZIP files
//! instead of the API.
//!
//! The flags are checked first (nothing runs on bad input), then the
//! `fetch-bulk` component runs alone, as `App::landing` runs `gzip-land`,
//! with the pipeline's resolved capabilities: its configuration (the API
//! and its credentials, the landing store), its allowed outbound hosts (the
//! API and the pre-signed download host) and the landing folder. It streams
//! each kind's archive and lands its months; its JSON log lines become a
//! progress bar on bytes and rows and a summary table, as `dame run`'s do.
//!
//! With `--warehouse`, the months it landed are loaded afterwards by the
//! pipeline itself with only its load step on (`certificates: false, load:
//! true`): exactly what `dame run --warehouse` does for landed months.

use crate::app::{App, GoogleEnv, Job, LandingTarget, PIPELINE, Secrets, WarehouseTarget, holder};
use crate::bindings::types as t;
use crate::events::{self, Display, LineSink, human_bytes};
use crate::runtime::{WasmtimeContext, component_bytes};
use anyhow::{Result, anyhow, bail};
use epc_model::{Kind, Month, MonthRange, Source, parse_kinds};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

mod wit {
    wasmtime::component::bindgen!({
        path: ["../wit", "../components/fetch-bulk/wit"],
        world: "dame:fetch-bulk/fetch-bulk",
        exports: { default: async },
        with: { "dame:epc/types": crate::bindings::pipeline::dame::epc::types },
    });
}

use wit::exports::dame::epc::bulk::{BackfillReport, BackfillRequest, BulkFormat, BulkOutcome};

/// The first year either service holds (ODC from October 2008).
const FIRST_YEAR: u16 = 2008;

#[derive(clap::Args)]
pub struct Args {
    /// Which service's files: gepbd (live) or odc (retired in 2026).
    #[arg(long, default_value = "gepbd")]
    pub source: String,
    /// The API's base URL (default: the source's public URL).
    #[arg(long)]
    pub api_url: Option<String>,
    /// Kinds, comma-separated: domestic, non-domestic, display.
    #[arg(long, default_value = "domestic,non-domestic")]
    pub kind: String,
    /// First lodgement year to land (default: 2008, everything).
    #[arg(long)]
    pub from_year: Option<u16>,
    /// Last lodgement year to land (default: this year; months not over
    /// are never landed).
    #[arg(long)]
    pub to_year: Option<u16>,
    /// Landing folder, or gs://BUCKET[/PREFIX].
    #[arg(long, default_value = "./data")]
    pub landing: String,
    /// Load the months landed into duckdb:FILE or bigquery:PROJECT.DATASET
    /// afterwards, or `none` (default: FOLDER/epc.duckdb for a landing
    /// folder, none for a bucket, as `dame run`).
    #[arg(long)]
    pub warehouse: Option<String>,
    /// BigQuery location for the dataset.
    #[arg(long, default_value = "europe-west2")]
    pub region: String,
    /// Reset and reland months already complete (from the API or an
    /// earlier backfill); without it they are left alone.
    #[arg(long)]
    pub replace: bool,
    /// GEPBD file: json (the API's documents; the default) or csv (rows
    /// keyed by the file's column names). ODC files are csv.
    #[arg(long)]
    pub format: Option<String>,
    /// Show the files the service offers and whether the last backfill read
    /// them, then stop.
    #[arg(long)]
    pub info: bool,
    /// Log lines as JSON (as the component writes them) instead of progress.
    #[arg(long)]
    pub json_log: bool,
    /// A Spin manifest to take the capabilities from instead of the built-in spin.toml.
    #[arg(long)]
    pub manifest: Option<PathBuf>,
}

/// A checked `dame backfill`.
#[derive(Debug, Clone)]
pub struct Plan {
    pub source: Source,
    pub api_url: String,
    pub kinds: Vec<Kind>,
    pub format: BulkFormat,
    pub from_year: u16,
    pub to_year: u16,
    pub replace: bool,
    pub landing: LandingTarget,
    pub warehouse: Option<WarehouseTarget>,
    pub secrets: Secrets,
    pub google: GoogleEnv,
}

/// Checks every flag before anything runs, so bad input stops with one line
/// that names the problem and the fix, and nothing is written.
pub fn plan(a: &Args, secrets: Secrets) -> Result<Plan> {
    let source: Source = a.source.parse()?;
    let kinds = parse_kinds(&a.kind)?;
    let this_year = super::london_today().year() as u16;
    let from_year = a.from_year.unwrap_or(FIRST_YEAR);
    let to_year = a.to_year.unwrap_or(this_year);
    for (flag, y) in [("--from-year", from_year), ("--to-year", to_year)] {
        if !(FIRST_YEAR..=this_year).contains(&y) {
            bail!("{flag} {y} is out of range: EPC data runs from {FIRST_YEAR} to this year ({this_year})");
        }
    }
    if from_year > to_year {
        bail!("--from-year {from_year} is after --to-year {to_year}");
    }
    let format = match (a.format.as_deref().map(str::trim).map(str::to_ascii_lowercase).as_deref(), source) {
        (None, Source::Gepbd) | (Some("json"), Source::Gepbd) => BulkFormat::Json,
        (None, Source::Odc) | (Some("csv"), _) => BulkFormat::Csv,
        (Some("json"), Source::Odc) => bail!("--format json: ODC bulk files are CSV only; leave --format out for --source odc"),
        (Some(other), _) => bail!("--format '{other}' is not json or csv"),
    };
    let api_url = a.api_url.clone().unwrap_or_else(|| source.default_url().to_string());
    if !(api_url.starts_with("https://") || api_url.starts_with("http://")) {
        bail!("--api-url '{api_url}' is not an http(s) URL, e.g. {}", source.default_url());
    }
    let landing = LandingTarget::parse(&a.landing)?;
    if let LandingTarget::Bucket(url) = &landing {
        let bucket = url.trim_start_matches("gs://").split('/').next().unwrap_or("");
        epc_model::warehouse::check_bucket(bucket)?;
    }
    // The same default as `dame run`: a landing folder loads into the DuckDB
    // file beside it, so backfilled months end where fetched months do.
    let warehouse = super::run::warehouse_target(a.warehouse.as_deref(), &a.region, &landing)?;
    secrets.check(source)?;
    let google = GoogleEnv::from_env()?;
    Ok(Plan { source, api_url, kinds, format, from_year, to_year, replace: a.replace, landing, warehouse, secrets, google })
}

/// The settings the pipeline's manifest entry is resolved with.
fn values(p: &Plan) -> BTreeMap<String, String> {
    let mut v = BTreeMap::new();
    v.insert("source".into(), p.source.as_str().into());
    v.insert("api_url".into(), p.api_url.clone());
    v.insert("kinds".into(), p.kinds.iter().map(|k| k.as_str()).collect::<Vec<_>>().join(","));
    v.insert("landing".into(), match &p.landing {
        LandingTarget::Folder(dir) => dir.display().to_string(),
        LandingTarget::Bucket(b) => b.clone(),
    });
    for (k, val) in [("epc_token", &p.secrets.token), ("epc_email", &p.secrets.email), ("epc_api_key", &p.secrets.api_key)] {
        if let Some(val) = val {
            v.insert(k.into(), val.clone());
        }
    }
    for (k, name) in &p.secrets.in_secret_manager {
        v.insert(k.clone(), name.clone());
    }
    v
}

fn api(p: &Plan) -> t::Api {
    t::Api {
        source: match p.source {
            Source::Gepbd => t::Source::Gepbd,
            Source::Odc => t::Source::Odc,
        },
        base_url: p.api_url.clone(),
    }
}

fn kind(k: Kind) -> t::Kind {
    match k {
        Kind::Domestic => t::Kind::Domestic,
        Kind::NonDomestic => t::Kind::NonDomestic,
        Kind::Display => t::Kind::Display,
    }
}

/// `fetch-bulk` alone, with the pipeline's capabilities (the component
/// file sits beside the pipeline's).
async fn instantiate(
    app: &App,
    p: &Plan,
    stderr: Option<LineSink>,
) -> Result<(wasmtime::Store<crate::runtime::State>, wit::FetchBulk)> {
    let (resolved, caps) = app.prepare(PIPELINE, &values(p), &p.google)?;
    let path = resolved.source.with_file_name("fetch_bulk.wasm");
    let component = app.runtime.load("fetch_bulk", &component_bytes(&path)?)?;
    let stderr = stderr.map(|s| Box::new(s) as Box<dyn wasmtime_wasi::cli::StdoutStream>);
    let (mut store, instance) = app.runtime.instantiate(&component, &[], &caps, stderr).await?;
    let bindings = wit::FetchBulk::new(&mut store, &instance).ctx("binding fetch-bulk")?;
    Ok((store, bindings))
}

pub async fn main(a: Args) -> Result<ExitCode> {
    let plan = plan(&a, Secrets::from_env())?;
    let app = App::new(a.manifest.as_deref())?;
    if a.info {
        return info(&app, &plan).await;
    }
    execute(&app, &plan, if a.json_log { Display::Json } else { Display::Human }).await
}

async fn info(app: &App, p: &Plan) -> Result<ExitCode> {
    let (mut store, bulk) = instantiate(app, p, None).await?;
    println!("{:<14} {:<28} {:>10}  {:<30} unchanged since the last backfill", "kind", "file", "size", "last updated");
    for &k in &p.kinds {
        let files = bulk
            .dame_epc_bulk()
            .call_info(&mut store, &api(p), kind(k), p.format)
            .await
            .ctx("fetch-bulk trapped")?
            .map_err(|e| anyhow!("{k}: {}", crate::bindings::message(&e)))?;
        for f in files {
            println!(
                "{:<14} {:<28} {:>10}  {:<30} {}",
                k.as_str(),
                f.name,
                human_bytes(f.size),
                f.last_updated.as_deref().unwrap_or("-"),
                if f.unchanged { "yes" } else { "no" }
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Errors no other kind can get past.
fn fatal(e: &t::Error) -> bool {
    matches!(e, t::Error::Unauthorized(_) | t::Error::InvalidInput(_))
}

/// What one kind's backfill did, in a line.
fn describe(k: Kind, r: &BackfillReport) -> String {
    if r.unchanged && r.months.iter().all(|m| m.outcome == BulkOutcome::Skipped) && r.downloaded == 0 {
        let files: Vec<String> = r
            .files
            .iter()
            .map(|f| format!("{} ({}, {})", f.name, human_bytes(f.size), f.last_updated.as_deref().unwrap_or("no date")))
            .collect();
        return format!(
            "{k}: nothing downloaded: {} unchanged since the last backfill and its months are still landed (--replace relands them)",
            if files.is_empty() { "the files are".to_string() } else { files.join(", ") + " is" }
        );
    }
    let count = |o: BulkOutcome| r.months.iter().filter(|m| m.outcome == o).count();
    let seconds = (r.millis as f64 / 1000.0).max(1e-3);
    format!(
        "{k}: read {} rows from {} in {:.1}s ({:.0} rows/s, {:.1} MB/s): {} month(s) landed, {} replaced, {} left alone, {} not over",
        r.rows,
        human_bytes(r.downloaded),
        seconds,
        r.rows as f64 / seconds,
        r.downloaded as f64 / 1e6 / seconds,
        count(BulkOutcome::Landed),
        count(BulkOutcome::Replaced),
        count(BulkOutcome::Skipped),
        count(BulkOutcome::NotOver),
    )
}

/// Runs the backfill of every kind, then the loads; the exit code says how
/// it went: 1 when a kind stopped on a fault (run again to continue), 2 on
/// bad input or refused credentials.
pub async fn execute(app: &App, p: &Plan, display: Display) -> Result<ExitCode> {
    let stale = app.stale_holder(&p.landing).await?;
    let (sink, rx) = LineSink::new();
    let follower = tokio::spawn(events::follow(rx, display));
    let mut reports: Vec<(Kind, BackfillReport)> = Vec::new();
    let mut failures: Vec<(Kind, t::Error)> = Vec::new();
    let outcome = async {
        let (mut store, bulk) = instantiate(app, p, Some(sink)).await?;
        for &k in &p.kinds {
            let request = BackfillRequest {
                api: api(p),
                kind: kind(k),
                format: p.format,
                from_year: p.from_year,
                to_year: p.to_year,
                replace: p.replace,
                holder: holder("dame backfill"),
                stale_lease_holder: stale.clone(),
            };
            match bulk.dame_epc_bulk().call_backfill(&mut store, &request).await.ctx("fetch-bulk trapped")? {
                Ok(r) => reports.push((k, r)),
                Err(e) => {
                    let stop = fatal(&e);
                    failures.push((k, e));
                    if stop {
                        break;
                    }
                }
            }
        }
        Ok::<_, anyhow::Error>(())
    }
    .await;
    // The instance (and with it the log stream) is gone; the follower ends.
    let summary = follower.await.map_err(|e| anyhow!("progress display failed: {e}"))?;
    outcome?;
    if !summary.rows.is_empty() {
        println!("{}", events::table(&summary));
    }
    for (k, r) in &reports {
        println!("{}", describe(*k, r));
    }
    for (k, e) in &failures {
        eprintln!("dame: {k}: {}", crate::bindings::message(e));
    }
    if failures.iter().any(|(_, e)| fatal(e)) {
        return Ok(ExitCode::from(2));
    }
    let mut code = if failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        eprintln!(
            "dame: the backfill of {} stopped; months finished before the fault stay landed: run the same command again to continue",
            failures.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>().join(", ")
        );
        ExitCode::from(1)
    };
    match &p.warehouse {
        Some(w) => {
            if load(app, p, w, &reports, display).await? > 0 {
                code = ExitCode::from(1);
            }
        }
        None if reports.iter().any(|(_, r)| landed_months(r).next().is_some()) => {
            println!("(not loaded: pass --warehouse, or run `dame run --warehouse …` over these months, to load them)");
        }
        None => {}
    }
    Ok(code)
}

fn landed_months(r: &BackfillReport) -> impl Iterator<Item = Month> + '_ {
    months_of(r, |o| matches!(o, BulkOutcome::Landed | BulkOutcome::Replaced))
}

/// Months of the file that may wait for a load: those landed now, and
/// those left alone, which a run stopped by a fault (or one with
/// `--warehouse none`) may have landed without loading. The load step
/// itself passes over months already loaded.
fn loadable_months(r: &BackfillReport) -> impl Iterator<Item = Month> + '_ {
    months_of(r, |o| o != BulkOutcome::NotOver)
}

fn months_of<'a>(r: &'a BackfillReport, keep: impl Fn(BulkOutcome) -> bool + 'a) -> impl Iterator<Item = Month> + 'a {
    r.months.iter().filter(move |m| keep(m.outcome)).filter_map(|m| Month::new(m.month.year, m.month.month).ok())
}

/// Loads the months of the files that are landed and not loaded, through
/// the pipeline with only its load (and views) steps on; returns how many
/// loads failed.
async fn load(app: &App, p: &Plan, w: &WarehouseTarget, reports: &[(Kind, BackfillReport)], display: Display) -> Result<usize> {
    let kinds: Vec<Kind> = reports.iter().filter(|(_, r)| loadable_months(r).next().is_some()).map(|(k, _)| *k).collect();
    let months: Vec<Month> = reports.iter().flat_map(|(_, r)| loadable_months(r)).collect();
    let (Some(&start), Some(&end)) = (months.iter().min(), months.iter().max()) else {
        println!("nothing new to load");
        return Ok(0);
    };
    let job = Job {
        source: p.source,
        api_url: p.api_url.clone(),
        kinds,
        range: MonthRange::new(start, end, super::london_today())?,
        landing: p.landing.clone(),
        warehouse: Some(w.clone()),
        page_size: 5000,
        request_budget: "5760/300s".into(),
        budget_seconds: 0,
        // Loading only: no API call is made, so nothing is rechecked.
        recheck_months: 0,
        // Loading only (see the adjustment below).
        certificates: false,
        recommendations: false,
        secrets: p.secrets.clone(),
        google: p.google.clone(),
    };
    let (result, summary) = app
        .run_adjusted(&job, display, |o| {
            o.certificates = false;
            o.recommendations = false;
            o.load = true;
        })
        .await?;
    println!("{}", events::table(&summary));
    if let Err(e) = result {
        bail!("loading the backfilled months: {e}");
    }
    Ok(summary.failed())
}
