//! The embedded default warehouse: a DuckDB file the host opens and
//! provides to the components as `dame:epc/warehouse`.

use crate::app::LandingTarget;
use crate::warehouse::Backend;
use anyhow::{Result, bail};
use std::path::Path;
use std::sync::Arc;

pub fn open(path: &Path, _landing: &LandingTarget) -> Result<Arc<dyn Backend>> {
    bail!("the DuckDB warehouse ({}) is not available in this build; use --warehouse bigquery:PROJECT.DATASET", path.display())
}
