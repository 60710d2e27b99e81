use crate::app::{App, LandingTarget};
use crate::bindings::landing::dame::epc::types as t;
use anyhow::{Result, anyhow};
use epc_model::{Content, Dataset, Kind, Month};
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// The kind (domestic, non-domestic, display), or its recommendations
    /// (e.g. domestic-recommendations).
    #[arg(long)]
    pub kind: String,
    /// The month, YYYY-MM.
    #[arg(long)]
    pub month: String,
    /// Landing folder, or gs://BUCKET[/PREFIX].
    #[arg(long, default_value = "./data")]
    pub landing: String,
}

pub fn dataset(d: Dataset) -> t::Dataset {
    t::Dataset {
        kind: match d.kind {
            Kind::Domestic => t::Kind::Domestic,
            Kind::NonDomestic => t::Kind::NonDomestic,
            Kind::Display => t::Kind::Display,
        },
        content: match d.content {
            Content::Certificates => t::Content::Certificates,
            Content::Recommendations => t::Content::Recommendations,
        },
    }
}

pub async fn main(a: Args) -> Result<ExitCode> {
    let ds: Dataset = a.kind.parse()?;
    let month: Month = a.month.parse()?;
    let landing = LandingTarget::parse(&a.landing)?;
    let app = App::new(None)?;
    let (mut store, gz) = app.landing(&landing).await?;
    let m = t::Month { year: month.year(), month: month.month() };
    let removed = gz.dame_epc_landing().call_reset_month(&mut store, dataset(ds), m).await?.map_err(|e| anyhow!("{}", crate::bindings::message(&e)))?;
    println!("reset {ds} {month}: removed {removed} object(s); the next run fetches it again");
    Ok(ExitCode::SUCCESS)
}
