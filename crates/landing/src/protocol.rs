use crate::part::encode_part;
use crate::store::{ObjectStore, StoreError};
use epc_model::{
    Certificate, Dataset, DoneMarker, FailedMarker, Layout, LoadMarker, Month, MonthState, ObjectKind, PartCheckpoint,
    Source,
};
use std::collections::{BTreeMap, BTreeSet};

/// Why landing failed; each says what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LandingError {
    /// Someone else wrote first: another run is working on this month.
    #[error("{0}")]
    Conflict(String),
    /// The caller asked for something inconsistent.
    #[error("{0}")]
    Invalid(String),
    /// The month's state objects contradict each other.
    #[error("{0}")]
    Damaged(String),
    #[error("{0}")]
    Store(#[from] StoreError),
}

/// What the caller knows about a page besides its records.
#[derive(Debug, Clone, Default)]
pub struct PageInfo {
    pub next_cursor: Option<String>,
    pub reported: u64,
    pub requests: u32,
    pub retries: u32,
    pub fetched_bytes: u64,
    /// Recorded in the checkpoint when the records did not come from the
    /// API (`bulk-json`, `bulk-csv`).
    pub origin: Option<String>,
}

/// The landing protocol over a store. See the crate documentation.
pub struct Landing<S> {
    store: S,
}

fn now() -> String {
    jiff::Timestamp::now().round(jiff::Unit::Second).expect("rounds").to_string()
}

fn json<T: serde::Serialize>(v: &T) -> Vec<u8> {
    let mut out = serde_json::to_vec_pretty(v).expect("state documents serialise");
    out.push(b'\n');
    out
}

impl<S: ObjectStore> Landing<S> {
    pub fn new(store: S) -> Self {
        Self { store }
    }

    pub fn store(&self) -> &S {
        &self.store
    }

    async fn read_json<T: serde::de::DeserializeOwned>(&self, key: &str) -> Result<Option<T>, LandingError> {
        match self.store.get(key).await? {
            None => Ok(None),
            Some(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
                LandingError::Damaged(format!(
                    "{key} in {} is not a valid state document ({e}); reset that month with `dame reset`",
                    self.store.describe()
                ))
            }),
        }
    }

    /// The month's state from its state objects, given their keys.
    async fn state_from(&self, dataset: Dataset, month: Month, keys: &[String]) -> Result<MonthState, LandingError> {
        let (mut parts, mut done, mut failed, mut load) = (Vec::new(), None::<DoneMarker>, None, None);
        let mut latest_revision = 0;
        for key in keys {
            match Layout::parse(key) {
                Some((d, m, kind)) if d == dataset && m == month => match kind {
                    ObjectKind::Checkpoint { .. } => {
                        if let Some(p) = self.read_json::<PartCheckpoint>(key).await? {
                            parts.push(p);
                        }
                    }
                    // Only the latest revision describes the month.
                    ObjectKind::Done { revision } if revision > latest_revision => {
                        if let Some(mut marker) = self.read_json::<DoneMarker>(key).await? {
                            marker.revision = revision;
                            done = Some(marker);
                            latest_revision = revision;
                        }
                    }
                    ObjectKind::Done { .. } => {}
                    ObjectKind::Failed => failed = self.read_json::<FailedMarker>(key).await?,
                    ObjectKind::Load => load = self.read_json::<LoadMarker>(key).await?,
                    ObjectKind::Data { .. } => {}
                },
                _ => {}
            }
        }
        MonthState::derive(dataset, month, parts, done, failed, load).map_err(LandingError::Damaged)
    }

    pub async fn read_month(&self, dataset: Dataset, month: Month) -> Result<MonthState, LandingError> {
        let keys = self.store.list(&Layout::state_prefix(dataset, month)).await?;
        self.state_from(dataset, month, &keys).await
    }

    /// Reads the month before fetching: refuses a month landed from the
    /// other source and removes data objects no checkpoint names, so the
    /// page they held is landed afresh rather than twice.
    pub async fn open_month(&self, source: Source, dataset: Dataset, month: Month) -> Result<MonthState, LandingError> {
        let state = self.read_month(dataset, month).await?;
        if let Some(landed) = state.source.filter(|s| *s != source) {
            return Err(LandingError::Invalid(format!(
                "{dataset} {month} was landed from {landed}, not {source}; identifiers of the two sources never \
                 join, so reset it first: `dame reset --kind {} --month {month}`",
                dataset.kind
            )));
        }
        if state.is_complete() {
            return Ok(state);
        }
        let named: BTreeSet<String> = (1..=state.parts).map(|n| Layout::data(dataset, month, n)).collect();
        for key in self.store.list(&Layout::raw_prefix(dataset, month)).await? {
            if !named.contains(&key) {
                self.store.delete(&key).await?;
            }
        }
        Ok(state)
    }

    /// Lands part `number`: its data object, then its checkpoint.
    pub async fn land_page(
        &self,
        source: Source,
        dataset: Dataset,
        month: Month,
        number: u32,
        records: &[Certificate],
        info: PageInfo,
    ) -> Result<PartCheckpoint, LandingError> {
        if number == 0 {
            return Err(LandingError::Invalid("parts are numbered from 1".into()));
        }
        for r in records {
            let in_month = r.lodgement_date.parse::<jiff::civil::Date>().is_ok_and(|d| month.contains(d));
            if !in_month {
                return Err(LandingError::Invalid(format!(
                    "certificate {} was lodged on {:?}, outside {month}; it would land in the wrong partition",
                    r.id, r.lodgement_date
                )));
            }
        }
        let object = Layout::data(dataset, month, number);
        let landed_at = now();
        let mut days = std::collections::BTreeMap::new();
        for r in records {
            *days.entry(r.lodgement_date.clone()).or_insert(0u32) += 1;
        }
        let bytes = encode_part(source, dataset.kind, &object, &landed_at, records).map_err(LandingError::Invalid)?;
        if !self.store.put_new(&object, &bytes, "application/gzip").await? {
            return Err(LandingError::Conflict(format!(
                "{object} already exists in {}: another run is landing {dataset} {month}; wait for it to finish",
                self.store.describe()
            )));
        }
        let checkpoint = PartCheckpoint {
            source,
            dataset: dataset.name(),
            month,
            part: number,
            object,
            rows: records.len() as u32,
            bytes: bytes.len() as u64,
            next_cursor: info.next_cursor,
            reported: info.reported,
            requests: info.requests,
            retries: info.retries,
            fetched_bytes: info.fetched_bytes,
            landed_at,
            origin: info.origin,
            days,
        };
        let key = Layout::checkpoint(dataset, month, number);
        if !self.store.put_new(&key, &json(&checkpoint), "application/json").await? {
            return Err(LandingError::Conflict(format!(
                "{key} already exists in {}: another run is landing {dataset} {month}; wait for it to finish",
                self.store.describe()
            )));
        }
        Ok(checkpoint)
    }

    /// Marks the month complete once every part has landed. The caller
    /// knows the month is read to its end (the source said so); the last
    /// checkpoint may still hold a cursor when the days after it were empty.
    pub async fn finish_month(&self, source: Source, dataset: Dataset, month: Month) -> Result<MonthState, LandingError> {
        let state = self.read_month(dataset, month).await?;
        if state.is_complete() {
            return Ok(state);
        }
        let revision = state.revision + 1;
        let done = DoneMarker {
            source: state.source.unwrap_or(source),
            parts: state.parts,
            rows: state.rows,
            bytes: state.bytes,
            reported: state.reported,
            finished_at: now(),
            origin: state.origin.clone(),
            revision,
        };
        let key = Layout::done_revision(dataset, month, revision);
        if !self.store.put_new(&key, &json(&done), "application/json").await? {
            return Err(LandingError::Conflict(format!("{key} was written by another run meanwhile")));
        }
        self.store.delete(&Layout::failed(dataset, month)).await?;
        self.read_month(dataset, month).await
    }

    pub async fn fail_month(&self, dataset: Dataset, month: Month, reason: &str) -> Result<(), LandingError> {
        let marker = FailedMarker { reason: reason.to_string(), failed_at: now() };
        Ok(self.store.put(&Layout::failed(dataset, month), &json(&marker), "application/json").await?)
    }

    /// Records a warehouse load of the month as it stands (its current
    /// done revision); only called once the job succeeded.
    pub async fn record_load(&self, dataset: Dataset, month: Month, load: &LoadMarker) -> Result<(), LandingError> {
        let state = self.read_month(dataset, month).await?;
        let load = LoadMarker { revision: state.revision.max(1), ..load.clone() };
        Ok(self.store.put(&Layout::load(dataset, month), &json(&load), "application/json").await?)
    }

    /// The month's part checkpoints, in order.
    async fn parts(&self, dataset: Dataset, month: Month) -> Result<Vec<PartCheckpoint>, LandingError> {
        let mut parts = Vec::new();
        for key in self.store.list(&Layout::state_prefix(dataset, month)).await? {
            if let Some((_, _, ObjectKind::Checkpoint { .. })) = Layout::parse(&key) {
                if let Some(p) = self.read_json::<PartCheckpoint>(&key).await? {
                    parts.push(p);
                }
            }
        }
        parts.sort_by_key(|p| p.part);
        Ok(parts)
    }

    /// Rows landed per lodgement day; `None` if some part predates the
    /// daily counts.
    pub async fn day_counts(&self, dataset: Dataset, month: Month) -> Result<Option<BTreeMap<String, u32>>, LandingError> {
        Ok(MonthState::day_counts(&self.parts(dataset, month).await?))
    }

    /// The identifiers landed for the given days, read from the parts that
    /// hold those days.
    pub async fn landed_ids(&self, dataset: Dataset, month: Month, days: &BTreeSet<String>) -> Result<BTreeSet<String>, LandingError> {
        use std::io::Read;
        let mut ids = BTreeSet::new();
        for p in self.parts(dataset, month).await? {
            if !p.days.is_empty() && !p.days.keys().any(|d| days.contains(d)) {
                continue;
            }
            let Some(bytes) = self.store.get(&p.object).await? else {
                return Err(LandingError::Damaged(format!("{} is named by its checkpoint but missing", p.object)));
            };
            let mut text = String::new();
            flate2::read::GzDecoder::new(&bytes[..])
                .read_to_string(&mut text)
                .map_err(|e| LandingError::Damaged(format!("{}: {e}", p.object)))?;
            for line in text.lines() {
                let e: epc_model::Envelope = serde_json::from_str(line)
                    .map_err(|e| LandingError::Damaged(format!("{}: a line is not an envelope ({e})", p.object)))?;
                if days.contains(e.lodgement_date) {
                    if let Some(id) = e.certificate_number.or(e.lmk_key) {
                        ids.insert(id.to_string());
                    }
                }
            }
        }
        Ok(ids)
    }

    /// How many parts the month's checkpoints name: what [`Landing::part_records`]
    /// can be asked for, 1 to this.
    pub async fn part_count(&self, dataset: Dataset, month: Month) -> Result<u32, LandingError> {
        Ok(self.parts(dataset, month).await?.len() as u32)
    }

    /// The records landed in part `part`, as they were handed to
    /// [`Landing::land_page`]: later steps (recommendations) read landed
    /// certificates back rather than fetching them again.
    pub async fn part_records(&self, dataset: Dataset, month: Month, part: u32) -> Result<Vec<Certificate>, LandingError> {
        use std::io::Read;
        let object = Layout::data(dataset, month, part);
        let Some(bytes) = self.store.get(&object).await? else {
            return Err(LandingError::Damaged(format!("{object} is named by its checkpoint but missing")));
        };
        let mut text = String::new();
        flate2::read::GzDecoder::new(&bytes[..])
            .read_to_string(&mut text)
            .map_err(|e| LandingError::Damaged(format!("{object}: {e}")))?;
        let mut out = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let e: epc_model::Envelope = serde_json::from_str(line)
                .map_err(|e| LandingError::Damaged(format!("{object}: line {} is not an envelope ({e})", i + 1)))?;
            let Some(id) = e.certificate_number.or(e.lmk_key) else {
                return Err(LandingError::Damaged(format!("{object}: line {} has no identifier", i + 1)));
            };
            out.push(Certificate {
                id: id.to_string(),
                lodgement_date: e.lodgement_date.to_string(),
                uprn: e.uprn.map(str::to_string),
                postcode: e.postcode.map(str::to_string),
                document: e.record.get().to_string(),
            });
        }
        Ok(out)
    }

    /// Every identifier landed for the month, whatever the day.
    pub async fn all_ids(&self, dataset: Dataset, month: Month) -> Result<BTreeSet<String>, LandingError> {
        let mut ids = BTreeSet::new();
        for n in 1..=self.part_count(dataset, month).await? {
            ids.extend(self.part_records(dataset, month, n).await?.into_iter().map(|c| c.id));
        }
        Ok(ids)
    }

    /// Every month with anything in the store, by dataset and month.
    pub async fn list_months(&self) -> Result<Vec<MonthState>, LandingError> {
        let mut months: BTreeMap<(Dataset, Month), Vec<String>> = BTreeMap::new();
        for top in ["state/", "raw/"] {
            for key in self.store.list(top).await? {
                if let Some((d, m, _)) = Layout::parse(&key) {
                    months.entry((d, m)).or_default().push(key);
                }
            }
        }
        let mut out = Vec::with_capacity(months.len());
        for ((d, m), keys) in months {
            out.push(self.state_from(d, m, &keys).await?);
        }
        Ok(out)
    }

    /// Removes the month's state (markers first, so it never looks complete
    /// while half-removed), then its data. Returns how many objects went.
    pub async fn reset_month(&self, dataset: Dataset, month: Month) -> Result<u32, LandingError> {
        let mut removed = 0;
        for key in [Layout::done(dataset, month), Layout::load(dataset, month), Layout::failed(dataset, month)] {
            removed += self.store.delete(&key).await? as u32;
        }
        for prefix in [Layout::state_prefix(dataset, month), Layout::raw_prefix(dataset, month)] {
            let mut keys = self.store.list(&prefix).await?;
            keys.reverse();
            for key in keys {
                removed += self.store.delete(&key).await? as u32;
            }
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_run::run;
    use crate::FsStore;
    use epc_model::{Kind, MonthStatus};
    use std::io::Read;


    fn cert(id: &str, date: &str) -> Certificate {
        Certificate {
            id: id.into(),
            lodgement_date: date.into(),
            uprn: Some("1".into()),
            postcode: None,
            document: format!("{{\"id\":\"{id}\"}}"),
        }
    }

    fn setup() -> (tempfile::TempDir, Landing<FsStore>, Dataset, Month) {
        let dir = tempfile::tempdir().unwrap();
        let landing = Landing::new(FsStore::new(dir.path()));
        (dir, landing, Dataset::certificates(Kind::Domestic), "2021-01".parse().unwrap())
    }

    fn info(next: Option<&str>) -> PageInfo {
        PageInfo { next_cursor: next.map(str::to_string), ..Default::default() }
    }

    #[test]
    fn pages_land_then_the_month_completes() {
        let (dir, l, ds, m) = setup();
        run(l.open_month(Source::Gepbd, ds, m)).unwrap();
        run(l.land_page(Source::Gepbd, ds, m, 1, &[cert("a", "2021-01-02"), cert("b", "2021-01-03")], info(Some("c1"))))
            .unwrap();
        let s = run(l.read_month(ds, m)).unwrap();
        assert_eq!((s.status, s.rows, s.resume_cursor.as_deref()), (MonthStatus::Partial, 2, Some("c1")));
        run(l.land_page(Source::Gepbd, ds, m, 2, &[cert("c", "2021-01-31")], info(None))).unwrap();
        let s = run(l.finish_month(Source::Gepbd, ds, m)).unwrap();
        assert_eq!((s.status, s.parts, s.rows), (MonthStatus::Landed, 2, 3));

        let mut text = String::new();
        let gz = std::fs::read(dir.path().join("raw/domestic/202101/part-00001.ndjson.gz")).unwrap();
        flate2::read::GzDecoder::new(&gz[..]).read_to_string(&mut text).unwrap();
        assert_eq!(text.lines().count(), 2);
        assert!(text.contains(r#""landed_object":"raw/domestic/202101/part-00001.ndjson.gz""#), "{text}");
    }

    #[test]
    fn landed_records_read_back_as_given() {
        let (_d, l, ds, m) = setup();
        let records = [cert("a", "2021-01-02"), cert("b", "2021-01-03")];
        run(l.land_page(Source::Gepbd, ds, m, 1, &records, info(None))).unwrap();
        run(l.land_page(Source::Gepbd, ds, m, 2, &[cert("c", "2021-01-04")], info(None))).unwrap();
        assert_eq!(run(l.part_count(ds, m)).unwrap(), 2);
        assert_eq!(run(l.part_records(ds, m, 1)).unwrap(), records.to_vec());
        let ids: Vec<String> = run(l.all_ids(ds, m)).unwrap().into_iter().collect();
        assert_eq!(ids, ["a", "b", "c"]);
        assert!(matches!(run(l.part_records(ds, m, 3)), Err(LandingError::Damaged(_))));
    }

    #[test]
    fn an_empty_month_is_no_data() {
        let (_d, l, ds, m) = setup();
        assert_eq!(run(l.finish_month(Source::Odc, ds, m)).unwrap().status, MonthStatus::NoData);
    }

    #[test]
    fn a_part_cannot_land_twice_and_orphans_are_cleaned() {
        let (dir, l, ds, m) = setup();
        run(l.land_page(Source::Gepbd, ds, m, 1, &[cert("a", "2021-01-02")], info(Some("x")))).unwrap();
        let again = run(l.land_page(Source::Gepbd, ds, m, 1, &[cert("a", "2021-01-02")], info(Some("x"))));
        assert!(matches!(again, Err(LandingError::Conflict(_))));
        // A run killed between data and checkpoint leaves an orphan object.
        std::fs::write(dir.path().join("raw/domestic/202101/part-00002.ndjson.gz"), b"half").unwrap();
        std::fs::write(dir.path().join("raw/domestic/202101/.part-00003.ndjson.gz.tmp-1-0"), b"half").unwrap();
        let s = run(l.open_month(Source::Gepbd, ds, m)).unwrap();
        assert_eq!((s.parts, s.resume_cursor.as_deref()), (1, Some("x")));
        let left = run(l.store().list("raw/")).unwrap();
        assert_eq!(left, vec!["raw/domestic/202101/part-00001.ndjson.gz".to_string()]);
    }

    #[test]
    fn sources_do_not_mix_and_reset_clears_everything() {
        let (_d, l, ds, m) = setup();
        run(l.land_page(Source::Odc, ds, m, 1, &[cert("a", "2021-01-02")], info(None))).unwrap();
        run(l.finish_month(Source::Odc, ds, m)).unwrap();
        let err = run(l.open_month(Source::Gepbd, ds, m)).unwrap_err();
        assert!(err.to_string().contains("dame reset"), "{err}");
        assert_eq!(run(l.reset_month(ds, m)).unwrap(), 3);
        assert_eq!(run(l.read_month(ds, m)).unwrap().status, MonthStatus::Empty);
        assert!(run(l.list_months()).unwrap().is_empty());
    }

    #[test]
    fn records_outside_the_month_are_refused() {
        let (_d, l, ds, m) = setup();
        let err = run(l.land_page(Source::Gepbd, ds, m, 1, &[cert("a", "2021-02-01")], info(None))).unwrap_err();
        assert!(matches!(err, LandingError::Invalid(_)));
        assert!(run(l.store().list("raw/")).unwrap().is_empty());
    }

    #[test]
    fn failures_are_recorded_and_cleared_by_completion() {
        let (_d, l, ds, m) = setup();
        run(l.fail_month(ds, m, "API unreachable")).unwrap();
        let s = run(l.read_month(ds, m)).unwrap();
        assert_eq!((s.status, s.error.as_deref()), (MonthStatus::Failed, Some("API unreachable")));
        assert_eq!(run(l.finish_month(Source::Gepbd, ds, m)).unwrap().status, MonthStatus::NoData);
    }
}
