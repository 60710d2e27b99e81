//! The application as the manifest describes it, run by this host: the
//! `pipeline` component with its step components as dependencies, given
//! the settings of a command.

use crate::bindings::{landing as lb, pipeline as pb};
use crate::events::{self, Display, LineSink, Summary};
use crate::manifest::{Manifest, Resolved};
use crate::outbound::AllowList;
use crate::runtime::{Capabilities, Runtime, State, WasmtimeContext, component_bytes};
use anyhow::{Context, Result, anyhow, bail};
use epc_model::{Kind, MonthRange, Source};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
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

/// EPC API credentials from the environment. `Debug` shows no values.
#[derive(Clone, Default)]
pub struct Secrets {
    pub token: Option<String>,
    pub email: Option<String>,
    pub api_key: Option<String>,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secrets { <redacted> }")
    }
}

impl Secrets {
    pub fn from_env() -> Self {
        let get = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        Self { token: get("EPC_TOKEN"), email: get("EPC_EMAIL"), api_key: get("EPC_API_KEY") }
    }

    /// Says which variable is missing for `source`, before anything runs.
    pub fn check(&self, source: Source) -> Result<()> {
        match source {
            Source::Gepbd if self.token.is_none() => bail!(
                "no GEPBD token: set EPC_TOKEN (from your account on the get-energy-performance-data service), \
                 or run `dame demo` to try without one"
            ),
            Source::Odc if self.email.is_none() || self.api_key.is_none() => {
                bail!("no ODC credentials: set both EPC_EMAIL and EPC_API_KEY")
            }
            _ => Ok(()),
        }
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
    pub page_size: u32,
    pub secrets: Secrets,
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
    pub fn prepare(&self, id: &str, values: &BTreeMap<String, String>) -> Result<(Resolved, Capabilities)> {
        let resolved = self.manifest.resolve(id, values)?;
        let mut caps = Capabilities {
            config: resolved.variables.clone(),
            allowed_hosts: AllowList::parse(&resolved.allowed_outbound_hosts)
                .with_context(|| format!("{}: component.{id}.allowed_outbound_hosts", self.manifest.file))?,
            preopens: Vec::new(),
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

    async fn instantiate(
        &self,
        resolved: &Resolved,
        caps: &Capabilities,
        stderr: Option<LineSink>,
    ) -> Result<(Store<State>, wasmtime::component::Instance)> {
        let name = |p: &Path| p.file_stem().and_then(|s| s.to_str()).unwrap_or("component").to_string();
        let root = self.runtime.load(&name(&resolved.source), &component_bytes(&resolved.source)?)?;
        let mut deps = Vec::new();
        for (interface, path) in &resolved.dependencies {
            deps.push((interface.clone(), self.runtime.load(&name(path), &component_bytes(path)?)?));
        }
        self.runtime
            .instantiate(&root, &deps, caps, stderr.map(|s| Box::new(s) as Box<dyn wasmtime_wasi::cli::StdoutStream>))
            .await
            .with_context(|| format!("starting component {}", resolved.id))
    }

    /// Runs the job through `pipeline.run`, following its log lines.
    pub async fn run(&self, job: &Job, display: Display) -> Result<(Result<pb::exports::dame::epc::pipeline::Report, String>, Summary)> {
        let values = job_values(job);
        let (resolved, caps) = self.prepare(PIPELINE, &values)?;
        let (sink, rx) = LineSink::new();
        let follower = tokio::spawn(events::follow(rx, display));
        let outcome = async {
            let (mut store, instance) = self.instantiate(&resolved, &caps, Some(sink)).await?;
            let pipeline = pb::Pipeline::new(&mut store, &instance)?;
            let options = options(job);
            let result = pipeline.dame_epc_pipeline().call_run(&mut store, &options).await.ctx("the pipeline trapped")?;
            Ok::<_, anyhow::Error>(result.map_err(|e| crate::bindings::message(&e).to_string()))
        }
        .await;
        // The store (and with it the log stream) is gone; the follower ends.
        let summary = follower.await.map_err(|e| anyhow!("progress display failed: {e}"))?;
        Ok((outcome?, summary))
    }

    /// Runs the cron entry point once, as Spin's trigger would.
    pub async fn tick(&self, id: &str, values: &BTreeMap<String, String>, timestamp: u64, display: Display) -> Result<(Result<(), String>, Summary)> {
        let (resolved, caps) = self.prepare(id, values)?;
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

    /// The landing step alone, for `status` and `reset`.
    pub async fn landing(&self, landing: &LandingTarget) -> Result<(Store<State>, lb::GzipLand)> {
        let mut values = BTreeMap::new();
        values.insert("landing".to_string(), match landing {
            LandingTarget::Folder(p) => p.display().to_string(),
            LandingTarget::Bucket(b) => b.clone(),
        });
        let (resolved, caps) = self.prepare(PIPELINE, &values)?;
        let path = resolved
            .dependencies
            .iter()
            .find(|(i, _)| i == "dame:epc/landing")
            .map(|(_, p)| p.clone())
            .ok_or_else(|| anyhow!("{}: component.pipeline has no dame:epc/landing dependency", self.manifest.file))?;
        let component = self.runtime.load("gzip_land", &component_bytes(&path)?)?;
        let (mut store, instance) = self.runtime.instantiate(&component, &[], &caps, None).await?;
        let bindings = lb::GzipLand::new(&mut store, &instance)?;
        Ok((store, bindings))
    }
}

fn job_values(job: &Job) -> BTreeMap<String, String> {
    let mut v = BTreeMap::new();
    v.insert("source".into(), job.source.as_str().into());
    v.insert("api_url".into(), job.api_url.clone());
    v.insert("kinds".into(), job.kinds.iter().map(|k| k.as_str()).collect::<Vec<_>>().join(","));
    v.insert("start_month".into(), job.range.start.to_string());
    v.insert("end_month".into(), job.range.end.to_string());
    v.insert("page_size".into(), job.page_size.to_string());
    v.insert("landing".into(), match &job.landing {
        LandingTarget::Folder(p) => p.display().to_string(),
        LandingTarget::Bucket(b) => b.clone(),
    });
    for (k, val) in [("epc_token", &job.secrets.token), ("epc_email", &job.secrets.email), ("epc_api_key", &job.secrets.api_key)] {
        if let Some(val) = val {
            v.insert(k.into(), val.clone());
        }
    }
    v
}

fn options(job: &Job) -> pb::exports::dame::epc::pipeline::Options {
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
        certificates: true,
        recommendations: false,
        load: false,
        views: false,
    }
}
