use crate::app::{App, Job, LandingTarget, Secrets};
use crate::events::Display;
use anyhow::Result;
use epc_emulator::{Config, Emulator};
use epc_model::{Kind, Month, MonthRange, Source};
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// Where to land (default ./data).
    #[arg(long, default_value = "./data")]
    pub landing: String,
    /// Which API to demonstrate: gepbd or odc.
    #[arg(long, default_value = "gepbd")]
    pub source: String,
}

/// Starts the emulator on a free port with the built-in samples and runs the
/// whole pipeline against it: no token needed.
pub async fn main(a: Args) -> Result<ExitCode> {
    let source: Source = a.source.parse()?;
    let today = super::london_today();
    let emulator = Emulator::load(Config {
        data: super::emulate::samples(),
        token: Some("demo-token".into()),
        odc_email: Some("demo@example.org".into()),
        odc_api_key: Some("demo-key".into()),
        today: Some(today),
        seed: 1,
        ..Config::default()
    })?;
    let running = emulator.start(([127, 0, 0, 1], 0).into()).await?;
    eprintln!("demo: EPC API emulator with the sample data on {}", running.url());
    let range = MonthRange::new("2021-01".parse::<Month>()?, "2021-08".parse::<Month>()?, today)?;
    let job = Job {
        source,
        api_url: running.url(),
        kinds: Kind::ALL.to_vec(),
        range,
        landing: LandingTarget::parse(&a.landing)?,
        warehouse: super::run::warehouse_target(None, "europe-west2", &LandingTarget::parse(&a.landing)?)?,
        page_size: 5000,
        // The local emulator has no rate limit to respect.
        request_budget: "100000/1s".into(),
        budget_seconds: 0,
        recheck_months: 2,
        secrets: Secrets {
            token: Some("demo-token".into()),
            email: Some("demo@example.org".into()),
            api_key: Some("demo-key".into()),
            in_secret_manager: Default::default(),
        },
        google: Default::default(),
    };
    let app = App::new(None)?;
    let code = super::run::execute(&app, &job, Display::Human).await?;
    running.shutdown().await?;
    let months = super::status::months(&app, &job.landing).await?;
    println!("landed in {}:\n{}", a.landing, super::status::render(&months));
    Ok(code)
}
