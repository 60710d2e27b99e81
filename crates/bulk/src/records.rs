//! The records of one bulk-file entry, read one at a time by column name.
//!
//! Three formats, each landing records equal to what the API path lands:
//!
//! - [`RecordFormat::GepbdJson`]: a JSON array (or a stream of objects) of
//!   the documents `/api/certificate` serves; each element is landed as its
//!   own text, so a backfilled record is the API's document byte for byte.
//! - [`RecordFormat::GepbdCsv`]: the GEPBD bulk CSV; each row becomes a JSON
//!   object keyed by the file's column names in lower snake_case, every
//!   value a string (the row, not the API's document).
//! - [`RecordFormat::OdcCsv`]: the ODC monthly `certificates.csv`; each row
//!   becomes the ODC API's row: keys lower-cased with `_` → `-`, every value
//!   a string.
//!
//! Columns are found by name, whatever their order or case; a header
//! without the identifying columns, or without the column every file of
//! the kind has, is an "unknown column set" naming the file. A row with the
//! wrong number of fields names its line.

use crate::BulkError;
use crate::zip::io_to_bulk;
use epc_model::{Certificate, Kind, Month};
use serde::Deserialize;
use serde_json::Value;
use std::borrow::Cow;
use std::io::{BufRead, BufReader, Read};

/// How one entry's records are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordFormat {
    GepbdJson,
    GepbdCsv,
    OdcCsv,
}

impl RecordFormat {
    /// Whether an entry of the archive holds certificates in this format
    /// (recommendation files and anything else are skipped).
    pub fn wants(self, entry: &str) -> bool {
        let base = entry.rsplit('/').next().unwrap_or(entry).to_ascii_lowercase();
        if base.is_empty() || base.contains("recommendation") {
            return false;
        }
        match self {
            RecordFormat::GepbdJson => base.ends_with(".json"),
            RecordFormat::GepbdCsv => base.ends_with(".csv"),
            RecordFormat::OdcCsv => base == "certificates.csv",
        }
    }

    /// The `origin` recorded in the checkpoints of months it lands.
    pub fn origin(self) -> &'static str {
        match self {
            RecordFormat::GepbdJson => "bulk-json",
            RecordFormat::GepbdCsv | RecordFormat::OdcCsv => "bulk-csv",
        }
    }
}

/// The lodgement year an entry's name gives (`domestic-2021.csv` → 2021),
/// if any: the last run of exactly four digits that is a plausible year.
pub fn entry_year(entry: &str) -> Option<u16> {
    let base = entry.rsplit('/').next().unwrap_or(entry);
    let stem = base.rsplit_once('.').map_or(base, |(s, _)| s);
    stem.split(|c: char| !c.is_ascii_digit())
        .filter(|t| t.len() == 4)
        .filter_map(|t| t.parse::<u16>().ok())
        .filter(|y| (2000..=2100).contains(y))
        .next_back()
}

/// A date as the bulk files write it: `YYYY-MM-DD` or `DD/MM/YYYY`,
/// optionally followed by a time.
pub fn parse_date(raw: &str) -> Option<jiff::civil::Date> {
    let day = raw.trim().split([' ', 'T']).next()?;
    if let Ok(d) = day.parse::<jiff::civil::Date>() {
        return Some(d);
    }
    let mut it = day.split('/');
    let (d, m, y) = (it.next()?, it.next()?, it.next()?);
    if it.next().is_some() || y.len() != 4 {
        return None;
    }
    jiff::civil::Date::new(y.parse().ok()?, m.parse().ok()?, d.parse().ok()?).ok()
}

/// One certificate read from an entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub certificate: Certificate,
    /// Where the record starts in its entry (1-based).
    pub line: u64,
}

impl Row {
    pub fn month(&self) -> Month {
        Month::of(self.certificate.lodgement_date.parse().expect("rows carry a checked date"))
    }
}

/// Where a record came from, for messages.
#[derive(Debug, Clone)]
pub struct Origin {
    pub archive: String,
    pub entry: String,
}

impl Origin {
    fn at(&self, line: u64) -> String {
        format!("{}: {} line {line}", self.archive, self.entry)
    }
}

/// The records of one entry.
pub enum Records<R: Read> {
    Json(JsonRecords<R>),
    Csv(CsvRecords<R>),
}

impl<R: Read> Records<R> {
    /// Starts reading an entry; a CSV header is read and checked here.
    pub fn new(format: RecordFormat, kind: Kind, origin: Origin, input: R) -> Result<Self, BulkError> {
        Ok(match format {
            RecordFormat::GepbdJson => Records::Json(JsonRecords::new(origin, input)),
            RecordFormat::GepbdCsv | RecordFormat::OdcCsv => Records::Csv(CsvRecords::new(format, kind, origin, input)?),
        })
    }

    pub fn next_row(&mut self) -> Result<Option<Row>, BulkError> {
        match self {
            Records::Json(r) => r.next_row(),
            Records::Csv(r) => r.next_row(),
        }
    }

    /// The reader underneath (for progress counters).
    pub fn get_ref(&self) -> &R {
        match self {
            Records::Json(r) => r.input.get_ref(),
            Records::Csv(r) => r.reader.get_ref(),
        }
    }

    pub fn get_mut(&mut self) -> &mut R {
        match self {
            Records::Json(r) => r.input.get_mut(),
            Records::Csv(r) => r.reader.get_mut(),
        }
    }
}

// ---------------------------------------------------------------- JSON

/// The largest document accepted: certificate documents are 10–20 KB; a
/// runaway element means the file is not what it should be.
const MAX_DOCUMENT: usize = 8 * 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    Unknown,
    /// `[doc, doc, …]`
    Array,
    /// `doc doc …` (one a line, or any whitespace between)
    Stream,
}

/// Documents of a JSON bulk file, each returned as its own text.
pub struct JsonRecords<R> {
    input: BufReader<R>,
    origin: Origin,
    layout: Layout,
    line: u64,
    index: u64,
    element: Vec<u8>,
    done: bool,
}

/// The fields a document must carry, read without building the document.
#[derive(Deserialize)]
struct DocKeys<'a> {
    #[serde(borrow, default)]
    certificate_number: Option<Cow<'a, str>>,
    #[serde(borrow, default, rename = "certificateNumber")]
    certificate_number_camel: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    registration_date: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    lodgement_date: Option<Cow<'a, str>>,
    #[serde(default)]
    uprn: Option<Value>,
    #[serde(default)]
    postcode: Option<Value>,
}

/// A UPRN as the API path keeps it: numbers as digits, text trimmed.
fn uprn_text(v: &Value) -> Option<String> {
    match v {
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        _ => None,
    }
}

impl<R: Read> JsonRecords<R> {
    pub fn new(origin: Origin, input: R) -> Self {
        Self {
            input: BufReader::with_capacity(256 * 1024, input),
            origin,
            layout: Layout::Unknown,
            line: 1,
            index: 0,
            element: Vec::with_capacity(64 * 1024),
            done: false,
        }
    }

    fn io(&self, e: std::io::Error) -> BulkError {
        io_to_bulk(e, &format!("{}: {}", self.origin.archive, self.origin.entry))
    }

    fn bad(&self, line: u64, what: impl std::fmt::Display) -> BulkError {
        BulkError::Protocol(format!("{}: {what}", self.origin.at(line)))
    }

    /// The next byte that is not whitespace, left unread; `None` at the end.
    fn peek(&mut self) -> Result<Option<u8>, BulkError> {
        loop {
            let buf = match self.input.fill_buf() {
                Ok(b) => b,
                Err(e) => return Err(self.io(e)),
            };
            if buf.is_empty() {
                return Ok(None);
            }
            let mut skipped = 0;
            let mut lines = 0;
            let mut found = None;
            for &b in buf {
                match b {
                    b'\n' => lines += 1,
                    b' ' | b'\t' | b'\r' => {}
                    // A byte-order mark before the first value.
                    0xEF | 0xBB | 0xBF if self.layout == Layout::Unknown => {}
                    other => {
                        found = Some(other);
                        break;
                    }
                }
                skipped += 1;
            }
            self.input.consume(skipped);
            self.line += lines;
            if found.is_some() {
                return Ok(found);
            }
        }
    }

    /// Reads one object (the next byte is `{`) into `self.element`.
    fn read_object(&mut self, start: u64) -> Result<(), BulkError> {
        self.element.clear();
        let (mut depth, mut in_string, mut escape) = (0u32, false, false);
        loop {
            let buf = match self.input.fill_buf() {
                Ok(b) => b,
                Err(e) => return Err(self.io(e)),
            };
            if buf.is_empty() {
                return Err(BulkError::Protocol(format!(
                    "{}: truncated: the file ends inside the document that starts there",
                    self.origin.at(start)
                )));
            }
            let mut end = None;
            let mut lines = 0;
            for (i, &b) in buf.iter().enumerate() {
                if in_string {
                    if escape {
                        escape = false;
                    } else if b == b'\\' {
                        escape = true;
                    } else if b == b'"' {
                        in_string = false;
                    } else if b == b'\n' {
                        lines += 1;
                    }
                    continue;
                }
                match b {
                    b'"' => in_string = true,
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth = depth.saturating_sub(1);
                        if depth == 0 {
                            end = Some(i + 1);
                            break;
                        }
                    }
                    b'\n' => lines += 1,
                    _ => {}
                }
            }
            let take = end.unwrap_or(buf.len());
            self.element.extend_from_slice(&buf[..take]);
            self.input.consume(take);
            self.line += lines;
            if end.is_some() {
                return Ok(());
            }
            if self.element.len() > MAX_DOCUMENT {
                return Err(self.bad(start, format!("a document longer than {} MB: not a certificate", MAX_DOCUMENT >> 20)));
            }
        }
    }

    pub fn next_row(&mut self) -> Result<Option<Row>, BulkError> {
        if self.done {
            return Ok(None);
        }
        let next = self.peek()?;
        if self.layout == Layout::Unknown {
            match next {
                Some(b'[') => {
                    self.input.consume(1);
                    self.layout = Layout::Array;
                }
                Some(b'{') => self.layout = Layout::Stream,
                None => {
                    return Err(self.bad(self.line, "empty file: expected a JSON array of certificate documents"));
                }
                Some(b) => {
                    return Err(self.bad(
                        self.line,
                        format!("expected a JSON array of certificate documents, found {:?}", b as char),
                    ));
                }
            }
        }
        let mut next = if self.layout == Layout::Array { self.peek()? } else { next };
        if self.layout == Layout::Array && self.index > 0 {
            match next {
                Some(b',') => {
                    self.input.consume(1);
                    next = self.peek()?;
                }
                Some(b']') => {}
                None => {
                    return Err(BulkError::Protocol(format!(
                        "{}: truncated: the file ends before its array is closed",
                        self.origin.at(self.line)
                    )));
                }
                Some(b) => return Err(self.bad(self.line, format!("expected ',' or ']' after a document, found {:?}", b as char))),
            }
        }
        match next {
            Some(b']') if self.layout == Layout::Array => {
                self.input.consume(1);
                self.done = true;
                if let Some(b) = self.peek()? {
                    return Err(self.bad(self.line, format!("{:?} after the end of the array", b as char)));
                }
                return Ok(None);
            }
            None if self.layout == Layout::Stream => {
                self.done = true;
                return Ok(None);
            }
            None => {
                return Err(BulkError::Protocol(format!(
                    "{}: truncated: the file ends before its array is closed",
                    self.origin.at(self.line)
                )));
            }
            Some(b'{') => {}
            Some(b) => {
                return Err(self.bad(self.line, format!("document {} is not a JSON object (starts with {:?})", self.index + 1, b as char)));
            }
        }
        let start = self.line;
        self.read_object(start)?;
        self.index += 1;
        self.document(start).map(Some)
    }

    fn document(&self, line: u64) -> Result<Row, BulkError> {
        let keys: DocKeys = serde_json::from_slice(&self.element).map_err(|e| {
            let at = line + e.line() as u64 - 1;
            self.bad(at, format!("document {} is not valid JSON ({e})", self.index))
        })?;
        let id = keys.certificate_number.or(keys.certificate_number_camel).map(|s| s.trim().to_string());
        let Some(id) = id.filter(|s| !s.is_empty()) else {
            return Err(self.bad(line, format!("document {} has no certificate_number", self.index)));
        };
        let Some(raw_date) = keys.registration_date.or(keys.lodgement_date) else {
            return Err(self.bad(line, format!("certificate {id} has no registration_date")));
        };
        let Some(date) = parse_date(&raw_date) else {
            return Err(self.bad(line, format!("certificate {id}: registration_date {raw_date:?} is not a date")));
        };
        let text = std::str::from_utf8(&self.element)
            .map_err(|e| self.bad(line, format!("certificate {id}: the document is not UTF-8 ({e})")))?;
        // One line per document, as the API path lands it.
        let document = epc_model::one_line(text).into_owned();
        let postcode = match keys.postcode {
            Some(Value::String(p)) if !p.trim().is_empty() => Some(p),
            _ => None,
        };
        Ok(Row {
            certificate: Certificate {
                id,
                lodgement_date: date.to_string(),
                uprn: keys.uprn.as_ref().and_then(uprn_text),
                postcode,
                document,
            },
            line,
        })
    }
}

// ---------------------------------------------------------------- CSV

/// Rows of a CSV bulk file as JSON objects.
pub struct CsvRecords<R> {
    reader: csv::Reader<R>,
    origin: Origin,
    /// Each column's key, already JSON-quoted with its colon: `"lmk-key":`.
    keys: Vec<String>,
    id: usize,
    date: usize,
    uprn: Option<usize>,
    postcode: Option<usize>,
    id_name: &'static str,
    record: csv::ByteRecord,
}

/// The column every file of a kind has, to tell a file of another kind.
fn kind_marker(kind: Kind) -> &'static str {
    match kind {
        Kind::Domestic => "current_energy_rating",
        Kind::NonDomestic => "asset_rating",
        Kind::Display => "current_operational_rating",
    }
}

impl<R: Read> CsvRecords<R> {
    pub fn new(format: RecordFormat, kind: Kind, origin: Origin, input: R) -> Result<Self, BulkError> {
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(true)
            .flexible(false)
            .buffer_capacity(256 * 1024)
            .from_reader(input);
        let header = match reader.byte_headers() {
            Ok(h) => h.clone(),
            Err(e) => return Err(csv_error(e, &origin)),
        };
        // Matched in lower snake_case whatever the file's case.
        let names: Vec<String> = header
            .iter()
            .enumerate()
            .map(|(i, h)| {
                let h = String::from_utf8_lossy(h);
                let h = if i == 0 { h.trim_start_matches('\u{feff}') } else { &h };
                h.trim().to_ascii_lowercase()
            })
            .collect();
        let found = || {
            let shown: Vec<&str> = names.iter().take(8).map(String::as_str).collect();
            format!("{}{}", shown.join(", "), if names.len() > 8 { ", …" } else { "" })
        };
        let unknown = |what: String| {
            BulkError::Protocol(format!(
                "{}: {}: unknown column set: {what} (found {}); expected the {} bulk columns of {kind} certificates",
                origin.archive,
                origin.entry,
                found(),
                if format == RecordFormat::OdcCsv { "ODC" } else { "GEPBD" },
            ))
        };
        let position = |name: &str| names.iter().position(|n| n == name);
        for (i, n) in names.iter().enumerate() {
            if n.is_empty() {
                return Err(unknown(format!("column {} has no name", i + 1)));
            }
            if names[..i].contains(n) {
                return Err(unknown(format!("column {n} appears twice")));
            }
        }
        let id_name = if format == RecordFormat::OdcCsv { "lmk_key" } else { "certificate_number" };
        let Some(id) = position(id_name) else {
            let hint = match (format, position("lmk_key"), position("certificate_number")) {
                (RecordFormat::GepbdCsv, Some(_), _) => "; it looks like an ODC file",
                (RecordFormat::OdcCsv, _, Some(_)) => "; it looks like a GEPBD file",
                _ => "",
            };
            return Err(unknown(format!("no {id_name} column{hint}")));
        };
        let Some(date) = position("lodgement_date") else {
            return Err(unknown("no lodgement_date column".into()));
        };
        if position(kind_marker(kind)).is_none() {
            return Err(unknown(format!("no {} column, which every {kind} file has", kind_marker(kind))));
        }
        let keys = names
            .iter()
            .map(|n| {
                let key = if format == RecordFormat::OdcCsv { n.replace('_', "-") } else { n.clone() };
                format!("{}:", serde_json::to_string(&key).expect("strings serialise"))
            })
            .collect();
        Ok(Self {
            reader,
            keys,
            id,
            date,
            uprn: position("uprn"),
            postcode: position("postcode"),
            id_name,
            origin,
            record: csv::ByteRecord::new(),
        })
    }

    pub fn next_row(&mut self) -> Result<Option<Row>, BulkError> {
        match self.reader.read_byte_record(&mut self.record) {
            Ok(false) => return Ok(None),
            Ok(true) => {}
            Err(e) => return Err(csv_error(e, &self.origin)),
        }
        let line = self.record.position().map(|p| p.line()).unwrap_or(0);
        let field = |i: usize| String::from_utf8_lossy(self.record.get(i).unwrap_or_default());
        let id = field(self.id).trim().to_string();
        if id.is_empty() {
            return Err(BulkError::Protocol(format!("{}: no {}", self.origin.at(line), self.id_name)));
        }
        let raw_date = field(self.date);
        let Some(date) = parse_date(&raw_date) else {
            return Err(BulkError::Protocol(format!(
                "{}: {} {id}: lodgement_date {raw_date:?} is not a date",
                self.origin.at(line),
                self.id_name
            )));
        };
        let text = |i: Option<usize>| i.map(field).map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
        let mut document = String::with_capacity(self.record.as_slice().len() + self.keys.len() * 24);
        document.push('{');
        for (i, key) in self.keys.iter().enumerate() {
            if i > 0 {
                document.push(',');
            }
            document.push_str(key);
            let value = String::from_utf8_lossy(self.record.get(i).unwrap_or_default());
            document.push_str(&serde_json::to_string(value.as_ref()).expect("strings serialise"));
        }
        document.push('}');
        Ok(Some(Row {
            certificate: Certificate {
                id,
                lodgement_date: date.to_string(),
                uprn: text(self.uprn),
                postcode: text(self.postcode),
                document,
            },
            line,
        }))
    }
}

fn csv_error(e: csv::Error, origin: &Origin) -> BulkError {
    let line = e.position().map(|p| p.line()).unwrap_or(0);
    match e.into_kind() {
        csv::ErrorKind::Io(io) => io_to_bulk(io, &format!("{}: {}", origin.archive, origin.entry)),
        csv::ErrorKind::UnequalLengths { expected_len, len, pos } => BulkError::Protocol(format!(
            "{}: {len} fields where the header has {expected_len}",
            origin.at(pos.map(|p| p.line()).unwrap_or(line))
        )),
        other => BulkError::Protocol(format!("{}: unreadable CSV ({other:?})", origin.at(line))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin() -> Origin {
        Origin { archive: "domestic-csv.zip".into(), entry: "domestic-2021.csv".into() }
    }

    fn all(format: RecordFormat, kind: Kind, text: &str) -> Result<Vec<Row>, BulkError> {
        let mut r = Records::new(format, kind, origin(), text.as_bytes())?;
        let mut out = Vec::new();
        while let Some(row) = r.next_row()? {
            out.push(row);
        }
        Ok(out)
    }

    #[test]
    fn entry_names_give_years() {
        assert_eq!(entry_year("domestic-2021.csv"), Some(2021));
        assert_eq!(entry_year("data/non-domestic-recommendations-2019.json"), Some(2019));
        assert_eq!(entry_year("certificates.csv"), None);
        assert!(RecordFormat::OdcCsv.wants("certificates.csv") && !RecordFormat::OdcCsv.wants("recommendations.csv"));
        assert!(!RecordFormat::GepbdJson.wants("display-recommendations-2021.json"));
        assert_eq!(parse_date("05/03/2021 10:11:12").unwrap().to_string(), "2021-03-05");
        assert_eq!(parse_date("2021-03-05 00:00:00.000000").unwrap().to_string(), "2021-03-05");
        assert!(parse_date("2021-13-05").is_none() && parse_date("").is_none());
    }

    #[test]
    fn json_documents_keep_their_text() {
        let doc1 = r#"{"certificate_number":"0001-0002","registration_date":"2021-01-05","uprn":123,"postcode":"TS1 1AA","x":{"y":"a}b\"c"}}"#;
        let doc2 = "{\"certificate_number\":\"0003\",\n \"registration_date\":\"2021-02-01\",\"uprn\":null,\"postcode\":\"\"}";
        let rows = all(RecordFormat::GepbdJson, Kind::Domestic, &format!("\u{feff}[\n{doc1},\n{doc2}\n]\n")).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].certificate.document, doc1);
        assert_eq!(rows[0].certificate.uprn.as_deref(), Some("123"));
        assert_eq!(rows[0].certificate.postcode.as_deref(), Some("TS1 1AA"));
        assert_eq!((rows[0].line, rows[1].line), (2, 3));
        assert_eq!(rows[1].certificate.document, doc2.replace('\n', " "));
        assert_eq!((rows[1].certificate.uprn.as_ref(), rows[1].certificate.postcode.as_ref()), (None, None));
        assert_eq!(rows[1].month().to_string(), "2021-02");
        // One object a line works too, and an empty array is no rows.
        assert_eq!(all(RecordFormat::GepbdJson, Kind::Domestic, &format!("{doc1}\n{doc1}\n")).unwrap().len(), 2);
        assert!(all(RecordFormat::GepbdJson, Kind::Domestic, "[]").unwrap().is_empty());
    }

    #[test]
    fn broken_json_names_the_line() {
        let good = r#"{"certificate_number":"1","registration_date":"2021-01-05"}"#;
        for (text, want) in [
            (format!("[{good},\n{good}"), "truncated"),
            (format!("[{good},\n{{\"certificate_number\":\"2\""), "truncated"),
            (format!("[{good},\n{{\"registration_date\":\"2021-01-01\"}}]"), "line 2: document 2 has no certificate_number"),
            (format!("[{good},\n{{\"certificate_number\":\"2\",,\"registration_date\":\"2021-01-01\"}}]"), "line 2: document 2 is not valid JSON"),
            (format!("[{good}\n{good}]"), "line 2: expected ',' or ']'"),
            (format!("[{good},\n{{\"certificate_number\":\"2\",\"registration_date\":\"soon\"}}]"), "not a date"),
            ("<html>".to_string(), "expected a JSON array"),
        ] {
            let err = all(RecordFormat::GepbdJson, Kind::Domestic, &text).unwrap_err().to_string();
            assert!(err.contains("domestic-csv.zip: domestic-2021.csv") && err.contains(want), "{want}: {err}");
        }
    }

    #[test]
    fn csv_rows_become_objects_by_column_name() {
        let text = "LMK_KEY,Postcode,UPRN,LODGEMENT_DATE,CURRENT_ENERGY_RATING,NOTE\n\
                    k1, TS1 1AA ,,2021-03-04,C,\"multi\nline, \"\"quoted\"\"\"\n";
        let rows = all(RecordFormat::OdcCsv, Kind::Domestic, text).unwrap();
        let c = &rows[0].certificate;
        assert_eq!((c.id.as_str(), c.lodgement_date.as_str()), ("k1", "2021-03-04"));
        assert_eq!((c.postcode.as_deref(), c.uprn.as_deref()), (Some("TS1 1AA"), None));
        let v: Value = serde_json::from_str(&c.document).unwrap();
        assert_eq!(v["lmk-key"], "k1");
        assert_eq!(v["postcode"], " TS1 1AA ", "values are kept as the file has them");
        assert_eq!(v["note"], "multi\nline, \"quoted\"");
        assert_eq!(v.as_object().unwrap().len(), 6);
        assert_eq!(rows[0].line, 2);

        let gepbd = "certificate_number,lodgement_date,current_energy_rating,uprn\n0001,05/03/2021,D,100\n";
        let rows = all(RecordFormat::GepbdCsv, Kind::Domestic, gepbd).unwrap();
        let v: Value = serde_json::from_str(&rows[0].certificate.document).unwrap();
        assert_eq!(v, serde_json::json!({"certificate_number":"0001","lodgement_date":"05/03/2021","current_energy_rating":"D","uprn":"100"}));
        assert_eq!(rows[0].certificate.lodgement_date, "2021-03-05");
    }

    #[test]
    fn bad_csv_is_named() {
        let head = "certificate_number,lodgement_date,current_energy_rating\n";
        for (format, kind, text, want) in [
            (RecordFormat::GepbdCsv, Kind::Domestic, format!("{head}1,2021-01-01,C\n2,2021-01-02\n"), "line 3: 2 fields where the header has 3"),
            (RecordFormat::GepbdCsv, Kind::Domestic, "LMK_KEY,LODGEMENT_DATE,CURRENT_ENERGY_RATING\n".into(), "unknown column set: no certificate_number column; it looks like an ODC file"),
            (RecordFormat::GepbdCsv, Kind::NonDomestic, head.to_string(), "unknown column set: no asset_rating column"),
            (RecordFormat::GepbdCsv, Kind::Domestic, "certificate_number,current_energy_rating\n".into(), "no lodgement_date"),
            (RecordFormat::GepbdCsv, Kind::Domestic, format!("{head}1,yesterday,C\n"), "line 2: certificate_number 1: lodgement_date \"yesterday\""),
            (RecordFormat::GepbdCsv, Kind::Domestic, format!("{head} ,2021-01-01,C\n"), "line 2: no certificate_number"),
            (RecordFormat::GepbdCsv, Kind::Domestic, "certificate_number,lodgement_date,current_energy_rating,lodgement_date\n".into(), "appears twice"),
        ] {
            let err = all(format, kind, &text).unwrap_err().to_string();
            assert!(err.contains("domestic-csv.zip: domestic-2021.csv") && err.contains(want), "{want}: {err}");
        }
    }
}
