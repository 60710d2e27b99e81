//! Component `load-month`: a landed month into its raw warehouse table.
//!
//! It reads the month's checkpoints from the landing store (so it loads
//! exactly the parts they name, and knows how many rows to expect), loads
//! those objects into a staging table, checks the row count, and then, in
//! one transaction, deletes the month from the raw table, inserts the
//! staging rows with their load id and records the load in `load_log`. A
//! rerun therefore leaves exactly one copy of each row, and a failure at
//! any point leaves the raw table as it was.
//!
//! The warehouse is whatever the host wires to `dame:epc/warehouse`:
//! BigQuery (the `bigquery` component) or the dame host's DuckDB. Only the
//! table names differ between them; the SQL below runs on both.

wit_bindgen::generate!({
    world: "dame:load-month/load-month",
    path: ["../../wit", "wit"],
    with: {
        "dame:epc/types@0.1.0": epc_bindings::types,
        "dame:epc/warehouse@0.1.0": epc_bindings::warehouse,
        "wasi:config/store@0.2.0-draft-2024-09-27": epc_bindings::config_store,
    },
    generate_all,
});

use epc_bindings::warehouse as wh;
use epc_bindings::{landing_error, landing_store, types};
use epc_model::warehouse::{TableSpec, labels, load_log_table, raw_table, staging_table};
use epc_model::{Content, Dataset, Layout, Month, MonthStatus};
use exports::dame::epc::load::{Guest, Loaded};
use landing::Landing;

struct LoadMonth;

fn spec(t: &TableSpec) -> wh::TableSpec {
    epc_bindings::table_spec(t)
}

/// A load id: unique per dataset, month and attempt, made only of
/// characters that are safe inside a SQL string.
fn load_id(ds: Dataset, month: Month) -> String {
    let now = jiff::Timestamp::now();
    let stamp = now.strftime("%Y%m%dT%H%M%S").to_string();
    format!("{}-{}-{stamp}-{:06x}", ds.name(), month.compact(), now.subsec_nanosecond() as u32 & 0xFF_FFFF)
}

/// The month replace: one transaction, written in the SQL both warehouses
/// accept.
fn replace_script(ds: Dataset, month: Month, raw: &str, staging: &str, log: &str, load_id: &str, source: &str, rows: u64, reported: u64) -> String {
    let landed: Vec<&str> = epc_model::warehouse::LANDED_COLUMNS.iter().map(|c| c.name.as_ref()).collect();
    let cols = landed.join(", ");
    format!(
        "BEGIN TRANSACTION;\n\
         DELETE FROM {raw} WHERE lodgement_date BETWEEN DATE '{first}' AND DATE '{last}';\n\
         INSERT INTO {raw} ({cols}, load_id, ingested_at)\n  SELECT {cols}, '{load_id}', CURRENT_TIMESTAMP FROM {staging};\n\
         INSERT INTO {log} (dataset, month, source, rows_loaded, rows_reported, load_id, loaded_at)\n  \
         VALUES ('{dataset}', DATE '{first}', '{source}', {rows}, {reported}, '{load_id}', CURRENT_TIMESTAMP);\n\
         COMMIT TRANSACTION;",
        first = month.first_day(),
        last = month.last_day(),
        dataset = ds.name(),
    )
}

fn load(ds: Dataset, month: Month) -> Result<Loaded, types::Error> {
    if ds.content != Content::Certificates {
        return Err(types::Error::NotAvailable(format!("loading {ds} is not available in this build")));
    }
    let landing = Landing::new(landing_store()?);
    let state = wstd::runtime::block_on(landing.read_month(ds, month)).map_err(landing_error)?;
    let raw = raw_table(ds);
    match state.status {
        MonthStatus::Landed | MonthStatus::Loaded => {}
        // An empty answer from the API must never empty a loaded month:
        // a month with no data loads nothing and deletes nothing.
        MonthStatus::NoData => return Ok(Loaded { job_id: String::new(), rows: 0, table: raw.name }),
        other => {
            return Err(types::Error::Storage(format!(
                "{ds} {month} is {} in the landing store; land it completely before loading",
                other.as_str()
            )));
        }
    }
    let source = state.source.map(|s| s.as_str()).unwrap_or("gepbd");
    let kind_label = ds.kind.snake();
    let labels = labels("ingest", kind_label, Some(month));
    let staging = staging_table(ds, month);
    let log = load_log_table();
    wh::ensure_table(&spec(&raw))?;
    wh::ensure_table(&spec(&log))?;
    wh::drop_table(&staging.name)?;
    wh::ensure_table(&spec(&staging))?;
    let objects: Vec<String> = (1..=state.parts).map(|n| Layout::data(ds, month, n)).collect();
    let outcome = (|| {
        let loaded = wh::load_objects(&staging.name, &objects, &labels)?;
        if loaded.rows != state.rows {
            return Err(types::Error::Storage(format!(
                "{ds} {month}: the load read {} rows but the checkpoints record {}; nothing was replaced \
                 (reset the month if its landed objects were changed by hand)",
                loaded.rows, state.rows
            )));
        }
        let id = load_id(ds, month);
        let script = replace_script(
            ds,
            month,
            &wh::table_ref(&raw.name),
            &wh::table_ref(&staging.name),
            &wh::table_ref(&log.name),
            &id,
            source,
            state.rows,
            state.reported,
        );
        let job = wh::execute(&script, &labels)?;
        Ok(Loaded { job_id: job.id, rows: state.rows, table: raw.name.clone() })
    })();
    // The staging table goes whatever happened; failing to drop it only
    // leaves a table the next load of this month replaces.
    let _ = wh::drop_table(&staging.name);
    outcome
}

/// Replaces `certificate_events` with every landed change event. The
/// table exists even with no events, so the views can always join it.
fn load_events() -> Result<Loaded, types::Error> {
    let table = epc_model::warehouse::events_table();
    wh::ensure_table(&spec(&table))?;
    let landing = Landing::new(landing_store()?);
    let objects = wstd::runtime::block_on(landing.event_objects()).map_err(landing_error)?;
    if objects.is_empty() {
        return Ok(Loaded { job_id: String::new(), rows: 0, table: table.name });
    }
    // The job's month label is the month the feed has been read through,
    // so every ingest job is labelled with a month, as cost reports expect.
    let through = wstd::runtime::block_on(landing.events_through()).map_err(landing_error)?;
    let month = through.as_deref().and_then(|d| d.get(..7)).and_then(|m| m.parse().ok());
    let job = wh::load_objects(&table.name, &objects, &labels("ingest", "events", month))?;
    Ok(Loaded { job_id: job.id, rows: job.rows, table: table.name })
}

impl Guest for LoadMonth {
    fn load_month(dataset: types::Dataset, month: types::Month) -> Result<Loaded, types::Error> {
        load(dataset.into(), month.try_into()?)
    }

    fn load_events() -> Result<Loaded, types::Error> {
        load_events()
    }
}

export!(LoadMonth);
