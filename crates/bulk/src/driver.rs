//! Which months a backfill lands, and landing them as the file yields them.
//!
//! One pass over each archive, entry by entry, row by row:
//!
//! - A month is looked at the first time one of its rows appears. Complete
//!   months (landed, no-data, loaded; from the API or an earlier backfill)
//!   and months partly landed from the other source are left alone unless
//!   `replace`, which resets and relands them. A month partly landed from
//!   this very file (same size and date) resumes: its first `rows` rows in
//!   file order are skipped (the last of them checked against the
//!   checkpoint) and landing continues with the next part. A month partly
//!   landed from the API or an older file is reset and landed afresh.
//! - Rows are buffered per month and landed as parts of at most
//!   [`MAX_RECORDS_PER_PART`] as they fill, so months need not be
//!   contiguous in the file and memory holds at most a part per open month.
//! - A month is finished (its done marker written) only when the file of
//!   its year has been read to its end: at the end of an entry named by
//!   year (`domestic-2021.json`), else at the end of the archive. A row of a
//!   year other than its entry's is an error naming the line.
//! - Months not over yet (this month in London, or not before the file's
//!   `lastUpdated`) are never landed: `dame run` fetches them from the API.
//!
//! On a fault, parts already landed keep their checkpoints and months
//! already finished stay landed; open months are marked failed with the
//! reason, and the next run continues them.

use crate::records::{Origin, RecordFormat, Records, Row, entry_year};
use crate::state::{BackfillRecord, BulkCursor, FileVersion, read_record, write_record};
use crate::zip::ZipStream;
use crate::BulkError;
use epc_model::{Certificate, Dataset, Kind, MAX_RECORDS_PER_PART, Month, MonthState, MonthStatus, Source};
use landing::{Landing, Lease, ObjectStore, PageInfo};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::io::Read;
use std::time::{Duration, Instant};

/// How long the lease lasts unless renewed; it is renewed well before.
const LEASE_TTL: Duration = Duration::from_secs(600);
const RENEW_AFTER: Duration = Duration::from_secs(200);
/// How often progress is logged while rows stream by.
const PROGRESS_EVERY: Duration = Duration::from_millis(500);

/// What to backfill.
#[derive(Debug, Clone)]
pub struct Options {
    pub source: Source,
    pub kind: Kind,
    pub format: RecordFormat,
    /// Lodgement years, inclusive.
    pub from_year: u16,
    pub to_year: u16,
    /// Reset and reland months that are already complete.
    pub replace: bool,
    /// Who runs, for the lease.
    pub holder: String,
    /// A holder known dead, whose lease may be taken over at once.
    pub stale_holder: Option<String>,
    /// Today in London: this month and later are not over.
    pub today: jiff::civil::Date,
}

/// A file as the service describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteFile {
    /// `domestic-json.zip` (GEPBD), `domestic-2021-03.zip` (ODC).
    pub name: String,
    pub size: u64,
    /// GEPBD's `lastUpdated`; ODC gives none.
    pub last_updated: Option<String>,
    /// The month an ODC monthly file holds.
    pub month: Option<Month>,
}

impl RemoteFile {
    /// What tells one build of the file from another.
    pub fn version(&self) -> String {
        format!("{}@{}", self.size, self.last_updated.as_deref().unwrap_or(""))
    }

    fn described(&self, unchanged: bool) -> Value {
        json!({"name": self.name, "size": self.size, "last_updated": self.last_updated,
               "month": self.month.map(|m| m.to_string()), "unchanged": unchanged})
    }
}

/// Where the files come from: the services over HTTP, or local files in
/// tests.
pub trait Remote {
    type Body: Read;
    /// GEPBD: the one archive of the kind and format (from `…/info`); ODC:
    /// the kind's monthly archives.
    fn files(&self) -> impl Future<Output = Result<Vec<RemoteFile>, BulkError>>;
    /// Starts the download (following the redirect at once).
    fn open(&self, file: &RemoteFile) -> impl Future<Output = Result<Self::Body, BulkError>>;
}

/// Where progress goes: JSON log lines on stderr in the component.
pub trait Log {
    fn emit(&self, level: &str, event: &str, fields: Value);
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Landed from the file in this run.
    Landed,
    /// Already complete (or partly landed from the other source): left alone.
    Skipped,
    /// Was complete; reset and relanded (`replace`).
    Replaced,
    /// Not over yet, or not covered whole by the file: left for the API.
    NotOver,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Landed => "landed",
            Outcome::Skipped => "skipped",
            Outcome::Replaced => "replaced",
            Outcome::NotOver => "not-over",
        }
    }
}

/// One month of a backfill.
#[derive(Debug, Clone, PartialEq)]
pub struct BulkMonth {
    pub month: Month,
    pub outcome: Outcome,
    /// Rows of the month in the file.
    pub rows: u64,
    /// Rows landed in this run (fewer than `rows` when a run resumed).
    pub landed: u64,
    pub parts: u32,
    /// Compressed bytes landed in this run.
    pub bytes: u64,
    pub seconds: f64,
    pub note: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct FileReport {
    pub file: RemoteFile,
    /// The last complete backfill read this very file.
    pub unchanged: bool,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Report {
    pub files: Vec<FileReport>,
    /// Nothing was downloaded: unchanged since the last backfill.
    pub unchanged: bool,
    pub months: Vec<BulkMonth>,
    /// Archive bytes read.
    pub downloaded: u64,
    /// Rows read from the files, in the years asked for.
    pub rows: u64,
    pub seconds: f64,
}

/// Whether `record` (the last complete backfill) read this very file.
pub fn unchanged(record: Option<&BackfillRecord>, format: RecordFormat, f: &RemoteFile) -> bool {
    record
        .filter(|r| r.format == format_name(format))
        .and_then(|r| r.files.get(&f.name))
        .is_some_and(|v| v.size == f.size && v.last_updated == f.last_updated)
}

pub fn format_name(f: RecordFormat) -> &'static str {
    match f {
        RecordFormat::GepbdJson => "json",
        RecordFormat::GepbdCsv | RecordFormat::OdcCsv => "csv",
    }
}

/// Runs a backfill of one kind. See the module documentation.
pub async fn backfill<S: ObjectStore, R: Remote, L: Log>(
    landing: &Landing<S>,
    remote: &R,
    log: &L,
    o: &Options,
) -> Result<Report, BulkError> {
    if o.from_year > o.to_year {
        return Err(BulkError::InvalidInput(format!("from-year {} is after to-year {}", o.from_year, o.to_year)));
    }
    match (o.source, o.format) {
        (Source::Gepbd, RecordFormat::OdcCsv) | (Source::Odc, RecordFormat::GepbdJson | RecordFormat::GepbdCsv) => {
            return Err(BulkError::InvalidInput(format!("{} bulk files are not in that format", o.source)));
        }
        _ => {}
    }
    let ds = Dataset::certificates(o.kind);
    let base = json!({"step": "backfill", "dataset": ds.name(), "kind": o.kind.as_str(), "source": o.source.as_str()});
    let fields = |extra: Value| merge(base.clone(), extra);
    let files = remote.files().await?;
    // Rates are of downloading and landing, not of the service's `…/info`.
    let started = Instant::now();
    let record = read_record(landing.store(), o.source, o.kind).await?;
    let format = format_name(o.format);
    let same_file = |f: &RemoteFile| unchanged(record.as_ref(), o.format, f);
    let mut report = Report {
        files: files.iter().map(|f| FileReport { file: f.clone(), unchanged: same_file(f) }).collect(),
        ..Report::default()
    };
    log.emit(
        "INFO",
        "backfill-plan",
        fields(json!({"format": format, "from_year": o.from_year, "to_year": o.to_year, "replace": o.replace,
            "files": report.files.iter().map(|f| f.file.described(f.unchanged)).collect::<Vec<_>>()})),
    );
    let this_month = Month::of(o.today);
    let in_years = |m: Month| (o.from_year..=o.to_year).contains(&m.year());

    // What to download.
    let mut todo: Vec<RemoteFile> = Vec::new();
    match o.source {
        Source::Gepbd => {
            let covered = record.as_ref().is_some_and(|r| r.from_year <= o.from_year && o.to_year <= r.to_year);
            let mut unchanged = !o.replace && covered && !files.is_empty() && files.iter().all(same_file);
            if unchanged {
                // …and every month it held is still landed.
                for &m in record.as_ref().map(|r| r.months.keys()).into_iter().flatten().filter(|m| in_years(**m)) {
                    if !landing.read_month(ds, m).await?.is_complete() {
                        unchanged = false;
                        break;
                    }
                }
            }
            if unchanged {
                report.unchanged = true;
                report.seconds = started.elapsed().as_secs_f64();
                log.emit(
                    "INFO",
                    "backfill-done",
                    fields(json!({"outcome": "unchanged", "rows": 0, "bytes": 0,
                        "message": "the file is unchanged since the last backfill and its months are still landed: nothing downloaded (--replace to reland)"})),
                );
                return Ok(report);
            }
            todo = files.clone();
        }
        Source::Odc => {
            for f in &files {
                let Some(m) = f.month else { continue };
                if !in_years(m) || m >= this_month {
                    continue;
                }
                let state = landing.read_month(ds, m).await?;
                if state.is_complete() && !o.replace {
                    let note = left_alone(&state, o.source);
                    log.emit("INFO", "month", fields(json!({"month": m.to_string(), "outcome": "skipped", "rows": state.rows,
                        "pages": 0, "bytes": 0, "seconds": 0.0, "note": note, "file": f.name})));
                    report.months.push(BulkMonth { month: m, outcome: Outcome::Skipped, rows: state.rows, landed: 0, parts: 0, bytes: 0, seconds: 0.0, note: Some(note) });
                    continue;
                }
                todo.push(f.clone());
            }
            if todo.is_empty() {
                report.unchanged = true;
            }
        }
    }

    let mut run = Run {
        landing,
        log,
        o,
        ds,
        base: base.clone(),
        lease: None,
        renewed: Instant::now(),
        months: BTreeMap::new(),
        file: RemoteFile { name: String::new(), size: 0, last_updated: None, month: None },
        cutoff: this_month,
        downloaded: 0,
        rows: 0,
        bytes_at_last_part: 0,
        last_progress: Instant::now(),
    };
    if !todo.is_empty() {
        let lease = landing
            .acquire_lease(&o.holder, LEASE_TTL, jiff::Timestamp::now(), o.stale_holder.as_deref())
            .await?;
        if let Some(previous) = &lease.taken_over_from {
            log.emit("WARN", "lease", fields(json!({"message": format!("took over an expired lease held by {previous}")})));
        }
        run.lease = Some(lease);
    }
    let mut result = Ok(());
    for f in &todo {
        result = run.file(f, remote).await;
        if result.is_err() {
            break;
        }
    }
    if let Err(e) = &result {
        run.fail_open(&e.to_string()).await;
        log.emit("ERROR", "backfill", fields(json!({"reason": e.to_string(), "rows": run.rows, "bytes": run.downloaded})));
    }
    if let Some(lease) = run.lease.take() {
        if let Err(e) = landing.release_lease(&lease, jiff::Timestamp::now()).await {
            log.emit("WARN", "lease", fields(json!({"message": format!("could not release the lease: {e}")})));
        }
    }
    result?;

    report.downloaded = run.downloaded;
    report.rows = run.rows;
    report.months.extend(run.months.iter().map(|(m, w)| w.report(*m)));
    report.months.sort_by_key(|m| m.month);
    if !todo.is_empty() {
        let months = run.months.iter().filter(|(_, w)| w.outcome != Outcome::NotOver).map(|(m, w)| (*m, w.rows));
        let mut next = BackfillRecord {
            source: o.source,
            kind: o.kind,
            format: format.into(),
            files: todo.iter().map(|f| (f.name.clone(), FileVersion { size: f.size, last_updated: f.last_updated.clone() })).collect(),
            from_year: o.from_year,
            to_year: o.to_year,
            months: months.collect(),
            finished_at: jiff::Timestamp::now().round(jiff::Unit::Second).expect("rounds").to_string(),
        };
        if let Some(previous) = record.filter(|r| r.format == format) {
            // Keep what an earlier backfill of other years (or other ODC
            // files) recorded, when it read the same file.
            let same = o.source == Source::Odc || previous.files == next.files;
            if same {
                for (name, v) in previous.files {
                    next.files.entry(name).or_insert(v);
                }
                for (m, n) in previous.months {
                    next.months.entry(m).or_insert(n);
                }
                if previous.from_year <= o.to_year + 1 && o.from_year <= previous.to_year + 1 {
                    next.from_year = next.from_year.min(previous.from_year);
                    next.to_year = next.to_year.max(previous.to_year);
                }
            }
        }
        write_record(landing.store(), &next).await?;
    }
    report.seconds = started.elapsed().as_secs_f64();
    let landed: u64 = report.months.iter().map(|m| m.landed).sum();
    log.emit(
        "INFO",
        "backfill-done",
        fields(json!({"outcome": if report.unchanged { "unchanged" } else { "done" }, "rows": report.rows,
            "rows_landed": landed, "bytes": report.downloaded, "seconds": report.seconds,
            "rows_per_second": (report.rows as f64 / report.seconds.max(1e-3)).round(),
            "mb_per_second": ((report.downloaded as f64 / 1e6 / report.seconds.max(1e-3)) * 10.0).round() / 10.0})),
    );
    Ok(report)
}

/// Why a complete month is left alone, for the log.
fn left_alone(state: &MonthState, source: Source) -> String {
    let from = match (&state.source, &state.origin) {
        (Some(s), _) if *s != source => format!("landed from {s}"),
        (_, Some(origin)) if origin.starts_with("bulk") => "landed from a bulk file".to_string(),
        _ => "landed from the API".to_string(),
    };
    format!("already {} ({from}): left alone; --replace relands it", state.status.as_str())
}

fn merge(mut a: Value, b: Value) -> Value {
    if let (Some(a), Value::Object(b)) = (a.as_object_mut(), b) {
        a.extend(b);
    }
    a
}

enum Plan {
    /// Rows are counted, nothing is landed.
    Leave,
    Land {
        next_part: u32,
        buffer: Vec<Certificate>,
        /// Rows of the month still to pass over (landed by an earlier run).
        skip: u64,
        /// The last of them, as that run's checkpoint names it.
        expect_last: Option<String>,
        /// Rows of the month in the store.
        in_store: u64,
    },
}

struct Work {
    plan: Plan,
    outcome: Outcome,
    rows: u64,
    landed: u64,
    parts: u32,
    bytes: u64,
    started: Instant,
    finished: bool,
    note: Option<String>,
}

impl Work {
    fn report(&self, month: Month) -> BulkMonth {
        BulkMonth {
            month,
            outcome: self.outcome,
            rows: self.rows,
            landed: self.landed,
            parts: self.parts,
            bytes: self.bytes,
            seconds: self.started.elapsed().as_secs_f64(),
            note: self.note.clone(),
        }
    }
}

struct Run<'a, S, L> {
    landing: &'a Landing<S>,
    log: &'a L,
    o: &'a Options,
    ds: Dataset,
    base: Value,
    lease: Option<Lease>,
    renewed: Instant,
    months: BTreeMap<Month, Work>,
    /// The archive being read.
    file: RemoteFile,
    /// Months before this one may be landed.
    cutoff: Month,
    /// Archive bytes read, all files.
    downloaded: u64,
    rows: u64,
    bytes_at_last_part: u64,
    last_progress: Instant,
}

impl<S: ObjectStore, L: Log> Run<'_, S, L> {
    fn fields(&self, extra: Value) -> Value {
        merge(self.base.clone(), extra)
    }

    /// Downloads and lands one archive.
    async fn file<R: Remote>(&mut self, f: &RemoteFile, remote: &R) -> Result<(), BulkError> {
        self.file = f.clone();
        // A month is landed only once over, and (for a file with a date)
        // only if it ended before the file was built.
        let built = f.last_updated.as_deref().and_then(|t| t.get(..10)).and_then(|d| d.parse::<jiff::civil::Date>().ok());
        self.cutoff = Month::of(self.o.today).min(built.map(Month::of).unwrap_or(Month::of(self.o.today)));
        let body = remote.open(f).await?;
        self.log.emit("INFO", "download", self.fields(json!({"file": f.name, "total_bytes": f.size, "bytes_before": self.downloaded})));
        let mut zip = ZipStream::new(f.name.clone(), body);
        let mut archive_scope = BTreeSet::new();
        let result = self.archive(&mut zip, &mut archive_scope).await;
        self.downloaded += zip.bytes_read();
        result?;
        // Entries without a year in their name end with the archive.
        self.finish(&archive_scope).await
    }

    async fn archive<B: Read>(&mut self, zip: &mut ZipStream<B>, archive_scope: &mut BTreeSet<Month>) -> Result<(), BulkError> {
        let base_bytes = self.downloaded;
        self.bytes_at_last_part = base_bytes;
        while let Some(header) = zip.next_entry()? {
            if !self.o.format.wants(&header.name) {
                continue;
            }
            let year = entry_year(&header.name).filter(|_| self.file.month.is_none());
            if let Some(y) = year {
                if !(self.o.from_year..=self.o.to_year).contains(&y) {
                    continue;
                }
            }
            self.log.emit("INFO", "entry", self.fields(json!({"file": self.file.name, "entry": header.name,
                "compressed": header.compressed, "size": header.size})));
            let origin = Origin { archive: self.file.name.clone(), entry: header.name.clone() };
            let mut records = Records::new(self.o.format, self.o.kind, origin.clone(), zip.entry(&header))?;
            let mut touched = BTreeSet::new();
            loop {
                let row = match records.next_row() {
                    Ok(Some(row)) => row,
                    Ok(None) => break,
                    Err(e) => {
                        // A record that cannot be read may be the first
                        // sign of a damaged archive: the rest of the entry
                        // (its CRC) tells which, and the root cause wins.
                        let reader = records.get_mut();
                        if !reader.failed() {
                            if let Err(damage) = reader.check_rest() {
                                return Err(match damage {
                                    BulkError::Protocol(m) => BulkError::Protocol(format!("{m} (first seen as: {e})")),
                                    other => other,
                                });
                            }
                        }
                        return Err(e);
                    }
                };
                let m = row.month();
                let bytes = base_bytes + records.get_ref().bytes_read();
                if let Some(y) = year {
                    if m.year() != y {
                        return Err(BulkError::Protocol(format!(
                            "{}: {} line {}: certificate {} was lodged on {}, not in {y}: the archive is expected to \
                             hold each lodgement year in its own file",
                            origin.archive, origin.entry, row.line, row.certificate.id, row.certificate.lodgement_date
                        )));
                    }
                }
                if let Some(fm) = self.file.month {
                    if m != fm {
                        self.log.emit("WARN", "warning", self.fields(json!({"month": fm.to_string(), "message": format!(
                            "{}: {} line {}: skipped certificate {} lodged on {}, outside {fm}",
                            origin.archive, origin.entry, row.line, row.certificate.id, row.certificate.lodgement_date)})));
                        continue;
                    }
                }
                if !(self.o.from_year..=self.o.to_year).contains(&m.year()) {
                    continue;
                }
                touched.insert(m);
                self.row(row, &origin, bytes).await?;
            }
            let bytes = base_bytes + records.get_ref().bytes_read();
            drop(records);
            self.progress(bytes, &header.name, true);
            if year.is_some() {
                self.finish(&touched).await?;
            } else {
                archive_scope.extend(touched);
            }
        }
        Ok(())
    }

    fn progress(&mut self, bytes: u64, entry: &str, force: bool) {
        if force || self.last_progress.elapsed() >= PROGRESS_EVERY {
            self.last_progress = Instant::now();
            self.log.emit("INFO", "progress", self.fields(json!({"file": self.file.name, "entry": entry,
                "bytes": bytes, "rows": self.rows})));
        }
    }

    async fn row(&mut self, row: Row, origin: &Origin, bytes: u64) -> Result<(), BulkError> {
        let m = row.month();
        if !self.months.contains_key(&m) {
            let work = self.decide(m).await?;
            self.months.insert(m, work);
        }
        self.rows += 1;
        let work = self.months.get_mut(&m).expect("inserted above");
        if work.finished {
            return Err(BulkError::Protocol(format!(
                "{}: {} line {}: certificate {} belongs to {m}, which an earlier file of the archive completed: \
                 the archive does not hold each month in one file",
                origin.archive, origin.entry, row.line, row.certificate.id
            )));
        }
        work.rows += 1;
        let full = match &mut work.plan {
            Plan::Leave => false,
            Plan::Land { skip, expect_last, buffer, .. } if *skip > 0 => {
                *skip -= 1;
                if *skip == 0 {
                    if let Some(last) = expect_last.take().filter(|l| *l != row.certificate.id) {
                        return Err(BulkError::Protocol(format!(
                            "{}: {m} was partly landed from this file (same size and date) but its rows differ \
                             now ({} at line {} where the checkpoint names {last}); reland it with --replace",
                            origin.archive, row.certificate.id, row.line
                        )));
                    }
                }
                false
            }
            Plan::Land { buffer, .. } => {
                buffer.push(row.certificate);
                buffer.len() >= MAX_RECORDS_PER_PART
            }
        };
        if full {
            self.flush(m, bytes).await?;
        }
        self.progress(bytes, &origin.entry, false);
        if self.rows % 4096 == 0 {
            self.keep_lease().await?;
        }
        Ok(())
    }

    /// What to do with a month, the first time the file shows one of its rows.
    async fn decide(&mut self, m: Month) -> Result<Work, BulkError> {
        let (o, ds) = (self.o, self.ds);
        let mut work = Work {
            plan: Plan::Leave,
            outcome: Outcome::Landed,
            rows: 0,
            landed: 0,
            parts: 0,
            bytes: 0,
            started: Instant::now(),
            finished: false,
            note: None,
        };
        let fresh = Plan::Land { next_part: 1, buffer: Vec::with_capacity(MAX_RECORDS_PER_PART), skip: 0, expect_last: None, in_store: 0 };
        if m >= self.cutoff {
            work.outcome = Outcome::NotOver;
            work.note = Some(if m >= Month::of(o.today) {
                format!("{m} is not over: left for `dame run`")
            } else {
                format!("{m} did not end before the file was built ({}): left for `dame run`", self.file.last_updated.as_deref().unwrap_or("?"))
            });
            return Ok(work);
        }
        let state = self.landing.read_month(ds, m).await?;
        let other_source = state.source.is_some_and(|s| s != o.source);
        if state.is_complete() || other_source {
            if !o.replace {
                work.outcome = Outcome::Skipped;
                work.note = Some(if state.is_complete() {
                    left_alone(&state, o.source)
                } else {
                    format!("partly landed from {}: left alone; --replace relands it", state.source.map(|s| s.as_str()).unwrap_or("?"))
                });
                return Ok(work);
            }
            self.landing.reset_month(ds, m).await?;
            self.landing.open_month(o.source, ds, m).await?;
            work.outcome = if state.is_complete() { Outcome::Replaced } else { Outcome::Landed };
            work.plan = fresh;
            return Ok(work);
        }
        if state.status == MonthStatus::Empty {
            self.landing.open_month(o.source, ds, m).await?;
            work.plan = fresh;
            return Ok(work);
        }
        // Partly landed (or failed) from this source.
        let cursor = state.resume_cursor.as_deref().and_then(BulkCursor::parse);
        match cursor {
            Some(c) if c.file == self.file.name && c.version == self.file.version() && c.rows == state.rows => {
                self.landing.open_month(o.source, ds, m).await?;
                work.note = Some(format!("resumed after {} rows in {} part(s)", state.rows, state.parts));
                work.plan = Plan::Land {
                    next_part: state.parts + 1,
                    buffer: Vec::with_capacity(MAX_RECORDS_PER_PART),
                    skip: state.rows,
                    expect_last: Some(c.last),
                    in_store: state.rows,
                };
            }
            _ if state.parts == 0 => {
                self.landing.open_month(o.source, ds, m).await?;
                work.plan = fresh;
            }
            other => {
                let why = match other {
                    Some(_) => "an earlier build of the file",
                    None => "the API",
                };
                self.log.emit("INFO", "reset", self.fields(json!({"month": m.to_string(),
                    "message": format!("{m} was partly landed from {why} ({} rows): reset and landed afresh from {}", state.rows, self.file.name)})));
                self.landing.reset_month(ds, m).await?;
                self.landing.open_month(o.source, ds, m).await?;
                work.note = Some(format!("partial month from {why} reset"));
                work.plan = fresh;
            }
        }
        Ok(work)
    }

    /// Lands the month's buffered rows as its next part.
    async fn flush(&mut self, m: Month, bytes: u64) -> Result<(), BulkError> {
        let (source, ds, origin) = (self.o.source, self.ds, self.o.format.origin());
        let work = self.months.get_mut(&m).expect("known month");
        let Plan::Land { next_part, buffer, in_store, .. } = &mut work.plan else { return Ok(()) };
        if buffer.is_empty() {
            return Ok(());
        }
        let n = buffer.len() as u64;
        let cursor = BulkCursor {
            from: "bulk".into(),
            file: self.file.name.clone(),
            version: self.file.version(),
            rows: *in_store + n,
            last: buffer.last().expect("not empty").id.clone(),
        };
        let info = PageInfo {
            next_cursor: Some(cursor.encode()),
            reported: n,
            requests: 0,
            retries: 0,
            fetched_bytes: bytes.saturating_sub(self.bytes_at_last_part),
            origin: Some(origin.to_string()),
        };
        let part = *next_part;
        let checkpoint = self.landing.land_page(source, ds, m, part, buffer, info).await?;
        buffer.clear();
        *next_part += 1;
        *in_store += n;
        work.parts += 1;
        work.landed += n;
        work.bytes += checkpoint.bytes;
        self.bytes_at_last_part = bytes;
        self.log.emit("INFO", "page", self.fields(json!({"step": "land", "month": m.to_string(), "part": part,
            "rows": n, "bytes": checkpoint.bytes, "object": checkpoint.object})));
        self.keep_lease().await
    }

    /// Finishes months whose year's file has been read to its end.
    async fn finish(&mut self, months: &BTreeSet<Month>) -> Result<(), BulkError> {
        for &m in months {
            if self.months.get(&m).is_none_or(|w| w.finished) {
                continue;
            }
            self.flush(m, self.bytes_at_last_part).await?;
            let (source, ds) = (self.o.source, self.ds);
            let work = self.months.get_mut(&m).expect("known month");
            if let Plan::Land { skip, in_store, .. } = &work.plan {
                if *skip > 0 {
                    return Err(BulkError::Protocol(format!(
                        "{}: holds {} rows of {m} but {} were landed from it before (same size and date): the file \
                         changed; reland the month with --replace",
                        self.file.name,
                        work.rows,
                        in_store
                    )));
                }
                let state = self.landing.finish_month(source, ds, m).await?;
                if state.rows != *in_store {
                    return Err(BulkError::Storage(format!(
                        "{ds} {m}: the store holds {} rows where this backfill landed {in_store}; another run wrote \
                         to the month meanwhile",
                        state.rows
                    )));
                }
            }
            work.finished = true;
            let report = work.report(m);
            let level = "INFO";
            self.log.emit(level, "month", self.fields(json!({"month": m.to_string(), "outcome": report.outcome.as_str(),
                "rows": report.rows, "landed": report.landed, "pages": report.parts, "bytes": report.bytes,
                "seconds": report.seconds, "note": report.note, "origin": self.o.format.origin(), "file": self.file.name})));
        }
        Ok(())
    }

    async fn keep_lease(&mut self) -> Result<(), BulkError> {
        let Some(lease) = &self.lease else { return Ok(()) };
        if self.renewed.elapsed() < RENEW_AFTER {
            return Ok(());
        }
        let renewed = self.landing.renew_lease(lease, LEASE_TTL, jiff::Timestamp::now()).await?;
        self.lease = Some(renewed);
        self.renewed = Instant::now();
        Ok(())
    }

    /// After a fault: months being landed are marked failed with the reason
    /// (their parts stay; the next run continues them).
    async fn fail_open(&mut self, reason: &str) {
        let open: Vec<Month> = self
            .months
            .iter()
            .filter(|(_, w)| !w.finished && matches!(w.plan, Plan::Land { .. }))
            .map(|(m, _)| *m)
            .collect();
        for m in open {
            let w = &self.months[&m];
            let in_store = match &w.plan {
                Plan::Land { in_store, .. } => *in_store,
                Plan::Leave => 0,
            };
            self.log.emit("ERROR", "month", self.fields(json!({"month": m.to_string(), "outcome": "failed",
                "rows": in_store, "landed": w.landed, "pages": w.parts, "bytes": w.bytes,
                "seconds": w.started.elapsed().as_secs_f64(), "reason": reason})));
            if let Err(e) = self.landing.fail_month(self.ds, m, reason).await {
                self.log.emit("WARN", "warning", self.fields(json!({"month": m.to_string(), "message": format!("could not record the failure: {e}")})));
            }
        }
    }
}
