use crate::app::{App, GoogleEnv};
use crate::events::{self, Display};
use crate::schedule::CronSpec;
use anyhow::{Result, bail};
use jiff::Zoned;
use jiff::tz::TimeZone;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// The Spin manifest whose cron triggers to run (default: ./spin.toml
    /// when present, else the one built in).
    #[arg(long)]
    pub manifest: Option<PathBuf>,
    /// Stop after this many ticks (0: run until Ctrl-C).
    #[arg(long, default_value_t = 0)]
    pub ticks: u32,
    /// Log lines as JSON (as the component writes them) instead of progress.
    #[arg(long)]
    pub json_log: bool,
}

/// Variables from the environment, as Spin reads them
/// (`SPIN_VARIABLE_<NAME>`), plus the EPC credential variables dame's other
/// commands read, so one environment serves both.
fn values() -> BTreeMap<String, String> {
    let mut v = BTreeMap::new();
    for (env, var) in [
        ("EPC_TOKEN", "epc_token"),
        ("EPC_EMAIL", "epc_email"),
        ("EPC_API_KEY", "epc_api_key"),
        ("EPC_TOKEN_SECRET", "epc_token_secret"),
        ("EPC_EMAIL_SECRET", "epc_email_secret"),
        ("EPC_API_KEY_SECRET", "epc_api_key_secret"),
    ] {
        let spin = format!("SPIN_VARIABLE_{}", var.to_ascii_uppercase());
        if std::env::var_os(&spin).is_none() {
            if let Ok(value) = std::env::var(env) {
                v.insert(var.to_string(), value);
            }
        }
    }
    v
}

/// Runs the manifest's cron triggers with the same components and
/// variables as Spin: each tick calls the trigger's component's
/// `handle-cron-event`, one tick at a time.
pub async fn main(a: Args) -> Result<ExitCode> {
    let manifest = a.manifest.or_else(|| Some(PathBuf::from("spin.toml")).filter(|p| p.exists()));
    let app = App::new(manifest.as_deref())?;
    let triggers: Vec<(String, String, CronSpec)> = app
        .manifest
        .trigger
        .cron
        .iter()
        .map(|t| Ok((t.component.clone(), t.cron_expression.clone(), CronSpec::parse(&t.cron_expression)?)))
        .collect::<Result<_>>()?;
    if triggers.is_empty() {
        bail!("{}: no [[trigger.cron]] to serve", app.manifest.file);
    }
    let google = GoogleEnv::from_env()?;
    let values = values();
    let display = if a.json_log { Display::Json } else { Display::Human };
    for (component, expr, _) in &triggers {
        eprintln!("dame serve: {} runs on \"{expr}\" (UTC) from {}", component, app.manifest.file);
    }
    let mut ticks = 0;
    let mut failures = 0;
    loop {
        let now = Zoned::now().with_time_zone(TimeZone::UTC);
        let mut next: Option<(Zoned, &str)> = None;
        for (component, _, spec) in &triggers {
            let t = spec.next_after(&now)?;
            if next.as_ref().is_none_or(|(n, _)| t < *n) {
                next = Some((t, component));
            }
        }
        let (at, component) = next.expect("at least one trigger");
        let wait = at.timestamp().duration_since(now.timestamp()).unsigned_abs();
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = tokio::signal::ctrl_c() => {
                eprintln!("dame serve: stopped");
                return Ok(ExitCode::SUCCESS);
            }
        }
        let (result, summary) = app.tick(component, &values, &google, at.timestamp().as_second() as u64, display).await?;
        if !summary.rows.is_empty() {
            println!("{}", events::table(&summary));
        }
        if let Err(e) = result {
            failures += 1;
            eprintln!("dame serve: the tick at {at} failed: {e}");
        }
        ticks += 1;
        if a.ticks > 0 && ticks >= a.ticks {
            return Ok(if failures > 0 { ExitCode::from(1) } else { ExitCode::SUCCESS });
        }
    }
}
