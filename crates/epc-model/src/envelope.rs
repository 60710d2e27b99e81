//! One landed line: the certificate's document wrapped with what loading
//! needs, so the warehouse can partition, cluster and trace every row
//! without parsing the document.

use crate::{Kind, Source};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// The NDJSON line written for each certificate.
///
/// Both identifier columns are always present (one of them null) so that
/// the raw tables of both sources have one schema.
#[derive(Debug, Serialize, Deserialize)]
pub struct Envelope<'a> {
    pub source: Source,
    pub kind: Kind,
    pub certificate_number: Option<&'a str>,
    pub lmk_key: Option<&'a str>,
    pub lodgement_date: &'a str,
    pub uprn: Option<&'a str>,
    pub postcode: Option<&'a str>,
    /// The object this line was landed in.
    pub landed_object: &'a str,
    /// RFC 3339: when the page was landed.
    pub landed_at: &'a str,
    #[serde(borrow)]
    pub record: &'a RawValue,
}

/// Appends one NDJSON line to `out`.
///
/// `document` must be one JSON value; line breaks between its tokens are
/// turned into spaces (JSON strings cannot hold raw line breaks, so this
/// never changes a value) so that one certificate is always one line.
#[allow(clippy::too_many_arguments)]
pub fn ndjson_line(
    out: &mut Vec<u8>,
    source: Source,
    kind: Kind,
    id: &str,
    lodgement_date: &str,
    uprn: Option<&str>,
    postcode: Option<&str>,
    landed_object: &str,
    landed_at: &str,
    document: &str,
) -> Result<(), String> {
    let single_line;
    let document = if document.contains(['\n', '\r']) {
        single_line = document.replace(['\n', '\r'], " ");
        single_line.as_str()
    } else {
        document
    };
    let record: &RawValue =
        serde_json::from_str(document).map_err(|e| format!("certificate {id}: document is not JSON: {e}"))?;
    let (certificate_number, lmk_key) = match source {
        Source::Gepbd => (Some(id), None),
        Source::Odc => (None, Some(id)),
    };
    let line = Envelope {
        source,
        kind,
        certificate_number,
        lmk_key,
        lodgement_date,
        uprn,
        postcode,
        landed_object,
        landed_at,
        record,
    };
    serde_json::to_writer(&mut *out, &line).map_err(|e| format!("certificate {id}: {e}"))?;
    out.push(b'\n');
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_single_and_carry_the_document() {
        let mut out = Vec::new();
        let doc = "{\n  \"a\": \"x\\ny\",\n  \"b\": [1, 2]\n}";
        ndjson_line(&mut out, Source::Odc, Kind::Domestic, "k1", "2021-01-02", None, Some("TS1 1AA"), "o", "t", doc)
            .unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text.matches('\n').count(), 1);
        let line: Envelope = serde_json::from_str(text.trim_end()).unwrap();
        assert_eq!((line.lmk_key, line.certificate_number), (Some("k1"), None));
        let rec: serde_json::Value = serde_json::from_str(line.record.get()).unwrap();
        assert_eq!(rec["a"], "x\ny");
    }

    #[test]
    fn a_broken_document_names_its_certificate() {
        let err = ndjson_line(&mut Vec::new(), Source::Gepbd, Kind::Display, "0000-1", "d", None, None, "o", "t", "{")
            .unwrap_err();
        assert!(err.contains("0000-1"));
    }
}
