//! GEPBD deltas, and what they do to both APIs.

mod common;

use common::*;
use epc_emulator::{Config, DeltaChange, DeltaEvent, Kind, UprnEvent, gepbd_certificate_number};
use serde_json::json;

fn jan_rows() -> Vec<std::collections::HashMap<String, String>> {
    rows(DOMESTIC)
        .into_iter()
        .filter(|r| r["LODGEMENT_DATE"].starts_with("2021-01"))
        .collect()
}

fn config_with(events: Vec<DeltaEvent>) -> Config {
    Config {
        deltas: events,
        ..config()
    }
}

#[test]
fn deltas_remove_and_change_what_they_say() {
    let jan = jan_rows();
    let (a, b, c) = (&jan[0], &jan[1], &jan[2]);
    let (na, nb, nc) = (
        gepbd_certificate_number(&a["LMK_KEY"]),
        gepbd_certificate_number(&b["LMK_KEY"]),
        gepbd_certificate_number(&c["LMK_KEY"]),
    );
    let events = vec![
        format!("removed:{na}@2021-03-01T10:00:00Z").parse().unwrap(),
        // By LMK key too; the change of day two is the one in force.
        format!("uprn:{}=123456789012@2021-03-02T11:30:00.250Z", b["LMK_KEY"]).parse().unwrap(),
        // In the future: not in force, not served.
        format!("removed:{nc}@2026-06-01").parse().unwrap(),
    ];
    let s = start(config_with(events));

    let r = s.gepbd("/api/deltas", &[("date_start", "2021-03-01"), ("date_end", "2021-03-31")]);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.json(),
        json!({"data": [
            {"certificateNumber": na, "eventType": "removed", "timestamp": "2021-03-01T10:00:00.000Z"},
            {"certificateNumber": nb, "eventType": "uprn_updated", "timestamp": "2021-03-02T11:30:00.250Z"},
        ]})
    );
    let r = s.gepbd("/api/deltas", &[("date_start", "2021-03-02"), ("date_end", "2021-03-02")]);
    assert_eq!(r.json()["data"].as_array().unwrap().len(), 1);

    // Search: A is gone, B has its new UPRN, C is still there.
    let month = [("date_start", "2021-01-01"), ("date_end", "2021-01-31")];
    let body = s.gepbd("/api/domestic/search", &month).json();
    assert_eq!(body["pagination"]["totalRecords"], 151);
    let find = |n: &str| {
        body["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["certificateNumber"] == n)
            .cloned()
    };
    assert!(find(&na).is_none());
    assert_eq!(find(&nb).unwrap()["uprn"], 123456789012i64);
    assert!(find(&nc).is_some());
    let by_uprn = s.gepbd("/api/domestic/search", &[("uprn", "123456789012")]).json();
    assert_eq!(by_uprn["data"][0]["certificateNumber"], nb.as_str());
    if let Ok(old) = b["UPRN"].parse::<i64>() {
        let r = s.gepbd("/api/domestic/search", &[("uprn", &old.to_string()), ("date_start", "2021-01-01"), ("date_end", "2021-01-31")]);
        assert!(r.status == 404 || r.json()["data"].as_array().unwrap().iter().all(|x| x["certificateNumber"] != nb.as_str()));
    }

    // Certificate documents.
    let r = s.gepbd("/api/certificate", &[("certificate_number", &na)]);
    assert_eq!(r.status, 404);
    let doc = s.gepbd("/api/certificate", &[("certificate_number", &nb)]).json();
    assert_eq!(doc["data"]["uprn"], 123456789012i64);

    // ODC shows the same data.
    let r = s.odc(&format!("/api/v1/domestic/certificate/{}", a["LMK_KEY"]), &[], "application/json");
    assert_eq!(r.status, 404);
    let r = s.odc(&format!("/api/v1/domestic/certificate/{}", b["LMK_KEY"]), &[], "application/json");
    assert_eq!(r.json()["rows"][0]["uprn"], "123456789012");
    let r = s.odc(
        "/api/v1/domestic/search",
        &[("from-month", "1"), ("from-year", "2021"), ("to-month", "1"), ("to-year", "2021"), ("size", "5000")],
        "application/json",
    );
    assert_eq!(r.json()["rows"].as_array().unwrap().len(), 151);

    let e = s.running().emulator().expected();
    assert_eq!(e.month(Kind::Domestic, "2021-01"), 151);
}

#[test]
fn deltas_validate_like_search() {
    let jan = jan_rows();
    let n = gepbd_certificate_number(&jan[0]["LMK_KEY"]);
    let s = start(Config {
        uprn_event: UprnEvent::AddressIdUpdated,
        ..config_with(vec![DeltaEvent {
            certificate: n.clone(),
            at: "2025-12-31T23:59:59Z".parse().unwrap(),
            change: DeltaChange::Uprn(None),
        }])
    });
    let bad = [
        vec![],
        vec![("date_start", "2025-12-01")],
        vec![("date_start", "2025-12-31"), ("date_end", "2025-12-01")],
        vec![("date_start", "yesterday"), ("date_end", "2025-12-01")],
    ];
    for q in bad {
        let r = s.gepbd("/api/deltas", &q);
        assert_eq!(r.status, 400, "{q:?}");
        assert_eq!(r.json()["error"], "The search query was invalid - please provide a valid date range");
    }
    let r = s.gepbd("/api/deltas", &[("date_start", "2025-12-01"), ("date_end", "2026-01-01")]);
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"], "The search query was invalid - the date cannot include today");
    let r = s.gepbd("/api/deltas", &[("date_start", "2025-11-01"), ("date_end", "2025-11-30")]);
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["error"], "No audit logs could be found for that query");
    let r = s.gepbd("/api/deltas", &[("date_start", "2025-12-01"), ("date_end", "2025-12-31")]);
    assert_eq!(
        r.json(),
        json!({"data": [{"certificateNumber": n, "eventType": "address_id_updated", "timestamp": "2025-12-31T23:59:59.000Z"}]})
    );
    assert_eq!(s.get("/api/deltas", Auth::None, &[], None).status, 403);
    let doc = s.gepbd("/api/certificate", &[("certificate_number", &n)]).json();
    assert_eq!(doc["data"]["uprn"], serde_json::Value::Null);

    // An event for a certificate that is not loaded is refused at load.
    let err = epc_emulator::Emulator::load(config_with(vec!["removed:0000-0000-0000-0000-0000@2021-01-01".parse().unwrap()]))
        .unwrap_err();
    assert!(err.to_string().contains("0000-0000-0000-0000-0000"), "{err}");
    assert!("removed:x".parse::<DeltaEvent>().is_err());
    assert!("uprn:x@2021-01-01".parse::<DeltaEvent>().is_err());
}
