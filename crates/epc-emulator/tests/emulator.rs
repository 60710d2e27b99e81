//! Loading, expected counts and the `/_emulator` routes.

mod common;

use common::*;
use epc_emulator::{Config, DataFile, Emulator, Expected, Kind, Stats};

fn load(files: Vec<DataFile>) -> anyhow::Result<Emulator> {
    Emulator::load(Config {
        data: files,
        ..Config::default()
    })
}

#[test]
fn kinds_are_recognised_from_the_headers() {
    for (file, kind, total) in [
        (DOMESTIC, Kind::Domestic, 1624),
        (NON_DOMESTIC, Kind::NonDomestic, 60),
        (DISPLAY, Kind::Display, 55),
    ] {
        let e = load(vec![DataFile::Path(fixture(file))])
            .unwrap()
            .expected();
        for k in Kind::ALL {
            assert_eq!(
                e.total(k),
                if k == kind { total } else { 0 },
                "{file} as {k}"
            );
        }
    }
    let err = load(vec![DataFile::Text {
        name: "mystery.csv".into(),
        csv: "A,B\n1,2\n".into(),
    }])
    .unwrap_err();
    assert!(err.to_string().contains("mystery.csv"), "{err}");
    let err = load(vec![DataFile::Path(fixture("no-such-file.csv"))]).unwrap_err();
    assert!(format!("{err:#}").contains("no-such-file.csv"), "{err:#}");
}

#[test]
fn duplicates_across_files_name_both_places() {
    let text = std::fs::read_to_string(fixture(NON_DOMESTIC)).unwrap();
    let err = load(vec![
        DataFile::Path(fixture(NON_DOMESTIC)),
        DataFile::Text {
            name: "again.csv".into(),
            csv: text,
        },
    ])
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("again.csv line 2") && err.contains("non-domestic-synthetic.csv line 2"),
        "{err}"
    );
}

#[test]
fn expected_counts_match_the_csv() {
    let e = load(all_fixtures()).unwrap().expected();
    let months = [
        "2021-01", "2021-02", "2021-03", "2021-04", "2021-05", "2021-06", "2021-07", "2021-08",
    ];
    let domestic: Vec<u64> = months.iter().map(|m| e.month(Kind::Domestic, m)).collect();
    assert_eq!(domestic, [152, 161, 259, 194, 184, 250, 249, 175]);
    let nd: Vec<u64> = months
        .iter()
        .map(|m| e.month(Kind::NonDomestic, m))
        .collect();
    assert_eq!(nd, [10, 18, 12, 0, 9, 11, 0, 0]);
    let dec: Vec<u64> = months.iter().map(|m| e.month(Kind::Display, m)).collect();
    assert_eq!(dec, [8, 16, 10, 0, 12, 9, 0, 0]);
    assert!(e.day(Kind::NonDomestic, "2021-02-15") >= 12);
    assert!(e.day(Kind::Display, "2021-02-15") >= 12);
    assert_eq!(e.total(Kind::Domestic), 1624);
}

#[test]
fn emulator_routes_report_stats_and_expected() {
    let s = start(config());
    let window = [("date_start", "2021-01-01"), ("date_end", "2021-01-31")];
    s.gepbd("/api/domestic/search", &window);
    s.gepbd("/api/domestic/search", &window);
    s.get("/api/domestic/search", Auth::None, &window, None);
    s.gepbd("/api/domestic/search", &[("page_size", "0")]);
    s.odc("/api/v1/display/certificate/nope", &[], "application/json");
    s.gepbd("/api/elsewhere", &[]);

    let stats: Stats =
        serde_json::from_str(&s.get("/_emulator/stats", Auth::None, &[], None).body).unwrap();
    assert_eq!(stats, s.running().stats());
    assert_eq!(stats.count("GET /api/domestic/search", 200), 2);
    assert_eq!(stats.count("GET /api/domestic/search", 403), 1);
    assert_eq!(stats.count("GET /api/domestic/search", 400), 1);
    assert_eq!(stats.route_total("GET /api/domestic/search"), 4);
    assert_eq!(
        stats.count("GET /api/v1/display/certificate/{lmk-key}", 404),
        1
    );
    assert_eq!(stats.count("GET (unmatched)", 404), 1);
    assert_eq!(stats.total, 6, "the /_emulator routes are not counted");

    let r = s.get("/_emulator/expected", Auth::None, &[], None);
    let expected: Expected = serde_json::from_str(&r.body).unwrap();
    assert_eq!(expected, s.running().emulator().expected());
    let raw = r.json();
    assert_eq!(raw["kinds"]["domestic"]["months"]["2021-03"], 259);
    assert_eq!(raw["kinds"]["non-domestic"]["total"], 60);
}

#[test]
fn url_and_shutdown() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let emulator = Emulator::load(config()).unwrap();
        let running = emulator
            .start("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let url = running.url();
        assert!(
            url.starts_with("http://127.0.0.1:") && !url.ends_with(":0"),
            "{url}"
        );
        let addr = running.addr;
        running.shutdown().await.unwrap();
        assert!(
            tokio::net::TcpStream::connect(addr).await.is_err(),
            "stopped listening"
        );
    });
}
