//! Reads certificates from the EPC APIs a page at a time, resumably.
//!
//! [`fetch_page`] returns one bounded page of one kind and month plus an
//! opaque cursor for the next; given that cursor back (from a checkpoint, in
//! another process, days later) it continues where it stopped. Both APIs are
//! supported:
//!
//! - [`gepbd`]: the live service. Its search pages by OFFSET over an order
//!   with no tie-breaker, so this client keeps every window within one page
//!   where it can (a month is walked day by day, a day too big for one page
//!   is split by energy band), de-duplicates on the certificate number and
//!   reconciles each window with the `totalRecords` the API reports. Each
//!   result's full document comes from `/api/certificate`, several requests
//!   in flight at once.
//! - [`odc`]: the retired Open Data Communities API: one month window paged
//!   with `search-after`, each page of up to 5,000 rows fetched once and
//!   handed out a part (250 rows) at a time.

mod deltas;
pub mod gepbd;
pub mod odc;
mod problem;
pub mod recs;

pub use epc_model::Certificate;
use epc_model::{Kind, Month, Source};
use http_client::{Client, Transport};
use jiff::civil::Date;
use std::fmt;

pub use gepbd::WindowCache;
pub use deltas::{Change, Delta};
pub use problem::SourceError;

/// An EPC API to read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Api {
    pub source: Source,
    /// Scheme and host (and port), without a trailing slash; a trailing
    /// `/api` or `/api/v1` is accepted and dropped.
    pub base_url: String,
}

impl Api {
    pub fn new(source: Source, base_url: &str) -> Result<Self, SourceError> {
        let trimmed = base_url.trim().trim_end_matches('/');
        let trimmed = trimmed.strip_suffix("/api/v1").or_else(|| trimmed.strip_suffix("/api")).unwrap_or(trimmed);
        let ok = (trimmed.starts_with("https://") || trimmed.starts_with("http://"))
            && trimmed.split("://").nth(1).is_some_and(|rest| !rest.is_empty() && !rest.contains(['?', '#', ' ']));
        if !ok {
            return Err(SourceError::InvalidInput(format!(
                "API URL '{base_url}' is not an http(s) URL: give the service's base, e.g. {}",
                source.default_url()
            )));
        }
        Ok(Self { source, base_url: trimmed.to_string() })
    }
}

/// What each API needs to let us in. `Debug` never shows the values.
#[derive(Clone)]
pub enum Credentials {
    Gepbd { token: String },
    Odc { email: String, api_key: String },
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credentials::Gepbd { .. } => f.write_str("Credentials::Gepbd { token: <redacted> }"),
            Credentials::Odc { .. } => f.write_str("Credentials::Odc { email: <redacted>, api_key: <redacted> }"),
        }
    }
}

impl Credentials {
    /// Picks the credentials `source` needs from what configuration holds,
    /// or says which setting is missing.
    pub fn for_source(
        source: Source,
        token: Option<String>,
        email: Option<String>,
        api_key: Option<String>,
    ) -> Result<Self, SourceError> {
        let present = |v: Option<String>| v.filter(|s| !s.trim().is_empty());
        match source {
            Source::Gepbd => match present(token) {
                Some(token) => Ok(Credentials::Gepbd { token: token.trim().to_string() }),
                None => Err(SourceError::Unauthorized(
                    "no GEPBD token: set EPC_TOKEN (from your account page on the \
                     get-energy-performance-data service), or use `dame demo` to try without one"
                        .into(),
                )),
            },
            Source::Odc => match (present(email), present(api_key)) {
                (Some(email), Some(api_key)) => {
                    Ok(Credentials::Odc { email: email.trim().to_string(), api_key: api_key.trim().to_string() })
                }
                _ => Err(SourceError::Unauthorized(
                    "no ODC credentials: set both EPC_EMAIL and EPC_API_KEY".into(),
                )),
            },
        }
    }
}

/// One request for a page.
#[derive(Debug, Clone)]
pub struct PageRequest {
    pub api: Api,
    pub kind: Kind,
    pub month: Month,
    pub cursor: Option<String>,
    /// Rows per search request (1–5000).
    pub page_size: u32,
    /// The last day that may be asked for: the API refuses today.
    pub last_day: Date,
}

#[derive(Debug, Clone, Default)]
pub struct Page {
    pub certificates: Vec<Certificate>,
    /// `None` once the month has been read to its end.
    pub next_cursor: Option<String>,
    /// What the API reported for the windows this page completed.
    pub reported: u64,
    pub warnings: Vec<String>,
}

/// How many certificate documents are requested at once (GEPBD). Enough to
/// hide a round trip of a few hundred milliseconds at the API's 20 requests
/// a second; the request budget, not this, is what bounds the rate.
pub const CONCURRENCY: usize = 8;

/// The largest page size either API accepts.
pub const MAX_PAGE_SIZE: u32 = 5000;

/// Reads one page. See the crate documentation for what a page is.
pub async fn fetch_page<T: Transport>(
    client: &Client<T>,
    credentials: &Credentials,
    request: &PageRequest,
) -> Result<Page, SourceError> {
    fetch_page_with(client, credentials, request, &WindowCache::new()).await
}

/// [`fetch_page`], continuing from `cache` a GEPBD window the previous page
/// stopped inside rather than searching it again (see [`WindowCache`]).
/// Callers that fetch a month page after page keep one cache for all of
/// them.
pub async fn fetch_page_with<T: Transport>(
    client: &Client<T>,
    credentials: &Credentials,
    request: &PageRequest,
    cache: &WindowCache,
) -> Result<Page, SourceError> {
    check_request(request)?;
    match (request.api.source, credentials) {
        (Source::Gepbd, Credentials::Gepbd { token }) => gepbd::fetch_page(client, token, request, cache).await,
        (Source::Odc, Credentials::Odc { email, api_key }) => {
            odc::fetch_page(client, &odc::basic_auth(email, api_key), request, cache).await
        }
        _ => Err(SourceError::InvalidInput("credentials do not match the source".into())),
    }
}

/// GEPBD's change events between two days (inclusive): removals and UPRN
/// changes, each UPRN change with the certificate's current UPRN.
pub async fn deltas<T: Transport>(
    client: &Client<T>,
    credentials: &Credentials,
    api: &Api,
    start: Date,
    end: Date,
) -> Result<Vec<Delta>, SourceError> {
    if start > end {
        return Err(SourceError::InvalidInput(format!("deltas from {start} to {end}: the range is reversed")));
    }
    match credentials {
        Credentials::Gepbd { token } if api.source == Source::Gepbd => deltas::deltas(client, token, api, start, end).await,
        _ => Err(SourceError::InvalidInput("change events (deltas) exist in GEPBD only".into())),
    }
}

/// The API's count of certificates for each day of the month (GEPBD):
/// what a month already landed is compared with to find late arrivals.
pub async fn day_totals<T: Transport>(
    client: &Client<T>,
    credentials: &Credentials,
    request: &PageRequest,
) -> Result<Vec<(Date, u64)>, SourceError> {
    match credentials {
        Credentials::Gepbd { token } if request.api.source == Source::Gepbd => gepbd::day_totals(client, token, request).await,
        _ => Err(SourceError::InvalidInput("late arrivals are checked against GEPBD's daily counts only".into())),
    }
}

/// Certificates of `days` that are not in `exclude` (GEPBD), at most one
/// part's worth; see [`day_totals`].
pub async fn fetch_days<T: Transport>(
    client: &Client<T>,
    credentials: &Credentials,
    request: &PageRequest,
    days: &[Date],
    exclude: &std::collections::BTreeSet<String>,
) -> Result<Page, SourceError> {
    check_request(request)?;
    match credentials {
        Credentials::Gepbd { token } if request.api.source == Source::Gepbd => {
            gepbd::fetch_days(client, token, request, days, exclude).await
        }
        _ => Err(SourceError::InvalidInput("late arrivals are fetched from GEPBD only".into())),
    }
}

/// One cheap authenticated request that changes nothing, so that bad
/// credentials or an unreachable API stop a job before it writes anything.
pub async fn preflight<T: Transport>(
    client: &Client<T>,
    credentials: &Credentials,
    api: &Api,
    kind: Kind,
    last_day: Date,
) -> Result<(), SourceError> {
    match (api.source, credentials) {
        (Source::Gepbd, Credentials::Gepbd { token }) => gepbd::preflight(client, token, api, kind, last_day).await,
        (Source::Odc, Credentials::Odc { email, api_key }) => {
            odc::preflight(client, &odc::basic_auth(email, api_key), api, kind, last_day).await
        }
        _ => Err(SourceError::InvalidInput("credentials do not match the source".into())),
    }
}

fn check_request(r: &PageRequest) -> Result<(), SourceError> {
    if !(1..=MAX_PAGE_SIZE).contains(&r.page_size) {
        return Err(SourceError::InvalidInput(format!(
            "page size {} is out of range: use 1 to {MAX_PAGE_SIZE}",
            r.page_size
        )));
    }
    if r.month.first_day() > r.last_day {
        return Err(SourceError::InvalidInput(format!(
            "month {} starts after {}, the last day the API serves: choose an earlier month",
            r.month, r.last_day
        )));
    }
    Ok(())
}

/// How many times an answer that arrived but cannot be read (cut short,
/// not JSON, not UTF-8: a proxy or server failing mid-body) is asked for
/// again before the page fails. The HTTP client retries statuses and
/// broken connections; this covers bodies that came whole but wrong.
const UNREADABLE_ATTEMPTS: u32 = 4;

/// Sends `request` and reads the answer with `read`, asking again when it
/// cannot be read.
pub(crate) async fn fetch_and_read<T, C: Transport>(
    client: &Client<C>,
    request: &http_client::Request,
    read: impl FnMut(&http_client::Response) -> Result<T, SourceError>,
) -> Result<T, SourceError> {
    fetch_and_keep(client, request, read).await.map(|(_, t)| t)
}

/// [`fetch_and_read`], handing back the response too, for a reader that
/// indexes the body rather than copying out of it.
pub(crate) async fn fetch_and_keep<T, C: Transport>(
    client: &Client<C>,
    request: &http_client::Request,
    mut read: impl FnMut(&http_client::Response) -> Result<T, SourceError>,
) -> Result<(http_client::Response, T), SourceError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let response = client.send(request).await?;
        match read(&response) {
            Err(SourceError::Protocol(_)) if attempt < UNREADABLE_ATTEMPTS && response.status == 200 => {
                client.transport().sleep(std::time::Duration::from_millis(100 << attempt)).await;
            }
            Ok(t) => return Ok((response, t)),
            Err(e) => return Err(e),
        }
    }
}

/// Percent-encodes a query value.
pub(crate) fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_urls_are_normalised_or_refused() {
        let a = Api::new(Source::Odc, "https://epc.opendatacommunities.org/api/v1/").unwrap();
        assert_eq!(a.base_url, "https://epc.opendatacommunities.org");
        assert!(Api::new(Source::Gepbd, "ftp://x").is_err());
        assert!(Api::new(Source::Gepbd, "http://").is_err());
    }

    #[test]
    fn missing_credentials_name_the_variable() {
        let e = Credentials::for_source(Source::Gepbd, Some("  ".into()), None, None).unwrap_err();
        assert!(e.to_string().contains("EPC_TOKEN"));
        let e = Credentials::for_source(Source::Odc, None, Some("a@b".into()), None).unwrap_err();
        assert!(e.to_string().contains("EPC_API_KEY"));
        let c = Credentials::for_source(Source::Gepbd, Some("tok-123".into()), None, None).unwrap();
        assert!(!format!("{c:?}").contains("tok-123"));
    }

    #[test]
    fn encodes_query_values() {
        assert_eq!(encode("eff_rating[]"), "eff_rating%5B%5D");
        assert_eq!(encode("a b&c"), "a%20b%26c");
    }
}
