//! GEPBD's change feed (`/api/deltas`): certificates removed from the
//! register, and certificates whose UPRN changed. A landed month holds
//! certificates as they were; these events are what keeps it true.

use crate::problem::unexpected;
use crate::{Api, SourceError, encode};
use http_client::{Client, Request, Transport};
use jiff::civil::Date;
use serde::Deserialize;
use serde_json::Value;

/// What happened to a certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Removed,
    /// The certificate's UPRN now (none when the register has none, or the
    /// certificate is gone by the time it is asked for).
    Uprn(Option<String>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delta {
    pub certificate_number: String,
    pub change: Change,
    /// As the API gives it (RFC 3339).
    pub timestamp: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Event {
    certificate_number: String,
    event_type: String,
    #[serde(default)]
    timestamp: Option<String>,
}

/// The events between `start` and `end` (inclusive), with the current UPRN
/// of each certificate whose UPRN changed.
pub(crate) async fn deltas<T: Transport>(client: &Client<T>, token: &str, api: &Api, start: Date, end: Date) -> Result<Vec<Delta>, SourceError> {
    let auth = |r: Request| r.header("Authorization", format!("Bearer {token}")).header("Accept", "application/json");
    let url = format!("{}/api/deltas?date_start={start}&date_end={end}", api.base_url);
    let what = format!("deltas {start} to {end}");
    let events: Vec<Event> = crate::fetch_and_read(client, &auth(Request::get(url)), |response| match response.status {
        200 => {
            let v: Value = serde_json::from_slice(&response.body)
                .map_err(|e| SourceError::Protocol(format!("{what}: unreadable response ({e})")))?;
            let list = v.get("data").cloned().unwrap_or(Value::Null);
            serde_json::from_value(list).map_err(|e| SourceError::Protocol(format!("{what}: unexpected events ({e})")))
        }
        404 => Ok(Vec::new()),
        _ => Err(unexpected(&what, response)),
    })
    .await?;
    let mut out = Vec::with_capacity(events.len());
    for e in events {
        let change = match e.event_type.as_str() {
            "removed" => Change::Removed,
            // The spec says uprn_updated, the service's docs
            // address_id_updated: both mean the UPRN changed.
            "uprn_updated" | "address_id_updated" => Change::Uprn(current_uprn(client, &auth, api, &e.certificate_number).await?),
            other => {
                return Err(SourceError::Protocol(format!("{what}: unknown event type {other:?} for {}", e.certificate_number)));
            }
        };
        out.push(Delta { certificate_number: e.certificate_number, change, timestamp: e.timestamp.unwrap_or_default() });
    }
    Ok(out)
}

async fn current_uprn<T: Transport>(
    client: &Client<T>,
    auth: &impl Fn(Request) -> Request,
    api: &Api,
    number: &str,
) -> Result<Option<String>, SourceError> {
    let url = format!("{}/api/certificate?certificate_number={}", api.base_url, encode(number));
    let what = format!("certificate {number}");
    crate::fetch_and_read(client, &auth(Request::get(url)), |response| match response.status {
        200 => {
            let v: Value = serde_json::from_slice(&response.body)
                .map_err(|e| SourceError::Protocol(format!("{what}: unreadable document ({e})")))?;
            Ok(match &v["data"]["uprn"] {
                Value::Number(n) => Some(n.to_string()),
                Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
                _ => None,
            })
        }
        404 => Ok(None),
        _ => Err(unexpected(&what, response)),
    })
    .await
}
