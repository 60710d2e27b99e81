//! Cron expressions as Spin's cron trigger reads them (seconds first, an
//! optional year; times in UTC), and the run times they lead to.
//!
//! The pipeline acts only on ticks that fall at 08:00 in London (see the
//! `pipeline` component), so the manifest fires at 07:00 and 08:00 UTC and
//! exactly one of the two acts, summer or winter. `dame schedule` prints
//! those times so anyone can check a clock change.

use anyhow::{Result, anyhow};
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};
use jiff::Zoned;
use jiff::tz::TimeZone;

/// The hour, London time, at which the daily run acts (as in the pipeline
/// component).
pub const RUN_HOUR: i8 = 8;

#[derive(Debug)]
pub struct CronSpec {
    cron: Cron,
}

impl CronSpec {
    pub fn parse(expr: &str) -> Result<Self> {
        let fields = expr.split_whitespace().count();
        if !(6..=7).contains(&fields) {
            return Err(anyhow!(
                "'{expr}' has {fields} fields; Spin's cron trigger wants 6 or 7: \
                 sec min hour day-of-month month day-of-week [year], e.g. \"0 0 7,8 * * *\""
            ));
        }
        let parser = CronParser::builder().seconds(Seconds::Required).year(Year::Optional).build();
        let cron = parser.parse(expr).map_err(|e| anyhow!("'{expr}' is not a valid cron expression: {e}"))?;
        Ok(Self { cron })
    }

    /// The first tick strictly after `after`, in UTC.
    pub fn next_after(&self, after: &Zoned) -> Result<Zoned> {
        let utc = after.with_time_zone(TimeZone::UTC);
        self.cron.find_next_occurrence(&utc, false).map_err(|e| anyhow!("no next tick: {e}"))
    }
}

pub fn london() -> TimeZone {
    TimeZone::get("Europe/London").expect("bundled time-zone data has London")
}

/// Whether the pipeline acts on a tick at `at`.
pub fn acts_at(at: &Zoned) -> bool {
    at.with_time_zone(london()).hour() == RUN_HOUR
}

/// The next `n` ticks after `after` at which the pipeline acts.
pub fn next_runs(spec: &CronSpec, after: &Zoned, n: usize) -> Result<Vec<Zoned>> {
    let mut out = Vec::with_capacity(n);
    let mut t = after.clone();
    // Two ticks a day, so a year of ticks is far more than any n asked for.
    for _ in 0..(n * 4 + 800) {
        t = spec.next_after(&t)?;
        if acts_at(&t) {
            out.push(t.clone());
            if out.len() == n {
                break;
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Zoned {
        s.parse::<jiff::Timestamp>().unwrap().to_zoned(TimeZone::UTC)
    }

    fn runs(after: &str, n: usize) -> Vec<String> {
        let spec = CronSpec::parse("0 0 7,8 * * *").unwrap();
        next_runs(&spec, &at(after), n)
            .unwrap()
            .iter()
            .map(|z| z.with_time_zone(TimeZone::UTC).strftime("%Y-%m-%dT%H:%MZ").to_string())
            .collect()
    }

    #[test]
    fn eight_in_london_across_the_2026_and_2027_clock_changes() {
        // Clocks go forward on 29 March 2026: 08:00 GMT, then 07:00 UTC (BST).
        assert_eq!(runs("2026-03-28T00:00:00Z", 3), ["2026-03-28T08:00Z", "2026-03-29T07:00Z", "2026-03-30T07:00Z"]);
        // Back on 25 October 2026.
        assert_eq!(runs("2026-10-24T00:00:00Z", 3), ["2026-10-24T07:00Z", "2026-10-25T08:00Z", "2026-10-26T08:00Z"]);
        // 28 March and 31 October 2027.
        assert_eq!(runs("2027-03-27T09:00:00Z", 2), ["2027-03-28T07:00Z", "2027-03-29T07:00Z"]);
        assert_eq!(runs("2027-10-30T09:00:00Z", 2), ["2027-10-31T08:00Z", "2027-11-01T08:00Z"]);
        // A day in between, in summer and in winter.
        assert_eq!(runs("2026-07-01T07:30:00Z", 1), ["2026-07-02T07:00Z"]);
        assert_eq!(runs("2026-12-01T07:30:00Z", 1), ["2026-12-01T08:00Z"]);
    }

    #[test]
    fn bad_expressions_say_what_spin_wants() {
        assert!(CronSpec::parse("0 7 * * *").unwrap_err().to_string().contains("sec min hour"));
        assert!(CronSpec::parse("0 0 25 * * *").is_err());
        assert!(CronSpec::parse("*/5 * * * * *").is_ok());
    }
}
