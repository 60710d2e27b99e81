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
