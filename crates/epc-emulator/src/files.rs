//! Bulk files, as both APIs hand them out: a 302 to a short-lived URL.
//!
//! - GEPBD: `GET /api/files/{domestic|non-domestic|display}/{csv|json}` and
//!   `GET /api/files/{non-domestic|display}-recommendations/json` answer 302
//!   to a pre-signed-looking URL on this server, `/_files/{name}?X-Amz-…`,
//!   valid for [`BulkFiles::url_lifetime`] (30 s like the service's); after
//!   that it is refused with 403 and an S3-style XML error. The ZIP holds one
//!   file per lodgement year (`domestic-2021.csv`, `display-2021.json`,
//!   `display-recommendations-2021.json`); CSV columns are lower snake_case
//!   (`certificate_number`, the ODC columns without `lmk_key`, then `region`,
//!   `country`, `uprn`, `uprn_source`), JSON files are arrays of the documents `/api/certificate`
//!   serves. `…/info` gives `{"data":{"fileSize","lastUpdated"}}`.
//! - ODC: `GET /api/v1/files` lists `{"files":{name:{"size"}}}` and
//!   `GET /api/v1/files/{name}` answers 302 the same way; the monthly zips
//!   `{kind}-YYYY-MM.zip` hold `certificates.csv` (the UPPER_SNAKE columns)
//!   and `recommendations.csv`.
//!
//! A file is built from the data as of the emulator's "today" the first
//! time it is needed (written to a temporary directory, deleted with the
//! emulator), then served from disk in chunks; it is rebuilt when "today"
//! changes (deltas may have happened).

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use jiff::Timestamp;
use jiff::civil::Date;
use serde_json::json;
use tokio::sync::OnceCell;

use crate::Emulator;
use crate::data::{Certificate, Kind};
use crate::gepbd::error;
use crate::ordering::Rng;
use crate::recommendations::{self as recs, Recs};
use crate::values;

/// How bulk files are served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BulkFiles {
    /// How long a redirect's URL stays valid (default 30 s, the service's).
    pub url_lifetime: Duration,
    /// Where built files are kept (default: the system's temporary
    /// directory); a fresh subdirectory is made and removed with the emulator.
    pub dir: Option<PathBuf>,
}

impl Default for BulkFiles {
    fn default() -> Self {
        BulkFiles {
            url_lifetime: Duration::from_secs(30),
            dir: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Format {
    Csv,
    Json,
}

/// One downloadable file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum FileId {
    Gepbd(Kind, Format),
    GepbdRecs(Kind),
    Odc(Kind, Date),
}

impl FileId {
    fn name(self) -> String {
        match self {
            FileId::Gepbd(kind, Format::Csv) => format!("{kind}-csv.zip"),
            FileId::Gepbd(kind, Format::Json) => format!("{kind}-json.zip"),
            FileId::GepbdRecs(kind) => format!("{kind}-recommendations-json.zip"),
            FileId::Odc(kind, month) => {
                format!("{kind}-{:04}-{:02}.zip", month.year(), month.month())
            }
        }
    }

    fn parse_gepbd(file: &str, format: &str) -> Option<FileId> {
        let format = match format {
            "csv" => Format::Csv,
            "json" => Format::Json,
            _ => return None,
        };
        if let Some(kind) = file.strip_suffix("-recommendations") {
            let kind: Kind = kind.parse().ok()?;
            return (kind != Kind::Domestic && format == Format::Json).then_some(FileId::GepbdRecs(kind));
        }
        Some(FileId::Gepbd(file.parse().ok()?, format))
    }

    fn parse_odc(name: &str) -> Option<FileId> {
        let stem = name.strip_suffix(".zip")?;
        let (rest, month) = stem.rsplit_once('-')?;
        let (kind, year) = rest.rsplit_once('-')?;
        if month.len() != 2 || year.len() != 4 {
            return None;
        }
        let date = Date::new(year.parse().ok()?, month.parse().ok()?, 1).ok()?;
        Some(FileId::Odc(kind.parse().ok()?, date))
    }
}

#[derive(Debug)]
struct Built {
    path: PathBuf,
    size: u64,
    at: Timestamp,
}

#[derive(Debug)]
struct Grant {
    name: String,
    file: FileId,
    expires: Instant,
    expires_at: Timestamp,
}

/// A file built once, however many requests wait for it.
type BuildCell = Arc<OnceCell<Arc<Built>>>;

/// The live state of bulk files.
#[derive(Debug)]
pub struct Files {
    config: BulkFiles,
    dir: PathBuf,
    grants: Mutex<HashMap<String, Grant>>,
    built: Mutex<HashMap<(FileId, Date), BuildCell>>,
    counter: AtomicU64,
}

impl Files {
    pub fn new(config: BulkFiles) -> Files {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let base = config.dir.clone().unwrap_or_else(std::env::temp_dir);
        let dir = base.join(format!(
            "epc-emulator-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        Files {
            config,
            dir,
            grants: Mutex::default(),
            built: Mutex::default(),
            counter: AtomicU64::new(0),
        }
    }
}

impl Drop for Files {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// GEPBD's file routes (behind its bearer auth).
pub fn gepbd_routes() -> Router<Arc<Emulator>> {
    Router::new()
        .route(
            "/api/files/{file}/{format}",
            get(|State(emu): State<Arc<Emulator>>, headers: HeaderMap, UrlPath((file, format)): UrlPath<(String, String)>| async move {
                match FileId::parse_gepbd(&file, &format) {
                    Some(id) => redirect(&emu, id, &headers),
                    None => error(StatusCode::NOT_FOUND, "File not found"),
                }
            }),
        )
        .route(
            "/api/files/{file}/{format}/info",
            get(|State(emu): State<Arc<Emulator>>, UrlPath((file, format)): UrlPath<(String, String)>| async move {
                let Some(id) = FileId::parse_gepbd(&file, &format) else {
                    return error(StatusCode::NOT_FOUND, "File not found");
                };
                match build(&emu, id).await {
                    Ok(b) => axum::Json(json!({"data": {
                        "fileSize": b.size,
                        "lastUpdated": b.at.strftime("%Y-%m-%dT%H:%M:%S%.3f+00:00").to_string(),
                    }}))
                    .into_response(),
                    Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, format!("Internal Server Error: {e:#}")),
                }
            }),
        )
}

/// ODC's file routes (behind its Basic auth).
pub fn odc_routes() -> Router<Arc<Emulator>> {
    Router::new()
        .route(
            "/api/v1/files",
            get(|State(emu): State<Arc<Emulator>>| async move {
                let mut files = serde_json::Map::new();
                for id in odc_files(&emu) {
                    match build(&emu, id).await {
                        Ok(b) => {
                            files.insert(id.name(), json!({"size": b.size}));
                        }
                        Err(e) => return (StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}")).into_response(),
                    }
                }
                axum::Json(json!({"files": files})).into_response()
            }),
        )
        .route(
            "/api/v1/files/{name}",
            get(|State(emu): State<Arc<Emulator>>, headers: HeaderMap, UrlPath(name): UrlPath<String>| async move {
                match FileId::parse_odc(&name).filter(|id| odc_files(&emu).contains(id)) {
                    Some(id) => redirect(&emu, id, &headers),
                    None => (StatusCode::NOT_FOUND, "Not Found").into_response(),
                }
            }),
        )
}

/// The download route, `/_files/{name}` (no auth: the URL is the key).
pub fn download_routes() -> Router<Arc<Emulator>> {
    Router::new().route("/_files/{name}", get(download))
}

/// The ODC monthly files: every (kind, month) with certificates.
fn odc_files(emu: &Emulator) -> Vec<FileId> {
    let today = emu.today();
    let mut out = Vec::new();
    for data in &emu.data.kinds {
        let mut last: Option<Date> = None;
        for &i in &data.by_cursor {
            let c = &data.certs[i];
            let m = c.lodgement_date.first_of_month();
            if last != Some(m) && !c.removed(today) {
                out.push(FileId::Odc(data.kind, m));
                last = Some(m);
            }
        }
    }
    out.dedup();
    out
}

fn files(emu: &Emulator) -> &Files {
    emu.files.as_ref().expect("file routes exist only with bulk files configured")
}

/// 302 to a fresh short-lived URL for `id`: absolute, on the host the
/// request named (a pre-signed URL is absolute, on another host).
fn redirect(emu: &Emulator, id: FileId, headers: &HeaderMap) -> Response {
    let f = files(emu);
    let n = f.counter.fetch_add(1, Ordering::Relaxed);
    let mut rng = Rng::new(emu.seed ^ 0xF11E_5161, n);
    let token = format!("{:016x}{:016x}", rng.next(), rng.next());
    let lifetime = f.config.url_lifetime;
    let now = Timestamp::now();
    let expires_at = now
        .checked_add(jiff::SignedDuration::try_from(lifetime).unwrap_or(jiff::SignedDuration::ZERO))
        .unwrap_or(now);
    let name = id.name();
    let origin = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(|h| format!("http://{h}"))
        .unwrap_or_default();
    let url = format!(
        "{origin}/_files/{name}?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Date={}&X-Amz-Expires={}&X-Amz-SignedHeaders=host&X-Amz-Signature={token}",
        now.strftime("%Y%m%dT%H%M%SZ"),
        lifetime.as_secs()
    );
    {
        let mut grants = f.grants.lock().unwrap_or_else(|e| e.into_inner());
        // Forget grants long expired, so the map stays small.
        let horizon = Instant::now();
        grants.retain(|_, g| g.expires + Duration::from_secs(600) > horizon);
        grants.insert(
            token,
            Grant {
                name,
                file: id,
                expires: Instant::now() + lifetime,
                expires_at,
            },
        );
    }
    (StatusCode::FOUND, [(header::LOCATION, url)]).into_response()
}

fn s3_error(code: &str, message: &str, extra: &str) -> Response {
    let n = Timestamp::now().as_nanosecond() as u64;
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{message}</Message>{extra}<RequestId>{:016X}</RequestId><HostId>{:032x}</HostId></Error>",
        n & 0xFFFF_FFFF_FFFF,
        n
    );
    (StatusCode::FORBIDDEN, [(header::CONTENT_TYPE, "application/xml")], body).into_response()
}

async fn download(
    State(emu): State<Arc<Emulator>>,
    UrlPath(name): UrlPath<String>,
    Query(params): Query<Vec<(String, String)>>,
) -> Response {
    let Some(f) = emu.files.as_ref() else {
        return error(StatusCode::NOT_FOUND, "Not found");
    };
    let token = params
        .iter()
        .find(|(k, _)| k == "X-Amz-Signature")
        .map(|(_, v)| v.as_str())
        .unwrap_or("");
    let grant = {
        let grants = f.grants.lock().unwrap_or_else(|e| e.into_inner());
        grants
            .get(token)
            .filter(|g| g.name == name)
            .map(|g| (g.file, g.expires, g.expires_at))
    };
    let Some((id, expires, expires_at)) = grant else {
        return s3_error(
            "SignatureDoesNotMatch",
            "The request signature we calculated does not match the signature you provided. Check your key and signing method.",
            "",
        );
    };
    if Instant::now() > expires {
        let extra = format!(
            "<X-Amz-Expires>{}</X-Amz-Expires><Expires>{}</Expires><ServerTime>{}</ServerTime>",
            f.config.url_lifetime.as_secs(),
            expires_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
            Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ")
        );
        return s3_error("AccessDenied", "Request has expired", &extra);
    }
    let built = match build(&emu, id).await {
        Ok(b) => b,
        Err(e) => return (StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}")).into_response(),
    };
    let file = match tokio::fs::File::open(&built.path).await {
        Ok(file) => file,
        Err(e) => return (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    };
    // Read in 64 KiB chunks as the client takes them: nothing more is held.
    let stream = futures::stream::unfold(file, |mut file| async move {
        use tokio::io::AsyncReadExt;
        let mut buf = vec![0u8; 64 * 1024];
        match file.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok::<Bytes, std::io::Error>(Bytes::from(buf)), file))
            }
            Err(e) => Some((Err(e), file)),
        }
    });
    (
        [
            (header::CONTENT_TYPE, "application/zip".to_owned()),
            (header::CONTENT_LENGTH, built.size.to_string()),
            (header::ETAG, format!("\"{:x}\"", built.at.as_nanosecond())),
        ],
        Body::from_stream(stream),
    )
        .into_response()
}

/// The built file for `id` as of today, building it once.
async fn build(emu: &Arc<Emulator>, id: FileId) -> anyhow::Result<Arc<Built>> {
    let f = files(emu);
    let today = emu.today();
    let cell = {
        let mut built = f.built.lock().unwrap_or_else(|e| e.into_inner());
        built.entry((id, today)).or_default().clone()
    };
    let built = cell
        .get_or_try_init(|| async {
            let emu = emu.clone();
            tokio::task::spawn_blocking(move || {
                let f = files(&emu);
                std::fs::create_dir_all(&f.dir).with_context(|| format!("creating {}", f.dir.display()))?;
                let path = f.dir.join(format!("{today}-{}", id.name()));
                let size = write_zip(&emu, id, today, &path)?;
                Ok::<_, anyhow::Error>(Arc::new(Built {
                    path,
                    size,
                    at: Timestamp::now(),
                }))
            })
            .await
            .context("building a bulk file")?
        })
        .await?;
    Ok(built.clone())
}

/// Writes the ZIP of `id` to `path`; returns its size.
fn write_zip(emu: &Emulator, id: FileId, today: Date, path: &Path) -> anyhow::Result<u64> {
    use zip::write::SimpleFileOptions;
    let file = std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut zip = zip::ZipWriter::new(std::io::BufWriter::with_capacity(1 << 16, file));
    // Fast deflate: a month of 150k documents is half a gigabyte of JSON,
    // and a test waits for it; the ratio matters less than the time.
    let options = SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .compression_level(Some(1))
        .large_file(true);
    let kind = match id {
        FileId::Gepbd(k, _) | FileId::GepbdRecs(k) | FileId::Odc(k, _) => k,
    };
    let data = emu.data.kind(kind);
    // Certificates in lodgement order, removed ones left out.
    let live = || {
        data.by_cursor
            .iter()
            .map(|&i| &data.certs[i])
            .filter(move |c| !c.removed(today))
    };
    match id {
        FileId::Gepbd(_, Format::Csv) => {
            let columns = gepbd_columns(&data.columns);
            for (year, certs) in by_year(live()) {
                zip.start_file(format!("{kind}-{year}.csv"), options)?;
                let mut w = csv::Writer::from_writer(&mut zip);
                w.write_record(columns.iter().map(|(name, _)| name.as_str()))?;
                for c in certs {
                    for (_, col) in &columns {
                        w.write_field(gepbd_value(c, col, today).as_bytes())?;
                    }
                    w.write_record(std::iter::empty::<&[u8]>())?;
                }
                w.flush()?;
            }
        }
        FileId::Gepbd(_, Format::Json) => {
            for (year, certs) in by_year(live()) {
                zip.start_file(format!("{kind}-{year}.json"), options)?;
                json_array(&mut zip, certs.into_iter().map(|c| emu.document(c, today)))?;
            }
        }
        FileId::GepbdRecs(_) => {
            for (year, certs) in by_year(live()) {
                zip.start_file(format!("{kind}-recommendations-{year}.json"), options)?;
                let reports = certs.into_iter().filter_map(|c| {
                    let r = emu.recommendations.as_ref()?;
                    if r.report_missing(emu.seed, c) {
                        return None;
                    }
                    let advice = match r.of(emu.seed, c) {
                        Recs::Report(a) => a,
                        Recs::Domestic(_) => Vec::new(),
                    };
                    Some(recs::report(c, &advice, crate::gepbd::document_uprn(c, today)))
                });
                json_array(&mut zip, reports)?;
            }
        }
        FileId::Odc(_, month) => {
            zip.start_file("certificates.csv", options)?;
            let in_month = || live().filter(move |c| c.lodgement_date.first_of_month() == month);
            let mut w = csv::Writer::from_writer(&mut zip);
            w.write_record(&data.columns)?;
            for c in in_month() {
                for col in &data.columns {
                    w.write_field(c.value_at(col, today).as_bytes())?;
                }
                w.write_record(std::iter::empty::<&[u8]>())?;
            }
            w.flush()?;
            drop(w);
            zip.start_file("recommendations.csv", options)?;
            let mut w = csv::Writer::from_writer(&mut zip);
            w.write_record(recs::odc_columns(kind))?;
            if let Some(r) = &emu.recommendations {
                for c in in_month() {
                    for row in recs::odc_rows(&c.lmk_key, &r.of(emu.seed, c)) {
                        w.write_record(&row)?;
                    }
                }
            }
            w.flush()?;
        }
    }
    let mut inner = zip.finish()?;
    inner.flush()?;
    let file = inner.into_inner().map_err(|e| e.into_error())?;
    Ok(file.metadata()?.len())
}

/// Groups certificates (in date order) by lodgement year.
fn by_year<'a>(certs: impl Iterator<Item = &'a Certificate>) -> Vec<(i16, Vec<&'a Certificate>)> {
    let mut out: Vec<(i16, Vec<&Certificate>)> = Vec::new();
    for c in certs {
        let y = c.lodgement_date.year();
        match out.last_mut() {
            Some((year, list)) if *year == y => list.push(c),
            _ => out.push((y, vec![c])),
        }
    }
    out
}

/// A JSON array written one value a line (each value serialised whole
/// first: the ZIP writer is slow with the serialiser's many tiny writes).
fn json_array<W: Write>(w: &mut W, values: impl Iterator<Item = serde_json::Value>) -> anyhow::Result<()> {
    let mut buf = Vec::with_capacity(16 * 1024);
    buf.push(b'[');
    for (i, v) in values.enumerate() {
        buf.extend_from_slice(if i == 0 { b"\n" } else { b",\n" });
        serde_json::to_writer(&mut buf, &v)?;
        if buf.len() >= 1 << 16 {
            w.write_all(&buf)?;
            buf.clear();
        }
    }
    buf.extend_from_slice(b"\n]\n");
    w.write_all(&buf)?;
    Ok(())
}

/// Where a GEPBD bulk CSV column comes from.
enum Source {
    Number,
    Column(String),
    Date,
    /// `COUNTRY` when the source has it, else from the local authority's
    /// code (`E…` England, `W…` Wales).
    Country,
}

/// The GEPBD bulk CSV columns: `certificate_number`, the ODC columns lower
/// snake_case without `lmk_key`, then `region`, `country`, `uprn`,
/// `uprn_source` (the order API-NOTES gives; `region` is empty unless the
/// source has one).
fn gepbd_columns(columns: &[String]) -> Vec<(String, Source)> {
    let mut out = vec![("certificate_number".to_owned(), Source::Number)];
    for c in columns {
        match c.as_str() {
            "LMK_KEY" | "UPRN" | "UPRN_SOURCE" | "REGION" | "COUNTRY" => {}
            "LODGEMENT_DATE" => out.push(("lodgement_date".into(), Source::Date)),
            _ => out.push((values::snake(c), Source::Column(c.clone()))),
        }
    }
    out.push(("region".into(), Source::Column("REGION".into())));
    out.push(("country".into(), Source::Country));
    out.push(("uprn".into(), Source::Column("UPRN".into())));
    out.push(("uprn_source".into(), Source::Column("UPRN_SOURCE".into())));
    out
}

fn gepbd_value<'a>(c: &'a Certificate, source: &Source, today: Date) -> std::borrow::Cow<'a, str> {
    match source {
        Source::Number => c.certificate_number.as_str().into(),
        Source::Date => c.lodgement_date.to_string().into(),
        Source::Column(col) => c.value_at(col, today),
        Source::Country => match c.get("COUNTRY") {
            Some(country) => country.into(),
            None => match c.value("LOCAL_AUTHORITY").chars().next() {
                Some('E') => "England".into(),
                Some('W') => "Wales".into(),
                _ => "".into(),
            },
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        let m = Date::new(2021, 3, 1).unwrap();
        assert_eq!(FileId::Odc(Kind::NonDomestic, m).name(), "non-domestic-2021-03.zip");
        assert_eq!(FileId::parse_odc("non-domestic-2021-03.zip"), Some(FileId::Odc(Kind::NonDomestic, m)));
        assert_eq!(FileId::parse_odc("domestic-2021-3.zip"), None);
        assert_eq!(FileId::parse_gepbd("display-recommendations", "json"), Some(FileId::GepbdRecs(Kind::Display)));
        assert_eq!(FileId::parse_gepbd("domestic-recommendations", "json"), None);
        assert_eq!(FileId::parse_gepbd("display-recommendations", "csv"), None);
        assert_eq!(FileId::parse_gepbd("domestic", "csv"), Some(FileId::Gepbd(Kind::Domestic, Format::Csv)));
        assert_eq!(FileId::parse_gepbd("domestic", "xml"), None);
    }
}
