//! Synthetic months: counts, uniqueness, determinism, realism.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use common::*;
use epc_emulator::{Config, Emulator, Kind, Synthetic};
use serde_json::Value;

fn synthetic(per_month: u32, seed: u64) -> Config {
    Config {
        seed,
        synthetic: Some(Synthetic {
            per_month,
            months: Synthetic::months("2024-01..2024-03").unwrap(),
            kinds: vec![Kind::Domestic, Kind::NonDomestic],
        }),
        ..config()
    }
}

/// Every ODC row of one month of `kind`, paged with search-after.
fn odc_month(s: &Server, kind: &str, month: u8) -> Vec<Value> {
    let m = month.to_string();
    let mut out = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let mut q = vec![
            ("from-month", m.as_str()),
            ("from-year", "2024"),
            ("to-month", m.as_str()),
            ("to-year", "2024"),
            ("size", "5000"),
        ];
        if let Some(a) = &after {
            q.push(("search-after", a.as_str()));
        }
        let r = s.odc(&format!("/api/v1/{kind}/search"), &q, "application/json");
        assert_eq!(r.status, 200);
        out.extend(r.json()["rows"].as_array().unwrap().iter().cloned());
        match r.header(epc_emulator::NEXT_SEARCH_AFTER) {
            Some(a) => after = Some(a.to_owned()),
            None => return out,
        }
    }
}

#[test]
fn counts_uniqueness_and_realism() {
    let started = Instant::now();
    let emulator = Emulator::load(synthetic(6000, 9)).unwrap();
    eprintln!("36,000 synthetic rows (+ samples) loaded in {:.2} s (debug build)", started.elapsed().as_secs_f64());
    let e = emulator.expected();
    for month in ["2024-01", "2024-02", "2024-03"] {
        assert_eq!(e.month(Kind::Domestic, month), 6000);
        assert_eq!(e.month(Kind::NonDomestic, month), 6000);
        assert_eq!(e.month(Kind::Display, month), 0);
    }
    assert_eq!(e.total(Kind::Domestic), 1624 + 18000, "the samples stay");
    // Weekday peaks.
    let mut by_weekday: BTreeMap<i8, (u64, u64)> = BTreeMap::new();
    for (day, n) in &e.kinds[&Kind::Domestic].days {
        if day.starts_with("2024-") {
            let d: jiff::civil::Date = day.parse().unwrap();
            let w = by_weekday.entry(d.weekday().to_monday_one_offset()).or_default();
            w.0 += n;
            w.1 += 1;
        }
    }
    let avg = |w: i8| by_weekday[&w].0 as f64 / by_weekday[&w].1 as f64;
    assert!(avg(3) > 3.0 * avg(6) && avg(6) > 1.5 * avg(7), "{by_weekday:?}");

    let s = start(synthetic(6000, 9));
    let rows = odc_month(&s, "domestic", 2);
    assert_eq!(rows.len(), 6000);
    let keys: BTreeSet<&str> = rows.iter().map(|r| r["lmk-key"].as_str().unwrap()).collect();
    assert_eq!(keys.len(), 6000);
    let no_uprn = rows.iter().filter(|r| r["uprn"] == "").count();
    assert!((200..700).contains(&no_uprn), "about 7 % without UPRN: {no_uprn}");
    let bands: BTreeSet<&str> = rows.iter().map(|r| r["current-energy-rating"].as_str().unwrap()).collect();
    assert!(bands.len() >= 5, "{bands:?}");
    let postcodes: BTreeSet<&str> = rows.iter().map(|r| r["postcode"].as_str().unwrap()).collect();
    assert!(postcodes.len() > 1000, "{}", postcodes.len());
    for r in &rows {
        assert!(r["lodgement-date"].as_str().unwrap().starts_with("2024-02-"));
        assert!(r["lodgement-datetime"].as_str().unwrap().starts_with(r["lodgement-date"].as_str().unwrap()));
        let cur: i64 = r["current-energy-efficiency"].as_str().unwrap().parse().unwrap();
        let pot: i64 = r["potential-energy-efficiency"].as_str().unwrap().parse().unwrap();
        assert!(pot >= cur);
    }
    // GEPBD: the same month, day by day, unique certificate numbers.
    let mut numbers = BTreeSet::new();
    for day in 1..=29 {
        let d = format!("2024-02-{day:02}");
        let r = s.gepbd("/api/domestic/search", &[("date_start", &d), ("date_end", &d)]);
        if r.status == 404 {
            continue;
        }
        for row in r.json()["data"].as_array().unwrap() {
            assert!(numbers.insert(row["certificateNumber"].as_str().unwrap().to_owned()));
        }
    }
    assert_eq!(numbers.len(), 6000);
    let nd = odc_month(&s, "non-domestic", 3);
    assert_eq!(nd.len(), 6000);
    let doc = s.gepbd("/api/certificate", &[("certificate_number", numbers.iter().next().unwrap())]);
    assert_eq!(doc.status, 200);
}

#[test]
fn deterministic_by_seed() {
    let a = start(synthetic(2000, 5));
    let b = start(synthetic(2000, 5));
    let c = start(synthetic(2000, 6));
    let q = [
        ("from-month", "1"),
        ("from-year", "2024"),
        ("to-month", "1"),
        ("to-year", "2024"),
        ("size", "500"),
    ];
    let body = |s: &Server| s.odc("/api/v1/domestic/search", &q, "text/csv").body;
    assert_eq!(body(&a), body(&b));
    assert_ne!(body(&a), body(&c));
    assert_eq!(a.running().emulator().expected(), b.running().emulator().expected());

    // Without samples of a kind there is nothing to resample.
    let err = Emulator::load(Config {
        data: vec![epc_emulator::DataFile::Path(fixture(NON_DOMESTIC))],
        ..synthetic(10, 1)
    })
    .unwrap_err();
    assert!(err.to_string().contains("domestic"), "{err}");
}
