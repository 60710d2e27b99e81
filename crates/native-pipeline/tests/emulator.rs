//! The native path lands what the components land: every row of a sample
//! month once, for both APIs.

use epc_emulator::{Config, DataFile, Emulator};
use epc_model::{Kind, Source};
use epc_source::{Api, Credentials};
use http_client::Client;
use native_pipeline::{HyperTransport, MonthJob, run_month};
use std::path::Path;

fn fixture(name: &str) -> DataFile {
    DataFile::Path(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/odc").join(name))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lands_a_sample_month_from_both_apis() {
    let emulator = Emulator::load(Config { data: vec![fixture("domestic-E06000001-2021-01-to-08.csv")], seed: 3, ..Config::default() })
        .unwrap();
    let running = emulator.start(([127, 0, 0, 1], 0).into()).await.unwrap();
    let want = running.emulator().expected().kinds[&epc_emulator::Kind::Domestic].months["2021-02"];
    for source in [Source::Gepbd, Source::Odc] {
        let dir = tempfile::tempdir().unwrap();
        let credentials = Credentials::for_source(source, Some("t".into()), Some("e@x".into()), Some("k".into())).unwrap();
        let job = MonthJob {
            api: Api::new(source, &running.url()).unwrap(),
            credentials,
            kind: Kind::Domestic,
            month: "2021-02".parse().unwrap(),
            page_size: if source == Source::Odc { 100 } else { 5000 },
            last_day: jiff::civil::date(2025, 1, 1),
            landing: dir.path().to_path_buf(),
        };
        let client = Client::new(HyperTransport::default());
        let out = run_month(&client, &job).await.unwrap();
        assert_eq!(out.rows, want, "{source}");
        assert!(dir.path().join("state/domestic/202102/done.json").exists());
        // Run again: the month is complete, nothing is fetched.
        let again = run_month(&Client::new(HyperTransport::default()), &job).await.unwrap();
        assert_eq!(again.rows, 0);
    }
    running.shutdown().await.unwrap();
}

/// A GEPBD day larger than a page is searched once, not once per page: the
/// pages after the first continue from the window the first one read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_day_is_searched_once_however_many_pages_it_fills() {
    let synthetic = epc_emulator::Synthetic {
        per_month: 6000,
        months: epc_emulator::Synthetic::months("2024-01").unwrap(),
        kinds: vec![epc_emulator::Kind::Domestic],
    };
    let emulator = Emulator::load(Config {
        data: vec![fixture("domestic-E06000001-2021-01-to-08.csv")],
        seed: 5,
        synthetic: Some(synthetic),
        ..Config::default()
    })
    .unwrap();
    let running = emulator.start(([127, 0, 0, 1], 0).into()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let job = MonthJob {
        api: Api::new(Source::Gepbd, &running.url()).unwrap(),
        credentials: Credentials::for_source(Source::Gepbd, Some("t".into()), None, None).unwrap(),
        kind: Kind::Domestic,
        month: "2024-01".parse().unwrap(),
        page_size: 5000,
        last_day: jiff::civil::date(2025, 1, 1),
        landing: dir.path().to_path_buf(),
    };
    let out = run_month(&Client::new(HyperTransport::default()), &job).await.unwrap();
    assert_eq!(out.rows, 6000);
    let searches = running.emulator().stats().route_total("GET /api/domestic/search");
    // 31 day windows and the preflight; the 24 pages of 250 would each
    // have searched their window again.
    assert!(searches <= 32, "{searches} searches for 31 days in {} pages", out.pages);
    assert!(out.pages >= 24);
    running.shutdown().await.unwrap();
}
