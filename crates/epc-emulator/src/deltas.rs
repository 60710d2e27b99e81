//! GEPBD's change feed, `GET /api/deltas?date_start&date_end`, and what its
//! events do to the data.
//!
//! Events are configured ([`crate::Config::deltas`]): remove a certificate,
//! or change its UPRN, at a time. An event takes effect once its day is
//! before the emulator's "today" (the days the feed can serve): from then a
//! removed certificate is gone from both APIs' searches, certificate routes,
//! recommendations and bulk files, and a changed UPRN shows in search rows,
//! documents, ODC rows and bulk files (and is what the `uprn` filters match).

use std::sync::Arc;

use anyhow::{Context, bail};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use jiff::Timestamp;
use jiff::civil::Date;
use serde_json::json;

use crate::Emulator;
use crate::data::{Dataset, Events, happened};
use crate::gepbd::error;

/// One configured change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeltaEvent {
    /// The GEPBD certificate number (or the LMK key) of the certificate.
    pub certificate: String,
    pub at: Timestamp,
    pub change: DeltaChange,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeltaChange {
    /// The certificate is removed from the register.
    Removed,
    /// The certificate's UPRN becomes this one (`None`: no UPRN).
    Uprn(Option<i64>),
}

/// The `eventType` a UPRN change is reported with: the spec says
/// `uprn_updated`, the service's documentation `address_id_updated`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum UprnEvent {
    #[default]
    UprnUpdated,
    AddressIdUpdated,
}

impl UprnEvent {
    pub fn name(self) -> &'static str {
        match self {
            UprnEvent::UprnUpdated => "uprn_updated",
            UprnEvent::AddressIdUpdated => "address_id_updated",
        }
    }
}

impl std::str::FromStr for UprnEvent {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> anyhow::Result<UprnEvent> {
        match s {
            "uprn_updated" => Ok(UprnEvent::UprnUpdated),
            "address_id_updated" => Ok(UprnEvent::AddressIdUpdated),
            _ => bail!("unknown UPRN event type {s:?}: use uprn_updated or address_id_updated"),
        }
    }
}

impl std::str::FromStr for DeltaEvent {
    type Err = anyhow::Error;
    /// `removed:CERTIFICATE@TIME` or `uprn:CERTIFICATE=UPRN@TIME` (an empty
    /// UPRN removes it); TIME is RFC 3339 (`2021-03-01T10:00:00Z`) or a date
    /// (midnight UTC).
    fn from_str(s: &str) -> anyhow::Result<DeltaEvent> {
        let usage = "a delta is removed:CERTIFICATE@TIME or uprn:CERTIFICATE=UPRN@TIME";
        let (what, rest) = s.split_once(':').with_context(|| format!("{s:?}: {usage}"))?;
        let (target, time) = rest.rsplit_once('@').with_context(|| format!("{s:?}: {usage}"))?;
        let at = parse_time(time).with_context(|| format!("{s:?}: time {time:?}"))?;
        let (certificate, change) = match what {
            "removed" | "remove" => (target.to_owned(), DeltaChange::Removed),
            "uprn" => {
                let (cert, uprn) = target.split_once('=').with_context(|| format!("{s:?}: {usage}"))?;
                let uprn = match uprn.trim() {
                    "" => None,
                    u => Some(u.parse::<i64>().with_context(|| format!("{s:?}: UPRN {u:?}"))?),
                };
                (cert.to_owned(), DeltaChange::Uprn(uprn))
            }
            _ => bail!("{s:?}: {usage}"),
        };
        Ok(DeltaEvent { certificate, at, change })
    }
}

fn parse_time(s: &str) -> anyhow::Result<Timestamp> {
    if let Ok(t) = s.parse::<Timestamp>() {
        return Ok(t);
    }
    let d: Date = s.parse()?;
    Ok(d.to_zoned(jiff::tz::TimeZone::UTC)?.timestamp())
}

/// Attaches the configured events to their certificates; refuses an event
/// for a certificate that is not loaded.
pub fn apply(data: &mut Dataset, events: &[DeltaEvent]) -> anyhow::Result<()> {
    for e in events {
        let Some((kind, i)) = data.find(&e.certificate) else {
            bail!(
                "delta for {}: no such certificate (give a GEPBD certificate number or an LMK key of the data)",
                e.certificate
            );
        };
        let cert = &mut data.kinds[kind.index()].certs[i];
        let ev = cert.events.get_or_insert_with(|| Box::new(Events::default()));
        match e.change {
            DeltaChange::Removed => {
                ev.removed = Some(ev.removed.map_or(e.at, |t| t.min(e.at)));
            }
            DeltaChange::Uprn(u) => {
                ev.uprns.push((e.at, u));
                ev.uprns.sort_by_key(|x| x.0);
            }
        }
    }
    Ok(())
}

/// `GET /api/deltas`: the events of days `date_start..=date_end`, oldest
/// first; the search's date rules (both dates, start ≤ end, before today).
pub async fn deltas(
    State(emu): State<Arc<Emulator>>,
    Query(params): Query<Vec<(String, String)>>,
) -> Response {
    const INVALID_DATES: &str = "The search query was invalid - please provide a valid date range";
    const INCLUDES_TODAY: &str = "The search query was invalid - the date cannot include today";
    let get = |n: &str| {
        params
            .iter()
            .find(|(k, v)| k == n && !v.trim().is_empty())
            .map(|(_, v)| v.trim().parse::<Date>())
    };
    let (start, end) = match (get("date_start"), get("date_end")) {
        (Some(Ok(s)), Some(Ok(e))) if s <= e => (s, e),
        _ => return error(StatusCode::BAD_REQUEST, INVALID_DATES),
    };
    let today = emu.today();
    if start >= today || end >= today {
        return error(StatusCode::BAD_REQUEST, INCLUDES_TODAY);
    }
    let mut rows: Vec<(Timestamp, &str, &str)> = Vec::new();
    for e in &emu.deltas {
        let day = jiff::tz::Offset::UTC.to_datetime(e.at).date();
        if day < start || day > end || !happened(e.at, today) {
            continue;
        }
        let Some((kind, i)) = emu.data.find(&e.certificate) else {
            continue;
        };
        let number = emu.data.cert(kind, i).certificate_number.as_str();
        let event = match e.change {
            DeltaChange::Removed => "removed",
            DeltaChange::Uprn(_) => emu.uprn_event.name(),
        };
        rows.push((e.at, number, event));
    }
    if rows.is_empty() {
        return error(StatusCode::NOT_FOUND, "No audit logs could be found for that query");
    }
    rows.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(b.1)));
    let data: Vec<_> = rows
        .into_iter()
        .map(|(at, number, event)| {
            json!({
                "certificateNumber": number,
                "eventType": event,
                "timestamp": at.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
            })
        })
        .collect();
    axum::Json(json!({"data": data})).into_response()
}
