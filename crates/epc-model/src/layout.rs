//! Where everything lives in the landing store.
//!
//! ```text
//! raw/{dataset}/{YYYYMM}/part-00001.ndjson.gz   gzipped NDJSON, one certificate a line
//! state/{dataset}/{YYYYMM}/part-00001.json      its checkpoint, written after the data
//! state/{dataset}/{YYYYMM}/done.json            the month is complete (landed or no-data)
//! state/{dataset}/{YYYYMM}/done-r2.json         …and again after late arrivals were added
//! state/{dataset}/{YYYYMM}/failed.json          the last attempt failed, and why
//! state/{dataset}/{YYYYMM}/load.json            the month was loaded into the warehouse
//! ```
//!
//! Keys are built only from validated parts, so a key can never escape its
//! folder; [`Layout::parse`] is the inverse and refuses anything else.

use crate::{Dataset, Month};

/// The object kinds of the layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectKind {
    Data { part: u32 },
    Checkpoint { part: u32 },
    /// A done marker; revision 1 is `done.json`, later ones (after late
    /// arrivals were added to a complete month) `done-r{n}.json`.
    Done { revision: u32 },
    Failed,
    Load,
}

pub struct Layout;

impl Layout {
    /// `raw/{dataset}/{YYYYMM}/`
    pub fn raw_prefix(dataset: Dataset, month: Month) -> String {
        format!("raw/{}/{}/", dataset.name(), month.compact())
    }

    /// `state/{dataset}/{YYYYMM}/`
    pub fn state_prefix(dataset: Dataset, month: Month) -> String {
        format!("state/{}/{}/", dataset.name(), month.compact())
    }

    pub fn data(dataset: Dataset, month: Month, part: u32) -> String {
        format!("{}part-{part:05}.ndjson.gz", Self::raw_prefix(dataset, month))
    }

    pub fn checkpoint(dataset: Dataset, month: Month, part: u32) -> String {
        format!("{}part-{part:05}.json", Self::state_prefix(dataset, month))
    }

    pub fn done(dataset: Dataset, month: Month) -> String {
        Self::done_revision(dataset, month, 1)
    }

    pub fn done_revision(dataset: Dataset, month: Month, revision: u32) -> String {
        match revision {
            0 | 1 => format!("{}done.json", Self::state_prefix(dataset, month)),
            n => format!("{}done-r{n}.json", Self::state_prefix(dataset, month)),
        }
    }

    pub fn failed(dataset: Dataset, month: Month) -> String {
        format!("{}failed.json", Self::state_prefix(dataset, month))
    }

    pub fn load(dataset: Dataset, month: Month) -> String {
        format!("{}load.json", Self::state_prefix(dataset, month))
    }

    /// Reads a key back into what it names; `None` for anything the layout
    /// does not produce (temporary files, foreign objects).
    pub fn parse(key: &str) -> Option<(Dataset, Month, ObjectKind)> {
        let mut it = key.split('/');
        let (top, ds, m, file) = (it.next()?, it.next()?, it.next()?, it.next()?);
        if it.next().is_some() {
            return None;
        }
        let dataset: Dataset = ds.parse().ok()?;
        let month = Month::from_compact(m)?;
        let part = |name: &str, ext: &str| -> Option<u32> {
            let digits = name.strip_prefix("part-")?.strip_suffix(ext)?;
            (digits.len() == 5 && digits.bytes().all(|b| b.is_ascii_digit())).then(|| digits.parse().ok())?
        };
        let kind = match top {
            "raw" => ObjectKind::Data { part: part(file, ".ndjson.gz")? },
            "state" => match file {
                "done.json" => ObjectKind::Done { revision: 1 },
                f if f.starts_with("done-r") && f.ends_with(".json") => {
                    let n: u32 = f["done-r".len()..f.len() - ".json".len()].parse().ok()?;
                    if n < 2 {
                        return None;
                    }
                    ObjectKind::Done { revision: n }
                }
                "failed.json" => ObjectKind::Failed,
                "load.json" => ObjectKind::Load,
                _ => ObjectKind::Checkpoint { part: part(file, ".json")? },
            },
            _ => return None,
        };
        Some((dataset, month, kind))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Kind;

    #[test]
    fn keys_round_trip() {
        let ds = Dataset::certificates(Kind::NonDomestic);
        let m: Month = "2021-02".parse().unwrap();
        assert_eq!(Layout::data(ds, m, 7), "raw/non-domestic/202102/part-00007.ndjson.gz");
        assert_eq!(Layout::parse(&Layout::data(ds, m, 7)), Some((ds, m, ObjectKind::Data { part: 7 })));
        assert_eq!(Layout::parse(&Layout::checkpoint(ds, m, 12)), Some((ds, m, ObjectKind::Checkpoint { part: 12 })));
        assert_eq!(Layout::parse(&Layout::done(ds, m)), Some((ds, m, ObjectKind::Done { revision: 1 })));
        assert_eq!(Layout::parse(&Layout::done_revision(ds, m, 3)), Some((ds, m, ObjectKind::Done { revision: 3 })));
        assert_eq!(Layout::done_revision(ds, m, 3), "state/non-domestic/202102/done-r3.json");
        let recs = Dataset::recommendations(Kind::Domestic);
        assert_eq!(Layout::parse(&Layout::load(recs, m)), Some((recs, m, ObjectKind::Load)));
    }

    #[test]
    fn foreign_keys_are_refused() {
        for key in [
            "raw/domestic/202102/part-00001.ndjson.gz.tmp",
            "raw/domestic/202102/../../etc/passwd",
            "raw/domestic/2021-02/part-00001.ndjson.gz",
            "raw/commercial/202102/part-00001.ndjson.gz",
            "state/domestic/202102/part-1.json",
            "other/domestic/202102/done.json",
        ] {
            assert_eq!(Layout::parse(key), None, "{key}");
        }
    }
}
