//! ODC v1 routes over a real socket.

mod common;

use std::collections::{BTreeSet, HashMap};

use common::*;
use serde_json::{Value, json};

fn search(s: &Server, kind: &str, q: &[(&str, &str)], accept: &str) -> Resp {
    s.odc(&format!("/api/v1/{kind}/search"), q, accept)
}

const JAN_TO_AUG: [(&str, &str); 4] = [
    ("from-month", "1"),
    ("from-year", "2021"),
    ("to-month", "8"),
    ("to-year", "2021"),
];

/// Follows `X-Next-Search-After` to the end; returns the pages.
fn all_pages(
    s: &Server,
    kind: &str,
    window: &[(&str, &str)],
    size: &str,
    accept: &str,
) -> Vec<Resp> {
    let mut pages = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let mut q = window.to_vec();
        q.push(("size", size));
        if let Some(a) = &after {
            q.push(("search-after", a));
        }
        let r = search(s, kind, &q, accept);
        assert_eq!(r.status, 200, "{}", r.body);
        after = r.header("x-next-search-after").map(str::to_owned);
        pages.push(r);
        if after.is_none() {
            return pages;
        }
        assert!(pages.len() < 1000, "runaway paging");
    }
}

#[test]
fn json_paging_returns_every_row_exactly_once() {
    let s = start(config());
    let pages = all_pages(&s, "domestic", &JAN_TO_AUG, "100", "application/json");
    assert_eq!(pages.len(), 17, "1,624 rows in pages of 100");
    let source = rows(DOMESTIC);
    let header: Vec<String> = csv::Reader::from_path(fixture(DOMESTIC))
        .unwrap()
        .headers()
        .unwrap()
        .iter()
        .map(|c| c.to_lowercase().replace('_', "-"))
        .collect();
    let mut keys = Vec::new();
    let mut previous = (String::new(), String::new());
    for page in &pages {
        let body = page.json();
        assert_eq!(body["column-names"], json!(header));
        for row in body["rows"].as_array().unwrap() {
            let row = row.as_object().unwrap();
            assert_eq!(row.len(), 92);
            assert!(row.values().all(Value::is_string), "every value a string");
            let key = (
                row["lodgement-date"].as_str().unwrap().to_owned(),
                row["lmk-key"].as_str().unwrap().to_owned(),
            );
            assert!(key.0 >= previous.0, "ascending lodgement date");
            previous = key.clone();
            keys.push(key.1);
        }
    }
    assert_eq!(keys.len(), 1624);
    let unique: BTreeSet<&String> = keys.iter().collect();
    assert_eq!(unique.len(), 1624, "no row twice");
    let expected: BTreeSet<&String> = source.iter().map(|r| &r["LMK_KEY"]).collect();
    assert_eq!(unique, expected);
    // The last page carries no cursor; the others do (checked by the loop).
    assert!(
        pages
            .last()
            .unwrap()
            .header("x-next-search-after")
            .is_none()
    );
}

#[test]
fn rows_are_the_source_rows_verbatim() {
    let s = start(config());
    let source = rows(DOMESTIC);
    let src = source.iter().find(|r| r["UPRN"].is_empty()).unwrap();
    let r = s.odc(
        &format!("/api/v1/domestic/certificate/{}", src["LMK_KEY"]),
        &[],
        "application/json",
    );
    assert_eq!(r.status, 200);
    let body = r.json();
    let rows = body["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 1);
    let row = rows[0].as_object().unwrap();
    for (column, value) in src {
        assert_eq!(
            row[&column.to_lowercase().replace('_', "-")],
            value.as_str(),
            "{column}"
        );
    }
    assert_eq!(row["uprn"], "");

    let r = s.odc(
        "/api/v1/domestic/certificate/no-such-key",
        &[],
        "application/json",
    );
    assert_eq!(r.status, 404);
    // A key of another kind is not found under this kind.
    let nd = &rows_of(NON_DOMESTIC)[0];
    let r = s.odc(
        &format!("/api/v1/domestic/certificate/{}", nd),
        &[],
        "application/json",
    );
    assert_eq!(r.status, 404);
    let r = s.odc(
        &format!("/api/v1/non-domestic/certificate/{}", nd),
        &[],
        "text/csv",
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.body.lines().count(), 2);
}

fn rows_of(file: &str) -> Vec<String> {
    rows(file)
        .into_iter()
        .map(|r| r["LMK_KEY"].clone())
        .collect()
}

#[test]
fn csv_pages_repeat_the_header() {
    let s = start(config());
    let pages = all_pages(&s, "domestic", &JAN_TO_AUG, "500", "text/csv");
    assert_eq!(pages.len(), 4);
    let mut keys = BTreeSet::new();
    let mut first_header: Option<csv::StringRecord> = None;
    for page in &pages {
        assert!(page.header("content-type").unwrap().starts_with("text/csv"));
        let mut r = csv::Reader::from_reader(page.body.as_bytes());
        let header = r.headers().unwrap().clone();
        assert_eq!(&header[0], "lmk-key");
        match &first_header {
            None => first_header = Some(header.clone()),
            Some(h) => assert_eq!(h, &header, "every page starts with the same header"),
        }
        for rec in r.records() {
            assert!(keys.insert(rec.unwrap()[0].to_owned()));
        }
    }
    assert_eq!(keys.len(), 1624);
}

#[test]
fn no_results_is_an_empty_200() {
    let s = start(config());
    let window = [
        ("from-month", "1"),
        ("from-year", "2020"),
        ("to-month", "12"),
        ("to-year", "2020"),
    ];
    for accept in ["application/json", "text/csv"] {
        let r = search(&s, "domestic", &window, accept);
        assert_eq!(r.status, 200);
        assert_eq!(r.body, "");
        assert!(r.header("x-next-search-after").is_none());
    }
    // The empty month of the synthetic data.
    let april = [
        ("from-month", "4"),
        ("from-year", "2021"),
        ("to-month", "4"),
        ("to-year", "2021"),
    ];
    for kind in ["non-domestic", "display"] {
        let r = search(&s, kind, &april, "application/json");
        assert_eq!((r.status, r.body.as_str()), (200, ""));
    }
}

#[test]
fn months_match_the_data() {
    let s = start(config());
    let expected = s.running().emulator().expected();
    for (kind, file) in [
        ("domestic", DOMESTIC),
        ("non-domestic", NON_DOMESTIC),
        ("display", DISPLAY),
    ] {
        let mut by_month: HashMap<String, u64> = HashMap::new();
        for r in rows(file) {
            *by_month
                .entry(r["LODGEMENT_DATE"][..7].to_owned())
                .or_default() += 1;
        }
        for month in 1..=8 {
            let m = month.to_string();
            let window = [
                ("from-month", m.as_str()),
                ("from-year", "2021"),
                ("to-month", m.as_str()),
                ("to-year", "2021"),
            ];
            let got: usize = all_pages(&s, kind, &window, "5000", "application/json")
                .iter()
                .filter(|p| !p.body.is_empty())
                .map(|p| p.json()["rows"].as_array().unwrap().len())
                .sum();
            let ym = format!("2021-{month:02}");
            let want = by_month.get(&ym).copied().unwrap_or(0);
            assert_eq!(got as u64, want, "{kind} {ym}");
            assert_eq!(
                expected.month(kind.parse().unwrap(), &ym),
                want,
                "{kind} {ym}"
            );
        }
    }
}

#[test]
fn filters() {
    let s = start(config());
    let count = |kind: &str, q: &[(&str, &str)]| -> usize {
        let mut q = q.to_vec();
        q.extend(JAN_TO_AUG);
        all_pages(&s, kind, &q, "5000", "application/json")
            .iter()
            .filter(|p| !p.body.is_empty())
            .map(|p| p.json()["rows"].as_array().unwrap().len())
            .sum()
    };
    let dom = rows(DOMESTIC);
    assert_eq!(
        count("domestic", &[("postcode", "ts25")]),
        dom.iter()
            .filter(|r| r["POSTCODE"].starts_with("TS25"))
            .count()
    );
    assert_eq!(
        count("domestic", &[("energy-band", "b")]),
        dom.iter()
            .filter(|r| r["CURRENT_ENERGY_RATING"] == "B")
            .count()
    );
    let uprn = dom[0]["UPRN"].clone();
    assert_eq!(
        count("domestic", &[("uprn", &uprn)]),
        dom.iter().filter(|r| r["UPRN"] == uprn).count()
    );
    let nd = rows(NON_DOMESTIC);
    assert_eq!(
        count("non-domestic", &[("local-authority", "E06000002")]),
        nd.iter()
            .filter(|r| r["LOCAL_AUTHORITY"] == "E06000002")
            .count()
    );
}

#[test]
fn bad_parameters_are_400s() {
    let s = start(config());
    for q in [
        vec![("from-month", "13")],
        vec![("from-month", "x")],
        vec![("to-month", "0")],
        vec![("from-year", "2007")],
        vec![("to-year", "2027")],
        vec![("size", "0")],
        vec![("size", "5001")],
        vec![("search-after", "not-a-cursor")],
        vec![("uprn", "abc")],
    ] {
        let r = search(&s, "domestic", &q, "application/json");
        assert_eq!(r.status, 400, "{q:?}");
    }
    // Default size is 25.
    let r = search(&s, "domestic", &JAN_TO_AUG, "application/json");
    assert_eq!(r.json()["rows"].as_array().unwrap().len(), 25);
    assert!(r.header("x-next-search-after").is_some());
    // Formats the emulator does not produce.
    assert_eq!(
        search(&s, "domestic", &JAN_TO_AUG, "application/zip").status,
        406
    );
}

#[test]
fn auth_and_info() {
    let s = start(config());
    for auth in [
        Auth::None,
        Auth::Basic(EMAIL, "wrong"),
        Auth::Basic("wrong", API_KEY),
        Auth::Bearer(TOKEN),
    ] {
        let r = s.get(
            "/api/v1/domestic/search",
            auth,
            &JAN_TO_AUG,
            Some("application/json"),
        );
        assert_eq!(r.status, 401);
    }
    let r = s.get("/api/v1/info", Auth::None, &[], None);
    assert_eq!(r.status, 200);
    assert_eq!(
        r.json(),
        json!({"latestDate": "2021-08-31", "updatedDate": "2026-01-01"})
    );

    let open = start(epc_emulator::Config {
        odc_email: None,
        odc_api_key: None,
        ..config()
    });
    let ok = open.get(
        "/api/v1/domestic/search",
        Auth::Basic("anyone", "anything"),
        &JAN_TO_AUG,
        None,
    );
    assert_eq!(ok.status, 200);
    assert!(ok.json()["rows"].is_array(), "JSON when no Accept is given");
    assert_eq!(
        open.get("/api/v1/domestic/search", Auth::None, &JAN_TO_AUG, None)
            .status,
        401
    );
}
