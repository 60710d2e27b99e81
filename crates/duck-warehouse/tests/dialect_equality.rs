//! The BigQuery text of every view and its DuckDB twin give the same rows.
//!
//! The same landed parts are loaded twice: into bqemulator (BigQuery's REST
//! API: tables created through the tables API with partitioning and
//! clustering, parts uploaded to fake-gcs and loaded by load jobs from
//! `gs://`, the month replace and the `load_log` row by query jobs) and
//! into a DuckDB file through `duck-warehouse`. Each side gets its own
//! dialect's view files, and every view's rows are compared column by
//! column. The emulators must be installed (`scripts/services install`):
//! without them this test fails, it never skips.
//!
//! bqemulator runs BigQuery SQL on DuckDB 1.5.5 after translating it, so
//! this proves the two texts mean the same on the emulator; where the two
//! real engines could still differ (string functions, casts), the views
//! use only constructs with the same definition in both (see
//! docs/views.md).

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::{DATASET, Fixture};
use duck_warehouse::DuckWarehouse;
use epc_model::warehouse::{TableSpec, load_log_table, raw_table, staging_table};
use epc_model::{Dataset, Kind};
use serde_json::{Value, json};
use test_services::{PROJECT, Services, Which};

const BUCKET: &str = "dame-landing";

struct Bq {
    agent: ureq::Agent,
    base: String,
}

impl Bq {
    fn new(url: &str) -> Self {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(300)))
            .build()
            .into();
        Bq { agent, base: format!("{url}/bigquery/v2/projects/{PROJECT}") }
    }

    fn send(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}{path}", self.base);
        let mut response = match (method, body) {
            ("GET", _) => self.agent.get(&url).call(),
            ("POST", Some(b)) => self.agent.post(&url).send_json(b),
            _ => unreachable!(),
        }
        .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
        let status = response.status();
        let text = response.body_mut().read_to_string().unwrap();
        assert!(status.is_success(), "{method} {path}: {status}: {text}");
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    fn create_table(&self, spec: &TableSpec) {
        let fields: Vec<Value> = spec
            .columns
            .iter()
            .map(|c| json!({"name": c.name, "type": c.data_type, "mode": if c.required {"REQUIRED"} else {"NULLABLE"}, "description": c.description}))
            .collect();
        let mut table = json!({
            "tableReference": {"projectId": PROJECT, "datasetId": DATASET, "tableId": spec.name},
            "schema": {"fields": fields},
            "description": spec.description,
        });
        if let Some(field) = &spec.partition_by_month {
            table["timePartitioning"] = json!({"type": "MONTH", "field": field});
        }
        if !spec.cluster_by.is_empty() {
            table["clustering"] = json!({"fields": spec.cluster_by});
        }
        self.send("POST", &format!("/datasets/{DATASET}/tables"), Some(table));
    }

    fn wait(&self, job_id: &str) -> Value {
        let start = Instant::now();
        loop {
            let job = self.send("GET", &format!("/jobs/{job_id}"), None);
            if job["status"]["state"] == "DONE" {
                assert!(job["status"]["errorResult"].is_null(), "job {job_id} failed: {job}");
                return job;
            }
            assert!(start.elapsed() < Duration::from_secs(120), "job {job_id} did not finish");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn load(&self, table: &str, keys: &[String]) {
        let uris: Vec<String> = keys.iter().map(|k| format!("gs://{BUCKET}/{k}")).collect();
        let job = self.send(
            "POST",
            "/jobs",
            Some(json!({"configuration": {"load": {
                "sourceUris": uris,
                "sourceFormat": "NEWLINE_DELIMITED_JSON",
                "writeDisposition": "WRITE_TRUNCATE",
                "destinationTable": {"projectId": PROJECT, "datasetId": DATASET, "tableId": table},
            }, "labels": {"system": "dame", "stage": "ingest"}}})),
        );
        self.wait(job["jobReference"]["jobId"].as_str().unwrap());
    }

    /// Runs a query; returns (schema fields, rows), all pages.
    fn query(&self, sql: &str) -> (Vec<Value>, Vec<Value>) {
        let mut r = self.send("POST", "/queries", Some(json!({"query": sql, "useLegacySql": false, "timeoutMs": 120000})));
        let job_id = r["jobReference"]["jobId"].as_str().unwrap().to_string();
        let start = Instant::now();
        while r["jobComplete"] != json!(true) {
            assert!(start.elapsed() < Duration::from_secs(180), "query did not finish: {sql}");
            r = self.send("GET", &format!("/queries/{job_id}?timeoutMs=10000"), None);
        }
        if let Some(errors) = r.get("errors").filter(|e| !e.is_null()) {
            panic!("query failed: {errors}\n{sql}");
        }
        let fields = r["schema"]["fields"].as_array().cloned().unwrap_or_default();
        let mut rows = r["rows"].as_array().cloned().unwrap_or_default();
        while let Some(token) = r["pageToken"].as_str().map(str::to_string) {
            r = self.send("GET", &format!("/queries/{job_id}?pageToken={token}"), None);
            rows.extend(r["rows"].as_array().cloned().unwrap_or_default());
        }
        (fields, rows)
    }
}

fn upload(services: &Services, key: &str, bytes: &[u8]) {
    let url = format!("{}/upload/storage/v1/b/{BUCKET}/o?uploadType=media&name={}", services.gcs_url, key.replace('/', "%2F"));
    ureq::post(&url).header("Content-Type", "application/octet-stream").send(bytes).unwrap_or_else(|e| panic!("uploading {key}: {e}"));
}

/// Loads the fixture into bqemulator as the BigQuery load step does.
fn load_bigquery(bq: &Bq, services: &Services, fixture: &Fixture) {
    services.create_bucket(BUCKET).unwrap();
    for p in &fixture.parts {
        upload(services, &p.key, &p.bytes);
    }
    bq.send("POST", "/datasets", Some(json!({"datasetReference": {"projectId": PROJECT, "datasetId": DATASET}, "location": "EU"})));
    for kind in Kind::ALL {
        bq.create_table(&raw_table(Dataset::certificates(kind)));
    }
    bq.create_table(&load_log_table());
    bq.create_table(&epc_model::warehouse::events_table());
    let cols = common::landed_columns();
    let table = |t: &str| format!("`{PROJECT}.{DATASET}.{t}`");
    for load in &fixture.loads {
        let dataset = Dataset::certificates(load.kind);
        let staging = staging_table(dataset, load.month);
        bq.create_table(&staging);
        if !load.keys.is_empty() {
            bq.load(&staging.name, &load.keys);
        }
        let sql = format!(
            "BEGIN TRANSACTION;
             DELETE FROM {raw} WHERE lodgement_date BETWEEN DATE '{first}' AND DATE '{last}';
             INSERT INTO {raw} ({cols}, load_id, ingested_at)
               SELECT {cols}, '{id}', TIMESTAMP '{at}' FROM {stg};
             INSERT INTO {log} (dataset, month, source, rows_loaded, rows_reported, load_id, loaded_at)
               VALUES ('{ds}', DATE '{first}', '{src}', {rows}, {reported}, '{id}', TIMESTAMP '{at}');
             COMMIT TRANSACTION;",
            raw = table(&dataset.raw_table()),
            stg = table(&staging.name),
            log = table("load_log"),
            first = load.month.first_day(),
            last = load.month.last_day(),
            id = load.load_id,
            at = load.ingested_at,
            ds = dataset.name(),
            src = load.source,
            rows = load.rows,
            reported = load.rows_reported,
        );
        bq.query(&sql);
        bq.query(&format!("DROP TABLE {}", table(&staging.name)));
    }
}

/// A value in a form both sides can be compared in, read with the
/// BigQuery column's type: numbers as f64, timestamps as microseconds,
/// DATETIME with a space, arrays element by element.
fn normal(field: &Value, v: &Value) -> Value {
    if v.is_null() {
        return Value::Null;
    }
    if field["mode"] == "REPEATED" {
        let scalar = json!({"type": field["type"], "mode": "NULLABLE"});
        return Value::Array(v.as_array().unwrap().iter().map(|x| normal(&scalar, x.get("v").unwrap_or(x))).collect());
    }
    let text = match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    match field["type"].as_str().unwrap() {
        "INTEGER" | "INT64" | "FLOAT" | "FLOAT64" | "NUMERIC" => json!(text.parse::<f64>().unwrap()),
        "BOOLEAN" | "BOOL" => json!(text == "true"),
        "DATETIME" => json!(text.replace('T', " ")),
        "TIMESTAMP" => {
            if text.bytes().all(|b| b.is_ascii_digit()) {
                json!(text.parse::<i64>().unwrap())
            } else if let Ok(secs) = text.parse::<f64>() {
                json!((secs * 1e6).round() as i64)
            } else {
                let t = if text.ends_with("+00") { format!("{text}:00") } else { text.clone() };
                let ts: jiff::Timestamp = t.replace(' ', "T").parse().unwrap_or_else(|e| panic!("timestamp {text}: {e}"));
                json!(ts.as_microsecond())
            }
        }
        _ => json!(text),
    }
}

fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
            (x - y).abs() <= 1e-9 * x.abs().max(1.0)
        }
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same(x, y)),
        _ => a == b,
    }
}

#[test]
fn views_give_the_same_rows_in_both_dialects() {
    let services = Services::start(Which::GcsAndBigQuery).expect("the cloud emulators (run scripts/services install)");
    let fixture = common::build();

    // DuckDB.
    let dir = tempfile::tempdir().unwrap();
    common::write_landing(&dir.path().join("landing"), &fixture);
    let db = dir.path().join("warehouse.duckdb");
    let wh = DuckWarehouse::open(&db, DATASET, dir.path().join("landing")).unwrap();
    common::load_duckdb(&wh, &fixture);
    common::apply_duckdb_views(&wh);

    // BigQuery, on the emulator.
    let bq = Bq::new(&services.bq_url);
    load_bigquery(&bq, &services, &fixture);
    for f in views::files(views::Dialect::BigQuery) {
        bq.query(&f.render(Some(PROJECT), DATASET).unwrap());
    }

    let bq_files = views::files(views::Dialect::BigQuery);
    assert_eq!(bq_files.len(), 5);
    for f in bq_files {
        let view = f.view();
        let (fields, bq_rows) = bq.query(&format!("SELECT * FROM `{PROJECT}.{DATASET}.{view}`"));
        let duck_rows = common::duck_rows(&wh, view, "1");
        assert!(!bq_rows.is_empty(), "{view}: no rows");
        assert_eq!(bq_rows.len(), duck_rows.len(), "{view}: row counts");
        let names: Vec<&str> = fields.iter().map(|f| f["name"].as_str().unwrap()).collect();
        // serde_json's maps sort their keys, so the order comes from the catalogue.
        let duck_names: Vec<String> = wh
            .query(&format!(
                "SELECT column_name FROM information_schema.columns WHERE table_schema = '{DATASET}' AND table_name = '{view}' ORDER BY ordinal_position"
            ))
            .unwrap()
            .iter()
            .map(|r| serde_json::from_str::<Value>(r).unwrap()["column_name"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(names, duck_names, "{view}: columns");

        // Both sides sorted by every column's text, so no ORDER BY
        // collation matters.
        let key = |row: &Vec<Value>| row.iter().map(|v| v.to_string()).collect::<Vec<_>>().join("\u{1f}");
        let mut left: Vec<Vec<Value>> = bq_rows
            .iter()
            .map(|r| fields.iter().zip(r["f"].as_array().unwrap()).map(|(f, c)| normal(f, &c["v"])).collect())
            .collect();
        let mut right: Vec<Vec<Value>> =
            duck_rows.iter().map(|r| fields.iter().map(|f| normal(f, &r[f["name"].as_str().unwrap()])).collect()).collect();
        left.sort_by_key(key);
        right.sort_by_key(key);
        let mut differences = BTreeMap::new();
        for (l, r) in left.iter().zip(&right) {
            for ((name, a), b) in names.iter().zip(l).zip(r) {
                if !same(a, b) {
                    differences.entry(*name).or_insert_with(|| format!("bigquery {a} vs duckdb {b} (row {})", key(l)));
                }
            }
        }
        assert!(differences.is_empty(), "{view}: {differences:#?}");
        eprintln!("{view}: {} rows agree in both dialects", left.len());
    }

    // The file opens in DuckDB 1.5.5 elsewhere (the emulator venv's Python
    // DuckDB, the engine of the duckdb 1.5.5 CLI), views and all.
    drop(wh);
    let python = test_services::venv().join("bin/python");
    let out = std::process::Command::new(&python)
        .arg("-c")
        .arg("import duckdb,sys; c=duckdb.connect(sys.argv[1], read_only=True); print(c.sql('SELECT version(), count(*) FROM epc.latest_domestic_by_uprn_v').fetchone())")
        .arg(&db)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && text.contains("v1.5.5"), "{text}{}", String::from_utf8_lossy(&out.stderr));
}
