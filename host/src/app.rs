//! The application as the manifest describes it, run by this host: the
//! `pipeline` component with its step components as dependencies, given
//! the settings of a command.

use crate::bindings::{landing as lb, pipeline as pb};
use crate::events::{self, Display, LineSink, Summary};
use crate::manifest::{Manifest, Resolved};
use crate::outbound::AllowList;
use crate::runtime::{Capabilities, Provider, Runtime, State, WasmtimeContext};
use wasmtime::component::Component;
use anyhow::{Context, Result, anyhow, bail};
use epc_model::{Kind, MonthRange, Source};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use wasmtime::Store;

/// The component the cron trigger runs and `dame run` calls.
pub const PIPELINE: &str = "pipeline";

/// Where the component sees a local landing folder.
const GUEST_LANDING: &str = "/landing";

/// Where landed objects go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LandingTarget {
    Folder(PathBuf),
    Bucket(String),
}

impl LandingTarget {
    pub fn parse(s: &str) -> Result<Self> {
        if let Some(rest) = s.strip_prefix("gs://") {
            let bucket = rest.split('/').next().unwrap_or("");
            if bucket.is_empty() {
                bail!("landing '{s}' names no bucket: write gs://BUCKET[/PREFIX]");
            }
            return Ok(LandingTarget::Bucket(s.to_string()));
        }
        if s.contains("://") {
            bail!("landing '{s}' is neither a folder nor gs://BUCKET");
        }
        Ok(LandingTarget::Folder(PathBuf::from(s)))
    }

    /// The `landing` value the components read, and the folder to grant.
    fn setting(&self) -> Result<(String, Option<PathBuf>)> {
        match self {
            LandingTarget::Bucket(b) => Ok((b.clone(), None)),
            LandingTarget::Folder(dir) => {
                std::fs::create_dir_all(dir).with_context(|| format!("creating landing folder {}", dir.display()))?;
                let abs = dir.canonicalize().with_context(|| format!("resolving landing folder {}", dir.display()))?;
                Ok((GUEST_LANDING.to_string(), Some(abs)))
            }
        }
    }
}

/// EPC API credentials from the environment: the values, or the names of
/// Secret Manager versions holding them (`EPC_TOKEN_SECRET=projects/P/
/// secrets/NAME/versions/latest`, read by the component). `Debug` shows
/// no values.
#[derive(Clone, Default)]
pub struct Secrets {
    pub token: Option<String>,
    pub email: Option<String>,
    pub api_key: Option<String>,
    /// Variable name → Secret Manager version name.
    pub in_secret_manager: BTreeMap<String, String>,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secrets { <redacted> }")
    }
}

impl Secrets {
    pub fn from_env() -> Self {
        let get = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        let mut in_secret_manager = BTreeMap::new();
        for (env, var) in [("EPC_TOKEN_SECRET", "epc_token_secret"), ("EPC_EMAIL_SECRET", "epc_email_secret"), ("EPC_API_KEY_SECRET", "epc_api_key_secret")] {
            if let Some(name) = get(env) {
                in_secret_manager.insert(var.to_string(), name);
            }
        }
        Self { token: get("EPC_TOKEN"), email: get("EPC_EMAIL"), api_key: get("EPC_API_KEY"), in_secret_manager }
    }

    fn has(&self, value: &Option<String>, var: &str) -> bool {
        value.is_some() || self.in_secret_manager.contains_key(&format!("{var}_secret"))
    }

    /// Says which variable is missing for `source`, before anything runs.
    pub fn check(&self, source: Source) -> Result<()> {
        for name in self.in_secret_manager.values() {
            google_auth::check_secret_name(name)?;
        }
        match source {
            Source::Gepbd if !self.has(&self.token, "epc_token") => bail!(
                "no GEPBD token: set EPC_TOKEN (from your account on the get-energy-performance-data service), \
                 or run `dame demo` to try without one"
            ),
            Source::Odc if !self.has(&self.email, "epc_email") || !self.has(&self.api_key, "epc_api_key") => {
                bail!("no ODC credentials: set both EPC_EMAIL and EPC_API_KEY (or their *_SECRET Secret Manager names)")
            }
            _ => Ok(()),
        }
    }
}

/// Where landed months are loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WarehouseTarget {
    /// An embedded DuckDB file.
    DuckDb(PathBuf),
    /// `bigquery:PROJECT.DATASET`, in a region.
    BigQuery { project: String, dataset: String, region: String },
}

impl WarehouseTarget {
    pub fn parse(s: &str, region: &str) -> Result<Self> {
        use epc_model::warehouse::{check_dataset, check_project, check_region};
        if let Some(path) = s.strip_prefix("duckdb:") {
            if path.is_empty() {
                bail!("--warehouse duckdb: needs a file, e.g. duckdb:./data/epc.duckdb");
            }
            return Ok(WarehouseTarget::DuckDb(PathBuf::from(path)));
        }
        if let Some(rest) = s.strip_prefix("bigquery:") {
            let Some((project, dataset)) = rest.split_once('.') else {
                bail!("--warehouse '{s}' names no dataset: write bigquery:PROJECT.DATASET");
            };
            check_project(project)?;
            check_dataset(dataset)?;
            check_region(region)?;
            return Ok(WarehouseTarget::BigQuery { project: project.into(), dataset: dataset.into(), region: region.into() });
        }
        bail!("--warehouse '{s}' is neither duckdb:FILE nor bigquery:PROJECT.DATASET")
    }
}

/// Google credentials and local stand-ins, passed through from the
/// environment as the Google libraries read them. `Debug` shows no values.
#[derive(Clone, Default)]
pub struct GoogleEnv {
    pub values: BTreeMap<String, String>,
}

impl std::fmt::Debug for GoogleEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "GoogleEnv {{ {:?} }}", self.values.keys().collect::<Vec<_>>())
    }
}

impl GoogleEnv {
    /// `STORAGE_EMULATOR_HOST`, `BIGQUERY_EMULATOR_HOST`,
    /// `GOOGLE_OAUTH_ACCESS_TOKEN`, and the key file named by
    /// `GOOGLE_APPLICATION_CREDENTIALS` (read here: components see no host
    /// files).
    pub fn from_env() -> Result<Self> {
        let mut values = BTreeMap::new();
        let get = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        for (env, key) in [
            ("STORAGE_EMULATOR_HOST", "storage_emulator_host"),
            ("BIGQUERY_EMULATOR_HOST", "bigquery_emulator_host"),
            ("GOOGLE_OAUTH_ACCESS_TOKEN", "google_oauth_access_token"),
            // A local stand-in for Secret Manager (tests).
            ("DAME_SECRET_MANAGER_URL", "secret_manager_url"),
        ] {
            if let Some(v) = get(env) {
                values.insert(key.to_string(), v);
            }
        }
        if let Some(path) = get("GOOGLE_APPLICATION_CREDENTIALS") {
            let json = std::fs::read_to_string(&path)
                .with_context(|| format!("reading GOOGLE_APPLICATION_CREDENTIALS ({path}); point it at a service-account key file"))?;
            values.insert("google_application_credentials_json".into(), json);
        }
        Ok(Self { values })
    }

    /// The stand-ins' URLs, which the components must be allowed to reach.
    pub fn emulator_hosts(&self) -> Vec<String> {
        ["storage_emulator_host", "bigquery_emulator_host", "secret_manager_url"]
            .iter()
            .filter_map(|k| self.values.get(*k))
            .map(|v| if v.contains("://") { v.clone() } else { format!("http://{v}") })
            .collect()
    }
}

/// A `dame run`: what to fetch and where to put it.
#[derive(Debug, Clone)]
pub struct Job {
    pub source: Source,
    pub api_url: String,
    pub kinds: Vec<Kind>,
    pub range: MonthRange,
    pub landing: LandingTarget,
    pub warehouse: Option<WarehouseTarget>,
    pub page_size: u32,
    /// Requests allowed to the EPC API, `N/Ds`.
    pub request_budget: String,
    /// Seconds after which no new work starts (0: none).
    pub budget_seconds: u32,
    /// Months before the first that are checked again for late arrivals.
    pub recheck_months: u32,
    /// Fetch certificates (false for `--recs-only`).
    pub certificates: bool,
    /// Fetch the recommendations of landed certificates.
    pub recommendations: bool,
    pub secrets: Secrets,
    pub google: GoogleEnv,
}

fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "this machine".into())
}

/// Who runs, as the lease names it to a run that finds it held.
pub fn holder(what: &str) -> String {
    format!("{what} on {} (pid {})", hostname(), std::process::id())
}

/// Whether a lease holder is a dame process on this machine that no longer
/// runs (killed, or stopped with Ctrl-C): its lease can be taken over at
/// once instead of after it expires.
pub fn is_dead_local_holder(holder: &str) -> bool {
    let Some(rest) = holder.strip_suffix(')') else { return false };
    let Some((who, pid)) = rest.rsplit_once(" (pid ") else { return false };
    let Some((_, host)) = who.rsplit_once(" on ") else { return false };
    let Ok(pid) = pid.parse::<i32>() else { return false };
    if host != hostname() || pid <= 0 || pid as u32 == std::process::id() {
        return false;
    }
    // Signal 0 checks existence; ESRCH means no such process.
    let alive = unsafe { libc::kill(pid, 0) } == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH);
    !alive
}

pub struct App {
    pub runtime: Runtime,
    pub manifest: Manifest,
}

impl App {
    pub fn new(manifest: Option<&Path>) -> Result<Self> {
        let manifest = match manifest {
            Some(p) => Manifest::load(p)?,
            None => Manifest::embedded()?,
        };
        Ok(Self { runtime: Runtime::new()?, manifest })
    }

    /// Resolves a component with `values` and grants it what they name.
    /// Settings the manifest does not declare (the Google stand-ins and
    /// credentials in `google`) are added to its configuration, and the
    /// stand-ins to its allowed hosts.
    pub fn prepare(&self, id: &str, values: &BTreeMap<String, String>, google: &GoogleEnv) -> Result<(Resolved, Capabilities)> {
        let resolved = self.manifest.resolve(id, values)?;
        let mut hosts = resolved.allowed_outbound_hosts.clone();
        hosts.extend(google.emulator_hosts());
        let mut config = resolved.variables.clone();
        for (k, v) in &google.values {
            config.entry(k.clone()).or_insert_with(|| v.clone());
        }
        let mut caps = Capabilities {
            config,
            allowed_hosts: AllowList::parse(&hosts)
                .with_context(|| format!("{}: component.{id}.allowed_outbound_hosts", self.manifest.file))?,
            preopens: Vec::new(),
            warehouse: None,
            call_times: None,
            faults: match std::env::var("DAME_HOST_FAULTS") {
                Ok(spec) if !spec.trim().is_empty() => {
                    Some(Arc::new(crate::outbound::Faults::parse(&spec).context("DAME_HOST_FAULTS")?))
                }
                _ => None,
            },
        };
        if let Some(landing) = resolved.variables.get("landing").filter(|l| !l.is_empty()) {
            let (setting, folder) = LandingTarget::parse(landing)?.setting()?;
            caps.config.insert("landing".into(), setting);
            if let Some(folder) = folder {
                caps.preopens.push((folder, GUEST_LANDING.to_string()));
            }
        }
        Ok((resolved, caps))
    }

    /// Loads a component file named by the manifest.
    fn load(&self, path: &Path) -> Result<(String, Component)> {
        let name = path.file_stem().and_then(|s| s.to_str()).unwrap_or("component").to_string();
        let component = self.runtime.load_path(&name, path)?;
        Ok((name, component))
    }

    /// The providers of a component's imports: the manifest's dependencies,
    /// and for a dependency that needs a warehouse, the warehouse. The
    /// manifest names the warehouse steps composed with `bigquery` (Spin
    /// needs them so); when the host provides the warehouse (DuckDB) it
    /// runs the plain steps and serves their warehouse import itself.
    fn providers(&self, resolved: &Resolved, caps: &Capabilities) -> Result<Vec<(String, Provider)>> {
        let bigquery = caps.config.get("warehouse").map(String::as_str) == Some("bigquery");
        let mut deps = Vec::new();
        for (interface, path) in &resolved.dependencies {
            let file = path.file_name().and_then(|f| f.to_str()).unwrap_or_default();
            let path = match file.strip_suffix("_bigquery.wasm") {
                Some(plain) if !bigquery => path.with_file_name(format!("{plain}.wasm")),
                _ => path.clone(),
            };
            let (name, component) = self.load(&path)?;
            let needs_warehouse = component
                .component_type()
                .imports(self.runtime.engine())
                .any(|(n, _)| n.starts_with("dame:epc/warehouse@"));
            let mut nested = Vec::new();
            if needs_warehouse {
                let provider = if bigquery {
                    let (name, component) = self.load(&path.with_file_name("bigquery.wasm"))?;
                    Provider::Component { name, component, deps: vec![] }
                } else {
                    Provider::Host
                };
                nested.push(("dame:epc/warehouse".to_string(), provider));
            }
            deps.push((interface.clone(), Provider::Component { name, component, deps: nested }));
        }
        Ok(deps)
    }

    pub(crate) async fn instantiate(
        &self,
        resolved: &Resolved,
        caps: &Capabilities,
        stderr: Option<LineSink>,
    ) -> Result<(Store<State>, wasmtime::component::Instance)> {
        let (_, root) = self.load(&resolved.source)?;
        let deps = self.providers(resolved, caps)?;
        self.runtime
            .instantiate(&root, &deps, caps, stderr.map(|s| Box::new(s) as Box<dyn wasmtime_wasi::cli::StdoutStream>))
            .await
            .with_context(|| format!("starting component {}", resolved.id))
    }

    /// Runs the job through `pipeline.run`, following its log lines.
    pub async fn run(&self, job: &Job, display: Display) -> Result<(Result<pb::exports::dame::epc::pipeline::Report, String>, Summary)> {
        self.run_adjusted(job, display, |_| {}).await
    }

    /// [`App::run`] with the pipeline's options adjusted first: `dame
    /// backfill --warehouse` runs the load step alone over the months it
    /// landed.
    pub async fn run_adjusted(
        &self,
        job: &Job,
        display: Display,
        adjust: impl FnOnce(&mut pb::exports::dame::epc::pipeline::Options),
    ) -> Result<(Result<pb::exports::dame::epc::pipeline::Report, String>, Summary)> {
        let values = job_values(job);
        let (resolved, mut caps) = self.prepare(PIPELINE, &values, &job.google)?;
        if let Some(WarehouseTarget::DuckDb(path)) = &job.warehouse {
            caps.warehouse = Some(crate::duck::open(path, &job.landing)?);
        }
        let stale = self.stale_holder(&job.landing).await?;
        let (sink, rx) = LineSink::new();
        let follower = tokio::spawn(events::follow(rx, display));
        let outcome = async {
            let (mut store, instance) = self.instantiate(&resolved, &caps, Some(sink)).await?;
            let pipeline = pb::Pipeline::new(&mut store, &instance)?;
            let mut options = options(job);
            options.stale_lease_holder = stale;
            adjust(&mut options);
            let result = pipeline.dame_epc_pipeline().call_run(&mut store, &options).await.ctx("the pipeline trapped")?;
            Ok::<_, anyhow::Error>(result.map_err(|e| crate::bindings::message(&e).to_string()))
        }
        .await;
        // The store (and with it the log stream) is gone; the follower ends.
        let summary = follower.await.map_err(|e| anyhow!("progress display failed: {e}"))?;
        Ok((outcome?, summary))
    }

    /// Runs the cron entry point once, as Spin's trigger would.
    pub async fn tick(&self, id: &str, values: &BTreeMap<String, String>, google: &GoogleEnv, timestamp: u64, display: Display) -> Result<(Result<(), String>, Summary)> {
        let (resolved, mut caps) = self.prepare(id, values, google)?;
        caps.config.insert("holder".into(), holder("dame serve"));
        if let Some(landing) = resolved.variables.get("landing").filter(|l| !l.is_empty()) {
            if let Some(stale) = self.stale_holder(&LandingTarget::parse(landing)?).await? {
                caps.config.insert("stale_lease_holder".into(), stale);
            }
        }
        let warehouse = caps.config.get("warehouse").cloned().unwrap_or_default();
        if let Some(path) = warehouse.strip_prefix("duckdb") {
            let path = path.strip_prefix(':').filter(|p| !p.is_empty()).unwrap_or("./data/epc.duckdb");
            let landing = LandingTarget::parse(resolved.variables.get("landing").map(String::as_str).unwrap_or("./data"))?;
            caps.warehouse = Some(crate::duck::open(Path::new(path), &landing)?);
        }
        let (sink, rx) = LineSink::new();
        let follower = tokio::spawn(events::follow(rx, display));
        let outcome = async {
            let (mut store, instance) = self.instantiate(&resolved, &caps, Some(sink)).await?;
            let pipeline = pb::Pipeline::new(&mut store, &instance)?;
            let meta = pb::fermyon::spin_cron::cron_types::Metadata { timestamp };
            let result = pipeline.call_handle_cron_event(&mut store, meta).await.ctx("the cron handler trapped")?;
            Ok::<_, anyhow::Error>(result.map_err(|e| match e {
                pb::fermyon::spin_cron::cron_types::Error::Other(m) => m,
            }))
        }
        .await;
        let summary = follower.await.map_err(|e| anyhow!("progress display failed: {e}"))?;
        Ok((outcome?, summary))
    }

    /// The holder of the current lease, when it is a dead process here.
    pub async fn stale_holder(&self, landing: &LandingTarget) -> Result<Option<String>> {
        if let LandingTarget::Folder(dir) = landing {
            if !dir.join("state/_lease").exists() {
                return Ok(None);
            }
        }
        let (mut store, gz) = self.landing(landing).await?;
        let lease = gz
            .dame_epc_landing()
            .call_read_lease(&mut store)
            .await
            .ctx("reading the lease")?
            .map_err(|e| anyhow!("{}", crate::bindings::message(&e)))?;
        Ok(lease.map(|l| l.holder).filter(|h| is_dead_local_holder(h)))
    }

    /// Publishes the views alone (`dame apply-views`): the apply-views
    /// component with the warehouse wired as for a run.
    pub async fn apply_views(
        &self,
        warehouse: &WarehouseTarget,
        landing: &LandingTarget,
        google: &GoogleEnv,
    ) -> Result<Vec<crate::bindings::views::exports::dame::epc::views::ViewOutcome>> {
        let mut values = BTreeMap::new();
        values.insert("landing".to_string(), match landing {
            LandingTarget::Folder(p) => p.display().to_string(),
            LandingTarget::Bucket(b) => b.clone(),
        });
        match warehouse {
            WarehouseTarget::BigQuery { project, dataset, region } => {
                values.insert("warehouse".into(), "bigquery".into());
                values.insert("project".into(), project.clone());
                values.insert("dataset".into(), dataset.clone());
                values.insert("region".into(), region.clone());
            }
            WarehouseTarget::DuckDb(_) => {
                values.insert("warehouse".into(), "duckdb".into());
                values.insert("dataset".into(), crate::duck::SCHEMA.into());
            }
        }
        let (resolved, mut caps) = self.prepare(PIPELINE, &values, google)?;
        if let WarehouseTarget::DuckDb(path) = warehouse {
            caps.warehouse = Some(crate::duck::open(path, landing)?);
        }
        let (_, provider) = self
            .providers(&resolved, &caps)?
            .into_iter()
            .find(|(i, _)| i == "dame:epc/views")
            .ok_or_else(|| anyhow!("{}: component.pipeline has no dame:epc/views dependency", self.manifest.file))?;
        let Provider::Component { component, deps, .. } = provider else {
            bail!("dame:epc/views must be a component");
        };
        let (mut store, instance) = self.runtime.instantiate(&component, &deps, &caps, None).await?;
        let views = crate::bindings::views::ApplyViews::new(&mut store, &instance).ctx("binding apply-views")?;
        views
            .dame_epc_views()
            .call_apply_views(&mut store)
            .await
            .ctx("apply-views trapped")?
            .map_err(|e| anyhow!("{}", crate::bindings::message(&e)))
    }

    /// The landing step alone, for `status` and `reset`.
    pub async fn landing(&self, landing: &LandingTarget) -> Result<(Store<State>, lb::GzipLand)> {
        let mut values = BTreeMap::new();
        values.insert("landing".to_string(), match landing {
            LandingTarget::Folder(p) => p.display().to_string(),
            LandingTarget::Bucket(b) => b.clone(),
        });
        let (resolved, caps) = self.prepare(PIPELINE, &values, &GoogleEnv::from_env()?)?;
        let path = resolved
            .dependencies
            .iter()
            .find(|(i, _)| i == "dame:epc/landing")
            .map(|(_, p)| p.clone())
            .ok_or_else(|| anyhow!("{}: component.pipeline has no dame:epc/landing dependency", self.manifest.file))?;
        let component = self.runtime.load_path("gzip_land", &path)?;
        let (mut store, instance) = self.runtime.instantiate(&component, &[], &caps, None).await?;
        let bindings = lb::GzipLand::new(&mut store, &instance).ctx("binding gzip-land")?;
        Ok((store, bindings))
    }
}

pub(crate) fn job_values(job: &Job) -> BTreeMap<String, String> {
    let mut v = BTreeMap::new();
    v.insert("source".into(), job.source.as_str().into());
    v.insert("api_url".into(), job.api_url.clone());
    v.insert("kinds".into(), job.kinds.iter().map(|k| k.as_str()).collect::<Vec<_>>().join(","));
    v.insert("start_month".into(), job.range.start.to_string());
    v.insert("end_month".into(), job.range.end.to_string());
    v.insert("page_size".into(), job.page_size.to_string());
    v.insert("request_budget".into(), job.request_budget.clone());
    v.insert("landing".into(), match &job.landing {
        LandingTarget::Folder(p) => p.display().to_string(),
        LandingTarget::Bucket(b) => b.clone(),
    });
    match &job.warehouse {
        Some(WarehouseTarget::BigQuery { project, dataset, region }) => {
            v.insert("warehouse".into(), "bigquery".into());
            v.insert("project".into(), project.clone());
            v.insert("dataset".into(), dataset.clone());
            v.insert("region".into(), region.clone());
        }
        Some(WarehouseTarget::DuckDb(_)) => {
            v.insert("warehouse".into(), "duckdb".into());
            v.insert("dataset".into(), crate::duck::SCHEMA.into());
        }
        None => {}
    }
    for (k, val) in [("epc_token", &job.secrets.token), ("epc_email", &job.secrets.email), ("epc_api_key", &job.secrets.api_key)] {
        if let Some(val) = val {
            v.insert(k.into(), val.clone());
        }
    }
    for (k, name) in &job.secrets.in_secret_manager {
        v.insert(k.clone(), name.clone());
    }
    v
}

pub(crate) fn options(job: &Job) -> pb::exports::dame::epc::pipeline::Options {
    use pb::dame::epc::types as t;
    let kind = |k: Kind| match k {
        Kind::Domestic => t::Kind::Domestic,
        Kind::NonDomestic => t::Kind::NonDomestic,
        Kind::Display => t::Kind::Display,
    };
    let month = |m: epc_model::Month| t::Month { year: m.year(), month: m.month() };
    pb::exports::dame::epc::pipeline::Options {
        api: t::Api {
            source: match job.source {
                Source::Gepbd => t::Source::Gepbd,
                Source::Odc => t::Source::Odc,
            },
            base_url: job.api_url.clone(),
        },
        kinds: job.kinds.iter().copied().map(kind).collect(),
        start: month(job.range.start),
        end: month(job.range.end),
        page_size: job.page_size,
        certificates: job.certificates,
        recommendations: job.recommendations,
        load: job.warehouse.is_some(),
        views: job.warehouse.is_some(),
        budget_seconds: job.budget_seconds,
        holder: holder("dame run"),
        stale_lease_holder: None,
        recheck_months: job.recheck_months,
        today: std::env::var("DAME_TODAY").ok().filter(|d| !d.trim().is_empty()),
    }
}
