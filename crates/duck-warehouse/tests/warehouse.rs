//! The warehouse operations on their own: tables from the epc-model specs,
//! loads that replace in one transaction, scripts, queries as JSON, and
//! the errors a person meets (a locked or damaged file, a bad name).

use duck_warehouse::{DuckWarehouse, Error};
use epc_model::warehouse::{load_log_table, raw_table, staging_table};
use epc_model::{Certificate, Dataset, Kind, Month, Source};
use serde_json::{Value, json};

fn cert(id: &str, date: &str, doc: Value) -> Certificate {
    Certificate {
        id: id.into(),
        lodgement_date: date.into(),
        uprn: Some("100".into()),
        postcode: Some("TS1 1AA".into()),
        document: doc.to_string(),
    }
}

fn land(root: &std::path::Path, key: &str, certs: &[Certificate]) {
    let bytes = landing::encode_part(Source::Odc, Kind::Domestic, key, "2021-02-01T10:00:00Z", certs).unwrap();
    let path = root.join(key);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

fn open(dir: &tempfile::TempDir) -> DuckWarehouse {
    DuckWarehouse::open(dir.path().join("wh/warehouse.duckdb"), "epc", dir.path().join("landing")).unwrap()
}

fn rows(wh: &DuckWarehouse, sql: &str) -> Vec<Value> {
    wh.query(sql).unwrap().iter().map(|r| serde_json::from_str(r).unwrap()).collect()
}

#[test]
fn tables_follow_their_specs() {
    let dir = tempfile::tempdir().unwrap();
    let wh = open(&dir);
    assert_eq!(wh.table_ref("load_log"), "\"epc\".\"load_log\"");
    let raw = raw_table(Dataset::certificates(Kind::Domestic));
    wh.ensure_table(&raw).unwrap();
    wh.ensure_table(&raw).unwrap(); // again: nothing to do
    let types = rows(&wh, "SELECT column_name, data_type, is_nullable FROM information_schema.columns WHERE table_name = 'domestic_raw_json' ORDER BY ordinal_position");
    assert_eq!(types.len(), raw.columns.len());
    assert_eq!(types[0], json!({"column_name": "source", "data_type": "VARCHAR", "is_nullable": "NO"}));
    assert_eq!(types[2]["is_nullable"], "YES");
    assert_eq!(types[4]["data_type"], "DATE");
    assert_eq!(types[8]["data_type"], "TIMESTAMP WITH TIME ZONE");
    assert_eq!(types[9]["data_type"], "JSON");
    let comment = rows(&wh, "SELECT comment FROM duckdb_tables() WHERE table_name = 'domestic_raw_json'");
    assert!(comment[0]["comment"].as_str().unwrap().contains("domestic"));
    wh.ensure_table(&load_log_table()).unwrap();
    let t = rows(&wh, "SELECT data_type FROM information_schema.columns WHERE table_name = 'load_log' AND column_name = 'rows_loaded'");
    assert_eq!(t[0]["data_type"], "BIGINT");

    // An existing table with other columns is an error that says what to do.
    let mut other = raw.clone();
    other.columns.pop();
    let e = wh.ensure_table(&other).unwrap_err();
    assert!(matches!(&e, Error::Storage(m) if m.contains("exists with other columns") && m.contains("drop it")), "{e}");
    let mut bad = raw.clone();
    bad.name = "x; DROP TABLE y".into();
    assert!(matches!(wh.ensure_table(&bad), Err(Error::InvalidInput(_))));
    let mut bad = raw.clone();
    bad.columns[0].data_type = "GEOGRAPHY".into();
    bad.name = "geo".into();
    assert!(matches!(wh.ensure_table(&bad), Err(Error::InvalidInput(m)) if m.contains("GEOGRAPHY")));

    wh.drop_table(&raw.name).unwrap();
    wh.drop_table(&raw.name).unwrap(); // absent: fine
    assert!(rows(&wh, "SELECT 1 AS x FROM information_schema.tables WHERE table_name = 'domestic_raw_json'").is_empty());
}

#[test]
fn loads_replace_the_table_in_one_transaction() {
    let dir = tempfile::tempdir().unwrap();
    let wh = open(&dir);
    let root = dir.path().join("landing");
    let month = Month::new(2021, 1).unwrap();
    let staging = staging_table(Dataset::certificates(Kind::Domestic), month);
    wh.ensure_table(&staging).unwrap();
    let k1 = "raw/domestic/202101/part-00001.ndjson.gz".to_string();
    let k2 = "raw/domestic/202101/part-00002.ndjson.gz".to_string();
    land(&root, &k1, &[cert("a", "2021-01-02", json!({"x": "1"})), cert("b", "2021-01-03", json!({"n": 2.5, "o": {"p": [1]}}))]);
    land(&root, &k2, &[cert("c", "2021-01-04", json!({}))]);

    let job = wh.load_objects(&staging.name, &[k1.clone(), k2.clone()]).unwrap();
    assert_eq!(job.rows, 3);
    assert!(job.id.starts_with("duckdb-load-"));
    let got = rows(&wh, &format!("SELECT lmk_key, lodgement_date, landed_at, record, landed_object FROM {} ORDER BY lmk_key", wh.table_ref(&staging.name)));
    assert_eq!(got[1]["record"], json!({"n": 2.5, "o": {"p": [1]}}), "JSON kept as JSON");
    assert_eq!(got[0]["lodgement_date"], "2021-01-02");
    assert_eq!(got[0]["landed_at"], "2021-02-01 10:00:00+00");
    assert_eq!(got[2]["landed_object"], json!(k2));

    // Loading again replaces, it never appends.
    assert_eq!(wh.load_objects(&staging.name, std::slice::from_ref(&k2)).unwrap().rows, 1);
    assert_eq!(wh.load_objects(&staging.name, &[]).unwrap().rows, 0);
    wh.load_objects(&staging.name, std::slice::from_ref(&k1)).unwrap();

    // A bad object fails the whole load and leaves the table as it was.
    let k3 = "raw/domestic/202101/part-00003.ndjson.gz".to_string();
    let bad = flate2_gzip(b"{\"source\":\"odc\",\"kind\":\"domestic\",\"lodgement_date\":\"not a date\"}\n");
    std::fs::write(root.join(&k3), bad).unwrap();
    let e = wh.load_objects(&staging.name, &[k2.clone(), k3.clone()]).unwrap_err();
    assert!(matches!(&e, Error::Storage(m) if m.contains("unchanged")), "{e}");
    assert_eq!(rows(&wh, &format!("SELECT count(*) AS n FROM {}", wh.table_ref(&staging.name)))[0]["n"], 2);

    // Keys are checked before anything is read.
    for key in ["../etc/passwd", "/abs/x.gz", "raw/a b.gz", "raw//x.gz", "raw/'; DROP.gz"] {
        assert!(matches!(wh.load_objects(&staging.name, &[key.into()]), Err(Error::InvalidInput(_))), "{key}");
    }
    let e = wh.load_objects(&staging.name, &["raw/domestic/209901/part-00001.ndjson.gz".into()]).unwrap_err();
    assert!(matches!(&e, Error::InvalidInput(m) if m.contains("not in the landing store")), "{e}");
    let e = wh.load_objects("no_such_table", &[k1]).unwrap_err();
    assert!(matches!(&e, Error::InvalidInput(m) if m.contains("does not exist")), "{e}");
}

/// encode_part writes only valid lines, so a broken part is made by hand.
fn flate2_gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(bytes).unwrap();
    gz.finish().unwrap()
}

#[test]
fn scripts_and_queries() {
    let dir = tempfile::tempdir().unwrap();
    let wh = open(&dir);
    wh.execute("CREATE TABLE epc.t (a BIGINT, b VARCHAR, d DATE, ts TIMESTAMP, tz TIMESTAMPTZ, f DOUBLE, l VARCHAR[], j JSON)").unwrap();
    let job = wh.execute("INSERT INTO epc.t VALUES (1, 'x', DATE '2021-01-02', TIMESTAMP '2021-08-06 07:35:31', TIMESTAMPTZ '2021-09-02 00:00:00Z', 1.5, ['p', 'q'], '{\"k\": [1]}'), (2, NULL, NULL, NULL, NULL, NULL, [], NULL)").unwrap();
    assert_eq!(job.rows, 2);
    assert_eq!(wh.execute("UPDATE epc.t SET b = 'y' WHERE a = 2").unwrap().rows, 1);
    let got = rows(&wh, "SELECT * FROM epc.t ORDER BY a;  ");
    assert_eq!(
        got[0],
        json!({"a": 1, "b": "x", "d": "2021-01-02", "ts": "2021-08-06 07:35:31", "tz": "2021-09-02 00:00:00+00", "f": 1.5, "l": ["p", "q"], "j": {"k": [1]}})
    );
    assert_eq!(got[1]["b"], "y");
    assert_eq!(got[1]["d"], Value::Null);
    // A comment at the end cannot break the wrapper.
    assert_eq!(rows(&wh, "SELECT 1 AS one -- trailing comment").len(), 1);

    // A failing script rolls back what it did and leaves the connection usable.
    let e = wh.execute("BEGIN TRANSACTION; DELETE FROM epc.t; INSERT INTO epc.t (a) VALUES ('not a number'); COMMIT;").unwrap_err();
    assert!(matches!(e, Error::Storage(_)));
    assert_eq!(rows(&wh, "SELECT count(*) AS n FROM epc.t")[0]["n"], 2);
    assert_eq!(wh.execute("BEGIN TRANSACTION; DELETE FROM epc.t WHERE a = 1; COMMIT;").unwrap().rows, 0);
    assert_eq!(rows(&wh, "SELECT count(*) AS n FROM epc.t")[0]["n"], 1);
    assert!(matches!(wh.execute("  "), Err(Error::InvalidInput(_))));
    assert!(matches!(wh.query("SELEC 1"), Err(Error::Storage(_))));
}

#[test]
fn a_damaged_file_is_named_with_the_way_out() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.duckdb");
    std::fs::write(&path, vec![0x42u8; 16384]).unwrap();
    let e = DuckWarehouse::open(&path, "epc", dir.path()).unwrap_err();
    let Error::Storage(m) = &e else { panic!("{e}") };
    assert!(m.contains(&path.display().to_string()) && m.contains("move it aside"), "{m}");
    assert!(matches!(DuckWarehouse::open(dir.path().join("w.duckdb"), "bad name", dir.path()), Err(Error::InvalidInput(_))));
}

/// Holds a warehouse file open for [`a_locked_file_is_named_with_the_way_out`],
/// in a process of its own (DuckDB's lock is per process).
#[test]
fn hold_lock_for_other_test() {
    let Some(path) = std::env::var_os("DAME_DUCK_HOLD") else { return };
    let _wh = DuckWarehouse::open(&path, "epc", ".").unwrap();
    println!("HOLDING");
    std::thread::sleep(std::time::Duration::from_secs(30));
}

#[test]
fn a_locked_file_is_named_with_the_way_out() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("held.duckdb");
    drop(DuckWarehouse::open(&path, "epc", dir.path()).unwrap());
    let mut holder = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "hold_lock_for_other_test", "--nocapture", "--test-threads=1"])
        .env("DAME_DUCK_HOLD", &path)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(holder.stdout.take().unwrap()).lines();
    assert!(lines.any(|l| l.unwrap().contains("HOLDING")), "the holder did not open the file");
    let e = DuckWarehouse::open(&path, "epc", dir.path()).unwrap_err();
    let _ = holder.kill();
    let _ = holder.wait();
    let Error::Storage(m) = &e else { panic!("{e}") };
    assert!(m.contains(&path.display().to_string()) && m.contains("in use by another process"), "{m}");
}
