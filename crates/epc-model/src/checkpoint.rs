//! The documents under `state/`, and the state of a month derived from them.
//!
//! A month's state is never stored as one mutable document: it is derived
//! from small create-once objects (one checkpoint per part, then a done
//! marker), so that a write cut short leaves the previous state intact and
//! no two writers can silently overwrite each other.

use crate::{Dataset, Month, Source};
use serde::{Deserialize, Serialize};

/// Written after part `part`'s data object is complete.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartCheckpoint {
    pub source: Source,
    pub dataset: String,
    pub month: Month,
    pub part: u32,
    pub object: String,
    pub rows: u32,
    /// Compressed size of the data object.
    pub bytes: u64,
    /// Where fetching continues; `None` once the month has been fetched to
    /// its end.
    pub next_cursor: Option<String>,
    /// What the API reported for the windows this part completed.
    pub reported: u64,
    pub requests: u32,
    pub retries: u32,
    /// Response bytes received for this part.
    pub fetched_bytes: u64,
    /// RFC 3339.
    pub landed_at: String,
    /// Where the records came from when not the API: `bulk-json` or
    /// `bulk-csv` for a backfill from the bulk files. Absent for the API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
    /// Rows by lodgement day (`YYYY-MM-DD`), so later runs can compare a
    /// month with the API's daily counts without reading its data. Empty
    /// in checkpoints written before it was kept.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub days: std::collections::BTreeMap<String, u32>,
}

/// Written once every part has landed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DoneMarker {
    pub source: Source,
    pub parts: u32,
    pub rows: u64,
    pub bytes: u64,
    pub reported: u64,
    pub finished_at: String,
    /// As in [`PartCheckpoint::origin`]: the origin of the month's parts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
    /// 1 for the month's first completion; one more each time late
    /// arrivals are added to it.
    #[serde(default = "first_revision")]
    pub revision: u32,
}

fn first_revision() -> u32 {
    1
}

/// Written when an attempt fails; removed when the month completes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FailedMarker {
    pub reason: String,
    pub failed_at: String,
}

/// Written only after the warehouse job succeeded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoadMarker {
    pub job_id: String,
    pub rows: u64,
    pub loaded_at: String,
    /// The done revision that was loaded: a later one needs loading again.
    #[serde(default = "first_revision")]
    pub revision: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MonthStatus {
    Empty,
    Partial,
    Landed,
    NoData,
    Failed,
    Loaded,
}

impl MonthStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            MonthStatus::Empty => "empty",
            MonthStatus::Partial => "partial",
            MonthStatus::Landed => "landed",
            MonthStatus::NoData => "no-data",
            MonthStatus::Failed => "failed",
            MonthStatus::Loaded => "loaded",
        }
    }
}

/// A month as its state objects describe it.
#[derive(Debug, Clone, PartialEq)]
pub struct MonthState {
    pub dataset: Dataset,
    pub month: Month,
    pub status: MonthStatus,
    pub source: Option<Source>,
    pub parts: u32,
    pub rows: u64,
    pub bytes: u64,
    pub reported: u64,
    /// Where fetching resumes: the last checkpoint's cursor.
    pub resume_cursor: Option<String>,
    /// Whether fetching reached the end of the month (all parts are landed,
    /// even if the done marker was not written yet).
    pub fetched_to_end: bool,
    pub error: Option<String>,
    pub load: Option<LoadMarker>,
    /// Where the month's records came from when not the API (`bulk-json`,
    /// `bulk-csv`): the done marker's, else the last part's.
    pub origin: Option<String>,
    /// The latest done revision (0 before the month was first completed).
    pub revision: u32,
}

impl MonthState {
    /// Derives the state from the month's state objects. `parts` may come in
    /// any order; they must number 1..=n without gaps, as the landing step
    /// writes them, or the month's state is damaged and must be reset.
    pub fn derive(
        dataset: Dataset,
        month: Month,
        mut parts: Vec<PartCheckpoint>,
        done: Option<DoneMarker>,
        failed: Option<FailedMarker>,
        load: Option<LoadMarker>,
    ) -> Result<MonthState, String> {
        // The latest done marker describes the month; parts after it are
        // late arrivals being added (the month is partial again until the
        // next revision).
        parts.sort_by_key(|p| p.part);
        for (i, p) in parts.iter().enumerate() {
            if p.part as usize != i + 1 {
                return Err(format!(
                    "{dataset} {month}: checkpoints are not numbered 1..{} (found part {} at position {}); \
                     reset the month with `dame reset --kind {} --month {month}`",
                    parts.len(),
                    p.part,
                    i + 1,
                    dataset.kind
                ));
            }
        }
        let sources: Vec<Source> = parts.iter().map(|p| p.source).chain(done.as_ref().map(|d| d.source)).collect();
        if sources.windows(2).any(|w| w[0] != w[1]) {
            return Err(format!(
                "{dataset} {month}: landed from both sources; reset the month with \
                 `dame reset --kind {} --month {month}`",
                dataset.kind
            ));
        }
        let source = sources.first().copied();
        let last = parts.last();
        let mut state = MonthState {
            dataset,
            month,
            status: MonthStatus::Empty,
            source,
            parts: parts.len() as u32,
            rows: parts.iter().map(|p| p.rows as u64).sum(),
            bytes: parts.iter().map(|p| p.bytes).sum(),
            reported: parts.iter().map(|p| p.reported).sum(),
            resume_cursor: last.and_then(|p| p.next_cursor.clone()),
            fetched_to_end: last.is_some_and(|p| p.next_cursor.is_none()),
            error: None,
            load: None,
            origin: done.as_ref().and_then(|d| d.origin.clone()).or_else(|| last.and_then(|p| p.origin.clone())),
            revision: done.as_ref().map_or(0, |d| d.revision),
        };
        let amending = done.as_ref().is_some_and(|d| d.parts < state.parts);
        if amending {
            let d = done.as_ref().expect("amending implies a done marker");
            let first_parts_rows: u64 = parts.iter().take(d.parts as usize).map(|p| p.rows as u64).sum();
            if first_parts_rows != d.rows {
                return Err(format!(
                    "{dataset} {month}: done marker says {} rows in its {} parts but they hold {first_parts_rows}; \
                     reset the month with `dame reset --kind {} --month {month}`",
                    d.rows, d.parts, dataset.kind
                ));
            }
            state.fetched_to_end = true;
            state.resume_cursor = None;
            state.status = MonthStatus::Partial;
            state.load = load;
            return Ok(state);
        }
        state.status = match (&done, &failed) {
            (Some(d), _) => {
                if d.parts != state.parts || d.rows != state.rows {
                    return Err(format!(
                        "{dataset} {month}: done marker says {} parts / {} rows but the checkpoints hold {} / {}; \
                         reset the month with `dame reset --kind {} --month {month}`",
                        d.parts, d.rows, state.parts, state.rows, dataset.kind
                    ));
                }
                state.fetched_to_end = true;
                state.resume_cursor = None;
                let loaded_now = load.as_ref().is_some_and(|l| l.revision >= d.revision);
                state.load = load;
                match () {
                    _ if loaded_now => MonthStatus::Loaded,
                    _ if d.rows == 0 => MonthStatus::NoData,
                    _ => MonthStatus::Landed,
                }
            }
            (None, Some(f)) => {
                state.error = Some(f.reason.clone());
                MonthStatus::Failed
            }
            (None, None) if parts.is_empty() => MonthStatus::Empty,
            (None, None) => MonthStatus::Partial,
        };
        Ok(state)
    }

    /// Rows by lodgement day, summed over the parts; `None` when a part was
    /// landed before checkpoints kept them.
    pub fn day_counts(parts: &[PartCheckpoint]) -> Option<std::collections::BTreeMap<String, u32>> {
        let mut out = std::collections::BTreeMap::new();
        for p in parts {
            if p.days.is_empty() && p.rows > 0 {
                return None;
            }
            for (d, n) in &p.days {
                *out.entry(d.clone()).or_insert(0) += n;
            }
        }
        Some(out)
    }

    /// Whether nothing is left to fetch or land for this month.
    pub fn is_complete(&self) -> bool {
        matches!(self.status, MonthStatus::Landed | MonthStatus::NoData | MonthStatus::Loaded)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Kind;

    fn part(n: u32, rows: u32, next: Option<&str>) -> PartCheckpoint {
        PartCheckpoint {
            source: Source::Gepbd,
            dataset: "domestic".into(),
            month: "2021-01".parse().unwrap(),
            part: n,
            object: format!("raw/domestic/202101/part-{n:05}.ndjson.gz"),
            rows,
            bytes: 100,
            next_cursor: next.map(str::to_string),
            reported: rows as u64,
            requests: 1,
            retries: 0,
            fetched_bytes: 1000,
            landed_at: "2026-11-27T00:00:00Z".into(),
            origin: None,
            days: Default::default(),
        }
    }

    fn derive(parts: Vec<PartCheckpoint>, done: Option<DoneMarker>) -> Result<MonthState, String> {
        let ds = Dataset::certificates(Kind::Domestic);
        MonthState::derive(ds, "2021-01".parse().unwrap(), parts, done, None, None)
    }

    #[test]
    fn partial_months_resume_after_their_last_part() {
        let s = derive(vec![part(2, 5, Some("c2")), part(1, 5, Some("c1"))], None).unwrap();
        assert_eq!((s.status, s.parts, s.rows), (MonthStatus::Partial, 2, 10));
        assert_eq!(s.resume_cursor.as_deref(), Some("c2"));
        assert!(!s.fetched_to_end);
        let s = derive(vec![part(1, 5, Some("c1")), part(2, 5, None)], None).unwrap();
        assert!(s.fetched_to_end && s.resume_cursor.is_none());
    }

    #[test]
    fn done_months_are_landed_or_no_data() {
        let done = |parts, rows| DoneMarker {
            source: Source::Gepbd,
            parts,
            rows,
            bytes: 0,
            reported: rows,
            finished_at: String::new(),
            origin: None,
            revision: 1,
        };
        assert_eq!(derive(vec![part(1, 5, None)], Some(done(1, 5))).unwrap().status, MonthStatus::Landed);
        assert_eq!(derive(vec![], Some(done(0, 0))).unwrap().status, MonthStatus::NoData);
        assert!(derive(vec![part(1, 5, None)], Some(done(2, 9))).is_err());
    }

    #[test]
    fn origins_are_optional_and_carried_to_the_state() {
        // Documents written before origins existed still read.
        let old = r#"{"source":"gepbd","parts":1,"rows":5,"bytes":0,"reported":5,"finished_at":""}"#;
        let done: DoneMarker = serde_json::from_str(old).unwrap();
        assert_eq!(done.origin, None);
        assert!(!serde_json::to_string(&done).unwrap().contains("origin"));
        let mut p = part(1, 5, None);
        p.origin = Some("bulk-json".into());
        assert_eq!(derive(vec![p.clone()], None).unwrap().origin.as_deref(), Some("bulk-json"));
        let done = DoneMarker { origin: Some("bulk-json".into()), ..done };
        assert_eq!(derive(vec![p], Some(done)).unwrap().origin.as_deref(), Some("bulk-json"));
        assert_eq!(derive(vec![part(1, 5, None)], None).unwrap().origin, None);
    }

    #[test]
    fn late_arrivals_make_a_new_revision_to_load() {
        let done = |parts, rows, revision| DoneMarker {
            source: Source::Gepbd,
            parts,
            rows,
            bytes: 0,
            reported: rows,
            finished_at: String::new(),
            origin: None,
            revision,
        };
        let ds = Dataset::certificates(Kind::Domestic);
        let m: Month = "2021-01".parse().unwrap();
        let load = |revision| Some(LoadMarker { job_id: "j".into(), rows: 5, loaded_at: String::new(), revision });
        let one = MonthState::derive(ds, m, vec![part(1, 5, None)], Some(done(1, 5, 1)), None, load(1)).unwrap();
        assert_eq!(one.status, MonthStatus::Loaded);
        // A late part lands after the done marker: partial until revision 2.
        let parts = vec![part(1, 5, None), part(2, 2, None)];
        let amending = MonthState::derive(ds, m, parts.clone(), Some(done(1, 5, 1)), None, load(1)).unwrap();
        assert_eq!((amending.status, amending.rows, amending.fetched_to_end), (MonthStatus::Partial, 7, true));
        let two = MonthState::derive(ds, m, parts, Some(done(2, 7, 2)), None, load(1)).unwrap();
        assert_eq!((two.status, two.revision), (MonthStatus::Landed, 2), "revision 2 is not loaded yet");
    }

    #[test]
    fn gaps_and_mixed_sources_are_damage() {
        assert!(derive(vec![part(1, 5, Some("a")), part(3, 5, None)], None).unwrap_err().contains("dame reset"));
        let mut odc = part(2, 5, None);
        odc.source = Source::Odc;
        assert!(derive(vec![part(1, 5, Some("a")), odc], None).unwrap_err().contains("both sources"));
    }
}
