//! Change events (GEPBD's deltas) in the landing store: one create-only
//! object per span of days read from the feed, then its checkpoint, so the
//! feed is read once and a killed run reads its span again.
//!
//! ```text
//! raw/_events/{start}_{end}.ndjson.gz
//! state/_events/{start}_{end}.json
//! ```

use crate::protocol::{Landing, LandingError};
use crate::store::ObjectStore;
use flate2::Compression;
use flate2::write::GzEncoder;
use serde::{Deserialize, Serialize};
use std::io::Write;

const RAW: &str = "raw/_events/";
const STATE: &str = "state/_events/";

/// One change event as landed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventLine {
    pub certificate_number: String,
    /// `removed` or `uprn-changed`.
    pub event_type: String,
    pub uprn: Option<String>,
    pub event_timestamp: String,
    pub landed_object: String,
    pub landed_at: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct EventCheckpoint {
    start: String,
    end: String,
    events: u32,
    object: String,
}

fn span(start: &str, end: &str) -> Result<String, LandingError> {
    for d in [start, end] {
        d.parse::<jiff::civil::Date>()
            .map_err(|_| LandingError::Invalid(format!("event span day '{d}' is not a date (YYYY-MM-DD)")))?;
    }
    Ok(format!("{start}_{end}"))
}

impl<S: ObjectStore> Landing<S> {
    /// Lands the events read for `start`..=`end`; the number landed.
    pub async fn land_events(&self, start: &str, end: &str, events: &[(String, String, Option<String>, String)]) -> Result<u32, LandingError> {
        let span = span(start, end)?;
        let object = format!("{RAW}{span}.ndjson.gz");
        let landed_at = jiff::Timestamp::now().round(jiff::Unit::Second).expect("rounds").to_string();
        let mut gz = GzEncoder::new(Vec::new(), Compression::new(6));
        for (number, event_type, uprn, timestamp) in events {
            let line = EventLine {
                certificate_number: number.clone(),
                event_type: event_type.clone(),
                uprn: uprn.clone(),
                event_timestamp: timestamp.clone(),
                landed_object: object.clone(),
                landed_at: landed_at.clone(),
            };
            serde_json::to_writer(&mut gz, &line).expect("event lines serialise");
            gz.write_all(b"\n").map_err(|e| LandingError::Invalid(format!("compressing {object}: {e}")))?;
        }
        let bytes = gz.finish().map_err(|e| LandingError::Invalid(format!("compressing {object}: {e}")))?;
        // A span landed by a killed run is landed again whole.
        if !self.store().put_new(&object, &bytes, "application/gzip").await? {
            self.store().delete(&object).await?;
            if !self.store().put_new(&object, &bytes, "application/gzip").await? {
                return Err(LandingError::Conflict(format!("{object} is being written by another run")));
            }
        }
        let checkpoint = EventCheckpoint { start: start.into(), end: end.into(), events: events.len() as u32, object };
        let key = format!("{STATE}{span}.json");
        let body = serde_json::to_vec_pretty(&checkpoint).expect("checkpoints serialise");
        if !self.store().put_new(&key, &body, "application/json").await? {
            return Err(LandingError::Conflict(format!("{key} already exists: another run read this span")));
        }
        Ok(events.len() as u32)
    }

    /// The last day the feed has been read through.
    pub async fn events_through(&self) -> Result<Option<String>, LandingError> {
        let mut through: Option<String> = None;
        for key in self.store().list(STATE).await? {
            let Some(end) = key.strip_prefix(STATE).and_then(|k| k.strip_suffix(".json")).and_then(|k| k.split_once('_')).map(|(_, e)| e)
            else {
                continue;
            };
            if through.as_deref().is_none_or(|t| end > t) {
                through = Some(end.to_string());
            }
        }
        Ok(through)
    }

    /// The event objects that have checkpoints, for loading.
    pub async fn event_objects(&self) -> Result<Vec<String>, LandingError> {
        let mut out = Vec::new();
        for key in self.store().list(STATE).await? {
            if let Some(span) = key.strip_prefix(STATE).and_then(|k| k.strip_suffix(".json")) {
                out.push(format!("{RAW}{span}.ndjson.gz"));
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_run::run;
    use crate::FsStore;


    #[test]
    fn spans_land_once_and_say_how_far_the_feed_was_read() {
        let dir = tempfile::tempdir().unwrap();
        let l = Landing::new(FsStore::new(dir.path()));
        assert_eq!(run(l.events_through()).unwrap(), None);
        let ev = vec![("0001-0002-0003-0004-0005".to_string(), "removed".to_string(), None, "2026-11-15T10:00:00Z".to_string())];
        assert_eq!(run(l.land_events("2026-11-01", "2026-11-26", &ev)).unwrap(), 1);
        run(l.land_events("2026-10-01", "2026-10-31", &[])).unwrap();
        assert_eq!(run(l.events_through()).unwrap().as_deref(), Some("2026-11-26"));
        assert_eq!(run(l.event_objects()).unwrap().len(), 2);
        assert!(run(l.land_events("2026-11-01", "2026-11-26", &ev)).is_err(), "a span is read once");
        assert!(run(l.land_events("../x", "2026-11-26", &ev)).is_err());
    }
}
