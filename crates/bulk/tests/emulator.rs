//! The whole backfill natively, against the EPC emulator's bulk files on a
//! real socket: the same driver and HTTP code the component runs, with a
//! blocking streaming client in place of wasi-http.

use bulk::remote::{Authorization, HttpRemote, StreamGet, Streamed};
use bulk::{Log, Options, Outcome, RecordFormat, Report};
use epc_emulator::{BulkFiles, Config, DataFile, Emulator, Running, Synthetic};
use epc_model::{Dataset, Kind, MonthStatus, Source};
use http_client::Client;
use http_client::native::{NativeTransport, block_on};
use landing::{FsStore, Landing};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

const TOKEN: &str = "t0k3n";

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/odc").join(name)
}

struct Emu {
    running: Option<Running>,
    rt: tokio::runtime::Runtime,
}

impl Emu {
    fn start(lifetime_secs: u64) -> Emu {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let config = Config {
            data: ["domestic-E06000001-2021-01-to-08.csv", "non-domestic-synthetic.csv", "display-synthetic.csv"]
                .iter()
                .map(|f| DataFile::Path(fixture(f)))
                .collect(),
            token: Some(TOKEN.into()),
            seed: 3,
            synthetic: Some(Synthetic {
                per_month: 600,
                months: Synthetic::months("2022-03,2023-11").unwrap(),
                kinds: vec![epc_emulator::Kind::Domestic, epc_emulator::Kind::NonDomestic],
            }),
            files: Some(BulkFiles { url_lifetime: std::time::Duration::from_secs(lifetime_secs), dir: None }),
            ..Config::default()
        };
        let emulator = Emulator::load(config).unwrap();
        let running = rt.block_on(emulator.start(([127, 0, 0, 1], 0).into())).unwrap();
        Emu { running: Some(running), rt }
    }

    fn url(&self) -> String {
        self.running.as_ref().unwrap().url()
    }

    fn expected(&self, kind: &str) -> BTreeMap<String, u64> {
        let v = serde_json::to_value(self.running.as_ref().unwrap().emulator().expected()).unwrap();
        v["kinds"][kind]["months"].as_object().unwrap().iter().map(|(m, n)| (m.clone(), n.as_u64().unwrap())).collect()
    }
}

impl Drop for Emu {
    fn drop(&mut self) {
        if let Some(r) = self.running.take() {
            let _ = self.rt.block_on(r.shutdown());
        }
    }
}

/// A blocking streaming GET; `cut` ends every body after that many bytes.
struct UreqGet {
    agent: ureq::Agent,
    cut: Option<u64>,
}

impl UreqGet {
    fn new(cut: Option<u64>) -> Self {
        let agent = ureq::Agent::config_builder().http_status_as_error(false).max_redirects(0).proxy(None).build().new_agent();
        Self { agent, cut }
    }
}

impl StreamGet for UreqGet {
    type Body = Box<dyn Read>;
    async fn get(&self, url: &str) -> Result<Streamed<Box<dyn Read>>, String> {
        let r = self.agent.get(url).call().map_err(|e| e.to_string())?;
        let status = r.status().as_u16();
        let body: Box<dyn Read> = match self.cut {
            Some(n) => Box::new(r.into_body().into_reader().take(n)),
            None => Box::new(r.into_body().into_reader()),
        };
        Ok(Streamed { status, body })
    }
}

#[derive(Default)]
struct Lines(Mutex<Vec<Value>>);

impl Log for Lines {
    fn emit(&self, level: &str, event: &str, mut fields: Value) {
        fields["level"] = level.into();
        fields["event"] = event.into();
        self.0.lock().unwrap().push(fields);
    }
}

impl Lines {
    fn events(&self, event: &str) -> Vec<Value> {
        self.0.lock().unwrap().iter().filter(|l| l["event"] == event).cloned().collect()
    }
}

fn options(source: Source, kind: Kind, format: RecordFormat) -> Options {
    Options {
        source,
        kind,
        format,
        from_year: 2008,
        to_year: 2026,
        replace: false,
        holder: "test".into(),
        stale_holder: None,
        today: jiff::Timestamp::now().to_zoned(jiff::tz::TimeZone::UTC).date(),
    }
}

fn remote(emu: &Emu, o: &Options, cut: Option<u64>) -> HttpRemote<NativeTransport, UreqGet> {
    let auth = match o.source {
        Source::Gepbd => Authorization::bearer(TOKEN),
        Source::Odc => Authorization::basic("e", "k"),
    };
    HttpRemote::new(Client::new(NativeTransport::default()), UreqGet::new(cut), &emu.url(), o.source, o.kind, o.format, auth).unwrap()
}

fn backfill(dir: &Path, emu: &Emu, o: &Options, cut: Option<u64>) -> (Result<Report, bulk::BulkError>, Lines) {
    let landing = Landing::new(FsStore::new(dir));
    let log = Lines::default();
    let r = block_on(bulk::backfill(&landing, &remote(emu, o, cut), &log, o));
    (r, log)
}

/// Every landed line of a dataset: (month folder, line).
fn landed(dir: &Path, kind: &str) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    let root = dir.join("raw").join(kind);
    let Ok(months) = std::fs::read_dir(&root) else { return out };
    for m in months.flatten() {
        for part in std::fs::read_dir(m.path()).unwrap().flatten() {
            let name = part.file_name().to_string_lossy().into_owned();
            if !name.ends_with(".ndjson.gz") {
                continue;
            }
            let mut text = String::new();
            flate2::read::GzDecoder::new(std::fs::File::open(part.path()).unwrap()).read_to_string(&mut text).unwrap();
            for l in text.lines() {
                out.push((m.file_name().to_string_lossy().into_owned(), serde_json::from_str(l).unwrap()));
            }
        }
    }
    out
}

/// Per month, rows landed; fails on a duplicate or a row in the wrong month.
fn per_month(dir: &Path, kind: &str, id: &str) -> BTreeMap<String, u64> {
    let mut seen = BTreeSet::new();
    let mut out = BTreeMap::new();
    for (folder, line) in landed(dir, kind) {
        let key = line[id].as_str().unwrap().to_string();
        assert!(seen.insert(key.clone()), "{key} landed twice");
        let month = &line["lodgement_date"].as_str().unwrap()[..7];
        assert_eq!(folder, month.replace('-', ""), "{key} in the wrong month");
        *out.entry(month.to_string()).or_default() += 1;
    }
    out
}

fn state(dir: &Path, kind: Kind, m: &str) -> epc_model::MonthState {
    let landing = Landing::new(FsStore::new(dir));
    block_on(landing.read_month(Dataset::certificates(kind), m.parse().unwrap())).unwrap()
}

#[test]
fn gepbd_json_lands_every_row_once_with_the_apis_documents() {
    let emu = Emu::start(30);
    let dir = tempfile::tempdir().unwrap();
    let o = options(Source::Gepbd, Kind::Domestic, RecordFormat::GepbdJson);
    let (r, log) = backfill(dir.path(), &emu, &o, None);
    let r = r.unwrap();
    let expected = emu.expected("domestic");
    assert_eq!(per_month(dir.path(), "domestic", "certificate_number"), expected);
    assert_eq!(r.rows, expected.values().sum::<u64>());
    assert!(r.months.iter().all(|m| m.outcome == Outcome::Landed), "{:?}", r.months);
    assert_eq!(r.months.len(), expected.len());
    // Three years, parts of at most 250, each month complete and marked as backfilled.
    let years: BTreeSet<&str> = expected.keys().map(|m| &m[..4]).collect();
    assert_eq!(years.len(), 3, "{expected:?}");
    for (m, n) in &expected {
        let s = state(dir.path(), Kind::Domestic, m);
        assert_eq!((s.status, s.rows, s.parts as u64), (MonthStatus::Landed, *n, n.div_ceil(250)), "{m}");
        assert_eq!(s.origin.as_deref(), Some("bulk-json"));
    }
    // Records are /api/certificate's documents, byte for byte.
    let agent = ureq::Agent::config_builder().http_status_as_error(false).build().new_agent();
    for (_, line) in landed(dir.path(), "domestic").iter().step_by(97) {
        let number = line["certificate_number"].as_str().unwrap();
        let url = format!("{}/api/certificate?certificate_number={number}", emu.url());
        let body = agent.get(&url).header("Authorization", &format!("Bearer {TOKEN}")).call().unwrap().into_body().read_to_string().unwrap();
        let api: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(line["record"], api["data"], "{number}");
        assert_eq!(line["record"]["registration_date"], line["lodgement_date"]);
    }
    assert!(!log.events("progress").is_empty() && !log.events("download").is_empty());

    // Unchanged: nothing is downloaded the second time.
    let (again, log) = backfill(dir.path(), &emu, &o, None);
    let again = again.unwrap();
    assert!(again.unchanged && again.downloaded == 0, "{again:?}");
    assert!(log.events("download").is_empty());

    // --replace relands every month.
    let o = Options { replace: true, ..o };
    let (replaced, _) = backfill(dir.path(), &emu, &o, None);
    let replaced = replaced.unwrap();
    assert!(replaced.months.iter().all(|m| m.outcome == Outcome::Replaced), "{:?}", replaced.months);
    assert_eq!(per_month(dir.path(), "domestic", "certificate_number"), expected);
}

#[test]
fn a_cut_download_keeps_finished_months_and_a_rerun_continues() {
    let emu = Emu::start(30);
    let dir = tempfile::tempdir().unwrap();
    let o = options(Source::Gepbd, Kind::Domestic, RecordFormat::GepbdJson);
    let size = block_on(bulk::Remote::files(&remote(&emu, &o, None))).unwrap()[0].size;
    // Cut three quarters in: inside the 2022 file, after a part of it landed.
    let (r, log) = backfill(dir.path(), &emu, &o, Some(size * 3 / 4));
    let err = r.unwrap_err().to_string();
    assert!(err.contains("domestic-json.zip: truncated"), "{err}");
    assert!(!log.events("backfill").is_empty(), "the fault is logged");
    let expected = emu.expected("domestic");
    let finished: Vec<&String> = expected.keys().filter(|m| state(dir.path(), Kind::Domestic, m).status == MonthStatus::Landed).collect();
    assert!(finished.len() >= 8, "the 2021 months stay landed: {finished:?}");
    let failed: Vec<&String> = expected.keys().filter(|m| state(dir.path(), Kind::Domestic, m).status == MonthStatus::Failed).collect();
    assert!(!failed.is_empty(), "the month being landed is marked failed");
    let partial_rows = state(dir.path(), Kind::Domestic, failed[0]).rows;
    assert!(partial_rows > 0, "some of its parts landed");

    let (r, log) = backfill(dir.path(), &emu, &o, None);
    let r = r.unwrap();
    assert_eq!(per_month(dir.path(), "domestic", "certificate_number"), expected);
    let resumed = r.months.iter().find(|m| m.month.to_string() == *failed[0]).unwrap();
    assert_eq!(resumed.landed, resumed.rows - partial_rows, "only the rest was landed");
    assert!(resumed.note.as_deref().unwrap_or("").contains("resumed"), "{resumed:?}");
    let skipped = r.months.iter().filter(|m| m.outcome == Outcome::Skipped).count();
    assert_eq!(skipped, finished.len());
    assert!(log.events("reset").is_empty());
}

#[test]
fn an_expired_url_is_named() {
    let emu = Emu::start(0);
    let dir = tempfile::tempdir().unwrap();
    let o = options(Source::Gepbd, Kind::Display, RecordFormat::GepbdJson);
    let (r, _) = backfill(dir.path(), &emu, &o, None);
    let err = r.unwrap_err().to_string();
    assert!(err.contains("display-json.zip: the download URL expired") && err.contains("Request has expired"), "{err}");
    assert!(!err.contains("X-Amz-Signature="), "the signature stays out of messages: {err}");
}

#[test]
fn gepbd_csv_and_odc_land_every_row_once() {
    let emu = Emu::start(30);
    for (source, format, id) in
        [(Source::Gepbd, RecordFormat::GepbdCsv, "certificate_number"), (Source::Odc, RecordFormat::OdcCsv, "lmk_key")]
    {
        let dir = tempfile::tempdir().unwrap();
        for kind in [Kind::Domestic, Kind::NonDomestic] {
            let o = options(source, kind, format);
            let (r, _) = backfill(dir.path(), &emu, &o, None);
            let r = r.unwrap_or_else(|e| panic!("{source} {kind}: {e}"));
            let expected = emu.expected(kind.as_str());
            assert_eq!(per_month(dir.path(), kind.as_str(), id), expected, "{source} {kind}");
            assert_eq!(r.rows, expected.values().sum::<u64>());
        }
        let lines = landed(dir.path(), "domestic");
        let record = &lines[0].1["record"];
        match source {
            Source::Gepbd => assert!(record["certificate_number"].is_string() && record["lodgement_date"].is_string()),
            Source::Odc => assert!(record["lmk-key"].is_string() && record["lodgement-date"].is_string()),
        }
        assert!(record.as_object().unwrap().values().all(Value::is_string), "every value a string");
        // ODC: the second run downloads nothing (every month complete).
        if source == Source::Odc {
            let o = options(source, Kind::Domestic, format);
            let (r, log) = backfill(dir.path(), &emu, &o, None);
            let r = r.unwrap();
            assert!(r.unchanged && r.downloaded == 0 && log.events("download").is_empty(), "{r:?}");
        }
    }
}

#[test]
fn years_outside_the_range_are_not_read() {
    let emu = Emu::start(30);
    let dir = tempfile::tempdir().unwrap();
    let o = Options { from_year: 2022, to_year: 2022, ..options(Source::Gepbd, Kind::Domestic, RecordFormat::GepbdJson) };
    let (r, log) = backfill(dir.path(), &emu, &o, None);
    let r = r.unwrap();
    let months: Vec<String> = r.months.iter().map(|m| m.month.to_string()).collect();
    assert_eq!(months, ["2022-03"]);
    let entries: Vec<String> = log.events("entry").iter().map(|e| e["entry"].as_str().unwrap().to_string()).collect();
    assert_eq!(entries, ["domestic-2022.json"]);
    // A wider range is not "unchanged": it downloads again.
    let o = Options { from_year: 2021, ..o };
    let (r, _) = backfill(dir.path(), &emu, &o, None);
    let r = r.unwrap();
    assert!(!r.unchanged);
    assert_eq!(r.months.iter().filter(|m| m.outcome == Outcome::Landed).count(), 8);
}
