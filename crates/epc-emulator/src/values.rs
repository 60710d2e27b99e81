//! Conversions of single source values, shared by the documents, the search
//! rows and the ODC rows.
//!
//! The ODC bulk CSV holds every value as text. The two APIs present the same
//! text differently: ODC keeps every value a string (empty as `""`), GEPBD
//! documents carry numbers as JSON numbers, ratings as integers and empty
//! values as `null`. These helpers hold those rules in one place so that the
//! two views cannot drift apart.

use jiff::civil::Date;
use serde_json::Value;

/// A source value as a GEPBD document carries it: empty → `null`, a value
/// that reads as a number → a JSON number, anything else (placeholders such as
/// `NO DATA!` included) → the string as given.
///
/// Only plain decimal notation counts as a number (`-12`, `36.0`), and never
/// with a redundant leading zero (`01`, `007`): such values are codes whose
/// text matters (a floor level `01` is not `1`), so they stay strings. Integers
/// too large for an `i64` (34-digit LMK keys) also stay strings, since a JSON
/// consumer would silently lose their precision.
pub fn auto(raw: &str) -> Value {
    if raw.is_empty() {
        return Value::Null;
    }
    number(raw).unwrap_or_else(|| Value::String(raw.to_owned()))
}

/// A value that must stay text even when it looks numeric (descriptions,
/// property types, dates): empty → `null`, else the string as given.
pub fn text(raw: &str) -> Value {
    if raw.is_empty() {
        Value::Null
    } else {
        Value::String(raw.to_owned())
    }
}

/// `Some(number)` when `raw` is plain decimal notation as described in [`auto`].
pub fn number(raw: &str) -> Option<Value> {
    let digits = raw.strip_prefix('-').unwrap_or(raw);
    let (int, frac) = match digits.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (digits, None),
    };
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !all_digits(int) || (int.len() > 1 && int.starts_with('0')) {
        return None;
    }
    match frac {
        None => raw.parse::<i64>().ok().map(Value::from),
        Some(f) if all_digits(f) => raw
            .parse::<f64>()
            .ok()
            .filter(|x| x.is_finite())
            .and_then(serde_json::Number::from_f64)
            .map(Value::Number),
        Some(_) => None,
    }
}

/// An element rating as the GEPBD documents give it: `Very Poor`..`Very Good`
/// → 1..5, `N/A` → 0 (as in the official samples), empty → `null`, and any
/// other value (e.g. `NO DATA!`) kept as the original string so nothing is lost.
pub fn rating(raw: &str) -> Value {
    let n = match raw.trim().to_ascii_lowercase().as_str() {
        "" => return Value::Null,
        "very poor" => 1,
        "poor" => 2,
        "average" => 3,
        "good" => 4,
        "very good" => 5,
        "n/a" => 0,
        _ => return Value::String(raw.to_owned()),
    };
    Value::from(n)
}

/// A UPRN as GEPBD gives it: an integer when the source holds one, else
/// `null` (the search rows) — see [`uprn_value`] for documents.
pub fn uprn(raw: &str) -> Option<i64> {
    let t = raw.trim();
    if let Ok(n) = t.parse::<i64>() {
        return Some(n);
    }
    // Some exports carry "100110786110.0"; accept an integral float.
    t.parse::<f64>()
        .ok()
        .filter(|x| x.is_finite() && x.fract() == 0.0 && x.abs() < 9.0e15)
        .map(|x| x as i64)
}

/// A UPRN inside a document: the integer when there is one, `null` when
/// empty, and any other text (`UPRN-000000000001`) kept as given.
pub fn uprn_value(raw: &str) -> Value {
    match uprn(raw) {
        Some(n) => Value::from(n),
        None => text(raw),
    }
}

/// The postcode key both APIs match on: spaces removed, upper case.
pub fn postcode_key(raw: &str) -> String {
    raw.chars()
        .filter(|c| !c.is_whitespace())
        .flat_map(char::to_uppercase)
        .collect()
}

/// A lower-cased address with punctuation and runs of spaces collapsed, so a
/// partial-address search (`9 new union`) matches `9, New Union Street`.
pub fn address_key(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for word in raw
        .split(|c: char| c.is_whitespace() || c == ',')
        .filter(|w| !w.is_empty())
    {
        if !out.is_empty() {
            out.push(' ');
        }
        out.extend(word.chars().flat_map(char::to_lowercase));
    }
    out
}

/// `LODGEMENT_DATE` → `lodgement_date`: the GEPBD top-level name of a column
/// that has no official field in the samples.
pub fn snake(column: &str) -> String {
    column.to_ascii_lowercase()
}

/// `LODGEMENT_DATE` → `lodgement-date`: the ODC API's key for a column.
pub fn kebab(column: &str) -> String {
    column.to_ascii_lowercase().replace('_', "-")
}

/// A date as the bulk files write it: `YYYY-MM-DD` (ODC) or `DD/MM/YYYY`
/// (some GEPBD exports), optionally followed by a time, which is ignored.
pub fn parse_date(raw: &str) -> Option<Date> {
    let day_part = raw.trim().split([' ', 'T']).next()?;
    let parts: Vec<&str> = if day_part.contains('-') {
        day_part.split('-').collect()
    } else {
        let mut p: Vec<&str> = day_part.split('/').collect();
        p.reverse();
        p
    };
    let [y, m, d] = parts.as_slice() else {
        return None;
    };
    if y.len() != 4 || m.is_empty() || m.len() > 2 || d.is_empty() || d.len() > 2 {
        return None;
    }
    Date::new(y.parse().ok()?, m.parse().ok()?, d.parse().ok()?).ok()
}

/// The time of day in a lodgement datetime (`2021-08-06 07:35:31`,
/// `2021-03-19 00:00:00.000000`, `22/02/2021 00:00`) as `HHMMSS`; `000000`
/// when the value carries no readable time (some rows hold only the date).
pub fn time_digits(raw: &str) -> String {
    let time = raw
        .trim()
        .split_once([' ', 'T'])
        .map(|(_, t)| t)
        .unwrap_or("");
    let mut fields = time.split('.').next().unwrap_or("").split(':');
    let mut out = String::with_capacity(6);
    for _ in 0..3 {
        let f = fields.next().unwrap_or("0");
        match f.parse::<u8>() {
            Ok(n) if n < 60 && f.len() <= 2 => out.push_str(&format!("{n:02}")),
            _ => return "000000".to_owned(),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn numbers_only_when_the_text_survives() {
        assert_eq!(auto("36"), json!(36));
        assert_eq!(auto("36.0"), json!(36.0));
        assert_eq!(auto("-1"), json!(-1));
        assert_eq!(auto("0.5"), json!(0.5));
        assert_eq!(auto("0"), json!(0));
        assert_eq!(auto("01"), json!("01"));
        assert_eq!(auto(""), Value::Null);
        assert_eq!(auto("NO DATA!"), json!("NO DATA!"));
        assert_eq!(auto("1e5"), json!("1e5"));
        assert_eq!(auto("NaN"), json!("NaN"));
        assert_eq!(
            auto("1573380469022017090821481343938953"),
            json!("1573380469022017090821481343938953")
        );
        assert_eq!(auto("1."), json!("1."));
    }

    #[test]
    fn ratings() {
        assert_eq!(rating("Very Poor"), json!(1));
        assert_eq!(rating("Very Good"), json!(5));
        assert_eq!(rating("N/A"), json!(0));
        assert_eq!(rating("NO DATA!"), json!("NO DATA!"));
        assert_eq!(rating(""), Value::Null);
    }

    #[test]
    fn dates_and_times() {
        assert_eq!(
            parse_date("2021-08-06"),
            Some(Date::new(2021, 8, 6).unwrap())
        );
        assert_eq!(
            parse_date("22/02/2021"),
            Some(Date::new(2021, 2, 22).unwrap())
        );
        assert_eq!(parse_date("2021-02-30"), None);
        assert_eq!(parse_date("NO DATA!"), None);
        assert_eq!(time_digits("2021-08-06 07:35:31"), "073531");
        assert_eq!(time_digits("2021-03-19 00:00:00.000000"), "000000");
        assert_eq!(time_digits("22/02/2021 13:05"), "130500");
        assert_eq!(time_digits("2021-02-05"), "000000");
    }

    #[test]
    fn keys() {
        assert_eq!(postcode_key(" ts25 3jh "), "TS253JH");
        assert_eq!(
            address_key("21 HERIOT GRANGE,  HARTLEPOOL"),
            "21 heriot grange hartlepool"
        );
        assert_eq!(kebab("LODGEMENT_DATETIME"), "lodgement-datetime");
        assert_eq!(uprn("100110786110"), Some(100110786110));
        assert_eq!(uprn("UPRN-000000000001"), None);
        assert_eq!(uprn_value(""), Value::Null);
    }
}
