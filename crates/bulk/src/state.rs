//! What a backfill keeps in the landing store besides the months it lands.
//!
//! - Each part's checkpoint cursor says which file it came from and how
//!   many of the month's rows (in file order) are landed, so a rerun against
//!   the same file skips exactly those and continues: [`BulkCursor`].
//! - After a complete backfill, `state/_backfill/{source}-{kind}.json`
//!   records the file's size and date and the months it held, so the next
//!   run skips the download when the service says the file is unchanged:
//!   [`BackfillRecord`]. The layout's parser ignores `state/_backfill/`, so
//!   `dame status` and loading never see it.

use crate::BulkError;
use epc_model::{Kind, Month, Source};
use landing::ObjectStore;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Where a partly landed month stands, kept as its checkpoints' cursor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BulkCursor {
    /// Always `"bulk"`: tells this cursor from the APIs' cursors.
    pub from: String,
    /// The archive, e.g. `domestic-json.zip`.
    pub file: String,
    /// `{size}@{lastUpdated}` of the archive the rows were read from.
    pub version: String,
    /// Rows of the month landed so far, the first ones in file order.
    pub rows: u64,
    /// The last of them, to check a resumed run reads the same file.
    pub last: String,
}

impl BulkCursor {
    pub fn encode(&self) -> String {
        serde_json::to_string(self).expect("cursors serialise")
    }

    /// `None` for any cursor that is not a bulk cursor (the APIs').
    pub fn parse(s: &str) -> Option<Self> {
        serde_json::from_str::<Self>(s).ok().filter(|c| c.from == "bulk")
    }
}

/// A file as the service last described it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileVersion {
    #[serde(rename = "fileSize")]
    pub size: u64,
    #[serde(rename = "lastUpdated", default, skip_serializing_if = "Option::is_none")]
    pub last_updated: Option<String>,
}

/// `state/_backfill/{source}-{kind}.json`, written after a complete backfill.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackfillRecord {
    pub source: Source,
    pub kind: Kind,
    /// `json` or `csv`.
    pub format: String,
    /// Every file read, by name.
    pub files: BTreeMap<String, FileVersion>,
    /// The years asked for.
    pub from_year: u16,
    pub to_year: u16,
    /// Rows per month in the files (months not over are left out).
    pub months: BTreeMap<Month, u64>,
    pub finished_at: String,
}

pub fn record_key(source: Source, kind: Kind) -> String {
    format!("state/_backfill/{}-{}.json", source.as_str(), kind.as_str())
}

pub async fn read_record<S: ObjectStore>(store: &S, source: Source, kind: Kind) -> Result<Option<BackfillRecord>, BulkError> {
    let key = record_key(source, kind);
    match store.get(&key).await? {
        None => Ok(None),
        // A record this version cannot read is as good as none: the file
        // is downloaded again, which is always safe.
        Some(bytes) => Ok(serde_json::from_slice(&bytes).ok()),
    }
}

pub async fn write_record<S: ObjectStore>(store: &S, record: &BackfillRecord) -> Result<(), BulkError> {
    let mut bytes = serde_json::to_vec_pretty(record).expect("records serialise");
    bytes.push(b'\n');
    store.put(&record_key(record.source, record.kind), &bytes, "application/json").await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_are_told_from_api_cursors() {
        let c = BulkCursor { from: "bulk".into(), file: "d.zip".into(), version: "10@x".into(), rows: 250, last: "1".into() };
        assert_eq!(BulkCursor::parse(&c.encode()), Some(c));
        assert_eq!(BulkCursor::parse(r#"{"v":1,"day":"2021-01-31","window":"day"}"#), None);
        assert_eq!(BulkCursor::parse("12345"), None);
    }

    #[test]
    fn records_round_trip_with_months_as_keys() {
        let r = BackfillRecord {
            source: Source::Gepbd,
            kind: Kind::Domestic,
            format: "json".into(),
            files: [("domestic-json.zip".to_string(), FileVersion { size: 9, last_updated: Some("t".into()) })].into(),
            from_year: 2012,
            to_year: 2026,
            months: [("2021-01".parse().unwrap(), 152)].into(),
            finished_at: "now".into(),
        };
        let text = serde_json::to_string(&r).unwrap();
        assert!(text.contains(r#""months":{"2021-01":152}"#) && text.contains(r#""fileSize":9"#), "{text}");
        assert_eq!(serde_json::from_str::<BackfillRecord>(&text).unwrap(), r);
    }
}
