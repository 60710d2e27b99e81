//! The pipeline's fetch → land path for one kind and month, compiled
//! natively: the same [`epc_source`] and [`landing`] code the `fetch-page`
//! and `gzip-land` components run, driven as `components/pipeline/src/run.rs`
//! drives them (preflight, lease, open the month, page by page fetch then
//! land, finish, release), over a native async transport that makes the
//! same requests with the same concurrency as wasi-http does in the host.
//!
//! It exists for `dame bench`: the WASM/native ratio is the cost of running
//! the components in wasmtime instead of as native code, on the same
//! records and the same requests.

mod transport;

pub use transport::HyperTransport;

use epc_model::{Dataset, Kind, Month};
use epc_source::{Api, Credentials, PageRequest};
use http_client::{Client, Transport};
use landing::{FsStore, Landing, PageInfo};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// One month of one kind to fetch and land into a folder.
#[derive(Debug, Clone)]
pub struct MonthJob {
    pub api: Api,
    pub credentials: Credentials,
    pub kind: Kind,
    pub month: Month,
    pub page_size: u32,
    /// The last day the API serves (yesterday).
    pub last_day: jiff::civil::Date,
    pub landing: PathBuf,
}

/// What a month cost.
#[derive(Debug, Clone, Default)]
pub struct MonthOutcome {
    pub rows: u64,
    pub pages: u32,
    /// Compressed bytes landed.
    pub bytes: u64,
    pub requests: u64,
    pub retries: u64,
    /// Time spent in fetching pages (epc-source) and in landing them.
    pub fetch: Duration,
    pub land: Duration,
}

/// Fetches and lands the month from its last checkpoint to its end.
pub async fn run_month<T: Transport>(client: &Client<T>, job: &MonthJob) -> Result<MonthOutcome, String> {
    let source = job.api.source;
    let dataset = Dataset::certificates(job.kind);
    let landing = Landing::new(FsStore::new(&job.landing));
    epc_source::preflight(client, &job.credentials, &job.api, job.kind, job.last_day).await.map_err(|e| e.to_string())?;
    let holder = format!("native-pipeline (pid {})", std::process::id());
    let lease = landing
        .acquire_lease(&holder, Duration::from_secs(600), jiff::Timestamp::now(), None)
        .await
        .map_err(|e| e.to_string())?;
    let state = landing.open_month(source, dataset, job.month).await.map_err(|e| e.to_string())?;
    let mut out = MonthOutcome::default();
    let mut part = state.parts;
    let mut done = state.is_complete() || (state.parts > 0 && state.resume_cursor.is_none());
    let mut cursor = state.resume_cursor;
    let mut carried = 0;
    let windows = epc_source::WindowCache::new();
    while !done {
        let started = Instant::now();
        let (r0, t0, _) = client.counters().snapshot();
        let request = PageRequest {
            api: job.api.clone(),
            kind: job.kind,
            month: job.month,
            cursor: cursor.clone(),
            page_size: job.page_size,
            last_day: job.last_day,
        };
        let page = epc_source::fetch_page_with(client, &job.credentials, &request, &windows).await.map_err(|e| e.to_string())?;
        let (r1, t1, b1) = client.counters().snapshot();
        out.fetch += started.elapsed();
        done = page.next_cursor.is_none();
        if page.certificates.is_empty() {
            carried += page.reported;
            if cursor == page.next_cursor && !done {
                return Err("the API returned an empty page that does not move on".into());
            }
            cursor = page.next_cursor;
            continue;
        }
        part += 1;
        let started = Instant::now();
        let info = PageInfo {
            next_cursor: page.next_cursor.clone(),
            reported: page.reported + std::mem::take(&mut carried),
            requests: (r1 - r0) as u32,
            retries: (t1 - t0) as u32,
            fetched_bytes: b1,
            origin: None,
        };
        let landed = landing
            .land_page(source, dataset, job.month, part, &page.certificates, info)
            .await
            .map_err(|e| e.to_string())?;
        out.land += started.elapsed();
        out.rows += landed.rows as u64;
        out.pages += 1;
        out.bytes += landed.bytes;
        cursor = page.next_cursor;
    }
    landing.finish_month(source, dataset, job.month).await.map_err(|e| e.to_string())?;
    landing.release_lease(&lease, jiff::Timestamp::now()).await.map_err(|e| e.to_string())?;
    let (requests, retries, _) = client.counters().snapshot();
    out.requests = requests;
    out.retries = retries;
    Ok(out)
}
