//! The cron entry point: the same job, its options read from configuration
//! (Spin variables), run only at 08:00 London time.
//!
//! Cron expressions are in UTC and London is on UTC+1 in summer, so the
//! trigger fires at both 07:00 and 08:00 UTC and this decides, with the
//! time-zone database, which of the two is eight o'clock in London.

use crate::dame::epc::landing;
use crate::exports::dame::epc::pipeline::{Options, Outcome};
use crate::log;
use crate::run;
use epc_bindings::{config, types};
use epc_model::{Month, MonthRange, Source, parse_kinds};
use serde_json::json;

/// The hour, London time, at which the daily run acts.
const RUN_HOUR: i8 = 8;

pub fn handle(timestamp: u64) -> Result<(), types::Error> {
    let now = jiff::Timestamp::from_second(timestamp as i64)
        .map_err(|e| types::Error::InvalidInput(format!("cron timestamp {timestamp}: {e}")))?
        .in_tz("Europe/London")
        .expect("bundled time-zone data has London");
    let day = now.date().to_string();
    let london = now.strftime("%Y-%m-%d %H:%M %Z").to_string();
    let force = flag("force")?;
    // What was recorded for today's run: none, cut short (false) or done.
    let today = landing::run_finished(&day)?;
    let act = force || (now.hour() == RUN_HOUR && today != Some(true)) || today == Some(false);
    if !act {
        let reason = match today {
            Some(true) => "today's run is done (no catch-up)",
            _ => "not 08:00 in London; set force=true to run at any hour",
        };
        log::info("tick", json!({"step": "schedule", "acted": false, "london": london, "reason": reason}));
        return Ok(());
    }
    let continuing = today == Some(false);
    log::info("tick", json!({"step": "schedule", "acted": true, "london": london, "forced": force, "continuing": continuing}));
    let options = options(now.date())?;
    let report = run::run(&options, now.date())?;
    let deferred = report.months.iter().filter(|m| m.outcome == Outcome::Deferred).count();
    let summary = format!("{} steps, {deferred} deferred", report.months.len());
    landing::record_run(&day, deferred == 0, &summary)?;
    let failed: Vec<String> = report
        .months
        .iter()
        .filter(|m| m.outcome == Outcome::Failed)
        .map(|m| format!("{}-{:02}: {}", m.month.year, m.month.month, m.message.clone().unwrap_or_default()))
        .collect();
    if failed.is_empty() {
        Ok(())
    } else {
        Err(types::Error::Unavailable(format!("{} month(s) failed: {}", failed.len(), failed.join("; "))))
    }
}

fn flag(key: &str) -> Result<bool, types::Error> {
    match config(key)?.as_deref().map(str::trim) {
        None => Ok(false),
        Some(v) if v.eq_ignore_ascii_case("true") || v == "1" => Ok(true),
        Some(v) if v.eq_ignore_ascii_case("false") || v == "0" => Ok(false),
        Some(v) => Err(types::Error::InvalidInput(format!("variable {key} = {v:?}: use true or false"))),
    }
}

/// The job's options from configuration, with the seed's defaults: GEPBD,
/// domestic and non-domestic, the previous calendar month.
fn options(today: jiff::civil::Date) -> Result<Options, types::Error> {
    let source: Source = config("source")?.as_deref().unwrap_or("gepbd").parse()?;
    let base_url = config("api_url")?.unwrap_or_else(|| source.default_url().to_string());
    let kinds = parse_kinds(config("kinds")?.as_deref().unwrap_or("domestic,non-domestic"))?;
    let default = MonthRange::previous_month(today);
    let month = |key: &str, default: Month| -> Result<Month, types::Error> {
        Ok(config(key)?.map(|s| s.parse()).transpose()?.unwrap_or(default))
    };
    let page_size = match config("page_size")? {
        Some(s) => s.trim().parse().map_err(|_| types::Error::InvalidInput(format!("variable page_size = {s:?}: use 1 to 5000")))?,
        None => 5000,
    };
    let recommendations = flag("with_recs")?;
    let budget_seconds = match config("budget_seconds")? {
        Some(s) => s.trim().parse().map_err(|_| types::Error::InvalidInput(format!("variable budget_seconds = {s:?}: a number of seconds (0: none)")))?,
        None => 7200,
    };
    let warehouse = config("warehouse")?;
    Ok(Options {
        api: types::Api { source: source.into(), base_url },
        kinds: kinds.into_iter().map(Into::into).collect(),
        start: month("start_month", default.start)?.into(),
        end: month("end_month", default.end)?.into(),
        page_size,
        certificates: true,
        recommendations,
        load: warehouse.is_some(),
        views: warehouse.is_some(),
        budget_seconds,
        holder: config("holder")?.unwrap_or_else(|| "the cron trigger".into()),
        stale_lease_holder: config("stale_lease_holder")?,
        recheck_months: match config("recheck_months")? {
            Some(s) => s.trim().parse().map_err(|_| types::Error::InvalidInput(format!("variable recheck_months = {s:?}: a number of months")))?,
            None => 2,
        },
        today: None,
    })
}
