//! GEPBD routes over a real socket.

mod common;

use std::collections::{BTreeSet, HashMap};

use common::*;
use epc_emulator::{Config, Kind, gepbd_certificate_number};
use jiff::civil::Date;
use serde_json::{Value, json};

const ROW_KEYS: [&str; 13] = [
    "certificateNumber",
    "addressLine1",
    "addressLine2",
    "addressLine3",
    "addressLine4",
    "postcode",
    "postTown",
    "council",
    "constituency",
    "currentEnergyEfficiencyBand",
    "registrationDate",
    "uprn",
    "schemaType",
];

fn search(s: &Server, kind: &str, q: &[(&str, &str)]) -> Resp {
    s.gepbd(&format!("/api/{kind}/search"), q)
}

fn error_of(r: &Resp) -> String {
    r.json()["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no error in {}", r.body))
        .to_owned()
}

#[test]
fn a_month_window_returns_every_row_of_the_month() {
    let s = start(config());
    let r = search(
        &s,
        "domestic",
        &[("date_start", "2021-01-01"), ("date_end", "2021-01-31")],
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let body = r.json();
    assert_eq!(
        body["pagination"],
        json!({"totalRecords": 152, "currentPage": 1, "totalPages": 1, "nextPage": null, "prevPage": null, "pageSize": 5000})
    );
    let rows = body["data"].as_array().unwrap();
    assert_eq!(rows.len(), 152);
    let numbers: BTreeSet<&str> = rows
        .iter()
        .map(|r| r["certificateNumber"].as_str().unwrap())
        .collect();
    assert_eq!(numbers.len(), 152);
    let mut previous = "9999-99-99".to_owned();
    for row in rows {
        let keys: BTreeSet<&str> = row
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(keys, ROW_KEYS.into_iter().collect(), "{row}");
        let date = row["registrationDate"].as_str().unwrap().to_owned();
        assert!(date.starts_with("2021-01-"), "{date}");
        assert!(date <= previous, "registration_date DESC");
        previous = date;
        assert!(row["uprn"].is_i64() || row["uprn"].is_null());
        assert_eq!(row["council"], "Hartlepool");
        assert!(matches!(
            row["schemaType"].as_str(),
            Some("RdSAP-Schema-21.0.1" | "SAP-Schema-19.2.0")
        ));
    }
    // The rows are the CSV's January rows.
    let expected: BTreeSet<String> = rows_of_month(DOMESTIC, "2021-01")
        .iter()
        .map(|r| gepbd_certificate_number(&r["LMK_KEY"]))
        .collect();
    assert_eq!(numbers, expected.iter().map(String::as_str).collect());
}

fn rows_of_month(file: &str, month: &str) -> Vec<HashMap<String, String>> {
    rows(file)
        .into_iter()
        .filter(|r| r["LODGEMENT_DATE"].starts_with(month))
        .collect()
}

#[test]
fn rows_carry_the_source_values() {
    let s = start(config());
    let src = &rows(DOMESTIC)[0];
    let number = gepbd_certificate_number(&src["LMK_KEY"]);
    let r = search(
        &s,
        "domestic",
        &[
            ("postcode", &src["POSTCODE"]),
            ("date_start", &src["LODGEMENT_DATE"]),
            ("date_end", &src["LODGEMENT_DATE"]),
        ],
    );
    let body = r.json();
    let row = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["certificateNumber"] == number.as_str())
        .unwrap();
    assert_eq!(row["addressLine1"], src["ADDRESS1"].as_str());
    assert_eq!(row["addressLine2"], src["ADDRESS2"].as_str());
    assert_eq!(row["addressLine3"], Value::Null, "empty → null");
    assert_eq!(row["addressLine4"], Value::Null);
    assert_eq!(row["postcode"], src["POSTCODE"].as_str());
    assert_eq!(row["postTown"], src["POSTTOWN"].as_str());
    assert_eq!(row["constituency"], src["CONSTITUENCY_LABEL"].as_str());
    assert_eq!(
        row["currentEnergyEfficiencyBand"],
        src["CURRENT_ENERGY_RATING"].as_str()
    );
    assert_eq!(row["uprn"], src["UPRN"].parse::<i64>().unwrap());

    // Non-domestic and display rows add relatedRrn and take their own band.
    for (kind, file, band) in [
        ("non-domestic", NON_DOMESTIC, "ASSET_RATING_BAND"),
        ("display", DISPLAY, "OPERATIONAL_RATING_BAND"),
    ] {
        let r = search(
            &s,
            kind,
            &[("date_start", "2021-01-01"), ("date_end", "2021-06-30")],
        );
        assert_eq!(r.status, 200);
        let body = r.json();
        let by_number: HashMap<String, &Value> = body["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| (r["certificateNumber"].as_str().unwrap().to_owned(), r))
            .collect();
        let src = rows(file);
        assert_eq!(by_number.len(), src.len());
        for row in &src {
            let got = by_number[&gepbd_certificate_number(&row["LMK_KEY"])];
            assert_eq!(got["currentEnergyEfficiencyBand"], row[band].as_str());
            assert_eq!(got["schemaType"], "CEPC-8.0.0");
            let rrn = got["relatedRrn"].as_str().unwrap();
            assert_eq!(rrn.len(), 24);
            assert_ne!(rrn, got["certificateNumber"].as_str().unwrap());
            match row["UPRN"].as_str() {
                "" => assert_eq!(got["uprn"], Value::Null),
                u => assert_eq!(got["uprn"], u.parse::<i64>().unwrap()),
            }
        }
    }
}

#[test]
fn paging_fields_and_page_out_of_range() {
    let s = start(config());
    let q = |page: &'static str| {
        [
            ("date_start", "2021-01-01"),
            ("date_end", "2021-01-31"),
            ("page_size", "100"),
            ("current_page", page),
        ]
    };
    let p1 = search(&s, "domestic", &q("1")).json();
    assert_eq!(
        p1["pagination"],
        json!({"totalRecords": 152, "currentPage": 1, "totalPages": 2, "nextPage": 2, "prevPage": null, "pageSize": 100})
    );
    assert_eq!(p1["data"].as_array().unwrap().len(), 100);
    let p2 = search(&s, "domestic", &q("2")).json();
    assert_eq!(
        p2["pagination"],
        json!({"totalRecords": 152, "currentPage": 2, "totalPages": 2, "nextPage": null, "prevPage": 1, "pageSize": 100})
    );
    assert_eq!(p2["data"].as_array().unwrap().len(), 52);
    let p3 = search(&s, "domestic", &q("3"));
    assert_eq!(p3.status, 400);
    assert_eq!(
        error_of(&p3),
        "The requested page number 3 is out of range. Total pages: 2"
    );
    let p0 = search(&s, "domestic", &q("0"));
    assert_eq!(p0.status, 400);
    assert_eq!(
        error_of(&p0),
        "The requested page number 0 is out of range. Total pages: 2"
    );
}

#[test]
fn band_and_other_filters() {
    let s = start(config());
    let all = rows(DOMESTIC);
    let count = |pred: &dyn Fn(&HashMap<String, String>) -> bool| {
        all.iter().filter(|r| pred(r)).count() as u64
    };
    let total = |r: Resp| -> u64 {
        assert_eq!(r.status, 200, "{}", r.body);
        r.json()["pagination"]["totalRecords"].as_u64().unwrap()
    };
    let window = [("date_start", "2021-01-01"), ("date_end", "2021-08-31")];
    let with = |extra: &[(&'static str, &'static str)]| {
        let mut q = window.to_vec();
        q.extend_from_slice(extra);
        q
    };
    assert_eq!(
        total(search(
            &s,
            "domestic",
            &with(&[("eff_rating[]", "A"), ("eff_rating[]", "G")])
        )),
        count(&|r| matches!(r["CURRENT_ENERGY_RATING"].as_str(), "A" | "G"))
    );
    assert_eq!(
        total(search(
            &s,
            "domestic",
            &with(&[("efficiency_rating[]", "f")])
        )),
        count(&|r| r["CURRENT_ENERGY_RATING"] == "F")
    );
    // Any other filter makes the dates optional.
    assert_eq!(
        total(search(&s, "domestic", &[("postcode", "ts25 3jh")])),
        count(&|r| r["POSTCODE"] == "TS25 3JH")
    );
    assert_eq!(
        total(search(&s, "domestic", &[("council[]", "hartlepool")])),
        1624
    );
    assert_eq!(
        total(search(&s, "domestic", &[("constituency[]", "Hartlepool")])),
        1624
    );
    let uprn = all[3]["UPRN"].clone();
    let r = search(&s, "domestic", &[("uprn", uprn.as_str())]);
    assert_eq!(total(r), count(&|r| r["UPRN"] == uprn));
    assert_eq!(
        total(search(&s, "domestic", &[("address", "heriot grange")])),
        count(&|r| r["ADDRESS"].to_lowercase().contains("heriot grange"))
    );
    // Non-domestic: A+ is a band too.
    let nd = rows(NON_DOMESTIC);
    let r = search(&s, "non-domestic", &[("eff_rating[]", "A+")]);
    assert_eq!(
        total(r),
        nd.iter().filter(|r| r["ASSET_RATING_BAND"] == "A+").count() as u64
    );
}

#[test]
fn no_results_is_a_404() {
    let s = start(config());
    let r = search(
        &s,
        "domestic",
        &[("date_start", "2020-01-01"), ("date_end", "2020-01-31")],
    );
    assert_eq!(r.status, 404);
    assert_eq!(
        r.json(),
        json!({"error": "No certificates could be found for that query"})
    );
    // April 2021 is empty in the synthetic non-domestic data.
    let r = search(
        &s,
        "non-domestic",
        &[("date_start", "2021-04-01"), ("date_end", "2021-04-30")],
    );
    assert_eq!(r.status, 404);
    let r = search(
        &s,
        "domestic",
        &[
            ("date_start", "2021-01-01"),
            ("date_end", "2021-01-31"),
            ("eff_rating[]", "A"),
        ],
    );
    assert_eq!(r.status, 404);
}

#[test]
fn bad_requests_are_400s_with_the_services_messages() {
    let mut cfg = config();
    cfg.today = Some(Date::new(2021, 8, 6).unwrap());
    let s = start(cfg);
    let cases: &[(&[(&str, &str)], &str)] = &[
        (
            &[],
            "The search query was invalid - please provide a valid date range or search parameter",
        ),
        (
            &[("date_start", "2021-01-01")],
            "The search query was invalid - please provide a valid date range or search parameter",
        ),
        (
            &[("date_start", "2021-02-01"), ("date_end", "2021-01-01")],
            "The search query was invalid - please provide a valid date range",
        ),
        (
            &[("date_start", "2021-02-01"), ("date_end", "2021-02-30")],
            "The search query was invalid - please provide a valid date range",
        ),
        (
            &[("date_start", "2021-08-01"), ("date_end", "2021-08-06")],
            "The search query was invalid - the date cannot include today",
        ),
        (
            &[("date_start", "2021-08-01"), ("date_end", "2021-09-30")],
            "The search query was invalid - the date cannot include today",
        ),
        (
            &[
                ("date_start", "2021-01-01"),
                ("date_end", "2021-01-31"),
                ("page_size", "0"),
            ],
            "The search query was invalid - provide valid page_size between 1 and 5000",
        ),
        (
            &[
                ("date_start", "2021-01-01"),
                ("date_end", "2021-01-31"),
                ("page_size", "5001"),
            ],
            "The search query was invalid - provide valid page_size between 1 and 5000",
        ),
        (
            &[
                ("date_start", "2021-01-01"),
                ("date_end", "2021-01-31"),
                ("page_size", "ten"),
            ],
            "The search query was invalid - provide valid page_size between 1 and 5000",
        ),
        (
            &[("uprn", "0")],
            "The search query was invalid - the uprn should be an integer greater than 0",
        ),
        (
            &[("uprn", "abc")],
            "The search query was invalid - the uprn should be an integer greater than 0",
        ),
        (
            &[("council[]", "Atlantis")],
            "The search query was invalid - provide valid council name(s)",
        ),
        (
            &[("constituency[]", "Atlantis")],
            "The search query was invalid - provide valid constituency name(s)",
        ),
        (
            &[("postcode", "!!")],
            "The search query was invalid - please provide a valid postcode",
        ),
    ];
    for (query, message) in cases {
        let r = search(&s, "domestic", query);
        assert_eq!(r.status, 400, "{query:?}: {}", r.body);
        assert_eq!(error_of(&r), *message, "{query:?}");
    }
    // The day before "today" is fine.
    let r = search(
        &s,
        "domestic",
        &[("date_start", "2021-08-01"), ("date_end", "2021-08-05")],
    );
    assert_eq!(r.status, 200, "{}", r.body);
}

#[test]
fn rows_registered_today_are_not_served_yet() {
    let mut cfg = config();
    cfg.today = Some(Date::new(2021, 8, 6).unwrap());
    let s = start(cfg);
    // Filter-only searches have no date range; the service still leaves today out.
    let r = search(&s, "domestic", &[("council[]", "Hartlepool")]);
    let body = r.json();
    let served = body["pagination"]["totalRecords"].as_u64().unwrap();
    let before = rows(DOMESTIC)
        .iter()
        .filter(|r| r["LODGEMENT_DATE"].as_str() < "2021-08-06")
        .count() as u64;
    assert_eq!(served, before);
    assert!(served < 1624);
}

#[test]
fn auth_is_a_403_with_the_services_body() {
    let s = start(config());
    let q = [("date_start", "2021-01-01"), ("date_end", "2021-01-31")];
    let forbidden =
        json!({"errors": [{"code": "UNAUTHORISED", "title": "You are not authenticated"}]});
    for auth in [
        Auth::None,
        Auth::Bearer("wrong"),
        Auth::Basic(EMAIL, API_KEY),
    ] {
        let r = s.get("/api/domestic/search", auth, &q, None);
        assert_eq!(r.status, 403);
        assert_eq!(r.json(), forbidden);
    }
    let r = s.get(
        "/api/certificate",
        Auth::Bearer("wrong"),
        &[("certificate_number", "0000-0000-0000-0000-0000")],
        None,
    );
    assert_eq!(r.status, 403);

    // Without a configured token any non-empty one is accepted, none still is not.
    let open = start(Config {
        token: None,
        ..config()
    });
    assert_eq!(
        open.get("/api/domestic/search", Auth::Bearer("anything"), &q, None)
            .status,
        200
    );
    assert_eq!(
        open.get("/api/domestic/search", Auth::None, &q, None)
            .status,
        403
    );
}

#[test]
fn unknown_paths_are_json_404s() {
    let s = start(config());
    for path in ["/api/commercial/search", "/api/nothing", "/nothing"] {
        let r = s.gepbd(path, &[]);
        assert_eq!(r.status, 404, "{path}");
        assert!(r.json()["error"].is_string());
    }
}

/// Pages through a window the way a naive client would, page by page.
fn page_through(s: &Server, window: &[(&str, &str)], page_size: usize) -> Vec<String> {
    let mut seen = Vec::new();
    let mut page = 1;
    loop {
        let mut q = window.to_vec();
        let size = page_size.to_string();
        let current = page.to_string();
        q.push(("page_size", &size));
        q.push(("current_page", &current));
        let body = search(s, "domestic", &q).json();
        seen.extend(
            body["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["certificateNumber"].as_str().unwrap().to_owned()),
        );
        match body["pagination"]["nextPage"].as_u64() {
            Some(next) => page = next as usize,
            None => return seen,
        }
    }
}

#[test]
fn ordering_is_unstable_across_pages_and_complete_within_one() {
    let s = start(config());
    let emu = s.running().emulator().clone();
    // A window of at least 50 rows starting on 2021-02-01.
    let expected = emu.expected();
    let mut day = Date::new(2021, 2, 1).unwrap();
    let mut count = expected.day(Kind::Domestic, &day.to_string());
    while count < 50 {
        day = day.tomorrow().unwrap();
        count += expected.day(Kind::Domestic, &day.to_string());
    }
    let end = day.to_string();
    let window = [("date_start", "2021-02-01"), ("date_end", end.as_str())];

    let first = page_through(&s, &window, 10);
    let second = page_through(&s, &window, 10);
    assert_eq!(first.len() as u64, count);
    assert_ne!(
        first, second,
        "the order of tied rows must change between requests"
    );
    let unique = |v: &[String]| v.iter().collect::<BTreeSet<_>>().len() as u64;
    assert!(
        unique(&first) < count || unique(&second) < count,
        "paging a multi-page window must show repeats and skips"
    );

    // A window that fits in one page always has all its rows.
    let mut q = window.to_vec();
    q.push(("page_size", "5000"));
    let mut sets = BTreeSet::new();
    let mut orders = BTreeSet::new();
    for _ in 0..5 {
        let body = search(&s, "domestic", &q).json();
        let numbers: Vec<String> = body["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["certificateNumber"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(unique(&numbers), count);
        orders.insert(numbers.clone());
        sets.insert(numbers.into_iter().collect::<BTreeSet<_>>());
    }
    assert_eq!(sets.len(), 1);
    assert!(
        orders.len() > 1,
        "even a single page comes back in varying order"
    );
}

#[test]
fn the_same_seed_gives_the_same_orders() {
    let window = [
        ("date_start", "2021-02-01"),
        ("date_end", "2021-02-10"),
        ("page_size", "7"),
    ];
    let order = || {
        let s = start(config());
        (0..3)
            .map(|_| search(&s, "domestic", &window).body)
            .collect::<Vec<_>>()
    };
    assert_eq!(order(), order());
}
