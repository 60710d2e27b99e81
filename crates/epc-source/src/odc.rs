//! The retired Open Data Communities API (v1).
//!
//! One window per month (`from-month`/`to-month`), pages of `size` rows,
//! each page pointing at the next with the `X-Next-Search-After` header; no
//! header means no more pages. No results is a 200 with an empty body.
//! Every value in a row is a string; keys are kebab-case.

use crate::problem::unexpected;
use crate::{Api, Certificate, Page, PageRequest, SourceError, encode};
use base64::Engine;
use epc_model::Kind;
use http_client::{Client, Request, Response, Transport};
use jiff::civil::Date;
use serde::Deserialize;
use serde_json::value::RawValue;

pub(crate) fn basic_auth(email: &str, api_key: &str) -> String {
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{email}:{api_key}")))
}

pub(crate) async fn fetch_page<T: Transport>(
    client: &Client<T>,
    auth: &str,
    request: &PageRequest,
) -> Result<Page, SourceError> {
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
    if let Some(after) = &request.cursor {
        url.push_str(&format!("&search-after={}", encode(after)));
    }
    let what = format!("{} search for {m}", request.kind);
    let get = Request::get(url).header("Authorization", auth).header("Accept", "application/json");
    crate::fetch_and_read(client, &get, |response| {
        if response.status != 200 {
            return Err(unexpected(&what, response));
        }
        if response.body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Page::default());
        }
        let mut page = Page::default();
        page.certificates = rows(response, request, &mut page.warnings)?;
        // The header is the only sign of more pages; an empty page ends the
        // month whatever the header says, so a misbehaving server cannot
        // loop us.
        page.next_cursor = response
            .header("x-next-search-after")
            .map(str::trim)
            .filter(|v| !v.is_empty() && !page.certificates.is_empty())
            .map(str::to_string);
        Ok(page)
    })
    .await
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

fn rows(response: &Response, request: &PageRequest, warnings: &mut Vec<String>) -> Result<Vec<Certificate>, SourceError> {
    let what = format!("{} search for {}", request.kind, request.month);
    let page: OdcPage = serde_json::from_slice(&response.body).map_err(|e| {
        SourceError::Protocol(format!("{what}: expected {{\"column-names\":…,\"rows\":[…]}} ({e})"))
    })?;
    let mut out = Vec::with_capacity(page.rows.len());
    for (i, raw) in page.rows.into_iter().enumerate() {
        let keys: Keys = serde_json::from_str(raw.get())
            .map_err(|e| SourceError::Protocol(format!("{what}: row {} is not an object of strings ({e})", i + 1)))?;
        let (Some(id), Some(date)) = (keys.lmk_key, keys.lodgement_date) else {
            return Err(SourceError::Protocol(format!("{what}: row {} has no lmk-key or lodgement-date", i + 1)));
        };
        let day = date.get(..10).unwrap_or("");
        let in_month = day.parse::<Date>().is_ok_and(|d| request.month.contains(d));
        if id.trim().is_empty() || !in_month {
            // Landing it would put it in the wrong month's partition.
            warnings.push(format!("{what}: skipped row {} (lmk-key {id:?}, lodgement-date {date:?})", i + 1));
            continue;
        }
        let text = raw.get();
        out.push(Certificate {
            id: id.trim().to_string(),
            lodgement_date: day.to_string(),
            uprn: keys.uprn.map(|u| u.trim().to_string()).filter(|u| !u.is_empty()),
            postcode: keys.postcode.map(|p| p.trim().to_string()).filter(|p| !p.is_empty()),
            document: epc_model::one_line(text).into_owned(),
        });
    }
    Ok(out)
}
