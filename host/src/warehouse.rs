//! `dame:epc/warehouse` provided by the host itself: the embedded default,
//! DuckDB, is native code, so `load-month` and `apply-views` reach it
//! through this import exactly as they reach BigQuery through the
//! `bigquery` component, and cannot tell which one they talk to.

use crate::runtime::State;
use std::sync::Arc;
use wasmtime::component::{HasSelf, Linker};

pub(crate) mod bindings {
    wasmtime::component::bindgen!({
        path: ["../wit", "../components/load-month/wit"],
        world: "dame:load-month/load-month",
        with: { "dame:epc/types": crate::bindings::types },
    });
}

pub use bindings::dame::epc::warehouse::{Dialect, Job, TableSpec};
use crate::bindings::types::Error;

/// A warehouse the host provides.
pub trait Backend: Send + Sync {
    fn dialect(&self) -> Dialect;
    fn table_ref(&self, name: &str) -> String;
    fn ensure_table(&self, spec: &TableSpec) -> Result<(), String>;
    fn load_objects(&self, table: &str, objects: &[String]) -> Result<Job, String>;
    fn execute(&self, sql: &str) -> Result<Job, String>;
    fn query(&self, sql: &str) -> Result<Vec<String>, String>;
    fn drop_table(&self, name: &str) -> Result<(), String>;
}

fn backend(state: &State) -> Result<&Arc<dyn Backend>, Error> {
    state
        .warehouse
        .as_ref()
        .ok_or_else(|| Error::NotAvailable("this component was given no warehouse: pass --warehouse".into()))
}

impl bindings::dame::epc::warehouse::Host for State {
    fn sql_dialect(&mut self) -> Dialect {
        self.warehouse.as_ref().map(|w| w.dialect()).unwrap_or(Dialect::Duckdb)
    }

    fn table_ref(&mut self, name: String) -> String {
        self.warehouse.as_ref().map(|w| w.table_ref(&name)).unwrap_or(name)
    }

    fn ensure_table(&mut self, spec: TableSpec) -> Result<(), Error> {
        backend(self)?.ensure_table(&spec).map_err(Error::Storage)
    }

    fn load_objects(&mut self, table: String, objects: Vec<String>, _labels: Vec<(String, String)>) -> Result<Job, Error> {
        backend(self)?.load_objects(&table, &objects).map_err(Error::Storage)
    }

    fn execute(&mut self, sql: String, _labels: Vec<(String, String)>) -> Result<Job, Error> {
        backend(self)?.execute(&sql).map_err(Error::Storage)
    }

    fn query(&mut self, sql: String, _labels: Vec<(String, String)>) -> Result<Vec<String>, Error> {
        backend(self)?.query(&sql).map_err(Error::Storage)
    }

    fn drop_table(&mut self, name: String) -> Result<(), Error> {
        backend(self)?.drop_table(&name).map_err(Error::Storage)
    }
}

pub fn add_to_linker(linker: &mut Linker<State>) -> wasmtime::Result<()> {
    bindings::dame::epc::warehouse::add_to_linker::<State, HasSelf<State>>(linker, |s| s)
}
