use crate::dame::epc::{fetch_page, landing, load, recs, views};
use crate::exports::dame::epc::pipeline::{MonthReport, Options, Outcome, Report};
use crate::log;
use epc_bindings::Message;
use epc_bindings::types::{self, Counters, Error};
use epc_model::{Dataset, Month, MonthRange, Source};
use serde_json::json;
use std::time::{Duration, Instant};

/// How long a lease lasts unless renewed; it is renewed well before, so a
/// run holds it as long as it works and a crashed run blocks others for at
/// most this long.
const LEASE_TTL_SECONDS: u32 = 600;
/// Renew once this much of the lease has passed.
const RENEW_AFTER: Duration = Duration::from_secs(LEASE_TTL_SECONDS as u64 / 3);
/// Attempts of a step (a month's fetch, load or recommendations) before it
/// is recorded as failed; each resumes from the last checkpoint.
const STEP_ATTEMPTS: u32 = 3;
/// The first wait between attempts; it doubles.
const STEP_BACKOFF: Duration = Duration::from_secs(2);

/// Today in London, where the API's days begin and end.
pub fn london_today() -> jiff::civil::Date {
    jiff::Timestamp::now().in_tz("Europe/London").expect("bundled time-zone data has London").date()
}

/// The run's lease and time budget, checked before each unit of work.
struct Guard {
    lease: landing::Lease,
    renewed: Instant,
    started: Instant,
    budget: Option<Duration>,
}

/// Why work stops before a unit.
enum Stop {
    /// The time budget is spent: what is left is deferred to the next run.
    Budget,
    /// The lease is lost or could not be renewed: stop at once.
    Lease(Error),
}

impl Guard {
    fn acquire(holder: &str, stale: Option<&str>, budget_seconds: u32) -> Result<Guard, Error> {
        let lease = landing::acquire_lease(holder, LEASE_TTL_SECONDS, stale)?;
        if let Some(previous) = &lease.taken_over_from {
            log::warn(
                "lease",
                json!({"step": "lease", "message": format!("took over an expired lease held by {previous} (expired, or its process is gone)"), "lease": lease.number}),
            );
        }
        log::info("lease", json!({"step": "lease", "holder": lease.holder, "lease": lease.number, "expires_at": lease.expires_at}));
        let now = Instant::now();
        let budget = (budget_seconds > 0).then(|| Duration::from_secs(budget_seconds as u64));
        Ok(Guard { lease, renewed: now, started: now, budget })
    }

    /// Before each unit of work: within budget, and the lease still ours.
    fn check(&mut self) -> Result<(), Stop> {
        if self.budget.is_some_and(|b| self.started.elapsed() >= b) {
            return Err(Stop::Budget);
        }
        if self.renewed.elapsed() >= RENEW_AFTER {
            self.lease = landing::renew_lease(&self.lease, LEASE_TTL_SECONDS).map_err(Stop::Lease)?;
            self.renewed = Instant::now();
        }
        Ok(())
    }

    fn release(self) {
        if let Err(e) = landing::release_lease(&self.lease) {
            log::warn("lease", json!({"step": "lease", "message": format!("could not release the lease: {}", e.message())}));
        }
    }
}

/// Runs the job. Bad input, refused credentials and an unreachable API stop
/// it before anything is written; so does a lease held by another run.
/// After that, a month that fails is recorded as failed and the run goes
/// on; when the time budget is spent, the rest is deferred to the next run.
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
               "load": options.load, "views": options.views, "budget_seconds": options.budget_seconds}),
    );
    if options.certificates {
        fetch_page::preflight(&options.api, options.kinds[0], &last_day).inspect_err(|e| {
            log::error("preflight", json!({"step": "preflight", "reason": e.message()}));
        })?;
    }
    let mut guard = Guard::acquire(&options.holder, options.stale_lease_holder.as_deref(), options.budget_seconds).inspect_err(|e| {
        log::error("lease", json!({"step": "lease", "reason": e.message()}));
    })?;
    let started = Instant::now();
    let outcome = run_months(options, &months, &last_day, &mut guard).and_then(|mut report| {
        if options.certificates && source == Source::Gepbd {
            recheck(options, range.start, &last_day, &mut guard, &mut report)?;
            events(options, range.start, &last_day, &mut guard)?;
        }
        if options.views {
            match guard.check() {
                // Views failing leave the data loaded: report, do not fail the run.
                Ok(()) => {
                    if let Err(e) = apply_views() {
                        log::error("views", json!({"step": "views", "reason": e.message()}));
                    }
                }
                Err(Stop::Budget) => log::info("views", json!({"step": "views", "outcome": "deferred"})),
                Err(Stop::Lease(e)) => return Err(e),
            }
        }
        Ok(report)
    });
    guard.release();
    let report = outcome?;
    let count = |o: Outcome| report.months.iter().filter(|m| m.outcome == o).count();
    let (failed, deferred) = (count(Outcome::Failed), count(Outcome::Deferred));
    let rows: u64 = report.months.iter().filter(|m| matches!(m.outcome, Outcome::Landed)).map(|m| m.rows).sum();
    let fields = json!({"step": "run", "failed": failed, "deferred": deferred, "rows_landed": rows,
        "seconds": started.elapsed().as_secs_f64(),
        "reason": (failed > 0).then(|| format!("{failed} step(s) failed; the next run resumes them"))});
    // The line a log-based alert matches: level ERROR, event "run".
    log::emit(if failed > 0 { "ERROR" } else { "INFO" }, "run", fields);
    Ok(report)
}

fn run_months(options: &Options, months: &[Month], last_day: &str, guard: &mut Guard) -> Result<Report, Error> {
    let mut report = Report { months: Vec::new() };
    for &kind in &options.kinds {
        for &month in months {
            let certificates = Dataset::certificates(kind.into());
            let mut steps: Vec<(Dataset, &str)> = Vec::new();
            if options.certificates {
                steps.push((certificates, "fetch"));
            }
            if options.recommendations {
                steps.push((Dataset::recommendations(kind.into()), "recs"));
            }
            if options.load {
                steps.push((certificates, "load"));
                if options.recommendations {
                    steps.push((Dataset::recommendations(kind.into()), "load"));
                }
            }
            for (ds, step) in steps {
                match guard.check() {
                    Ok(()) => {}
                    Err(Stop::Budget) => {
                        report.months.push(deferred(ds, month, step));
                        continue;
                    }
                    Err(Stop::Lease(e)) => return Err(e),
                }
                let r = with_retries(ds, month, step, || match step {
                    "fetch" => fetch_month(options, ds, month, last_day, guard),
                    "recs" => recs_month(options, ds, month),
                    _ => load_month(ds, month),
                })?;
                let Some(r) = r else { continue };
                let stop_kind = r.outcome == Outcome::Failed && step != "load";
                report.months.push(r);
                if stop_kind {
                    // A month whose fetch failed is neither loaded nor
                    // given recommendations until a run lands it.
                    break;
                }
            }
        }
    }
    Ok(report)
}

/// Late arrivals: the `recheck_months` months before `start` that are
/// already landed are compared day by day with the API's counts; days the
/// API now holds more for are fetched again, and only certificates not
/// landed yet are added (a new revision of the month, loaded again).
fn recheck(options: &Options, start: Month, last_day: &str, guard: &mut Guard, report: &mut Report) -> Result<(), Error> {
    let mut month = start;
    let mut months = Vec::new();
    for _ in 0..options.recheck_months {
        month = month.prev();
        months.push(month);
    }
    for &kind in &options.kinds {
        let ds = Dataset::certificates(kind.into());
        for &m in months.iter().rev() {
            match guard.check() {
                Ok(()) => {}
                Err(Stop::Budget) => return Ok(()),
                Err(Stop::Lease(e)) => return Err(e),
            }
            let r = with_retries(ds, m, "recheck", || recheck_month(options, ds, m, last_day))?;
            if let Some(r) = r {
                let amended = r.outcome == Outcome::Landed;
                report.months.push(r);
                if amended && options.load {
                    if let Some(l) = with_retries(ds, m, "load", || load_month(ds, m))? {
                        report.months.push(l);
                    }
                }
            }
        }
    }
    Ok(())
}

fn recheck_month(options: &Options, ds: Dataset, month: Month, last_day: &str) -> Result<Option<MonthReport>, Error> {
    let (wds, wmonth) = (types::Dataset::from(ds), types::Month::from(month));
    let state = landing::read_month(wds, wmonth)?;
    if !matches!(state.status, landing::MonthStatus::Landed | landing::MonthStatus::Loaded | landing::MonthStatus::Partial) {
        return Ok(None);
    }
    if state.status == landing::MonthStatus::Partial && state.resume_cursor.is_some() {
        // Still being fetched: the next run's fetch finishes it.
        return Ok(None);
    }
    let started = Instant::now();
    let Some(counts) = landing::day_counts(wds, wmonth)? else {
        log::warn("warning", merge(fields(ds, month), json!({"step": "recheck",
            "message": "landed before daily counts were kept; reset the month to check it for late arrivals"})));
        return Ok(None);
    };
    let counts: std::collections::BTreeMap<String, u32> = counts.into_iter().collect();
    let totals = fetch_page::day_totals(&options.api, ds.kind.into(), wmonth, last_day)?;
    let mut requests = totals.len() as u32;
    let short: Vec<String> = totals
        .iter()
        .filter(|(d, n)| *n > counts.get(d).copied().unwrap_or(0) as u64)
        .map(|(d, _)| d.clone())
        .collect();
    let fewer: Vec<&String> = totals.iter().filter(|(d, n)| *n < counts.get(d).copied().unwrap_or(0) as u64).map(|(d, _)| d).collect();
    if !fewer.is_empty() {
        log::info("recheck", merge(fields(ds, month), json!({"step": "recheck",
            "message": format!("the API now counts fewer certificates on {} day(s) than were landed; removals arrive as change events", fewer.len())})));
    }
    if short.is_empty() && state.status != landing::MonthStatus::Partial {
        log::info("month", merge(fields(ds, month), json!({"step": "recheck", "outcome": "skipped", "rows": 0,
            "requests": requests, "seconds": started.elapsed().as_secs_f64()})));
        return Ok(None);
    }
    let mut exclude = if short.is_empty() { Vec::new() } else { landing::landed_ids(wds, wmonth, &short)? };
    let first_new = state.parts;
    let mut part = state.parts;
    let mut rows = 0u64;
    let mut bytes = 0u64;
    if !short.is_empty() {
        loop {
            let request = fetch_page::PageRequest {
                api: options.api.clone(),
                kind: ds.kind.into(),
                month: wmonth,
                cursor: None,
                page_size: options.page_size,
                last_day: last_day.to_string(),
            };
            let page = fetch_page::fetch_days(&request, &short, &exclude)?;
            requests += page.stats.requests;
            if page.certificates.is_empty() {
                break;
            }
            part += 1;
            exclude.extend(page.certificates.iter().map(|c| c.id.clone()));
            let landed = landing::land_page(wds, wmonth, part, &page.certificates, &landing::PageInfo {
                source: options.api.source,
                next_cursor: None,
                reported: 0,
                stats: page.stats,
            })?;
            rows += page.certificates.len() as u64;
            bytes += landed.bytes;
        }
    }
    let state = landing::finish_month(options.api.source, wds, wmonth)?;
    let millis = started.elapsed().as_millis() as u64;
    log::info("month", merge(fields(ds, month), json!({"step": "recheck", "outcome": "landed", "rows": rows,
        "pages": part - first_new, "bytes": bytes, "requests": requests, "seconds": millis as f64 / 1000.0,
        "message": format!("{rows} late certificate(s) on {} day(s); revision {}", short.len(), state.revision)})));
    Ok(Some(MonthReport {
        dataset: wds,
        month: wmonth,
        outcome: Outcome::Landed,
        rows,
        pages: part - first_new,
        bytes,
        requests,
        retries: 0,
        millis,
        message: Some(format!("late arrivals: revision {}", state.revision)),
    }))
}

/// Change events: reads GEPBD's feed from where the last run stopped
/// (or from `start`) through `last_day`, a month at a time, lands each
/// span, then loads them all when a warehouse is configured.
fn events(options: &Options, start: Month, last_day: &str, guard: &mut Guard) -> Result<(), Error> {
    let last: jiff::civil::Date = last_day.parse().map_err(|_| Error::InvalidInput(format!("bad last day {last_day}")))?;
    let from = match landing::events_through()? {
        Some(t) => t.parse::<jiff::civil::Date>().map_err(|_| Error::Storage(format!("events read through '{t}'?")))?.tomorrow().expect("in range"),
        None => start.first_day(),
    };
    let started = Instant::now();
    let mut total = 0u32;
    let mut day = from;
    while day <= last {
        if let Err(stop) = guard.check() {
            match stop {
                Stop::Budget => break,
                Stop::Lease(e) => return Err(e),
            }
        }
        let end = Month::of(day).last_day().min(last);
        let (s, e) = (day.to_string(), end.to_string());
        let events = match fetch_page::deltas(&options.api, &s, &e) {
            Ok(v) => v,
            Err(err) if !fatal(&err) => {
                log::error("events", json!({"step": "events", "reason": format!("change events {s} to {e}: {}", err.message())}));
                return Ok(());
            }
            Err(err) => return Err(err),
        };
        total += landing::land_events(&s, &e, &events)?;
        day = end.tomorrow().expect("in range");
    }
    let mut loaded = None;
    if options.load {
        match load::load_events() {
            Ok(l) => loaded = Some(l.rows),
            Err(e) => log::error("events", json!({"step": "events-load", "reason": e.message()})),
        }
    }
    log::info("events", json!({"step": "events", "from": from.to_string(), "through": last_day, "events": total,
        "loaded": loaded, "seconds": started.elapsed().as_secs_f64()}));
    Ok(())
}

/// Runs a month-level step up to [`STEP_ATTEMPTS`] times. Errors no retry
/// can fix (bad input, refused credentials) stop the run; others are
/// retried after a growing wait, then reported as the month's failure.
fn with_retries(
    ds: Dataset,
    month: Month,
    step: &str,
    mut attempt: impl FnMut() -> Result<Option<MonthReport>, Error>,
) -> Result<Option<MonthReport>, Error> {
    let mut wait = STEP_BACKOFF;
    for n in 1..=STEP_ATTEMPTS {
        let r = attempt()?;
        match &r {
            Some(m) if m.outcome == Outcome::Failed && n < STEP_ATTEMPTS => {
                log::warn(
                    "retry",
                    merge(fields(ds, month), json!({"step": step, "attempt": n, "message": m.message.clone().unwrap_or_default()})),
                );
                // The timer must be made inside the runtime that polls it.
                wstd::runtime::block_on(async { wstd::task::sleep(wait.into()).await });
                wait *= 2;
            }
            _ => return Ok(r),
        }
    }
    unreachable!("the last attempt returns")
}

fn deferred(ds: Dataset, month: Month, step: &str) -> MonthReport {
    log::info("month", merge(fields(ds, month), json!({"step": step, "outcome": "deferred", "rows": 0,
        "reason_deferred": "the run's time budget is spent; the next run continues here"})));
    MonthReport {
        dataset: ds.into(),
        month: month.into(),
        outcome: Outcome::Deferred,
        rows: 0,
        pages: 0,
        bytes: 0,
        requests: 0,
        retries: 0,
        millis: 0,
        message: Some("time budget spent".into()),
    }
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

/// Fetches and lands one month from its last checkpoint to its end, page by
/// page, checking the budget and the lease before each page.
fn fetch_month(
    options: &Options,
    ds: Dataset,
    month: Month,
    last_day: &str,
    guard: &mut Guard,
) -> Result<Option<MonthReport>, Error> {
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
            match guard.check() {
                Ok(()) => {}
                Err(Stop::Budget) => return Ok(Outcome::Deferred),
                Err(Stop::Lease(e)) => return Err(e),
            }
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
            if outcome == Outcome::Deferred {
                report.message = Some("time budget spent; the next run resumes after the last page".into());
            }
            log::info(
                "month",
                merge(fields(ds, month), json!({"step": "fetch", "outcome": outcome_name(outcome), "rows": report.rows,
                    "pages": report.pages, "bytes": report.bytes, "requests": report.requests,
                    "retries": report.retries, "seconds": report.millis as f64 / 1000.0})),
            );
            Ok(Some(report))
        }
        Err(e) => {
            let reason = e.message();
            log::error(
                "month",
                merge(fields(ds, month), json!({"step": "fetch", "outcome": "failed", "reason": reason,
                    "rows": report.rows, "pages": report.pages, "requests": report.requests,
                    "retries": report.retries, "seconds": report.millis as f64 / 1000.0})),
            );
            if let Err(record) = landing::fail_month(wds, wmonth, &reason) {
                log::error("fail-month", merge(fields(ds, month), json!({"step": "fail-month", "reason": record.message()})));
            }
            if fatal(&e) {
                return Err(e);
            }
            report.outcome = Outcome::Failed;
            report.message = Some(reason);
            Ok(Some(report))
        }
    }
}

fn recs_month(options: &Options, ds: Dataset, month: Month) -> Result<Option<MonthReport>, Error> {
    let started = Instant::now();
    let r = recs::fetch_recs(&options.api, ds.kind.into(), month.into());
    step_report(ds, month, started, r.map(|o| (o.recommendations, o.stats)), "recs").map(Some)
}

/// Loads a month landed since its last load. A loaded month is current, and
/// a month with no data must not empty what the warehouse holds: both are
/// left alone (`None`).
fn load_month(ds: Dataset, month: Month) -> Result<Option<MonthReport>, Error> {
    let state = landing::read_month(ds.into(), month.into())?;
    if state.status != landing::MonthStatus::Landed {
        return Ok(None);
    }
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
    step_report(ds, month, started, r, "load").map(Some)
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
        Err(e) => (Outcome::Failed, 0, Counters { requests: 0, retries: 0, bytes: 0 }, Some(e.message())),
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
        log::emit(level, "view", json!({"step": "views", "file": o.file, "ok": o.ok, "message": o.message,
            "reason": (!o.ok).then(|| o.message.clone())}));
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
        Outcome::Deferred => "deferred",
    }
}
