//! Recommendations, end to end: the real `dame` binary fetches the
//! recommendations of landed certificates from the EPC emulator on a real
//! socket, lands them, loads them into DuckDB and publishes the views. For
//! both APIs and all kinds every recommendation the emulator holds lands
//! exactly once, a certificate with none is still an answer, a rerun asks
//! for nothing, a killed run resumes without asking twice, and the views
//! count what the emulator holds and parse the costs as the texts say.

mod support;

use epc_emulator::{Config, Kind, Recommendations};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};
use support::*;

const KINDS: [(&str, Kind); 3] = [("domestic", Kind::Domestic), ("non-domestic", Kind::NonDomestic), ("display", Kind::Display)];
const ALL: &str = "domestic,non-domestic,display";
const MONTHS: [&str; 3] = ["2021-01", "2021-02", "2021-03"];

fn emulator(latency: Option<Duration>) -> Emu {
    Emu::start(Config {
        data: sample_data(),
        token: Some(TOKEN.into()),
        odc_email: Some(EMAIL.into()),
        odc_api_key: Some(API_KEY.into()),
        seed: 11,
        latency,
        recommendations: Some(Recommendations::default()),
        ..Config::default()
    })
}

/// What landed for one kind's recommendations, per month: (certificates
/// answered, recommendations, answers by status). Fails on a certificate
/// answered twice or in the wrong month's folder.
fn landed_recs(landing: &Path, kind: &str, source: &str) -> BTreeMap<String, (u64, u64, BTreeMap<String, u64>)> {
    let id = if source == "gepbd" { "certificate_number" } else { "lmk_key" };
    let mut seen = BTreeSet::new();
    let mut out: BTreeMap<String, (u64, u64, BTreeMap<String, u64>)> = BTreeMap::new();
    for line in landed(landing, &format!("{kind}-recommendations")) {
        let key = line[id].as_str().unwrap_or_else(|| panic!("{kind} recommendations line without {id}: {line}")).to_string();
        assert!(seen.insert(key.clone()), "{kind} {key}: recommendations landed twice");
        let month = line["lodgement_date"].as_str().unwrap()[..7].to_string();
        let folder = format!("raw/{kind}-recommendations/{}/", month.replace('-', ""));
        assert!(line["landed_object"].as_str().unwrap().starts_with(&folder), "{line}");
        let items = line["record"]["recommendations"].as_array().unwrap_or_else(|| panic!("{line}")).len() as u64;
        let status = line["record"]["status"].as_str().unwrap().to_string();
        assert_eq!(status == "found", items > 0, "{line}");
        let e = out.entry(month).or_default();
        e.0 += 1;
        e.1 += items;
        *e.2.entry(status).or_default() += 1;
    }
    out
}

fn ids(landing: &Path, dataset: &str, source: &str) -> BTreeSet<String> {
    let id = if source == "gepbd" { "certificate_number" } else { "lmk_key" };
    landed(landing, dataset).iter().map(|l| l[id].as_str().unwrap().to_string()).collect()
}

/// Rows of a view per month, from the DuckDB file `dame run` wrote.
fn view_counts(landing: &Path, view: &str) -> BTreeMap<String, u64> {
    let wh = duck_warehouse::DuckWarehouse::open(landing.join("epc.duckdb"), "main", landing).unwrap();
    let rows = wh.query(&format!("SELECT strftime(lodgement_date, '%Y-%m') AS m, count(*) AS n FROM main.{view} GROUP BY 1")).unwrap();
    rows.iter()
        .map(|r| {
            let v: Value = serde_json::from_str(r).unwrap();
            (v["m"].as_str().unwrap().to_string(), v["n"].as_u64().unwrap())
        })
        .collect()
}

fn every_recommendation_lands_once(source: &str) {
    let emu = emulator(None);
    let dir = tempfile::tempdir().unwrap();
    let out = run(dame_run(&emu, source, ALL, MONTHS[0], MONTHS[2], dir.path()).arg("--with-recs"));
    assert!(out.status.success(), "{}", text(&out));
    let expected = emu.emulator().expected_recommendations();
    for (kind, k) in KINDS {
        let got = landed_recs(dir.path(), kind, source);
        // Every landed certificate is answered, once.
        assert_eq!(ids(dir.path(), &format!("{kind}-recommendations"), source), ids(dir.path(), kind, source), "{kind}");
        let views = view_counts(dir.path(), &format!("enr_{}_recommendations_v", kind.replace('-', "_")));
        for month in MONTHS {
            let want = expected.month(k, month);
            let (certs, recs, statuses) = got.get(month).cloned().unwrap_or_default();
            let served = if source == "gepbd" && k != Kind::Domestic { want.gepbd_recommendations } else { want.recommendations };
            assert_eq!(recs, served, "{source} {kind} {month}: recommendations landed");
            assert_eq!(views.get(month).copied().unwrap_or(0), served, "{source} {kind} {month}: rows of the view");
            assert_eq!(certs, want.certificates + want.without, "{source} {kind} {month}: certificates answered");
            let n = |s: &str| statuses.get(s).copied().unwrap_or(0);
            if source == "gepbd" && k != Kind::Domestic {
                assert_eq!(n("report-missing"), want.missing_reports, "{kind} {month}: missing reports recorded");
            } else {
                assert_eq!((n("found"), n("none")), (want.certificates, want.without), "{source} {kind} {month}");
            }
        }
    }
    // The sample must exercise what the counts claim.
    let jan = expected.month(Kind::Domestic, "2021-01");
    assert!(jan.without > 0 && jan.certificates > 0);
    assert!(MONTHS.iter().any(|m| expected.month(Kind::NonDomestic, m).missing_reports + expected.month(Kind::Display, m).missing_reports > 0));

    // A rerun of the recommendations alone asks the API nothing and lands nothing.
    let snapshot = || -> Vec<(String, Vec<u8>)> {
        files(dir.path())
            .into_iter()
            .filter(|f| f.starts_with("raw/") || (f.starts_with("state/") && !f.starts_with("state/_")))
            .map(|f| (f.clone(), std::fs::read(dir.path().join(&f)).unwrap()))
            .collect()
    };
    let before = snapshot();
    let requests = emu.requests();
    let out = run(dame_run(&emu, source, ALL, MONTHS[0], MONTHS[2], dir.path()).arg("--recs-only"));
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(emu.requests() - requests, 0, "the rerun made requests");
    assert_eq!(before, snapshot(), "the rerun changed the landing folder");
}

#[test]
fn gepbd_every_recommendation_lands_once_and_a_rerun_fetches_nothing() {
    every_recommendation_lands_once("gepbd");
}

#[test]
fn odc_every_recommendation_lands_once_and_a_rerun_fetches_nothing() {
    every_recommendation_lands_once("odc");
}

#[test]
fn a_killed_recommendations_run_resumes_without_asking_twice() {
    let emu = emulator(Some(Duration::from_millis(30)));
    let dir = tempfile::tempdir().unwrap();
    // The certificates first; then the recommendations alone, killed once
    // March (259 certificates: two parts) has its first part.
    let out = run(&mut dame_run(&emu, "odc", "domestic", MONTHS[0], MONTHS[2], dir.path()));
    assert!(out.status.success(), "{}", text(&out));
    let before = emu.requests();
    let mut child = dame_run(&emu, "odc", "domestic", MONTHS[0], MONTHS[2], dir.path())
        .arg("--recs-only")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while !dir.path().join("state/domestic-recommendations/202103/part-00001.json").exists() {
        assert!(start.elapsed() < Duration::from_secs(180), "the run never reached 2021-03");
        assert!(child.try_wait().unwrap().is_none(), "the run ended before it could be killed");
        std::thread::sleep(Duration::from_millis(5));
    }
    unsafe {
        libc::kill(child.id() as i32, libc::SIGKILL);
    }
    child.wait().unwrap();
    let answered_before = ids(dir.path(), "domestic-recommendations", "odc").len() as u64;
    let asked_by_killed = emu.requests() - before;
    assert!(answered_before >= 152 + 161 + 250, "{answered_before}");

    let mid = emu.requests();
    let out = run(dame_run(&emu, "odc", "domestic", MONTHS[0], MONTHS[2], dir.path()).arg("--recs-only"));
    assert!(out.status.success(), "{}", text(&out));
    let certificates = ids(dir.path(), "domestic", "odc").len() as u64;
    // Exactly the certificates not answered yet were asked for: one request each.
    assert_eq!(emu.requests() - mid, certificates - answered_before, "the resumed run asked again");
    assert!(asked_by_killed >= answered_before);
    let got = landed_recs(dir.path(), "domestic", "odc");
    let expected = emu.emulator().expected_recommendations();
    for month in MONTHS {
        assert_eq!(got[month].1, expected.month(Kind::Domestic, month).recommendations, "{month}");
    }
    assert_eq!(ids(dir.path(), "domestic-recommendations", "odc").len() as u64, certificates);
}

/// The emulator's costs are the register's texts; the view's low and high
/// amounts must be what a person reads in them.
#[test]
fn the_view_parses_costs_as_the_texts_say() {
    let emu = emulator(None);
    let dir = tempfile::tempdir().unwrap();
    let out = run(dame_run(&emu, "odc", "domestic", MONTHS[0], MONTHS[2], dir.path()).arg("--with-recs"));
    assert!(out.status.success(), "{}", text(&out));
    let wh = duck_warehouse::DuckWarehouse::open(dir.path().join("epc.duckdb"), "main", dir.path()).unwrap();
    let rows = wh
        .query("SELECT DISTINCT indicative_cost AS c, indicative_cost_low AS lo, indicative_cost_high AS hi FROM main.enr_domestic_recommendations_v")
        .unwrap();
    let parsed: BTreeMap<String, (Option<i64>, Option<i64>)> = rows
        .iter()
        .map(|r| {
            let v: Value = serde_json::from_str(r).unwrap();
            (v["c"].as_str().unwrap().to_string(), (v["lo"].as_i64(), v["hi"].as_i64()))
        })
        .collect();
    // Checked by hand against the texts.
    let by_hand = [
        ("£100 - £350", 100, 350),
        ("£4,000 - £14,000", 4000, 14000),
        ("£15 - £30", 15, 30),
        ("£35", 35, 35),
        ("£15,000 - £25,000", 15000, 25000),
    ];
    for (text, lo, hi) in by_hand {
        assert_eq!(parsed.get(text), Some(&(Some(lo), Some(hi))), "{text}: {parsed:?}");
    }
    // Every text the sample holds parses.
    for (text, (lo, hi)) in &parsed {
        assert!(lo.is_some() && hi.is_some() && lo <= hi, "{text}: {lo:?} {hi:?}");
    }
}

/// The production path: `dame run --with-recs` landing in the Cloud Storage
/// stand-in and loading the BigQuery stand-in; the BigQuery views count per
/// month what the emulator serves, as the DuckDB ones do.
#[test]
fn gepbd_recommendations_land_in_the_bucket_and_view_in_bigquery() {
    use test_services::{PROJECT, Services, Which};
    let s = Services::start(Which::GcsAndBigQuery).expect("the cloud stand-ins start (scripts/services install)");
    let bucket = "dame-recs-test";
    s.create_bucket(bucket).unwrap();
    let emu = emulator(None);
    let dataset = "epc_recs";
    let mut c = dame_run(&emu, "gepbd", ALL, MONTHS[0], MONTHS[2], format!("gs://{bucket}/{dataset}"));
    c.args(["--warehouse", &format!("bigquery:{PROJECT}.{dataset}"), "--with-recs"])
        .env("STORAGE_EMULATOR_HOST", &s.gcs_url)
        .env("BIGQUERY_EMULATOR_HOST", &s.bq_url);
    let out = run(&mut c);
    assert!(out.status.success(), "{}", text(&out));

    let expected = emu.emulator().expected_recommendations();
    let mut total = 0;
    for (kind, k) in KINDS {
        let view = format!("enr_{}_recommendations_v", kind.replace('-', "_"));
        let got: BTreeMap<String, u64> =
            bq_query(&s, &format!("SELECT FORMAT_DATE('%Y-%m', lodgement_date) AS m, COUNT(*) FROM {dataset}.{view} GROUP BY m"))
                .into_iter()
                .map(|r| (r[0].clone(), r[1].parse().unwrap()))
                .collect();
        for month in MONTHS {
            let want = expected.month(k, month);
            let served = if k == Kind::Domestic { want.recommendations } else { want.gepbd_recommendations };
            assert_eq!(got.get(month).copied().unwrap_or(0), served, "{kind} {month}: rows of {view} in BigQuery");
            total += served;
        }
    }
    assert!(total > 0, "the sample has recommendations to count");
}
