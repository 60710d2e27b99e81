//! The backbone, end to end: the real `dame` binary runs the real
//! components against the EPC emulator on a real socket and lands into a
//! folder. Every row of a multi-month sample lands exactly once, for both
//! APIs and all three kinds; empty months are marked; a killed run resumes;
//! a reset month is fetched again; bad input stops before writing anything.

mod support;

use epc_emulator::Config;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};
use support::*;

const KINDS: [&str; 3] = ["domestic", "non-domestic", "display"];
const ALL: &str = "domestic,non-domestic,display";

/// Rows landed per month, by the identifier of `source`; fails on a
/// duplicate or a row in the wrong month's folder.
fn landed_per_month(landing: &Path, kind: &str, source: &str) -> BTreeMap<String, u64> {
    let id = if source == "gepbd" { "certificate_number" } else { "lmk_key" };
    let mut seen = BTreeSet::new();
    let mut per_month: BTreeMap<String, u64> = BTreeMap::new();
    for line in landed(landing, kind) {
        let key = line[id].as_str().unwrap_or_else(|| panic!("{kind} line without {id}: {line}")).to_string();
        assert!(seen.insert(key.clone()), "{kind} {key} landed twice");
        assert_eq!(line["source"], source);
        let month = line["lodgement_date"].as_str().unwrap()[..7].to_string();
        let folder = month.replace('-', "");
        assert!(line["landed_object"].as_str().unwrap().contains(&format!("raw/{kind}/{folder}/")), "{line}");
        assert!(line["record"].is_object(), "the record is the API's whole document");
        *per_month.entry(month).or_default() += 1;
    }
    per_month
}

/// The whole sample lands once, month by month, and `dame status --json`
/// agrees with the data and with what landed.
fn lands_every_row_once(source: &str) {
    let emu = Emu::samples();
    let dir = tempfile::tempdir().unwrap();
    let out = run(&mut dame_run(&emu, source, ALL, "2021-01", "2021-08", dir.path()));
    assert!(out.status.success(), "{}", text(&out));
    let expected = emu.expected();
    let status = status(dir.path());
    for kind in KINDS {
        let want = &expected[kind];
        let got = landed_per_month(dir.path(), kind, source);
        for month in ["2021-01", "2021-02", "2021-03", "2021-04", "2021-05", "2021-06", "2021-07", "2021-08"] {
            let n = want.get(month).copied().unwrap_or(0);
            assert_eq!(got.get(month).copied().unwrap_or(0), n, "{source} {kind} {month}: landed rows");
            let (st, rows, parts) = &status[kind][month];
            assert_eq!(*rows, n, "{source} {kind} {month}: status rows");
            if n == 0 {
                assert_eq!((st.as_str(), *parts), ("no-data", 0), "{kind} {month}");
            } else {
                assert_eq!(st, "loaded", "{kind} {month}: landed, then loaded into the default DuckDB file");
                assert!(*parts >= 1);
            }
        }
    }
    // The sample has months with no certificates at all for the synthetic kinds.
    assert_eq!(status["non-domestic"]["2021-04"].0, "no-data");
}

#[test]
fn gepbd_lands_every_row_of_every_kind_once() {
    lands_every_row_once("gepbd");
}

#[test]
fn odc_lands_every_row_of_every_kind_once() {
    lands_every_row_once("odc");
}

#[test]
fn gepbd_documents_are_the_apis_full_records() {
    let emu = Emu::samples();
    let dir = tempfile::tempdir().unwrap();
    assert!(run(&mut dame_run(&emu, "gepbd", "domestic", "2021-02", "2021-02", dir.path())).status.success());
    let lines = landed(dir.path(), "domestic");
    assert_eq!(lines.len(), 161);
    for l in &lines {
        let number = l["certificate_number"].as_str().unwrap();
        assert_eq!(l["record"]["certificate_number"], number);
        assert_eq!(l["record"]["registration_date"], l["lodgement_date"]);
        assert!(l["record"]["schema_type"].is_string(), "{l}");
    }
}

#[test]
fn a_second_run_lands_nothing_new() {
    let emu = Emu::samples();
    let dir = tempfile::tempdir().unwrap();
    assert!(run(&mut dame_run(&emu, "gepbd", ALL, "2021-01", "2021-03", dir.path())).status.success());
    // The landed objects and checkpoints, but not the lease, which each run
    // takes and gives back, nor the DuckDB file, whose views every run
    // publishes again.
    let snapshot = || -> Vec<(String, Vec<u8>)> {
        files(dir.path())
            .into_iter()
            .filter(|f| (f.starts_with("raw/") || f.starts_with("state/")) && !f.starts_with("state/_lease/"))
            .map(|f| (f.clone(), std::fs::read(dir.path().join(&f)).unwrap()))
            .collect()
    };
    let before = snapshot();
    let requests = emu.requests();
    let out = run(&mut dame_run(&emu, "gepbd", ALL, "2021-01", "2021-03", dir.path()));
    assert!(out.status.success());
    let after = snapshot();
    assert_eq!(before, after, "the second run changed the landing folder");
    // Only the preflight request: every month was already complete.
    assert_eq!(emu.requests() - requests, 1);
    let table = String::from_utf8_lossy(&out.stdout);
    assert_eq!(table.lines().filter(|l| l.contains(" skipped ")).count(), 9, "{table}");
}

#[test]
fn days_larger_than_a_page_are_split_and_reconciled() {
    // Five rows a page: busy days are split by energy band, and bands still
    // larger than a page are paged over an unstable order until every
    // certificate the API counted is in hand.
    let emu = Emu::samples();
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = dame_run(&emu, "gepbd", "domestic,non-domestic", "2021-01", "2021-03", dir.path());
    let out = run(cmd.args(["--page-size", "5"]));
    assert!(out.status.success(), "{}", text(&out));
    let expected = emu.expected();
    for kind in ["domestic", "non-domestic"] {
        let got = landed_per_month(dir.path(), kind, "gepbd");
        for month in ["2021-01", "2021-02", "2021-03"] {
            assert_eq!(got.get(month).copied().unwrap_or(0), expected[kind].get(month).copied().unwrap_or(0), "{kind} {month}");
        }
    }
    let searches = emu.emulator().stats().routes.get("GET /api/domestic/search").map(|s| s.values().sum::<u64>()).unwrap_or(0);
    assert!(searches > 200, "the days were not split ({searches} searches)");
}

#[test]
fn a_killed_run_resumes_without_landing_a_page_twice() {
    let emu = Emu::start(Config {
        data: sample_data(),
        token: Some(TOKEN.into()),
        seed: 3,
        latency: Some(Duration::from_millis(40)),
        ..Config::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let mut child = dame_run(&emu, "gepbd", "domestic", "2021-01", "2021-04", dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Kill it once March (259 rows: two parts of at most 250) has its
    // first part: mid-month, between checkpoints.
    let start = Instant::now();
    loop {
        if dir.path().join("state/domestic/202103/part-00001.json").exists() {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(120), "the run never reached 2021-03");
        assert!(child.try_wait().unwrap().is_none(), "the run ended before it could be killed");
        std::thread::sleep(Duration::from_millis(5));
    }
    unsafe {
        libc::kill(child.id() as i32, libc::SIGKILL);
    }
    child.wait().unwrap();
    let st = status(dir.path());
    assert_eq!(st["domestic"]["2021-02"].0, "loaded");
    assert_eq!(st["domestic"]["2021-03"], ("partial".to_string(), 250, 1));
    assert!(!st["domestic"].contains_key("2021-04"));

    // The killed run still holds the lease; its process is gone, so this
    // run takes the lease over at once rather than waiting for it to expire.
    let out = run(&mut dame_run(&emu, "gepbd", "domestic", "2021-01", "2021-04", dir.path()));
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("took over an expired lease held by dame run on"), "{}", text(&out));
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.lines().any(|l| l.contains("2021-03") && l.contains(" landed ") && l.contains(" 9 ")), "{table}");
    let expected = &emu.expected()["domestic"];
    let got = landed_per_month(dir.path(), "domestic", "gepbd");
    for month in ["2021-01", "2021-02", "2021-03", "2021-04"] {
        assert_eq!(got[month], expected[month], "{month}");
    }
    // No checkpoint without its data, no data without its checkpoint.
    let all = files(dir.path());
    for f in all.iter().filter(|f| f.starts_with("raw/")) {
        let cp = f.replacen("raw/", "state/", 1).replace(".ndjson.gz", ".json");
        assert!(all.contains(&cp), "{f} has no checkpoint");
    }
    for f in all.iter().filter(|f| f.starts_with("state/") && f.contains("/part-")) {
        let data = f.replacen("state/", "raw/", 1).replace(".json", ".ndjson.gz");
        assert!(all.contains(&data), "{f} names no data");
    }
}

#[test]
fn a_reset_month_is_fetched_again() {
    let emu = Emu::samples();
    let dir = tempfile::tempdir().unwrap();
    assert!(run(&mut dame_run(&emu, "odc", "domestic", "2021-02", "2021-03", dir.path())).status.success());
    let out = run(dame().args(["reset", "--kind", "domestic", "--month", "2021-03", "--landing"]).arg(dir.path()));
    assert!(out.status.success(), "{}", text(&out));
    let st = status(dir.path());
    assert!(!st["domestic"].contains_key("2021-03"), "{st:?}");
    assert_eq!(st["domestic"]["2021-02"].0, "loaded");
    let out = run(&mut dame_run(&emu, "odc", "domestic", "2021-02", "2021-03", dir.path()));
    assert!(out.status.success());
    assert!(text(&out).contains("skipped"), "2021-02 should be skipped");
    let got = landed_per_month(dir.path(), "domestic", "odc");
    assert_eq!(got["2021-03"], 259);
    // An ODC page is landed in parts of at most 250 rows, as GEPBD's are.
    assert_eq!(status(dir.path())["domestic"]["2021-03"], ("loaded".to_string(), 259, 2));
}

/// Runs `dame run` with extra flags and environment and expects it to stop
/// with exit code 2, one `dame:` line containing `needle`, and nothing
/// written.
fn refused(args: &[&str], env: &[(&str, &str)], needle: &str) {
    let dir = tempfile::tempdir().unwrap();
    let landing = dir.path().join("landing");
    let mut cmd = dame();
    cmd.arg("run").args(args).arg("--landing").arg(&landing);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = run(&mut cmd);
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
    assert!(err.contains(needle), "{args:?}: expected {needle:?} in {err}");
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("dame:")).collect();
    assert_eq!(lines.len(), 1, "one line names the problem: {err}");
    assert!(files(&landing).iter().all(|f| !f.starts_with("raw/") && !f.starts_with("state/")), "{args:?} wrote something");
}

#[test]
fn bad_input_stops_before_writing_anything() {
    let emu = Emu::samples();
    let url = emu.url();
    let token = [("EPC_TOKEN", TOKEN)];
    let ok = ["--api-url", url.as_str(), "--start-month", "2021-01", "--end-month", "2021-02"];
    let with = |extra: &[&'static str]| -> Vec<&str> { ok.iter().copied().chain(extra.iter().copied()).collect() };
    refused(&with(&["--kind", "commercial"]), &token, "unknown kind 'commercial'");
    refused(&with(&["--source", "epc"]), &token, "unknown source 'epc'");
    refused(&["--api-url", &url, "--start-month", "2021-1"], &token, "YYYY-MM");
    refused(&["--api-url", &url, "--start-month", "2021-03", "--end-month", "2021-01"], &token, "reversed");
    refused(&["--api-url", &url, "--start-month", "2021-01", "--end-month", "2099-01"], &token, "in the future");
    refused(&ok, &[], "EPC_TOKEN");
    refused(&with(&["--source", "odc"]), &[("EPC_EMAIL", EMAIL)], "EPC_API_KEY");
    refused(&ok, &[("EPC_TOKEN", "wrong-token")], "refused the credentials");
    refused(&with(&["--source", "odc"]), &[("EPC_EMAIL", EMAIL), ("EPC_API_KEY", "nope")], "refused the credentials");
    // Nothing listens on port 9 of loopback.
    refused(
        &["--api-url", "http://127.0.0.1:9", "--start-month", "2021-01", "--end-month", "2021-01"],
        &token,
        "unreachable",
    );
}

#[test]
fn secrets_appear_in_no_output_and_no_landed_file() {
    let secret = "s3cret-token-4242-do-not-leak";
    let emu = Emu::start(Config {
        data: sample_data(),
        token: Some(secret.into()),
        odc_email: Some(EMAIL.into()),
        odc_api_key: Some(secret.into()),
        ..Config::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let mut outputs = Vec::new();
    let mut cmd = dame_run(&emu, "gepbd", ALL, "2021-01", "2021-02", dir.path());
    outputs.push(run(cmd.env("EPC_TOKEN", secret)));
    let mut cmd = dame_run(&emu, "odc", "domestic", "2021-01", "2021-01", &dir.path().join("odc"));
    outputs.push(run(cmd.env("EPC_API_KEY", secret)));
    // A failing run too: errors must not carry the token either.
    let mut cmd = dame_run(&emu, "gepbd", "domestic", "2021-01", "2021-01", &dir.path().join("bad"));
    outputs.push(run(cmd.env("EPC_TOKEN", format!("{secret}-wrong"))));
    for o in &outputs {
        assert!(!text(o).contains(secret), "a secret reached the output:\n{}", text(o));
    }
    for f in files(dir.path()) {
        let bytes = std::fs::read(dir.path().join(&f)).unwrap();
        let mut plain = Vec::new();
        if f.ends_with(".gz") {
            use std::io::Read;
            flate2::read::GzDecoder::new(&bytes[..]).read_to_end(&mut plain).unwrap();
        } else {
            plain = bytes;
        }
        assert!(!String::from_utf8_lossy(&plain).contains(secret), "{f} holds a secret");
    }
}

#[test]
fn the_demo_runs_without_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(dame().args(["demo", "--landing"]).arg(dir.path().join("data")));
    assert!(out.status.success(), "{}", text(&out));
    let st = status(&dir.path().join("data"));
    assert_eq!(st["domestic"].len(), 8);
    assert_eq!(st["domestic"]["2021-03"], ("loaded".to_string(), 259, 2));
}

#[test]
fn the_host_refuses_destinations_outside_the_allow_list_and_cleartext() {
    let emu = Emu::samples();
    let dir = tempfile::tempdir().unwrap();
    // A manifest that allows only another host: the API is out of reach.
    let manifest = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../spin.toml"))
        .unwrap()
        .replace("\"{{ api_url }}\",", "\"https://example.org\",");
    std::fs::write(dir.path().join("spin.toml"), manifest).unwrap();
    let before = emu.requests();
    let mut c = dame_run(&emu, "gepbd", "display", "2021-01", "2021-01", dir.path().join("data"));
    c.arg("--manifest").arg(dir.path().join("spin.toml"));
    let out = run(&mut c);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("not in allowed_outbound_hosts"), "{}", text(&out));
    assert_eq!(emu.requests(), before, "a refused request reached the API");
    // Plain http to anything but loopback is refused even when allowed
    // (the manifest allows the API URL, whatever it is).
    let mut c = dame();
    c.env("EPC_TOKEN", TOKEN).args(["run", "--api-url", "http://example.org", "--start-month", "2021-01", "--end-month", "2021-01"]);
    let out = run(c.arg("--landing").arg(dir.path().join("data")));
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("plain http to a non-loopback host"), "{}", text(&out));
}
