//! The live GEPBD API.
//!
//! Its search orders by `registration_date DESC` and pages by OFFSET with no
//! tie-breaker, so a window larger than one page can repeat some rows and
//! skip others, and rows move as certificates are added every day. This
//! client therefore:
//!
//! 1. walks a month one day at a time, so that most windows fit in one page
//!    (a page returns its whole window whatever the order);
//! 2. splits a day with more than `page_size` certificates by energy band
//!    (`eff_rating[]` A–G), then fetches whatever the bands did not cover;
//! 3. pages a window that still does not fit several times over, keeping
//!    the union, until it holds as many distinct certificates as the API's
//!    `totalRecords` (or says in a warning how far it got);
//! 4. sorts every window by certificate number, so a cursor can say
//!    "after certificate X" and a resumed run continues exactly there.
//!
//! A page is at most [`MAX_RECORDS_PER_PART`] certificates of one window;
//! each comes with its full document from `/api/certificate`.

use crate::problem::unexpected;
use crate::{Api, Certificate, CONCURRENCY, Page, PageRequest, SourceError, encode};
use epc_model::{Kind, MAX_RECORDS_PER_PART};
use futures::StreamExt;
use http_client::{Client, Request, Transport};
use jiff::civil::Date;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;
use std::collections::BTreeMap;

/// Energy bands a day is split into when it does not fit in one page.
const BANDS: [char; 7] = ['A', 'B', 'C', 'D', 'E', 'F', 'G'];

/// How many times an oversized window is paged through before settling for
/// a partial union. Each pass costs `totalPages` requests; with the order
/// reshuffled between requests, every pass finds most of what earlier ones
/// missed.
const MAX_PASSES: usize = 12;

/// Which rows of a day a window holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Window {
    /// The whole day, when it fits in one page.
    Day,
    /// One energy band of the day.
    Band(char),
    /// Rows of the day in no band A–G: only visited when the bands' totals
    /// fall short of the day's.
    Rest,
}

/// Where a month's reading stands. Serialised compactly into the opaque
/// cursor string that checkpoints keep.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Cursor {
    v: u8,
    day: Date,
    window: Window,
    /// Last certificate number already returned from this window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    after: Option<String>,
    /// The day's total, once the day has been split into bands.
    #[serde(default, skip_serializing_if = "is_zero")]
    day_total: u64,
    /// The totals of the bands visited so far.
    #[serde(default, skip_serializing_if = "is_zero")]
    band_sum: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl Cursor {
    fn start(day: Date) -> Self {
        Cursor { v: 1, day, window: Window::Day, after: None, day_total: 0, band_sum: 0 }
    }

    fn parse(s: &str) -> Result<Self, SourceError> {
        serde_json::from_str(s).map_err(|e| {
            SourceError::InvalidInput(format!(
                "checkpoint cursor '{s}' is not a GEPBD cursor ({e}); reset the month with `dame reset`"
            ))
        })
    }

    fn encode(&self) -> String {
        serde_json::to_string(self).expect("cursor serialises")
    }

    /// The cursor after the current window is complete.
    fn after_window(&self, window_total: u64) -> Cursor {
        let next_day = Cursor::start(self.day.tomorrow().expect("dates stay in range"));
        match self.window {
            Window::Day | Window::Rest => next_day,
            Window::Band(b) => {
                let band_sum = self.band_sum + window_total;
                match BANDS.iter().position(|&x| x == b).and_then(|i| BANDS.get(i + 1)) {
                    Some(&next) => Cursor { window: Window::Band(next), after: None, band_sum, ..self.clone() },
                    None if band_sum < self.day_total => {
                        Cursor { window: Window::Rest, after: None, band_sum, ..self.clone() }
                    }
                    None => next_day,
                }
            }
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Summary {
    certificate_number: String,
    #[serde(default)]
    registration_date: Option<String>,
    #[serde(default)]
    uprn: Option<Value>,
    #[serde(default)]
    postcode: Option<String>,
    #[serde(default)]
    current_energy_efficiency_band: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Pagination {
    total_records: u64,
}

#[derive(Debug, Deserialize)]
struct SearchPage {
    data: Vec<Summary>,
    pagination: Pagination,
}

/// A window's rows, de-duplicated and sorted by certificate number.
struct WindowRows {
    total: u64,
    rows: BTreeMap<String, Summary>,
}

/// How long a window read by one page may serve the pages after it. Under
/// GEPBD's limit a 5,000-row window takes about four minutes to fetch.
const WINDOW_FRESH_FOR: std::time::Duration = std::time::Duration::from_secs(30 * 60);

/// Which window a kept [`WindowRows`] is, and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
struct WindowKey {
    base_url: String,
    kind: Kind,
    day: Date,
    window: Window,
    page_size: u32,
}

/// What the last page stopped inside, kept for the next page: a GEPBD
/// window, or an ODC search page (see `odc`).
///
/// A window is read whole (one or more searches) and cut into pages of
/// [`MAX_RECORDS_PER_PART`]. Without this, every page of a window of N rows
/// searches the window again: N/250 searches of up to 5,000 rows each where
/// one does, which costs the API (and the budget) a request per page and
/// the client the parsing of every search again. A page that ends inside a
/// window leaves its rows here; the next page of that window, in the same
/// instance, continues from them. A resumed run (a new instance) searches
/// afresh, as before. ODC pages are kept the same way.
#[derive(Default)]
pub struct WindowCache {
    window: Slot<(WindowKey, WindowRows)>,
    odc: Slot<crate::odc::KeptPage>,
}

impl WindowCache {
    pub fn new() -> Self {
        Self::default()
    }

    fn take(&self, key: &WindowKey) -> Option<WindowRows> {
        self.window.take(|(k, _)| k == key).map(|(_, rows)| rows)
    }

    fn keep(&self, key: WindowKey, rows: WindowRows) {
        self.window.keep((key, rows));
    }

    /// The kept ODC page, if `wanted` says it is the one asked for.
    pub(crate) fn take_odc(&self, wanted: impl Fn(&crate::odc::KeptPage) -> bool) -> Option<crate::odc::KeptPage> {
        self.odc.take(wanted)
    }

    pub(crate) fn keep_odc(&self, page: crate::odc::KeptPage) {
        self.odc.keep(page);
    }
}

/// One kept value and when it was kept. Taking it empties the slot
/// whatever it held, so at most one window or page is ever held, and a
/// value older than [`WINDOW_FRESH_FOR`] is never handed out.
struct Slot<T>(std::sync::Mutex<Option<(std::time::Instant, T)>>);

impl<T> Default for Slot<T> {
    fn default() -> Self {
        Slot(std::sync::Mutex::new(None))
    }
}

impl<T> Slot<T> {
    fn take(&self, wanted: impl Fn(&T) -> bool) -> Option<T> {
        let mut kept = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match kept.take() {
            Some((at, value)) if wanted(&value) && at.elapsed() < WINDOW_FRESH_FOR => Some(value),
            _ => None,
        }
    }

    fn keep(&self, value: T) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some((std::time::Instant::now(), value));
    }
}

struct Reader<'a, T> {
    client: &'a Client<T>,
    token: &'a str,
    api: &'a Api,
    kind: Kind,
    page_size: u32,
    warnings: Vec<String>,
}

pub(crate) async fn fetch_page<T: Transport>(
    client: &Client<T>,
    token: &str,
    request: &PageRequest,
    cache: &WindowCache,
) -> Result<Page, SourceError> {
    let month = request.month;
    let last = month.last_day().min(request.last_day);
    let mut cursor = match &request.cursor {
        Some(c) => Cursor::parse(c)?,
        None => Cursor::start(month.first_day()),
    };
    if !month.contains(cursor.day) {
        return Err(SourceError::InvalidInput(format!(
            "cursor day {} is outside month {month}; reset the month with `dame reset`",
            cursor.day
        )));
    }
    let mut reader = Reader {
        client,
        token,
        api: &request.api,
        kind: request.kind,
        page_size: request.page_size,
        warnings: Vec::new(),
    };
    // A page gathers windows (days, or bands of a day) until it holds
    // MAX_RECORDS_PER_PART certificates or the month ends, so small days
    // share an object and big ones are cut at the limit.
    let mut certificates = Vec::new();
    let mut reported = 0;
    loop {
        if cursor.day > last {
            return Ok(Page { certificates, next_cursor: None, reported, warnings: reader.warnings });
        }
        if certificates.len() >= MAX_RECORDS_PER_PART {
            return Ok(Page { certificates, next_cursor: Some(cursor.encode()), reported, warnings: reader.warnings });
        }
        let key = WindowKey {
            base_url: request.api.base_url.clone(),
            kind: request.kind,
            day: cursor.day,
            window: cursor.window,
            page_size: request.page_size,
        };
        // A window this instance already read, continued where the last
        // page stopped (only ever with `after` set: a fresh window is
        // always searched).
        let kept = match cursor.after {
            Some(_) => cache.take(&key),
            None => None,
        };
        let window = match cursor.window {
            _ if kept.is_some() => kept.expect("checked"),
            Window::Day => match reader.single_page(cursor.day).await? {
                Ok(w) => w,
                Err(day_total) => {
                    // Too many for one page: split the day into bands.
                    cursor = Cursor { window: Window::Band(BANDS[0]), day_total, ..cursor };
                    continue;
                }
            },
            Window::Band(b) => reader.whole_window(cursor.day, Some(b)).await?,
            Window::Rest => {
                let mut w = reader.whole_window(cursor.day, None).await?;
                w.rows.retain(|_, s| !in_bands(s));
                w.total = cursor.day_total.saturating_sub(cursor.band_sum);
                reader.reconcile(cursor.day, cursor.window, w.total, w.rows.len());
                w
            }
        };
        let pending: Vec<&Summary> = match &cursor.after {
            Some(after) => window
                .rows
                .range::<str, _>((std::ops::Bound::Excluded(after.as_str()), std::ops::Bound::Unbounded))
                .map(|(_, s)| s)
                .collect(),
            None => window.rows.values().collect(),
        };
        let room = MAX_RECORDS_PER_PART - certificates.len();
        let chunk = &pending[..pending.len().min(room)];
        if !chunk.is_empty() {
            certificates.extend(reader.documents(chunk, cursor.day).await?);
        }
        if chunk.len() == pending.len() {
            reported += window.total;
            cursor = cursor.after_window(window.total);
        } else {
            let last_id = chunk.last().expect("room is never zero here").certificate_number.clone();
            cursor = Cursor { after: Some(last_id), ..cursor };
            // The page is full and ends inside this window: the next page
            // continues from these rows instead of searching again.
            cache.keep(key, window);
        }
    }
}

/// The API's count for each day of the month up to `last_day`: one
/// search per day, asking for a single row.
pub(crate) async fn day_totals<T: Transport>(
    client: &Client<T>,
    token: &str,
    request: &PageRequest,
) -> Result<Vec<(Date, u64)>, SourceError> {
    let reader = Reader { client, token, api: &request.api, kind: request.kind, page_size: 1, warnings: Vec::new() };
    let last = request.month.last_day().min(request.last_day);
    let mut day = request.month.first_day();
    let mut out = Vec::new();
    while day <= last {
        let total = reader.search(day, None, 1).await?.map_or(0, |p| p.pagination.total_records);
        out.push((day, total));
        day = day.tomorrow().expect("dates stay in range");
    }
    Ok(out)
}

/// Certificates of `days` not in `exclude`, at most a part's worth: what
/// arrived late for days already landed. The caller lands them, adds
/// them to `exclude` and asks again until nothing is left.
pub(crate) async fn fetch_days<T: Transport>(
    client: &Client<T>,
    token: &str,
    request: &PageRequest,
    days: &[Date],
    exclude: &std::collections::BTreeSet<String>,
) -> Result<Page, SourceError> {
    let mut reader = Reader {
        client,
        token,
        api: &request.api,
        kind: request.kind,
        page_size: request.page_size,
        warnings: Vec::new(),
    };
    let mut certificates = Vec::new();
    for &day in days {
        if !request.month.contains(day) || day > request.last_day {
            return Err(SourceError::InvalidInput(format!("day {day} is outside {} or not over yet", request.month)));
        }
        let rows = match reader.single_page(day).await? {
            Ok(w) => w.rows,
            Err(day_total) => {
                let mut rows = BTreeMap::new();
                let mut band_sum = 0;
                for b in BANDS {
                    let w = reader.whole_window(day, Some(b)).await?;
                    band_sum += w.total;
                    rows.extend(w.rows);
                }
                if band_sum < day_total {
                    let w = reader.whole_window(day, None).await?;
                    rows.extend(w.rows);
                }
                rows
            }
        };
        let pending: Vec<&Summary> = rows.values().filter(|s| !exclude.contains(s.certificate_number.trim())).collect();
        let room = MAX_RECORDS_PER_PART - certificates.len();
        let chunk = &pending[..pending.len().min(room)];
        if !chunk.is_empty() {
            certificates.extend(reader.documents(chunk, day).await?);
        }
        if certificates.len() >= MAX_RECORDS_PER_PART {
            break;
        }
    }
    Ok(Page { certificates, next_cursor: None, reported: 0, warnings: reader.warnings })
}

pub(crate) async fn preflight<T: Transport>(
    client: &Client<T>,
    token: &str,
    api: &Api,
    kind: Kind,
    last_day: Date,
) -> Result<(), SourceError> {
    let reader = Reader { client, token, api, kind, page_size: 1, warnings: Vec::new() };
    reader.search(last_day, None, 1).await.map(|_| ())
}

fn in_bands(s: &Summary) -> bool {
    let band = s.current_energy_efficiency_band.as_deref().unwrap_or("").trim().to_ascii_uppercase();
    band.len() == 1 && BANDS.contains(&band.chars().next().unwrap_or(' '))
}

impl<T: Transport> Reader<'_, T> {
    fn auth(&self, request: Request) -> Request {
        request.header("Authorization", format!("Bearer {}", self.token)).header("Accept", "application/json")
    }

    /// One search request; `None` when the API has no results (404).
    async fn search(&self, day: Date, band: Option<char>, page: u64) -> Result<Option<SearchPage>, SourceError> {
        let mut url = format!(
            "{}/api/{}/search?date_start={day}&date_end={day}&page_size={}&current_page={page}",
            self.api.base_url,
            self.kind.as_str(),
            self.page_size
        );
        if let Some(b) = band {
            url.push_str(&format!("&{}={b}", encode("eff_rating[]")));
        }
        let what = format!("{} search for {day}{}", self.kind, band.map(|b| format!(" band {b}")).unwrap_or_default());
        crate::fetch_and_read(self.client, &self.auth(Request::get(url)), |response| match response.status {
            200 => serde_json::from_slice(&response.body)
                .map(Some)
                .map_err(|e| SourceError::Protocol(format!("{what}: unreadable response ({e})"))),
            404 => Ok(None),
            // Asking past the last page (the count moved since page 1): no
            // more rows, not a bad request.
            400 if page > 1 && crate::problem::api_message(response).contains("out of range") => Ok(None),
            _ => Err(unexpected(&what, response)),
        })
        .await
    }

    /// The whole day when it fits in one page, or else the day's total.
    async fn single_page(&mut self, day: Date) -> Result<Result<WindowRows, u64>, SourceError> {
        let Some(first) = self.search(day, None, 1).await? else {
            return Ok(Ok(WindowRows { total: 0, rows: BTreeMap::new() }));
        };
        // A full page may be the first of several whatever the count says
        // (counts can be stale): only a page with room to spare is known to
        // hold the whole day.
        if first.pagination.total_records > self.page_size as u64 || first.data.len() >= self.page_size as usize {
            return Ok(Err(first.pagination.total_records.max(first.data.len() as u64)));
        }
        let total = first.pagination.total_records;
        let mut rows = self.keep(day, first.data);
        // A one-page window returns every row whatever the order; a short
        // count means rows were added or removed between count and fetch.
        // Ask again once and keep the union.
        if (rows.len() as u64) < total {
            if let Some(again) = self.search(day, None, 1).await? {
                rows.extend(self.keep(day, again.data));
            }
        }
        self.reconcile(day, Window::Day, total, rows.len());
        Ok(Ok(WindowRows { total, rows }))
    }

    /// Every row of a window, paging it as many times as it takes when it
    /// spans several pages.
    async fn whole_window(&mut self, day: Date, band: Option<char>) -> Result<WindowRows, SourceError> {
        let Some(first) = self.search(day, band, 1).await? else {
            return Ok(WindowRows { total: 0, rows: BTreeMap::new() });
        };
        let page_size = self.page_size as usize;
        let mut total = first.pagination.total_records;
        let mut last_full = first.data.len() >= page_size;
        let mut rows = self.keep(day, first.data);
        let mut next_page = 2;
        for _pass in 0..MAX_PASSES {
            // A pass goes on while the count says there is more, or while
            // pages come back full (a count can be stale).
            loop {
                let pages = total.div_ceil(self.page_size as u64).max(1);
                if (next_page > pages && !last_full) || (rows.len() as u64 >= total && !last_full) {
                    break;
                }
                match self.search(day, band, next_page).await? {
                    Some(p) => {
                        total = total.max(p.pagination.total_records);
                        last_full = p.data.len() >= page_size;
                        rows.extend(self.keep(day, p.data));
                    }
                    None => break,
                }
                next_page += 1;
            }
            if rows.len() as u64 >= total {
                break;
            }
            next_page = 1;
            last_full = true;
        }
        let window = band.map(Window::Band).unwrap_or(Window::Day);
        if band.is_some() {
            self.reconcile(day, window, total, rows.len());
        }
        Ok(WindowRows { total, rows })
    }

    /// Keeps the rows that belong to the day, keyed by certificate number.
    fn keep(&mut self, day: Date, data: Vec<Summary>) -> BTreeMap<String, Summary> {
        let day_text = day.to_string();
        let mut out = BTreeMap::new();
        for s in data {
            let id = s.certificate_number.trim();
            if id.is_empty() || id.len() > 64 || id.contains(char::is_whitespace) {
                self.warnings.push(format!("{} {day}: skipped a row with certificate number {id:?}", self.kind));
                continue;
            }
            let date = s.registration_date.as_deref().unwrap_or("");
            if date.get(..10) != Some(day_text.as_str()) {
                // Landing it here would put it in the wrong month or day.
                self.warnings.push(format!(
                    "{} {day}: skipped certificate {id} registered on {date:?}, outside the window",
                    self.kind
                ));
                continue;
            }
            out.insert(id.to_string(), s);
        }
        out
    }

    fn reconcile(&mut self, day: Date, window: Window, total: u64, got: usize) {
        if got as u64 != total {
            let w = match window {
                Window::Day => "day".to_string(),
                Window::Band(b) => format!("band {b}"),
                Window::Rest => "rows outside bands A-G".to_string(),
            };
            self.warnings.push(format!(
                "{} {day} {w}: the API reported {total} certificates, {got} distinct were returned",
                self.kind
            ));
        }
    }

    /// Full documents for `chunk`, several requests in flight, in order.
    ///
    /// Requests complete in any order (`buffer_unordered`) and are put back
    /// in order after: with `buffered`, one slow request (a retry waiting
    /// out a `Retry-After`) held the seven behind it, so nothing new was
    /// sent until it returned.
    async fn documents(&mut self, chunk: &[&Summary], day: Date) -> Result<Vec<Certificate>, SourceError> {
        let this = &*self;
        let mut numbered: Vec<(usize, Result<Option<String>, SourceError>)> = futures::stream::iter(chunk.iter().enumerate())
            .map(|(i, s)| async move { (i, this.document(&s.certificate_number).await) })
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        numbered.sort_unstable_by_key(|(i, _)| *i);
        let results = numbered.into_iter().map(|(_, r)| r);
        let day_text = day.to_string();
        let mut out = Vec::with_capacity(chunk.len());
        for (s, r) in chunk.iter().zip(results) {
            match r? {
                Some(document) => out.push(Certificate {
                    id: s.certificate_number.trim().to_string(),
                    lodgement_date: day_text.clone(),
                    uprn: s.uprn.as_ref().and_then(uprn_text),
                    postcode: s.postcode.clone().filter(|p| !p.trim().is_empty()),
                    document,
                }),
                None => self.warnings.push(format!(
                    "{} {day}: certificate {} was listed by search but /api/certificate has no such certificate; skipped",
                    self.kind, s.certificate_number
                )),
            }
        }
        Ok(out)
    }

    async fn document(&self, number: &str) -> Result<Option<String>, SourceError> {
        let url = format!("{}/api/certificate?certificate_number={}", self.api.base_url, encode(number.trim()));
        let what = format!("certificate {number}");
        crate::fetch_and_read(self.client, &self.auth(Request::get(url)), |response| match response.status {
            200 => {
                #[derive(Deserialize)]
                struct Wrapped<'a> {
                    #[serde(borrow)]
                    data: &'a RawValue,
                }
                let wrapped: Wrapped = serde_json::from_slice(&response.body)
                    .map_err(|e| SourceError::Protocol(format!("{what}: unreadable document ({e})")))?;
                Ok(Some(epc_model::one_line(wrapped.data.get()).into_owned()))
            }
            404 => Ok(None),
            _ => Err(unexpected(&what, response)),
        })
        .await
    }
}

fn uprn_text(v: &Value) -> Option<String> {
    match v {
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

    #[test]
    fn cursors_round_trip_compactly() {
        let c = Cursor { after: Some("0001-0002-0003-0004-0005".into()), ..Cursor::start(date(2021, 1, 31)) };
        let text = c.encode();
        assert_eq!(text, r#"{"v":1,"day":"2021-01-31","window":"day","after":"0001-0002-0003-0004-0005"}"#);
        assert_eq!(Cursor::parse(&text).unwrap(), c);
        assert!(Cursor::parse("12345").is_err());
    }

    #[test]
    fn bands_walk_a_to_g_then_the_rest_only_when_short() {
        let mut c = Cursor { window: Window::Band('A'), day_total: 100, ..Cursor::start(date(2021, 1, 5)) };
        let mut seen = vec![];
        for _ in 0..7 {
            seen.push(c.window);
            c = c.after_window(10);
        }
        assert_eq!(seen.first(), Some(&Window::Band('A')));
        assert_eq!(seen.last(), Some(&Window::Band('G')));
        assert_eq!((c.window, c.band_sum), (Window::Rest, 70));
        assert_eq!(c.after_window(30).day, date(2021, 1, 6));
        let full = Cursor { window: Window::Band('G'), day_total: 100, band_sum: 90, ..Cursor::start(date(2021, 1, 5)) };
        assert_eq!(full.after_window(10), Cursor::start(date(2021, 1, 6)));
    }
}
