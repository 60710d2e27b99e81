//! The GEPBD API ("Get energy performance of buildings data"): search and
//! certificate routes under `/api/…`, behind bearer auth.
//!
//! Validation messages are the ones the official OpenAPI document lists, so a
//! client's error handling can be tested on the real texts. The order of the
//! checks (page size, presence of a filter, dates, then each filter) is the
//! emulator's choice; the service does not document one.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::Extension;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::middleware::from_fn_with_state;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use jiff::civil::Date;
use serde_json::{Value, json};

use crate::data::{Certificate, Kind};
use crate::ordering::{Rng, shuffle_ties};
use crate::faults::{Drawn, Fault};
use crate::recommendations::{self, Recs};
use crate::{Emulator, auth, documents, ids, values};

const MISSING_FILTER: &str =
    "The search query was invalid - please provide a valid date range or search parameter";
const INVALID_DATES: &str = "The search query was invalid - please provide a valid date range";
const INCLUDES_TODAY: &str = "The search query was invalid - the date cannot include today";
const INVALID_POSTCODE: &str = "The search query was invalid - please provide a valid postcode";
const INVALID_UPRN: &str =
    "The search query was invalid - the uprn should be an integer greater than 0";
const INVALID_COUNCIL: &str = "The search query was invalid - provide valid council name(s)";
const INVALID_CONSTITUENCY: &str =
    "The search query was invalid - provide valid constituency name(s)";
const INVALID_PAGE_SIZE: &str =
    "The search query was invalid - provide valid page_size between 1 and 5000";
const NO_RESULTS: &str = "No certificates could be found for that query";
const INVALID_CERTIFICATE_NUMBER: &str = "The search query was invalid - please provide a valid certificate_number (NNNN-NNNN-NNNN-NNNN-NNNN)";
const CERTIFICATE_NOT_FOUND: &str = "Certificate not found";

/// Page size when none is given, and the largest accepted.
const MAX_PAGE_SIZE: usize = 5000;

/// The GEPBD routes, with their auth layer.
pub fn routes(emu: Arc<Emulator>) -> Router<Arc<Emulator>> {
    let mut router = Router::new();
    for kind in Kind::ALL {
        router = router.route(
            &format!("/api/{}/search", kind.slug()),
            get(
                move |State(emu): State<Arc<Emulator>>,
                      drawn: Option<Extension<Drawn>>,
                      Query(params): Query<Vec<(String, String)>>| async move {
                    search(&emu, kind, &params, drawn.map(|d| d.0.0))
                },
            ),
        );
    }
    if emu.files.is_some() {
        router = router.merge(crate::files::gepbd_routes());
    }
    router
        .route("/api/certificate", get(certificate))
        .route("/api/deltas", get(crate::deltas::deltas))
        .route_layer(from_fn_with_state(emu, auth::bearer))
}

pub fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, axum::Json(json!({"error": message.into()}))).into_response()
}

fn bad_request(message: &str) -> Response {
    error(StatusCode::BAD_REQUEST, message)
}

/// A parsed and validated search.
struct Search {
    start: Option<Date>,
    end: Option<Date>,
    councils: Vec<String>,
    constituencies: Vec<String>,
    postcode: Option<String>,
    uprn: Option<i64>,
    bands: Vec<String>,
    address: Option<String>,
    page_size: usize,
    current_page: Option<String>,
    today: Date,
}

/// Values of a parameter, accepting both `name[]` (as the spec writes
/// arrays) and the bare `name`; empty values count as absent.
fn values_of<'a>(params: &'a [(String, String)], names: &[&str]) -> Vec<&'a str> {
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

fn one<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    values_of(params, &[name]).into_iter().next()
}

/// Validates a search; `Err` is the message of the 400 to answer.
fn parse(emu: &Emulator, params: &[(String, String)]) -> Result<Search, &'static str> {
    let page_size = match one(params, "page_size") {
        None => MAX_PAGE_SIZE,
        Some(raw) => match raw.parse::<usize>() {
            Ok(n) if (1..=MAX_PAGE_SIZE).contains(&n) => n,
            _ => return Err(INVALID_PAGE_SIZE),
        },
    };
    let councils = values_of(params, &["council"]);
    let constituencies = values_of(params, &["constituency"]);
    let postcode = one(params, "postcode");
    let uprn = one(params, "uprn");
    let mut bands = values_of(params, &["eff_rating"]);
    bands.extend(values_of(params, &["efficiency_rating"]));
    let address = one(params, "address");
    let other_filter = !councils.is_empty()
        || !constituencies.is_empty()
        || postcode.is_some()
        || uprn.is_some()
        || !bands.is_empty()
        || address.is_some();

    let (raw_start, raw_end) = (one(params, "date_start"), one(params, "date_end"));
    if !other_filter && (raw_start.is_none() || raw_end.is_none()) {
        return Err(MISSING_FILTER);
    }
    let date = |raw: Option<&str>| -> Result<Option<Date>, &'static str> {
        raw.map(|r| r.parse::<Date>().map_err(|_| INVALID_DATES))
            .transpose()
    };
    let (start, end) = (date(raw_start)?, date(raw_end)?);
    if let (Some(s), Some(e)) = (start, end)
        && s > e
    {
        return Err(INVALID_DATES);
    }
    let today = emu.today();
    if start.is_some_and(|d| d >= today) || end.is_some_and(|d| d >= today) {
        return Err(INCLUDES_TODAY);
    }

    let uprn = match uprn {
        None => None,
        Some(raw) => match raw.parse::<i64>() {
            Ok(n) if n > 0 => Some(n),
            _ => return Err(INVALID_UPRN),
        },
    };
    let postcode = match postcode {
        None => None,
        Some(raw) => {
            let key = values::postcode_key(raw);
            let plausible = (5..=7).contains(&key.len())
                && key.chars().all(|c| c.is_ascii_alphanumeric())
                && key.starts_with(|c: char| c.is_ascii_alphabetic());
            if !plausible {
                return Err(INVALID_POSTCODE);
            }
            Some(key)
        }
    };
    let lower = |v: Vec<&str>| v.into_iter().map(str::to_lowercase).collect::<Vec<_>>();
    let councils = lower(councils);
    if councils.iter().any(|c| !emu.data.councils.contains(c)) {
        return Err(INVALID_COUNCIL);
    }
    let constituencies = lower(constituencies);
    if constituencies
        .iter()
        .any(|c| !emu.data.constituencies.contains(c))
    {
        return Err(INVALID_CONSTITUENCY);
    }
    Ok(Search {
        start,
        end,
        councils,
        constituencies,
        postcode,
        uprn,
        bands: bands.into_iter().map(str::to_uppercase).collect(),
        address: address.map(values::address_key),
        page_size,
        current_page: one(params, "current_page").map(str::to_owned),
        today,
    })
}

impl Search {
    fn matches(&self, c: &Certificate) -> bool {
        let label = |col: &str| c.value(col).trim().to_lowercase();
        (self.councils.is_empty() || self.councils.contains(&label("LOCAL_AUTHORITY_LABEL")))
            && (self.constituencies.is_empty()
                || self.constituencies.contains(&label("CONSTITUENCY_LABEL")))
            && self.postcode.as_ref().is_none_or(|p| *p == c.postcode_key())
            && self.uprn.is_none_or(|u| c.uprn_at(self.today) == Some(u))
            && (self.bands.is_empty() || self.bands.contains(&c.band))
            && self
                .address
                .as_ref()
                .is_none_or(|a| c.address_key().contains(a.as_str()))
    }
}

/// `GET /api/{kind}/search`.
fn search(emu: &Emulator, kind: Kind, params: &[(String, String)], fault: Option<Fault>) -> Response {
    let search = match parse(emu, params) {
        Ok(s) => s,
        Err(message) => return bad_request(message),
    };
    let data = emu.data.kind(kind);
    let date_of = |i: usize| data.certs[i].lodgement_date;
    // Rows registered today are not served yet (the service excludes them).
    let newest = emu.today().yesterday().unwrap_or(Date::MIN);
    let end = search.end.map_or(newest, |e| e.min(newest));
    let order = &data.by_date_desc;
    let from = order.partition_point(|&i| date_of(i) > end);
    let to = match search.start {
        Some(start) => order.partition_point(|&i| date_of(i) >= start),
        None => order.len(),
    };
    let mut rows: Vec<usize> = order[from..to.max(from)]
        .iter()
        .copied()
        .filter(|&i| !data.certs[i].removed(search.today) && search.matches(&data.certs[i]))
        .collect();
    if rows.is_empty() {
        return error(StatusCode::NOT_FOUND, NO_RESULTS);
    }
    let request = emu.requests.fetch_add(1, Ordering::Relaxed);
    shuffle_ties(&mut rows, date_of, &mut Rng::new(emu.seed, request));

    let total = rows.len();
    let total_pages = total.div_ceil(search.page_size);
    let page = match &search.current_page {
        None => 1,
        Some(raw) => match raw.parse::<usize>() {
            Ok(n) if (1..=total_pages).contains(&n) => n,
            _ => {
                return bad_request(&format!(
                    "The requested page number {raw} is out of range. Total pages: {total_pages}"
                ));
            }
        },
    };
    let mut first = (page - 1) * search.page_size;
    let mut reported = total;
    let mut rng = Rng::new(emu.seed ^ 0x00D0_B1E5, request);
    match fault {
        // Rows repeated or skipped across the pages of a window, as when
        // the order moves between requests.
        Some(Fault::Dup) if total_pages > 1 => {
            let reach = (search.page_size / 4).max(1);
            let shift = 1 + rng.below(reach);
            first = if rng.below(2) == 0 || first + shift >= total {
                first.saturating_sub(shift)
            } else {
                first + shift
            };
            emu.recorder.fault(Fault::Dup.name());
        }
        // As if certificates arrived or left during the window.
        Some(Fault::Total) => {
            let delta = 1 + rng.below(3);
            reported = if rng.below(2) == 0 || total <= delta { total + delta } else { total - delta };
            emu.recorder.fault(Fault::Total.name());
        }
        _ => {}
    }
    let last = (first + search.page_size).min(total);
    let reported_pages = reported.div_ceil(search.page_size).max(page);
    let data_rows: Vec<Value> = rows[first..last]
        .iter()
        .map(|&i| search_row(&data.certs[i], search.today))
        .collect();
    axum::Json(json!({
        "data": data_rows,
        "pagination": {
            "totalRecords": reported,
            "currentPage": page,
            "totalPages": reported_pages,
            "nextPage": (page < reported_pages).then_some(page + 1),
            "prevPage": (page > 1).then(|| page - 1),
            "pageSize": search.page_size,
        }
    }))
    .into_response()
}

/// A search result row, camelCase as the service writes it.
pub fn search_row(c: &Certificate, today: Date) -> Value {
    let text = |col: &str| values::text(c.value(col).trim());
    let mut row = json!({
        "certificateNumber": c.certificate_number,
        "addressLine1": text("ADDRESS1"),
        "addressLine2": text("ADDRESS2"),
        "addressLine3": text("ADDRESS3"),
        "addressLine4": text("ADDRESS4"),
        "postcode": text("POSTCODE"),
        "postTown": text("POSTTOWN"),
        "council": text("LOCAL_AUTHORITY_LABEL"),
        "constituency": text("CONSTITUENCY_LABEL"),
        "currentEnergyEfficiencyBand": values::text(&c.band),
        "registrationDate": c.lodgement_date.to_string(),
        "uprn": c.uprn_at(today),
        "schemaType": c.schema.schema_type(),
    });
    if let Some(rrn) = &c.related_rrn {
        row["relatedRrn"] = Value::String(rrn.clone());
    }
    row
}

/// `GET /api/certificate?certificate_number=…`.
async fn certificate(
    State(emu): State<Arc<Emulator>>,
    Query(params): Query<Vec<(String, String)>>,
) -> Response {
    let Some(number) = one(&params, "certificate_number") else {
        return bad_request(INVALID_CERTIFICATE_NUMBER);
    };
    if !ids::is_certificate_number(number) {
        return bad_request(INVALID_CERTIFICATE_NUMBER);
    }
    let today = emu.today();
    if let Some(&(kind, i)) = emu.data.by_number.get(number) {
        let cert = &emu.data.kind(kind).certs[i];
        if !cert.removed(today) {
            return axum::Json(json!({"data": emu.document(cert, today)})).into_response();
        }
    }
    if let (Some(recs), Some(&(kind, i))) = (&emu.recommendations, emu.data.by_report.get(number)) {
        let cert = &emu.data.kind(kind).certs[i];
        if !cert.removed(today) && !recs.report_missing(emu.seed, cert) {
            let advice = match recs.of(emu.seed, cert) {
                Recs::Report(a) => a,
                Recs::Domestic(_) => Vec::new(),
            };
            let uprn = document_uprn(cert, today);
            return axum::Json(json!({"data": recommendations::report(cert, &advice, uprn)}))
                .into_response();
        }
    }
    error(StatusCode::NOT_FOUND, CERTIFICATE_NOT_FOUND)
}

/// A document's `uprn` as of `today`.
pub fn document_uprn(cert: &Certificate, today: Date) -> Value {
    match cert.uprn_change(today) {
        Some(u) => u.map_or(Value::Null, Value::from),
        None => values::uprn_value(cert.value("UPRN")),
    }
}

impl Emulator {
    /// The GEPBD document of a certificate as of `today`: UPRN changes
    /// applied, recommendations in when configured.
    pub(crate) fn document(&self, cert: &Certificate, today: Date) -> Value {
        let mut doc = documents::document(cert);
        if cert.uprn_change(today).is_some() {
            doc["uprn"] = document_uprn(cert, today);
        }
        if let Some(recs) = &self.recommendations
            && let Recs::Domestic(list) = recs.of(self.seed, cert)
        {
            doc["suggested_improvements"] =
                recommendations::suggested_improvements(&list, cert.schema);
        }
        doc
    }
}
