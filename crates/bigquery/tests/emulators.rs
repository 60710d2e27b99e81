//! The BigQuery client against bqemulator (reading objects that
//! fake-gcs-server holds) over real sockets. The emulators must be
//! installed (`scripts/services install`): these tests fail, never skip,
//! without them.

use bigquery::{BigQuery, BqError, Settings, Table};
use epc_model::warehouse::{labels, raw_table, staging_table};
use epc_model::{Dataset, Kind, Month};
use flate2::Compression;
use flate2::write::GzEncoder;
use google_auth::Auth;
use http_client::native::{NativeTransport, block_on};
use http_client::{Client, Request, Response, Transport, TransportError};
use landing::{GcsStore, ObjectStore};
use serde_json::{Value, json};
use std::io::Write;
use std::sync::atomic::{AtomicU32, Ordering};
use test_services::{PROJECT, Services, Which};

const BUCKET: &str = "dame-landing";

fn settings(dataset: &str) -> Settings {
    Settings { project: PROJECT.into(), dataset: dataset.into(), region: "europe-west2".into() }
}

fn bq(s: &Services, dataset: &str) -> BigQuery<NativeTransport> {
    let auth = Auth::from_settings(Some("ya29.must-not-be-sent".into()), None).unwrap();
    BigQuery::new(Client::new(NativeTransport::default()), auth, settings(dataset), Some(&s.bq_url)).unwrap()
}

/// A landed line as gzip-land writes it (see epc_model::Envelope).
fn line(n: u32, day: u32, postcode: &str) -> Value {
    json!({
        "source": "gepbd", "kind": "domestic",
        "certificate_number": format!("0000-0000-0000-0000-{n:04}"), "lmk_key": null,
        "lodgement_date": format!("2021-01-{day:02}"), "uprn": format!("{}", 100 + n), "postcode": postcode,
        "landed_object": "raw/domestic/202101/part-00001.ndjson.gz", "landed_at": "2021-02-01T00:00:00Z",
        "record": {"current-energy-rating": "C", "floor-area": 71.5 + n as f64, "rooms": [n, n + 1], "address": {"town": "Hartlepool"}},
    })
}

fn gz(lines: &[Value]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::default());
    for l in lines {
        writeln!(e, "{l}").unwrap();
    }
    e.finish().unwrap()
}

/// Puts two parts (5 rows) into fake-gcs under `epc/` and returns their
/// `gs://` URIs.
fn land(s: &Services) -> Vec<String> {
    s.create_bucket(BUCKET).unwrap();
    let store = GcsStore::new(&format!("gs://{BUCKET}/epc"), Client::new(NativeTransport::default()), Auth::none(), Some(&s.gcs_url)).unwrap();
    let parts = [
        ("raw/domestic/202101/part-00001.ndjson.gz", vec![line(1, 4, "TS24 7AB"), line(2, 9, "TS25 1AA"), line(3, 31, "TS26 9XY")]),
        ("raw/domestic/202101/part-00002.ndjson.gz", vec![line(4, 1, "TS24 7AB"), line(5, 15, "TS27 3CD")]),
    ];
    parts
        .iter()
        .map(|(key, lines)| {
            assert!(block_on(store.put_new(key, &gz(lines), "application/gzip")).unwrap());
            store.location().uri(key)
        })
        .collect()
}

fn count(b: &BigQuery<NativeTransport>, sql: &str) -> i64 {
    block_on(b.query(sql, &[])).unwrap()[0]["n"].as_i64().unwrap()
}

#[test]
fn tables_loads_queries_and_an_idempotent_month_replace() {
    let s = Services::start(Which::GcsAndBigQuery).expect("emulators start (scripts/services install)");
    let uris = land(&s);
    let b = bq(&s, "epc_test");
    let dataset = Dataset::certificates(Kind::Domestic);
    let month: Month = "2021-01".parse().unwrap();

    // Dataset and a partitioned, clustered raw table, through the tables API.
    let raw = Table::from(&raw_table(dataset));
    block_on(b.ensure_table(&raw)).unwrap();
    block_on(b.ensure_table(&raw)).expect("a second ensure finds the same shape");
    let t = block_on(b.get_table(&raw.name)).unwrap().unwrap();
    assert_eq!(t["timePartitioning"], json!({"type": "MONTH", "field": "lodgement_date"}));
    assert_eq!(t["clustering"]["fields"], json!(["certificate_number", "lmk_key", "postcode", "uprn"]));
    let record = t["schema"]["fields"].as_array().unwrap().iter().find(|f| f["name"] == "record").unwrap();
    assert_eq!(record["type"], "JSON");

    // A load job from gs:// objects into the staging table, with labels.
    let staging = Table::from(&staging_table(dataset, month));
    block_on(b.ensure_table(&staging)).unwrap();
    let job_labels = labels("ingest", "domestic", Some(month));
    let job = block_on(b.load(&staging.name, &uris, &job_labels)).unwrap();
    assert_eq!(job.rows, 5);
    let resource = block_on(b.get_job(&job.id)).unwrap();
    assert_eq!(
        resource["configuration"]["labels"],
        json!({"system": "dame", "stage": "ingest", "kind": "domestic", "month": "202101"})
    );
    // WRITE_TRUNCATE: loading again replaces, never appends.
    assert_eq!(block_on(b.load(&staging.name, &uris, &job_labels)).unwrap().rows, 5);
    let stg = format!("`{}`", b.qualified(&staging.name));
    assert_eq!(count(&b, &format!("SELECT COUNT(*) AS n FROM {stg}")), 5);

    // The JSON column holds the documents as JSON, queryable as such.
    let rows = block_on(b.query(
        &format!(
            "SELECT certificate_number, lodgement_date, JSON_VALUE(record, '$.\"current-energy-rating\"') AS rating, \
             record, landed_at FROM {stg} ORDER BY certificate_number"
        ),
        &labels("query", "domestic", None),
    ))
    .unwrap();
    assert_eq!(rows.len(), 5);
    assert_eq!(rows[0]["rating"], "C");
    assert_eq!(rows[0]["lodgement_date"], "2021-01-04");
    assert_eq!(rows[0]["record"]["address"]["town"], "Hartlepool");
    assert_eq!(rows[0]["record"]["rooms"], json!([1, 2]));
    assert_eq!(rows[0]["landed_at"], "2021-02-01T00:00:00Z");

    // The month replace, as a transaction; twice leaves one copy of each row.
    let raw_ref = format!("`{}`", b.qualified(&raw.name));
    let cols = "source, kind, certificate_number, lmk_key, lodgement_date, uprn, postcode, landed_object, landed_at, record";
    let replace = format!(
        "BEGIN TRANSACTION;\n\
         DELETE FROM {raw_ref} WHERE lodgement_date BETWEEN DATE '2021-01-01' AND DATE '2021-01-31';\n\
         INSERT INTO {raw_ref} ({cols}, load_id, ingested_at) SELECT {cols}, 'load-1', CURRENT_TIMESTAMP() FROM {stg};\n\
         COMMIT TRANSACTION;"
    );
    for _ in 0..2 {
        block_on(b.execute(&replace, &labels("ingest", "domestic", Some(month)))).unwrap();
        assert_eq!(count(&b, &format!("SELECT COUNT(*) AS n FROM {raw_ref}")), 5);
        assert_eq!(count(&b, &format!("SELECT COUNT(DISTINCT certificate_number) AS n FROM {raw_ref}")), 5);
    }
    // DML reports the rows it changed.
    let deleted = block_on(b.execute(&format!("DELETE FROM {raw_ref} WHERE postcode = 'TS24 7AB'"), &[])).unwrap();
    assert_eq!(deleted.rows, 2);

    // Paged results.
    let paged = bq(&s, "epc_test").with_page_size(2);
    let all = block_on(paged.query(&format!("SELECT certificate_number FROM {stg} ORDER BY 1"), &[])).unwrap();
    assert_eq!(all.len(), 5);
    let (requests, _, _) = paged.client().counters().snapshot();
    assert!(requests >= 4, "one insert and three result pages of two rows, not one page: {requests} requests");
    assert_eq!(all[4]["certificate_number"], "0000-0000-0000-0000-0005");

    assert_eq!(block_on(b.drop_table(&staging.name)), Ok(true));
    assert_eq!(block_on(b.drop_table(&staging.name)), Ok(false));
}

#[test]
fn shape_mismatches_and_job_errors_say_what_to_do() {
    let s = Services::start(Which::GcsAndBigQuery).expect("emulators start (scripts/services install)");
    let b = bq(&s, "epc_test");
    block_on(b.ensure_dataset()).unwrap();
    let mut raw = Table::from(&raw_table(Dataset::certificates(Kind::Domestic)));
    let wanted = raw.clone();
    raw.cluster_by = vec!["postcode".into()];
    raw.partition_by_month = None;
    assert!(block_on(b.create_table(&raw)).unwrap());
    let err = block_on(b.ensure_table(&wanted)).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, BqError::Mismatch(_)), "{msg}");
    assert!(msg.contains("partitioning is none, dame wants MONTH on lodgement_date"), "{msg}");
    assert!(msg.contains("clustering is [postcode]") && msg.contains("drop it once") && msg.contains("new table name"), "{msg}");
    assert!(msg.contains("test-project.epc_test.domestic_raw_json"), "{msg}");

    let err = block_on(b.execute("SELECT no_such_column FROM `test-project.epc_test.domestic_raw_json`", &[])).unwrap_err();
    assert_eq!(err.reason(), Some("invalidQuery"), "{err}");
    assert!(err.to_string().contains("no_such_column") && err.to_string().contains("dame_query_"), "{err}");

    // A dataset in another location is not silently reused.
    let elsewhere = BigQuery::new(
        Client::new(NativeTransport::default()),
        Auth::none(),
        Settings { region: "US".into(), ..settings("epc_test") },
        Some(&s.bq_url),
    )
    .unwrap();
    let err = block_on(elsewhere.ensure_dataset()).unwrap_err().to_string();
    assert!(err.contains("is in europe-west2, not US"), "{err}");

    let err = block_on(b.load("no_such_table", &["gs://dame-landing/x.gz".into()], &[])).unwrap_err().to_string();
    assert!(err.contains("does not exist"), "{err}");
}

/// Counts the requests that reach the transport.
struct Counting {
    inner: NativeTransport,
    sent: AtomicU32,
}

impl Transport for Counting {
    async fn send(&self, request: &Request, max_body: usize) -> Result<Response, TransportError> {
        self.sent.fetch_add(1, Ordering::Relaxed);
        self.inner.send(request, max_body).await
    }
    async fn sleep(&self, d: std::time::Duration) {
        self.inner.sleep(d).await
    }
    fn random(&self) -> u64 {
        self.inner.random()
    }
    fn now(&self) -> std::time::Duration {
        self.inner.now()
    }
}

#[test]
fn bad_names_are_refused_before_any_request() {
    // Nothing listens here: any request would fail differently.
    let emulator = Some("127.0.0.1:9");
    let counting = || Client::new(Counting { inner: NativeTransport::default(), sent: AtomicU32::new(0) });
    for bad in [
        Settings { project: "Bad_Project".into(), ..settings("ok") },
        Settings { dataset: "epc; DROP".into(), ..settings("ok") },
        Settings { dataset: "a`b".into(), ..settings("ok") },
        Settings { region: "europe west2".into(), ..settings("ok") },
    ] {
        let err = BigQuery::new(counting(), Auth::none(), bad.clone(), emulator).err().expect("refused");
        assert!(matches!(err, BqError::InvalidInput(_)), "{bad:?}: {err}");
    }

    let b = BigQuery::new(counting(), Auth::none(), settings("epc_test"), emulator).unwrap();
    let mut table = Table::from(&raw_table(Dataset::certificates(Kind::Display)));
    table.name = "raw`; DROP TABLE x".into();
    let uris = vec!["gs://dame-landing/x.gz".to_string()];
    let errors = [
        block_on(b.ensure_table(&table)).unwrap_err(),
        block_on(b.create_table(&table)).unwrap_err(),
        block_on(b.get_table("t-1")).unwrap_err(),
        block_on(b.drop_table("a.b")).unwrap_err(),
        block_on(b.load("t`", &uris, &[])).unwrap_err(),
        block_on(b.load("ok", &["/etc/passwd".into()], &[])).unwrap_err(),
        block_on(b.load("ok", &uris, &[("System".into(), "dame".into())])).unwrap_err(),
        block_on(b.execute("SELECT 1", &[("kind".into(), "Non Domestic".into())])).unwrap_err(),
        block_on(b.get_job("../x")).unwrap_err(),
    ];
    for e in &errors {
        assert!(matches!(e, BqError::InvalidInput(_)), "{e}");
    }
    assert_eq!(b.client().transport().sent.load(Ordering::Relaxed), 0, "no request was sent");
}
