//! The recommendations of certificates already landed.
//!
//! Where they come from depends on the API and the kind:
//!
//! - GEPBD domestic: inside the certificate's own document
//!   (`suggested_improvements[]`), so no request is made;
//! - GEPBD non-domestic and display: a separate recommendation report
//!   (`CEPC-RR`, `DEC-RR`) that the certificate names in
//!   `related_certificate_number` (or `relatedRrn`), fetched with
//!   `/api/certificate`; its four payback lists hold the items;
//! - ODC: `/api/v1/{kind}/recommendations/{lmk-key}`, one row per item.
//!
//! Each certificate gives one [`Recs`]: its answer and its items in one
//! shape per kind whatever the API, so the warehouse views read a single
//! layout (the rules are in `docs/views.md`). A certificate with none, or
//! whose report the API does not have, is an answer like any other and is
//! landed; an answer that cannot be read is reported as malformed with the
//! certificate's identifier and is not landed, so the next run tries it
//! again.

use crate::problem::unexpected;
use crate::{Api, Certificate, Credentials, SourceError, encode};
use epc_model::{Kind, Source};
use futures::StreamExt;
use http_client::{Client, Request, Transport};
use serde_json::{Map, Value, json};

/// What the API said about a certificate's recommendations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// One or more items.
    Found,
    /// The certificate has none.
    None,
    /// A non-domestic or display certificate that names no report (GEPBD).
    NoReport,
    /// The report it names is not served (GEPBD 404).
    ReportMissing,
    /// The API does not know the certificate (ODC 404): removed since it
    /// was landed.
    NotFound,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Found => "found",
            Status::None => "none",
            Status::NoReport => "no-report",
            Status::ReportMissing => "report-missing",
            Status::NotFound => "not-found",
        }
    }
}

/// One certificate's recommendations, ready to land.
#[derive(Debug, Clone, PartialEq)]
pub struct Recs {
    pub status: Status,
    /// The GEPBD recommendation report the items came from, if any.
    pub report_number: Option<String>,
    /// In the shape of [`domestic_item`] or [`report_item`].
    pub items: Vec<Value>,
}

impl Recs {
    fn of(items: Vec<Value>, report_number: Option<String>) -> Recs {
        let status = if items.is_empty() { Status::None } else { Status::Found };
        Recs { status, report_number, items }
    }

    fn answer(status: Status, report_number: Option<String>) -> Recs {
        Recs { status, report_number, items: Vec::new() }
    }

    /// The landed record: `{"status", "report_number", "recommendations": [...]}`.
    pub fn document(&self) -> String {
        json!({"status": self.status.as_str(), "report_number": self.report_number, "recommendations": self.items})
            .to_string()
    }
}

/// What became of one certificate: its recommendations, or why they could
/// not be read (the message names the certificate).
pub type Outcome = Result<Recs, String>;

/// A domestic item: `item` (the register's order, 1…), `improvement_id`,
/// `improvement_type` (the letter), `summary_text`, `description_text`,
/// `id_text`, `indicative_cost` (the text as given, e.g. `£100 - £350`).
fn domestic_item(
    item: i64,
    id: Option<String>,
    letter: Option<String>,
    summary: Option<String>,
    description: Option<String>,
    id_text: Option<String>,
    cost: Option<String>,
) -> Value {
    json!({"item": item, "improvement_id": id, "improvement_type": letter, "summary_text": summary,
           "description_text": description, "id_text": id_text, "indicative_cost": cost})
}

/// A non-domestic or display item: `item` (1… across the payback lists),
/// `payback_type` (SHORT, MEDIUM, LONG, OTHER), `code`, `text`, `co2_impact`.
fn report_item(item: i64, payback: Option<String>, code: Option<String>, text: Option<String>, co2: Option<String>) -> Value {
    json!({"item": item, "payback_type": payback, "code": code, "text": text, "co2_impact": co2})
}

/// A value as text: strings as they are, numbers written out; anything
/// else is absent.
fn text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn object(doc: &str) -> Result<Map<String, Value>, String> {
    match serde_json::from_str::<Value>(doc) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err("is not a JSON object".into()),
        Err(e) => Err(format!("is not JSON ({e})")),
    }
}

/// GEPBD domestic: the items of a landed certificate document.
pub fn from_domestic_document(doc: &str) -> Result<Recs, String> {
    let doc = object(doc).map_err(|e| format!("the certificate document {e}"))?;
    let list = match doc.get("suggested_improvements") {
        None | Some(Value::Null) => return Ok(Recs::of(Vec::new(), None)),
        Some(Value::Array(list)) => list,
        Some(_) => return Err("suggested_improvements is not a list".into()),
    };
    let mut items = Vec::with_capacity(list.len());
    for (i, s) in list.iter().enumerate() {
        let Some(s) = s.as_object() else {
            return Err(format!("suggested_improvements[{i}] is not an object"));
        };
        // The register numbers items from 1; where a document does not, its
        // list order is the order.
        let item = s.get("sequence").and_then(Value::as_i64).unwrap_or(i as i64 + 1);
        let details = s.get("improvement_details");
        let texts = details.and_then(|d| d.get("improvement_texts"));
        items.push(domestic_item(
            item,
            text(details.and_then(|d| d.get("improvement_number"))),
            text(s.get("improvement_type")),
            text(texts.and_then(|t| t.get("improvement_summary"))),
            text(texts.and_then(|t| t.get("improvement_description"))),
            None,
            text(s.get("indicative_cost")),
        ));
    }
    Ok(Recs::of(items, None))
}

/// GEPBD non-domestic and display: the recommendation report a landed
/// certificate names, if any.
pub fn related_report(doc: &str) -> Result<Option<String>, String> {
    let doc = object(doc).map_err(|e| format!("the certificate document {e}"))?;
    let number = ["related_certificate_number", "relatedRrn", "related_rrn"]
        .iter()
        .find_map(|k| doc.get(*k).and_then(Value::as_str))
        .map(str::trim)
        .filter(|n| !n.is_empty());
    Ok(number.map(str::to_string))
}

/// The payback lists of a recommendation report, in report order.
const PAYBACKS: [(&str, &str); 4] =
    [("short_payback", "SHORT"), ("medium_payback", "MEDIUM"), ("long_payback", "LONG"), ("other_payback", "OTHER")];

/// The items of a GEPBD recommendation report (`CEPC-RR`, `DEC-RR`).
pub fn from_report(report: &Value) -> Result<Vec<Value>, String> {
    let Some(report) = report.as_object() else {
        return Err("the recommendation report is not a JSON object".into());
    };
    let mut items = Vec::new();
    for (field, payback) in PAYBACKS {
        let list = match report.get(field) {
            None | Some(Value::Null) => continue,
            Some(Value::Array(list)) => list,
            Some(_) => return Err(format!("the report's {field} is not a list")),
        };
        for (i, r) in list.iter().enumerate() {
            let Some(r) = r.as_object() else {
                return Err(format!("the report's {field}[{i}] is not an object"));
            };
            items.push(report_item(
                items.len() as i64 + 1,
                Some(payback.to_string()),
                text(r.get("recommendation_code")),
                text(r.get("recommendation")),
                text(r.get("co2_impact")),
            ));
        }
    }
    Ok(items)
}

/// The items of an ODC recommendations answer (`{"column-names", "rows"}`,
/// every value a string, keys kebab-case).
pub fn from_odc_rows(kind: Kind, body: &Value) -> Result<Vec<Value>, String> {
    let Some(rows) = body.get("rows").and_then(Value::as_array) else {
        return Err("expected {\"column-names\":…,\"rows\":[…]}".into());
    };
    let mut items = Vec::with_capacity(rows.len());
    for (i, row) in rows.iter().enumerate() {
        let Some(r) = row.as_object() else {
            return Err(format!("row {} is not an object", i + 1));
        };
        let get = |k: &str| text(r.get(k));
        let number = |k: &str| -> Result<i64, String> {
            get(k)
                .and_then(|v| v.trim().parse().ok())
                .ok_or_else(|| format!("row {} has no {k} number ({:?})", i + 1, r.get(k)))
        };
        items.push(match kind {
            Kind::Domestic => domestic_item(
                number("improvement-item")?,
                get("improvement-id"),
                None,
                get("improvement-summary-text"),
                get("improvement-descr-text"),
                get("improvement-id-text"),
                get("indicative-cost"),
            ),
            Kind::NonDomestic | Kind::Display => report_item(
                number("recommendation-item")?,
                get("payback-type"),
                get("recommendation-code"),
                get("recommendation"),
                get("co2-impact"),
            ),
        });
    }
    Ok(items)
}

/// The recommendations of `certificates` (landed certificates of `kind`),
/// in their order, several requests in flight. An error is returned only
/// for what no other certificate can get past (refused credentials, an
/// unreachable API); an answer that cannot be read is that certificate's
/// `Err` outcome and the rest go on.
pub async fn recommendations<T: Transport>(
    client: &Client<T>,
    credentials: &Credentials,
    api: &Api,
    kind: Kind,
    certificates: &[Certificate],
) -> Result<Vec<Outcome>, SourceError> {
    let results: Vec<Result<Outcome, SourceError>> = match (api.source, credentials) {
        (Source::Gepbd, _) if kind == Kind::Domestic => {
            certificates.iter().map(|c| Ok(from_domestic_document(&c.document))).collect()
        }
        (Source::Gepbd, Credentials::Gepbd { token }) => {
            futures::stream::iter(certificates)
                .map(|c| gepbd_report(client, token, api, kind, c))
                .buffered(crate::CONCURRENCY)
                .collect()
                .await
        }
        (Source::Odc, Credentials::Odc { email, api_key }) => {
            let auth = crate::odc::basic_auth(email, api_key);
            futures::stream::iter(certificates)
                .map(|c| odc(client, &auth, api, kind, c))
                .buffered(crate::CONCURRENCY)
                .collect()
                .await
        }
        _ => return Err(SourceError::InvalidInput("credentials do not match the source".into())),
    };
    results
        .into_iter()
        .zip(certificates)
        .map(|(r, c)| r.map(|o| o.map_err(|e| format!("{kind} certificate {}: {e}", c.id))))
        .collect()
}

/// An answer that arrived but cannot be read is the certificate's problem,
/// not the month's: it becomes the certificate's outcome.
fn per_certificate(r: Result<Recs, SourceError>) -> Result<Outcome, SourceError> {
    match r {
        Ok(recs) => Ok(Ok(recs)),
        Err(SourceError::Protocol(m)) => Ok(Err(m)),
        Err(e) => Err(e),
    }
}

async fn gepbd_report<T: Transport>(
    client: &Client<T>,
    token: &str,
    api: &Api,
    kind: Kind,
    c: &Certificate,
) -> Result<Outcome, SourceError> {
    let number = match related_report(&c.document) {
        Ok(Some(n)) => n,
        Ok(None) => return Ok(Ok(Recs::answer(Status::NoReport, None))),
        Err(e) => return Ok(Err(e)),
    };
    let url = format!("{}/api/certificate?certificate_number={}", api.base_url, encode(&number));
    let what = format!("{kind} certificate {}: recommendation report {number}", c.id);
    let request = Request::get(url).header("Authorization", format!("Bearer {token}")).header("Accept", "application/json");
    let r = crate::fetch_and_read(client, &request, |response| match response.status {
        200 => {
            let body: Value = serde_json::from_slice(&response.body)
                .map_err(|e| SourceError::Protocol(format!("{what}: unreadable answer ({e})")))?;
            let report = body.get("data").unwrap_or(&body);
            let items = from_report(report).map_err(|e| SourceError::Protocol(format!("{what}: {e}")))?;
            Ok(Recs::of(items, Some(number.clone())))
        }
        404 => Ok(Recs::answer(Status::ReportMissing, Some(number.clone()))),
        _ => Err(unexpected(&what, response)),
    })
    .await;
    per_certificate(r)
}

async fn odc<T: Transport>(client: &Client<T>, auth: &str, api: &Api, kind: Kind, c: &Certificate) -> Result<Outcome, SourceError> {
    let url = format!("{}/api/v1/{}/recommendations/{}", api.base_url, kind.as_str(), encode(&c.id));
    let what = format!("{kind} certificate {}: recommendations", c.id);
    let request = Request::get(url).header("Authorization", auth).header("Accept", "application/json");
    let r = crate::fetch_and_read(client, &request, |response| match response.status {
        // ODC answers "none" with an empty body.
        200 if response.body.iter().all(u8::is_ascii_whitespace) => Ok(Recs::of(Vec::new(), None)),
        200 => {
            let body: Value = serde_json::from_slice(&response.body)
                .map_err(|e| SourceError::Protocol(format!("{what}: unreadable answer ({e})")))?;
            let items = from_odc_rows(kind, &body).map_err(|e| SourceError::Protocol(format!("{what}: {e}")))?;
            Ok(Recs::of(items, None))
        }
        404 => Ok(Recs::answer(Status::NotFound, None)),
        _ => Err(unexpected(&what, response)),
    })
    .await;
    per_certificate(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/gepbd");

    #[test]
    fn domestic_items_come_from_the_document() {
        let doc = r#"{"suggested_improvements":[
            {"sequence":1,"indicative_cost":"£220 - £250","improvement_type":"G","improvement_details":{"improvement_number":66}},
            {"sequence":2,"indicative_cost":"£4,000 - £7,000","improvement_type":"N","improvement_details":{"improvement_number":19,
             "improvement_texts":{"improvement_summary":"Solar","improvement_description":"Solar water heating"}}}]}"#;
        let r = from_domestic_document(doc).unwrap();
        assert_eq!((r.status, r.items.len()), (Status::Found, 2));
        assert_eq!(r.items[0]["improvement_id"], "66");
        assert_eq!(r.items[0]["indicative_cost"], "£220 - £250");
        assert_eq!(r.items[1]["summary_text"], "Solar");
        assert_eq!(from_domestic_document(r#"{"schema_type":"RdSAP"}"#).unwrap().status, Status::None);
        assert_eq!(from_domestic_document(r#"{"suggested_improvements":[]}"#).unwrap().status, Status::None);
        assert!(from_domestic_document(r#"{"suggested_improvements":{"a":1}}"#).is_err());
        assert!(from_domestic_document("[1]").is_err());
        assert!(from_domestic_document("{").is_err());
    }

    #[test]
    fn report_items_are_numbered_across_the_payback_lists() {
        let report = json!({
            "short_payback": [{"co2_impact":"HIGH","recommendation":"T5","recommendation_code":"ECP-L5"},
                              {"co2_impact":"LOW","recommendation":"HF","recommendation_code":"EPC-L7"}],
            "medium_payback": [],
            "long_payback": [{"co2_impact":"HIGH","recommendation":"ASHP","recommendation_code":"EPC-R5"}],
        });
        let items = from_report(&report).unwrap();
        let got: Vec<(i64, &str, &str)> = items
            .iter()
            .map(|i| (i["item"].as_i64().unwrap(), i["payback_type"].as_str().unwrap(), i["code"].as_str().unwrap()))
            .collect();
        assert_eq!(got, [(1, "SHORT", "ECP-L5"), (2, "SHORT", "EPC-L7"), (3, "LONG", "EPC-R5")]);
        assert!(from_report(&json!({"short_payback": "x"})).is_err());
        assert!(from_report(&json!([])).is_err());
    }

    #[test]
    fn related_reports_are_read_from_either_name() {
        assert_eq!(related_report(r#"{"related_certificate_number":"0000-1"}"#).unwrap().as_deref(), Some("0000-1"));
        assert_eq!(related_report(r#"{"relatedRrn":" 0000-2 "}"#).unwrap().as_deref(), Some("0000-2"));
        assert_eq!(related_report(r#"{"related_certificate_number":""}"#).unwrap(), None);
        assert!(related_report("nope").is_err());
    }

    #[test]
    fn odc_rows_map_by_name() {
        let body = json!({"column-names": [], "rows": [
            {"lmk-key":"k","improvement-item":"2","improvement-summary-text":"","improvement-descr-text":"",
             "improvement-id":"5","improvement-id-text":"Increase loft insulation to 270 mm","indicative-cost":"£100 - £350"}]});
        let items = from_odc_rows(Kind::Domestic, &body).unwrap();
        assert_eq!(items[0]["item"], 2);
        assert_eq!(items[0]["id_text"], "Increase loft insulation to 270 mm");
        let bad = json!({"rows": [{"recommendation-item": "x"}]});
        assert!(from_odc_rows(Kind::Display, &bad).unwrap_err().contains("recommendation-item"));
    }

    #[test]
    fn the_services_own_samples_read() {
        let sample = |file: &str| -> Value {
            let text = std::fs::read_to_string(format!("{SAMPLES}/{file}")).unwrap_or_else(|e| panic!("{file}: {e}"));
            let v: Value = serde_json::from_str(&text).unwrap();
            v.get("data").cloned().unwrap_or(v)
        };
        for file in ["CEPC-8.0.0_cepc-rr.json", "CEPC-8.0.0_dec-rr.json"] {
            let items = from_report(&sample(file)).unwrap();
            assert_eq!(items.len(), 5, "{file}");
            assert_eq!(items[0]["payback_type"], "SHORT");
            assert_eq!(items[4]["payback_type"], "OTHER");
        }
        let r = from_domestic_document(&sample("RdSAP-Schema-21.0.1_epc.json").to_string()).unwrap();
        let costs: Vec<&str> = r.items.iter().map(|i| i["indicative_cost"].as_str().unwrap()).collect();
        assert_eq!(costs, ["£220 - £250", "£4,000 - £7,000", "£8,000 - £10,000"]);
    }
}
