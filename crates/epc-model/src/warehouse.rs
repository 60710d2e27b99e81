//! The warehouse side of the vocabulary: the raw tables' shape, job labels,
//! and Google's naming rules, checked before any name reaches a request or
//! a line of SQL.

use crate::{Content, Dataset, InputError, Month};
use std::borrow::Cow;

/// Text that is usually a constant of this crate, but may come from a
/// caller (a table spec received over WIT).
pub type Text = Cow<'static, str>;

/// One column of a table, in BigQuery's type names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    pub name: Text,
    pub data_type: Text,
    pub required: bool,
    pub description: Text,
}

/// A table as loading creates it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSpec {
    pub name: String,
    pub columns: Vec<Column>,
    pub partition_by_month: Option<Text>,
    pub cluster_by: Vec<Text>,
    pub description: String,
}

const fn col(name: &'static str, data_type: &'static str, required: bool, description: &'static str) -> Column {
    Column {
        name: Cow::Borrowed(name),
        data_type: Cow::Borrowed(data_type),
        required,
        description: Cow::Borrowed(description),
    }
}

/// The columns of a landed certificate line (see [`crate::Envelope`]), in
/// the order they are loaded.
pub const LANDED_COLUMNS: &[Column] = &[
    col("source", "STRING", true, "gepbd or odc: the API the row came from"),
    col("kind", "STRING", true, "domestic, non-domestic or display"),
    col("certificate_number", "STRING", false, "GEPBD identifier (null for ODC rows)"),
    col("lmk_key", "STRING", false, "ODC identifier (null for GEPBD rows); never joins certificate_number"),
    col("lodgement_date", "DATE", true, "Lodgement (registration) date; the month partition"),
    col("uprn", "STRING", false, "Unique Property Reference Number as given"),
    col("postcode", "STRING", false, "Postcode as given"),
    col("landed_object", "STRING", true, "The landing-store object the row was loaded from"),
    col("landed_at", "TIMESTAMP", true, "When the row was landed"),
    col("record", "JSON", true, "The whole record as the API returned it"),
];

/// Columns the load adds to each row.
pub const LOAD_COLUMNS: &[Column] = &[
    col("load_id", "STRING", true, "The load that wrote the row (one per kind and month and run)"),
    col("ingested_at", "TIMESTAMP", true, "When the row was loaded"),
];

/// The raw table of a dataset: partitioned by month on the lodgement date,
/// clustered by the identifiers (and postcode and UPRN for domestic), as
/// the cost guardrails ask: a month's replace and a lookup by certificate
/// touch one partition and few blocks.
pub fn raw_table(dataset: Dataset) -> TableSpec {
    assert_eq!(dataset.content, Content::Certificates, "recommendation tables have their own shape");
    let mut cluster_by: Vec<Text> = vec!["certificate_number".into(), "lmk_key".into()];
    if dataset.kind == crate::Kind::Domestic {
        cluster_by.extend(["postcode".into(), "uprn".into()]);
    }
    TableSpec {
        name: dataset.raw_table(),
        columns: LANDED_COLUMNS.iter().chain(LOAD_COLUMNS).cloned().collect(),
        partition_by_month: Some("lodgement_date".into()),
        cluster_by,
        description: format!("Raw {} certificates as landed by dame-epc, one row per certificate", dataset.kind),
    }
}

/// The staging table a month is loaded into before the replace.
pub fn staging_table(dataset: Dataset, month: Month) -> TableSpec {
    TableSpec {
        name: format!("_staging_{}_{}", dataset.raw_table(), month.compact()),
        columns: LANDED_COLUMNS.to_vec(),
        partition_by_month: None,
        cluster_by: vec![],
        description: format!("dame-epc staging for {dataset} {month}; dropped after the load"),
    }
}

/// One row per successful load, for `load_coverage_v`.
pub fn load_log_table() -> TableSpec {
    TableSpec {
        name: "load_log".into(),
        columns: vec![
            col("dataset", "STRING", true, "domestic, non-domestic, display, or their -recommendations"),
            col("month", "DATE", true, "First day of the loaded month"),
            col("source", "STRING", true, "gepbd or odc"),
            col("rows_loaded", "INT64", true, "Rows the load wrote"),
            col("rows_reported", "INT64", true, "Rows the API reported for the month (0 where it gives no count)"),
            col("load_id", "STRING", true, "The load"),
            col("loaded_at", "TIMESTAMP", true, "When the load committed"),
        ],
        partition_by_month: None,
        cluster_by: vec![],
        description: "dame-epc: one row per month loaded".into(),
    }
}

/// Change events from GEPBD's feed: removals and UPRN changes, which the
/// views apply over the raw tables.
pub fn events_table() -> TableSpec {
    TableSpec {
        name: "certificate_events".into(),
        columns: vec![
            col("certificate_number", "STRING", true, "The certificate the event is about"),
            col("event_type", "STRING", true, "removed or uprn-changed"),
            col("uprn", "STRING", false, "The certificate's UPRN after an uprn-changed event"),
            col("event_timestamp", "STRING", true, "When it happened, as the API gives it (RFC 3339)"),
            col("landed_object", "STRING", true, "The landing-store object the event was loaded from"),
            col("landed_at", "TIMESTAMP", true, "When the event was landed"),
        ],
        partition_by_month: None,
        cluster_by: vec!["certificate_number".into()],
        description: "dame-epc: change events (deltas) from the GEPBD register".into(),
    }
}

/// Labels every job carries: `system=dame`, `stage`, `kind`, `month`.
pub fn labels(stage: &str, kind: &str, month: Option<Month>) -> Vec<(String, String)> {
    let mut l = vec![("system".to_string(), "dame".to_string()), ("stage".into(), stage.into()), ("kind".into(), kind.into())];
    if let Some(m) = month {
        l.push(("month".into(), m.compact()));
    }
    l
}

fn bad(what: &str, value: &str, rule: &str) -> InputError {
    InputError::new(format!("{what} '{value}' is not valid: {rule}"))
}

/// Google Cloud project IDs: 6–30 lowercase letters, digits and hyphens,
/// starting with a letter, not ending with a hyphen.
pub fn check_project(p: &str) -> Result<(), InputError> {
    let ok = (6..=30).contains(&p.len())
        && p.starts_with(|c: char| c.is_ascii_lowercase())
        && !p.ends_with('-')
        && p.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if ok { Ok(()) } else { Err(bad("project", p, "6-30 lowercase letters, digits or hyphens, starting with a letter")) }
}

/// BigQuery dataset and table names: letters, digits and underscores, at
/// most 1,024 characters (Google allows more for tables; this project does
/// not need it, and it keeps names safe inside SQL).
pub fn check_dataset(d: &str) -> Result<(), InputError> {
    let ok = !d.is_empty() && d.len() <= 1024 && d.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok { Ok(()) } else { Err(bad("dataset", d, "letters, digits and underscores only")) }
}

pub fn check_table(t: &str) -> Result<(), InputError> {
    let ok = !t.is_empty() && t.len() <= 1024 && t.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok { Ok(()) } else { Err(bad("table", t, "letters, digits and underscores only")) }
}

/// BigQuery locations: `EU`, `US`, or a region such as `europe-west2`.
pub fn check_region(r: &str) -> Result<(), InputError> {
    let ok = !r.is_empty()
        && r.len() <= 64
        && r.starts_with(|c: char| c.is_ascii_alphabetic())
        && r.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    if ok { Ok(()) } else { Err(bad("region", r, "a BigQuery location such as europe-west2, EU or US")) }
}

/// Cloud Storage bucket names: 3–63 lowercase letters, digits, hyphens,
/// underscores and dots, starting and ending with a letter or digit, not an
/// IP address, not starting with "goog".
pub fn check_bucket(b: &str) -> Result<(), InputError> {
    let edge = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    let ok = (3..=63).contains(&b.len())
        && b.starts_with(edge)
        && b.ends_with(edge)
        && b.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c))
        && !b.starts_with("goog")
        && !b.contains("..")
        && b.parse::<std::net::Ipv4Addr>().is_err();
    if ok {
        Ok(())
    } else {
        Err(bad("bucket", b, "3-63 lowercase letters, digits, '-', '_' or '.', starting and ending with a letter or digit"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Kind;

    #[test]
    fn raw_tables_partition_and_cluster_as_asked() {
        let t = raw_table(Dataset::certificates(Kind::Domestic));
        assert_eq!(t.name, "domestic_raw_json");
        assert_eq!(t.partition_by_month.as_deref(), Some("lodgement_date"));
        assert_eq!(t.cluster_by, ["certificate_number", "lmk_key", "postcode", "uprn"]);
        assert_eq!(raw_table(Dataset::certificates(Kind::Display)).cluster_by.len(), 2);
        assert!(t.columns.iter().any(|c| c.name == "record" && c.data_type == "JSON"));
    }

    #[test]
    fn names_follow_googles_rules() {
        assert!(check_project("my-project-1").is_ok());
        for p in ["short", "1project", "project-", "My-Project", "proj_ect", "a-very-long-project-name-over-30"] {
            assert!(check_project(p).is_err(), "{p}");
        }
        assert!(check_dataset("epc_raw").is_ok());
        assert!(check_dataset("epc; DROP TABLE x").is_err());
        assert!(check_dataset("a`b").is_err());
        assert!(check_region("europe-west2").is_ok() && check_region("EU").is_ok());
        assert!(check_region("europe west2").is_err());
        assert!(check_bucket("dame-landing").is_ok());
        for b in ["ab", "Bucket", "-bucket", "bucket-", "goog-bucket", "192.168.1.1", "a..b"] {
            assert!(check_bucket(b).is_err(), "{b}");
        }
        assert_eq!(labels("ingest", "non_domestic", Some("2021-02".parse().unwrap()))[3], ("month".into(), "202102".into()));
    }
}
