//! Plugs a provider component into the imports of another, ahead of time.
//!
//! Spin composes a component with its dependencies when it loads the app,
//! but only one level deep: a dependency's own imports go to the host. The
//! warehouse steps (`load-month`, `apply-views`) import
//! `dame:epc/warehouse`, which the `bigquery` component provides; for Spin
//! they are therefore composed with it here, with `wac-graph` (what Spin
//! itself uses), into `load_month_bigquery.wasm` and
//! `apply_views_bigquery.wasm`. The dame host uses the plain ones when it
//! provides the warehouse itself (DuckDB).

use anyhow::{Context, Result};
use std::path::Path;
use wac_graph::types::Package;
use wac_graph::{CompositionGraph, EncodeOptions, plug};

/// The compositions the app needs: (socket, plug, output), file names in
/// the components' folder.
pub const COMPOSITIONS: &[(&str, &str, &str)] = &[
    ("load_month.wasm", "bigquery.wasm", "load_month_bigquery.wasm"),
    ("apply_views.wasm", "bigquery.wasm", "apply_views_bigquery.wasm"),
];

/// `socket` with every import that `plug_bytes` exports served by it.
pub fn compose(socket_bytes: &[u8], plug_bytes: &[u8]) -> Result<Vec<u8>> {
    let mut graph = CompositionGraph::new();
    let socket = Package::from_bytes("dame:socket", None, socket_bytes.to_vec(), graph.types_mut())?;
    let socket = graph.register_package(socket)?;
    let provider = Package::from_bytes("dame:plug", None, plug_bytes.to_vec(), graph.types_mut())?;
    let provider = graph.register_package(provider)?;
    match plug(&mut graph, vec![provider], socket) {
        Ok(()) => Ok(graph.encode(EncodeOptions::default())?),
        // The socket does not import what the plug exports (a component
        // that does not use its warehouse): it is complete as it is.
        Err(wac_graph::PlugError::NoPlugHappened) => Ok(socket_bytes.to_vec()),
        Err(e) => Err(anyhow::anyhow!("composing: {e:?}")),
    }
}

/// Writes every composition of [`COMPOSITIONS`] in `dir`.
pub fn compose_all(dir: &Path) -> Result<()> {
    for (socket, provider, out) in COMPOSITIONS {
        let read = |f: &str| std::fs::read(dir.join(f)).with_context(|| format!("reading {}", dir.join(f).display()));
        let bytes = compose(&read(socket)?, &read(provider)?).with_context(|| format!("composing {out}"))?;
        std::fs::write(dir.join(out), bytes).with_context(|| format!("writing {}", dir.join(out).display()))?;
    }
    Ok(())
}
