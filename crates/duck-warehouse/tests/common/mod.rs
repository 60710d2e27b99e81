//! The test data every view test loads, landed exactly as production lands
//! it: certificates (ODC records straight from the fixture rows, GEPBD
//! documents from the emulator's `/api/certificate`), encoded into
//! gzipped NDJSON parts by `landing::encode_part`, loaded month by month
//! through a staging table into the raw tables, with a `load_log` row per
//! load.
//!
//! The plan, chosen so every rule of the views is met at least once:
//!
//! - each kind's months alternate between the two sources (odd months ODC,
//!   even months GEPBD), as a real history would after the switch, so both
//!   record shapes meet in every view and properties re-assessed across
//!   the switch are matched by UPRN across sources;
//! - [`edge_rows`] adds domestic certificates with placeholders, values out
//!   of range, re-assessments of one property with every tie-break, and
//!   properties without a UPRN;
//! - one ODC certificate is landed twice in one month (the later part
//!   wins), domestic 2021-06 is never loaded (a gap), one load reports more
//!   rows than it loaded, and non-domestic 2021-04 has no rows at all.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::Path;

use duck_warehouse::DuckWarehouse;
use epc_model::warehouse::{LANDED_COLUMNS, load_log_table, raw_table, staging_table};
use epc_model::{Certificate, Dataset, Kind, Layout, Month, Source};

pub const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/odc");
pub const DATASET: &str = "epc";
pub const TOKEN: &str = "test-token";

/// One landed part.
pub struct Part {
    pub kind: Kind,
    pub month: Month,
    pub key: String,
    pub bytes: Vec<u8>,
    pub rows: usize,
}

/// One month's load into its raw table.
pub struct Load {
    pub kind: Kind,
    pub month: Month,
    pub source: Source,
    pub keys: Vec<String>,
    pub rows: usize,
    pub rows_reported: u64,
    pub load_id: String,
    /// RFC 3339, UTC.
    pub ingested_at: String,
}

/// A fixture row as the views should see it, for independent checks.
#[derive(Debug, Clone)]
pub struct Row {
    pub kind: Kind,
    pub source: Source,
    /// The certificate number (GEPBD) or LMK key (ODC).
    pub id: String,
    pub lmk_key: String,
    /// UPPER_SNAKE column → value, as the CSV has it.
    pub values: BTreeMap<String, String>,
}

impl Row {
    pub fn get(&self, column: &str) -> &str {
        self.values.get(column).map_or("", String::as_str)
    }
}

pub struct Fixture {
    pub parts: Vec<Part>,
    pub loads: Vec<Load>,
    /// Every certificate loaded, with the values it was made from; a
    /// certificate landed twice appears once, with its winning values.
    pub rows: Vec<Row>,
}

/// The source a month of a kind is landed from.
pub fn source_of(month: Month) -> Source {
    if month.month() % 2 == 1 { Source::Odc } else { Source::Gepbd }
}

/// Months never loaded, to show as gaps in `load_coverage_v`.
pub fn skipped(kind: Kind, month: Month) -> bool {
    kind == Kind::Domestic && month == Month::new(2021, 6).unwrap()
}

fn read_csv(text: &str) -> (Vec<String>, Vec<Vec<String>>) {
    let mut r = csv::ReaderBuilder::new().from_reader(text.as_bytes());
    let header: Vec<String> = r.headers().unwrap().iter().map(str::to_string).collect();
    let rows = r.records().map(|rec| rec.unwrap().iter().map(str::to_string).collect()).collect();
    (header, rows)
}

fn write_csv(header: &[String], rows: &[Vec<String>]) -> String {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(header).unwrap();
    for r in rows {
        w.write_record(r).unwrap();
    }
    String::from_utf8(w.into_inner().unwrap()).unwrap()
}

/// Domestic certificates that the real sample lacks, made from one real
/// row (`21 HERIOT GRANGE`) with the values changed that each case needs.
/// LMK keys start with `edge` so tests can find them.
pub fn edge_rows(header: &[String], template: &[String]) -> Vec<Vec<String>> {
    let col = |name: &str| header.iter().position(|h| h == name).unwrap_or_else(|| panic!("no column {name}"));
    let make = |changes: &[(&str, &str)]| {
        let mut row = template.to_vec();
        for (name, value) in changes {
            row[col(name)] = value.to_string();
        }
        row
    };
    vec![
        // Placeholders and values out of range (ODC month: 2021-03).
        make(&[
            ("LMK_KEY", "edge-placeholders"),
            ("LODGEMENT_DATE", "2021-03-10"),
            ("LODGEMENT_DATETIME", "2021-03-10 09:00:00"),
            ("CURRENT_ENERGY_RATING", "NO DATA!"),
            ("POTENTIAL_ENERGY_RATING", "H"),
            ("CURRENT_ENERGY_EFFICIENCY", "0"),
            ("POTENTIAL_ENERGY_EFFICIENCY", "151"),
            ("TOTAL_FLOOR_AREA", "0"),
            ("INSPECTION_DATE", "2006-12-31"),
            ("MAINS_GAS_FLAG", "INVALID!"),
            ("HEATING_COST_CURRENT", "abc"),
            ("NUMBER_HABITABLE_ROOMS", "2.5"),
            ("LOW_ENERGY_LIGHTING", "N/A"),
            ("TENURE", "Not recorded"),
            ("UPRN", "900000000001"),
        ]),
        // The same kinds of problem in a GEPBD month (2021-04).
        make(&[
            ("LMK_KEY", "edge-gepbd-placeholders"),
            ("LODGEMENT_DATE", "2021-04-12"),
            ("LODGEMENT_DATETIME", "2021-04-12 11:00:00"),
            ("CURRENT_ENERGY_RATING", "INVALID!"),
            ("CURRENT_ENERGY_EFFICIENCY", "-1"),
            ("TOTAL_FLOOR_AREA", "-3.5"),
            ("INSPECTION_DATE", "2099-01-01"),
            ("MAIN_FUEL", "NO DATA!"),
            ("UPRN", "900000000002"),
        ]),
        // One property (UPRN 900000000010) re-assessed: the later lodgement
        // date wins over everything else...
        make(&[
            ("LMK_KEY", "edge-reassess-a"),
            ("LODGEMENT_DATE", "2021-05-03"),
            ("LODGEMENT_DATETIME", "2021-05-03 08:00:00"),
            ("INSPECTION_DATE", "2021-05-01"),
            ("UPRN", "900000000010"),
        ]),
        make(&[
            ("LMK_KEY", "edge-reassess-b"),
            ("LODGEMENT_DATE", "2021-07-20"),
            ("LODGEMENT_DATETIME", "2021-07-20 08:00:00"),
            ("INSPECTION_DATE", "2021-07-01"),
            ("CURRENT_ENERGY_RATING", "C"),
            ("CURRENT_ENERGY_EFFICIENCY", "71"),
            ("UPRN", "900000000010"),
        ]),
        // ... on the same date, the later datetime (UPRN 900000000011) ...
        make(&[
            ("LMK_KEY", "edge-time-early"),
            ("LODGEMENT_DATE", "2021-07-21"),
            ("LODGEMENT_DATETIME", "2021-07-21 08:00:00"),
            ("UPRN", "900000000011"),
        ]),
        make(&[
            ("LMK_KEY", "edge-time-late"),
            ("LODGEMENT_DATE", "2021-07-21"),
            ("LODGEMENT_DATETIME", "2021-07-21 17:30:00"),
            ("UPRN", "900000000011"),
        ]),
        // ... at the same datetime, the later inspection (UPRN ...12) ...
        make(&[
            ("LMK_KEY", "edge-insp-early"),
            ("LODGEMENT_DATE", "2021-07-22"),
            ("LODGEMENT_DATETIME", "2021-07-22 10:00:00"),
            ("INSPECTION_DATE", "2021-07-01"),
            ("UPRN", "900000000012"),
        ]),
        make(&[
            ("LMK_KEY", "edge-insp-late"),
            ("LODGEMENT_DATE", "2021-07-22"),
            ("LODGEMENT_DATETIME", "2021-07-22 10:00:00"),
            ("INSPECTION_DATE", "2021-07-15"),
            ("UPRN", "900000000012"),
        ]),
        // ... and with all three equal, the greater identifier (UPRN ...13).
        make(&[
            ("LMK_KEY", "edge-tie-1"),
            ("LODGEMENT_DATE", "2021-07-23"),
            ("LODGEMENT_DATETIME", "2021-07-23 10:00:00"),
            ("INSPECTION_DATE", "2021-07-02"),
            ("UPRN", "900000000013"),
        ]),
        make(&[
            ("LMK_KEY", "edge-tie-2"),
            ("LODGEMENT_DATE", "2021-07-23"),
            ("LODGEMENT_DATETIME", "2021-07-23 10:00:00"),
            ("INSPECTION_DATE", "2021-07-02"),
            ("UPRN", "900000000013"),
        ]),
        // No UPRN: placed by address and postcode, spelled differently.
        make(&[
            ("LMK_KEY", "edge-noid-old"),
            ("LODGEMENT_DATE", "2021-01-05"),
            ("LODGEMENT_DATETIME", "2021-01-05 10:00:00"),
            ("ADDRESS1", "Flat 2,  9 Edge Street"),
            ("ADDRESS2", ""),
            ("POSTCODE", "ts99 9zz"),
            ("UPRN", ""),
        ]),
        make(&[
            ("LMK_KEY", "edge-noid-new"),
            ("LODGEMENT_DATE", "2021-08-02"),
            ("LODGEMENT_DATETIME", "2021-08-02 10:00:00"),
            ("ADDRESS1", "FLAT 2, 9 EDGE STREET"),
            ("ADDRESS2", ""),
            ("POSTCODE", "TS99 9ZZ"),
            ("UPRN", ""),
        ]),
        // Neither UPRN nor address: no property.
        make(&[
            ("LMK_KEY", "edge-nowhere"),
            ("LODGEMENT_DATE", "2021-03-11"),
            ("LODGEMENT_DATETIME", "2021-03-11 10:00:00"),
            ("ADDRESS1", ""),
            ("ADDRESS2", ""),
            ("ADDRESS3", ""),
            ("POSTCODE", ""),
            ("UPRN", ""),
        ]),
    ]
}

/// The certificate landed twice in one month (2021-01, ODC): the second
/// copy, in a later part, carries this efficiency and must win.
pub const RELANDED_EFFICIENCY: &str = "77";

fn landed_at(n: usize) -> String {
    format!("2021-09-01T10:{:02}:{:02}Z", n / 60, n % 60)
}

/// Builds the fixture: reads the CSVs, starts the emulator for the GEPBD
/// documents, and lands every month's parts.
pub fn build() -> Fixture {
    let mut files = Vec::new();
    let mut by_kind: Vec<(Kind, Vec<String>, Vec<Vec<String>>)> = Vec::new();
    for (kind, name) in [
        (Kind::Domestic, "domestic-E06000001-2021-01-to-08.csv"),
        (Kind::NonDomestic, "non-domestic-synthetic.csv"),
        (Kind::Display, "display-synthetic.csv"),
    ] {
        let text = std::fs::read_to_string(format!("{FIXTURES}/{name}")).unwrap();
        let (header, mut rows) = read_csv(&text);
        if kind == Kind::Domestic {
            let edges = edge_rows(&header, &rows[0]);
            files.push(epc_emulator::DataFile::Text { name: "edge-rows.csv".into(), csv: write_csv(&header, &edges) });
            rows.extend(edges);
        }
        files.push(epc_emulator::DataFile::Path(format!("{FIXTURES}/{name}").into()));
        by_kind.push((kind, header, rows));
    }

    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let emulator = epc_emulator::Emulator::load(epc_emulator::Config {
        data: files,
        token: Some(TOKEN.into()),
        ..Default::default()
    })
    .unwrap();
    let running = rt.block_on(emulator.start("127.0.0.1:0".parse().unwrap())).unwrap();
    let base = running.url();

    let mut parts = Vec::new();
    let mut loads = Vec::new();
    let mut all_rows = Vec::new();
    let mut n = 0usize;
    for (kind, header, rows) in by_kind {
        let emu_kind = match kind {
            Kind::Domestic => epc_emulator::Kind::Domestic,
            Kind::NonDomestic => epc_emulator::Kind::NonDomestic,
            Kind::Display => epc_emulator::Kind::Display,
        };
        let dataset = Dataset::certificates(kind);
        let mut months: BTreeMap<Month, Vec<BTreeMap<String, String>>> = BTreeMap::new();
        for r in &rows {
            let values: BTreeMap<String, String> = header.iter().cloned().zip(r.iter().cloned()).collect();
            let month = Month::of(values["LODGEMENT_DATE"].parse().unwrap());
            months.entry(month).or_default().push(values);
        }
        // Every month from the first to the last, so an empty one is loaded
        // with no rows.
        let (first, last) = (*months.keys().next().unwrap(), *months.keys().next_back().unwrap());
        let mut month = first;
        while month <= last {
            let source = source_of(month);
            let list = months.remove(&month).unwrap_or_default();
            if skipped(kind, month) {
                month = month.next();
                continue;
            }
            let mut certs = Vec::new();
            for values in &list {
                let lmk = values["LMK_KEY"].clone();
                let (id, cert) = match source {
                    Source::Odc => {
                        let record: serde_json::Map<String, serde_json::Value> = values
                            .iter()
                            .map(|(k, v)| (k.to_ascii_lowercase().replace('_', "-"), serde_json::Value::String(v.clone())))
                            .collect();
                        let cert = Certificate {
                            id: lmk.clone(),
                            lodgement_date: values["LODGEMENT_DATE"].clone(),
                            uprn: Some(values["UPRN"].trim().to_string()).filter(|u| !u.is_empty()),
                            postcode: Some(values["POSTCODE"].trim().to_string()).filter(|p| !p.is_empty()),
                            document: serde_json::Value::Object(record).to_string(),
                        };
                        (lmk.clone(), cert)
                    }
                    Source::Gepbd => {
                        let number = running.emulator().certificate_number(emu_kind, &lmk).unwrap().to_string();
                        let body: serde_json::Value = ureq::get(format!("{base}/api/certificate?certificate_number={number}"))
                            .header("Authorization", format!("Bearer {TOKEN}"))
                            .call()
                            .unwrap()
                            .body_mut()
                            .read_json()
                            .unwrap();
                        let doc = &body["data"];
                        let uprn = match &doc["uprn"] {
                            serde_json::Value::Number(n) => Some(n.to_string()),
                            _ => None,
                        };
                        let postcode = doc["postcode"].as_str().map(str::to_string);
                        let cert = Certificate {
                            id: number.clone(),
                            lodgement_date: doc["registration_date"].as_str().unwrap().to_string(),
                            uprn,
                            postcode,
                            document: doc.to_string(),
                        };
                        (number, cert)
                    }
                };
                all_rows.push(Row { kind, source, id, lmk_key: lmk, values: values.clone() });
                certs.push(cert);
            }
            // Parts of at most 250 certificates, as production lands them.
            let mut keys = Vec::new();
            let mut loaded = 0;
            for (i, chunk) in certs.chunks(epc_model::MAX_RECORDS_PER_PART).enumerate() {
                let key = Layout::data(dataset, month, i as u32 + 1);
                n += 1;
                let bytes = landing::encode_part(source, kind, &key, &landed_at(n), chunk).unwrap();
                parts.push(Part { kind, month, key: key.clone(), bytes, rows: chunk.len() });
                keys.push(key);
                loaded += chunk.len();
            }
            if kind == Kind::Domestic && month == Month::new(2021, 1).unwrap() {
                // The first certificate again, changed, in a later part.
                let mut again = certs[0].clone();
                let mut doc: serde_json::Value = serde_json::from_str(&again.document).unwrap();
                doc["current-energy-efficiency"] = RELANDED_EFFICIENCY.into();
                again.document = doc.to_string();
                let key = Layout::data(dataset, month, keys.len() as u32 + 1);
                n += 1;
                let bytes = landing::encode_part(source, kind, &key, &landed_at(n), &[again]).unwrap();
                parts.push(Part { kind, month, key: key.clone(), bytes, rows: 1 });
                keys.push(key);
                loaded += 1;
                let row = all_rows.iter_mut().find(|r| r.id == certs[0].id).unwrap();
                row.values.insert("CURRENT_ENERGY_EFFICIENCY".into(), RELANDED_EFFICIENCY.into());
            }
            // GEPBD reports counts; ODC does not (0). One month reports more
            // than it returned, as an interrupted fetch would.
            let rows_reported = match source {
                Source::Odc => 0,
                Source::Gepbd if kind == Kind::Display && month == Month::new(2021, 2).unwrap() => loaded as u64 + 5,
                Source::Gepbd => loaded as u64,
            };
            loads.push(Load {
                kind,
                month,
                source,
                keys,
                rows: loaded,
                rows_reported,
                load_id: format!("load-{}-{}", kind.snake(), month.compact()),
                ingested_at: format!("2021-09-02T{:02}:{:02}:00Z", loads.len() / 60, loads.len() % 60),
            });
            month = month.next();
        }
    }
    drop(running);
    Fixture { parts, loads, rows: all_rows }
}

/// Writes every part under `root` as the landing folder holds it.
pub fn write_landing(root: &Path, fixture: &Fixture) {
    for p in &fixture.parts {
        let path = root.join(&p.key);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, &p.bytes).unwrap();
    }
}

/// The columns of a raw table, in order, for INSERT … SELECT.
pub fn landed_columns() -> String {
    LANDED_COLUMNS.iter().map(|c| c.name.as_ref()).collect::<Vec<_>>().join(", ")
}

/// Loads the fixture into a DuckDB warehouse as the load step does:
/// staging table, then one transaction replacing the month, then a
/// `load_log` row.
pub fn load_duckdb(wh: &DuckWarehouse, fixture: &Fixture) {
    for kind in Kind::ALL {
        wh.ensure_table(&raw_table(Dataset::certificates(kind))).unwrap();
    }
    wh.ensure_table(&load_log_table()).unwrap();
    wh.ensure_table(&epc_model::warehouse::events_table()).unwrap();
    let cols = landed_columns();
    for load in &fixture.loads {
        let dataset = Dataset::certificates(load.kind);
        let staging = staging_table(dataset, load.month);
        wh.ensure_table(&staging).unwrap();
        let job = wh.load_objects(&staging.name, &load.keys).unwrap();
        assert_eq!(job.rows as usize, load.rows, "{}", staging.name);
        let sql = format!(
            "BEGIN TRANSACTION;
             DELETE FROM {raw} WHERE lodgement_date BETWEEN DATE '{first}' AND DATE '{last}';
             INSERT INTO {raw} ({cols}, load_id, ingested_at)
               SELECT {cols}, '{id}', TIMESTAMPTZ '{at}' FROM {stg};
             INSERT INTO {log} (dataset, month, source, rows_loaded, rows_reported, load_id, loaded_at)
               VALUES ('{ds}', DATE '{first}', '{src}', {rows}, {reported}, '{id}', TIMESTAMPTZ '{at}');
             COMMIT;",
            raw = wh.table_ref(&dataset.raw_table()),
            stg = wh.table_ref(&staging.name),
            log = wh.table_ref("load_log"),
            first = load.month.first_day(),
            last = load.month.last_day(),
            id = load.load_id,
            at = load.ingested_at,
            ds = dataset.name(),
            src = load.source,
            rows = load.rows,
            reported = load.rows_reported,
        );
        wh.execute(&sql).unwrap();
        wh.drop_table(&staging.name).unwrap();
    }
}

/// Applies the DuckDB twins of the views, in order.
pub fn apply_duckdb_views(wh: &DuckWarehouse) {
    for f in views::files(views::Dialect::DuckDb) {
        let sql = f.render(None, DATASET).unwrap();
        wh.execute(&sql).unwrap_or_else(|e| panic!("{}: {e}", f.path));
    }
}

/// A view's rows as JSON objects, ordered by `order_by`.
pub fn duck_rows(wh: &DuckWarehouse, view: &str, order_by: &str) -> Vec<serde_json::Map<String, serde_json::Value>> {
    wh.query(&format!("SELECT * FROM {} ORDER BY {order_by}", wh.table_ref(view)))
        .unwrap()
        .iter()
        .map(|r| match serde_json::from_str(r).unwrap() {
            serde_json::Value::Object(m) => m,
            other => panic!("not an object: {other}"),
        })
        .collect()
}
