//! The DuckDB views over real rows landed as production lands them: typed
//! values checked by hand for certificates of both sources, placeholders
//! and out-of-range values turned into NULLs and flags, the latest
//! certificate per property against an independent computation in Rust,
//! and load coverage with its gaps.

#![recursion_limit = "512"]

mod common;

use std::collections::BTreeMap;

use common::{DATASET, Fixture, Row};
use duck_warehouse::DuckWarehouse;
use epc_model::{Kind, Source};
use serde_json::{Map, Value, json};

struct Loaded {
    _dir: tempfile::TempDir,
    wh: DuckWarehouse,
    fixture: Fixture,
}

fn loaded() -> Loaded {
    let dir = tempfile::tempdir().unwrap();
    let fixture = common::build();
    common::write_landing(&dir.path().join("landing"), &fixture);
    let wh = DuckWarehouse::open(dir.path().join("warehouse.duckdb"), DATASET, dir.path().join("landing")).unwrap();
    common::load_duckdb(&wh, &fixture);
    common::apply_duckdb_views(&wh);
    Loaded { _dir: dir, wh, fixture }
}

type Obj = Map<String, Value>;

fn by_id(rows: &[Obj]) -> BTreeMap<String, &Obj> {
    rows.iter()
        .map(|r| {
            let id = r["certificate_number"].as_str().or(r["lmk_key"].as_str()).unwrap().to_string();
            (id, r)
        })
        .collect()
}

fn row_of<'a>(fixture: &'a Fixture, kind: Kind, lmk: &str) -> &'a Row {
    fixture.rows.iter().find(|r| r.kind == kind && r.lmk_key == lmk).unwrap_or_else(|| panic!("no row {lmk}"))
}

/// Checks the listed columns of a view row.
fn expect(row: &Obj, expected: Value) {
    for (k, v) in expected.as_object().unwrap() {
        let got = row.get(k).unwrap_or_else(|| panic!("no column {k} in {row:?}"));
        let same = match (got, v) {
            (Value::Number(a), Value::Number(b)) => (a.as_f64().unwrap() - b.as_f64().unwrap()).abs() < 1e-9,
            _ => got == v,
        };
        assert!(same, "{k}: got {got}, expected {v} (row {})", row.get("lmk_key").or(row.get("certificate_number")).unwrap());
    }
}

#[test]
fn views_on_duckdb() {
    let Loaded { wh, fixture, .. } = loaded();
    let dom = common::duck_rows(&wh, "enr_domestic_certificates_v", "source, certificate_number, lmk_key");
    let dom_ids = by_id(&dom);

    // One row per certificate: the re-landed one is there once.
    let expected: usize = fixture.rows.iter().filter(|r| r.kind == Kind::Domestic).count();
    assert_eq!(dom.len(), expected);
    assert_eq!(dom_ids.len(), expected);

    // A real RdSAP certificate, lodged in a GEPBD month (2021-08), read from
    // the emulator's document.
    let heriot = row_of(&fixture, Kind::Domestic, "0003352408dad177e827f77c62ed7172f2f16336c44dcdedbc315d08755600a2");
    assert_eq!(heriot.source, Source::Gepbd);
    expect(
        dom_ids[&heriot.id],
        json!({
            "source": "gepbd", "lmk_key": null, "schema_type": "RdSAP-Schema-21.0.1",
            "uprn": "100110786110", "uprn_source": "Energy Assessor", "postcode": "TS25 3JH",
            "address1": "21 HERIOT GRANGE", "address2": "HARTLEPOOL", "address3": null, "posttown": "HARTLEPOOL",
            "lodgement_date": "2021-08-06", "lodgement_datetime": "2021-08-06 07:35:31", "inspection_date": "2021-08-03",
            "transaction_type": "rental", "property_type": "Flat", "built_form": "End-Terrace",
            "current_energy_rating": "E", "potential_energy_rating": "B",
            "current_energy_efficiency": 53, "potential_energy_efficiency": 83,
            "environment_impact_current": 48, "environment_impact_potential": 73,
            "energy_consumption_current": 529.0, "co2_emissions_current": 3.2, "co2_emiss_curr_per_floor_area": 89.0,
            "lighting_cost_current": 35.0, "heating_cost_current": 119.0, "heating_cost_potential": 107.0,
            "hot_water_cost_current": 583.0, "hot_water_cost_potential": 110.0,
            "total_floor_area": 36.0, "main_fuel": "electricity (not community)", "mains_gas_flag": false,
            "construction_age_band": "England and Wales: 1983-1990", "tenure": "Rented (social)", "energy_tariff": "dual",
            "number_habitable_rooms": 2, "number_heated_rooms": 2, "low_energy_lighting": 80,
            "walls_description": "Cavity wall, as built, no insulation (assumed)", "windows_description": "Fully double glazed",
            "mainheat_description": "Electric storage heaters", "hotwater_description": "Electric immersion, off-peak",
            "load_id": "load-domestic-202108", "quality_flags": [],
        }),
    );
    assert!(dom_ids[&heriot.id]["certificate_number"].as_str().unwrap().len() == 24);

    // A real certificate lodged in an ODC month (2021-07): all strings in.
    expect(
        dom_ids["07c4c7365951025bb8a5f98993f0a99b9b6aae773c60e90b53b40ae4d98edb14"],
        json!({
            "source": "odc", "certificate_number": null, "schema_type": null, "uprn": "100110022983",
            "postcode": "TS25 5LD", "address1": "20 OAKLAND AVENUE", "address2": null,
            "lodgement_date": "2021-07-26", "lodgement_datetime": "2021-07-26 15:34:49", "inspection_date": "2021-07-26",
            "current_energy_rating": "D", "potential_energy_rating": "B",
            "current_energy_efficiency": 58, "potential_energy_efficiency": 81,
            "total_floor_area": 138.0, "heating_cost_current": 1220.0, "co2_emissions_current": 7.2,
            "property_type": "House", "built_form": "Semi-Detached", "mains_gas_flag": true,
            "main_fuel": "mains gas (not community)", "tenure": "Owner-occupied",
            "walls_description": "Cavity wall, filled cavity", "load_id": "load-domestic-202107", "quality_flags": [],
        }),
    );

    // Placeholders become NULL silently; values out of range and unreadable
    // ones become NULL with a flag (ODC record).
    expect(
        dom_ids["edge-placeholders"],
        json!({
            "source": "odc", "uprn": "900000000001",
            "current_energy_rating": null, "potential_energy_rating": null,
            "current_energy_efficiency": null, "potential_energy_efficiency": null,
            "total_floor_area": null, "inspection_date": null, "mains_gas_flag": null,
            "heating_cost_current": null, "number_habitable_rooms": null, "low_energy_lighting": null, "tenure": null,
            "lodgement_date": "2021-03-10", "heating_cost_potential": 107.0,
            "quality_flags": [
                "inspection_date:before_2007", "potential_energy_rating:not_a_to_g",
                "current_energy_efficiency:out_of_range", "potential_energy_efficiency:out_of_range",
                "heating_cost_current:unreadable", "total_floor_area:not_positive", "number_habitable_rooms:unreadable",
            ],
        }),
    );
    // The same in a GEPBD document, where numbers are JSON numbers.
    let edge = row_of(&fixture, Kind::Domestic, "edge-gepbd-placeholders");
    assert_eq!(edge.source, Source::Gepbd);
    expect(
        dom_ids[&edge.id],
        json!({
            "source": "gepbd", "current_energy_rating": null, "current_energy_efficiency": null,
            "total_floor_area": null, "inspection_date": null, "main_fuel": null, "potential_energy_rating": "B",
            "quality_flags": ["inspection_date:after_today", "current_energy_efficiency:out_of_range", "total_floor_area:not_positive"],
        }),
    );

    // The certificate landed twice in one month: the later part wins.
    let relanded = fixture
        .rows
        .iter()
        .find(|r| r.get("CURRENT_ENERGY_EFFICIENCY") == common::RELANDED_EFFICIENCY && r.source == Source::Odc && r.get("LODGEMENT_DATE").starts_with("2021-01"))
        .unwrap();
    expect(dom_ids[&relanded.id], json!({"current_energy_efficiency": 77}));

    // Every row of both shapes reads its band and efficiency back as the
    // CSV had them, when they are valid.
    for r in fixture.rows.iter().filter(|r| r.kind == Kind::Domestic && !r.lmk_key.starts_with("edge")) {
        let v = dom_ids[&r.id];
        assert_eq!(v["current_energy_rating"], json!(r.get("CURRENT_ENERGY_RATING")), "{}", r.id);
        assert_eq!(v["current_energy_efficiency"], json!(r.get("CURRENT_ENERGY_EFFICIENCY").parse::<i64>().unwrap()), "{}", r.id);
        let area: f64 = r.get("TOTAL_FLOOR_AREA").parse().unwrap();
        assert!((v["total_floor_area"].as_f64().unwrap() - area).abs() < 1e-9, "{}", r.id);
        assert_eq!(v["inspection_date"], json!(r.get("INSPECTION_DATE")), "{}", r.id);
        assert_eq!(v["quality_flags"], json!([]), "{}", r.id);
    }

    non_domestic_and_display(&wh, &fixture);
    latest_by_uprn(&wh, &fixture);
    coverage(&wh, &fixture);
}

fn non_domestic_and_display(wh: &DuckWarehouse, fixture: &Fixture) {
    let nd = common::duck_rows(wh, "enr_non_domestic_certificates_v", "source, certificate_number, lmk_key");
    assert_eq!(nd.len(), fixture.rows.iter().filter(|r| r.kind == Kind::NonDomestic).count());
    let nd = by_id(&nd);
    let mut seen = (false, false, false);
    for r in fixture.rows.iter().filter(|r| r.kind == Kind::NonDomestic) {
        let v = nd[&r.id];
        assert_eq!(v["source"], json!(r.source.as_str()));
        // A+ is a band of non-domestic certificates.
        assert_eq!(v["asset_rating_band"], json!(r.get("ASSET_RATING_BAND")), "{}", r.id);
        assert_eq!(v["asset_rating"], json!(r.get("ASSET_RATING").parse::<i64>().unwrap()), "{}", r.id);
        seen.0 |= r.get("ASSET_RATING_BAND") == "A+";
        let area: f64 = r.get("FLOOR_AREA").parse().unwrap();
        if area > 0.0 {
            assert!((v["floor_area"].as_f64().unwrap() - area).abs() < 1e-9, "{}", r.id);
        } else {
            assert_eq!(v["floor_area"], Value::Null);
            assert!(v["quality_flags"].as_array().unwrap().contains(&json!("floor_area:not_positive")));
        }
        match r.get("MAIN_HEATING_FUEL") {
            "NO DATA!" => {
                assert_eq!(v["main_heating_fuel"], Value::Null, "{}", r.id);
                seen.1 = true;
            }
            fuel => assert_eq!(v["main_heating_fuel"], json!(fuel), "{}", r.id),
        }
        if r.source == Source::Gepbd {
            seen.2 = true;
            assert_eq!(v["schema_type"], json!("CEPC-8.0.0"));
            let ser: f64 = r.get("STANDARD_EMISSIONS").parse().unwrap();
            assert!((v["standard_emissions"].as_f64().unwrap() - ser).abs() < 1e-9, "{}", r.id);
        }
    }
    assert_eq!(seen, (true, true, true), "the fixture has A+ bands, a NO DATA! fuel and GEPBD rows");

    let dec = common::duck_rows(wh, "enr_display_certificates_v", "source, certificate_number, lmk_key");
    assert_eq!(dec.len(), fixture.rows.iter().filter(|r| r.kind == Kind::Display).count());
    let dec = by_id(&dec);
    let mut sentinel = 0;
    for r in fixture.rows.iter().filter(|r| r.kind == Kind::Display) {
        let v = dec[&r.id];
        let flags = v["quality_flags"].as_array().unwrap();
        match r.get("CURRENT_OPERATIONAL_RATING") {
            "9999" => {
                sentinel += 1;
                assert_eq!(v["current_operational_rating"], Value::Null, "{}", r.id);
                assert!(flags.contains(&json!("current_operational_rating:9999")), "{}: {flags:?}", r.id);
            }
            n => assert_eq!(v["current_operational_rating"], json!(n.parse::<i64>().unwrap()), "{}", r.id),
        }
        assert_eq!(v["operational_rating_band"], json!(r.get("OPERATIONAL_RATING_BAND")), "{}", r.id);
        let area: f64 = r.get("TOTAL_FLOOR_AREA").parse().unwrap();
        assert!((v["total_floor_area"].as_f64().unwrap() - area).abs() < 1e-9, "{}", r.id);
        assert_eq!(v["main_heating_fuel"], json!(Some(r.get("MAIN_HEATING_FUEL")).filter(|f| !f.is_empty() && *f != "NO DATA!")));
    }
    assert!(sentinel > 0, "the display fixture has a 9999 rating");
}

// ---- The latest certificate per property, computed independently. ----

const PLACEHOLDERS: &[&str] = &["", "NO DATA!", "INVALID!", "N/A", "NOT RECORDED", "NOT RECORDED."];

fn clean(v: &str) -> Option<String> {
    let t = v.trim();
    (!PLACEHOLDERS.contains(&t.to_uppercase().as_str())).then(|| t.to_string())
}

fn in_window(d: Option<jiff::civil::Date>) -> Option<jiff::civil::Date> {
    let today = jiff::Timestamp::now().to_zoned(jiff::tz::TimeZone::UTC).date();
    d.filter(|d| *d >= jiff::civil::date(2007, 1, 1) && *d <= today)
}

/// (property_key, identity_method, winner, certificates) per property.
fn expected_latest(fixture: &Fixture) -> BTreeMap<String, (String, String, i64)> {
    struct Cand {
        key: String,
        method: &'static str,
        order: (Option<jiff::civil::Date>, Option<String>, Option<jiff::civil::Date>, String),
    }
    let mut cands = Vec::new();
    for r in fixture.rows.iter().filter(|r| r.kind == Kind::Domestic) {
        let uprn = clean(r.get("UPRN")).filter(|u| (1..=12).contains(&u.len()) && u.bytes().all(|b| b.is_ascii_digit()));
        let postcode: String = clean(r.get("POSTCODE")).unwrap_or_default().to_uppercase().chars().filter(|c| c.is_ascii_alphanumeric()).collect();
        let lines: Vec<String> = ["ADDRESS1", "ADDRESS2", "ADDRESS3"].iter().map(|c| clean(r.get(c)).unwrap_or_default()).collect();
        let address = lines.join(" ").to_lowercase();
        let address = address.split(|c: char| !c.is_ascii_alphanumeric()).filter(|w| !w.is_empty()).collect::<Vec<_>>().join(" ");
        let (key, method) = if let Some(u) = &uprn {
            (format!("uprn:{u}"), "uprn")
        } else if !postcode.is_empty() && !address.is_empty() {
            (format!("address:{postcode}:{address}"), "address_postcode")
        } else {
            continue;
        };
        let lodged = in_window(r.get("LODGEMENT_DATE").parse().ok());
        let datetime = clean(r.get("LODGEMENT_DATETIME")).map(|t| {
            let t = t.chars().take(19).collect::<String>().replace('T', " ");
            if t.len() == 10 { format!("{t} 00:00:00") } else { t }
        });
        let inspected = in_window(clean(r.get("INSPECTION_DATE")).and_then(|t| t.get(..10).and_then(|d| d.parse().ok())));
        cands.push(Cand { key, method, order: (lodged, datetime, inspected, r.id.clone()) });
    }
    let mut out: BTreeMap<String, (String, String, i64)> = BTreeMap::new();
    let mut best: BTreeMap<String, &Cand> = BTreeMap::new();
    for c in &cands {
        let e = out.entry(c.key.clone()).or_insert((c.method.to_string(), String::new(), 0));
        e.2 += 1;
        // Option orders None first, as NULLS LAST on a descending sort wants.
        match best.get(&c.key) {
            Some(b) if b.order >= c.order => {}
            _ => {
                best.insert(c.key.clone(), c);
            }
        }
    }
    for (k, c) in best {
        out.get_mut(&k).unwrap().1 = c.order.3.clone();
    }
    out
}

fn latest_by_uprn(wh: &DuckWarehouse, fixture: &Fixture) {
    let rows = common::duck_rows(wh, "latest_domestic_by_uprn_v", "property_key");
    let got: BTreeMap<String, (String, String, i64)> = rows
        .iter()
        .map(|r| {
            let id = r["certificate_number"].as_str().or(r["lmk_key"].as_str()).unwrap().to_string();
            (
                r["property_key"].as_str().unwrap().to_string(),
                (r["identity_method"].as_str().unwrap().to_string(), id, r["certificates_for_property"].as_i64().unwrap()),
            )
        })
        .collect();
    assert_eq!(got.len(), rows.len(), "one row per property");
    let want = expected_latest(fixture);
    assert_eq!(got, want);

    // The cases the edge rows were made for, by name.
    let winner = |key: &str| got[key].1.clone();
    let id_of = |lmk: &str| row_of(fixture, Kind::Domestic, lmk).id.clone();
    assert_eq!(winner("uprn:900000000010"), id_of("edge-reassess-b"), "later lodgement date");
    assert_eq!(winner("uprn:900000000011"), id_of("edge-time-late"), "later lodgement datetime");
    assert_eq!(winner("uprn:900000000012"), id_of("edge-insp-late"), "later inspection date");
    assert_eq!(winner("uprn:900000000013"), id_of("edge-tie-2"), "greater identifier");
    let by_address = &got["address:TS999ZZ:flat 2 9 edge street"];
    assert_eq!(by_address.0, "address_postcode");
    assert_eq!(by_address.1, id_of("edge-noid-new"));
    assert_eq!(by_address.2, 2, "both spellings are one property");
    assert!(!got.values().any(|v| v.1 == id_of("edge-nowhere")), "no UPRN, no address: no property");
    // Properties re-assessed across the switch of source are matched by UPRN.
    let cross = rows.iter().filter(|r| r["certificates_for_property"].as_i64().unwrap() > 1).count();
    assert!(cross > 10, "the sample has re-assessed properties ({cross})");
}

fn coverage(wh: &DuckWarehouse, fixture: &Fixture) {
    let rows = common::duck_rows(wh, "load_coverage_v", "dataset, month");
    let get = |ds: &str, m: &str| {
        rows.iter().find(|r| r["dataset"] == json!(ds) && r["month"] == json!(m)).unwrap_or_else(|| panic!("no row {ds} {m}"))
    };
    expect(get("domestic", "2021-06-01"), json!({"status": "missing", "loads": 0, "rows_loaded": null, "rows_in_raw": 0}));
    expect(get("display", "2021-02-01"), json!({"status": "short", "source": "gepbd"}));
    expect(get("non-domestic", "2021-04-01"), json!({"status": "empty", "rows_loaded": 0, "rows_in_raw": 0, "source": "gepbd"}));
    let jan = fixture.loads.iter().find(|l| l.kind == Kind::Domestic && l.month.month() == 1).unwrap();
    expect(
        get("domestic", "2021-01-01"),
        json!({"status": "ok", "source": "odc", "rows_loaded": jan.rows, "rows_reported": 0, "rows_in_raw": jan.rows,
               "certificates_in_raw": jan.rows - 1, "load_id": "load-domestic-202101", "loads": 1}),
    );
    let months_per_dataset = |ds: &str| rows.iter().filter(|r| r["dataset"] == json!(ds)).count();
    assert_eq!(months_per_dataset("domestic"), 8);
    assert_eq!(months_per_dataset("non-domestic"), 6);
    let count = |status: &str| rows.iter().filter(|r| r["status"] == json!(status)).count();
    assert_eq!((count("missing"), count("short")), (1, 1), "{rows:#?}");
    for r in rows.iter().filter(|r| r["status"] == json!("empty")) {
        assert_eq!(r["rows_loaded"], json!(0));
    }
    assert_eq!(count("ok") + count("empty") + 2, rows.len(), "no month is not_logged or raw_differs: {rows:#?}");
}

#[test]
fn change_events_remove_certificates_and_move_uprns() {
    let Loaded { wh, .. } = loaded();
    let before = common::duck_rows(&wh, "enr_domestic_certificates_v", "certificate_number");
    let gepbd: Vec<&Obj> = before.iter().filter(|r| r["source"] == "gepbd").collect();
    let (gone, moved) = (gepbd[0]["certificate_number"].as_str().unwrap(), gepbd[1]["certificate_number"].as_str().unwrap());
    let events = wh.table_ref("certificate_events");
    wh.execute(&format!(
        "INSERT INTO {events} VALUES
           ('{gone}', 'removed', NULL, '2026-11-15T10:00:00Z', 'raw/_events/a.ndjson.gz', TIMESTAMPTZ '2026-11-16 00:00:00+00'),
           ('{moved}', 'uprn-changed', '111', '2026-11-10T10:00:00Z', 'raw/_events/a.ndjson.gz', TIMESTAMPTZ '2026-11-16 00:00:00+00'),
           ('{moved}', 'uprn-changed', '999000111', '2026-11-12T10:00:00Z', 'raw/_events/a.ndjson.gz', TIMESTAMPTZ '2026-11-16 00:00:00+00')"
    ))
    .unwrap();
    let after = common::duck_rows(&wh, "enr_domestic_certificates_v", "certificate_number");
    let ids = by_id(&after);
    assert_eq!(after.len(), before.len() - 1, "the removed certificate is gone");
    assert!(!ids.contains_key(gone));
    assert_eq!(ids[moved]["uprn"], serde_json::json!(999000111), "the latest UPRN change wins");
}
