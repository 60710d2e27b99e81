//! Builds the components for `wasm32-wasip2` and hands them to the `dame`
//! binary, which embeds them: one `cargo build --release` at the root yields
//! a `dame` that carries the very components Spin runs.
//!
//! The components are built by a nested cargo into `<target>/components`
//! (`target/components` by default, the path `spin.toml` names), so the
//! outer build's lock on its target directory is never contended, and a
//! `CARGO_TARGET_DIR` kept outside the clone caches them too.
//! `DAME_COMPONENTS_DIR` points at prebuilt components instead.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Crate name → the `.wasm` file cargo writes for it.
pub const COMPONENTS: &[(&str, &str)] = &[
    ("pipeline", "pipeline.wasm"),
    ("fetch-page", "fetch_page.wasm"),
    ("gzip-land", "gzip_land.wasm"),
    ("load-month", "load_month.wasm"),
    ("apply-views", "apply_views.wasm"),
    ("recs", "recs.wasm"),
    ("bigquery", "bigquery.wasm"),
    ("fetch-bulk", "fetch_bulk.wasm"),
];

const TARGET: &str = "wasm32-wasip2";

fn main() {
    let root = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap()).parent().unwrap().to_path_buf();
    let out = PathBuf::from(env::var("OUT_DIR").unwrap());
    println!("cargo:rerun-if-env-changed=DAME_COMPONENTS_DIR");
    // The embedded warehouse links the prebuilt libduckdb (see
    // crates/duck-warehouse/build.rs): `dame` and the tests find it by rpath.
    println!("cargo:rerun-if-env-changed=DUCKDB_LIB_DIR");
    if let Some(dir) = env::var_os("DUCKDB_LIB_DIR") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{}", Path::new(&dir).display());
    }

    let dir = match env::var_os("DAME_COMPONENTS_DIR") {
        Some(prebuilt) => PathBuf::from(prebuilt),
        None => {
            for watched in ["components", "crates/epc-model", "crates/epc-source", "crates/http-client", "crates/landing",
                "crates/epc-bindings", "crates/google-auth", "crates/bigquery", "crates/bulk", "wit", "sql", "Cargo.toml", "Cargo.lock", ".cargo/config.toml"]
            {
                println!("cargo:rerun-if-changed={}", root.join(watched).display());
            }
            ensure_target();
            // OUT_DIR is <target>/<profile>/build/<pkg>-<hash>/out.
            let target = out.ancestors().nth(4).expect("OUT_DIR sits four levels under the target directory");
            build(&root, &target.join("components"))
        }
    };
    // Spin composes only one level of dependencies: the warehouse steps
    // get their BigQuery provider plugged in ahead of time.
    compose::compose_all(&dir).expect("composing the warehouse steps with bigquery");
    let composed = compose::COMPOSITIONS.iter().map(|(_, _, out)| *out);
    for file in COMPONENTS.iter().map(|(_, f)| *f).chain(composed) {
        let from = dir.join(file);
        std::fs::copy(&from, out.join(file)).unwrap_or_else(|e| panic!("copying component {}: {e}", from.display()));
    }
}

/// `rustup` does not add targets by itself where `RUSTUP_AUTO_INSTALL=0`;
/// add it, or say exactly what to run.
fn ensure_target() {
    let sysroot = Command::new(env::var("RUSTC").unwrap_or_else(|_| "rustc".into()))
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    let installed = |s: &Path| s.join("lib/rustlib").join(TARGET).exists();
    if sysroot.as_deref().is_some_and(installed) {
        return;
    }
    let added = Command::new("rustup").args(["target", "add", TARGET]).status().is_ok_and(|s| s.success());
    if !added && !sysroot.as_deref().is_some_and(installed) {
        panic!("the {TARGET} target is missing and could not be added: run `rustup target add {TARGET}`");
    }
}

fn build(root: &Path, target_dir: &Path) -> PathBuf {
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(root)
        .args(["build", "--release", "--locked", "--target", TARGET, "--target-dir"])
        .arg(target_dir);
    for (krate, _) in COMPONENTS {
        cmd.args(["-p", krate]);
    }
    // Flags meant for the host build must not leak into the wasm build.
    for var in ["CARGO_ENCODED_RUSTFLAGS", "RUSTFLAGS", "CARGO_BUILD_RUSTFLAGS", "CARGO_TARGET_DIR", "CARGO_BUILD_TARGET",
        "RUSTC_WORKSPACE_WRAPPER", "CARGO_PRIMARY_PACKAGE", "CARGO_PROFILE_RELEASE_DEBUG"]
    {
        cmd.env_remove(var);
    }
    let status = cmd.status().expect("running cargo for the components");
    assert!(status.success(), "building the components for {TARGET} failed (see above)");
    target_dir.join(TARGET).join("release")
}
