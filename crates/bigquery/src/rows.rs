//! Query results as JSON objects.
//!
//! `jobs.getQueryResults` sends each row as `{"f":[{"v":…}]}` with every
//! scalar as a string, and the schema separately. Callers want
//! `{"column": value}` with numbers as numbers, so the two are put back
//! together here once.

use serde_json::{Map, Value};

/// Turns the `rows` of a results page into one JSON object per row, using
/// the page's `schema.fields`.
pub fn row_objects(fields: &[Value], rows: &[Value]) -> Vec<Map<String, Value>> {
    rows.iter().map(|row| record(fields, row)).collect()
}

fn record(fields: &[Value], row: &Value) -> Map<String, Value> {
    let cells = row["f"].as_array().map(Vec::as_slice).unwrap_or(&[]);
    fields
        .iter()
        .zip(cells)
        .map(|(field, cell)| (field["name"].as_str().unwrap_or("").to_string(), value(field, &cell["v"])))
        .collect()
}

fn value(field: &Value, v: &Value) -> Value {
    if field["mode"].as_str() == Some("REPEATED") {
        let items = v.as_array().map(Vec::as_slice).unwrap_or(&[]);
        return Value::Array(items.iter().map(|item| scalar(field, &item["v"])).collect());
    }
    scalar(field, v)
}

fn scalar(field: &Value, v: &Value) -> Value {
    if v.is_null() {
        return Value::Null;
    }
    let ty = field["type"].as_str().unwrap_or("STRING");
    if matches!(ty, "RECORD" | "STRUCT") {
        let sub = field["fields"].as_array().map(Vec::as_slice).unwrap_or(&[]);
        return Value::Object(record(sub, v));
    }
    let Some(s) = v.as_str() else { return v.clone() };
    match ty {
        "INTEGER" | "INT64" => s.parse::<i64>().map(Value::from).unwrap_or_else(|_| s.into()),
        "FLOAT" | "FLOAT64" => s
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map(Value::Number)
            .unwrap_or_else(|| s.into()), // NaN and infinities stay text
        "BOOLEAN" | "BOOL" => match s {
            "true" => true.into(),
            "false" => false.into(),
            _ => s.into(),
        },
        "TIMESTAMP" => timestamp(s).map(Value::from).unwrap_or_else(|| s.into()),
        "JSON" => serde_json::from_str(s).unwrap_or_else(|_| s.into()),
        // DATE, DATETIME, TIME, NUMERIC (exact decimals), BYTES (base64),
        // GEOGRAPHY (WKT): text, as BigQuery writes them.
        _ => s.into(),
    }
}

/// BigQuery sends timestamps as microseconds since the epoch (with
/// `formatOptions.useInt64Timestamp`, which this client asks for) or as
/// float seconds; both become RFC 3339 UTC.
fn timestamp(s: &str) -> Option<String> {
    let micros = match s.parse::<i64>() {
        Ok(m) => m,
        Err(_) => (s.parse::<f64>().ok()? * 1e6).round() as i64,
    };
    jiff::Timestamp::from_microsecond(micros).ok().map(|t| t.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn cells_become_typed_values() {
        let fields = json!([
            {"name": "id", "type": "STRING"}, {"name": "n", "type": "INTEGER"}, {"name": "f", "type": "FLOAT"},
            {"name": "b", "type": "BOOLEAN"}, {"name": "ts", "type": "TIMESTAMP"}, {"name": "j", "type": "JSON"},
            {"name": "arr", "type": "INTEGER", "mode": "REPEATED"},
            {"name": "st", "type": "RECORD", "fields": [{"name": "a", "type": "INTEGER"}, {"name": "c", "type": "STRING"}]},
            {"name": "none", "type": "DATE"}
        ]);
        let rows = json!([{"f": [
            {"v": "a"}, {"v": "3"}, {"v": "1.5"}, {"v": "true"}, {"v": "1609840800000000"}, {"v": "{\"x\":[1,2]}"},
            {"v": [{"v": "1"}, {"v": "2"}]}, {"v": {"f": [{"v": "1"}, {"v": "x"}]}}, {"v": null}
        ]}]);
        let out = row_objects(fields.as_array().unwrap(), rows.as_array().unwrap());
        assert_eq!(
            Value::Object(out[0].clone()),
            json!({"id": "a", "n": 3, "f": 1.5, "b": true, "ts": "2021-01-05T10:00:00Z", "j": {"x": [1, 2]},
                   "arr": [1, 2], "st": {"a": 1, "c": "x"}, "none": null})
        );
        assert_eq!(timestamp("1.6098408E9").as_deref(), Some("2021-01-05T10:00:00Z"));
    }
}
