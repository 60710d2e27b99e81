//! What the end-to-end tests share: the EPC emulator on a real socket, the
//! real `dame` binary, and readers for what it landed.

#![allow(dead_code)]

use epc_emulator::{Config, DataFile, Emulator, Running};
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub const TOKEN: &str = "test-token-7f3a9c";
pub const EMAIL: &str = "tester@example.org";
pub const API_KEY: &str = "test-api-key-91b2";
/// The emulator enforces no rate limit unless a test asks it to.
pub const UNLIMITED: &str = "100000/1s";

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/odc").join(name)
}

/// The three sample files: real domestic rows, synthetic others.
pub fn sample_data() -> Vec<DataFile> {
    ["domestic-E06000001-2021-01-to-08.csv", "non-domestic-synthetic.csv", "display-synthetic.csv"]
        .iter()
        .map(|f| DataFile::Path(fixture(f)))
        .collect()
}

/// The emulator, serving on 127.0.0.1 from its own runtime.
pub struct Emu {
    pub running: Option<Running>,
    runtime: tokio::runtime::Runtime,
}

impl Emu {
    pub fn start(config: Config) -> Emu {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let emulator = Emulator::load(config).expect("emulator loads the fixtures");
        let running = runtime.block_on(emulator.start(([127, 0, 0, 1], 0).into())).unwrap();
        Emu { running: Some(running), runtime }
    }

    pub fn samples() -> Emu {
        Emu::start(Config {
            data: sample_data(),
            token: Some(TOKEN.into()),
            odc_email: Some(EMAIL.into()),
            odc_api_key: Some(API_KEY.into()),
            seed: 7,
            ..Config::default()
        })
    }

    pub fn url(&self) -> String {
        self.running.as_ref().unwrap().url()
    }

    pub fn emulator(&self) -> &Emulator {
        self.running.as_ref().unwrap().emulator()
    }

    /// What the data holds per kind and month: {kind: {YYYY-MM: n}}.
    pub fn expected(&self) -> BTreeMap<String, BTreeMap<String, u64>> {
        let v = serde_json::to_value(self.emulator().expected()).unwrap();
        let mut out = BTreeMap::new();
        for (kind, counts) in v["kinds"].as_object().unwrap() {
            let months = counts["months"].as_object().unwrap().iter().map(|(m, n)| (m.clone(), n.as_u64().unwrap())).collect();
            out.insert(kind.clone(), months);
        }
        out
    }

    pub fn requests(&self) -> u64 {
        self.emulator().stats().total
    }
}

impl Drop for Emu {
    fn drop(&mut self) {
        if let Some(r) = self.running.take() {
            let _ = self.runtime.block_on(r.shutdown());
        }
    }
}

/// The real binary, with a compile cache shared by the tests and no
/// credentials from the outer environment.
pub fn dame() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_dame"));
    let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("dame-cache");
    c.env("DAME_CACHE_DIR", cache);
    for var in ["EPC_TOKEN", "EPC_EMAIL", "EPC_API_KEY", "STORAGE_EMULATOR_HOST", "BIGQUERY_EMULATOR_HOST"] {
        c.env_remove(var);
    }
    c
}

pub fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("dame runs");
    eprintln!("--- {:?}\n{}{}", cmd.get_args().collect::<Vec<_>>(), String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    out
}

pub fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// `dame run` with the given source, against the emulator, into `landing`.
pub fn dame_run(emu: &Emu, source: &str, kinds: &str, start: &str, end: &str, landing: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut c = dame();
    c.args(["run", "--source", source, "--api-url", &emu.url(), "--kind", kinds, "--start-month", start, "--end-month", end])
        .args(["--request-budget", UNLIMITED])
        .arg("--landing")
        .arg(landing);
    match source {
        "gepbd" => c.env("EPC_TOKEN", TOKEN),
        _ => c.env("EPC_EMAIL", EMAIL).env("EPC_API_KEY", API_KEY),
    };
    c
}

/// `dame status --json`, as {kind: {YYYY-MM: (status, rows, parts)}}.
pub fn status(landing: &Path) -> BTreeMap<String, BTreeMap<String, (String, u64, u64)>> {
    let out = run(dame().args(["status", "--json", "--landing"]).arg(landing));
    assert!(out.status.success(), "status failed");
    let v: Value = serde_json::from_slice(&out.stdout).expect("status --json prints JSON");
    let mut m: BTreeMap<String, BTreeMap<String, (String, u64, u64)>> = BTreeMap::new();
    for row in v["months"].as_array().unwrap() {
        m.entry(row["kind"].as_str().unwrap().into()).or_default().insert(
            row["month"].as_str().unwrap().into(),
            (row["status"].as_str().unwrap().into(), row["rows"].as_u64().unwrap(), row["parts"].as_u64().unwrap()),
        );
    }
    m
}

/// Every file under `dir`, relative, sorted.
pub fn files(dir: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                out.push(p.strip_prefix(root).unwrap().to_string_lossy().into_owned());
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// Every landed line of a kind, parsed.
pub fn landed(landing: &Path, kind: &str) -> Vec<Value> {
    let mut lines = Vec::new();
    for f in files(landing) {
        if f.starts_with(&format!("raw/{kind}/")) && f.ends_with(".ndjson.gz") {
            let mut text = String::new();
            flate2::read::GzDecoder::new(std::fs::File::open(landing.join(&f)).unwrap()).read_to_string(&mut text).unwrap();
            lines.extend(text.lines().map(|l| serde_json::from_str::<Value>(l).expect("each line is JSON")));
        }
    }
    lines
}

/// A one-route HTTP stand-in on a free loopback port: answers every
/// request with `body` when the path is `path`, 404 otherwise, and counts
/// requests. Enough for APIs with no emulator of their own (Secret Manager).
pub struct StandIn {
    pub url: String,
    pub hits: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl StandIn {
    pub fn start(path: &str, body: &str) -> StandIn {
        use std::io::{BufRead, BufReader, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (path, body, counter) = (path.to_string(), body.to_string(), hits.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                let _ = reader.read_line(&mut line);
                loop {
                    let mut h = String::new();
                    if reader.read_line(&mut h).is_err() || h.trim().is_empty() {
                        break;
                    }
                }
                let requested = line.split_whitespace().nth(1).unwrap_or("");
                let (status, text) = if requested == path { ("200 OK", body.as_str()) } else { ("404 Not Found", "{}") };
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
                    text.len()
                );
            }
        });
        StandIn { url, hits }
    }
}

/// Runs a query on the BigQuery stand-in; rows as lists of strings.
pub fn bq_query(s: &test_services::Services, sql: &str) -> Vec<Vec<String>> {
    let url = format!("{}/bigquery/v2/projects/{}/queries", s.bq_url, test_services::PROJECT);
    let body = serde_json::json!({"query": sql, "useLegacySql": false}).to_string();
    let text = ureq::post(&url).header("Content-Type", "application/json").send(body).unwrap().into_body().read_to_string().unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    v["rows"]
        .as_array()
        .map(|rows| {
            rows.iter()
                .map(|r| r["f"].as_array().unwrap().iter().map(|c| c["v"].as_str().unwrap_or("").to_string()).collect())
                .collect()
        })
        .unwrap_or_default()
}
