//! Production backends, end to end: `dame run --landing gs://… --warehouse
//! bigquery:…` against fake-gcs-server and bqemulator, started on free
//! ports for each test. These tests fail, never skip, when the stand-ins
//! are missing (`scripts/services install`).

mod support;

use serde_json::Value;
use std::collections::BTreeMap;
use std::process::Command;
use support::*;
use test_services::{PROJECT, Services, Which};

const BUCKET: &str = "dame-landing-test";
const MONTHS: [&str; 3] = ["2021-01", "2021-02", "2021-03"];

fn with_services(cmd: &mut Command, s: &Services) {
    cmd.env("STORAGE_EMULATOR_HOST", &s.gcs_url).env("BIGQUERY_EMULATOR_HOST", &s.bq_url);
}

fn cloud_run(emu: &Emu, s: &Services, source: &str, dataset: &str) -> Command {
    let mut c = dame_run(emu, source, "domestic,display", MONTHS[0], MONTHS[2], format!("gs://{BUCKET}/{dataset}"));
    c.args(["--warehouse", &format!("bigquery:{PROJECT}.{dataset}")]);
    with_services(&mut c, s);
    c
}

/// Rows per month in a raw table, and distinct identifiers.
fn counts(s: &Services, dataset: &str, table: &str, id: &str) -> BTreeMap<String, (u64, u64)> {
    bq_query(s, &format!(
        "SELECT FORMAT_DATE('%Y-%m', lodgement_date) AS m, COUNT(*), COUNT(DISTINCT {id}) FROM {dataset}.{table} GROUP BY m"
    ))
    .into_iter()
    .map(|r| (r[0].clone(), (r[1].parse().unwrap(), r[2].parse().unwrap())))
    .collect()
}

fn status_in(s: &Services, dataset: &str) -> BTreeMap<String, BTreeMap<String, (String, u64, u64)>> {
    let mut c = dame();
    c.args(["status", "--json", "--landing", &format!("gs://{BUCKET}/{dataset}")]);
    with_services(&mut c, s);
    let out = run(&mut c);
    assert!(out.status.success(), "{}", text(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut m: BTreeMap<String, BTreeMap<String, (String, u64, u64)>> = BTreeMap::new();
    for row in v["months"].as_array().unwrap() {
        m.entry(row["kind"].as_str().unwrap().into()).or_default().insert(
            row["month"].as_str().unwrap().into(),
            (row["status"].as_str().unwrap().into(), row["rows"].as_u64().unwrap(), row["parts"].as_u64().unwrap()),
        );
    }
    m
}

fn lands_and_loads_twice(source: &str, dataset: &str) {
    let s = Services::start(Which::GcsAndBigQuery).expect("the cloud stand-ins start (scripts/services install)");
    s.create_bucket(BUCKET).unwrap();
    let emu = Emu::samples();
    let expected = emu.expected();
    let id = if source == "gepbd" { "certificate_number" } else { "lmk_key" };
    for attempt in 1..=2 {
        let out = run(&mut cloud_run(&emu, &s, source, dataset));
        assert!(out.status.success(), "attempt {attempt}: {}", text(&out));
        for (kind, table) in [("domestic", "domestic_raw_json"), ("display", "display_raw_json")] {
            let got = counts(&s, dataset, table, id);
            for m in MONTHS {
                let want = expected[kind].get(m).copied().unwrap_or(0);
                assert_eq!(got.get(m).copied().unwrap_or((0, 0)), (want, want), "{source} {kind} {m}, attempt {attempt}");
            }
        }
    }
    let st = status_in(&s, dataset);
    for m in MONTHS {
        assert_eq!(st["domestic"][m].0, "loaded", "{m}");
    }
    // Landed objects are in the bucket under the same layout as a folder.
    let objects = files(&s.gcs_root.join(BUCKET).join(dataset));
    assert!(objects.iter().any(|o| o == "raw/domestic/202101/part-00001.ndjson.gz"), "{objects:?}");
    assert!(objects.iter().any(|o| o == "state/domestic/202101/done.json"));
    assert!(objects.iter().any(|o| o == "state/domestic/202101/load.json"));

    // Reset a month, run again: the same counts, one copy each.
    let mut reset = dame();
    reset.args(["reset", "--kind", "domestic", "--month", "2021-02", "--landing", &format!("gs://{BUCKET}/{dataset}")]);
    with_services(&mut reset, &s);
    assert!(run(&mut reset).status.success());
    assert!(run(&mut cloud_run(&emu, &s, source, dataset)).status.success());
    let got = counts(&s, dataset, "domestic_raw_json", id);
    assert_eq!(got["2021-02"], (161, 161));
    let log = bq_query(&s, &format!("SELECT COUNT(*) FROM {dataset}.load_log WHERE dataset = 'domestic' AND month = DATE '2021-02-01'"));
    assert_eq!(log[0][0], "2", "two loads of 2021-02 are recorded");

    // Every load job carries the labels.
    let jobs: Value = serde_json::from_str(
        &ureq::get(&format!("{}/bigquery/v2/projects/{PROJECT}/jobs?allUsers=true&projection=full", s.bq_url))
            .call()
            .unwrap()
            .into_body()
            .read_to_string()
            .unwrap(),
    )
    .unwrap();
    let loads: Vec<&Value> =
        jobs["jobs"].as_array().unwrap().iter().filter(|j| j["configuration"]["load"].is_object()).collect();
    assert!(loads.len() >= 6, "one load job per kind and month");
    for j in loads {
        let l = &j["configuration"]["labels"];
        assert_eq!(l["system"], "dame");
        assert_eq!(l["stage"], "ingest");
        // The change-event (deltas) load is labelled `events`.
        assert!(["domestic", "display", "events"].contains(&l["kind"].as_str().unwrap()), "{l}");
        let month = l["month"].as_str().unwrap();
        if l["kind"] == "events" {
            // The feed is read up to yesterday: its month is today's.
            assert!(month.len() == 6 && month.bytes().all(|b| b.is_ascii_digit()), "{l}");
        } else {
            assert!(month.starts_with("2021"), "{l}");
        }
    }
}

#[test]
fn gepbd_lands_in_the_bucket_and_loads_bigquery_twice_the_same() {
    lands_and_loads_twice("gepbd", "epc_gepbd");
}

#[test]
fn odc_lands_in_the_bucket_and_loads_bigquery_twice_the_same() {
    lands_and_loads_twice("odc", "epc_odc");
}

#[test]
fn bad_cloud_names_are_refused_before_any_request() {
    let emu = Emu::samples();
    let before = emu.requests();
    for (landing, warehouse, needle) in [
        ("gs://Bad_Bucket", "bigquery:test-project.epc", "bucket 'Bad_Bucket'"),
        ("gs://dame-ok", "bigquery:Test_Project.epc", "project 'Test_Project'"),
        ("gs://dame-ok", "bigquery:test-project.epc-raw", "dataset 'epc-raw'"),
        ("gs://dame-ok", "bigquery:test-project", "names no dataset"),
        ("./folder", "bigquery:test-project.epc", "land in a bucket"),
    ] {
        let mut c = dame();
        c.env("EPC_TOKEN", TOKEN).args(["run", "--api-url", &emu.url(), "--start-month", "2021-01", "--end-month", "2021-01"]);
        c.args(["--landing", landing, "--warehouse", warehouse]);
        let out = run(&mut c);
        assert_eq!(out.status.code(), Some(2));
        assert!(text(&out).contains(needle), "{needle}: {}", text(&out));
    }
    let mut c = dame();
    c.env("EPC_TOKEN", TOKEN).args(["run", "--api-url", &emu.url(), "--start-month", "2021-01", "--end-month", "2021-01"]);
    c.args(["--landing", "gs://dame-ok", "--warehouse", "bigquery:test-project.epc", "--region", "europe west2"]);
    assert!(text(&run(&mut c)).contains("region 'europe west2'"));
    assert_eq!(emu.requests(), before, "a request was sent before the names were checked");
}

#[test]
fn the_epc_token_can_come_from_secret_manager() {
    use base64::Engine;
    let emu = Emu::samples();
    let name = "projects/p-123456/secrets/epc-token/versions/latest";
    let payload = base64::engine::general_purpose::STANDARD.encode(TOKEN);
    let sm = StandIn::start(&format!("/v1/{name}:access"), &format!(r#"{{"payload":{{"data":"{payload}"}}}}"#));
    let dir = tempfile::tempdir().unwrap();
    let mut c = dame_run(&emu, "gepbd", "display", "2021-01", "2021-02", dir.path());
    c.env_remove("EPC_TOKEN")
        .env("EPC_TOKEN_SECRET", name)
        .env("DAME_SECRET_MANAGER_URL", &sm.url)
        .env("GOOGLE_OAUTH_ACCESS_TOKEN", "ya29.test-access-token");
    let out = run(&mut c);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(status(dir.path())["display"]["2021-02"].1, 16);
    assert_eq!(sm.hits.load(std::sync::atomic::Ordering::SeqCst), 1, "the secret is read once per run");
    assert!(!text(&out).contains(TOKEN) && !text(&out).contains("ya29.test-access-token"));

    let mut bad = dame_run(&emu, "gepbd", "display", "2021-01", "2021-01", dir.path());
    bad.env_remove("EPC_TOKEN").env("EPC_TOKEN_SECRET", "epc-token");
    let out = run(&mut bad);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("projects/PROJECT/secrets/NAME/versions/latest"), "{}", text(&out));
}
