//! GEPBD certificate documents (`GET /api/certificate`) built from ODC rows.
//!
//! The shapes follow the service's own per-schema samples
//! (`shared/epc/samples/gepbd-json/`): a source column that has an official
//! field there goes to that field (`ADDRESS1` → `address_line_1`,
//! `LODGEMENT_DATE` → `registration_date`, `WALLS_*` → the `walls` element,
//! `STANDARD_EMISSIONS` → `ser`, ...), with the samples' value conventions
//! (element ratings as integers, SAP costs as `{value, currency}`); every other
//! column goes to the top level under its lower snake_case name. No source
//! value is dropped, so a client can be tested on mapping every field it needs.
//!
//! Where the schemas differ, the emulator follows the sample of that schema:
//! RdSAP element descriptions are `{"value", "language"}` objects and its
//! windows element is `window`; SAP descriptions are plain strings and its
//! windows element is `windows`.

use serde_json::{Map, Value, json};

use crate::data::{Certificate, Schema};
use crate::values;

/// How a source value is converted for its document field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conv {
    /// Number when it reads as one, else the text (see [`values::auto`]).
    Auto,
    /// Always text (descriptions, dates, names, codes).
    Text,
    /// `Very Poor`..`Very Good` → 1..5, `N/A` → 0.
    Rating,
    /// Integer when there is one.
    Uprn,
    /// The lodgement date in ISO form.
    IsoDate,
    /// SAP's `{"value": n, "currency": "GBP"}`.
    Money,
    /// RdSAP's `{"value": n, "quantity": "metres"}`.
    Metres,
}

/// Energy-element groups: (element name, description column, energy
/// efficiency column, environmental efficiency column, is an array).
const ELEMENTS: &[(&str, &str, &str, &str, bool)] = &[
    (
        "walls",
        "WALLS_DESCRIPTION",
        "WALLS_ENERGY_EFF",
        "WALLS_ENV_EFF",
        true,
    ),
    (
        "roofs",
        "ROOF_DESCRIPTION",
        "ROOF_ENERGY_EFF",
        "ROOF_ENV_EFF",
        true,
    ),
    (
        "floors",
        "FLOOR_DESCRIPTION",
        "FLOOR_ENERGY_EFF",
        "FLOOR_ENV_EFF",
        true,
    ),
    (
        "window",
        "WINDOWS_DESCRIPTION",
        "WINDOWS_ENERGY_EFF",
        "WINDOWS_ENV_EFF",
        false,
    ),
    (
        "lighting",
        "LIGHTING_DESCRIPTION",
        "LIGHTING_ENERGY_EFF",
        "LIGHTING_ENV_EFF",
        false,
    ),
    (
        "hot_water",
        "HOTWATER_DESCRIPTION",
        "HOT_WATER_ENERGY_EFF",
        "HOT_WATER_ENV_EFF",
        false,
    ),
    (
        "main_heating",
        "MAINHEAT_DESCRIPTION",
        "MAINHEAT_ENERGY_EFF",
        "MAINHEAT_ENV_EFF",
        true,
    ),
    (
        "main_heating_controls",
        "MAINHEATCONT_DESCRIPTION",
        "MAINHEATC_ENERGY_EFF",
        "MAINHEATC_ENV_EFF",
        true,
    ),
    (
        "secondary_heating",
        "SECONDHEAT_DESCRIPTION",
        "SHEATING_ENERGY_EFF",
        "SHEATING_ENV_EFF",
        false,
    ),
];

/// Where a source column goes in a document of `schema`: a dotted path
/// (`a.b[0].c`: `[0]` is the first element of an array) and a conversion.
pub fn target(schema: Schema, column: &str) -> (String, Conv) {
    use Conv::*;
    let domestic = matches!(schema, Schema::RdSap | Schema::Sap);
    let rdsap = schema == Schema::RdSap;
    let fixed = |p: &str, c: Conv| (p.to_owned(), c);

    // Shared by every schema.
    match column {
        "ADDRESS1" => return fixed("address_line_1", Text),
        "ADDRESS2" => return fixed("address_line_2", Text),
        "ADDRESS3" => return fixed("address_line_3", Text),
        "ADDRESS4" => return fixed("address_line_4", Text),
        "POSTCODE" => return fixed("postcode", Text),
        "POSTTOWN" => return fixed("post_town", Text),
        "UPRN" => return fixed("uprn", Uprn),
        "UPRN_SOURCE" => return fixed("uprn_source", Text),
        "LODGEMENT_DATE" => return fixed("registration_date", IsoDate),
        "INSPECTION_DATE" => return fixed("inspection_date", Text),
        "PROPERTY_TYPE" => return fixed("property_type", Text),
        "LMK_KEY"
        | "LODGEMENT_DATETIME"
        | "ADDRESS"
        | "LOCAL_AUTHORITY"
        | "LOCAL_AUTHORITY_LABEL"
        | "CONSTITUENCY"
        | "CONSTITUENCY_LABEL"
        | "COUNTY"
        | "TRANSACTION_TYPE"
        | "BUILDING_REFERENCE_NUMBER" => {
            return (values::snake(column), Text);
        }
        _ => {}
    }

    if domestic {
        for &(name, desc, energy, env, array) in ELEMENTS {
            let name = if name == "window" && !rdsap {
                "windows"
            } else {
                name
            };
            let el = if array {
                format!("{name}[0]")
            } else {
                name.to_owned()
            };
            if column == desc {
                let path = if rdsap {
                    format!("{el}.description.value")
                } else {
                    format!("{el}.description")
                };
                return (path, Text);
            }
            if column == energy {
                return (format!("{el}.energy_efficiency_rating"), Rating);
            }
            if column == env {
                return (format!("{el}.environmental_efficiency_rating"), Rating);
            }
        }
        let money = if rdsap { Auto } else { Money };
        return match column {
            "CURRENT_ENERGY_RATING" => fixed("current_energy_efficiency_band", Text),
            "POTENTIAL_ENERGY_RATING" => fixed("potential_energy_efficiency_band", Text),
            "CURRENT_ENERGY_EFFICIENCY" => fixed("energy_rating_current", Auto),
            "POTENTIAL_ENERGY_EFFICIENCY" => fixed("energy_rating_potential", Auto),
            "ENVIRONMENT_IMPACT_CURRENT" => fixed("environmental_impact_current", Auto),
            "ENVIRONMENT_IMPACT_POTENTIAL" => fixed("environmental_impact_potential", Auto),
            "CO2_EMISS_CURR_PER_FLOOR_AREA" => fixed("co2_emissions_current_per_floor_area", Auto),
            "NUMBER_HABITABLE_ROOMS" => fixed("habitable_room_count", Auto),
            "NUMBER_HEATED_ROOMS" => fixed("heated_room_count", Auto),
            "EXTENSION_COUNT" => fixed("extensions_count", Auto),
            "NUMBER_OPEN_FIREPLACES" => fixed("open_chimneys_count", Auto),
            "SOLAR_WATER_HEATING_FLAG" => fixed("solar_water_heating", Text),
            "LOW_ENERGY_FIXED_LIGHT_COUNT" => fixed("low_energy_fixed_lighting_bulbs_count", Auto),
            "MAIN_HEATING_CONTROLS" => fixed(
                "sap_heating.main_heating_details[0].main_heating_control",
                Auto,
            ),
            "LIGHTING_COST_CURRENT"
            | "LIGHTING_COST_POTENTIAL"
            | "HEATING_COST_CURRENT"
            | "HEATING_COST_POTENTIAL"
            | "HOT_WATER_COST_CURRENT"
            | "HOT_WATER_COST_POTENTIAL" => (values::snake(column), money),
            "MULTI_GLAZE_PROPORTION" if rdsap => fixed("multiple_glazed_proportion", Auto),
            "MULTI_GLAZE_PROPORTION" => fixed("multiple_glazed_percentage", Auto),
            "MAINS_GAS_FLAG" if rdsap => fixed("sap_energy_source.mains_gas", Text),
            "WIND_TURBINE_COUNT" if rdsap => fixed("sap_energy_source.wind_turbines_count", Auto),
            "FLOOR_LEVEL" if rdsap => fixed("sap_flat_details.level", Auto),
            "FLAT_TOP_STOREY" if rdsap => fixed("sap_flat_details.top_storey", Text),
            "FLAT_STOREY_COUNT" if rdsap => fixed("sap_flat_details.storey_count", Auto),
            "HEAT_LOSS_CORRIDOR" if rdsap => fixed("sap_flat_details.heat_loss_corridor", Text),
            "UNHEATED_CORRIDOR_LENGTH" if rdsap => {
                fixed("sap_flat_details.unheated_corridor_length", Metres)
            }
            "MAIN_FUEL"
            | "CONSTRUCTION_AGE_BAND"
            | "TENURE"
            | "BUILT_FORM"
            | "GLAZED_TYPE"
            | "GLAZED_AREA"
            | "ENERGY_TARIFF"
            | "MECHANICAL_VENTILATION" => (values::snake(column), Text),
            _ => (values::snake(column), Auto),
        };
    }

    // CEPC-8.0.0: the non-domestic certificate and the DEC.
    let shared = match column {
        "MAIN_HEATING_FUEL" => Some(fixed("technical_information.main_heating_fuel", Text)),
        "SPECIAL_ENERGY_USES" => Some(fixed("technical_information.special_energy_uses", Text)),
        "RENEWABLE_SOURCES" => Some(fixed("technical_information.renewable_sources", Text)),
        "BUILDING_ENVIRONMENT" => Some(fixed("technical_information.building_environment", Text)),
        "AIRCON_PRESENT" => Some(fixed("ac_questionnaire.ac_present", Text)),
        "AIRCON_KW_RATING" => Some(fixed("ac_questionnaire.ac_rated_output.ac_kw_rating", Auto)),
        "ESTIMATED_AIRCON_KW_RATING" => Some(fixed("ac_questionnaire.ac_estimated_output", Auto)),
        "AC_INSPECTION_COMMISSIONED" => {
            Some(fixed("ac_questionnaire.ac_inspection_commissioned", Auto))
        }
        _ => None,
    };
    if let Some(t) = shared {
        return t;
    }
    if schema == Schema::Cepc {
        return match column {
            "ASSET_RATING" => fixed("asset_rating", Auto),
            "ASSET_RATING_BAND" => fixed("current_energy_efficiency_band", Text),
            "BUILDING_LEVEL" => fixed("technical_information.building_level", Auto),
            "OTHER_FUEL_DESC" => fixed("technical_information.other_fuel_description", Text),
            "FLOOR_AREA" => fixed("technical_information.floor_area", Auto),
            "STANDARD_EMISSIONS" => fixed("ser", Auto),
            "TARGET_EMISSIONS" => fixed("ter", Auto),
            "TYPICAL_EMISSIONS" => fixed("tyr", Auto),
            "BUILDING_EMISSIONS" => fixed("ber", Auto),
            "PRIMARY_ENERGY_VALUE" => fixed("energy_use.energy_consumption_current", Auto),
            _ => (values::snake(column), Auto),
        };
    }
    match column {
        "CURRENT_OPERATIONAL_RATING" => fixed("this_assessment.energy_rating", Auto),
        "YR1_OPERATIONAL_RATING" => fixed("year1_assessment.energy_rating", Auto),
        "YR2_OPERATIONAL_RATING" => fixed("year2_assessment.energy_rating", Auto),
        "OPERATIONAL_RATING_BAND" => fixed("current_energy_efficiency_band", Text),
        "ELECTRIC_CO2" => fixed("this_assessment.electricity_co2", Auto),
        "HEATING_CO2" => fixed("this_assessment.heating_co2", Auto),
        "RENEWABLES_CO2" => fixed("this_assessment.renewables_co2", Auto),
        "NOMINATED_DATE" => fixed("this_assessment.nominated_date", Text),
        "YR1_ELECTRICITY_CO2" => fixed("year1_assessment.electricity_co2", Auto),
        "YR2_ELECTRICITY_CO2" => fixed("year2_assessment.electricity_co2", Auto),
        "YR1_HEATING_CO2" => fixed("year1_assessment.heating_co2", Auto),
        "YR2_HEATING_CO2" => fixed("year2_assessment.heating_co2", Auto),
        "YR1_RENEWABLES_CO2" => fixed("year1_assessment.renewables_co2", Auto),
        "YR2_RENEWABLES_CO2" => fixed("year2_assessment.renewables_co2", Auto),
        "OR_ASSESSMENT_END_DATE" => fixed("or_assessment_end_date", Text),
        "OTHER_FUEL" => fixed("technical_information.other_fuel_description", Text),
        "TOTAL_FLOOR_AREA" => fixed("technical_information.floor_area", Auto),
        "ANNUAL_THERMAL_FUEL_USAGE" => fixed(
            "dec_annual_energy_summary.annual_energy_use_fuel_thermal",
            Auto,
        ),
        "ANNUAL_ELECTRICAL_FUEL_USAGE" => fixed(
            "dec_annual_energy_summary.annual_energy_use_electrical",
            Auto,
        ),
        "TYPICAL_ELECTRICAL_FUEL_USAGE" => {
            fixed("dec_annual_energy_summary.typical_electrical_use", Auto)
        }
        "TYPICAL_THERMAL_USE" => fixed("dec_annual_energy_summary.typical_thermal_use", Auto),
        "RENEWABLES_FUEL_THERMAL" => {
            fixed("dec_annual_energy_summary.renewables_fuel_thermal", Auto)
        }
        "RENEWABLES_ELECTRICAL" => fixed("dec_annual_energy_summary.renewables_electrical", Auto),
        "BUILDING_CATEGORY" | "MAIN_BENCHMARK" | "OCCUPANCY_LEVEL" | "COUNTRY" => {
            (values::snake(column), Text)
        }
        _ => (values::snake(column), Auto),
    }
}

/// Converts one source value for a field.
pub fn convert(conv: Conv, raw: &str, cert: &Certificate) -> Value {
    match conv {
        Conv::Auto => values::auto(raw),
        Conv::Text => values::text(raw),
        Conv::Rating => values::rating(raw),
        Conv::Uprn => values::uprn_value(raw),
        Conv::IsoDate => Value::String(cert.lodgement_date.to_string()),
        Conv::Money if raw.is_empty() => Value::Null,
        Conv::Money => json!({"value": values::auto(raw), "currency": "GBP"}),
        Conv::Metres if raw.is_empty() => Value::Null,
        Conv::Metres => json!({"value": values::auto(raw), "quantity": "metres"}),
    }
}

/// The full GEPBD document of a certificate (the `data` of `/api/certificate`).
pub fn document(cert: &Certificate) -> Value {
    let schema = cert.schema;
    let mut doc = Map::new();
    doc.insert(
        "certificate_number".into(),
        cert.certificate_number.clone().into(),
    );
    doc.insert("schema_type".into(), schema.schema_type().into());
    doc.insert("assessment_type".into(), schema.assessment_type().into());
    doc.insert("status".into(), "entered".into());
    if let Some(rrn) = &cert.related_rrn {
        doc.insert("related_certificate_number".into(), rrn.clone().into());
    }
    for (column, raw) in cert.fields() {
        let (path, conv) = target(schema, column);
        let value = convert(conv, raw, cert);
        if !insert(&mut doc, &path, value.clone()) {
            // A column whose field is already taken (a source column named
            // like one the emulator adds): keep its value all the same.
            doc.insert(format!("source_{}", values::snake(column)), value);
        }
    }
    if schema == Schema::RdSap {
        // The RdSAP sample gives every element description a language code.
        for &(name, ..) in ELEMENTS {
            let element = match doc.get_mut(name) {
                Some(Value::Array(items)) => items.first_mut(),
                Some(v) => Some(v),
                None => None,
            };
            if let Some(Value::Object(el)) = element
                && let Some(Value::Object(desc)) = el.get_mut("description")
            {
                desc.insert("language".into(), "1".into());
            }
        }
    }
    Value::Object(doc)
}

/// Puts `value` at `path` (`a.b[0].c`), creating objects and one-element
/// arrays on the way; `false` when the place is taken or not an object.
fn insert(root: &mut Map<String, Value>, path: &str, value: Value) -> bool {
    let mut segments = path.split('.').peekable();
    let mut current = root;
    while let Some(segment) = segments.next() {
        let (name, indexed) = match segment.strip_suffix("[0]") {
            Some(n) => (n, true),
            None => (segment, false),
        };
        if segments.peek().is_none() && !indexed {
            if current.contains_key(name) {
                return false;
            }
            current.insert(name.to_owned(), value);
            return true;
        }
        let slot = current
            .entry(name.to_owned())
            .or_insert_with(|| if indexed { json!([{}]) } else { json!({}) });
        let next = if indexed {
            match slot {
                Value::Array(items) => items.first_mut(),
                _ => None,
            }
        } else {
            Some(slot)
        };
        match next {
            Some(Value::Object(map)) => current = map,
            _ => return false,
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn check_distinct(schema: Schema, columns: &[&str]) {
        let mut seen: HashMap<String, &str> = HashMap::new();
        for c in columns {
            let (path, _) = target(schema, c);
            if let Some(other) = seen.insert(path.clone(), c) {
                panic!("{schema:?}: {c} and {other} both map to {path}");
            }
            assert!(
                !matches!(
                    path.as_str(),
                    "certificate_number"
                        | "schema_type"
                        | "assessment_type"
                        | "status"
                        | "related_certificate_number"
                ),
                "{c} maps onto a field the emulator adds"
            );
        }
    }

    fn header(path: &str) -> Vec<String> {
        let text = std::fs::read_to_string(format!(
            "{}/../../tests/fixtures/odc/{path}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap();
        text.lines()
            .next()
            .unwrap()
            .split(',')
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn every_column_has_its_own_field() {
        let mut dom = header("domestic-E06000001-2021-01-to-08.csv");
        dom.push("REPORT_TYPE".into());
        let dom: Vec<&str> = dom.iter().map(String::as_str).collect();
        check_distinct(Schema::RdSap, &dom);
        check_distinct(Schema::Sap, &dom);
        let nd = header("non-domestic-synthetic.csv");
        check_distinct(
            Schema::Cepc,
            &nd.iter().map(String::as_str).collect::<Vec<_>>(),
        );
        let dec = header("display-synthetic.csv");
        check_distinct(
            Schema::Dec,
            &dec.iter().map(String::as_str).collect::<Vec<_>>(),
        );
    }

    /// Follows a `target` path in a document.
    fn at<'a>(doc: &'a Value, path: &str) -> &'a Value {
        path.split('.')
            .fold(doc, |v, seg| match seg.strip_suffix("[0]") {
                Some(name) => &v[name][0],
                None => &v[seg],
            })
    }

    #[test]
    fn every_source_value_is_at_its_field() {
        let files = [
            "domestic-E06000001-2021-01-to-08.csv",
            "non-domestic-synthetic.csv",
            "display-synthetic.csv",
        ]
        .map(|f| {
            crate::DataFile::Path(
                format!(
                    "{}/../../tests/fixtures/odc/{f}",
                    env!("CARGO_MANIFEST_DIR")
                )
                .into(),
            )
        });
        let data = crate::data::load(&files).unwrap();
        for kind in &data.kinds {
            for cert in &kind.certs {
                let doc = document(cert);
                assert!(
                    doc.as_object()
                        .unwrap()
                        .keys()
                        .all(|k| !k.starts_with("source_"))
                );
                for (column, raw) in cert.fields() {
                    let (path, conv) = target(cert.schema, column);
                    assert_eq!(
                        at(&doc, &path),
                        &convert(conv, raw, cert),
                        "{column} at {path}"
                    );
                }
            }
        }
    }

    #[test]
    fn insert_builds_nested_paths() {
        let mut m = Map::new();
        assert!(insert(&mut m, "walls[0].description.value", json!("x")));
        assert!(insert(
            &mut m,
            "walls[0].energy_efficiency_rating",
            json!(1)
        ));
        assert!(insert(&mut m, "a", json!(1)));
        assert!(!insert(&mut m, "a", json!(2)));
        assert!(!insert(&mut m, "a.b", json!(2)));
        assert_eq!(
            Value::Object(m),
            json!({"walls": [{"description": {"value": "x"}, "energy_efficiency_rating": 1}], "a": 1})
        );
    }
}
