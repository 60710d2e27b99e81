//! The embedded default warehouse: a DuckDB file the host opens and
//! provides to the components as `dame:epc/warehouse`
//! ([`crate::warehouse::Backend`]), over `duck-warehouse`.

use crate::app::LandingTarget;
use crate::warehouse::{Backend, Dialect, Job, TableSpec};
use anyhow::{Result, bail};
use duck_warehouse::DuckWarehouse;
use epc_model::warehouse::{Column, TableSpec as Spec};
use std::path::Path;
use std::sync::{Arc, Mutex};

/// The DuckDB schema that plays BigQuery's dataset: DuckDB's default
/// schema, so the views are queried by bare name (`FROM
/// enr_domestic_certificates_v`) in any client, and a schema never shares
/// the name of the file's catalog (`epc.duckdb` holding schema `epc` makes
/// every `epc.x` ambiguous to DuckDB's binder).
pub const SCHEMA: &str = "main";

struct Duck(Mutex<DuckWarehouse>);

fn spec(t: &TableSpec) -> Spec {
    Spec {
        name: t.name.clone(),
        columns: t
            .columns
            .iter()
            .map(|c| Column {
                name: c.name.clone().into(),
                data_type: c.data_type.clone().into(),
                required: c.required,
                description: c.description.clone().into(),
            })
            .collect(),
        partition_by_month: t.partition_by_month.clone().map(Into::into),
        cluster_by: t.cluster_by.iter().cloned().map(Into::into).collect(),
        description: t.description.clone(),
    }
}

fn job(j: duck_warehouse::Job) -> Job {
    Job { id: j.id, rows: j.rows }
}

impl Duck {
    fn with<T>(&self, f: impl FnOnce(&DuckWarehouse) -> duck_warehouse::Result<T>) -> Result<T, String> {
        let w = self.0.lock().map_err(|_| "the DuckDB connection was poisoned by an earlier panic".to_string())?;
        f(&w).map_err(|e| e.to_string())
    }
}

impl Backend for Duck {
    fn dialect(&self) -> Dialect {
        Dialect::Duckdb
    }

    fn table_ref(&self, name: &str) -> String {
        self.with(|w| Ok(w.table_ref(name))).unwrap_or_else(|_| format!("\"{SCHEMA}\".\"{name}\""))
    }

    fn ensure_table(&self, t: &TableSpec) -> Result<(), String> {
        self.with(|w| w.ensure_table(&spec(t)))
    }

    fn load_objects(&self, table: &str, objects: &[String]) -> Result<Job, String> {
        self.with(|w| w.load_objects(table, objects)).map(job)
    }

    fn execute(&self, sql: &str) -> Result<Job, String> {
        self.with(|w| w.execute(sql)).map(job)
    }

    fn query(&self, sql: &str) -> Result<Vec<String>, String> {
        self.with(|w| w.query(sql))
    }

    fn drop_table(&self, name: &str) -> Result<(), String> {
        self.with(|w| w.drop_table(name))
    }
}

/// Opens (or creates) the DuckDB file; landed objects are read from the
/// landing folder, so DuckDB loads need a folder, not a bucket.
pub fn open(path: &Path, landing: &LandingTarget) -> Result<Arc<dyn Backend>> {
    let LandingTarget::Folder(folder) = landing else {
        bail!("the DuckDB warehouse loads from a landing folder; with --landing gs://…, use --warehouse bigquery:PROJECT.DATASET");
    };
    let w = DuckWarehouse::open(path, SCHEMA, folder).map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(Arc::new(Duck(Mutex::new(w))))
}
