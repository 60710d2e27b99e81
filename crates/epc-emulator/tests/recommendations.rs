//! Recommendations through both APIs, over a real socket.

mod common;

use std::collections::BTreeMap;

use common::*;
use epc_emulator::{Config, Kind, Recommendations, gepbd_certificate_number};
use serde_json::{Value, json};

fn with_recs() -> Server {
    start(Config {
        recommendations: Some(Recommendations::default()),
        ..config()
    })
}

/// ODC rows of a certificate's recommendations; `None` for the empty body.
fn odc_recs(s: &Server, kind: &str, lmk: &str) -> Option<Vec<Value>> {
    let r = s.odc(
        &format!("/api/v1/{kind}/recommendations/{lmk}"),
        &[],
        "application/json",
    );
    assert_eq!(r.status, 200, "{kind} {lmk}: {}", r.body);
    if r.body.is_empty() {
        return None;
    }
    let body = r.json();
    let rows = body["rows"].as_array().unwrap().clone();
    let names: Vec<&str> = body["column-names"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    for row in &rows {
        let keys: Vec<&str> = row.as_object().unwrap().keys().map(String::as_str).collect();
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(keys, sorted);
        assert!(row.as_object().unwrap().values().all(Value::is_string), "{row}");
        assert_eq!(row["lmk-key"], lmk);
    }
    Some(rows)
}

#[test]
fn domestic_recommendations_agree_between_the_apis() {
    let s = with_recs();
    let expected = s.running().emulator().expected_recommendations();
    let mut seen: BTreeMap<String, (u64, u64, u64)> = BTreeMap::new();
    let columns = json!([
        "lmk-key",
        "improvement-item",
        "improvement-summary-text",
        "improvement-descr-text",
        "improvement-id",
        "improvement-id-text",
        "indicative-cost"
    ]);
    let mut checked_columns = false;
    for row in rows(DOMESTIC).iter().filter(|r| r["LODGEMENT_DATE"].as_str() < "2021-04") {
        let lmk = &row["LMK_KEY"];
        let number = gepbd_certificate_number(lmk);
        let doc = s.gepbd("/api/certificate", &[("certificate_number", &number)]).json();
        let improvements = doc["data"]["suggested_improvements"].as_array().unwrap().clone();
        let odc = odc_recs(&s, "domestic", lmk);
        if !checked_columns && odc.is_some() {
            let r = s.odc(&format!("/api/v1/domestic/recommendations/{lmk}"), &[], "application/json");
            assert_eq!(r.json()["column-names"], columns);
            checked_columns = true;
        }
        let odc = odc.unwrap_or_default();
        assert_eq!(improvements.len(), odc.len(), "{lmk}");
        for (i, (g, o)) in improvements.iter().zip(&odc).enumerate() {
            assert_eq!(g["sequence"], json!(i + 1));
            assert_eq!(o["improvement-item"], (i + 1).to_string());
            assert_eq!(
                o["improvement-id"],
                g["improvement_details"]["improvement_number"].to_string()
            );
            assert_eq!(o["indicative-cost"], g["indicative_cost"]);
            let cost = g["indicative_cost"].as_str().unwrap();
            assert!(cost.starts_with('£'), "{cost}");
            assert!(g["improvement_type"].is_string() && g["improvement_category"].is_i64());
            assert!(
                g["typical_saving"].is_i64() || g["typical_saving"]["currency"] == "GBP",
                "{g}"
            );
            assert!(!o["improvement-id-text"].as_str().unwrap().is_empty());
        }
        let ratings: Vec<i64> = improvements
            .iter()
            .map(|g| g["energy_performance_rating"].as_i64().unwrap())
            .collect();
        assert!(ratings.windows(2).all(|w| w[0] <= w[1]), "ratings climb: {ratings:?}");
        let month = row["LODGEMENT_DATE"][..7].to_owned();
        let e = seen.entry(month).or_default();
        if odc.is_empty() {
            e.2 += 1;
        } else {
            e.0 += 1;
            e.1 += odc.len() as u64;
        }
    }
    for (month, (certs, recs, without)) in &seen {
        let x = expected.month(Kind::Domestic, month);
        assert_eq!((x.certificates, x.recommendations, x.without), (*certs, *recs, *without), "{month}");
    }
    let raw = s.get("/_emulator/expected-recommendations", Auth::None, &[], None).json();
    assert_eq!(raw["kinds"]["domestic"]["2021-01"]["certificates"], expected.month(Kind::Domestic, "2021-01").certificates);
    let (with, without): (u64, u64) = seen.values().fold((0, 0), |a, v| (a.0 + v.0, a.1 + v.2));
    let share = without as f64 / (with + without) as f64;
    assert!((0.08..0.22).contains(&share), "~15% without: {share}");
    assert!(checked_columns);
}

#[test]
fn reports_agree_with_odc_and_some_are_missing() {
    let s = with_recs();
    let expected = s.running().emulator().expected_recommendations();
    for (kind, file, assessment) in [
        ("non-domestic", NON_DOMESTIC, "CEPC-RR"),
        ("display", DISPLAY, "DEC-RR"),
    ] {
        let k: Kind = kind.parse().unwrap();
        let (mut missing, mut without, mut recs) = (0, 0, 0);
        let mut expected_missing = 0;
        for month in expected.kinds[&k].keys() {
            expected_missing += expected.month(k, month).missing_reports;
        }
        for row in rows(file) {
            let lmk = &row["LMK_KEY"];
            let number = gepbd_certificate_number(lmk);
            let doc = s.gepbd("/api/certificate", &[("certificate_number", &number)]).json();
            let rrn = doc["data"]["related_certificate_number"].as_str().unwrap().to_owned();
            let odc = odc_recs(&s, kind, lmk).unwrap_or_default();
            if odc.is_empty() {
                without += 1;
            }
            recs += odc.len();
            let r = s.gepbd("/api/certificate", &[("certificate_number", &rrn)]);
            if r.status == 404 {
                missing += 1;
                assert_eq!(r.json()["error"], "Certificate not found");
                continue;
            }
            assert_eq!(r.status, 200, "{}", r.body);
            let report = r.json()["data"].clone();
            assert_eq!(report["assessment_type"], assessment);
            assert_eq!(report["schema_type"], "CEPC-8.0.0");
            assert_eq!(report["certificate_number"], rrn.as_str());
            assert_eq!(report["related_certificate_number"], number.as_str());
            // The report's lists, flattened in order, are ODC's rows.
            let mut flat = Vec::new();
            for (list, payback) in [
                ("short_payback", "SHORT"),
                ("medium_payback", "MEDIUM"),
                ("long_payback", "LONG"),
                ("other_payback", "OTHER"),
            ] {
                for item in report[list].as_array().unwrap() {
                    let keys: Vec<&String> = item.as_object().unwrap().keys().collect();
                    assert_eq!(keys, ["co2_impact", "recommendation", "recommendation_code"]);
                    flat.push((payback, item.clone()));
                }
            }
            assert_eq!(flat.len(), odc.len(), "{lmk}");
            for (i, ((payback, item), o)) in flat.iter().zip(&odc).enumerate() {
                assert_eq!(o["payback-type"], *payback);
                assert_eq!(o["recommendation-item"], (i + 1).to_string());
                assert_eq!(o["recommendation-code"], item["recommendation_code"]);
                assert_eq!(o["recommendation"], item["recommendation"]);
                assert_eq!(o["co2-impact"], item["co2_impact"]);
            }
        }
        assert_eq!(missing, expected_missing, "{kind}");
        assert!(recs > 0 && without > 0, "{kind}: {recs} recommendations, {without} without");
    }
    let total_missing: u64 = [Kind::NonDomestic, Kind::Display]
        .iter()
        .flat_map(|k| expected.kinds[k].values())
        .map(|c| c.missing_reports)
        .sum();
    assert!(total_missing > 0, "some reports are missing on purpose");
}

#[test]
fn unknown_keys_and_the_default_without_recommendations() {
    let s = with_recs();
    let r = s.odc("/api/v1/domestic/recommendations/nope", &[], "application/json");
    assert_eq!(r.status, 404);
    // A key of another kind is unknown to this kind.
    let nd = &rows(NON_DOMESTIC)[0]["LMK_KEY"];
    let r = s.odc(&format!("/api/v1/domestic/recommendations/{nd}"), &[], "application/json");
    assert_eq!(r.status, 404);
    let r = s.odc(&format!("/api/v1/non-domestic/recommendations/{nd}"), &[], "text/csv");
    assert_eq!(r.status, 200);
    assert!(
        r.body.is_empty()
            || r.body.starts_with("lmk-key,payback-type,recommendation-item,recommendation-code,recommendation,co2-impact\n"),
        "{}",
        r.body
    );

    // Same seed, same recommendations; another seed, others.
    let again = with_recs();
    let other = start(Config {
        recommendations: Some(Recommendations::default()),
        seed: 43,
        ..config()
    });
    let lmk = &rows(DOMESTIC)[5]["LMK_KEY"];
    let path = format!("/api/v1/domestic/recommendations/{lmk}");
    assert_eq!(s.odc(&path, &[], "application/json").body, again.odc(&path, &[], "application/json").body);
    let differs = rows(DOMESTIC).iter().take(20).any(|r| {
        let p = format!("/api/v1/domestic/recommendations/{}", r["LMK_KEY"]);
        s.odc(&p, &[], "application/json").body != other.odc(&p, &[], "application/json").body
    });
    assert!(differs, "the seed changes the recommendations");

    // Not configured: today's behaviour.
    let plain = start(config());
    assert_eq!(plain.odc(&path, &[], "application/json").status, 404);
    let number = gepbd_certificate_number(lmk);
    let doc = plain.gepbd("/api/certificate", &[("certificate_number", &number)]).json();
    assert!(doc["data"].get("suggested_improvements").is_none());
    assert!(plain.running().emulator().expected_recommendations().kinds.is_empty());
}
