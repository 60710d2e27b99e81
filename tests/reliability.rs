//! Crash safety, proven: a run is killed (SIGKILL) at random points twenty
//! times, then allowed to finish, and what it landed in the bucket and
//! loaded into BigQuery must equal a run that was never interrupted:
//! no row lost, none doubled, no checkpoint without its data, no load
//! recorded without its rows.

mod support;

use epc_emulator::Config;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;
use support::*;
use test_services::{PROJECT, Services, Which};

const BUCKET: &str = "dame-kill-test";
const KILLS: usize = 20;

fn cloud_run(emu: &Emu, s: &Services, name: &str) -> Command {
    cloud_run_from(emu, s, "gepbd", name)
}

fn cloud_run_from(emu: &Emu, s: &Services, source: &str, name: &str) -> Command {
    let mut c = dame_run(emu, source, "domestic,display", "2021-01", "2021-04", format!("gs://{BUCKET}/{name}"));
    // ODC pages of 10 so its runs make enough requests (~90) for the
    // chaos profile's fault classes to fire, as GEPBD's one request per
    // certificate does anyway.
    let page_size = if source == "odc" { "10" } else { "50" };
    c.args(["--warehouse", &format!("bigquery:{PROJECT}.{name}"), "--page-size", page_size]);
    c.env("STORAGE_EMULATOR_HOST", &s.gcs_url).env("BIGQUERY_EMULATOR_HOST", &s.bq_url);
    c
}

/// Every landed record by dataset and month, and the landing files.
fn landed_records(root: &Path) -> (BTreeMap<String, BTreeSet<String>>, Vec<String>) {
    landed_records_by(root, "certificate_number")
}

fn landed_records_by(root: &Path, id: &str) -> (BTreeMap<String, BTreeSet<String>>, Vec<String>) {
    let all = files(root);
    let mut records: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in all.iter().filter(|f| f.starts_with("raw/") && f.ends_with(".ndjson.gz")) {
        let mut text = String::new();
        flate2::read::GzDecoder::new(std::fs::File::open(root.join(f)).unwrap()).read_to_string(&mut text).unwrap();
        let folder = f.rsplit_once('/').unwrap().0.to_string();
        for line in text.lines() {
            let v: Value = serde_json::from_str(line).unwrap();
            let id = v[id].as_str().unwrap().to_string();
            assert!(records.entry(folder.clone()).or_default().insert(id.clone()), "{id} landed twice in {folder}");
        }
    }
    (records, all)
}

/// The loaded rows: (table, month) → (rows, distinct certificates).
fn loaded(s: &Services, dataset: &str) -> BTreeMap<(String, String), (String, String)> {
    loaded_by(s, dataset, "certificate_number")
}

fn loaded_by(s: &Services, dataset: &str, id: &str) -> BTreeMap<(String, String), (String, String)> {
    let mut out = BTreeMap::new();
    for table in ["domestic_raw_json", "display_raw_json"] {
        for r in bq_query(s, &format!(
            "SELECT FORMAT_DATE('%Y-%m', lodgement_date), COUNT(*), COUNT(DISTINCT {id}) FROM {dataset}.{table} GROUP BY 1"
        )) {
            out.insert((table.to_string(), r[0].clone()), (r[1].clone(), r[2].clone()));
        }
    }
    out
}

/// A tiny deterministic generator for the kill times.
fn next(seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed
}

#[test]
fn twenty_kills_then_a_finish_equal_an_uninterrupted_run() {
    let s = Services::start(Which::GcsAndBigQuery).expect("the cloud stand-ins start (scripts/services install)");
    s.create_bucket(BUCKET).unwrap();
    let emu = Emu::start(Config {
        data: sample_data(),
        token: Some(TOKEN.into()),
        latency: Some(Duration::from_millis(25)),
        ..Config::default()
    });

    let out = run(&mut cloud_run(&emu, &s, "clean"));
    assert!(out.status.success(), "{}", text(&out));

    let mut seed = 0x5eed_u64;
    let mut killed_mid_run = 0;
    for i in 0..KILLS {
        let mut child = cloud_run(&emu, &s, "killed").stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
        // Anywhere from start-up to well into the run.
        let after = Duration::from_millis(80 + next(&mut seed) % 700);
        std::thread::sleep(after);
        if child.try_wait().unwrap().is_none() {
            killed_mid_run += 1;
        }
        unsafe {
            libc::kill(child.id() as i32, libc::SIGKILL);
        }
        child.wait().unwrap();
        eprintln!("kill {}: after {after:?}", i + 1);
    }
    assert!(killed_mid_run >= KILLS / 2, "only {killed_mid_run} of {KILLS} kills hit a running run");
    let out = run(&mut cloud_run(&emu, &s, "killed"));
    assert!(out.status.success(), "the run after the kills: {}", text(&out));

    let (clean, _) = landed_records(&s.gcs_root.join(BUCKET).join("clean"));
    let (killed, files) = landed_records(&s.gcs_root.join(BUCKET).join("killed"));
    assert_eq!(clean, killed, "the killed run landed other records than the clean one");
    for f in files.iter().filter(|f| f.starts_with("raw/")) {
        assert!(files.contains(&f.replacen("raw/", "state/", 1).replace(".ndjson.gz", ".json")), "{f}: data without checkpoint");
    }
    for f in files.iter().filter(|f| f.starts_with("state/") && f.contains("/part-")) {
        assert!(files.contains(&f.replacen("state/", "raw/", 1).replace(".json", ".ndjson.gz")), "{f}: checkpoint without data");
    }
    let clean_rows = loaded(&s, "clean");
    let killed_rows = loaded(&s, "killed");
    assert_eq!(clean_rows, killed_rows, "the loaded tables differ");
    for ((table, month), (rows, distinct)) in &killed_rows {
        assert_eq!(rows, distinct, "{table} {month} holds a row twice");
    }
    // Every month recorded as loaded has its rows in the table.
    for f in files.iter().filter(|f| f.ends_with("/load.json")) {
        let parts: Vec<&str> = f.split('/').collect();
        let (kind, m) = (parts[1], parts[2]);
        let key = (format!("{}_raw_json", kind.replace('-', "_")), format!("{}-{}", &m[..4], &m[4..]));
        assert!(killed_rows.contains_key(&key), "{f} records a load whose rows are missing");
    }
    eprintln!("{KILLS} kills ({killed_mid_run} mid-run): landed and loaded data equal an uninterrupted run");
}

/// The harshest mix: the emulator's `chaos` profile (every fault class:
/// 429s, 5xx, resets, cut and broken bodies, slow answers, rows shifted
/// between pages, counts that move), host-side faults on every Cloud
/// Storage and BigQuery request, and kills on top; both sources must still
/// end with exactly what a clean run lands and loads, and no secret in any
/// output.
fn chaos_equals_clean(source: &str) {
    let s = Services::start(Which::GcsAndBigQuery).expect("the cloud stand-ins start (scripts/services install)");
    s.create_bucket(BUCKET).unwrap();
    let config = |faults: epc_emulator::Faults| Config {
        data: sample_data(),
        token: Some(TOKEN.into()),
        odc_email: Some(EMAIL.into()),
        odc_api_key: Some(API_KEY.into()),
        latency: Some(Duration::from_millis(2)),
        faults,
        seed: 11,
        ..Config::default()
    };
    let clean_emu = Emu::start(config(epc_emulator::Faults::default()));
    let out = run(&mut cloud_run_from(&clean_emu, &s, source, &format!("clean_{source}")));
    assert!(out.status.success(), "{}", text(&out));

    let mut chaos = epc_emulator::Faults::chaos();
    chaos.slow = Duration::from_secs(2);
    let emu = Emu::start(config(chaos));
    let name = format!("chaos_{source}");
    let host_faults = "error=0.05,drop=0.03,delay=0.03:300ms,seed=5";
    let mut outputs = Vec::new();
    let mut seed = 0xc4a05_u64;
    for _ in 0..5 {
        let mut c = cloud_run_from(&emu, &s, source, &name);
        let child = c.env("DAME_HOST_FAULTS", host_faults).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        std::thread::sleep(Duration::from_millis(300 + next(&mut seed) % 2000));
        unsafe {
            libc::kill(child.id() as i32, libc::SIGKILL);
        }
        outputs.push(child.wait_with_output().unwrap());
    }
    // Then runs until one ends well (a month can fail all its step
    // attempts under this much chaos; the next run resumes it).
    let mut finished = false;
    for _ in 0..6 {
        let out = run(cloud_run_from(&emu, &s, source, &name).env("DAME_HOST_FAULTS", host_faults));
        let ok = out.status.success();
        outputs.push(out);
        if ok {
            finished = true;
            break;
        }
    }
    assert!(finished, "no run finished under chaos: {}", text(outputs.last().unwrap()));
    let faults = serde_json::to_value(emu.emulator().stats()).unwrap()["faults"].clone();
    eprintln!("{source}: faults injected by the emulator: {faults}");
    // ODC makes a request per page of 50, GEPBD one per certificate: far
    // fewer draws, so fewer classes fire.
    let classes = if source == "gepbd" { 8 } else { 4 };
    assert!(faults.as_object().is_some_and(|f| f.len() >= classes), "too few fault classes fired: {faults}");

    let id = if source == "gepbd" { "certificate_number" } else { "lmk_key" };
    let (clean, _) = landed_records_by(&s.gcs_root.join(BUCKET).join(format!("clean_{source}")), id);
    let (got, _) = landed_records_by(&s.gcs_root.join(BUCKET).join(&name), id);
    assert_eq!(clean, got, "{source}: chaos landed other records than a clean run");
    assert_eq!(loaded_by(&s, &format!("clean_{source}"), id), loaded_by(&s, &name, id), "{source}: the loaded tables differ");
    for o in &outputs {
        let t = text(o);
        for secret in [TOKEN, API_KEY] {
            assert!(!t.contains(secret), "a secret reached the output");
        }
    }
}

#[test]
fn gepbd_under_chaos_host_faults_and_kills_equals_a_clean_run() {
    chaos_equals_clean("gepbd");
}

#[test]
fn odc_under_chaos_host_faults_and_kills_equals_a_clean_run() {
    chaos_equals_clean("odc");
}
