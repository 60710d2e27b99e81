//! Component `fetch-bulk`: backfill from the services' bulk ZIP files.
//!
//! A thin shell over the [`bulk`] library: it reads the credentials from
//! configuration, opens the landing store named by configuration, talks to
//! the service over wasi-http (API answers through `http_client`, the
//! archive itself through a streaming GET, [`download`]) and logs one JSON
//! line per event on stderr, which the dame host turns into a progress bar
//! on bytes and rows and a summary table.

wit_bindgen::generate!({
    world: "dame:fetch-bulk/fetch-bulk",
    path: ["../../wit", "wit"],
    with: {
        "dame:epc/types@0.1.0": epc_bindings::types,
        "wasi:config/store@0.2.0-draft-2024-09-27": epc_bindings::config_store,
    },
});

mod download;

use bulk::remote::{Authorization, HttpRemote};
use bulk::{BulkError, RecordFormat};
use download::WasiStreamGet;
use epc_bindings::{config, types};
use epc_model::{Kind, Month, Source};
use epc_source::Credentials;
use exports::dame::epc::bulk::{BackfillReport, BackfillRequest, BulkFile, BulkFormat, BulkMonth, BulkOutcome, Guest};
use http_client::Client;
use http_client::wasi::WasiTransport;
use landing::Landing;

struct FetchBulk;

fn error(e: BulkError) -> types::Error {
    match e {
        BulkError::InvalidInput(m) => types::Error::InvalidInput(m),
        BulkError::Unauthorized(m) => types::Error::Unauthorized(m),
        BulkError::Unavailable(m) => types::Error::Unavailable(m),
        BulkError::Protocol(m) => types::Error::Protocol(m),
        BulkError::Conflict(m) => types::Error::Conflict(m),
        BulkError::Storage(m) => types::Error::Storage(m),
    }
}

/// The JSON log lines the pipeline writes too (`ts`, `level`, `event`, …).
struct StderrLog;

impl bulk::Log for StderrLog {
    fn emit(&self, level: &str, event: &str, fields: serde_json::Value) {
        let mut line = serde_json::Map::new();
        let ts = jiff::Timestamp::now().round(jiff::Unit::Millisecond).map(|t| t.to_string()).unwrap_or_default();
        line.insert("ts".into(), ts.into());
        line.insert("level".into(), level.into());
        line.insert("event".into(), event.into());
        if let serde_json::Value::Object(f) = fields {
            line.extend(f);
        }
        eprintln!("{}", serde_json::Value::Object(line));
    }
}

/// The request's authorization, from the same credentials (configuration
/// or Secret Manager) fetch-page and recs read.
fn authorization(source: Source) -> Result<Authorization, types::Error> {
    Ok(match epc_bindings::api::credentials(source)? {
        Credentials::Gepbd { token } => Authorization::bearer(&token),
        Credentials::Odc { email, api_key } => Authorization::basic(&email, &api_key),
    })
}

fn record_format(source: Source, format: BulkFormat) -> Result<RecordFormat, types::Error> {
    match (source, format) {
        (Source::Gepbd, BulkFormat::Json) => Ok(RecordFormat::GepbdJson),
        (Source::Gepbd, BulkFormat::Csv) => Ok(RecordFormat::GepbdCsv),
        (Source::Odc, BulkFormat::Csv) => Ok(RecordFormat::OdcCsv),
        (Source::Odc, BulkFormat::Json) => Err(types::Error::InvalidInput(
            "ODC bulk files are CSV only: use --format csv (the default for --source odc)".into(),
        )),
    }
}

type Remote = HttpRemote<WasiTransport, WasiStreamGet>;

fn remote(api: &types::Api, kind: Kind, format: RecordFormat) -> Result<Remote, types::Error> {
    let source: Source = api.source.into();
    let auth = authorization(source)?;
    // No request budget: a backfill makes three requests per archive.
    let client = Client::new(WasiTransport::default());
    HttpRemote::new(client, WasiStreamGet::default(), &api.base_url, source, kind, format, auth).map_err(error)
}

fn london_today() -> jiff::civil::Date {
    jiff::Timestamp::now().in_tz("Europe/London").expect("bundled time-zone data has London").date()
}

fn file_out(f: &bulk::RemoteFile, unchanged: bool) -> BulkFile {
    BulkFile {
        name: f.name.clone(),
        size: f.size,
        last_updated: f.last_updated.clone(),
        month: f.month.map(Into::into),
        unchanged,
    }
}

fn month_out(m: &bulk::BulkMonth) -> BulkMonth {
    BulkMonth {
        month: m.month.into(),
        outcome: match m.outcome {
            bulk::Outcome::Landed => BulkOutcome::Landed,
            bulk::Outcome::Skipped => BulkOutcome::Skipped,
            bulk::Outcome::Replaced => BulkOutcome::Replaced,
            bulk::Outcome::NotOver => BulkOutcome::NotOver,
        },
        rows: m.rows,
        landed: m.landed,
        parts: m.parts,
        bytes: m.bytes,
        millis: (m.seconds * 1000.0) as u64,
        note: m.note.clone(),
    }
}

impl Guest for FetchBulk {
    fn info(api: types::Api, kind: types::Kind, format: BulkFormat) -> Result<Vec<BulkFile>, types::Error> {
        let source: Source = api.source.into();
        let kind: Kind = kind.into();
        let format = record_format(source, format)?;
        let remote = remote(&api, kind, format)?;
        // Whether the last backfill read them, when a landing store is set.
        let store = config("landing")?.or(config("bucket")?).map(|_| epc_bindings::landing_store()).transpose()?;
        wstd::runtime::block_on(async {
            let files = bulk::Remote::files(&remote).await.map_err(error)?;
            let record = match &store {
                Some(s) => bulk::state::read_record(s, source, kind).await.map_err(error)?,
                None => None,
            };
            Ok(files.iter().map(|f| file_out(f, bulk::driver::unchanged(record.as_ref(), format, f))).collect())
        })
    }

    fn backfill(request: BackfillRequest) -> Result<BackfillReport, types::Error> {
        let source: Source = request.api.source.into();
        let kind: Kind = request.kind.into();
        let format = record_format(source, request.format)?;
        for year in [request.from_year, request.to_year] {
            Month::new(year, 1)?;
        }
        let remote = remote(&request.api, kind, format)?;
        let landing = Landing::new(epc_bindings::landing_store()?);
        let options = bulk::Options {
            source,
            kind,
            format,
            from_year: request.from_year,
            to_year: request.to_year,
            replace: request.replace,
            holder: request.holder,
            stale_holder: request.stale_lease_holder,
            today: london_today(),
        };
        let report = wstd::runtime::block_on(bulk::backfill(&landing, &remote, &StderrLog, &options)).map_err(error)?;
        Ok(BackfillReport {
            files: report.files.iter().map(|f| file_out(&f.file, f.unchanged)).collect(),
            unchanged: report.unchanged,
            months: report.months.iter().map(month_out).collect(),
            downloaded: report.downloaded,
            rows: report.rows,
            millis: (report.seconds * 1000.0) as u64,
        })
    }
}

export!(FetchBulk);
