//! The warehouse of `dame:epc/warehouse` over an embedded DuckDB file.
//!
//! `dame` (the native host) runs the pipeline without a cloud: landed parts
//! go to a local folder and are loaded into a DuckDB file, and the same
//! load and view steps that talk to BigQuery talk to this. This crate is
//! the warehouse half as a plain Rust API; the host wires it to the WIT
//! interface and maps [`Error`] onto `dame:epc/types.error`.
//!
//! The dataset is a DuckDB schema of the file, so `table_ref("t")` is
//! `"dataset"."t"`. Column types follow BigQuery's names
//! ([`duck_type`]); partitioning and clustering are BigQuery cost
//! controls with no DuckDB equivalent and are accepted and ignored.
//!
//! DuckDB is pinned to 1.5.5 (`duckdb =1.10505.0`), the engine bqemulator
//! runs, so the BigQuery and DuckDB view texts are tested on one engine,
//! and a warehouse file opens in the duckdb 1.5.5 CLI for a person to
//! inspect. The bundled build has no ICU: time zones are UTC throughout.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use duckdb::Connection;
use epc_model::warehouse::{TableSpec, check_dataset, check_table};

/// Why a warehouse call failed. The message says what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The call is wrong (a bad name, an unknown type, a missing object);
    /// WIT `invalid-input`.
    #[error("{0}")]
    InvalidInput(String),
    /// The file or DuckDB failed (locked, damaged, a failing statement);
    /// WIT `storage`.
    #[error("{0}")]
    Storage(String),
}

pub type Result<T> = std::result::Result<T, Error>;

/// A finished job: a local id and the rows it loaded or changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    pub id: String,
    pub rows: u64,
}

/// DuckDB's type for a BigQuery type name of a [`TableSpec`] column.
///
/// TIMESTAMP is an instant in BigQuery, so it is `TIMESTAMPTZ` here, not
/// DuckDB's zone-less `TIMESTAMP` (which is BigQuery's DATETIME).
pub fn duck_type(bigquery: &str) -> Option<&'static str> {
    Some(match bigquery {
        "STRING" => "VARCHAR",
        "JSON" => "JSON",
        "INT64" | "INTEGER" => "BIGINT",
        "FLOAT64" | "FLOAT" => "DOUBLE",
        "TIMESTAMP" => "TIMESTAMP WITH TIME ZONE",
        "DATE" => "DATE",
        "BOOL" | "BOOLEAN" => "BOOLEAN",
        _ => return None,
    })
}

/// `"name"`, with any `"` doubled: names are checked before they get here,
/// this only makes sure a name can never end the identifier early.
fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A SQL string literal.
fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

fn storage(what: impl std::fmt::Display, e: duckdb::Error) -> Error {
    Error::Storage(format!("{what}: {e}"))
}

/// An embedded DuckDB warehouse: one file, one dataset (schema), and the
/// landing folder its loads read from.
///
/// One value holds the file's lock for as long as it lives (DuckDB allows
/// one writing process per file). It is `Send` but not `Sync`: the host
/// keeps it behind a mutex.
pub struct DuckWarehouse {
    conn: Connection,
    path: PathBuf,
    schema: String,
    landing_root: PathBuf,
    jobs: AtomicU64,
}

impl std::fmt::Debug for DuckWarehouse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DuckWarehouse")
            .field("path", &self.path)
            .field("schema", &self.schema)
            .field("landing_root", &self.landing_root)
            .finish()
    }
}

impl DuckWarehouse {
    /// Opens (creating when absent) the warehouse file `db_path`, whose
    /// tables live in schema `dataset_schema` (a BigQuery-style dataset
    /// name), loading objects from under `landing_root`.
    ///
    /// A file another process holds, a file that is not a DuckDB database
    /// (or is damaged), and a file written by a newer DuckDB are errors
    /// that name the file and say what to do.
    pub fn open(db_path: impl AsRef<Path>, dataset_schema: &str, landing_root: impl Into<PathBuf>) -> Result<Self> {
        let path = db_path.as_ref().to_path_buf();
        check_dataset(dataset_schema).map_err(|e| Error::InvalidInput(e.0))?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| Error::Storage(format!("cannot create the folder of the warehouse file {}: {e}", path.display())))?;
        }
        let conn = Connection::open(&path).map_err(|e| open_error(&path, e))?;
        // Never reach for the network: an extension this build lacks should
        // fail here, plainly, not hang on a download.
        conn.execute_batch(&format!(
            "SET autoinstall_known_extensions = false; SET autoload_known_extensions = false;
             CREATE SCHEMA IF NOT EXISTS {};",
            ident(dataset_schema)
        ))
        .map_err(|e| storage(format!("preparing the warehouse file {}", path.display()), e))?;
        Ok(Self { conn, path, schema: dataset_schema.to_string(), landing_root: landing_root.into(), jobs: AtomicU64::new(0) })
    }

    /// The warehouse file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The schema the dataset's tables live in.
    pub fn schema(&self) -> &str {
        &self.schema
    }

    /// How SQL names table `name` of the dataset: `"schema"."name"`.
    pub fn table_ref(&self, name: &str) -> String {
        format!("{}.{}", ident(&self.schema), ident(name))
    }

    fn job_id(&self, what: &str) -> String {
        let n = self.jobs.fetch_add(1, Ordering::Relaxed) + 1;
        let micros = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_micros())
            .unwrap_or_default();
        format!("duckdb-{what}-{micros}-{n}")
    }

    /// The columns of an existing table as (name, DuckDB type, nullable);
    /// empty when there is no such table.
    fn columns(&self, table: &str) -> Result<Vec<(String, String, bool)>> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT column_name, data_type, is_nullable = 'YES' FROM information_schema.columns
                 WHERE table_schema = ? AND table_name = ? ORDER BY ordinal_position",
            )
            .map_err(|e| storage("reading the catalogue", e))?;
        let rows = stmt
            .query_map([self.schema.as_str(), table], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .map_err(|e| storage("reading the catalogue", e))?;
        rows.collect::<std::result::Result<Vec<_>, _>>().map_err(|e| storage("reading the catalogue", e))
    }

    /// Creates the table when missing. An existing table must have the
    /// spec's columns (names, types, nullability, order); anything else is
    /// an error naming the differences. Partitioning and clustering are
    /// checked to name columns of the spec, and otherwise ignored.
    pub fn ensure_table(&self, spec: &TableSpec) -> Result<()> {
        check_table(&spec.name).map_err(|e| Error::InvalidInput(e.0))?;
        let mut wanted = Vec::with_capacity(spec.columns.len());
        for c in &spec.columns {
            check_table(&c.name).map_err(|_| {
                Error::InvalidInput(format!("table {}: column name '{}' is not valid: letters, digits and underscores only", spec.name, c.name))
            })?;
            let ty = duck_type(&c.data_type).ok_or_else(|| {
                Error::InvalidInput(format!(
                    "table {}: column {} has type '{}', which this warehouse does not know (STRING, JSON, INT64, FLOAT64, TIMESTAMP, DATE, BOOL)",
                    spec.name, c.name, c.data_type
                ))
            })?;
            wanted.push((c.name.to_string(), ty.to_string(), !c.required));
        }
        for name in spec.partition_by_month.iter().chain(&spec.cluster_by) {
            if !spec.columns.iter().any(|c| c.name == *name) {
                return Err(Error::InvalidInput(format!(
                    "table {}: partitioning or clustering names column '{name}', which the table does not have",
                    spec.name
                )));
            }
        }
        let existing = self.columns(&spec.name)?;
        if !existing.is_empty() {
            if existing == wanted {
                return Ok(());
            }
            let show = |cols: &[(String, String, bool)]| {
                cols.iter()
                    .map(|(n, t, null)| format!("{n} {t}{}", if *null { "" } else { " NOT NULL" }))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            return Err(Error::Storage(format!(
                "table {} in {} exists with other columns: it has ({}) but this version needs ({}); \
                 drop it (its rows are reloaded from the landing store by loading the months again) or migrate it by hand",
                self.table_ref(&spec.name),
                self.path.display(),
                show(&existing),
                show(&wanted)
            )));
        }
        let table = self.table_ref(&spec.name);
        let cols: Vec<String> = wanted
            .iter()
            .map(|(n, t, null)| format!("  {} {t}{}", ident(n), if *null { "" } else { " NOT NULL" }))
            .collect();
        let mut sql = format!("BEGIN TRANSACTION;\nCREATE TABLE {table} (\n{}\n);\n", cols.join(",\n"));
        if !spec.description.is_empty() {
            sql += &format!("COMMENT ON TABLE {table} IS {};\n", literal(&spec.description));
        }
        for c in spec.columns.iter().filter(|c| !c.description.is_empty()) {
            sql += &format!("COMMENT ON COLUMN {table}.{} IS {};\n", ident(&c.name), literal(&c.description));
        }
        sql += "COMMIT;";
        self.run_script(&sql).map(|_| ()).map_err(|e| Error::Storage(format!("creating table {table}: {e}")))
    }

    /// Runs a script; on failure rolls back whatever transaction it left
    /// open, so the connection stays usable.
    fn run_script(&self, sql: &str) -> std::result::Result<usize, duckdb::Error> {
        let result = self.conn.execute(sql, []);
        if result.is_err() {
            self.abandon();
        }
        result
    }

    /// Rolls back a transaction a failed statement left open. DuckDB marks
    /// it aborted (every later statement fails until ROLLBACK) without the
    /// connection reporting it as open, so the ROLLBACK is always sent; with
    /// no transaction open it fails harmlessly.
    fn abandon(&self) {
        let _ = self.conn.execute_batch("ROLLBACK");
    }

    /// The landing object `key` as a file under the landing root, after
    /// checking the key is a plain relative path of safe characters.
    fn object_path(&self, key: &str) -> Result<PathBuf> {
        let safe = !key.is_empty()
            && key.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_./".contains(&b))
            && !key.starts_with('/')
            && key.split('/').all(|seg| !seg.is_empty() && seg != "." && seg != "..");
        if !safe {
            return Err(Error::InvalidInput(format!(
                "landing object key '{key}' is not valid: a relative path of letters, digits, '-', '_', '.' and '/' such as raw/domestic/202101/part-00001.ndjson.gz"
            )));
        }
        let path = self.landing_root.join(key);
        if !path.is_file() {
            return Err(Error::InvalidInput(format!(
                "landing object {key} is not in the landing store ({} does not exist): land the month first, or reset it",
                path.display()
            )));
        }
        Ok(path)
    }

    /// Replaces the rows of `table` (which must exist) with the lines of the
    /// gzipped NDJSON objects `objects` (keys under the landing root), in
    /// one transaction: a failure leaves the table as it was.
    ///
    /// Every column is read with the table's own type (no type detection),
    /// so a line whose value does not fit, or that lacks a NOT NULL column,
    /// fails the load rather than loading a guess. Keys the table has no
    /// column for are ignored.
    pub fn load_objects(&self, table: &str, objects: &[String]) -> Result<Job> {
        check_table(table).map_err(|e| Error::InvalidInput(e.0))?;
        let columns = self.columns(table)?;
        let target = self.table_ref(table);
        if columns.is_empty() {
            return Err(Error::InvalidInput(format!("table {target} does not exist in {}: create it first", self.path.display())));
        }
        let paths = objects.iter().map(|k| self.object_path(k)).collect::<Result<Vec<_>>>()?;
        let id = self.job_id("load");
        let names: Vec<String> = columns.iter().map(|(n, ..)| ident(n)).collect();
        let mut script = format!("BEGIN TRANSACTION;\nDELETE FROM {target};\n");
        if !paths.is_empty() {
            let files: Vec<String> = paths.iter().map(|p| literal(&p.to_string_lossy())).collect();
            let types: Vec<String> = columns.iter().map(|(n, t, _)| format!("{}: {}", literal(n), literal(t))).collect();
            script += &format!(
                "INSERT INTO {target} ({names})\nSELECT {names}\nFROM read_json([{files}], format = 'newline_delimited', \
                 compression = 'gzip', records = true, maximum_object_size = 268435456, columns = {{{types}}});\n",
                names = names.join(", "),
                files = files.join(", "),
                types = types.join(", "),
            );
        }
        self.conn
            .execute_batch(&script)
            .and_then(|()| self.conn.query_row(&format!("SELECT count(*) FROM {target}"), [], |r| r.get::<_, i64>(0)))
            .and_then(|rows| self.conn.execute_batch("COMMIT").map(|()| rows))
            .map(|rows| Job { id, rows: rows as u64 })
            .map_err(|e| {
                self.abandon();
                Error::Storage(format!("loading {} object(s) into {target}: {e}; the table is unchanged", objects.len()))
            })
    }

    /// Runs a statement or a script (statements separated by `;`, e.g. a
    /// transaction). `rows` is what the last statement changed (0 for DDL
    /// and for scripts ending in COMMIT). A failing script's open
    /// transaction is rolled back.
    pub fn execute(&self, sql: &str) -> Result<Job> {
        if sql.trim().is_empty() {
            return Err(Error::InvalidInput("empty SQL: nothing to execute".into()));
        }
        let id = self.job_id("query");
        let rows = self.run_script(sql).map_err(|e| Error::Storage(format!("{e}")))?;
        Ok(Job { id, rows: rows as u64 })
    }

    /// Runs a query; each row comes back as a JSON object, one string per
    /// row, keys in column order.
    ///
    /// Values are DuckDB's JSON renderings: numbers and booleans as JSON
    /// numbers and booleans, JSON columns embedded as JSON, lists as
    /// arrays, DATE as `"YYYY-MM-DD"`, TIMESTAMP (BigQuery DATETIME) as
    /// `"YYYY-MM-DD HH:MM:SS[.ffffff]"`, TIMESTAMPTZ as the same with `+00`,
    /// NULL as null. `sql` must be one query (a trailing `;` is fine) with
    /// distinct column names.
    pub fn query(&self, sql: &str) -> Result<Vec<String>> {
        let body = sql.trim().trim_end_matches(|c: char| c == ';' || c.is_whitespace());
        if body.is_empty() {
            return Err(Error::InvalidInput("empty SQL: nothing to query".into()));
        }
        // The query goes on lines of its own so a trailing `--` comment
        // cannot swallow the wrapper.
        let wrapped = format!("SELECT CAST(to_json(dame_row) AS VARCHAR) FROM (\n{body}\n) AS dame_row");
        let mut stmt = self.conn.prepare(&wrapped).map_err(|e| Error::Storage(format!("{e}")))?;
        let rows = stmt.query_map([], |r| r.get::<_, String>(0)).map_err(|e| Error::Storage(format!("{e}")))?;
        rows.collect::<std::result::Result<Vec<_>, _>>().map_err(|e| Error::Storage(format!("{e}")))
    }

    /// Drops table `name` of the dataset if it exists.
    pub fn drop_table(&self, name: &str) -> Result<()> {
        check_table(name).map_err(|e| Error::InvalidInput(e.0))?;
        let table = self.table_ref(name);
        self.conn.execute_batch(&format!("DROP TABLE IF EXISTS {table}")).map_err(|e| storage(format!("dropping {table}"), e))
    }
}

/// Turns DuckDB's failure to open a file into a message that names the
/// file and the way out.
fn open_error(path: &Path, e: duckdb::Error) -> Error {
    let detail = e.to_string();
    let lower = detail.to_ascii_lowercase();
    let file = path.display();
    Error::Storage(if lower.contains("lock") {
        format!(
            "the warehouse file {file} is in use by another process ({detail}): \
             stop the other dame run or duckdb session that has it open, then try again"
        )
    } else if lower.contains("newer version") || lower.contains("created with") || lower.contains("storage version") {
        format!("the warehouse file {file} was written by another DuckDB version ({detail}): open it with DuckDB 1.5.5, or move it aside and reload the months")
    } else if lower.contains("not a valid duckdb database") || lower.contains("header") || lower.contains("checksum") || lower.contains("corrupt") {
        format!(
            "the warehouse file {file} is not a DuckDB database or is damaged ({detail}): \
             move it aside (keep it if you need to inspect it) and run again to start a new one; \
             the months are loaded again from the landing store"
        )
    } else {
        format!("cannot open the warehouse file {file}: {detail}")
    })
}
