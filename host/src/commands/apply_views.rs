use crate::app::{App, GoogleEnv, LandingTarget};
use anyhow::Result;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// duckdb:FILE (default: epc.duckdb in the landing folder) or
    /// bigquery:PROJECT.DATASET.
    #[arg(long)]
    pub warehouse: Option<String>,
    /// BigQuery location of the dataset.
    #[arg(long, default_value = "europe-west2")]
    pub region: String,
    /// The landing folder (or bucket) the warehouse's months came from.
    #[arg(long, default_value = "./data")]
    pub landing: String,
}

/// Publishes `sql/views/*.sql`, one file per step, each with its own status
/// line; a file that fails does not stop the others.
pub async fn main(a: Args) -> Result<ExitCode> {
    let landing = LandingTarget::parse(&a.landing)?;
    let warehouse = super::run::warehouse_target(a.warehouse.as_deref(), &a.region, &landing)?
        .ok_or_else(|| anyhow::anyhow!("--warehouse none has no views to apply"))?;
    let app = App::new(None)?;
    let outcomes = app.apply_views(&warehouse, &landing, &GoogleEnv::from_env()?).await?;
    let mut failed = 0;
    for o in &outcomes {
        if o.ok {
            println!("✓ {}  {}", o.file, o.message);
        } else {
            failed += 1;
            println!("✗ {}  {}", o.file, o.message);
        }
    }
    println!("{} view file(s) applied, {failed} failed", outcomes.len() - failed);
    Ok(if failed > 0 { ExitCode::from(1) } else { ExitCode::SUCCESS })
}
