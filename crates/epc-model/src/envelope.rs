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

/// [`Envelope`] without its record: what [`ndjson_line`] serialises before
/// appending the document's own text.
#[derive(Serialize)]
struct Head<'a> {
    source: Source,
    kind: Kind,
    certificate_number: Option<&'a str>,
    lmk_key: Option<&'a str>,
    lodgement_date: &'a str,
    uprn: Option<&'a str>,
    postcode: Option<&'a str>,
    landed_object: &'a str,
    landed_at: &'a str,
}

/// Appends one NDJSON line to `out`: an [`Envelope`], byte for byte.
///
/// `document` must be one JSON object, as the producers (`fetch-page`,
/// `fetch-bulk`, `recs`) guarantee: each parses every document where it
/// enters from the API or a file, and refuses what is not JSON there, with
/// the request or line that brought it. Parsing it again here doubled the
/// JSON work of landing (a month's 570 MB scanned twice) for no new
/// guarantee, so this only checks that the text is shaped as an object
/// (which a cut-short document is not) and copies it as it is. Line breaks
/// between its tokens become spaces (JSON strings cannot hold raw line
/// breaks, so no value changes) so that one certificate is one line.
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
    let document = one_line(document);
    let record = document.trim();
    if !(record.len() >= 2 && record.starts_with('{') && record.ends_with('}')) {
        let shown: String = record.chars().take(40).collect();
        return Err(format!("certificate {id}: the document is not a JSON object (it starts {shown:?})"));
    }
    let (certificate_number, lmk_key) = match source {
        Source::Gepbd => (Some(id), None),
        Source::Odc => (None, Some(id)),
    };
    let head =
        Head { source, kind, certificate_number, lmk_key, lodgement_date, uprn, postcode, landed_object, landed_at };
    serde_json::to_writer(&mut *out, &head).map_err(|e| format!("certificate {id}: {e}"))?;
    // `{…}` becomes `{…,"record":<document>}`.
    out.pop();
    out.extend_from_slice(b",\"record\":");
    out.extend_from_slice(record.as_bytes());
    out.extend_from_slice(b"}\n");
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
    fn lines_are_the_envelope_serialised() {
        let doc = r#"{"a":"x","b":[1,2.5,null],"c":{"d":"\u00e9"}}"#;
        let mut out = Vec::new();
        ndjson_line(&mut out, Source::Gepbd, Kind::Domestic, "0001-0002", "2021-01-02", Some("12"), None, "o", "t", doc)
            .unwrap();
        let record: &RawValue = serde_json::from_str(doc).unwrap();
        let envelope = Envelope {
            source: Source::Gepbd,
            kind: Kind::Domestic,
            certificate_number: Some("0001-0002"),
            lmk_key: None,
            lodgement_date: "2021-01-02",
            uprn: Some("12"),
            postcode: None,
            landed_object: "o",
            landed_at: "t",
            record,
        };
        let mut expected = serde_json::to_vec(&envelope).unwrap();
        expected.push(b'\n');
        assert_eq!(String::from_utf8(out).unwrap(), String::from_utf8(expected).unwrap());
    }

    #[test]
    fn a_broken_document_names_its_certificate() {
        let err = ndjson_line(&mut Vec::new(), Source::Gepbd, Kind::Display, "0000-1", "d", None, None, "o", "t", "{")
            .unwrap_err();
        assert!(err.contains("0000-1"));
    }
}

/// JSON text on one line: line breaks can only sit between tokens (a JSON
/// string cannot hold a raw one), so they become spaces and no value
/// changes. Borrowed when there is none, which is nearly always.
///
/// `memchr2` rather than `str::contains([..])`: the char-pattern search
/// decoded every character and was 2–3% of a landing run's CPU on its own,
/// for a check that is almost always false.
pub fn one_line(json: &str) -> std::borrow::Cow<'_, str> {
    if memchr::memchr2(b'\n', b'\r', json.as_bytes()).is_some() {
        json.replace(['\n', '\r'], " ").into()
    } else {
        json.into()
    }
}
