use epc_model::{Certificate, Kind, Source, ndjson_line};
use flate2::Compression;
use flate2::write::GzEncoder;
use std::io::Write;

/// Encodes certificates as gzipped NDJSON, one envelope line each, streaming
/// every line straight into the encoder so only the compressed part is held.
///
/// Level 6 (zlib's default) is where miniz_oxide's speed and ratio balance:
/// lower levels save little time on JSON this repetitive and cost storage
/// and load time.
#[allow(clippy::too_many_arguments)]
pub fn encode_part(
    source: Source,
    kind: Kind,
    object: &str,
    landed_at: &str,
    records: &[Certificate],
) -> Result<Vec<u8>, String> {
    let mut gz = GzEncoder::new(Vec::with_capacity(64 * 1024), Compression::new(6));
    let mut line = Vec::with_capacity(32 * 1024);
    for c in records {
        line.clear();
        ndjson_line(
            &mut line,
            source,
            kind,
            &c.id,
            &c.lodgement_date,
            c.uprn.as_deref(),
            c.postcode.as_deref(),
            object,
            landed_at,
            &c.document,
        )?;
        gz.write_all(&line).map_err(|e| format!("compressing {object}: {e}"))?;
    }
    gz.finish().map_err(|e| format!("compressing {object}: {e}"))
}
