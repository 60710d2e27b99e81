//! The legacy Open Data Communities API (v1) under `/api/v1/…`, behind HTTP
//! Basic auth (except `/info`).
//!
//! Rows are the source rows as they are: keys are the column names
//! lower-cased with `_` → `-`, every value a string. Paging is by
//! `search-after`, a cursor over a total order (lodgement datetime, then LMK
//! key), so it neither repeats nor skips rows. An empty result is a 200 with
//! an empty body, as the real API answers, which a client must not take for
//! malformed JSON.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::from_fn_with_state;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use jiff::civil::Date;
use serde_json::{Map, Value, json};

use crate::data::{Certificate, Kind, KindData};
use crate::ordering::{decode_cursor, encode_cursor};
use crate::recommendations as recs;
use crate::{Emulator, auth, values};

/// The response header carrying the next page's cursor.
pub const NEXT_SEARCH_AFTER: &str = "x-next-search-after";
const DEFAULT_SIZE: usize = 25;
const MAX_SIZE: usize = 5000;
const FIRST_YEAR: i16 = 2008;

/// The authenticated ODC routes.
pub fn routes(emu: Arc<Emulator>) -> Router<Arc<Emulator>> {
    let mut router = Router::new();
    for kind in Kind::ALL {
        router = router
            .route(
                &format!("/api/v1/{}/search", kind.slug()),
                get(
                    move |State(emu): State<Arc<Emulator>>,
                          headers: HeaderMap,
                          Query(params): Query<Vec<(String, String)>>| async move {
                        search(&emu, kind, &headers, &params)
                    },
                ),
            )
            .route(
                &format!("/api/v1/{}/certificate/{{lmk_key}}", kind.slug()),
                get(
                    move |State(emu): State<Arc<Emulator>>,
                          headers: HeaderMap,
                          Path(lmk_key): Path<String>| async move {
                        certificate(&emu, kind, &headers, &lmk_key)
                    },
                ),
            );
        if emu.recommendations.is_some() {
            router = router.route(
                &format!("/api/v1/{}/recommendations/{{lmk_key}}", kind.slug()),
                get(
                    move |State(emu): State<Arc<Emulator>>,
                          headers: HeaderMap,
                          Path(lmk_key): Path<String>| async move {
                        recommendations(&emu, kind, &headers, &lmk_key)
                    },
                ),
            );
        }
    }
    if emu.files.is_some() {
        router = router.merge(crate::files::odc_routes());
    }
    router.route_layer(from_fn_with_state(emu, auth::basic))
}

/// `GET /api/v1/info` (no auth): the newest lodgement date held and the
/// emulator's "today" as the update date.
pub async fn info(State(emu): State<Arc<Emulator>>) -> Response {
    let today = emu.today();
    let latest = emu.data.latest_date().unwrap_or(today);
    axum::Json(json!({"latestDate": latest.to_string(), "updatedDate": today.to_string()}))
        .into_response()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Json,
    Csv,
}

/// The format the `Accept` header asks for: JSON when absent or a wildcard,
/// CSV for `text/csv`, `None` (406) for what the emulator does not produce
/// (the real API also offers zip and Excel).
fn negotiate(headers: &HeaderMap) -> Option<Format> {
    let Some(accept) = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()) else {
        return Some(Format::Json);
    };
    if accept.trim().is_empty() {
        return Some(Format::Json);
    }
    accept.split(',').find_map(|part| {
        match part
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase()
            .as_str()
        {
            "application/json" | "application/*" | "*/*" => Some(Format::Json),
            "text/csv" | "text/*" => Some(Format::Csv),
            _ => None,
        }
    })
}

fn bad_request(message: String) -> Response {
    (
        StatusCode::BAD_REQUEST,
        axum::Json(json!({"message": message})),
    )
        .into_response()
}

fn not_acceptable() -> Response {
    (
        StatusCode::NOT_ACCEPTABLE,
        "Not Acceptable: the emulator serves application/json and text/csv",
    )
        .into_response()
}

fn all<'a>(params: &'a [(String, String)], names: &[&str]) -> Vec<&'a str> {
    params
        .iter()
        .filter(|(k, v)| {
            !v.trim().is_empty()
                && names
                    .iter()
                    .any(|n| k == n || k.strip_suffix("[]") == Some(n))
        })
        .map(|(_, v)| v.trim())
        .collect()
}

fn int<T: std::str::FromStr + PartialOrd + Copy + std::fmt::Display>(
    params: &[(String, String)],
    name: &str,
    default: T,
    min: T,
    max: T,
) -> Result<T, String> {
    match all(params, &[name]).first() {
        None => Ok(default),
        Some(raw) => match raw.parse::<T>() {
            Ok(n) if n >= min && n <= max => Ok(n),
            _ => Err(format!(
                "{name} must be an integer between {min} and {max}, not {raw:?}"
            )),
        },
    }
}

/// The filters of an ODC search.
struct Filters {
    from: Date,
    to: Date,
    postcode: Option<String>,
    uprn: Option<i64>,
    local_authorities: Vec<String>,
    constituencies: Vec<String>,
    bands: Vec<String>,
    address: Option<String>,
    today: Date,
}

impl Filters {
    fn matches(&self, c: &Certificate) -> bool {
        let code = |col: &str| c.value(col).trim().to_ascii_uppercase();
        self.postcode
            .as_ref()
            .is_none_or(|p| c.postcode_key().starts_with(p.as_str()))
            && !c.removed(self.today)
            && self.uprn.is_none_or(|u| c.uprn_at(self.today) == Some(u))
            && (self.local_authorities.is_empty()
                || self.local_authorities.contains(&code("LOCAL_AUTHORITY")))
            && (self.constituencies.is_empty()
                || self.constituencies.contains(&code("CONSTITUENCY")))
            && (self.bands.is_empty() || self.bands.contains(&c.band))
            && self
                .address
                .as_ref()
                .is_none_or(|a| c.address_key().contains(a.as_str()))
    }
}

/// A validated search: filters, page size and the cursor to start after.
struct Search {
    filters: Filters,
    size: usize,
    after: Option<(u64, String)>,
}

/// Validates a search; `Err` is the message of the 400 to answer.
fn parse(emu: &Emulator, params: &[(String, String)]) -> Result<Search, String> {
    let year = emu.today().year();
    let from_month: i8 = int(params, "from-month", 1, 1, 12)?;
    let from_year: i16 = int(params, "from-year", FIRST_YEAR, FIRST_YEAR, year)?;
    let to_month: i8 = int(params, "to-month", 12, 1, 12)?;
    let to_year: i16 = int(params, "to-year", year, FIRST_YEAR, year)?;
    let size: usize = int(params, "size", DEFAULT_SIZE, 1, MAX_SIZE)?;
    let from = Date::new(from_year, from_month, 1).map_err(|e| e.to_string())?;
    let to = Date::new(to_year, to_month, 1)
        .map_err(|e| e.to_string())?
        .last_of_month();
    let after = match all(params, &["search-after"]).first() {
        None => None,
        Some(raw) => match decode_cursor(raw) {
            Some((key, lmk)) => Some((key.parse::<u64>().unwrap_or(0), lmk.to_owned())),
            None => {
                return Err(format!(
                    "search-after {raw:?} is not a cursor this API returned"
                ));
            }
        },
    };
    let uprn = match all(params, &["uprn", "UPRN"]).first() {
        None => None,
        Some(raw) => Some(
            raw.parse::<i64>()
                .map_err(|_| format!("uprn must be an integer, not {raw:?}"))?,
        ),
    };
    let upper = |v: Vec<&str>| v.into_iter().map(str::to_uppercase).collect::<Vec<_>>();
    let filters = Filters {
        from,
        to,
        postcode: all(params, &["postcode"])
            .first()
            .map(|p| values::postcode_key(p)),
        uprn,
        local_authorities: upper(all(params, &["local-authority"])),
        constituencies: upper(all(params, &["constituency"])),
        bands: upper(all(params, &["energy-band"])),
        address: all(params, &["address"])
            .first()
            .map(|a| values::address_key(a)),
        today: emu.today(),
    };
    Ok(Search {
        filters,
        size,
        after,
    })
}

/// `GET /api/v1/{kind}/search`.
fn search(
    emu: &Emulator,
    kind: Kind,
    headers: &HeaderMap,
    params: &[(String, String)],
) -> Response {
    let Some(format) = negotiate(headers) else {
        return not_acceptable();
    };
    let Search {
        filters,
        size,
        after,
    } = match parse(emu, params) {
        Ok(s) => s,
        Err(message) => return bad_request(message),
    };
    let data = emu.data.kind(kind);
    let order = &data.by_cursor;
    let key = |i: usize| (data.certs[i].cursor, data.certs[i].lmk_key.as_str());
    let mut start = order.partition_point(|&i| data.certs[i].lodgement_date < filters.from);
    if let Some((cursor, lmk)) = &after {
        start = start.max(order.partition_point(|&i| key(i) <= (*cursor, lmk.as_str())));
    }
    let mut rows = Vec::with_capacity(size.min(1024) + 1);
    for &i in &order[start..] {
        let c = &data.certs[i];
        if c.lodgement_date > filters.to {
            break;
        }
        if filters.matches(c) {
            rows.push(i);
            if rows.len() > size {
                break;
            }
        }
    }
    if rows.is_empty() {
        return StatusCode::OK.into_response();
    }
    let more = rows.len() > size;
    rows.truncate(size);
    let mut response = body(data, &rows, format, filters.today);
    if more {
        let last = &data.certs[*rows.last().expect("non-empty")];
        if let Ok(v) = HeaderValue::from_str(&encode_cursor(&format!("{:014}", last.cursor), &last.lmk_key)) {
            response.headers_mut().insert(NEXT_SEARCH_AFTER, v);
        }
    }
    response
}

/// `GET /api/v1/{kind}/certificate/{lmk-key}`: the one row, in the search
/// format; 404 when the key is unknown.
fn certificate(emu: &Emulator, kind: Kind, headers: &HeaderMap, lmk_key: &str) -> Response {
    let Some(format) = negotiate(headers) else {
        return not_acceptable();
    };
    let data = emu.data.kind(kind);
    let today = emu.today();
    match data.by_lmk.get(lmk_key) {
        Some(&i) if !data.certs[i].removed(today) => body(data, &[i], format, today),
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

/// `GET /api/v1/{kind}/recommendations/{lmk-key}`: the certificate's
/// recommendations as rows (every value a string); 200 with an empty body
/// when it has none, 404 when the key is unknown.
fn recommendations(emu: &Emulator, kind: Kind, headers: &HeaderMap, lmk_key: &str) -> Response {
    let Some(format) = negotiate(headers) else {
        return not_acceptable();
    };
    let data = emu.data.kind(kind);
    let today = emu.today();
    let (Some(recs), Some(&i)) = (&emu.recommendations, data.by_lmk.get(lmk_key)) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let cert = &data.certs[i];
    if cert.removed(today) {
        return StatusCode::NOT_FOUND.into_response();
    }
    let rows = recs::odc_rows(&cert.lmk_key, &recs.of(emu.seed, cert));
    if rows.is_empty() {
        return StatusCode::OK.into_response();
    }
    let columns = recs::odc_columns(kind);
    let names: Vec<String> = columns.iter().map(|c| values::kebab(c)).collect();
    match format {
        Format::Json => {
            let rows: Vec<Value> = rows
                .into_iter()
                .map(|row| {
                    Value::Object(
                        names
                            .iter()
                            .cloned()
                            .zip(row.into_iter().map(Value::String))
                            .collect(),
                    )
                })
                .collect();
            axum::Json(json!({"column-names": names, "rows": rows})).into_response()
        }
        Format::Csv => csv_response(&names, rows.iter().map(|r| r.iter().map(String::as_str))),
    }
}

fn csv_response<'a, R, I>(names: &[String], rows: R) -> Response
where
    R: Iterator<Item = I>,
    I: Iterator<Item = &'a str>,
{
    let mut w = csv::Writer::from_writer(Vec::new());
    let mut written = w.write_record(names);
    for row in rows {
        if written.is_ok() {
            written = w.write_record(row);
        }
    }
    match (written, w.into_inner()) {
        (Ok(()), Ok(bytes)) => {
            ([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], bytes).into_response()
        }
        _ => (StatusCode::INTERNAL_SERVER_ERROR, "cannot write CSV").into_response(),
    }
}

fn body(data: &KindData, rows: &[usize], format: Format, today: Date) -> Response {
    let names: Vec<String> = data.columns.iter().map(|c| values::kebab(c)).collect();
    match format {
        Format::Json => {
            let rows: Vec<Value> = rows
                .iter()
                .map(|&i| {
                    let c = &data.certs[i];
                    let row: Map<String, Value> = data
                        .columns
                        .iter()
                        .zip(&names)
                        .map(|(col, name)| {
                            (name.clone(), Value::String(c.value_at(col, today).into_owned()))
                        })
                        .collect();
                    Value::Object(row)
                })
                .collect();
            axum::Json(json!({"column-names": names, "rows": rows})).into_response()
        }
        Format::Csv => {
            let values: Vec<Vec<std::borrow::Cow<'_, str>>> = rows
                .iter()
                .map(|&i| {
                    let c = &data.certs[i];
                    data.columns.iter().map(|col| c.value_at(col, today)).collect()
                })
                .collect();
            csv_response(&names, values.iter().map(|r| r.iter().map(|v| v.as_ref())))
        }
    }
}
