//! The published SQL views of dame-epc.
//!
//! The views are SQL files in `sql/views/` (BigQuery) and
//! `sql/views/duckdb/` (their DuckDB twins), embedded at build time in
//! file-name order (`NN_name.sql`: a view may read the views before it).
//! They name tables through two placeholders, `{{PROJECT}}` and
//! `{{DATASET}}`, and [`ViewFile::render`] is the only way to fill them: it
//! admits only names that pass Google's rules
//! ([`epc_model::warehouse::check_project`] and
//! [`epc_model::warehouse::check_dataset`]), which allow no quote, dot or
//! space, so configuration can never change what the SQL says. Any other
//! `{{…}}` left in a file is refused rather than sent to the warehouse.
//!
//! This crate does no I/O and builds for `wasm32-wasip2` (the `apply-views`
//! component) as well as natively (the host and the tests).

use epc_model::InputError;
use epc_model::warehouse::{check_dataset, check_project};

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/embedded.rs"));
}

/// The SQL dialect a file is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dialect {
    /// GoogleSQL, for BigQuery (`sql/views/*.sql`).
    BigQuery,
    /// DuckDB's SQL, for the embedded warehouse (`sql/views/duckdb/*.sql`).
    DuckDb,
}

/// One embedded view file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ViewFile {
    /// The path in the repository, e.g. `sql/views/01_enr_domestic_certificates_v.sql`.
    pub path: &'static str,
    pub dialect: Dialect,
    /// The file as written, placeholders and all.
    pub text: &'static str,
}

/// The view files of `dialect`, in the order they must be applied.
pub fn files(dialect: Dialect) -> Vec<ViewFile> {
    let list = match dialect {
        Dialect::BigQuery => embedded::BIGQUERY,
        Dialect::DuckDb => embedded::DUCKDB,
    };
    list.iter().map(|&(path, text)| ViewFile { path, dialect, text }).collect()
}

const PROJECT: &str = "{{PROJECT}}";
const DATASET: &str = "{{DATASET}}";

impl ViewFile {
    /// The file name without its folder, e.g. `01_enr_domestic_certificates_v.sql`.
    pub fn name(&self) -> &'static str {
        self.path.rsplit('/').next().unwrap_or(self.path)
    }

    /// The view the file creates: the file name without `NN_` and `.sql`.
    pub fn view(&self) -> &'static str {
        let stem = self.name().trim_end_matches(".sql");
        match stem.split_once('_') {
            Some((n, rest)) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => rest,
            _ => stem,
        }
    }

    /// The SQL with `{{PROJECT}}` and `{{DATASET}}` filled in.
    ///
    /// `project` is needed only where the file names it (the BigQuery
    /// files); both names are checked before anything is substituted, and
    /// an error names the value and the rule it broke.
    pub fn render(&self, project: Option<&str>, dataset: &str) -> Result<String, InputError> {
        check_dataset(dataset)?;
        let mut sql = self.text.replace(DATASET, dataset);
        if sql.contains(PROJECT) {
            let project = project.ok_or_else(|| {
                InputError(format!("{}: a project is needed to name its tables (set 'project')", self.path))
            })?;
            check_project(project)?;
            sql = sql.replace(PROJECT, project);
        } else if let Some(p) = project {
            // Checked all the same: a bad value is a configuration mistake
            // worth hearing about even where this file does not use it.
            check_project(p)?;
        }
        if let Some(at) = sql.find("{{") {
            let rest = &sql[at..];
            let token = &rest[..rest.find("}}").map_or(rest.len().min(40), |e| e + 2)];
            return Err(InputError(format!(
                "{}: unknown placeholder '{token}': only {PROJECT} and {DATASET} are filled in",
                self.path
            )));
        }
        Ok(sql)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_dialects_have_the_same_views_in_the_same_order() {
        let bq: Vec<_> = files(Dialect::BigQuery).iter().map(|f| f.name()).collect();
        let duck: Vec<_> = files(Dialect::DuckDb).iter().map(|f| f.name()).collect();
        assert!(!bq.is_empty());
        assert_eq!(bq, duck);
        let mut sorted = bq.clone();
        sorted.sort();
        assert_eq!(bq, sorted, "file order is application order");
    }

    #[test]
    fn every_file_creates_the_view_it_is_named_after() {
        for d in [Dialect::BigQuery, Dialect::DuckDb] {
            for f in files(d) {
                assert!(f.name().starts_with(|c: char| c.is_ascii_digit()), "{}: NN_name.sql", f.path);
                let sql = f.render(Some("my-project"), "epc").unwrap();
                let creates = sql.matches("CREATE OR REPLACE VIEW").count();
                assert_eq!(creates, 1, "{}: one CREATE OR REPLACE VIEW per file", f.path);
                let target = match d {
                    Dialect::BigQuery => format!("`my-project.epc.{}`", f.view()),
                    Dialect::DuckDb => format!("\"epc\".\"{}\"", f.view()),
                };
                assert!(sql.contains(&format!("CREATE OR REPLACE VIEW {target}")), "{}: creates {target}", f.path);
                assert!(!sql.contains("SELECT *") && !sql.contains(".*"), "{}: explicit column lists only", f.path);
            }
        }
    }

    #[test]
    fn only_valid_names_reach_the_sql() {
        let f = files(Dialect::BigQuery)[0];
        let e = f.render(Some("my-project"), "epc`; DROP TABLE x; --").unwrap_err();
        assert!(e.0.contains("dataset") && e.0.contains("DROP TABLE"), "{e}");
        let e = f.render(Some("My Project"), "epc").unwrap_err();
        assert!(e.0.contains("project 'My Project'"), "{e}");
        let e = f.render(None, "epc").unwrap_err();
        assert!(e.0.contains("project"), "{e}");
        let d = files(Dialect::DuckDb)[0];
        assert!(d.render(None, "epc").is_ok());
        assert!(d.render(Some("bad project"), "epc").is_err());
    }

    #[test]
    fn unknown_placeholders_are_refused() {
        let f = ViewFile { path: "sql/views/99_x.sql", dialect: Dialect::DuckDb, text: "SELECT {{DATASET}}, {{DATSET}}" };
        let e = f.render(None, "epc").unwrap_err();
        assert!(e.0.contains("'{{DATSET}}'"), "{e}");
    }
}
