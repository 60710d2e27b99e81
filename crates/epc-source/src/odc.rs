//! The retired Open Data Communities API (v1).
//!
//! One window per month (`from-month`/`to-month`), pages of `size` rows,
//! each page pointing at the next with the `X-Next-Search-After` header; no
//! header means no more pages. No results is a 200 with an empty body.
//! Every value in a row is a string; keys are kebab-case.

use crate::problem::unexpected;
use crate::{Api, Certificate, Page, PageRequest, SourceError, WindowCache, encode};
use base64::Engine;
use epc_model::{Kind, MAX_RECORDS_PER_PART, Month};
use http_client::{Client, Request, Response, Transport};
use jiff::civil::Date;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

pub(crate) fn basic_auth(email: &str, api_key: &str) -> String {
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{email}:{api_key}")))
}

/// Where an ODC month's reading stands: the `search-after` of the page being
/// read (none for the month's first) and how many of its rows earlier
/// parts took.
///
/// A page of 5,000 full records is several MB of JSON: it is fetched once,
/// kept in [`WindowCache`], and handed out [`MAX_RECORDS_PER_PART`] rows at
/// a time, so no component boundary, part or landing buffer ever holds a
/// whole page. At a page boundary the cursor is the API's own
/// `search-after` token, as checkpoints written before parts were cut held;
/// inside a page it is `{"v":1,"after":…,"skip":N}`, and a resumed run (a
/// new instance with nothing kept) asks for the page again and skips the
/// rows already landed: `search-after` pages are a total order, so the same
/// request returns the same rows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Cursor {
    v: u8,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    after: Option<String>,
    skip: usize,
}

impl Cursor {
    fn parse(cursor: Option<&str>) -> Result<Self, SourceError> {
        match cursor {
            None => Ok(Cursor { v: 1, after: None, skip: 0 }),
            Some(c) if c.starts_with("{\"v\":") => serde_json::from_str(c).map_err(|e| {
                SourceError::InvalidInput(format!(
                    "checkpoint cursor '{c}' is not an ODC cursor ({e}); reset the month with `dame reset`"
                ))
            }),
            Some(token) => Ok(Cursor { v: 1, after: Some(token.to_string()), skip: 0 }),
        }
    }

    fn encode(&self) -> String {
        match (&self.after, self.skip) {
            (Some(token), 0) => token.clone(),
            _ => serde_json::to_string(self).expect("cursor serialises"),
        }
    }
}

/// Which page a [`KeptPage`] is.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PageKey {
    base_url: String,
    kind: Kind,
    month: Month,
    after: Option<String>,
    page_size: u32,
}

/// One search page, kept whole between the parts cut from it: the body as
/// received and where each row lies in it, so rows are copied out only as
/// their part is asked for.
pub(crate) struct KeptPage {
    key: PageKey,
    body: Vec<u8>,
    rows: Vec<std::ops::Range<usize>>,
    next: Option<String>,
}

impl std::fmt::Debug for KeptPage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KeptPage({:?}, {} rows, {} bytes)", self.key, self.rows.len(), self.body.len())
    }
}

pub(crate) async fn fetch_page<T: Transport>(
    client: &Client<T>,
    auth: &str,
    request: &PageRequest,
    cache: &WindowCache,
) -> Result<Page, SourceError> {
    let m = request.month;
    let cursor = Cursor::parse(request.cursor.as_deref())?;
    let key = PageKey {
        base_url: request.api.base_url.clone(),
        kind: request.kind,
        month: m,
        after: cursor.after.clone(),
        page_size: request.page_size,
    };
    let page = match cache.take_odc(|k| k.key == key) {
        Some(kept) => kept,
        None => search(client, auth, request, key).await?,
    };
    let what = format!("{} search for {m}", request.kind);
    let from = cursor.skip.min(page.rows.len());
    let to = (from + MAX_RECORDS_PER_PART).min(page.rows.len());
    let mut out = Page::default();
    for i in from..to {
        if let Some(c) = certificate(&page.body[page.rows[i].clone()], request, &what, i, &mut out.warnings)? {
            out.certificates.push(c);
        }
    }
    if to < page.rows.len() {
        out.next_cursor = Some(Cursor { v: 1, after: cursor.after, skip: to }.encode());
        cache.keep_odc(page);
    } else {
        // The header is the only sign of more pages; an empty page ends
        // the month whatever the header says, so a misbehaving server
        // cannot loop us.
        out.next_cursor = page.next.filter(|_| !page.rows.is_empty());
    }
    Ok(out)
}

/// Requests the page `key` names and finds its rows.
async fn search<T: Transport>(
    client: &Client<T>,
    auth: &str,
    request: &PageRequest,
    key: PageKey,
) -> Result<KeptPage, SourceError> {
    let m = request.month;
    let mut url = format!(
        "{}/api/v1/{}/search?from-month={}&from-year={}&to-month={}&to-year={}&size={}",
        request.api.base_url,
        request.kind.as_str(),
        m.month(),
        m.year(),
        m.month(),
        m.year(),
        request.page_size
    );
    if let Some(after) = &key.after {
        url.push_str(&format!("&search-after={}", encode(after)));
    }
    let what = format!("{} search for {m}", request.kind);
    let get = Request::get(url).header("Authorization", auth).header("Accept", "application/json");
    let (response, rows) = crate::fetch_and_keep(client, &get, |response| {
        if response.status != 200 {
            return Err(unexpected(&what, response));
        }
        row_ranges(&response.body, &what)
    })
    .await?;
    let next = response.header("x-next-search-after").map(str::trim).filter(|v| !v.is_empty()).map(str::to_string);
    Ok(KeptPage { key, body: response.body, rows, next })
}

pub(crate) async fn preflight<T: Transport>(
    client: &Client<T>,
    auth: &str,
    api: &Api,
    kind: Kind,
    last_day: Date,
) -> Result<(), SourceError> {
    let url = format!(
        "{}/api/v1/{}/search?from-month={}&from-year={}&to-month={}&to-year={}&size=1",
        api.base_url,
        kind.as_str(),
        last_day.month(),
        last_day.year(),
        last_day.month(),
        last_day.year()
    );
    let response = send(client, auth, url).await?;
    match response.status {
        200 => Ok(()),
        _ => Err(unexpected(&format!("{kind} search"), &response)),
    }
}

async fn send<T: Transport>(client: &Client<T>, auth: &str, url: String) -> Result<Response, SourceError> {
    let request = Request::get(url).header("Authorization", auth).header("Accept", "application/json");
    Ok(client.send(&request).await?)
}

#[derive(Deserialize)]
struct OdcPage<'a> {
    #[serde(borrow)]
    rows: Vec<&'a RawValue>,
}

/// Where each row of a page lies in its body; no rows for an empty body
/// (ODC's "no results").
fn row_ranges(body: &[u8], what: &str) -> Result<Vec<std::ops::Range<usize>>, SourceError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Vec::new());
    }
    let page: OdcPage = serde_json::from_slice(body).map_err(|e| {
        SourceError::Protocol(format!("{what}: expected {{\"column-names\":…,\"rows\":[…]}} ({e})"))
    })?;
    let base = body.as_ptr() as usize;
    Ok(page
        .rows
        .iter()
        .map(|raw| {
            let start = raw.get().as_ptr() as usize - base;
            start..start + raw.get().len()
        })
        .collect())
}

/// The fields a row must carry, read without building the whole row.
#[derive(Deserialize)]
struct Keys<'a> {
    #[serde(rename = "lmk-key", borrow)]
    lmk_key: Option<std::borrow::Cow<'a, str>>,
    #[serde(rename = "lodgement-date", borrow)]
    lodgement_date: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow, default)]
    uprn: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow, default)]
    postcode: Option<std::borrow::Cow<'a, str>>,
}

/// Row `i` of a page as a certificate, or `None` (with a warning) for a row
/// that belongs to no part of this month.
fn certificate(
    row: &[u8],
    request: &PageRequest,
    what: &str,
    i: usize,
    warnings: &mut Vec<String>,
) -> Result<Option<Certificate>, SourceError> {
    // The body was parsed whole when it arrived: a row is valid JSON text.
    let text = std::str::from_utf8(row)
        .map_err(|e| SourceError::Protocol(format!("{what}: row {} is not UTF-8 ({e})", i + 1)))?;
    let keys: Keys = serde_json::from_str(text)
        .map_err(|e| SourceError::Protocol(format!("{what}: row {} is not an object of strings ({e})", i + 1)))?;
    let (Some(id), Some(date)) = (keys.lmk_key, keys.lodgement_date) else {
        return Err(SourceError::Protocol(format!("{what}: row {} has no lmk-key or lodgement-date", i + 1)));
    };
    let day = date.get(..10).unwrap_or("");
    let in_month = day.parse::<Date>().is_ok_and(|d| request.month.contains(d));
    if id.trim().is_empty() || !in_month {
        // Landing it would put it in the wrong month's partition.
        warnings.push(format!("{what}: skipped row {} (lmk-key {id:?}, lodgement-date {date:?})", i + 1));
        return Ok(None);
    }
    Ok(Some(Certificate {
        id: id.trim().to_string(),
        lodgement_date: day.to_string(),
        uprn: keys.uprn.map(|u| u.trim().to_string()).filter(|u| !u.is_empty()),
        postcode: keys.postcode.map(|p| p.trim().to_string()).filter(|p| !p.is_empty()),
        document: epc_model::one_line(text).into_owned(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_keep_the_api_token_at_page_boundaries() {
        let plain = Cursor::parse(Some("1609459200000,abc")).unwrap();
        assert_eq!(plain, Cursor { v: 1, after: Some("1609459200000,abc".into()), skip: 0 });
        assert_eq!(plain.encode(), "1609459200000,abc");
        let inside = Cursor { skip: 250, ..plain };
        let text = inside.encode();
        assert_eq!(text, r#"{"v":1,"after":"1609459200000,abc","skip":250}"#);
        assert_eq!(Cursor::parse(Some(&text)).unwrap(), inside);
        let first = Cursor { v: 1, after: None, skip: 500 };
        assert_eq!(Cursor::parse(Some(&first.encode())).unwrap(), first);
        assert!(Cursor::parse(Some(r#"{"v":1,"skip":"x"}"#)).is_err());
    }

    #[test]
    fn rows_are_found_where_they_lie() {
        let body = br#"{"column-names":["a"],"rows":[{"lmk-key":"1"} , {"lmk-key":"2","x":"]"}]}"#;
        let rows = row_ranges(body, "w").unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(&body[rows[1].clone()], br#"{"lmk-key":"2","x":"]"}"#);
        assert!(row_ranges(b"  \n", "w").unwrap().is_empty());
        assert!(row_ranges(b"{\"rows\":[", "w").is_err());
    }
}
