use crate::manifest::Manifest;
use crate::schedule::{CronSpec, london, next_runs};
use anyhow::{Context, Result, bail};
use jiff::Zoned;
use jiff::tz::TimeZone;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// How many run times to print.
    #[arg(long, default_value_t = 5)]
    pub next: usize,
    /// Start after this instant (RFC 3339, e.g. 2026-03-28T00:00:00Z); now by default.
    #[arg(long)]
    pub after: Option<String>,
    /// A Spin manifest to read instead of the built-in spin.toml.
    #[arg(long)]
    pub manifest: Option<PathBuf>,
}

pub fn main(a: Args) -> Result<ExitCode> {
    let manifest = match &a.manifest {
        Some(p) => Manifest::load(p)?,
        None => Manifest::embedded()?,
    };
    let after: Zoned = match &a.after {
        Some(s) => s
            .parse::<jiff::Timestamp>()
            .with_context(|| format!("--after '{s}' is not an RFC 3339 instant, e.g. 2026-03-28T00:00:00Z"))?
            .to_zoned(TimeZone::UTC),
        None => Zoned::now().with_time_zone(TimeZone::UTC),
    };
    let Some(trigger) = manifest.trigger.cron.first() else {
        bail!("{}: no [[trigger.cron]] to read a schedule from", manifest.file);
    };
    let spec = CronSpec::parse(&trigger.cron_expression)?;
    println!("{} runs when \"{}\" (UTC) falls at 08:00 in London:", trigger.component, trigger.cron_expression);
    for t in next_runs(&spec, &after, a.next)? {
        println!(
            "{}  {}",
            t.with_time_zone(TimeZone::UTC).strftime("%Y-%m-%d %H:%M UTC"),
            t.with_time_zone(london()).strftime("%Y-%m-%d %H:%M %Z (London)")
        );
    }
    Ok(ExitCode::SUCCESS)
}
