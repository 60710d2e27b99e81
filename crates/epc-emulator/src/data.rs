//! Loading the ODC bulk CSV files and the in-memory model both APIs serve.
//!
//! Every certificate keeps every source value exactly as the file had it (the
//! ODC API returns them verbatim); what the APIs need to search and sort on is
//! derived once at load time (dates, band, UPRN, postcode key, GEPBD numbers),
//! so that a request only filters and slices. The loaded data never changes:
//! an [`crate::Emulator`] is immutable and shared between requests.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use anyhow::{Context, bail};
use jiff::civil::Date;
use serde::{Deserialize, Serialize};

use crate::DataFile;
use crate::ids::{gepbd_certificate_number, related_report_number};
use crate::values;

/// The three certificate kinds; their slugs are the path segments both APIs
/// use (`/api/domestic/search`, `/api/v1/non-domestic/search`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    Domestic,
    NonDomestic,
    Display,
}

impl Kind {
    pub const ALL: [Kind; 3] = [Kind::Domestic, Kind::NonDomestic, Kind::Display];

    /// The path segment: `domestic`, `non-domestic`, `display`.
    pub fn slug(self) -> &'static str {
        match self {
            Kind::Domestic => "domestic",
            Kind::NonDomestic => "non-domestic",
            Kind::Display => "display",
        }
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }

    /// Recognises the kind of an ODC certificates file from its (upper-cased)
    /// header. Display is tested first because a DEC file also has
    /// `TOTAL_FLOOR_AREA`; the domestic marker is `CURRENT_ENERGY_EFFICIENCY`,
    /// which no other kind has.
    pub fn from_header<S: AsRef<str>>(columns: &[S]) -> Option<Kind> {
        let has = |name: &str| columns.iter().any(|c| c.as_ref() == name);
        if has("CURRENT_OPERATIONAL_RATING") {
            Some(Kind::Display)
        } else if has("ASSET_RATING") {
            Some(Kind::NonDomestic)
        } else if has("CURRENT_ENERGY_EFFICIENCY") {
            Some(Kind::Domestic)
        } else {
            None
        }
    }

    /// The column whose value is the certificate's energy band in GEPBD's
    /// `currentEnergyEfficiencyBand` and ODC's `energy-band` filter.
    pub(crate) fn band_column(self) -> &'static str {
        match self {
            Kind::Domestic => "CURRENT_ENERGY_RATING",
            Kind::NonDomestic => "ASSET_RATING_BAND",
            Kind::Display => "OPERATIONAL_RATING_BAND",
        }
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.slug())
    }
}

impl std::str::FromStr for Kind {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> anyhow::Result<Kind> {
        Kind::ALL
            .into_iter()
            .find(|k| k.slug() == s)
            .with_context(|| format!("unknown certificate kind {s:?}"))
    }
}

/// Which GEPBD document schema a certificate is presented in. The emulator
/// uses the schemas of the official samples: RdSAP for existing dwellings,
/// SAP for new dwellings, CEPC-8.0.0 for both non-domestic kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schema {
    RdSap,
    Sap,
    Cepc,
    Dec,
}

impl Schema {
    pub fn schema_type(self) -> &'static str {
        match self {
            Schema::RdSap => "RdSAP-Schema-21.0.1",
            Schema::Sap => "SAP-Schema-19.2.0",
            Schema::Cepc | Schema::Dec => "CEPC-8.0.0",
        }
    }

    pub fn assessment_type(self) -> &'static str {
        match self {
            Schema::RdSap => "RdSAP",
            Schema::Sap => "SAP",
            Schema::Cepc => "CEPC",
            Schema::Dec => "DEC",
        }
    }

    fn for_row(kind: Kind, transaction_type: &str) -> Schema {
        match kind {
            // ODC writes "new dwelling"; the SAP schema is the one lodged for
            // new builds, RdSAP the one for existing dwellings.
            Kind::Domestic
                if transaction_type
                    .to_ascii_lowercase()
                    .contains("new dwelling") =>
            {
                Schema::Sap
            }
            Kind::Domestic => Schema::RdSap,
            Kind::NonDomestic => Schema::Cepc,
            Kind::Display => Schema::Dec,
        }
    }
}

/// The header of one source file, shared by all of its rows.
#[derive(Debug)]
pub struct Header {
    pub columns: Vec<String>,
    index: HashMap<String, usize>,
}

impl Header {
    /// The position of `column` in the rows of this header.
    pub fn position(&self, column: &str) -> Option<usize> {
        self.index.get(column).copied()
    }
}

/// A row's values: a loaded row owns them; a synthetic row keeps only the
/// values it changed (one string, spans by column) over its template's, so a
/// month of 150,000 generated rows costs a few hundred bytes a row.
#[derive(Debug)]
pub enum Values {
    Own(Arc<[Box<str>]>),
    Derived {
        base: Arc<[Box<str>]>,
        /// The changed values, one after the other in column order.
        text: Box<str>,
        /// (column position, end in `text`), sorted by column; a value
        /// starts where the previous one ends.
        changed: Box<[(u16, u16)]>,
    },
}

impl Values {
    pub fn at(&self, i: usize) -> &str {
        match self {
            Values::Own(v) => &v[i],
            Values::Derived {
                base,
                text,
                changed,
            } => match changed.binary_search_by_key(&(i as u16), |c| c.0) {
                Ok(k) => {
                    let start = if k == 0 { 0 } else { changed[k - 1].1 as usize };
                    &text[start..changed[k].1 as usize]
                }
                Err(_) => &base[i],
            },
        }
    }

    /// The values a synthetic row can be derived from.
    pub fn base(&self) -> &Arc<[Box<str>]> {
        match self {
            Values::Own(v) => v,
            Values::Derived { base, .. } => base,
        }
    }

    /// A row over `base` with `changes` (column position → value); a row
    /// whose changes are too long for the compact form owns its values.
    pub fn derived(base: Arc<[Box<str>]>, mut changes: Vec<(usize, String)>) -> Values {
        changes.sort_by_key(|c| c.0);
        changes.dedup_by_key(|c| c.0);
        let len: usize = changes.iter().map(|c| c.1.len()).sum();
        if len > u16::MAX as usize || base.len() > u16::MAX as usize {
            let mut own: Vec<Box<str>> = base.to_vec();
            for (col, value) in changes {
                own[col] = value.into_boxed_str();
            }
            return Values::Own(own.into());
        }
        let mut text = String::with_capacity(len);
        let mut changed = Vec::with_capacity(changes.len());
        for (col, value) in changes {
            text.push_str(&value);
            changed.push((col as u16, text.len() as u16));
        }
        Values::Derived {
            base,
            text: text.into_boxed_str(),
            changed: changed.into_boxed_slice(),
        }
    }
}

/// What deltas did to a certificate, in time order.
#[derive(Debug, Default)]
pub struct Events {
    /// When the certificate was removed from the register.
    pub removed: Option<jiff::Timestamp>,
    /// UPRN changes (when, the new UPRN).
    pub uprns: Vec<(jiff::Timestamp, Option<i64>)>,
}

/// Whether an event at `at` has happened by the emulator's `today`: only
/// events of days before today count, the days the deltas route can serve.
pub fn happened(at: jiff::Timestamp, today: Date) -> bool {
    jiff::tz::Offset::UTC.to_datetime(at).date() < today
}

/// One certificate: the source row plus what the APIs derive from it.
#[derive(Debug)]
pub struct Certificate {
    pub header: Arc<Header>,
    pub values: Values,
    pub lmk_key: String,
    /// `LODGEMENT_DATE`: GEPBD's `registration_date`, the ODC window's date.
    pub lodgement_date: Date,
    /// ODC sort key, `YYYYMMDDHHMMSS` as a number (the lodgement date with
    /// the time of `LODGEMENT_DATETIME`); ties are broken by the LMK key.
    pub cursor: u64,
    pub certificate_number: String,
    /// The recommendation report's number (non-domestic and display only).
    pub related_rrn: Option<String>,
    pub schema: Schema,
    /// The energy band, upper-cased (may be empty or a placeholder).
    pub band: String,
    pub uprn: Option<i64>,
    /// Deltas configured for this certificate.
    pub events: Option<Box<Events>>,
}

impl Certificate {
    /// The source value of `column` (UPPER_SNAKE), if the file had the column.
    pub fn get(&self, column: &str) -> Option<&str> {
        self.header.index.get(column).map(|&i| self.values.at(i))
    }

    /// The postcode as the APIs match it (see [`values::postcode_key`]).
    pub fn postcode_key(&self) -> String {
        values::postcode_key(self.value("POSTCODE"))
    }

    /// The address as the APIs match it (see [`values::address_key`]).
    pub fn address_key(&self) -> String {
        let address = ["ADDRESS1", "ADDRESS2", "ADDRESS3", "ADDRESS4"]
            .iter()
            .map(|c| self.value(c))
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        values::address_key(&address)
    }

    /// Whether a delta removed this certificate before `today`.
    pub fn removed(&self, today: Date) -> bool {
        self.events
            .as_ref()
            .and_then(|e| e.removed)
            .is_some_and(|at| happened(at, today))
    }

    /// The UPRN as of `today`: the latest UPRN change that happened, else
    /// the source's.
    pub fn uprn_at(&self, today: Date) -> Option<i64> {
        self.uprn_change(today).unwrap_or(self.uprn)
    }

    /// `Some(new UPRN)` when a UPRN change has happened by `today`.
    pub fn uprn_change(&self, today: Date) -> Option<Option<i64>> {
        self.events.as_ref().and_then(|e| {
            e.uprns
                .iter()
                .rev()
                .find(|(at, _)| happened(*at, today))
                .map(|&(_, u)| u)
        })
    }

    /// The source value of `column` as of `today` (the `UPRN` column follows
    /// UPRN changes), empty when the file lacks the column.
    pub fn value_at(&self, column: &str, today: Date) -> std::borrow::Cow<'_, str> {
        if column == "UPRN"
            && let Some(change) = self.uprn_change(today)
        {
            return change.map(|u| u.to_string()).unwrap_or_default().into();
        }
        self.value(column).into()
    }

    /// The source value of `column`, empty when the file lacks the column.
    pub fn value(&self, column: &str) -> &str {
        self.get(column).unwrap_or("")
    }

    /// Every (column, value) pair of the source row, in file order.
    pub fn fields(&self) -> impl Iterator<Item = (&str, &str)> {
        self.header
            .columns
            .iter()
            .map(String::as_str)
            .enumerate()
            .map(|(i, c)| (c, self.values.at(i)))
    }

    /// `YYYY-MM` of the lodgement date.
    pub fn month(&self) -> String {
        format!(
            "{:04}-{:02}",
            self.lodgement_date.year(),
            self.lodgement_date.month()
        )
    }
}

/// All certificates of one kind, with the orderings the APIs page through.
#[derive(Debug)]
pub struct KindData {
    pub kind: Kind,
    /// The columns ODC presents for this kind: every column of every file of
    /// this kind, in first-seen order (files may differ, e.g. `REPORT_TYPE`).
    pub columns: Vec<String>,
    pub certs: Vec<Certificate>,
    pub by_lmk: HashMap<String, usize>,
    /// Indices by lodgement date, newest first (ties in load order; GEPBD
    /// shuffles ties per request, see [`crate::ordering`]).
    pub by_date_desc: Vec<usize>,
    /// Indices by (cursor, LMK key) ascending: the stable ODC order.
    pub by_cursor: Vec<usize>,
}

/// Everything loaded, for all kinds.
#[derive(Debug)]
pub struct Dataset {
    pub kinds: [KindData; 3],
    /// GEPBD certificate number → (kind, index).
    pub by_number: HashMap<String, (Kind, usize)>,
    /// Recommendation-report number → (kind, index) of its certificate.
    pub by_report: HashMap<String, (Kind, usize)>,
    /// Lower-cased council (`LOCAL_AUTHORITY_LABEL`) and constituency
    /// (`CONSTITUENCY_LABEL`) names of all kinds: what GEPBD's `council[]` and
    /// `constituency[]` accept.
    pub councils: HashSet<String>,
    pub constituencies: HashSet<String>,
}

impl Dataset {
    pub fn kind(&self, kind: Kind) -> &KindData {
        &self.kinds[kind.index()]
    }

    /// The certificate with this GEPBD number or LMK key, of any kind.
    pub fn find(&self, id: &str) -> Option<(Kind, usize)> {
        self.by_number.get(id).copied().or_else(|| {
            self.kinds
                .iter()
                .find_map(|k| k.by_lmk.get(id).map(|&i| (k.kind, i)))
        })
    }

    pub fn cert(&self, kind: Kind, i: usize) -> &Certificate {
        &self.kind(kind).certs[i]
    }

    pub fn latest_date(&self) -> Option<Date> {
        self.kinds
            .iter()
            .filter_map(|k| k.by_date_desc.first().map(|&i| k.certs[i].lodgement_date))
            .max()
    }
}

/// Where a row came from, for error messages.
#[derive(Debug, Clone)]
pub struct Origin {
    pub file: Arc<str>,
    pub line: u64,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} line {}", self.file, self.line)
    }
}

/// Reads all files, recognises their kinds and builds the dataset. Errors
/// name the file, and the line where a row is at fault.
pub fn load(files: &[DataFile]) -> anyhow::Result<Dataset> {
    load_with(files, |_, _| Ok(()))
}

/// [`load`], with `extend` adding rows (synthetic months) after the files
/// are read and before the indexes are built.
pub fn load_with(
    files: &[DataFile],
    extend: impl FnOnce(&mut [KindData; 3], &mut [Vec<Origin>; 3]) -> anyhow::Result<()>,
) -> anyhow::Result<Dataset> {
    let mut kinds: [KindData; 3] = Kind::ALL.map(|kind| KindData {
        kind,
        columns: Vec::new(),
        certs: Vec::new(),
        by_lmk: HashMap::new(),
        by_date_desc: Vec::new(),
        by_cursor: Vec::new(),
    });
    let mut origins: [Vec<Origin>; 3] = Default::default();

    for file in files {
        let (name, text) = read(file)?;
        load_file(&name, &text, &mut kinds, &mut origins)?;
    }
    extend(&mut kinds, &mut origins)?;

    let mut by_number: HashMap<String, (Kind, usize)> = HashMap::new();
    let mut by_report: HashMap<String, (Kind, usize)> = HashMap::new();
    // Related-report numbers share the certificate-number space in GEPBD
    // (both are fetched with /api/certificate), so they must not collide.
    let mut taken: HashMap<String, (String, &Origin)> = HashMap::new();
    let mut councils = HashSet::new();
    let mut constituencies = HashSet::new();
    for data in &mut kinds {
        let k = data.kind.index();
        for (i, cert) in data.certs.iter().enumerate() {
            let origin = &origins[k][i];
            let numbers =
                std::iter::once(&cert.certificate_number).chain(cert.related_rrn.as_ref());
            for number in numbers {
                if let Some((other, other_origin)) = taken.get(number) {
                    bail!(
                        "GEPBD number {number} derived for LMK_KEY {} ({origin}) collides with the one derived for LMK_KEY {other} ({other_origin})",
                        cert.lmk_key
                    );
                }
                taken.insert(number.clone(), (cert.lmk_key.clone(), origin));
            }
            by_number.insert(cert.certificate_number.clone(), (data.kind, i));
            if let Some(rrn) = &cert.related_rrn {
                by_report.insert(rrn.clone(), (data.kind, i));
            }
            let council = cert.value("LOCAL_AUTHORITY_LABEL").trim();
            if !council.is_empty() {
                councils.insert(council.to_lowercase());
            }
            let constituency = cert.value("CONSTITUENCY_LABEL").trim();
            if !constituency.is_empty() {
                constituencies.insert(constituency.to_lowercase());
            }
        }
        let certs = &data.certs;
        data.by_date_desc = (0..certs.len()).collect();
        data.by_date_desc
            .sort_by(|&a, &b| certs[b].lodgement_date.cmp(&certs[a].lodgement_date));
        data.by_cursor = (0..certs.len()).collect();
        data.by_cursor.sort_by(|&a, &b| {
            (certs[a].cursor, &certs[a].lmk_key).cmp(&(certs[b].cursor, &certs[b].lmk_key))
        });
    }

    Ok(Dataset {
        kinds,
        by_number,
        by_report,
        councils,
        constituencies,
    })
}

fn read(file: &DataFile) -> anyhow::Result<(Arc<str>, String)> {
    match file {
        DataFile::Path(path) => {
            let bytes =
                std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            // Real files carry mis-encoded units; never refuse a file for that.
            let text = String::from_utf8(bytes)
                .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
            Ok((Arc::from(path.display().to_string()), text))
        }
        DataFile::Text { name, csv } => Ok((Arc::from(name.as_str()), csv.clone())),
    }
}

fn load_file(
    name: &Arc<str>,
    text: &str,
    kinds: &mut [KindData; 3],
    origins: &mut [Vec<Origin>; 3],
) -> anyhow::Result<()> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(false)
        .from_reader(text.as_bytes());
    let raw_header = reader
        .headers()
        .with_context(|| format!("{name}: cannot read the CSV header"))?
        .clone();
    if raw_header.is_empty() || (raw_header.len() == 1 && raw_header[0].trim().is_empty()) {
        bail!("{name}: empty file, no CSV header");
    }
    let columns: Vec<String> = raw_header
        .iter()
        .map(|c| c.trim().trim_start_matches('\u{feff}').to_ascii_uppercase())
        .collect();
    let mut index = HashMap::new();
    for (i, c) in columns.iter().enumerate() {
        if index.insert(c.clone(), i).is_some() {
            bail!("{name}: column {c} appears more than once in the header");
        }
    }
    let Some(kind) = Kind::from_header(&columns) else {
        bail!(
            "{name}: header not recognised as an ODC certificates file (a domestic one has CURRENT_ENERGY_EFFICIENCY, a non-domestic one ASSET_RATING, a display one CURRENT_OPERATIONAL_RATING); it starts {}",
            columns
                .iter()
                .take(6)
                .cloned()
                .collect::<Vec<_>>()
                .join(",")
        );
    };
    for required in ["LMK_KEY", "LODGEMENT_DATE"] {
        if !index.contains_key(required) {
            bail!("{name}: looks like a {kind} certificates file but has no {required} column");
        }
    }
    let header = Arc::new(Header { columns, index });
    let data = &mut kinds[kind.index()];
    let origins = &mut origins[kind.index()];
    for c in &header.columns {
        if !data.columns.contains(c) {
            data.columns.push(c.clone());
        }
    }

    for record in reader.records() {
        let record = record.map_err(|e| {
            let line = e.position().map(|p| p.line()).unwrap_or(0);
            anyhow::anyhow!("{name}: line {line}: {e}")
        })?;
        let origin = Origin {
            file: name.clone(),
            line: record.position().map(|p| p.line()).unwrap_or(0),
        };
        let values: Arc<[Box<str>]> = record.iter().map(Box::from).collect();
        let cert = certificate(kind, header.clone(), Values::Own(values))
            .map_err(|e| anyhow::anyhow!("{origin}: {e}"))?;
        push(data, origins, cert, origin)?;
    }
    Ok(())
}

/// Adds a certificate to its kind, refusing a duplicate LMK key.
pub fn push(
    data: &mut KindData,
    origins: &mut Vec<Origin>,
    cert: Certificate,
    origin: Origin,
) -> anyhow::Result<()> {
    if let Some(&first) = data.by_lmk.get(&cert.lmk_key) {
        bail!(
            "{origin}: duplicate LMK_KEY {} (first seen at {})",
            cert.lmk_key,
            origins[first]
        );
    }
    data.by_lmk.insert(cert.lmk_key.clone(), data.certs.len());
    data.certs.push(cert);
    origins.push(origin);
    Ok(())
}

pub fn certificate(
    kind: Kind,
    header: Arc<Header>,
    values: Values,
) -> anyhow::Result<Certificate> {
    let get = |c: &str| header.index.get(c).map(|&i| values.at(i)).unwrap_or("");
    let lmk_key = get("LMK_KEY").trim().to_owned();
    if lmk_key.is_empty() {
        bail!("empty LMK_KEY");
    }
    let lodged = get("LODGEMENT_DATE");
    let Some(lodgement_date) = values::parse_date(lodged) else {
        bail!("LODGEMENT_DATE {lodged:?} is not a date (YYYY-MM-DD)");
    };
    let date_digits = lodgement_date.year() as u64 * 10_000
        + lodgement_date.month() as u64 * 100
        + lodgement_date.day() as u64;
    let cursor = date_digits * 1_000_000
        + values::time_digits(get("LODGEMENT_DATETIME"))
            .parse::<u64>()
            .unwrap_or(0);
    let schema = Schema::for_row(kind, get("TRANSACTION_TYPE"));
    let certificate_number = gepbd_certificate_number(&lmk_key);
    let related_rrn = (kind != Kind::Domestic).then(|| related_report_number(&lmk_key));
    Ok(Certificate {
        band: get(kind.band_column()).trim().to_uppercase(),
        uprn: values::uprn(get("UPRN")),
        cursor,
        certificate_number,
        related_rrn,
        schema,
        lodgement_date,
        lmk_key,
        header,
        values,
        events: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(name: &str, csv: &str) -> DataFile {
        DataFile::Text {
            name: name.into(),
            csv: csv.into(),
        }
    }

    #[test]
    fn recognises_kinds_from_headers() {
        assert_eq!(
            Kind::from_header(&["LMK_KEY", "CURRENT_ENERGY_EFFICIENCY", "TOTAL_FLOOR_AREA"]),
            Some(Kind::Domestic)
        );
        assert_eq!(
            Kind::from_header(&["LMK_KEY", "ASSET_RATING"]),
            Some(Kind::NonDomestic)
        );
        assert_eq!(
            Kind::from_header(&["LMK_KEY", "CURRENT_OPERATIONAL_RATING", "TOTAL_FLOOR_AREA"]),
            Some(Kind::Display)
        );
        assert_eq!(Kind::from_header(&["LMK_KEY", "IMPROVEMENT_ITEM"]), None);
    }

    #[test]
    fn unknown_header_names_the_file() {
        let err = load(&[text("recs.csv", "LMK_KEY,IMPROVEMENT_ITEM\nabc,1\n")]).unwrap_err();
        assert!(err.to_string().contains("recs.csv"), "{err}");
    }

    #[test]
    fn duplicate_lmk_names_file_and_line() {
        let csv =
            "LMK_KEY,ASSET_RATING,LODGEMENT_DATE\na,1,2021-01-01\nb,2,2021-01-02\na,3,2021-01-03\n";
        let err = load(&[text("nd.csv", csv)]).unwrap_err().to_string();
        assert!(err.contains("nd.csv line 4"), "{err}");
        assert!(err.contains("nd.csv line 2"), "{err}");
        // LMK keys are unique across the register; the same key in two kinds
        // would give two certificates one GEPBD number, which is refused.
        let dec = "LMK_KEY,CURRENT_OPERATIONAL_RATING,LODGEMENT_DATE\na,1,2021-01-01\n";
        let ok = "LMK_KEY,ASSET_RATING,LODGEMENT_DATE\na,1,2021-01-01\n";
        let err = load(&[text("nd.csv", ok), text("dec.csv", dec)])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("collides")
                && err.contains("nd.csv line 2")
                && err.contains("dec.csv line 2"),
            "{err}"
        );
    }

    #[test]
    fn bad_rows_name_file_and_line() {
        let csv = "LMK_KEY,ASSET_RATING,LODGEMENT_DATE\na,1,2021-01-01\nb,2,NO DATA!\n";
        let err = load(&[text("nd.csv", csv)]).unwrap_err().to_string();
        assert!(
            err.contains("nd.csv line 3") && err.contains("LODGEMENT_DATE"),
            "{err}"
        );
        let csv = "LMK_KEY,ASSET_RATING,LODGEMENT_DATE\na,1,2021-01-01\nb,2\n";
        let err = load(&[text("nd.csv", csv)]).unwrap_err().to_string();
        assert!(err.contains("nd.csv: line 3"), "{err}");
        let csv = "LMK_KEY,ASSET_RATING\na,1\n";
        let err = load(&[text("nd.csv", csv)]).unwrap_err().to_string();
        assert!(
            err.contains("nd.csv") && err.contains("LODGEMENT_DATE"),
            "{err}"
        );
        let csv = "LMK_KEY,ASSET_RATING,ASSET_RATING,LODGEMENT_DATE\n";
        let err = load(&[text("nd.csv", csv)]).unwrap_err().to_string();
        assert!(
            err.contains("nd.csv") && err.contains("more than once"),
            "{err}"
        );
    }

    #[test]
    fn keeps_every_value_and_unions_columns() {
        let a = "LMK_KEY,CURRENT_ENERGY_EFFICIENCY,LODGEMENT_DATE,LODGEMENT_DATETIME\nk1,50,2021-01-02,2021-01-02 10:11:12\n";
        let b =
            "LMK_KEY,CURRENT_ENERGY_EFFICIENCY,LODGEMENT_DATE,REPORT_TYPE\nk2,60,2021-01-01,2\n";
        let d = load(&[text("a.csv", a), text("b.csv", b)]).unwrap();
        let k = d.kind(Kind::Domestic);
        assert_eq!(
            k.columns,
            [
                "LMK_KEY",
                "CURRENT_ENERGY_EFFICIENCY",
                "LODGEMENT_DATE",
                "LODGEMENT_DATETIME",
                "REPORT_TYPE"
            ]
        );
        assert_eq!(k.certs[0].cursor, 20210102101112);
        assert_eq!(k.certs[1].cursor, 20210101000000);
        assert_eq!(k.by_cursor, [1, 0]);
        assert_eq!(k.by_date_desc, [0, 1]);
        assert_eq!(k.certs[1].get("REPORT_TYPE"), Some("2"));
        assert_eq!(k.certs[0].get("REPORT_TYPE"), None);
    }
}
