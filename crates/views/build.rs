//! Embeds every `sql/views/*.sql` (BigQuery) and `sql/views/duckdb/*.sql`
//! (DuckDB) file at build time, in file-name order, so a component carries
//! its SQL with it and needs no file system at run time.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn sql_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "sql"))
        .collect();
    files.sort();
    files
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("workspace root");
    let views = root.join("sql/views");
    let duck = views.join("duckdb");
    println!("cargo::rerun-if-changed={}", views.display());
    println!("cargo::rerun-if-changed={}", duck.display());
    let mut out = String::new();
    for (name, dir, prefix) in [("BIGQUERY", &views, "sql/views/"), ("DUCKDB", &duck, "sql/views/duckdb/")] {
        writeln!(out, "pub(crate) static {name}: &[(&str, &str)] = &[").unwrap();
        for f in sql_files(dir) {
            println!("cargo::rerun-if-changed={}", f.display());
            let file = f.file_name().unwrap().to_str().expect("UTF-8 file name");
            writeln!(out, "    ({:?}, include_str!({:?})),", format!("{prefix}{file}"), f.display().to_string()).unwrap();
        }
        writeln!(out, "];").unwrap();
    }
    let dest = PathBuf::from(std::env::var_os("OUT_DIR").unwrap()).join("embedded.rs");
    std::fs::write(dest, out).unwrap();
}
