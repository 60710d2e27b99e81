//! Component `apply-views`: the published views over the raw tables.
//!
//! Reads `project` and `dataset` from its configuration, asks the
//! warehouse it is given which SQL dialect it speaks, makes sure the tables
//! the views read exist (the raw tables and `load_log`, so the views can be
//! published before the first load), then applies the embedded view files
//! of that dialect (crate `views`) in order, one `execute` each, labelled
//! `system=dame, stage=ingest, kind=views`.
//!
//! Every file gets an outcome: one that fails (a view the warehouse
//! refuses) is reported and the next is still applied, so one bad view
//! never hides the others. Each file is a `CREATE OR REPLACE VIEW`, so
//! applying again is harmless and brings every view up to this version.

wit_bindgen::generate!({
    world: "dame:apply-views/apply-views",
    path: ["../../wit", "wit"],
    with: {
        "dame:epc/types@0.1.0": epc_bindings::types,
        "dame:epc/warehouse@0.1.0": epc_bindings::warehouse,
        "wasi:config/store@0.2.0-draft-2024-09-27": epc_bindings::config_store,
    },
    generate_all,
});

use epc_bindings::warehouse as wh;
use epc_bindings::types;
use epc_model::warehouse::{check_dataset, check_project, events_table, labels, load_log_table, raw_table};
use epc_model::{Dataset, Kind};
use exports::dame::epc::views::{Guest, ViewOutcome};

struct ApplyViews;

impl Guest for ApplyViews {
    fn apply_views() -> Result<Vec<ViewOutcome>, types::Error> {
        let dataset = epc_bindings::config("dataset")?.ok_or_else(|| {
            types::Error::InvalidInput(
                "configuration 'dataset' is not set: name the dataset (DuckDB schema) that holds the raw tables, e.g. epc".into(),
            )
        })?;
        check_dataset(&dataset)?;
        let project = epc_bindings::config("project")?;
        let dialect = match wh::sql_dialect() {
            wh::Dialect::Bigquery => views::Dialect::BigQuery,
            wh::Dialect::Duckdb => views::Dialect::DuckDb,
        };
        match (&project, dialect) {
            (Some(p), _) => check_project(p)?,
            (None, views::Dialect::BigQuery) => {
                return Err(types::Error::InvalidInput(
                    "configuration 'project' is not set: BigQuery views are named project.dataset.view; set it to the Google Cloud project id".into(),
                ));
            }
            (None, views::Dialect::DuckDb) => {}
        }

        let tables = Kind::ALL.iter().map(|&k| raw_table(Dataset::certificates(k))).chain([load_log_table(), events_table()]);
        for spec in tables {
            wh::ensure_table(&epc_bindings::table_spec(&spec))?;
        }

        let labels = labels("ingest", "views", None);
        let outcomes = views::files(dialect)
            .into_iter()
            .map(|file| {
                let result = file
                    .render(project.as_deref(), &dataset)
                    .map_err(|e| e.0)
                    .and_then(|sql| wh::execute(&sql, &labels).map_err(|e| epc_bindings::Message::message(&e)));
                match result {
                    Ok(job) => ViewOutcome {
                        file: file.path.into(),
                        ok: true,
                        message: format!("{} created or replaced (job {})", file.view(), job.id),
                    },
                    Err(message) => ViewOutcome { file: file.path.into(), ok: false, message: format!("{}: {message}", file.view()) },
                }
            })
            .collect();
        Ok(outcomes)
    }
}

export!(ApplyViews);
