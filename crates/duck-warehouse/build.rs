//! Links against the prebuilt libduckdb that `scripts/duckdb-lib` installs
//! (unless the `bundled` feature compiles DuckDB from source instead), and
//! records its folder in the rpath of this crate's tests so they run
//! without `LD_LIBRARY_PATH`.

fn main() {
    println!("cargo:rerun-if-env-changed=DUCKDB_LIB_DIR");
    if std::env::var_os("CARGO_FEATURE_BUNDLED").is_some() {
        return;
    }
    let Some(dir) = std::env::var_os("DUCKDB_LIB_DIR") else {
        panic!("DUCKDB_LIB_DIR is not set: build from the workspace (its .cargo/config.toml sets it) or enable the `bundled` feature");
    };
    let dir = std::path::PathBuf::from(dir);
    println!("cargo:rerun-if-changed={}", dir.join("libduckdb.so").display());
    if !dir.join("libduckdb.so").is_file() {
        panic!(
            "libduckdb.so is not in {}: run scripts/duckdb-lib (downloads the pinned DuckDB release once), \
             or build with --features duck-warehouse/bundled to compile DuckDB from source",
            dir.display()
        );
    }
    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", dir.display());
}
