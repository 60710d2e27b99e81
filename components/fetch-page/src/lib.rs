//! Component `fetch-page`: one page of one kind and month from an EPC API.
//!
//! A thin shell over [`epc_source`]: it reads the credentials from
//! configuration, runs the request on wasi-http and converts between the
//! WIT records and the library's types.

wit_bindgen::generate!({
    world: "dame:fetch-page/fetch-page",
    path: ["../../wit", "wit"],
    with: {
        "dame:epc/types@0.1.0": epc_bindings::types,
        "wasi:config/store@0.2.0-draft-2024-09-27": epc_bindings::config_store,
    },
});

use epc_bindings::{config, types};
use epc_source::{Api, Credentials, SourceError};
use exports::dame::epc::fetch_page::{Guest, Page, PageRequest};
use http_client::Client;
use http_client::wasi::WasiTransport;

struct FetchPage;

fn error(e: SourceError) -> types::Error {
    match e {
        SourceError::InvalidInput(m) => types::Error::InvalidInput(m),
        SourceError::Unauthorized(m) => types::Error::Unauthorized(m),
        SourceError::Unavailable(m) => types::Error::Unavailable(m),
        SourceError::Protocol(m) => types::Error::Protocol(m),
    }
}

fn api(a: types::Api) -> Result<Api, types::Error> {
    Api::new(a.source.into(), &a.base_url).map_err(error)
}

thread_local! {
    /// Secrets read from Secret Manager, kept for the instance's life: one
    /// read per run, not one per page.
    static SECRETS: std::cell::RefCell<std::collections::BTreeMap<String, String>> = Default::default();
}

/// A credential: from Secret Manager when `{key}_secret` names a secret
/// version (production), else the value of `{key}` (development).
fn credential(key: &str) -> Result<Option<String>, types::Error> {
    let Some(name) = config(&format!("{key}_secret"))? else {
        return config(key);
    };
    if let Some(v) = SECRETS.with(|s| s.borrow().get(&name).cloned()) {
        return Ok(Some(v));
    }
    let auth = google_auth::Auth::from_settings(
        config(google_auth::CONFIG_ACCESS_TOKEN)?,
        config(google_auth::CONFIG_CREDENTIALS_JSON)?,
    )
    .map_err(|e| types::Error::Unauthorized(e.to_string()))?;
    let base = config("secret_manager_url")?;
    let value = wstd::runtime::block_on(async {
        let client = Client::new(WasiTransport::default());
        google_auth::access_secret(&client, &auth, &name, base.as_deref()).await
    })
    .map_err(|e| types::Error::Unauthorized(format!("{key}: {e}")))?
    .expose()
    .to_string();
    SECRETS.with(|s| s.borrow_mut().insert(name, value.clone()));
    Ok(Some(value))
}

fn credentials(source: epc_model::Source) -> Result<Credentials, types::Error> {
    Credentials::for_source(source, credential("epc_token")?, credential("epc_email")?, credential("epc_api_key")?)
        .map_err(error)
}

thread_local! {
    /// One client for the instance's life, so its request budget spans
    /// every page of the run (and connections' state lives as long).
    static CLIENT: std::cell::OnceCell<std::rc::Rc<Client<WasiTransport>>> = const { std::cell::OnceCell::new() };
}

/// The client, with the request budget from `request_budget` (`N/Ds`), by
/// default just under GEPBD's 6,000 requests per 5 minutes.
fn client() -> Result<std::rc::Rc<Client<WasiTransport>>, types::Error> {
    if let Some(c) = CLIENT.with(|c| c.get().cloned()) {
        return Ok(c);
    }
    let budget = match config("request_budget")? {
        Some(spec) => http_client::RequestBudget::parse(&spec).map_err(types::Error::InvalidInput)?,
        None => http_client::RequestBudget::gepbd_default(),
    };
    let c = std::rc::Rc::new(Client::new(WasiTransport::default()).with_budget(budget));
    CLIENT.with(|cell| cell.set(c.clone()).ok());
    Ok(c)
}

fn day(s: &str) -> Result<jiff::civil::Date, types::Error> {
    s.parse().map_err(|_| types::Error::InvalidInput(format!("last day '{s}' is not a date (YYYY-MM-DD)")))
}

/// The library's page as the WIT record, with this call's counters.
fn page_out(page: epc_source::Page, client: &Client<WasiTransport>, before: (u64, u64, u64)) -> Page {
    let (r1, t1, b1) = client.counters().snapshot();
    let (requests, retries, bytes) = (r1 - before.0, t1 - before.1, b1 - before.2);
    let mut warnings = page.warnings;
    if retries > 0 {
        if let Some(reasons) = client.counters().take_retry_reasons() {
            warnings.push(format!("retried {retries} request(s): {reasons}"));
        }
    }
    Page {
        certificates: page.certificates.into_iter().map(Into::into).collect(),
        next_cursor: page.next_cursor,
        reported: page.reported,
        stats: types::Counters { requests: requests as u32, retries: retries as u32, bytes },
        warnings,
    }
}

fn page_request(request: PageRequest) -> Result<epc_source::PageRequest, types::Error> {
    Ok(epc_source::PageRequest {
        api: api(request.api)?,
        kind: request.kind.into(),
        month: request.month.try_into()?,
        cursor: request.cursor,
        page_size: request.page_size,
        last_day: day(&request.last_day)?,
    })
}

impl Guest for FetchPage {
    fn day_totals(a: types::Api, kind: types::Kind, m: types::Month, last_day: String) -> Result<Vec<(String, u64)>, types::Error> {
        let request = page_request(PageRequest { api: a, kind, month: m, cursor: None, page_size: 1, last_day })?;
        let credentials = credentials(request.api.source)?;
        let client = client()?;
        let totals = wstd::runtime::block_on(epc_source::day_totals(&client, &credentials, &request)).map_err(error)?;
        Ok(totals.into_iter().map(|(d, n)| (d.to_string(), n)).collect())
    }

    fn fetch_days(request: PageRequest, days: Vec<String>, exclude: Vec<String>) -> Result<Page, types::Error> {
        let request = page_request(request)?;
        let credentials = credentials(request.api.source)?;
        let days = days.iter().map(|d| day(d)).collect::<Result<Vec<_>, _>>()?;
        let exclude = exclude.into_iter().collect();
        let client = client()?;
        let before = client.counters().snapshot();
        let page = wstd::runtime::block_on(epc_source::fetch_days(&client, &credentials, &request, &days, &exclude)).map_err(error)?;
        Ok(page_out(page, &client, before))
    }

    fn deltas(a: types::Api, start: String, end: String) -> Result<Vec<types::Delta>, types::Error> {
        let api = api(a)?;
        let credentials = credentials(api.source)?;
        let (start, end) = (day(&start)?, day(&end)?);
        let client = client()?;
        let deltas = wstd::runtime::block_on(epc_source::deltas(&client, &credentials, &api, start, end)).map_err(error)?;
        Ok(deltas
            .into_iter()
            .map(|d| {
                let (event, uprn) = match d.change {
                    epc_source::Change::Removed => ("removed".to_string(), None),
                    epc_source::Change::Uprn(u) => ("uprn-changed".to_string(), u),
                };
                types::Delta { certificate_number: d.certificate_number, event, uprn, timestamp: d.timestamp }
            })
            .collect())
    }

    fn preflight(a: types::Api, kind: types::Kind, last_day: String) -> Result<(), types::Error> {
        let api = api(a)?;
        let credentials = credentials(api.source)?;
        let last_day = day(&last_day)?;
        let client = client()?;
        wstd::runtime::block_on(async {
            epc_source::preflight(&client, &credentials, &api, kind.into(), last_day).await.map_err(error)
        })
    }

    fn fetch(request: PageRequest) -> Result<Page, types::Error> {
        let request = page_request(request)?;
        let credentials = credentials(request.api.source)?;
        let client = client()?;
        let before = client.counters().snapshot();
        let page = wstd::runtime::block_on(epc_source::fetch_page(&client, &credentials, &request)).map_err(error)?;
        Ok(page_out(page, &client, before))
    }
}

export!(FetchPage);
