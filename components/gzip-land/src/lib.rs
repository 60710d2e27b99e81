//! Component `gzip-land`: the landing store's only writer.
//!
//! A thin shell over the [`landing`] protocol: it opens the store named by
//! configuration (a folder, or `gs://BUCKET[/PREFIX]` through
//! [`landing::GcsStore`] on wasi-http) and converts between the WIT records
//! and the library.

wit_bindgen::generate!({
    world: "dame:gzip-land/gzip-land",
    path: ["../../wit", "wit"],
    with: {
        "dame:epc/types@0.1.0": epc_bindings::types,
        "wasi:config/store@0.2.0-draft-2024-09-27": epc_bindings::config_store,
    },
});

use epc_bindings::{landing_error as error, types};
use epc_model::{Dataset, LoadMarker, Month, MonthState as State, MonthStatus as Status};
use exports::dame::epc::landing::{Guest, Lease, LoadRecord, MonthState, MonthStatus, PageInfo, Part};
use http_client::wasi::WasiTransport;
use landing::{AnyStore, Landing, LandingError};
use std::cell::OnceCell;
use std::rc::Rc;

struct GzipLand;

type Store = AnyStore<WasiTransport>;

thread_local! {
    /// The store, opened on the first call and kept for the instance's
    /// life: a bucket's access token is then fetched once, not per page.
    static LANDING: OnceCell<Rc<Landing<Store>>> = const { OnceCell::new() };
}

/// The store named by the `landing` setting, or else by `bucket`.
fn landing() -> Result<Rc<Landing<Store>>, types::Error> {
    if let Some(l) = LANDING.with(|c| c.get().cloned()) {
        return Ok(l);
    }
    let l = Rc::new(Landing::new(epc_bindings::landing_store()?));
    LANDING.with(|c| c.set(l.clone()).ok());
    Ok(l)
}


fn month(m: types::Month) -> Result<Month, types::Error> {
    Ok(m.try_into()?)
}

fn state(s: State) -> MonthState {
    MonthState {
        dataset: s.dataset.into(),
        month: s.month.into(),
        status: match s.status {
            Status::Empty => MonthStatus::Empty,
            Status::Partial => MonthStatus::Partial,
            Status::Landed => MonthStatus::Landed,
            Status::NoData => MonthStatus::NoData,
            Status::Failed => MonthStatus::Failed,
            Status::Loaded => MonthStatus::Loaded,
        },
        source: s.source.map(Into::into),
        parts: s.parts,
        rows: s.rows,
        bytes: s.bytes,
        reported: s.reported,
        resume_cursor: s.resume_cursor,
        error: s.error,
        load: s.load.map(|l| LoadRecord { job_id: l.job_id, rows: l.rows, loaded_at: l.loaded_at }),
        origin: s.origin,
        revision: s.revision,
    }
}

fn block_on<T>(f: impl std::future::Future<Output = Result<T, LandingError>>) -> Result<T, types::Error> {
    wstd::runtime::block_on(f).map_err(error)
}

impl Guest for GzipLand {
    fn open_month(source: types::Source, dataset: types::Dataset, m: types::Month) -> Result<MonthState, types::Error> {
        let (l, m) = (landing()?, month(m)?);
        block_on(l.open_month(source.into(), dataset.into(), m)).map(state)
    }

    fn land_page(
        dataset: types::Dataset,
        m: types::Month,
        number: u32,
        records: Vec<types::Certificate>,
        info: PageInfo,
    ) -> Result<Part, types::Error> {
        let (l, m) = (landing()?, month(m)?);
        let records: Vec<epc_model::Certificate> = records.into_iter().map(Into::into).collect();
        let page = landing::PageInfo {
            next_cursor: info.next_cursor,
            reported: info.reported,
            requests: info.stats.requests,
            retries: info.stats.retries,
            fetched_bytes: info.stats.bytes,
            origin: None,
        };
        let ds: Dataset = dataset.into();
        let c = block_on(l.land_page(info.source.into(), ds, m, number, &records, page))?;
        Ok(Part { number: c.part, object: c.object, rows: c.rows, bytes: c.bytes })
    }

    fn finish_month(source: types::Source, dataset: types::Dataset, m: types::Month) -> Result<MonthState, types::Error> {
        let (l, m) = (landing()?, month(m)?);
        block_on(l.finish_month(source.into(), dataset.into(), m)).map(state)
    }

    fn fail_month(dataset: types::Dataset, m: types::Month, reason: String) -> Result<(), types::Error> {
        let (l, m) = (landing()?, month(m)?);
        block_on(l.fail_month(dataset.into(), m, &reason))
    }

    fn record_load(dataset: types::Dataset, m: types::Month, load: LoadRecord) -> Result<(), types::Error> {
        let (l, m) = (landing()?, month(m)?);
        // The landing step stamps the revision the load is of.
        let marker = LoadMarker { job_id: load.job_id, rows: load.rows, loaded_at: load.loaded_at, revision: 0 };
        block_on(l.record_load(dataset.into(), m, &marker))
    }

    fn read_month(dataset: types::Dataset, m: types::Month) -> Result<MonthState, types::Error> {
        let (l, m) = (landing()?, month(m)?);
        block_on(l.read_month(dataset.into(), m)).map(state)
    }

    fn list_months() -> Result<Vec<MonthState>, types::Error> {
        let l = landing()?;
        block_on(l.list_months()).map(|v| v.into_iter().map(state).collect())
    }

    fn reset_month(dataset: types::Dataset, m: types::Month) -> Result<u32, types::Error> {
        let (l, m) = (landing()?, month(m)?);
        block_on(l.reset_month(dataset.into(), m))
    }

    fn day_counts(dataset: types::Dataset, m: types::Month) -> Result<Option<Vec<(String, u32)>>, types::Error> {
        let (l, m) = (landing()?, month(m)?);
        block_on(l.day_counts(dataset.into(), m)).map(|o| o.map(|c| c.into_iter().collect()))
    }

    fn landed_ids(dataset: types::Dataset, m: types::Month, days: Vec<String>) -> Result<Vec<String>, types::Error> {
        let (l, m) = (landing()?, month(m)?);
        let days = days.into_iter().collect();
        block_on(l.landed_ids(dataset.into(), m, &days)).map(|ids| ids.into_iter().collect())
    }

    fn land_events(start: String, end: String, events: Vec<types::Delta>) -> Result<u32, types::Error> {
        let l = landing()?;
        let events: Vec<_> = events.into_iter().map(|e| (e.certificate_number, e.event, e.uprn, e.timestamp)).collect();
        block_on(l.land_events(&start, &end, &events))
    }

    fn events_through() -> Result<Option<String>, types::Error> {
        block_on(landing()?.events_through())
    }

    fn event_objects() -> Result<Vec<String>, types::Error> {
        block_on(landing()?.event_objects())
    }

    fn acquire_lease(holder: String, ttl_seconds: u32, stale_holder: Option<String>) -> Result<Lease, types::Error> {
        let l = landing()?;
        block_on(l.acquire_lease(&holder, seconds(ttl_seconds), GzipLand::now(), stale_holder.as_deref())).map(lease_out)
    }

    fn read_lease() -> Result<Option<Lease>, types::Error> {
        let l = landing()?;
        block_on(l.read_lease()).map(|o| o.map(lease_out))
    }

    fn renew_lease(lease: Lease, ttl_seconds: u32) -> Result<Lease, types::Error> {
        let l = landing()?;
        let lease = lease_in(lease)?;
        block_on(l.renew_lease(&lease, seconds(ttl_seconds), GzipLand::now())).map(lease_out)
    }

    fn release_lease(lease: Lease) -> Result<(), types::Error> {
        let l = landing()?;
        let lease = lease_in(lease)?;
        block_on(l.release_lease(&lease, GzipLand::now()))
    }

    fn record_run(day: String, finished: bool, summary: String) -> Result<(), types::Error> {
        let l = landing()?;
        block_on(l.record_run(&day, finished, &summary, GzipLand::now()))
    }

    fn run_finished(day: String) -> Result<Option<bool>, types::Error> {
        let l = landing()?;
        block_on(l.run_record(&day)).map(|r| r.map(|r| r.finished))
    }
}

fn lease_out(l: landing::Lease) -> Lease {
    Lease { number: l.number, holder: l.holder, expires_at: l.expires_at.to_string(), taken_over_from: l.taken_over_from }
}

fn lease_in(l: Lease) -> Result<landing::Lease, types::Error> {
    let expires_at = l
        .expires_at
        .parse()
        .map_err(|_| types::Error::InvalidInput(format!("lease expiry '{}' is not an RFC 3339 time", l.expires_at)))?;
    Ok(landing::Lease { number: l.number, holder: l.holder, expires_at, taken_over_from: l.taken_over_from })
}

fn seconds(n: u32) -> std::time::Duration {
    std::time::Duration::from_secs(n as u64)
}

impl GzipLand {
    fn now() -> jiff::Timestamp {
        jiff::Timestamp::now()
    }
}

export!(GzipLand);
