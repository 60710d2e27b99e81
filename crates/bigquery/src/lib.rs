//! A small BigQuery v2 REST client: what dame-epc's warehouse needs and no
//! more.
//!
//! - datasets: get, insert in the configured location;
//! - tables: get, insert (schema, month partitioning, clustering), delete;
//! - jobs: load (`gs://` NDJSON, explicit schema, `WRITE_TRUNCATE`, labels)
//!   and query (standard SQL, labels; scripts and transactions too), polled
//!   to `DONE` within a deadline; query results paged and turned into one
//!   JSON object per row.
//!
//! Generic over [`Transport`], so the same code runs in the `bigquery`
//! component (wasi-http) and natively in tests against bqemulator. Every
//! name (project, dataset, region, table) is checked with epc-model's
//! rules before a request is built: names end up in URLs and in SQL.
//!
//! Errors carry BigQuery's own reason and message, name the dataset, table
//! or job, and say what to do.

mod client;
mod error;
mod rows;
mod schema;

pub use client::{BigQuery, Job, Settings, BIGQUERY_BASE_URL};
pub use error::BqError;
pub use rows::row_objects;
pub use schema::{Field, Table};
