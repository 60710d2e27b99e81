//! One module per subcommand: flags, their checks, and the call into the
//! components.

pub mod backfill;
pub mod apply_views;
pub mod bench;
pub mod check;
pub mod demo;
pub mod emulate;
pub mod reset;
pub mod run;
pub mod schedule;
pub mod serve;
pub mod status;

use anyhow::Result;
use epc_model::{Month, MonthRange};

/// Today in London, where the API's days begin and end; `DAME_TODAY`
/// (`YYYY-MM-DD`) replaces it, to replay a past day or in tests.
pub fn london_today() -> jiff::civil::Date {
    if let Some(d) = std::env::var("DAME_TODAY").ok().and_then(|d| d.trim().parse().ok()) {
        return d;
    }
    jiff::Timestamp::now().to_zoned(crate::schedule::london()).date()
}

/// The months asked for: both given, one given (that month alone for
/// `--end-month`; from it through last month for `--start-month`), or
/// neither (the previous calendar month).
pub fn months(start: Option<&str>, end: Option<&str>, today: jiff::civil::Date) -> Result<MonthRange> {
    let parse = |s: Option<&str>| s.map(str::parse::<Month>).transpose();
    let last = Month::of(today).prev();
    let range = match (parse(start)?, parse(end)?) {
        (None, None) => return Ok(MonthRange::previous_month(today)),
        (Some(s), Some(e)) => MonthRange::new(s, e, today)?,
        (Some(s), None) => MonthRange::new(s, last.max(s), today)?,
        (None, Some(e)) => MonthRange::new(e, e, today)?,
    };
    Ok(range)
}
