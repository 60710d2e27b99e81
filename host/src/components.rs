//! The components, built by `build.rs` and carried inside the binary so
//! that `dame` runs anywhere without a separate `spin build`.

macro_rules! embed {
    ($($file:literal),* $(,)?) => {
        /// Component files by name, as the manifest's paths end.
        pub const EMBEDDED: &[(&str, &[u8])] = &[
            $(($file, include_bytes!(concat!(env!("OUT_DIR"), "/", $file)))),*
        ];
    };
}

embed!("pipeline.wasm", "fetch_page.wasm", "gzip_land.wasm", "load_month.wasm", "apply_views.wasm", "recs.wasm", "bigquery.wasm", "load_month_bigquery.wasm", "apply_views_bigquery.wasm", "fetch_bulk.wasm");

pub fn embedded(file_name: &str) -> Option<&'static [u8]> {
    EMBEDDED.iter().find(|(n, _)| *n == file_name).map(|(_, b)| *b)
}

/// The manifest this binary was built with.
pub const MANIFEST: &str = include_str!("../../spin.toml");
