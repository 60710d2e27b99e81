//! `GET /api/certificate` documents over a real socket.

mod common;

use std::collections::HashMap;

use common::*;
use epc_emulator::gepbd_certificate_number;
use serde_json::{Value, json};

/// Fields the emulator adds around the source values, and the fixed parts of
/// value wrappers (`language`, `currency`, `quantity`).
const ADDED: [&str; 8] = [
    "certificate_number",
    "schema_type",
    "assessment_type",
    "status",
    "related_certificate_number",
    "language",
    "currency",
    "quantity",
];

/// Every non-null leaf of a document that is not one of [`ADDED`].
fn leaves<'a>(v: &'a Value, key: &str, out: &mut Vec<&'a Value>) {
    match v {
        Value::Object(m) => m.iter().for_each(|(k, v)| leaves(v, k, out)),
        Value::Array(a) => a.iter().for_each(|v| leaves(v, key, out)),
        Value::Null => {}
        _ if ADDED.contains(&key) => {}
        leaf => out.push(leaf),
    }
}

fn rating(s: &str) -> Option<i64> {
    Some(match s {
        "Very Poor" => 1,
        "Poor" => 2,
        "Average" => 3,
        "Good" => 4,
        "Very Good" => 5,
        "N/A" => 0,
        _ => return None,
    })
}

/// Whether a document leaf holds this source value.
fn holds(leaf: &Value, raw: &str) -> bool {
    match leaf {
        Value::String(s) => s == raw,
        Value::Number(n) => {
            raw.parse::<f64>().ok() == n.as_f64()
                || rating(raw).is_some_and(|r| n.as_i64() == Some(r))
        }
        _ => false,
    }
}

fn document(s: &Server, lmk_key: &str) -> Value {
    let r = s.gepbd(
        "/api/certificate",
        &[("certificate_number", &gepbd_certificate_number(lmk_key))],
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let mut body = r.json();
    assert_eq!(body.as_object().unwrap().len(), 1, "only data");
    body["data"].take()
}

#[test]
fn documents_carry_every_source_value() {
    let s = start(config());
    for file in [DOMESTIC, NON_DOMESTIC, DISPLAY] {
        for row in rows(file) {
            let doc = document(&s, &row["LMK_KEY"]);
            assert_eq!(
                doc["certificate_number"],
                gepbd_certificate_number(&row["LMK_KEY"])
            );
            let mut found = Vec::new();
            leaves(&doc, "", &mut found);
            let wanted: Vec<(&String, &String)> =
                row.iter().filter(|(_, v)| !v.is_empty()).collect();
            assert_eq!(
                found.len(),
                wanted.len(),
                "{file} {}: one document value per non-empty source value",
                row["LMK_KEY"]
            );
            for (column, raw) in wanted {
                assert!(
                    found.iter().any(|leaf| holds(leaf, raw)),
                    "{file} {}: {column}={raw:?} is not in the document",
                    row["LMK_KEY"]
                );
            }
        }
    }
}

#[test]
fn domestic_documents_use_the_official_field_names() {
    let s = start(config());
    let all = rows(DOMESTIC);
    let existing = all
        .iter()
        .find(|r| r["TRANSACTION_TYPE"] == "marketed sale" && !r["UPRN"].is_empty())
        .unwrap();
    let doc = document(&s, &existing["LMK_KEY"]);
    let v = |c: &str| existing[c].as_str();
    assert_eq!(doc["schema_type"], "RdSAP-Schema-21.0.1");
    assert_eq!(doc["assessment_type"], "RdSAP");
    assert_eq!(doc["address_line_1"], v("ADDRESS1"));
    assert_eq!(doc["postcode"], v("POSTCODE"));
    assert_eq!(doc["post_town"], v("POSTTOWN"));
    assert_eq!(doc["uprn"], v("UPRN").parse::<i64>().unwrap());
    assert_eq!(doc["uprn_source"], v("UPRN_SOURCE"));
    assert_eq!(doc["registration_date"], v("LODGEMENT_DATE"));
    assert_eq!(doc["inspection_date"], v("INSPECTION_DATE"));
    assert_eq!(
        doc["current_energy_efficiency_band"],
        v("CURRENT_ENERGY_RATING")
    );
    assert_eq!(
        doc["energy_rating_current"],
        v("CURRENT_ENERGY_EFFICIENCY").parse::<i64>().unwrap()
    );
    assert_eq!(
        doc["total_floor_area"].as_f64(),
        v("TOTAL_FLOOR_AREA").parse::<f64>().ok()
    );
    assert_eq!(
        doc["co2_emissions_current"].as_f64(),
        v("CO2_EMISSIONS_CURRENT").parse::<f64>().ok()
    );
    assert_eq!(
        doc["heating_cost_current"].as_f64(),
        v("HEATING_COST_CURRENT").parse::<f64>().ok()
    );
    assert_eq!(
        doc["walls"][0]["description"],
        json!({"value": v("WALLS_DESCRIPTION"), "language": "1"})
    );
    assert_eq!(
        doc["walls"][0]["energy_efficiency_rating"],
        rating(v("WALLS_ENERGY_EFF")).unwrap()
    );
    assert_eq!(
        doc["window"]["description"]["value"],
        v("WINDOWS_DESCRIPTION")
    );
    assert_eq!(
        doc["secondary_heating"]["energy_efficiency_rating"], 0,
        "N/A → 0"
    );
    assert_eq!(
        doc["main_heating_controls"][0]["description"]["value"],
        v("MAINHEATCONT_DESCRIPTION")
    );
    for column in [
        "LODGEMENT_DATETIME",
        "MAIN_FUEL",
        "CONSTRUCTION_AGE_BAND",
        "LOCAL_AUTHORITY",
        "CONSTITUENCY",
        "LMK_KEY",
    ] {
        assert_eq!(doc[column.to_lowercase()], v(column), "{column}");
    }

    // New dwellings are SAP documents: plain descriptions, costs with a currency.
    let new = all
        .iter()
        .find(|r| r["TRANSACTION_TYPE"] == "new dwelling")
        .unwrap();
    let doc = document(&s, &new["LMK_KEY"]);
    assert_eq!(doc["schema_type"], "SAP-Schema-19.2.0");
    assert_eq!(doc["assessment_type"], "SAP");
    assert_eq!(
        doc["walls"][0]["description"],
        new["WALLS_DESCRIPTION"].as_str()
    );
    assert_eq!(
        doc["windows"]["description"],
        new["WINDOWS_DESCRIPTION"].as_str()
    );
    assert_eq!(doc["heating_cost_current"]["currency"], "GBP");
    assert_eq!(
        doc["heating_cost_current"]["value"].as_f64(),
        new["HEATING_COST_CURRENT"].parse::<f64>().ok()
    );

    // An empty UPRN is null.
    let no_uprn = all.iter().find(|r| r["UPRN"].is_empty()).unwrap();
    assert_eq!(document(&s, &no_uprn["LMK_KEY"])["uprn"], Value::Null);
}

#[test]
fn non_domestic_and_display_documents() {
    let s = start(config());
    let nd = &rows(NON_DOMESTIC)[1];
    let doc = document(&s, &nd["LMK_KEY"]);
    assert_eq!(doc["schema_type"], "CEPC-8.0.0");
    assert_eq!(doc["assessment_type"], "CEPC");
    assert_eq!(
        doc["current_energy_efficiency_band"],
        nd["ASSET_RATING_BAND"].as_str()
    );
    assert_eq!(
        doc["asset_rating"],
        nd["ASSET_RATING"].parse::<i64>().unwrap()
    );
    assert_eq!(
        doc["technical_information"]["floor_area"],
        nd["FLOOR_AREA"].parse::<i64>().unwrap()
    );
    assert_eq!(
        doc["ser"].as_f64(),
        nd["STANDARD_EMISSIONS"].parse::<f64>().ok()
    );
    assert_eq!(
        doc["ac_questionnaire"]["ac_present"],
        nd["AIRCON_PRESENT"].as_str()
    );
    let rrn = doc["related_certificate_number"].as_str().unwrap();
    assert_eq!(rrn.len(), 24);
    // The search row names the same report.
    let r = s
        .gepbd("/api/non-domestic/search", &[("postcode", &nd["POSTCODE"])])
        .json();
    let row = r["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["certificateNumber"] == doc["certificate_number"])
        .unwrap();
    assert_eq!(row["relatedRrn"], rrn);

    let dec = &rows(DISPLAY)[9];
    assert_eq!(dec["CURRENT_OPERATIONAL_RATING"], "9999");
    let doc = document(&s, &dec["LMK_KEY"]);
    assert_eq!(doc["assessment_type"], "DEC");
    assert_eq!(doc["this_assessment"]["energy_rating"], 9999);
    assert_eq!(doc["current_energy_efficiency_band"], "G");
    assert!(doc["related_certificate_number"].is_string());
}

#[test]
fn certificate_errors() {
    let s = start(config());
    let r = s.gepbd(
        "/api/certificate",
        &[("certificate_number", "0000-0000-0000-0000-0000")],
    );
    assert_eq!(r.status, 404);
    assert_eq!(r.json(), json!({"error": "Certificate not found"}));
    for bad in [
        "",
        "1234",
        "0000-0000-0000-0000-000X",
        "00000-0000-0000-0000-000",
    ] {
        let r = s.gepbd("/api/certificate", &[("certificate_number", bad)]);
        assert_eq!(r.status, 400, "{bad:?}");
        assert!(r.json()["error"].is_string());
    }
    let r = s.gepbd("/api/certificate", &[]);
    assert_eq!(r.status, 400);
}

#[test]
fn certificate_numbers_are_stable_and_unique() {
    // Pinned: a change here breaks every client checkpoint made against the emulator.
    assert_eq!(
        gepbd_certificate_number(
            "0003352408dad177e827f77c62ed7172f2f16336c44dcdedbc315d08755600a2"
        ),
        PINNED
    );
    let mut seen = HashMap::new();
    for file in [DOMESTIC, NON_DOMESTIC, DISPLAY] {
        for row in rows(file) {
            let n = gepbd_certificate_number(&row["LMK_KEY"]);
            assert!(
                n.len() == 24
                    && n.split('-')
                        .all(|g| g.len() == 4 && g.bytes().all(|b| b.is_ascii_digit())),
                "{n}"
            );
            if let Some(other) = seen.insert(n.clone(), row["LMK_KEY"].clone()) {
                panic!("{n} for both {other} and {}", row["LMK_KEY"]);
            }
        }
    }
    assert_eq!(seen.len(), 1624 + 60 + 55);
}

/// First 16 bytes of SHA-256 of the key, big-endian, mod 10^20 (checked with Python hashlib).
const PINNED: &str = "0680-7146-7967-3357-3360";
