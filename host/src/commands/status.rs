use crate::app::{App, LandingTarget};
use crate::bindings::landing::exports::dame::epc::landing::{MonthState, MonthStatus};
use anyhow::{Result, anyhow};
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// Landing folder, or gs://BUCKET[/PREFIX].
    #[arg(long, default_value = "./data")]
    pub landing: String,
    /// Print {"months":[{"kind","month","status","rows","parts","origin"}]}
    /// (origin: `api`, or `bulk-json`/`bulk-csv` for backfilled months).
    #[arg(long)]
    pub json: bool,
}

pub fn status_name(s: MonthStatus) -> &'static str {
    match s {
        MonthStatus::Empty => "empty",
        MonthStatus::Partial => "partial",
        MonthStatus::Landed => "landed",
        MonthStatus::NoData => "no-data",
        MonthStatus::Failed => "failed",
        MonthStatus::Loaded => "loaded",
    }
}

pub fn dataset_name(m: &MonthState) -> String {
    use crate::bindings::landing::dame::epc::types::{Content, Kind};
    let kind = match m.dataset.kind {
        Kind::Domestic => "domestic",
        Kind::NonDomestic => "non-domestic",
        Kind::Display => "display",
    };
    match m.dataset.content {
        Content::Certificates => kind.to_string(),
        Content::Recommendations => format!("{kind}-recommendations"),
    }
}

/// Every month in the landing store, read by the landing component itself.
pub async fn months(app: &App, landing: &LandingTarget) -> Result<Vec<MonthState>> {
    let (mut store, gz) = app.landing(landing).await?;
    gz.dame_epc_landing().call_list_months(&mut store).await?.map_err(|e| anyhow!("{}", crate::bindings::message(&e)))
}

pub async fn main(a: Args) -> Result<ExitCode> {
    let landing = LandingTarget::parse(&a.landing)?;
    if let LandingTarget::Folder(dir) = &landing {
        if !dir.exists() {
            return Err(anyhow!("landing folder {} does not exist: run `dame run` or `dame demo` first, or pass --landing", dir.display()));
        }
    }
    let app = App::new(None)?;
    let months = months(&app, &landing).await?;
    if a.json {
        let list: Vec<serde_json::Value> = months
            .iter()
            .map(|m| {
                serde_json::json!({
                    "kind": dataset_name(m),
                    "month": format!("{:04}-{:02}", m.month.year, m.month.month),
                    "status": status_name(m.status),
                    "rows": m.rows,
                    "parts": m.parts,
                    "origin": m.origin.as_deref().unwrap_or("api"),
                })
            })
            .collect();
        println!("{}", serde_json::json!({ "months": list }));
    } else {
        print!("{}", render(&months));
    }
    Ok(ExitCode::SUCCESS)
}

/// A table with a bar per month, scaled to the largest month of its kind,
/// so gaps and outliers show without reading numbers.
pub fn render(months: &[MonthState]) -> String {
    const WIDTH: u64 = 30;
    let mut out = format!("{:<26} {:<8} {:<8} {:>9} {:>6}  {:<9}\n", "kind", "month", "status", "rows", "parts", "origin");
    for m in months {
        let name = dataset_name(m);
        let max = months.iter().filter(|o| dataset_name(o) == name).map(|o| o.rows).max().unwrap_or(0).max(1);
        let bar = "█".repeat(((m.rows * WIDTH).div_ceil(max)) as usize);
        let note = m.error.as_deref().map(|e| format!("  ({e})")).unwrap_or_default();
        out.push_str(&format!(
            "{:<26} {:04}-{:02}  {:<8} {:>9} {:>6}  {:<9}  {bar}{note}\n",
            name,
            m.month.year,
            m.month.month,
            status_name(m.status),
            m.rows,
            m.parts,
            m.origin.as_deref().unwrap_or("api")
        ));
    }
    if months.is_empty() {
        out.push_str("(nothing landed yet)\n");
    }
    out
}
