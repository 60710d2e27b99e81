//! Component `bigquery`: the `dame:epc/warehouse` interface over BigQuery's
//! v2 REST API, on wasi-http.
//!
//! A thin shell over [`bigquery`] (the `bigquery-client` crate): it reads
//! configuration, authenticates inside the component (tokens never cross a
//! component boundary), maps landing-store keys to `gs://` URIs and
//! converts between the WIT records and the library.
//!
//! Configuration: `project`, `dataset` (default `epc`), `region` (default
//! `europe-west2`), `landing` = `gs://BUCKET[/PREFIX]` or `bucket`,
//! `bigquery_emulator_host`, and the credentials `google_oauth_access_token`
//! or `google_application_credentials_json` (else the metadata server).

wit_bindgen::generate!({
    world: "dame:bigquery/bigquery",
    path: ["../../wit", "wit"],
    with: {
        "dame:epc/types@0.1.0": epc_bindings::types,
        "wasi:config/store@0.2.0-draft-2024-09-27": epc_bindings::config_store,
    },
});

use bigquery::{BigQuery, BqError, Field, Settings, Table};
use epc_bindings::{config, types};
use exports::dame::epc::warehouse::{Dialect, Guest, Job, TableSpec};
use google_auth::Auth;
use http_client::Client;
use http_client::wasi::WasiTransport;
use landing::GcsLocation;
use std::cell::OnceCell;
use std::rc::Rc;

struct Warehouse;

type Bq = BigQuery<WasiTransport>;

thread_local! {
    /// The client, built on the first call and kept for the instance's
    /// life, so the access token is fetched once and reused until it is
    /// about to expire.
    static CLIENT: OnceCell<Rc<Bq>> = const { OnceCell::new() };
}

fn error(e: BqError) -> types::Error {
    match e {
        BqError::InvalidInput(m) => types::Error::InvalidInput(m),
        BqError::Unauthorized(m) => types::Error::Unauthorized(m),
        BqError::Unavailable(m) => types::Error::Unavailable(m),
        BqError::Protocol(m) => types::Error::Protocol(m),
        e @ (BqError::Refused { .. } | BqError::Mismatch(_) | BqError::Timeout(_)) => types::Error::Storage(e.to_string()),
    }
}

fn settings() -> Result<Settings, types::Error> {
    let project = config("project")?.ok_or_else(|| {
        types::Error::InvalidInput("no BigQuery project configured: set `project` to the Google Cloud project id".into())
    })?;
    Ok(Settings {
        project,
        dataset: config("dataset")?.unwrap_or_else(|| "epc".into()),
        region: config("region")?.unwrap_or_else(|| "europe-west2".into()),
    })
}

fn client() -> Result<Rc<Bq>, types::Error> {
    if let Some(c) = CLIENT.with(|c| c.get().cloned()) {
        return Ok(c);
    }
    let emulator = config("bigquery_emulator_host")?;
    let auth = match emulator {
        Some(_) => Auth::none(),
        None => Auth::from_settings(config(google_auth::CONFIG_ACCESS_TOKEN)?, config(google_auth::CONFIG_CREDENTIALS_JSON)?)
            .map_err(|e| types::Error::Unauthorized(e.to_string()))?,
    };
    let bq = Rc::new(BigQuery::new(Client::new(WasiTransport::default()), auth, settings()?, emulator.as_deref()).map_err(error)?);
    CLIENT.with(|c| c.set(bq.clone()).ok());
    Ok(bq)
}

/// The landing bucket, from `landing` (`gs://…`) or `bucket`.
fn landing() -> Result<GcsLocation, types::Error> {
    let url = match (config("landing")?, config("bucket")?) {
        (Some(l), _) if l.starts_with("gs://") => l,
        (_, Some(b)) => format!("gs://{b}"),
        (Some(l), None) => {
            return Err(types::Error::InvalidInput(format!(
                "BigQuery loads from Cloud Storage, but `landing` is the folder {l}: land in gs://BUCKET to load into BigQuery"
            )));
        }
        (None, None) => {
            return Err(types::Error::InvalidInput("no landing bucket configured: set `landing` to gs://BUCKET[/PREFIX]".into()));
        }
    };
    GcsLocation::parse(&url).map_err(|e| types::Error::InvalidInput(e.to_string()))
}

fn block_on<T>(f: impl std::future::Future<Output = Result<T, BqError>>) -> Result<T, types::Error> {
    wstd::runtime::block_on(f).map_err(error)
}

/// Keeps what may stand inside a backquoted name: letters, digits, `_`,
/// `-` and `.`.
fn sql_safe(s: &str) -> String {
    s.chars().filter(|c| c.is_ascii_alphanumeric() || "_-.".contains(*c)).collect()
}

impl Guest for Warehouse {
    fn sql_dialect() -> Dialect {
        Dialect::Bigquery
    }

    /// `` `project.dataset.name` ``. This function cannot fail, so a name
    /// or setting that breaks the rules loses its unsafe characters here;
    /// BigQuery then reports the table as not found, and every other call
    /// refuses the name with the reason.
    fn table_ref(name: String) -> String {
        let (project, dataset) = match settings() {
            Ok(s) => (s.project, s.dataset),
            Err(_) => ("PROJECT-NOT-SET".into(), "epc".into()),
        };
        format!("`{}.{}.{}`", sql_safe(&project), sql_safe(&dataset), sql_safe(&name))
    }

    fn ensure_table(spec: TableSpec) -> Result<(), types::Error> {
        let table = Table {
            name: spec.name,
            fields: spec
                .columns
                .into_iter()
                .map(|c| Field { name: c.name, data_type: c.data_type, required: c.required, description: c.description })
                .collect(),
            partition_by_month: spec.partition_by_month,
            cluster_by: spec.cluster_by,
            description: spec.description,
        };
        let bq = client()?;
        block_on(bq.ensure_table(&table))
    }

    fn load_objects(table: String, objects: Vec<String>, labels: Vec<(String, String)>) -> Result<Job, types::Error> {
        let location = landing()?;
        let uris = objects
            .iter()
            .map(|k| location.checked_uri(k))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| types::Error::InvalidInput(format!("loading {table}: {e}")))?;
        let bq = client()?;
        block_on(bq.load(&table, &uris, &labels)).map(|j| Job { id: j.id, rows: j.rows })
    }

    fn execute(sql: String, labels: Vec<(String, String)>) -> Result<Job, types::Error> {
        let bq = client()?;
        block_on(bq.execute(&sql, &labels)).map(|j| Job { id: j.id, rows: j.rows })
    }

    fn query(sql: String, labels: Vec<(String, String)>) -> Result<Vec<String>, types::Error> {
        let bq = client()?;
        let rows = block_on(bq.query(&sql, &labels))?;
        Ok(rows.into_iter().map(|r| serde_json::Value::Object(r).to_string()).collect())
    }

    fn drop_table(name: String) -> Result<(), types::Error> {
        let bq = client()?;
        block_on(bq.drop_table(&name)).map(|_| ())
    }
}

export!(Warehouse);
