use crate::dame::epc::{fetch_page, landing, load, recs, views};
use crate::exports::dame::epc::pipeline::{MonthReport, Options, Outcome, Report};
use crate::log;
use epc_bindings::types::{self, Counters, Error};
use epc_model::{Dataset, Month, MonthRange, Source};
use serde_json::json;
use std::time::Instant;

/// Today in London, where the API's days begin and end.
pub fn london_today() -> jiff::civil::Date {
    jiff::Timestamp::now().in_tz("Europe/London").expect("bundled time-zone data has London").date()
}

/// Runs the job. Bad input, refused credentials and an unreachable API stop
/// it before anything is written; after that, a month that fails is recorded
/// as failed and the run goes on to the next.
pub fn run(options: &Options, today: jiff::civil::Date) -> Result<Report, Error> {
    let range = MonthRange::new(options.start.try_into()?, options.end.try_into()?, today)?;
    if options.kinds.is_empty() {
        return Err(Error::InvalidInput("no kind given: use domestic, non-domestic or display".into()));
    }
    let last_day = today.yesterday().expect("dates stay in range").to_string();
    let source: Source = options.api.source.into();
    let months: Vec<Month> = range.iter().collect();
    log::info(
        "plan",
        json!({"source": source.as_str(), "kinds": options.kinds.iter().map(|k| epc_model::Kind::from(*k).as_str()).collect::<Vec<_>>(),
               "start": range.start.to_string(), "end": range.end.to_string(), "months": months.len(),
               "certificates": options.certificates, "recommendations": options.recommendations,
               "load": options.load, "views": options.views}),
    );
    if options.certificates {
        fetch_page::preflight(&options.api, options.kinds[0], &last_day).inspect_err(|e| {
            log::error("preflight", json!({"step": "preflight", "reason": e.to_string()}));
        })?;
    }
    let mut report = Report { months: Vec::new() };
    for &kind in &options.kinds {
        for &month in &months {
            let certificates = Dataset::certificates(kind.into());
            if options.certificates {
                let r = fetch_month(options, certificates, month, &last_day)?;
                let failed = r.outcome == Outcome::Failed;
                report.months.push(r);
                if failed {
                    continue;
                }
            }
            if options.recommendations {
                report.months.push(recs_month(options, kind, month)?);
            }
            if options.load {
                let sets = [Some(certificates), options.recommendations.then(|| Dataset::recommendations(kind.into()))];
                for ds in sets.into_iter().flatten() {
                    // Only a month landed since its last load is loaded: a
                    // loaded month is current, and a month with no data
                    // must not empty what the warehouse holds.
                    let state = landing::read_month(ds.into(), month.into())?;
                    if state.status == landing::MonthStatus::Landed {
                        report.months.push(load_month(ds, month)?);
                    }
                }
            }
        }
    }
    if options.views {
        apply_views()?;
    }
    Ok(report)
}

fn add(total: &mut Counters, c: &Counters) {
    total.requests += c.requests;
    total.retries += c.retries;
    total.bytes += c.bytes;
}

fn fields(ds: Dataset, month: Month) -> serde_json::Value {
    json!({"dataset": ds.name(), "kind": ds.kind.as_str(), "month": month.to_string()})
}

fn merge(mut a: serde_json::Value, b: serde_json::Value) -> serde_json::Value {
    if let (Some(a), serde_json::Value::Object(b)) = (a.as_object_mut(), b) {
        a.extend(b);
    }
    a
}

/// Errors that no other month can get past: stop the run.
fn fatal(e: &Error) -> bool {
    matches!(e, Error::Unauthorized(_) | Error::InvalidInput(_))
}

/// Fetches and lands one month from its last checkpoint to its end.
fn fetch_month(options: &Options, ds: Dataset, month: Month, last_day: &str) -> Result<MonthReport, Error> {
    let started = Instant::now();
    let wds: types::Dataset = ds.into();
    let wmonth: types::Month = month.into();
    let mut stats = Counters { requests: 0, retries: 0, bytes: 0 };
    let mut report = MonthReport {
        dataset: wds,
        month: wmonth,
        outcome: Outcome::Landed,
        rows: 0,
        pages: 0,
        bytes: 0,
        requests: 0,
        retries: 0,
        millis: 0,
        message: None,
    };
    let result = (|| -> Result<Outcome, Error> {
        let state = landing::open_month(options.api.source, wds, wmonth)?;
        if matches!(state.status, landing::MonthStatus::Landed | landing::MonthStatus::NoData | landing::MonthStatus::Loaded) {
            report.rows = state.rows;
            report.pages = state.parts;
            report.bytes = state.bytes;
            return Ok(Outcome::Skipped);
        }
        log::info("month-start", merge(fields(ds, month), json!({"step": "fetch", "resume_part": state.parts, "rows_so_far": state.rows})));
        let mut part = state.parts;
        let mut cursor = state.resume_cursor;
        let mut done = state.parts > 0 && cursor.is_none();
        // What the API reported for windows whose certificates all vanished
        // before they could be fetched: carried into the next checkpoint.
        let mut carried = 0;
        while !done {
            let page = fetch_page::fetch(&fetch_page::PageRequest {
                api: options.api.clone(),
                kind: ds.kind.into(),
                month: wmonth,
                cursor: cursor.clone(),
                page_size: options.page_size,
                last_day: last_day.to_string(),
            })?;
            add(&mut stats, &page.stats);
            for w in &page.warnings {
                log::warn("warning", merge(fields(ds, month), json!({"step": "fetch", "message": w})));
            }
            done = page.next_cursor.is_none();
            if page.certificates.is_empty() {
                carried += page.reported;
                if cursor == page.next_cursor && !done {
                    return Err(Error::Protocol("the API returned an empty page that does not move on".into()));
                }
                cursor = page.next_cursor;
                continue;
            }
            part += 1;
            let rows = page.certificates.len() as u64;
            let landed = landing::land_page(
                wds,
                wmonth,
                part,
                &page.certificates,
                &landing::PageInfo {
                    source: options.api.source,
                    next_cursor: page.next_cursor.clone(),
                    reported: page.reported + std::mem::take(&mut carried),
                    stats: page.stats,
                },
            )?;
            report.rows += rows;
            report.pages += 1;
            report.bytes += landed.bytes;
            log::info(
                "page",
                merge(fields(ds, month), json!({"step": "land", "part": part, "rows": rows, "bytes": landed.bytes,
                    "object": landed.object, "requests": page.stats.requests, "retries": page.stats.retries})),
            );
            cursor = page.next_cursor;
        }
        let state = landing::finish_month(options.api.source, wds, wmonth)?;
        Ok(if state.status == landing::MonthStatus::NoData { Outcome::NoData } else { Outcome::Landed })
    })();
    report.requests = stats.requests;
    report.retries = stats.retries;
    report.millis = started.elapsed().as_millis() as u64;
    match result {
        Ok(outcome) => {
            report.outcome = outcome;
            log::info(
                "month",
                merge(fields(ds, month), json!({"step": "fetch", "outcome": outcome_name(outcome), "rows": report.rows,
                    "pages": report.pages, "bytes": report.bytes, "requests": report.requests,
                    "retries": report.retries, "seconds": report.millis as f64 / 1000.0})),
            );
            Ok(report)
        }
        Err(e) => {
            let reason = e.to_string();
            log::error(
                "month",
                merge(fields(ds, month), json!({"step": "fetch", "outcome": "failed", "reason": reason,
                    "rows": report.rows, "pages": report.pages, "requests": report.requests,
                    "retries": report.retries, "seconds": report.millis as f64 / 1000.0})),
            );
            if let Err(record) = landing::fail_month(wds, wmonth, &reason) {
                log::error("fail-month", merge(fields(ds, month), json!({"step": "fail-month", "reason": record.to_string()})));
            }
            if fatal(&e) {
                return Err(e);
            }
            report.outcome = Outcome::Failed;
            report.message = Some(reason);
            Ok(report)
        }
    }
}

fn recs_month(options: &Options, kind: types::Kind, month: Month) -> Result<MonthReport, Error> {
    let started = Instant::now();
    let ds = Dataset::recommendations(kind.into());
    let r = recs::fetch_recs(&options.api, kind, month.into());
    step_report(ds, month, started, r.map(|o| (o.recommendations, o.stats)), "recs")
}

fn load_month(ds: Dataset, month: Month) -> Result<MonthReport, Error> {
    let started = Instant::now();
    let r = load::load_month(ds.into(), month.into()).and_then(|loaded| {
        let record = landing::LoadRecord {
            job_id: loaded.job_id,
            rows: loaded.rows,
            loaded_at: jiff::Timestamp::now().round(jiff::Unit::Second).expect("rounds").to_string(),
        };
        landing::record_load(ds.into(), month.into(), &record)?;
        Ok((loaded.rows, Counters { requests: 0, retries: 0, bytes: 0 }))
    });
    step_report(ds, month, started, r, "load")
}

/// The report of a month-level step other than fetching.
fn step_report(
    ds: Dataset,
    month: Month,
    started: Instant,
    result: Result<(u64, Counters), Error>,
    step: &str,
) -> Result<MonthReport, Error> {
    let millis = started.elapsed().as_millis() as u64;
    let (outcome, rows, stats, message) = match result {
        Ok((rows, stats)) => (if step == "load" { Outcome::Loaded } else { Outcome::Landed }, rows, stats, None),
        Err(e) if fatal(&e) => return Err(e),
        Err(e) => (Outcome::Failed, 0, Counters { requests: 0, retries: 0, bytes: 0 }, Some(e.to_string())),
    };
    let level = if message.is_some() { "ERROR" } else { "INFO" };
    log::emit(
        level,
        "month",
        merge(fields(ds, month), json!({"step": step, "outcome": outcome_name(outcome), "rows": rows,
            "requests": stats.requests, "retries": stats.retries, "seconds": millis as f64 / 1000.0,
            "reason": message})),
    );
    Ok(MonthReport {
        dataset: ds.into(),
        month: month.into(),
        outcome,
        rows,
        pages: 0,
        bytes: stats.bytes,
        requests: stats.requests,
        retries: stats.retries,
        millis,
        message,
    })
}

fn apply_views() -> Result<(), Error> {
    let outcomes = views::apply_views()?;
    for o in &outcomes {
        let level = if o.ok { "INFO" } else { "ERROR" };
        log::emit(level, "view", json!({"step": "views", "file": o.file, "ok": o.ok, "message": o.message}));
    }
    Ok(())
}

fn outcome_name(o: Outcome) -> &'static str {
    match o {
        Outcome::Landed => "landed",
        Outcome::NoData => "no-data",
        Outcome::Skipped => "skipped",
        Outcome::Loaded => "loaded",
        Outcome::Failed => "failed",
    }
}
