//! Component `recs`: the recommendations of the certificates already landed.
//!
//! For one kind and month it reads the landed certificates back from the
//! landing store, asks [`epc_source::recs`] for the recommendations of
//! those whose answer is not landed yet, and lands the answers through the
//! same protocol as the certificates ([`landing::Landing`]) under
//! `raw/{kind}-recommendations/{YYYYMM}/`, one line per certificate, a part
//! per batch. A part is the checkpoint: a run that stops resumes after the
//! last landed part and asks only for the certificates not in any part, so
//! nothing is fetched twice. Certificates that arrive late (a new revision
//! of the certificates' month) get their recommendations in new parts and a
//! new revision of this month, which is then loaded again.

wit_bindgen::generate!({
    world: "dame:recs/recs",
    path: ["../../wit", "wit"],
    with: {
        "dame:epc/types@0.1.0": epc_bindings::types,
        "wasi:config/store@0.2.0-draft-2024-09-27": epc_bindings::config_store,
    },
});

use epc_bindings::api::{api, client, credentials, error};
use epc_bindings::{Message, landing_error, landing_store, types};
use epc_model::{Certificate, Dataset, Kind, MAX_RECORDS_PER_PART, Month, MonthStatus};
use exports::dame::epc::recs::{Guest, RecsOutcome};
use landing::{Landing, LandingError, PageInfo};

struct Recs;

/// Malformed answers listed one by one in the outcome's warnings; past
/// this many only their number is given (each is in the log of the run
/// that met it, and the next run meets it again).
const MAX_LISTED: usize = 50;

fn block_on<T>(f: impl std::future::Future<Output = Result<T, LandingError>>) -> Result<T, types::Error> {
    wstd::runtime::block_on(f).map_err(landing_error)
}

/// The error with the kind and month it happened in, for a person reading
/// the run's log.
fn context(kind: Kind, month: Month, e: types::Error) -> types::Error {
    use types::Error as E;
    let c = |m: String| format!("{kind} {month} recommendations: {m}");
    match e {
        E::InvalidInput(m) => E::InvalidInput(c(m)),
        E::Unauthorized(m) => E::Unauthorized(c(m)),
        E::Unavailable(m) => E::Unavailable(c(m)),
        E::Protocol(m) => E::Protocol(c(m)),
        E::Conflict(m) => E::Conflict(c(m)),
        E::Storage(m) => E::Storage(c(m)),
        E::NotAvailable(m) => E::NotAvailable(c(m)),
    }
}

fn fetch(a: types::Api, kind: Kind, month: Month) -> Result<RecsOutcome, types::Error> {
    let api = api(a)?;
    let source = api.source;
    let (certs, recs) = (Dataset::certificates(kind), Dataset::recommendations(kind));
    let landing = Landing::new(landing_store()?);
    let mut outcome = RecsOutcome {
        certificates: 0,
        recommendations: 0,
        stats: types::Counters { requests: 0, retries: 0, bytes: 0 },
        warnings: Vec::new(),
    };
    let cstate = block_on(landing.read_month(certs, month))?;
    match cstate.status {
        MonthStatus::Landed | MonthStatus::Loaded => {}
        MonthStatus::NoData => {
            block_on(landing.finish_month(source, recs, month))?;
            return Ok(outcome);
        }
        other => {
            // Recommendations follow certificates: a month still being
            // landed gets them once it is complete.
            outcome.warnings.push(format!(
                "{kind} {month}: the certificates are {} in the landing store; their recommendations wait until \
                 the month is landed",
                other.as_str()
            ));
            return Ok(outcome);
        }
    }
    if let Some(landed) = cstate.source.filter(|s| *s != source) {
        return Err(types::Error::Storage(format!(
            "the certificates were landed from {landed}, not {source}; recommendations are asked of the source \
             the certificates came from (use --source {landed})"
        )));
    }
    let rstate = block_on(landing.open_month(source, recs, month))?;
    if rstate.is_complete() && rstate.rows >= cstate.rows {
        return Ok(outcome);
    }
    let done = block_on(landing.all_ids(recs, month))?;
    let credentials = credentials(source)?;
    let client = client()?;
    let (r0, t0, b0) = client.counters().snapshot();
    let mut part = rstate.parts;
    let mut malformed = Vec::new();
    for p in 1..=cstate.parts {
        let pending: Vec<Certificate> =
            block_on(landing.part_records(certs, month, p))?.into_iter().filter(|c| !done.contains(&c.id)).collect();
        for batch in pending.chunks(MAX_RECORDS_PER_PART) {
            let before = client.counters().snapshot();
            let answers = wstd::runtime::block_on(epc_source::recs::recommendations(&client, &credentials, &api, kind, batch))
                .map_err(error)?;
            let mut records = Vec::with_capacity(batch.len());
            for (c, answer) in batch.iter().zip(answers) {
                match answer {
                    Ok(r) => {
                        outcome.recommendations += r.items.len() as u64;
                        records.push(Certificate { document: r.document(), ..c.clone() });
                    }
                    Err(problem) => malformed.push(format!("{month}: {problem}")),
                }
            }
            if records.is_empty() {
                continue;
            }
            let after = client.counters().snapshot();
            part += 1;
            let info = PageInfo {
                next_cursor: None,
                reported: 0,
                requests: (after.0 - before.0) as u32,
                retries: (after.1 - before.1) as u32,
                fetched_bytes: after.2 - before.2,
                origin: None,
            };
            block_on(landing.land_page(source, recs, month, part, &records, info))?;
            outcome.certificates += records.len() as u32;
        }
    }
    block_on(landing.finish_month(source, recs, month))?;
    let (r1, t1, b1) = client.counters().snapshot();
    outcome.stats = types::Counters { requests: (r1 - r0) as u32, retries: (t1 - t0) as u32, bytes: b1 - b0 };
    if !malformed.is_empty() {
        outcome.warnings.push(format!(
            "{kind} {month}: {} certificate(s) whose recommendations could not be read were not landed; the next run \
             asks for them again",
            malformed.len()
        ));
        let listed = malformed.len().min(MAX_LISTED);
        outcome.warnings.extend(malformed.drain(..listed));
        if !malformed.is_empty() {
            outcome.warnings.push(format!("{kind} {month}: and {} more", malformed.len()));
        }
    }
    Ok(outcome)
}

/// Records why the month failed; its landed parts stay and are resumed.
/// The marker tells `dame status` why it stopped.
fn record_failure(kind: Kind, month: Month, e: &types::Error) -> Result<(), types::Error> {
    let landing = Landing::new(landing_store()?);
    block_on(landing.fail_month(Dataset::recommendations(kind), month, &e.message()))
}

impl Guest for Recs {
    fn fetch_recs(a: types::Api, kind: types::Kind, m: types::Month) -> Result<RecsOutcome, types::Error> {
        let (kind, month): (Kind, Month) = (kind.into(), m.try_into()?);
        fetch(a, kind, month).map_err(|e| {
            let e = context(kind, month, e);
            match record_failure(kind, month, &e) {
                Ok(()) => e,
                Err(f) => types::Error::Storage(format!("{} (recording the failure failed too: {})", e.message(), f.message())),
            }
        })
    }
}

export!(Recs);
