//! One JSON line per step on stderr: what Spin's logs keep, what a
//! log-based alert matches (`"level":"ERROR"`), and what the dame host reads
//! to draw progress and the summary.

use serde_json::{Map, Value, json};

pub fn emit(level: &str, event: &str, fields: Value) {
    let mut line = Map::new();
    line.insert("ts".into(), json!(jiff::Timestamp::now().round(jiff::Unit::Millisecond).map(|t| t.to_string()).unwrap_or_default()));
    line.insert("level".into(), json!(level));
    line.insert("event".into(), json!(event));
    if let Value::Object(f) = fields {
        line.extend(f);
    }
    eprintln!("{}", Value::Object(line));
}

pub fn info(event: &str, fields: Value) {
    emit("INFO", event, fields);
}

pub fn warn(event: &str, fields: Value) {
    emit("WARN", event, fields);
}

pub fn error(event: &str, fields: Value) {
    emit("ERROR", event, fields);
}
