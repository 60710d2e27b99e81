//! `dame backfill`, end to end: the real binary runs the real `fetch-bulk`
//! component against the emulator's bulk files on a real socket (a 302 to a
//! short-lived URL, then the ZIP streamed) and lands into a folder or a
//! bucket. Over a multi-year sample (the real Hartlepool rows of 2021 plus
//! synthetic months in 2022 and 2023) every row lands once in its month for
//! both services; a backfilled month equals the same month fetched through
//! `dame run`; memory does not grow with the file; a truncated or corrupt
//! archive and an expired URL stop with the file named and leave finished
//! months landed, and a rerun continues; an unchanged file is not
//! downloaded again; `--replace` relands months the API landed; a CSV row
//! short of a field or a foreign column set stops with file and line named.
//! As with `dame run`, a landing folder loads into `epc.duckdb` beside it by
//! default, and the tests check the warehouse holds each row once.

mod support;

use epc_emulator::{BulkFiles, Config, Synthetic};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use support::*;

/// Synthetic months on top of the real sample: three lodgement years.
const SYNTHETIC: &str = "2022-03,2023-11";

fn emulator(per_month: u32, months: &str, lifetime_secs: u64) -> Emu {
    use epc_emulator::Kind;
    emulator_of(per_month, months, lifetime_secs, vec![Kind::Domestic, Kind::NonDomestic, Kind::Display])
}

fn emulator_of(per_month: u32, months: &str, lifetime_secs: u64, kinds: Vec<epc_emulator::Kind>) -> Emu {
    Emu::start(Config {
        data: sample_data(),
        token: Some(TOKEN.into()),
        odc_email: Some(EMAIL.into()),
        odc_api_key: Some(API_KEY.into()),
        seed: 11,
        synthetic: Some(Synthetic {
            per_month,
            months: Synthetic::months(months).unwrap(),
            kinds,
        }),
        files: Some(BulkFiles { url_lifetime: std::time::Duration::from_secs(lifetime_secs), dir: None }),
        ..Config::default()
    })
}

fn multi_year() -> Emu {
    emulator(400, SYNTHETIC, 30)
}

/// `dame backfill` against `api_url` into `landing`, with the credentials `source` needs.
fn backfill_at(api_url: &str, source: &str, kinds: &str, landing: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut c = dame();
    c.args(["backfill", "--source", source, "--api-url", api_url, "--kind", kinds, "--json-log"]).arg("--landing").arg(landing);
    match source {
        "gepbd" => c.env("EPC_TOKEN", TOKEN),
        _ => c.env("EPC_EMAIL", EMAIL).env("EPC_API_KEY", API_KEY),
    };
    c
}

fn backfill(emu: &Emu, source: &str, kinds: &str, landing: impl AsRef<std::ffi::OsStr>) -> Command {
    backfill_at(&emu.url(), source, kinds, landing)
}

/// Rows landed per month by identifier; fails on a duplicate or a row
/// outside its month's folder.
fn landed_per_month(landing: &Path, kind: &str, id: &str) -> BTreeMap<String, u64> {
    let mut seen = BTreeSet::new();
    let mut per_month: BTreeMap<String, u64> = BTreeMap::new();
    for line in landed(landing, kind) {
        let key = line[id].as_str().unwrap_or_else(|| panic!("{kind} line without {id}: {line}")).to_string();
        assert!(seen.insert(key.clone()), "{kind} {key} landed twice");
        let month = line["lodgement_date"].as_str().unwrap()[..7].to_string();
        assert!(line["landed_object"].as_str().unwrap().contains(&format!("raw/{kind}/{}/", month.replace('-', ""))), "{line}");
        *per_month.entry(month).or_default() += 1;
    }
    per_month
}

/// `dame status --json` with origins: {kind: {month: (status, rows, origin)}}.
fn status_with_origin(landing: &Path) -> BTreeMap<String, BTreeMap<String, (String, u64, String)>> {
    let out = run(dame().args(["status", "--json", "--landing"]).arg(landing));
    assert!(out.status.success(), "status failed");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut m: BTreeMap<String, BTreeMap<String, (String, u64, String)>> = BTreeMap::new();
    for row in v["months"].as_array().unwrap() {
        m.entry(row["kind"].as_str().unwrap().into()).or_default().insert(
            row["month"].as_str().unwrap().into(),
            (row["status"].as_str().unwrap().into(), row["rows"].as_u64().unwrap(), row["origin"].as_str().unwrap().into()),
        );
    }
    m
}

/// Rows per month in the default DuckDB file beside `landing`; fails on
/// an identifier loaded twice.
fn warehouse_per_month(landing: &Path, kind: &str) -> BTreeMap<String, u64> {
    let db = landing.join("epc.duckdb");
    assert!(db.exists(), "no warehouse file at {}", db.display());
    let w = duck_warehouse::DuckWarehouse::open(&db, "main", landing).unwrap();
    let table = format!("{}_raw_json", kind.replace('-', "_"));
    let rows = w
        .query(&format!(
            "SELECT strftime(lodgement_date, '%Y-%m') AS month, COUNT(*) AS n, \
             COUNT(DISTINCT coalesce(certificate_number, lmk_key)) AS ids FROM {table} GROUP BY 1"
        ))
        .unwrap();
    rows.iter()
        .map(|r| {
            let v: Value = serde_json::from_str(r).unwrap();
            assert_eq!(v["n"], v["ids"], "{kind}: a certificate loaded twice: {v}");
            (v["month"].as_str().unwrap().to_string(), v["n"].as_u64().unwrap())
        })
        .collect()
}

/// Landed lines by identifier, without what differs between two landings
/// of the same record (where and when it was landed).
fn by_id(landing: &Path, kind: &str, id: &str) -> BTreeMap<String, Value> {
    landed(landing, kind)
        .into_iter()
        .map(|mut l| {
            let obj = l.as_object_mut().unwrap();
            obj.remove("landed_object");
            obj.remove("landed_at");
            (obj[id].as_str().unwrap().to_string(), l)
        })
        .collect()
}

fn lands_every_row_once(source: &str) {
    let emu = multi_year();
    let dir = tempfile::tempdir().unwrap();
    let out = run(&mut backfill(&emu, source, "domestic,non-domestic,display", dir.path()));
    assert!(out.status.success(), "{}", text(&out));
    let expected = emu.expected();
    let id = if source == "gepbd" { "certificate_number" } else { "lmk_key" };
    let origin = if source == "gepbd" { "bulk-json" } else { "bulk-csv" };
    let status = status_with_origin(dir.path());
    for kind in ["domestic", "non-domestic", "display"] {
        let want = &expected[kind];
        let years: BTreeSet<&str> = want.keys().map(|m| &m[..4]).collect();
        assert_eq!(years.len(), 3, "{kind}: three lodgement years in the sample");
        assert_eq!(&landed_per_month(dir.path(), kind, id), want, "{source} {kind}: rows per month");
        for (month, n) in want {
            assert_eq!(status[kind][month], ("loaded".to_string(), *n, origin.to_string()), "{source} {kind} {month}");
        }
        assert_eq!(&warehouse_per_month(dir.path(), kind), want, "{source} {kind}: rows per month in the warehouse");
    }
    // The summary table has a row per month, and the human status shows the origin.
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains("backfill") && table.contains("2023-11"), "{table}");
    let human = run(dame().args(["status", "--landing"]).arg(dir.path()));
    assert!(String::from_utf8_lossy(&human.stdout).contains(origin));
}

#[test]
fn gepbd_backfill_lands_every_row_once_in_its_month() {
    lands_every_row_once("gepbd");
}

#[test]
fn odc_backfill_lands_every_row_once_in_its_month() {
    lands_every_row_once("odc");
}

#[test]
fn a_backfilled_month_equals_the_month_fetched_through_the_api() {
    let emu = multi_year();
    let (bulk, api) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    // GEPBD JSON: identical envelopes and documents.
    assert!(run(&mut backfill(&emu, "gepbd", "domestic,display", bulk.path())).status.success());
    let out = run(&mut dame_run(&emu, "gepbd", "domestic,display", "2021-02", "2021-03", api.path()));
    assert!(out.status.success(), "{}", text(&out));
    for kind in ["domestic", "display"] {
        let from_api = by_id(api.path(), kind, "certificate_number");
        let from_bulk = by_id(bulk.path(), kind, "certificate_number");
        assert!(!from_api.is_empty());
        for (number, line) in &from_api {
            assert_eq!(from_bulk.get(number), Some(line), "{kind} {number}");
        }
        let in_months = from_bulk.values().filter(|l| ["2021-02", "2021-03"].contains(&&l["lodgement_date"].as_str().unwrap()[..7])).count();
        assert_eq!(in_months, from_api.len(), "{kind}: the same certificates");
    }

    // GEPBD CSV: the same envelope; the record is the row, equal to the
    // document on the fields both carry.
    let csv = tempfile::tempdir().unwrap();
    let mut c = backfill(&emu, "gepbd", "domestic", csv.path());
    assert!(run(c.args(["--format", "csv", "--from-year", "2021", "--to-year", "2021"])).status.success());
    let from_csv = by_id(csv.path(), "domestic", "certificate_number");
    let from_api = by_id(api.path(), "domestic", "certificate_number");
    let mut compared = 0;
    for (number, api_line) in &from_api {
        let row = &from_csv[number];
        for field in ["source", "kind", "certificate_number", "lmk_key", "lodgement_date", "uprn", "postcode"] {
            assert_eq!(row[field], api_line[field], "{number} {field}");
        }
        for (key, value) in row["record"].as_object().unwrap() {
            let Some(doc) = api_line["record"].get(key) else { continue };
            let as_text = match doc {
                Value::String(s) => s.clone(),
                Value::Null => String::new(),
                other => other.to_string(),
            };
            let same = value.as_str() == Some(as_text.as_str())
                || value.as_str().and_then(|v| v.parse::<f64>().ok()).zip(as_text.parse::<f64>().ok()).is_some_and(|(a, b)| a == b);
            if doc.is_object() || doc.is_array() {
                continue;
            }
            assert!(same, "{number} {key}: csv {value} vs api {doc}");
            compared += 1;
        }
    }
    assert!(compared > from_api.len() * 10, "only {compared} fields compared");

    // ODC: the row as the ODC API returns it.
    let (odc_bulk, odc_api) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    assert!(run(&mut backfill(&emu, "odc", "domestic", odc_bulk.path())).status.success());
    assert!(run(&mut dame_run(&emu, "odc", "domestic", "2021-03", "2021-03", odc_api.path())).status.success());
    let from_api = by_id(odc_api.path(), "domestic", "lmk_key");
    let from_bulk = by_id(odc_bulk.path(), "domestic", "lmk_key");
    assert_eq!(from_api.len() as u64, emu.expected()["domestic"]["2021-03"]);
    for (key, line) in &from_api {
        assert_eq!(from_bulk.get(key), Some(line), "ODC {key}");
    }
}

/// Runs `cmd` and returns its output with its peak resident memory (KiB),
/// from the kernel's own accounting of that child (`wait4`).
fn run_measured(cmd: &mut Command) -> (std::process::Output, u64) {
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("dame starts");
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out_t = std::thread::spawn(move || {
        let mut b = Vec::new();
        stdout.read_to_end(&mut b).unwrap();
        b
    });
    let err_t = std::thread::spawn(move || {
        let mut b = Vec::new();
        stderr.read_to_end(&mut b).unwrap();
        b
    });
    let mut status = 0;
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = child.id() as libc::pid_t;
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(r, pid, "wait4");
    use std::os::unix::process::ExitStatusExt;
    let out = std::process::Output {
        status: std::process::ExitStatus::from_raw(status),
        stdout: out_t.join().unwrap(),
        stderr: err_t.join().unwrap(),
    };
    (out, usage.ru_maxrss as u64)
}

#[test]
fn memory_stays_flat_while_a_large_file_streams() {
    // The same command over a small archive and one forty times larger.
    let domestic = || vec![epc_emulator::Kind::Domestic];
    let small = emulator_of(100, "2022-03", 30, domestic());
    let large = emulator_of(20_000, "2022-01..2022-03", 30, domestic());
    let mut results = Vec::new();
    for (emu, name) in [(&small, "small"), (&small, "small"), (&large, "large")] {
        let dir = tempfile::tempdir().unwrap();
        let started = std::time::Instant::now();
        // The backfill alone: a load afterwards is DuckDB's memory, not the stream's.
        let (out, peak_kib) = run_measured(backfill(emu, "gepbd", "domestic", dir.path()).args(["--warehouse", "none"]));
        assert!(out.status.success(), "{}", text(&out));
        let done = String::from_utf8_lossy(&out.stderr)
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|v| v["event"] == "backfill-done")
            .expect("a backfill-done line");
        let (rows, bytes) = (done["rows"].as_u64().unwrap(), done["bytes"].as_u64().unwrap());
        eprintln!(
            "{name}: {rows} rows, {:.1} MB of ZIP, peak RSS {:.1} MiB, {:.1} s ({} rows/s, {} MB/s in the component)",
            bytes as f64 / 1e6,
            peak_kib as f64 / 1024.0,
            started.elapsed().as_secs_f64(),
            done["rows_per_second"],
            done["mb_per_second"]
        );
        results.push((rows, bytes, peak_kib));
    }
    // The first run compiles the component into the cache; compare the
    // second (small, cached) with the large one.
    let (small_rows, small_bytes, small_peak) = results[1];
    let (large_rows, large_bytes, large_peak) = results[2];
    assert!(large_rows > small_rows * 30 && large_bytes > small_bytes * 30, "{results:?}");
    let growth_mib = large_peak.saturating_sub(small_peak) as f64 / 1024.0;
    assert!(
        growth_mib < 48.0,
        "peak RSS grew by {growth_mib:.1} MiB for an archive {:.0} MB larger ({results:?})",
        (large_bytes - small_bytes) as f64 / 1e6
    );
}

/// A stand-in for the service's file routes that serves a given archive
/// (cut or damaged) under the emulator's `…/info`: a 302 from
/// `/api/files/{kind}/json` to `/_files/…?X-Amz-Signature=…`.
struct FileServer {
    url: String,
    bytes: Arc<Mutex<Vec<u8>>>,
}

impl FileServer {
    fn start(info: String, bytes: Vec<u8>) -> FileServer {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let shared = Arc::new(Mutex::new(bytes));
        let served = shared.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                let _ = reader.read_line(&mut line);
                let mut host = String::new();
                loop {
                    let mut h = String::new();
                    if reader.read_line(&mut h).is_err() || h.trim().is_empty() {
                        break;
                    }
                    if let Some(v) = h.strip_prefix("host: ").or_else(|| h.strip_prefix("Host: ")) {
                        host = v.trim().to_string();
                    }
                }
                let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
                let (head, body): (String, Vec<u8>) = if path.ends_with("/info") {
                    ("200 OK\r\nContent-Type: application/json".into(), info.clone().into_bytes())
                } else if path.starts_with("/api/files/") {
                    (format!("302 Found\r\nLocation: http://{host}/_files/archive.zip?X-Amz-Signature=abc"), Vec::new())
                } else if path.starts_with("/_files/") {
                    ("200 OK\r\nContent-Type: application/zip".into(), served.lock().unwrap().clone())
                } else {
                    ("404 Not Found".into(), Vec::new())
                };
                let _ = write!(stream, "HTTP/1.1 {head}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len());
                let _ = stream.write_all(&body);
            }
        });
        FileServer { url, bytes: shared }
    }
}

/// The emulator's archive of a kind and its `…/info`, fetched as a client would.
fn archive(emu: &Emu, kind: &str) -> (String, Vec<u8>) {
    archive_of(emu, kind, "json")
}

fn archive_of(emu: &Emu, kind: &str, format: &str) -> (String, Vec<u8>) {
    let agent = ureq::Agent::config_builder().http_status_as_error(false).max_redirects(0).build().new_agent();
    let auth = format!("Bearer {TOKEN}");
    let info = agent.get(&format!("{}/api/files/{kind}/{format}/info", emu.url())).header("Authorization", &auth).call().unwrap();
    let info = info.into_body().read_to_string().unwrap();
    let redirect = agent.get(&format!("{}/api/files/{kind}/{format}", emu.url())).header("Authorization", &auth).call().unwrap();
    let location = redirect.headers()["location"].to_str().unwrap().to_string();
    let zip = agent.get(&location).call().unwrap().into_body().with_config().limit(1 << 30).read_to_vec().unwrap();
    (info, zip)
}

#[test]
fn a_truncated_or_corrupt_archive_names_the_file_keeps_finished_months_and_a_rerun_continues() {
    let emu = multi_year();
    let (info, zip) = archive(&emu, "domestic");
    let expected = emu.expected()["domestic"].clone();
    let dir = tempfile::tempdir().unwrap();
    // Three quarters in: the 2021 file is complete, the 2022 one is not.
    let server = FileServer::start(info, zip[..zip.len() * 3 / 4].to_vec());
    let out = run(&mut backfill_at(&server.url, "gepbd", "domestic", dir.path()));
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let said = text(&out);
    assert!(said.contains("domestic-json.zip: truncated"), "{said}");
    assert!(said.contains("run the same command again"), "{said}");
    let status = status_with_origin(dir.path());
    for (month, n) in expected.iter().filter(|(m, _)| m.starts_with("2021")) {
        assert_eq!(status["domestic"][month], ("landed".to_string(), *n, "bulk-json".to_string()), "{month}");
    }
    let (st, partial, _) = &status["domestic"]["2022-03"];
    assert_eq!(st, "failed", "the month being landed is marked failed");
    assert!(*partial > 0 && *partial < expected["2022-03"], "some of its parts stay: {partial}");
    assert!(!status["domestic"].contains_key("2023-11"));

    // A damaged archive: the CRC or the deflate data says so, naming the entry.
    let mut damaged = zip.clone();
    let at = zip.len() * 9 / 10;
    for b in &mut damaged[at..at + 256] {
        *b ^= 0x5a;
    }
    *server.bytes.lock().unwrap() = damaged;
    let out = run(&mut backfill_at(&server.url, "gepbd", "domestic", dir.path()));
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("domestic-json.zip: corrupt") && text(&out).contains("domestic-2023.json"), "{}", text(&out));
    // The damage is in the 2023 file: the partial month of 2022 was resumed and finished first.
    assert!(String::from_utf8_lossy(&out.stderr).contains("resumed after 250 rows"), "{}", text(&out));
    assert_eq!(status_with_origin(dir.path())["domestic"]["2022-03"].0, "landed");

    // The whole file: the rerun continues the partial month and lands the rest, each row once.
    *server.bytes.lock().unwrap() = zip;
    let out = run(&mut backfill_at(&server.url, "gepbd", "domestic", dir.path()));
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(landed_per_month(dir.path(), "domestic", "certificate_number"), expected);
    let status = status_with_origin(dir.path());
    // The months landed by the runs that stopped are loaded too.
    assert!(expected.iter().all(|(m, n)| status["domestic"][m] == ("loaded".to_string(), *n, "bulk-json".to_string())), "{status:?}");
    assert_eq!(warehouse_per_month(dir.path(), "domestic"), expected);
}

#[test]
fn an_expired_url_is_a_clear_error_and_nothing_is_half_landed() {
    let emu = emulator(50, "2022-03", 0);
    let dir = tempfile::tempdir().unwrap();
    let out = run(&mut backfill(&emu, "gepbd", "display", dir.path()));
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let said = text(&out);
    assert!(said.contains("display-json.zip: the download URL expired") && said.contains("Request has expired"), "{said}");
    assert!(!said.contains("X-Amz-Signature="), "signatures stay out of messages");
    assert!(files(dir.path()).iter().all(|f| f.starts_with("state/_lease/")), "{:?}", files(dir.path()));
}

#[test]
fn an_unchanged_file_is_not_downloaded_again() {
    let emu = multi_year();
    let dir = tempfile::tempdir().unwrap();
    assert!(run(&mut backfill(&emu, "gepbd", "display", dir.path())).status.success());
    let downloads = || -> u64 {
        emu.emulator().stats().routes.iter().filter(|(r, _)| r.contains("_files")).map(|(_, s)| s.values().sum::<u64>()).sum()
    };
    let snapshot = |d: &Path| -> Vec<(String, Vec<u8>)> {
        // The landing data and state; the warehouse file beside them is
        // DuckDB's to rewrite.
        files(d).into_iter().filter(|f| (f.starts_with("raw/") || f.starts_with("state/")) && !f.starts_with("state/_lease/")).map(|f| (f.clone(), std::fs::read(d.join(&f)).unwrap())).collect()
    };
    let (before, requests) = (snapshot(dir.path()), emu.requests());
    let downloads_before = downloads();
    let out = run(&mut backfill(&emu, "gepbd", "display", dir.path()));
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("nothing downloaded"), "{}", text(&out));
    assert_eq!(snapshot(dir.path()), before, "the landing folder changed");
    assert_eq!(emu.requests() - requests, 1, "only …/info was asked");
    assert_eq!(downloads(), downloads_before);
    // A month reset since is landed again: the file is read once more.
    assert!(run(dame().args(["reset", "--kind", "display", "--month", "2022-03", "--landing"]).arg(dir.path())).status.success());
    let out = run(&mut backfill(&emu, "gepbd", "display", dir.path()));
    assert!(out.status.success());
    assert_eq!(status_with_origin(dir.path())["display"]["2022-03"].0, "loaded");
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 month(s) landed"), "{}", text(&out));
}

#[test]
fn api_months_are_left_alone_unless_replace() {
    let emu = multi_year();
    let dir = tempfile::tempdir().unwrap();
    assert!(run(&mut dame_run(&emu, "gepbd", "domestic", "2021-02", "2021-03", dir.path())).status.success());
    let api_lines = by_id(dir.path(), "domestic", "certificate_number");
    let out = run(&mut backfill(&emu, "gepbd", "domestic", dir.path()));
    assert!(out.status.success(), "{}", text(&out));
    let status = status_with_origin(dir.path());
    assert_eq!(status["domestic"]["2021-02"].2, "api");
    assert_eq!(status["domestic"]["2021-01"].2, "bulk-json");
    assert!(String::from_utf8_lossy(&out.stderr).contains("left alone"));
    let expected = emu.expected()["domestic"].clone();
    assert_eq!(landed_per_month(dir.path(), "domestic", "certificate_number"), expected);

    let mut c = backfill(&emu, "gepbd", "domestic", dir.path());
    let out = run(c.args(["--replace", "--from-year", "2021", "--to-year", "2021"]));
    assert!(out.status.success(), "{}", text(&out));
    let status = status_with_origin(dir.path());
    for m in ["2021-02", "2021-03"] {
        assert_eq!(status["domestic"][m], ("loaded".to_string(), expected[m], "bulk-json".to_string()), "{m}");
    }
    assert!(String::from_utf8_lossy(&out.stdout).contains("0 month(s) landed, 8 replaced"), "{}", text(&out));
    assert_eq!(landed_per_month(dir.path(), "domestic", "certificate_number"), expected);
    // Relanded months replace their rows in the warehouse, not add to them.
    assert_eq!(warehouse_per_month(dir.path(), "domestic"), expected);
    // The relanded records are the very records the API landed.
    let relanded = by_id(dir.path(), "domestic", "certificate_number");
    for (number, line) in &api_lines {
        assert_eq!(relanded.get(number), Some(line), "{number}");
    }
}

#[test]
fn bad_flags_stop_before_anything_runs() {
    let emu = multi_year();
    let dir = tempfile::tempdir().unwrap();
    let landing = dir.path().join("data");
    for (args, needle) in [
        (vec!["--from-year", "2007"], "--from-year 2007 is out of range"),
        (vec!["--from-year", "2023", "--to-year", "2022"], "after --to-year"),
        (vec!["--format", "xml"], "--format 'xml'"),
        (vec!["--kind", "commercial"], "unknown kind 'commercial'"),
        (vec!["--source", "odc", "--format", "json"], "ODC bulk files are CSV only"),
        (vec!["--warehouse", "bigquery:test-project.epc"], "land in a bucket"),
    ] {
        let mut c = dame();
        c.args(["backfill", "--api-url", &emu.url()]).args(&args).arg("--landing").arg(&landing);
        c.env("EPC_TOKEN", TOKEN).env("EPC_EMAIL", EMAIL).env("EPC_API_KEY", API_KEY);
        let out = run(&mut c);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(text(&out).contains(needle), "{needle}: {}", text(&out));
    }
    let mut c = backfill(&emu, "gepbd", "domestic", &landing);
    let out = run(c.env_remove("EPC_TOKEN"));
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("EPC_TOKEN"));
    assert!(!landing.exists(), "nothing was written");
    assert_eq!(emu.requests(), 0, "no request was sent");
}

#[test]
fn backfilled_months_load_into_the_warehouse() {
    use test_services::{PROJECT, Services, Which};
    let s = Services::start(Which::GcsAndBigQuery).expect("the cloud stand-ins start (scripts/services install)");
    s.create_bucket("dame-backfill-test").unwrap();
    let emu = multi_year();
    let mut c = backfill(&emu, "gepbd", "display", "gs://dame-backfill-test/bf");
    c.args(["--warehouse", &format!("bigquery:{PROJECT}.epc_backfill")]);
    c.env("STORAGE_EMULATOR_HOST", &s.gcs_url).env("BIGQUERY_EMULATOR_HOST", &s.bq_url);
    let out = run(&mut c);
    assert!(out.status.success(), "{}", text(&out));
    let mut st = dame();
    st.args(["status", "--json", "--landing", "gs://dame-backfill-test/bf"]).env("STORAGE_EMULATOR_HOST", &s.gcs_url);
    let st = run(&mut st);
    let v: Value = serde_json::from_slice(&st.stdout).unwrap();
    let expected = emu.expected()["display"].clone();
    let months: BTreeMap<String, (String, u64, String)> = v["months"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (r["month"].as_str().unwrap().into(), (r["status"].as_str().unwrap().into(), r["rows"].as_u64().unwrap(), r["origin"].as_str().unwrap().into()))
        })
        .collect();
    for (m, n) in &expected {
        assert_eq!(months[m], ("loaded".to_string(), *n, "bulk-json".to_string()), "{m}");
    }
    let url = format!("{}/bigquery/v2/projects/{PROJECT}/queries", s.bq_url);
    let body = serde_json::json!({"query": "SELECT COUNT(*), COUNT(DISTINCT certificate_number) FROM epc_backfill.display_raw_json", "useLegacySql": false});
    let text = ureq::post(&url).header("Content-Type", "application/json").send(body.to_string()).unwrap().into_body().read_to_string().unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    let total: u64 = expected.values().sum();
    assert_eq!(v["rows"][0]["f"][0]["v"].as_str().unwrap().parse::<u64>().unwrap(), total);
    assert_eq!(v["rows"][0]["f"][1]["v"].as_str().unwrap().parse::<u64>().unwrap(), total);
}

/// A ZIP's entries, in order.
fn entries(zip: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut a = zip::ZipArchive::new(std::io::Cursor::new(zip)).unwrap();
    (0..a.len())
        .map(|i| {
            let mut e = a.by_index(i).unwrap();
            let mut data = Vec::new();
            e.read_to_end(&mut data).unwrap();
            (e.name().to_string(), data)
        })
        .collect()
}

fn rezip(entries: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let o = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    for (name, data) in entries {
        w.start_file(name.as_str(), o).unwrap();
        w.write_all(data).unwrap();
    }
    w.finish().unwrap().into_inner()
}

/// A CSV file rewritten with `change` applied to each record (0 is the
/// header); returns it and the line each record starts on.
fn rewrite_csv(text: &[u8], change: impl Fn(usize, Vec<String>) -> Vec<String>) -> (Vec<u8>, Vec<u64>) {
    let mut r = csv::ReaderBuilder::new().has_headers(false).from_reader(text);
    let mut w = csv::WriterBuilder::new().flexible(true).from_writer(Vec::new());
    let mut lines = Vec::new();
    for (i, rec) in r.records().enumerate() {
        let rec: Vec<String> = rec.unwrap().iter().map(String::from).collect();
        w.flush().unwrap();
        lines.push(w.get_ref().iter().filter(|&&b| b == b'\n').count() as u64 + 1);
        w.write_record(change(i, rec)).unwrap();
    }
    (w.into_inner().unwrap(), lines)
}

#[test]
fn a_short_row_or_a_foreign_header_names_file_and_line_keeps_finished_months_and_a_rerun_continues() {
    let emu = multi_year();
    let (info, zip) = archive_of(&emu, "domestic", "csv");
    let expected = emu.expected()["domestic"].clone();
    let original = entries(&zip);
    let names: Vec<&str> = original.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["domestic-2021.csv", "domestic-2022.csv", "domestic-2023.csv"]);
    let dir = tempfile::tempdir().unwrap();
    let backfill_csv = |url: &str| {
        let mut c = backfill_at(url, "gepbd", "domestic", dir.path());
        c.args(["--format", "csv"]);
        c
    };

    // Record 300 of the 2022 file loses its last field.
    let (short, lines) = rewrite_csv(&original[1].1, |i, mut rec| {
        if i == 300 {
            rec.pop();
        }
        rec
    });
    let mut damaged = original.clone();
    damaged[1].1 = short;
    let server = FileServer::start(info, rezip(&damaged));
    let out = run(&mut backfill_csv(&server.url));
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let said = text(&out);
    let at = format!("domestic-csv.zip: domestic-2022.csv line {}", lines[300]);
    assert!(said.contains(&at) && said.contains("fields where the header has"), "{at}: {said}");
    let status = status_with_origin(dir.path());
    for (month, n) in expected.iter().filter(|(m, _)| m.starts_with("2021")) {
        assert_eq!(status["domestic"][month], ("landed".to_string(), *n, "bulk-csv".to_string()), "{month}");
    }
    assert_eq!(status["domestic"]["2022-03"].0, "failed", "the month the bad row is in is not complete");
    assert!(status["domestic"]["2022-03"].1 < expected["2022-03"]);
    assert!(!status["domestic"].contains_key("2023-11"));

    // The 2022 file is whole again; the 2023 one has a header no bulk file has.
    let (foreign, _) = rewrite_csv(&original[2].1, |i, rec| {
        if i == 0 { rec.into_iter().map(|c| if c == "certificate_number" { "certificate_id".to_string() } else { c }).collect() } else { rec }
    });
    let mut damaged = original.clone();
    damaged[2].1 = foreign;
    *server.bytes.lock().unwrap() = rezip(&damaged);
    let out = run(&mut backfill_csv(&server.url));
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let said = text(&out);
    assert!(said.contains("domestic-csv.zip: domestic-2023.csv") && said.contains("unknown column set: no certificate_number column"), "{said}");
    let status = status_with_origin(dir.path());
    assert_eq!(status["domestic"]["2022-03"], ("landed".to_string(), expected["2022-03"], "bulk-csv".to_string()));
    assert!(!status["domestic"].contains_key("2023-11"));

    // The file as served: the rerun lands the rest, each row once, and loads every month.
    *server.bytes.lock().unwrap() = zip;
    let out = run(&mut backfill_csv(&server.url));
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(landed_per_month(dir.path(), "domestic", "certificate_number"), expected);
    let status = status_with_origin(dir.path());
    assert!(expected.iter().all(|(m, n)| status["domestic"][m] == ("loaded".to_string(), *n, "bulk-csv".to_string())), "{status:?}");
    assert_eq!(warehouse_per_month(dir.path(), "domestic"), expected);
}
