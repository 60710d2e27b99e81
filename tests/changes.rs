//! Keeping loaded months true after they are loaded, end to end: the real
//! `dame` against the EPC emulator, replaying past days with `DAME_TODAY`
//! and the emulator's own "today".
//!
//! - Late arrivals: a certificate lodged in July can reach the register in
//!   September. A run re-checks the months before its first against the
//!   API's daily counts and lands only what is new.
//! - Change events: GEPBD's `/api/deltas` says a certificate was removed or
//!   its UPRN changed; the views must follow.

mod support;

use epc_emulator::{Config, DataFile, DeltaEvent};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use support::*;

const DOMESTIC: &str = "domestic-E06000001-2021-01-to-08.csv";

fn emulator(data: Vec<DataFile>, today: &str, deltas: Vec<DeltaEvent>) -> Emu {
    Emu::start(Config {
        data,
        token: Some(TOKEN.into()),
        today: Some(today.parse().unwrap()),
        deltas,
        seed: 7,
        ..Config::default()
    })
}

/// `dame run` for GEPBD domestic as if run on `today`.
fn run_on(emu: &Emu, today: &str, start: &str, end: &str, landing: &Path) -> std::process::Output {
    let out = run(dame_run(emu, "gepbd", "domestic", start, end, landing).env("DAME_TODAY", today));
    assert!(out.status.success(), "{}", text(&out));
    out
}

/// The sample's domestic rows without every fourth one lodged in July:
/// the register as it stood before those arrived late. Returns the file
/// and the LMK keys left out.
fn without_some_of_july(dir: &Path) -> (std::path::PathBuf, BTreeSet<String>) {
    let mut reader = csv::Reader::from_path(fixture(DOMESTIC)).unwrap();
    let headers = reader.headers().unwrap().clone();
    let date = headers.iter().position(|h| h == "LODGEMENT_DATE").unwrap();
    let key = headers.iter().position(|h| h == "LMK_KEY").unwrap();
    let path = dir.join("domestic-before.csv");
    let mut writer = csv::Writer::from_path(&path).unwrap();
    writer.write_record(&headers).unwrap();
    let (mut late, mut july) = (BTreeSet::new(), 0);
    for row in reader.records() {
        let row = row.unwrap();
        if row[date].starts_with("2021-07") {
            july += 1;
            if july % 4 == 0 {
                late.insert(row[key].to_string());
                continue;
            }
        }
        writer.write_record(&row).unwrap();
    }
    writer.flush().unwrap();
    (path, late)
}

fn landed_numbers(landing: &Path, month: &str) -> Vec<String> {
    landed(landing, "domestic")
        .into_iter()
        .filter(|l| l["lodgement_date"].as_str().unwrap().starts_with(month))
        .map(|l| l["certificate_number"].as_str().unwrap().to_string())
        .collect()
}

fn duck(landing: &Path) -> duckdb::Connection {
    let config = duckdb::Config::default().access_mode(duckdb::AccessMode::ReadOnly).unwrap();
    duckdb::Connection::open_with_flags(landing.join("epc.duckdb"), config).unwrap()
}

fn count(db: &duckdb::Connection, sql: &str) -> i64 {
    db.query_row(sql, [], |r| r.get(0)).unwrap()
}

#[test]
fn late_arrivals_are_landed_once_and_loaded_by_the_next_run() {
    let tmp = tempfile::tempdir().unwrap();
    let landing = tmp.path().join("data");
    let (before, late) = without_some_of_july(tmp.path());
    assert!(late.len() >= 20, "the sample has enough July rows to leave some out");

    // 15 September: July and August as the register then held them.
    let emu = emulator(vec![DataFile::Path(before)], "2021-09-15", vec![]);
    run_on(&emu, "2021-09-15", "2021-06", "2021-08", &landing);
    drop(emu);
    let full = Emu::start(Config { data: vec![DataFile::Path(fixture(DOMESTIC))], seed: 7, ..Config::default() });
    let want = full.expected()["domestic"].clone();
    drop(full);
    let st = status(&landing);
    assert_eq!(st["domestic"]["2021-07"].1, want["2021-07"] - late.len() as u64);
    let august: BTreeMap<String, Vec<u8>> = files(&landing)
        .into_iter()
        .filter(|f| f.contains("/202108/"))
        .map(|f| (f.clone(), std::fs::read(landing.join(&f)).unwrap()))
        .collect();
    let july_before: BTreeMap<String, Vec<u8>> = files(&landing)
        .into_iter()
        .filter(|f| f.starts_with("raw/domestic/202107/"))
        .map(|f| (f.clone(), std::fs::read(landing.join(&f)).unwrap()))
        .collect();

    // 2 October: the late certificates are in the register. The daily run
    // for September re-checks July and August.
    let emu = emulator(vec![DataFile::Path(fixture(DOMESTIC))], "2021-10-02", vec![]);
    let requests = emu.requests();
    let out = run_on(&emu, "2021-10-02", "2021-09", "2021-09", &landing);
    let spent = emu.requests() - requests;
    assert!(text(&out).contains("2021-07"), "the run reports the re-checked month: {}", text(&out));

    // Every July certificate once, the late ones included.
    let july = landed_numbers(&landing, "2021-07");
    assert_eq!(july.len() as u64, want["2021-07"], "July has every certificate");
    assert_eq!(july.iter().collect::<BTreeSet<_>>().len(), july.len(), "no certificate landed twice");
    for key in &late {
        let number = emu.emulator().certificate_number(epc_emulator::Kind::Domestic, key).unwrap().to_string();
        assert!(july.contains(&number), "late certificate {number} landed");
    }
    // What was landed stays as it was: the late rows are new parts.
    for (f, bytes) in &july_before {
        assert_eq!(&std::fs::read(landing.join(f)).unwrap(), bytes, "{f} was rewritten");
    }
    for (f, bytes) in &august {
        if !f.starts_with("state/_lease/") {
            assert_eq!(&std::fs::read(landing.join(f)).unwrap(), bytes, "August ({f}) changed but nothing arrived late there");
        }
    }
    // Only the changed days were fetched again: far fewer requests than
    // fetching July whole (one document request per certificate).
    assert!(spent < want["2021-07"], "{spent} requests to re-check two months and fetch {} late certificates", late.len());

    // Loaded: the raw table and the view hold July exactly once.
    let st = status(&landing);
    assert_eq!(st["domestic"]["2021-07"], ("loaded".to_string(), want["2021-07"], st["domestic"]["2021-07"].2));
    let db = duck(&landing);
    let raw = count(&db, "SELECT count(*) FROM domestic_raw_json WHERE lodgement_date BETWEEN DATE '2021-07-01' AND DATE '2021-07-31'");
    let distinct = count(&db, "SELECT count(DISTINCT certificate_number) FROM domestic_raw_json WHERE lodgement_date BETWEEN DATE '2021-07-01' AND DATE '2021-07-31'");
    assert_eq!((raw as u64, distinct as u64), (want["2021-07"], want["2021-07"]));
    let view = count(&db, "SELECT count(*) FROM enr_domestic_certificates_v WHERE lodgement_date BETWEEN DATE '2021-07-01' AND DATE '2021-07-31'");
    assert_eq!(view as u64, want["2021-07"]);

    // A further run finds nothing late and lands nothing.
    let snapshot = files(&landing).into_iter().filter(|f| f.starts_with("raw/domestic/")).collect::<Vec<_>>();
    run_on(&emu, "2021-10-02", "2021-09", "2021-09", &landing);
    assert_eq!(files(&landing).into_iter().filter(|f| f.starts_with("raw/domestic/")).collect::<Vec<_>>(), snapshot);
}

#[test]
fn change_events_remove_certificates_and_move_uprns_in_the_views() {
    let tmp = tempfile::tempdir().unwrap();
    let landing = tmp.path().join("data");
    let emu = emulator(sample_data(), "2021-09-15", vec![]);
    run_on(&emu, "2021-09-15", "2021-01", "2021-08", &landing);
    let want: u64 = emu.expected()["domestic"].values().sum();
    drop(emu);

    let lines = landed(&landing, "domestic");
    let pick = |i: usize| -> (String, Value) {
        let l = &lines[i];
        (l["certificate_number"].as_str().unwrap().to_string(), l["uprn"].clone())
    };
    let (removed, _) = pick(3);
    let (moved, old_uprn) = pick(lines.len() / 2);
    let new_uprn: i64 = 990_000_000_123;
    assert_ne!(old_uprn.as_str(), Some(new_uprn.to_string().as_str()));

    // Days later the register removes one certificate and moves another.
    let deltas = vec![
        format!("removed:{removed}@2021-09-16T09:30:00Z").parse().unwrap(),
        format!("uprn:{moved}={new_uprn}@2021-09-17").parse().unwrap(),
    ];
    let emu = emulator(sample_data(), "2021-10-02", deltas);
    let out = run_on(&emu, "2021-10-02", "2021-09", "2021-09", &landing);
    assert!(!text(&out).contains("error"), "{}", text(&out));

    let db = duck(&landing);
    assert_eq!(count(&db, "SELECT count(*) FROM certificate_events"), 2, "both events landed and loaded once");
    // The raw table keeps what was landed; the views follow the register.
    assert_eq!(count(&db, "SELECT count(*) FROM domestic_raw_json") as u64, want);
    assert_eq!(count(&db, "SELECT count(*) FROM enr_domestic_certificates_v") as u64, want - 1);
    assert_eq!(count(&db, &format!("SELECT count(*) FROM enr_domestic_certificates_v WHERE certificate_number = '{removed}'")), 0);
    let uprn: String = db
        .query_row(&format!("SELECT CAST(uprn AS VARCHAR) FROM enr_domestic_certificates_v WHERE certificate_number = '{moved}'"), [], |r| r.get(0))
        .unwrap();
    assert_eq!(uprn, new_uprn.to_string(), "the view shows the certificate's new UPRN");

    // Running again the same day reads nothing twice.
    drop(db);
    run_on(&emu, "2021-10-02", "2021-09", "2021-09", &landing);
    assert_eq!(count(&duck(&landing), "SELECT count(*) FROM certificate_events"), 2);
}
