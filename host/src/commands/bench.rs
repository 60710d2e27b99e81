//! `dame bench`: how close the pipeline gets to the machine's and the API's
//! limits, against the EPC emulator on loopback.
//!
//! Every measurement runs in a child `dame` process of its own (the hidden
//! `dame bench-child`), so that its peak resident memory (`VmHWM`) and CPU
//! time are its own and runs do not warm or pollute each other. The
//! emulator runs in a child process too (`dame emulate`), one per month
//! size, with synthetic months made from the sample rows by a fixed seed;
//! its CPU time is read from `/proc` so the report says whether the client
//! or the emulator bounded a run.
//!
//! Measured, for each source (GEPBD, ODC):
//! - fetch → NDJSON.gz landed in a temporary folder, through the components
//!   (WASM) and through the same crates compiled natively
//!   (`native-pipeline`), for months of each size: records/s, MB/s of JSON,
//!   the WASM/native ratio, peak RSS, CPU;
//! - instantiation of the whole composition, cold (nothing compiled on disk)
//!   and warm (compiled components cached);
//! - the request rate under an emulator rate limit (scaled down in time) as
//!   a share of the limit, and the requests it rejected;
//! - the landing step against the native cost of parsing and compressing
//!   the same bytes;
//! - the DuckDB load of the largest month and the views, where this build
//!   has the DuckDB warehouse.

use crate::app::{self, App, GoogleEnv, Job, LandingTarget, PIPELINE, Secrets, WarehouseTarget};
use crate::events::{self, Display, LineSink};
use crate::runtime::{CallTimes, WasmtimeContext};
use anyhow::{Context, Result, anyhow, bail};
use epc_model::{Kind, Month, MonthRange, Source};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The synthetic month every measurement lands.
const MONTH: &str = "2024-01";
/// The day the children take as today (`DAME_TODAY`): the bench month is over.
const TODAY: &str = "2024-02-02";
/// The emulator's seed: the same data, orders and ids on every run.
const SEED: &str = "1";
const TOKEN: &str = "bench-token";
const EMAIL: &str = "bench@example.org";
const API_KEY: &str = "bench-key";
/// No budget worth the name: throughput runs measure the client.
const UNLIMITED: &str = "1000000/1s";

#[derive(clap::Args)]
pub struct Args {
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Month sizes (certificates per month), comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "10000,50000,150000")]
    pub sizes: Vec<u32>,
    /// Small sizes and short rate-limit windows, for a smoke test (CI).
    #[arg(long)]
    pub quick: bool,
    /// Sources to measure, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "gepbd,odc")]
    pub sources: Vec<String>,
    /// Keep the temporary folder (landed months, logs) and say where it is.
    #[arg(long)]
    pub keep: bool,
    /// Let the emulator and the measured runs share every CPU instead of
    /// giving the emulator CPUs of its own.
    #[arg(long)]
    pub no_pin: bool,
}

/// The hidden per-measurement subcommand.
#[derive(clap::Args)]
pub struct ChildArgs {
    #[command(subcommand)]
    pub what: ChildCommand,
}

#[derive(clap::Subcommand)]
pub enum ChildCommand {
    /// Fetch and land one month, through the components or natively.
    Run {
        #[arg(long)]
        mode: String,
        #[arg(long)]
        source: String,
        #[arg(long)]
        api_url: String,
        #[arg(long)]
        landing: PathBuf,
        #[arg(long, default_value_t = 5000)]
        page_size: u32,
        #[arg(long, default_value = UNLIMITED)]
        request_budget: String,
    },
    /// Load and instantiate every component of the pipeline, as `dame run` does.
    Instantiate,
    /// Load a landed month into DuckDB and apply the views.
    Load {
        #[arg(long)]
        landing: PathBuf,
        #[arg(long)]
        warehouse: PathBuf,
    },
}

// ---------------------------------------------------------------------------
// Child side: one measurement, one JSON line on stdout.

/// Peak resident set of this process so far, in KiB (`VmHWM`).
fn vm_hwm_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// CPU seconds (user + system) this process has used.
fn cpu_self_s() -> f64 {
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let t = |v: libc::timeval| v.tv_sec as f64 + v.tv_usec as f64 / 1e6;
    t(u.ru_utime) + t(u.ru_stime)
}

fn month() -> Month {
    MONTH.parse().expect("a valid month")
}

fn bench_job(source: Source, api_url: &str, landing: &Path, page_size: u32, budget: &str) -> Job {
    let today = super::london_today();
    Job {
        source,
        api_url: api_url.to_string(),
        kinds: vec![Kind::Domestic],
        range: MonthRange::new(month(), month(), today).expect("the bench month is over"),
        landing: LandingTarget::Folder(landing.to_path_buf()),
        warehouse: None,
        page_size,
        request_budget: budget.to_string(),
        budget_seconds: 0,
        // The bench measures one month's fetch and landing: no earlier
        // month is checked again for late arrivals.
        recheck_months: 0,
        certificates: true,
        recommendations: false,
        secrets: Secrets { token: Some(TOKEN.into()), email: Some(EMAIL.into()), api_key: Some(API_KEY.into()), ..Secrets::default() },
        google: GoogleEnv::default(),
    }
}

pub async fn child(a: ChildArgs) -> Result<ExitCode> {
    let out = match a.what {
        ChildCommand::Run { mode, source, api_url, landing, page_size, request_budget } => {
            let source: Source = source.parse()?;
            match mode.as_str() {
                "wasm" => child_wasm(bench_job(source, &api_url, &landing, page_size, &request_budget)).await?,
                "native" => child_native(source, &api_url, &landing, page_size, &request_budget).await?,
                other => bail!("--mode {other}: wasm or native"),
            }
        }
        ChildCommand::Instantiate => child_instantiate().await?,
        ChildCommand::Load { landing, warehouse } => child_load(&landing, &warehouse).await?,
    };
    let mut out = out;
    out["vm_hwm_kib"] = json!(vm_hwm_kib());
    out["cpu_s"] = json!(cpu_self_s());
    println!("{out}");
    Ok(ExitCode::SUCCESS)
}

/// The pipeline component with its dependencies, fetching and landing one
/// month; instantiation is timed apart from the run.
async fn child_wasm(job: Job) -> Result<Value> {
    let started = Instant::now();
    let app = App::new(None)?;
    let values = app::job_values(&job);
    let (resolved, mut caps) = app.prepare(PIPELINE, &values, &job.google)?;
    let times = Arc::new(CallTimes::default());
    caps.call_times = Some(times.clone());
    let (sink, rx) = LineSink::new();
    let follower = tokio::spawn(events::follow(rx, Display::Human));
    let (outcome, instantiate_ms, seconds) = async {
        let (mut store, instance) = app.instantiate(&resolved, &caps, Some(sink)).await?;
        let pipeline = crate::bindings::pipeline::Pipeline::new(&mut store, &instance)?;
        let instantiate_ms = started.elapsed().as_secs_f64() * 1e3;
        let options = app::options(&job);
        let run = Instant::now();
        let result = pipeline.dame_epc_pipeline().call_run(&mut store, &options).await.ctx("the pipeline trapped")?;
        let seconds = run.elapsed().as_secs_f64();
        Ok::<_, anyhow::Error>((result.map_err(|e| crate::bindings::message(&e).to_string()), instantiate_ms, seconds))
    }
    .await?;
    let summary = follower.await.map_err(|e| anyhow!("log follower: {e}"))?;
    let report = outcome.map_err(|e| anyhow!("the pipeline failed: {e}"))?;
    if summary.failed() > 0 {
        bail!("the month failed: {:?}", summary.errors);
    }
    let m = report.months.first().ok_or_else(|| anyhow!("the pipeline reported no month"))?;
    let calls = times.snapshot();
    let secs = |k: &str| calls.get(k).map(|(_, d)| d.as_secs_f64()).unwrap_or(0.0);
    Ok(json!({
        "rows": m.rows, "pages": m.pages, "bytes": m.bytes, "requests": m.requests, "retries": m.retries,
        "seconds": seconds, "instantiate_ms": instantiate_ms,
        "fetch_s": secs("fetch-page.fetch"), "land_s": secs("landing.land-page"),
        "calls": calls.iter().map(|(k, (n, d))| (k.clone(), json!({"calls": n, "seconds": d.as_secs_f64()}))).collect::<Map<_, _>>(),
    }))
}

/// The same crates compiled natively, over a pooled hyper client.
async fn child_native(source: Source, api_url: &str, landing: &Path, page_size: u32, budget: &str) -> Result<Value> {
    use epc_source::{Api, Credentials};
    let job = native_pipeline::MonthJob {
        api: Api::new(source, api_url).map_err(|e| anyhow!("{e}"))?,
        credentials: Credentials::for_source(source, Some(TOKEN.into()), Some(EMAIL.into()), Some(API_KEY.into()))
            .map_err(|e| anyhow!("{e}"))?,
        kind: Kind::Domestic,
        month: month(),
        page_size,
        last_day: super::london_today().yesterday().expect("dates stay in range"),
        landing: landing.to_path_buf(),
    };
    std::fs::create_dir_all(landing)?;
    let budget = http_client::RequestBudget::parse(budget).map_err(|e| anyhow!(e))?;
    let client = http_client::Client::new(native_pipeline::HyperTransport::default()).with_budget(budget);
    let run = Instant::now();
    let out = native_pipeline::run_month(&client, &job).await.map_err(|e| anyhow!("native run failed: {e}"))?;
    Ok(json!({
        "rows": out.rows, "pages": out.pages, "bytes": out.bytes, "requests": out.requests, "retries": out.retries,
        "seconds": run.elapsed().as_secs_f64(), "instantiate_ms": 0.0,
        "fetch_s": out.fetch.as_secs_f64(), "land_s": out.land.as_secs_f64(),
    }))
}

/// Loading (from the cache, or compiling) and instantiating the pipeline
/// and every component it depends on, as `dame run` does before its first
/// call.
async fn child_instantiate() -> Result<Value> {
    let dir = std::env::temp_dir().join(format!("dame-bench-inst-{}", std::process::id()));
    let job = bench_job(Source::Gepbd, "http://127.0.0.1:9", &dir, 5000, UNLIMITED);
    let started = Instant::now();
    let app = App::new(None)?;
    let values = app::job_values(&job);
    let (resolved, caps) = app.prepare(PIPELINE, &values, &job.google)?;
    let (mut store, instance) = app.instantiate(&resolved, &caps, None).await?;
    let _pipeline = crate::bindings::pipeline::Pipeline::new(&mut store, &instance)?;
    let ms = started.elapsed().as_secs_f64() * 1e3;
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(json!({"instantiate_ms": ms}))
}

/// The DuckDB warehouse as `dame run --warehouse duckdb:FILE` uses it: the
/// landed month loaded (`load-month`) and the views applied
/// (`apply-views`) through the pipeline, with nothing fetched. The two
/// steps are timed apart from the pipeline's own bookkeeping by the call
/// times of the component boundary.
async fn child_load(landing: &Path, warehouse: &Path) -> Result<Value> {
    let mut job = bench_job(Source::Gepbd, "http://127.0.0.1:9", landing, 5000, UNLIMITED);
    job.warehouse = Some(WarehouseTarget::DuckDb(warehouse.to_path_buf()));
    let app = App::new(None)?;
    let values = app::job_values(&job);
    let (resolved, mut caps) = app.prepare(PIPELINE, &values, &job.google)?;
    caps.warehouse = Some(
        crate::duck::open(warehouse, &job.landing).with_context(|| format!("opening the DuckDB warehouse {}", warehouse.display()))?,
    );
    let times = Arc::new(CallTimes::default());
    caps.call_times = Some(times.clone());
    let (sink, rx) = LineSink::new();
    let follower = tokio::spawn(events::follow(rx, Display::Human));
    let (mut store, instance) = app.instantiate(&resolved, &caps, Some(sink)).await?;
    let pipeline = crate::bindings::pipeline::Pipeline::new(&mut store, &instance)?;
    let mut options = app::options(&job);
    options.certificates = false;
    options.load = true;
    options.views = true;
    let started = Instant::now();
    let result = pipeline.dame_epc_pipeline().call_run(&mut store, &options).await.ctx("the pipeline trapped")?;
    let seconds = started.elapsed().as_secs_f64();
    drop(store);
    let summary = follower.await.map_err(|e| anyhow!("log follower: {e}"))?;
    let report = result.map_err(|e| anyhow!("{}", crate::bindings::message(&e)))?;
    if summary.failed() > 0 || !summary.errors.is_empty() {
        bail!("the load or the views failed: {:?}", summary.errors);
    }
    let calls = times.snapshot();
    let (views_calls, views) = calls.get("views.apply-views").copied().unwrap_or_default();
    let (_, load) = calls.get("load.load-month").copied().unwrap_or_default();
    if views_calls != 1 {
        bail!("the views were applied {views_calls} times, expected once (calls: {:?})", calls.keys().collect::<Vec<_>>());
    }
    let rows: u64 = report.months.iter().map(|m| m.rows).sum();
    Ok(json!({"seconds": seconds, "rows": rows, "load_s": load.as_secs_f64(), "views_s": views.as_secs_f64()}))
}

// ---------------------------------------------------------------------------
// Parent side.

/// Which CPUs the measured runs and the emulator are kept on.
///
/// The emulator stands in for a remote API: sharing the measured run's CPU
/// with it makes every figure depend on how the scheduler interleaves two
/// processes, which no deployment sees. Where this process may use two CPUs
/// or more, a run gets the first and the emulator the rest. A run's
/// pipeline is single-threaded (one guest on a current-thread runtime), so
/// one CPU is all it can use.
#[derive(Debug, Clone)]
struct Placement {
    client: Vec<usize>,
    emulator: Vec<usize>,
}

impl Placement {
    fn detect() -> Option<Self> {
        // SAFETY: a zeroed cpu_set_t is a valid empty set, and the call
        // writes at most its size.
        let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        if unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) } != 0 {
            return None;
        }
        let cpus: Vec<usize> =
            (0..libc::CPU_SETSIZE as usize).filter(|&c| unsafe { libc::CPU_ISSET(c, &set) }).collect();
        (cpus.len() >= 2).then(|| Placement { client: cpus[..1].to_vec(), emulator: cpus[1..].to_vec() })
    }
}

/// Starts `cmd` on `cpus` only (threads it creates inherit the set).
fn pin(cmd: &mut Command, cpus: &[usize]) {
    use std::os::unix::process::CommandExt;
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    for &c in cpus {
        unsafe { libc::CPU_SET(c, &mut set) };
    }
    // SAFETY: runs in the forked child before exec; sched_setaffinity is a
    // plain system call and the set was built before the fork.
    unsafe {
        cmd.pre_exec(move || {
            if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// A child process this bench started, killed when dropped.
struct Owned(Child);

impl Drop for Owned {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The emulator in its own process, serving synthetic months.
struct EmulatorProcess {
    child: Owned,
    url: String,
}

impl EmulatorProcess {
    fn start(per_month: u32, rate_limit: Option<&str>, log: &Path, place: Option<&Placement>) -> Result<Self> {
        let mut cmd = Command::new(std::env::current_exe()?);
        if let Some(p) = place {
            pin(&mut cmd, &p.emulator);
        }
        cmd.args(["emulate", "--port", "0", "--seed", SEED, "--token", TOKEN, "--email", EMAIL, "--api-key", API_KEY])
            .args(["--synthetic-per-month", &per_month.to_string(), "--synthetic-months", MONTH]);
        if let Some(limit) = rate_limit {
            cmd.args(["--rate-limit", limit]);
        }
        let mut child = Owned(
            cmd.stdout(Stdio::piped()).stderr(std::fs::File::create(log)?).stdin(Stdio::null()).spawn().context("starting the emulator")?,
        );
        let stdout = child.0.stdout.take().expect("piped");
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line)?;
        let url = line
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .ok_or_else(|| anyhow!("the emulator did not start (see {}): {line:?}", log.display()))?
            .to_string();
        Ok(Self { child, url })
    }

    /// CPU seconds the emulator has used.
    fn cpu_s(&self) -> f64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.0.id())).unwrap_or_default();
        // Fields after the command name (which may hold spaces), from field 3.
        let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
        let f: Vec<&str> = rest.split_whitespace().collect();
        let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
        (ticks(11) + ticks(12)) / hz
    }

    fn stats(&self) -> Result<Value> {
        let addr = self.url.trim_start_matches("http://");
        let mut s = std::net::TcpStream::connect(addr)?;
        write!(s, "GET /_emulator/stats HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n")?;
        let mut text = String::new();
        s.read_to_string(&mut text)?;
        let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
        serde_json::from_str(body).context("reading the emulator's stats")
    }
}

/// The bench's own `dame`, for a child measurement.
fn dame(cache: &Path) -> Command {
    let mut c = Command::new(std::env::current_exe().expect("the running binary"));
    // A fixed "today" just after the bench month: the run's change-event
    // feed (GEPBD) then spans that month and one day, not every month
    // from it to the real today, and every run asks for the same things.
    c.env("DAME_CACHE_DIR", cache).env("DAME_TODAY", TODAY).stdin(Stdio::null());
    for var in ["EPC_TOKEN", "EPC_EMAIL", "EPC_API_KEY", "STORAGE_EMULATOR_HOST", "BIGQUERY_EMULATOR_HOST", "DAME_HOST_FAULTS"] {
        c.env_remove(var);
    }
    c
}

/// Runs a child measurement to its end and reads its JSON line.
fn measure(cmd: &mut Command, log: &Path) -> Result<Value> {
    let out = cmd.stderr(std::fs::File::create(log)?).output().context("starting a measurement")?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        let err = std::fs::read_to_string(log).unwrap_or_default();
        let tail: Vec<&str> = err.lines().rev().take(5).collect();
        bail!("a measurement failed ({}): {}", out.status, tail.into_iter().rev().collect::<Vec<_>>().join(" / "));
    }
    text.lines().rev().find_map(|l| serde_json::from_str(l).ok()).ok_or_else(|| anyhow!("a measurement printed no JSON: {text}"))
}

/// Bytes of NDJSON (uncompressed) and lines under `landing`'s raw folder.
fn ndjson_of(landing: &Path) -> Result<Vec<Vec<u8>>> {
    let dir = landing.join("raw/domestic").join(month().compact());
    let mut parts: Vec<PathBuf> = std::fs::read_dir(&dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "gz"))
        .collect();
    parts.sort();
    let mut out = Vec::with_capacity(parts.len());
    for p in parts {
        let mut text = Vec::new();
        flate2::read::GzDecoder::new(std::fs::File::open(&p)?).read_to_end(&mut text)?;
        out.push(text);
    }
    Ok(out)
}

/// The native floor of landing: validating each line as JSON and gzipping
/// each part at the level landing uses, over the bytes that were landed.
fn landing_floor_s(parts: &[Vec<u8>]) -> f64 {
    use flate2::Compression;
    use flate2::write::GzEncoder;
    let started = Instant::now();
    for part in parts {
        let mut gz = GzEncoder::new(Vec::with_capacity(part.len() / 4), Compression::new(6));
        for line in part.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            let _: &serde_json::value::RawValue = serde_json::from_slice(line).expect("landed lines are JSON");
            gz.write_all(line).expect("in memory");
            gz.write_all(b"\n").expect("in memory");
        }
        std::hint::black_box(gz.finish().expect("in memory"));
    }
    started.elapsed().as_secs_f64()
}

fn round(x: f64, places: i32) -> f64 {
    let p = 10f64.powi(places);
    (x * p).round() / p
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// One source's throughput runs at one size.
#[derive(Debug, Default, Clone)]
struct SizeRun {
    rows: u64,
    json_bytes: u64,
    wasm: Value,
    native: Value,
    emulator_cpu_wasm: f64,
    emulator_cpu_native: f64,
    floor_s: f64,
}

fn f(v: &Value, k: &str) -> f64 {
    v.get(k).and_then(Value::as_f64).unwrap_or(0.0)
}

/// Progress goes to stderr: with --json, stdout carries only the object.
fn progress(msg: impl AsRef<str>) {
    eprintln!("bench: {}", msg.as_ref());
}

pub async fn main(a: Args) -> Result<ExitCode> {
    let started = Instant::now();
    let sizes: Vec<u32> = if a.quick && a.sizes == [10000, 50000, 150000] { vec![1000, 3000] } else { a.sizes.clone() };
    if sizes.is_empty() || sizes.iter().any(|&n| n == 0) {
        bail!("--sizes: give month sizes above 0, e.g. 10000,50000,150000");
    }
    let sources: Vec<Source> = a.sources.iter().map(|s| s.parse()).collect::<Result<_, _>>()?;
    let tmp = tempfile::Builder::new().prefix("dame-bench-").tempdir()?;
    let root = tmp.path().to_path_buf();
    let logs = root.join("logs");
    std::fs::create_dir_all(&logs)?;
    let cache = root.join("cache");
    let mut notes: Vec<String> = Vec::new();
    let place = if a.no_pin { None } else { Placement::detect() };
    match &place {
        Some(p) => progress(format!("measured runs on CPU {:?}, the emulator on CPU {:?}", p.client, p.emulator)),
        None => progress("the emulator and the measured runs share every CPU"),
    }

    // Instantiation: cold (an empty compiled-component cache: every
    // component compiled), then warm (compiled code loaded from disk).
    progress("instantiation, cold (compiling every component)");
    let cold = measure(dame(&cache).args(["bench-child", "instantiate"]), &logs.join("instantiate-cold.log"))?;
    let warm_runs = if a.quick { 3 } else { 7 };
    let mut warm = Vec::new();
    for i in 0..warm_runs {
        let v = measure(dame(&cache).args(["bench-child", "instantiate"]), &logs.join(format!("instantiate-warm-{i}.log")))?;
        warm.push(f(&v, "instantiate_ms"));
    }
    let instantiate_cold = f(&cold, "instantiate_ms");
    let instantiate_warm = median(warm.clone());
    progress(format!("instantiation: cold {instantiate_cold:.0} ms, warm {instantiate_warm:.1} ms (median of {warm_runs})"));

    // Throughput and memory, per size: one emulator process per size.
    let mut runs: BTreeMap<(&str, u32), SizeRun> = BTreeMap::new();
    let largest = *sizes.iter().max().expect("not empty");
    for &size in &sizes {
        progress(format!("emulator with a synthetic month of {size} certificates"));
        let emu = EmulatorProcess::start(size, None, &logs.join(format!("emulator-{size}.log")), place.as_ref())?;
        for &source in &sources {
            let mut run = SizeRun::default();
            for mode in ["wasm", "native"] {
                let landing = root.join(format!("land/{size}/{source}/{mode}"));
                let cpu0 = emu.cpu_s();
                let mut cmd = dame(&cache);
                if let Some(p) = &place {
                    pin(&mut cmd, &p.client);
                }
                cmd.args(["bench-child", "run", "--mode", mode, "--source", source.as_str(), "--api-url", &emu.url])
                    .arg("--landing")
                    .arg(&landing);
                let v = measure(&mut cmd, &logs.join(format!("run-{size}-{source}-{mode}.log")))?;
                let emu_cpu = emu.cpu_s() - cpu0;
                progress(
                    format!(
                        "{source} {size} {mode}: {} rows in {:.2} s ({:.0} records/s), peak RSS {:.1} MiB, client CPU {:.2} s, emulator CPU {:.2} s",
                        v["rows"], f(&v, "seconds"), f(&v, "rows") / f(&v, "seconds"), f(&v, "vm_hwm_kib") / 1024.0, f(&v, "cpu_s"), emu_cpu
                    ),
                );
                if mode == "wasm" {
                    let parts = ndjson_of(&landing)?;
                    run.rows = parts.iter().map(|p| p.iter().filter(|&&b| b == b'\n').count() as u64).sum();
                    run.json_bytes = parts.iter().map(|p| p.len() as u64).sum();
                    run.floor_s = landing_floor_s(&parts);
                    run.wasm = v;
                    run.emulator_cpu_wasm = emu_cpu;
                } else {
                    run.native = v;
                    run.emulator_cpu_native = emu_cpu;
                }
                if !(a.keep || (mode == "wasm" && size == largest && source == Source::Gepbd)) {
                    let _ = std::fs::remove_dir_all(&landing);
                }
            }
            if run.rows != size as u64 || run.wasm["rows"] != run.native["rows"] {
                bail!(
                    "{source} {size}: landed {} rows through the components and {} natively, expected {size}",
                    run.rows, run.native["rows"]
                );
            }
            runs.insert((source.as_str(), size), run);
        }
        drop(emu);
    }

    // The request budget against the API's limit, scaled down in time: the
    // same share of the limit as production's 5760/300s against 6000/300s.
    let (limit_n, window_s, measure_windows) = if a.quick { (60u32, 2u64, 2u64) } else { (300u32, 10u64, 3u64) };
    let budget = format!("{}/{}s", limit_n as f64 * 0.96, window_s);
    let limit_spec = format!("{limit_n}/{window_s}s");
    let mut limited: BTreeMap<&str, Value> = BTreeMap::new();
    for &source in &sources {
        progress(format!("{source} under a rate limit of {limit_spec} with a request budget of {budget}"));
        // Enough requests to outlast the measurement: the GEPBD run is
        // stopped once measured; ODC makes one request per page.
        let size = if a.quick { 2000 } else { 8000 };
        let emu = EmulatorProcess::start(size, Some(&limit_spec), &logs.join(format!("emulator-limited-{source}.log")), place.as_ref())?;
        let landing = root.join(format!("land/limited/{source}"));
        // ODC pages are 5000 rows: ask for small ones so that it, too, makes
        // enough requests to meet the budget.
        let page_size = if source == Source::Odc { "5" } else { "5000" };
        let mut cmd = dame(&cache);
        if let Some(p) = &place {
            pin(&mut cmd, &p.client);
        }
        cmd.args(["bench-child", "run", "--mode", "wasm", "--source", source.as_str(), "--api-url", &emu.url])
            .args(["--page-size", page_size, "--request-budget", &budget])
            .arg("--landing")
            .arg(&landing)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(logs.join(format!("run-limited-{source}.log")))?);
        let child = Owned(cmd.spawn()?);
        let admitted = |s: &Value| {
            s["routes"].as_object().map_or(0, |routes| {
                routes
                    .iter()
                    .filter(|(r, _)| !r.contains("/_emulator"))
                    .flat_map(|(_, by)| by.as_object().into_iter().flatten())
                    .filter(|(status, _)| status.as_str() != "429")
                    .map(|(_, n)| n.as_u64().unwrap_or(0))
                    .sum::<u64>()
            })
        };
        let rejected = |s: &Value| s["rate_limited"].as_u64().unwrap_or(0);
        // Steady state: from one window after the first request, for a
        // whole number of windows.
        let first = Instant::now();
        loop {
            if admitted(&emu.stats()?) > 0 {
                break;
            }
            if first.elapsed() > Duration::from_secs(60) {
                bail!("{source}: no request reached the rate-limited emulator in a minute");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let t0 = Instant::now();
        std::thread::sleep(Duration::from_secs(window_s));
        let (s1, t1) = (emu.stats()?, Instant::now());
        std::thread::sleep(Duration::from_secs(window_s * measure_windows));
        let (s2, t2) = (emu.stats()?, Instant::now());
        drop(child);
        let span = (t2 - t1).as_secs_f64();
        let rate = (admitted(&s2) - admitted(&s1)) as f64 / span;
        let allowed = limit_n as f64 / window_s as f64;
        let v = json!({
            "limit": limit_spec, "budget": budget, "measured_s": round(span, 2),
            "requests_per_s": round(rate, 2), "allowed_per_s": allowed,
            "utilisation": round(rate / allowed, 4),
            "rejected_steady": rejected(&s2) - rejected(&s1),
            "rejected_first_window": rejected(&s1),
            "requests_first_window": admitted(&s1),
            "first_window_s": round((t1 - t0).as_secs_f64(), 2),
            "enforced_by_emulator": source == Source::Gepbd,
        });
        progress(format!("{source}: {:.2} requests/s of {allowed} allowed ({:.1}%), {} rejected in steady state", rate, 100.0 * rate / allowed, v["rejected_steady"]));
        limited.insert(source.as_str(), v);
        drop(emu);
    }
    if sources.contains(&Source::Odc) {
        notes.push("ODC documents no rate limit and the emulator enforces none on its routes: the ODC figures show the client's budget holding the rate (pages of 5 rows, to make enough requests), not the API refusing".into());
    }

    // DuckDB: the largest GEPBD month landed through the components,
    // loaded and given its views.
    let landed = root.join(format!("land/{largest}/gepbd/wasm"));
    let duckdb = if landed.exists() {
        progress(format!("DuckDB load of the {largest} month and the views"));
        let mut cmd = dame(&cache);
        cmd.args(["bench-child", "load", "--landing"]).arg(&landed).arg("--warehouse").arg(root.join("bench.duckdb"));
        let v = measure(&mut cmd, &logs.join("duckdb.log")).context("the DuckDB load and views")?;
        if v["rows"].as_u64() != Some(largest as u64) {
            bail!("the DuckDB load reported {} rows, expected {largest}", v["rows"]);
        }
        progress(format!(
            "DuckDB: {:.2} s in all, load-month {:.2} s, apply-views {:.2} s, peak RSS {:.0} MiB",
            f(&v, "seconds"), f(&v, "load_s"), f(&v, "views_s"), f(&v, "vm_hwm_kib") / 1024.0
        ));
        Some(v)
    } else {
        notes.push("no GEPBD month was landed (--sources without gepbd): nothing to load into DuckDB".into());
        None
    };

    // The report.
    let mut out = Map::new();
    for &source in &sources {
        let by_size = |g: &dyn Fn(&SizeRun) -> Value| -> Value {
            sizes.iter().map(|n| (n.to_string(), g(&runs[&(source.as_str(), *n)]))).collect::<Map<_, _>>().into()
        };
        let rps = |v: &Value, rows: u64| rows as f64 / f(v, "seconds");
        let (wasm_s, native_s): (f64, f64) =
            sizes.iter().map(|n| &runs[&(source.as_str(), *n)]).fold((0.0, 0.0), |(w, nat), r| (w + f(&r.wasm, "seconds"), nat + f(&r.native, "seconds")));
        let (wasm_cpu, native_cpu): (f64, f64) =
            sizes.iter().map(|n| &runs[&(source.as_str(), *n)]).fold((0.0, 0.0), |(w, nat), r| (w + f(&r.wasm, "cpu_s"), nat + f(&r.native, "cpu_s")));
        let rss: Vec<f64> = sizes.iter().map(|n| f(&runs[&(source.as_str(), *n)].wasm, "vm_hwm_kib") / 1024.0).collect();
        let rss_min = rss.iter().copied().fold(f64::INFINITY, f64::min);
        let rss_max = rss.iter().copied().fold(0.0, f64::max);
        let big = &runs[&(source.as_str(), largest)];
        let lim = limited.get(source.as_str()).cloned().unwrap_or(Value::Null);
        let s = json!({
            "records_per_s": by_size(&|r| json!(round(rps(&r.wasm, r.rows), 0))),
            "json_mb_per_s": by_size(&|r| json!(round(r.json_bytes as f64 / 1e6 / f(&r.wasm, "seconds"), 2))),
            "native_records_per_s": by_size(&|r| json!(round(rps(&r.native, r.rows), 0))),
            "wasm_native_ratio": round(wasm_s / native_s, 3),
            "wasm_native_ratio_by_size": by_size(&|r| json!(round(f(&r.wasm, "seconds") / f(&r.native, "seconds"), 3))),
            "wasm_native_cpu_ratio": round(wasm_cpu / native_cpu, 3),
            "peak_rss_mib": by_size(&|r| json!(round(f(&r.wasm, "vm_hwm_kib") / 1024.0, 1))),
            "native_peak_rss_mib": by_size(&|r| json!(round(f(&r.native, "vm_hwm_kib") / 1024.0, 1))),
            "peak_rss_spread": round(rss_max / rss_min - 1.0, 3),
            "instantiate_ms_warm": round(instantiate_warm, 2),
            "instantiate_ms_cold": round(instantiate_cold, 1),
            "rate_limit_utilisation": lim["utilisation"].clone(),
            "rejected_requests": lim["rejected_steady"].clone(),
            "rate_limit": lim,
            "json_bytes": by_size(&|r| json!(r.json_bytes)),
            "requests": by_size(&|r| r.wasm["requests"].clone()),
            "cpu_s": by_size(&|r| json!({
                "wasm": round(f(&r.wasm, "cpu_s"), 2), "native": round(f(&r.native, "cpu_s"), 2),
                "emulator_during_wasm": round(r.emulator_cpu_wasm, 2), "emulator_during_native": round(r.emulator_cpu_native, 2),
            })),
            "landing": json!({
                "size": largest,
                "wasm_s": round(f(&big.wasm, "land_s"), 3),
                "native_s": round(f(&big.native, "land_s"), 3),
                "floor_s": round(big.floor_s, 3),
                "wasm_vs_floor": round(f(&big.wasm, "land_s") / big.floor_s, 3),
                "native_vs_floor": round(f(&big.native, "land_s") / big.floor_s, 3),
                "share_of_wasm_run": round(f(&big.wasm, "land_s") / f(&big.wasm, "seconds"), 3),
            }),
            "fetch_s": by_size(&|r| json!({"wasm": round(f(&r.wasm, "fetch_s"), 3), "native": round(f(&r.native, "fetch_s"), 3)})),
        });
        out.insert(source.as_str().to_string(), s);
    }
    // The key names the 150k month; a run without that size
    // (--quick, --sizes) reports its largest under its own size and null
    // under 150000, never another size's figure under that name.
    let duck_s = duckdb.as_ref().map_or(Value::Null, |v| json!(round(f(v, "seconds"), 3)));
    out.insert(format!("duckdb_load_s_{largest}"), duck_s.clone());
    if largest != 150000 {
        out.insert("duckdb_load_s_150000".into(), Value::Null);
    }
    out.insert(
        "duckdb".into(),
        duckdb.as_ref().map_or(Value::Null, |v| {
            json!({
                "size": largest, "seconds": round(f(v, "seconds"), 3), "load_s": round(f(v, "load_s"), 3),
                "views_s": round(f(v, "views_s"), 3), "rows_per_s": round(f(v, "rows") / f(v, "load_s"), 0),
                "peak_rss_mib": round(f(v, "vm_hwm_kib") / 1024.0, 1), "cpu_s": round(f(v, "cpu_s"), 2),
            })
        }),
    );
    out.insert("instantiate_ms_warm_runs".into(), json!(warm.iter().map(|x| round(*x, 2)).collect::<Vec<_>>()));
    out.insert("sizes".into(), json!(sizes));
    out.insert("quick".into(), json!(a.quick));
    out.insert("cores".into(), json!(std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)));
    out.insert(
        "cpus".into(),
        place.as_ref().map_or(Value::Null, |p| json!({"runs": p.client, "emulator": p.emulator})),
    );
    out.insert("month".into(), json!(MONTH));
    out.insert("seconds".into(), json!(round(started.elapsed().as_secs_f64(), 1)));
    out.insert("notes".into(), json!(notes));
    let report = Value::Object(out);
    if a.keep {
        let kept = tmp.keep();
        eprintln!("bench: kept {}", kept.display());
    }
    if a.json {
        println!("{report}");
    } else {
        println!("{}", table(&report, &sources, &sizes));
    }
    Ok(ExitCode::SUCCESS)
}

fn table(r: &Value, sources: &[Source], sizes: &[u32]) -> String {
    let mut t = String::new();
    use std::fmt::Write as _;
    for s in sources {
        let v = &r[s.as_str()];
        let _ = writeln!(t, "{s}");
        let _ = writeln!(t, "  {:>8}  {:>10}  {:>8}  {:>10}  {:>6}  {:>9}  {:>10}", "records", "records/s", "MB/s", "native r/s", "ratio", "peak RSS", "native RSS");
        for n in sizes {
            let k = n.to_string();
            let _ = writeln!(
                t,
                "  {:>8}  {:>10}  {:>8}  {:>10}  {:>6}  {:>5} MiB  {:>6} MiB",
                n,
                v["records_per_s"][&k],
                v["json_mb_per_s"][&k],
                v["native_records_per_s"][&k],
                v["wasm_native_ratio_by_size"][&k],
                v["peak_rss_mib"][&k],
                v["native_peak_rss_mib"][&k]
            );
        }
        let _ = writeln!(
            t,
            "  WASM/native {} (CPU {}), instantiation warm {} ms / cold {} ms, rate limit {} used with {} rejected, landing {}× its floor",
            v["wasm_native_ratio"], v["wasm_native_cpu_ratio"], v["instantiate_ms_warm"], v["instantiate_ms_cold"],
            v["rate_limit_utilisation"], v["rejected_requests"], v["landing"]["wasm_vs_floor"]
        );
    }
    let d = &r["duckdb"];
    let _ = writeln!(
        t,
        "DuckDB, {} month: {} s in all (load-month {} s, apply-views {} s), peak RSS {} MiB",
        d["size"], d["seconds"], d["load_s"], d["views_s"], d["peak_rss_mib"]
    );
    for n in r["notes"].as_array().into_iter().flatten() {
        let _ = writeln!(t, "note: {}", n.as_str().unwrap_or(""));
    }
    match r["cpus"].as_object() {
        Some(c) => {
            let _ = writeln!(t, "measured runs on CPU {}, the emulator on CPU {}", c["runs"], c["emulator"]);
        }
        None => {
            let _ = writeln!(t, "the emulator and the measured runs shared every CPU");
        }
    }
    let _ = write!(t, "{} s in all", r["seconds"]);
    t
}
