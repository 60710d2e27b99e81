//! The three `enr_*_certificates_v` views are written once, here, as a list
//! of columns (where each is read in an ODC record and in a GEPBD document,
//! its type, its sanity rule), and rendered into both dialects:
//! `sql/views/NN_*.sql` (BigQuery) and `sql/views/duckdb/NN_*.sql`. Both
//! texts therefore have the same columns, stages and rules by construction;
//! the dialect-equality test in `crates/duck-warehouse` then checks that
//! they also give the same rows.
//!
//! This test fails when a committed file differs from what the list
//! renders. After changing the list, write the files with
//!
//! ```text
//! DAME_BLESS_VIEWS=1 cargo test -p views --test enriched_views
//! ```
//!
//! and commit them with the change (docs/views.md describes every column).

use std::fmt::Write as _;
use std::path::PathBuf;

/// Where a column's text comes from.
#[derive(Clone, Copy)]
enum Src {
    /// A column of the raw table (the landed envelope).
    Env(&'static str),
    /// A key of the ODC record (kebab-case; `None`: ODC has no such field)
    /// and the GEPBD document paths to try in order (the first one that
    /// holds a scalar wins: RdSAP and SAP documents nest some fields
    /// differently).
    Json(Option<&'static str>, &'static [&'static str]),
}

/// The column's type, and how its text is read.
#[derive(Clone, Copy)]
enum Ty {
    Text,
    /// Text, upper-cased (postcodes).
    Upper,
    /// 1 to 12 digits, kept as text (UPRNs are identifiers, not numbers).
    Uprn,
    Float,
    Int,
    /// Y/Yes/true or N/No/false.
    Bool,
    /// `YYYY-MM-DD`, optionally followed by a time (ignored).
    Date,
    /// `YYYY-MM-DD HH:MM:SS` (or with `T`); fractions are dropped; a date
    /// alone is midnight. A DATETIME: the registers give UK local times
    /// without a zone.
    DateTime,
    /// An energy band: one of these letters (case-insensitive).
    Band(&'static [&'static str]),
    /// The raw table's DATE column, already typed.
    EnvDate,
    /// An identifier of the raw table, carried as it is.
    Key,
}

/// What a readable value must satisfy; one that does not becomes NULL and
/// adds a flag.
#[derive(Clone, Copy)]
enum Rule {
    None,
    /// > 0 (`not_positive`).
    Positive,
    /// Between the two, inclusive (`out_of_range`).
    Between(i64, i64),
    /// From 2007-01-01 (`before_2007`) to today, UTC (`after_today`).
    DateWindow,
    /// A DEC operational rating: 9999 is a placeholder (`9999`), below 0 is
    /// impossible (`negative`).
    OperationalRating,
}

struct Col {
    name: &'static str,
    src: Src,
    ty: Ty,
    rule: Rule,
}

const fn c(name: &'static str, src: Src, ty: Ty, rule: Rule) -> Col {
    Col { name, src, ty, rule }
}

/// A field both APIs carry under the obvious names: ODC `kebab-case`,
/// GEPBD `snake_case` at the top level.
const fn j(odc: &'static str, gepbd: &'static [&'static str]) -> Src {
    Src::Json(Some(odc), gepbd)
}

const A_TO_G: &[&str] = &["A", "B", "C", "D", "E", "F", "G"];
/// Non-domestic asset ratings also have A+ (net-zero buildings).
const A_PLUS_TO_G: &[&str] = &["A+", "A", "B", "C", "D", "E", "F", "G"];

use Rule as R;
use Ty as T;

/// Columns every kind starts with: identity, address and dates.
fn common(with_building_reference: bool) -> Vec<Col> {
    let mut v = vec![
        c("certificate_number", Src::Env("certificate_number"), T::Key, R::None),
        c("lmk_key", Src::Env("lmk_key"), T::Key, R::None),
        c("source", Src::Env("source"), T::Key, R::None),
        c("schema_type", Src::Json(None, &["schema_type"]), T::Text, R::None),
        c("report_type", j("report-type", &["report_type"]), T::Text, R::None),
        c("uprn", Src::Env("uprn"), T::Uprn, R::None),
        c("uprn_source", j("uprn-source", &["uprn_source"]), T::Text, R::None),
        c("address1", j("address1", &["address_line_1"]), T::Text, R::None),
        c("address2", j("address2", &["address_line_2"]), T::Text, R::None),
        c("address3", j("address3", &["address_line_3"]), T::Text, R::None),
        c("posttown", j("posttown", &["post_town"]), T::Text, R::None),
        c("postcode", Src::Env("postcode"), T::Upper, R::None),
    ];
    if with_building_reference {
        v.push(c("building_reference_number", j("building-reference-number", &["building_reference_number"]), T::Text, R::None));
    }
    v.extend([
        c("local_authority", j("local-authority", &["local_authority"]), T::Text, R::None),
        c("local_authority_label", j("local-authority-label", &["local_authority_label"]), T::Text, R::None),
        c("constituency", j("constituency", &["constituency"]), T::Text, R::None),
        c("constituency_label", j("constituency-label", &["constituency_label"]), T::Text, R::None),
        c("lodgement_date", Src::Env("lodgement_date"), T::EnvDate, R::DateWindow),
        c("lodgement_datetime", j("lodgement-datetime", &["lodgement_datetime"]), T::DateTime, R::None),
        c("inspection_date", j("inspection-date", &["inspection_date"]), T::Date, R::DateWindow),
        c("transaction_type", j("transaction-type", &["transaction_type"]), T::Text, R::None),
        c("property_type", j("property-type", &["property_type"]), T::Text, R::None),
    ]);
    v
}

fn domestic() -> Vec<Col> {
    let mut v = common(true);
    v.extend([
        c("current_energy_rating", j("current-energy-rating", &["current_energy_efficiency_band"]), T::Band(A_TO_G), R::None),
        c("potential_energy_rating", j("potential-energy-rating", &["potential_energy_efficiency_band"]), T::Band(A_TO_G), R::None),
        c("current_energy_efficiency", j("current-energy-efficiency", &["energy_rating_current"]), T::Int, R::Between(1, 150)),
        c("potential_energy_efficiency", j("potential-energy-efficiency", &["energy_rating_potential"]), T::Int, R::Between(1, 150)),
        c("environment_impact_current", j("environment-impact-current", &["environmental_impact_current"]), T::Int, R::Between(1, 150)),
        c("environment_impact_potential", j("environment-impact-potential", &["environmental_impact_potential"]), T::Int, R::Between(1, 150)),
        c("energy_consumption_current", j("energy-consumption-current", &["energy_consumption_current"]), T::Float, R::None),
        c("energy_consumption_potential", j("energy-consumption-potential", &["energy_consumption_potential"]), T::Float, R::None),
        c("co2_emissions_current", j("co2-emissions-current", &["co2_emissions_current"]), T::Float, R::None),
        c("co2_emiss_curr_per_floor_area", j("co2-emiss-curr-per-floor-area", &["co2_emissions_current_per_floor_area"]), T::Float, R::None),
        c("co2_emissions_potential", j("co2-emissions-potential", &["co2_emissions_potential"]), T::Float, R::None),
        // SAP documents give costs as {"value", "currency"}; RdSAP as numbers.
        c("lighting_cost_current", j("lighting-cost-current", &["lighting_cost_current.value", "lighting_cost_current"]), T::Float, R::None),
        c("lighting_cost_potential", j("lighting-cost-potential", &["lighting_cost_potential.value", "lighting_cost_potential"]), T::Float, R::None),
        c("heating_cost_current", j("heating-cost-current", &["heating_cost_current.value", "heating_cost_current"]), T::Float, R::None),
        c("heating_cost_potential", j("heating-cost-potential", &["heating_cost_potential.value", "heating_cost_potential"]), T::Float, R::None),
        c("hot_water_cost_current", j("hot-water-cost-current", &["hot_water_cost_current.value", "hot_water_cost_current"]), T::Float, R::None),
        c("hot_water_cost_potential", j("hot-water-cost-potential", &["hot_water_cost_potential.value", "hot_water_cost_potential"]), T::Float, R::None),
        c("total_floor_area", j("total-floor-area", &["total_floor_area"]), T::Float, R::Positive),
        c("built_form", j("built-form", &["built_form"]), T::Text, R::None),
        c("construction_age_band", j("construction-age-band", &["construction_age_band"]), T::Text, R::None),
        c("tenure", j("tenure", &["tenure"]), T::Text, R::None),
        c("main_fuel", j("main-fuel", &["main_fuel"]), T::Text, R::None),
        // RdSAP nests it; SAP documents keep it at the top level.
        c("mains_gas_flag", j("mains-gas-flag", &["sap_energy_source.mains_gas", "mains_gas_flag"]), T::Bool, R::None),
        c("energy_tariff", j("energy-tariff", &["energy_tariff"]), T::Text, R::None),
        c("number_habitable_rooms", j("number-habitable-rooms", &["habitable_room_count"]), T::Int, R::None),
        c("number_heated_rooms", j("number-heated-rooms", &["heated_room_count"]), T::Int, R::None),
        c("low_energy_lighting", j("low-energy-lighting", &["low_energy_lighting"]), T::Int, R::Between(0, 100)),
        c("solar_water_heating_flag", j("solar-water-heating-flag", &["solar_water_heating"]), T::Bool, R::None),
        // Energy elements' descriptions: RdSAP nests them as
        // `{value, language}`, SAP gives the text.
        c("walls_description", j("walls-description", &["walls[0].description.value", "walls[0].description"]), T::Text, R::None),
        c("roof_description", j("roof-description", &["roofs[0].description.value", "roofs[0].description"]), T::Text, R::None),
        c("floor_description", j("floor-description", &["floors[0].description.value", "floors[0].description"]), T::Text, R::None),
        c("windows_description", j("windows-description", &["window.description.value", "windows.description"]), T::Text, R::None),
        c("mainheat_description", j("mainheat-description", &["main_heating[0].description.value", "main_heating[0].description"]), T::Text, R::None),
        c("mainheatcont_description", j("mainheatcont-description", &["main_heating_controls[0].description.value", "main_heating_controls[0].description"]), T::Text, R::None),
        c("hotwater_description", j("hotwater-description", &["hot_water.description.value", "hot_water.description"]), T::Text, R::None),
        c("secondheat_description", j("secondheat-description", &["secondary_heating.description.value", "secondary_heating.description"]), T::Text, R::None),
        c("lighting_description", j("lighting-description", &["lighting.description.value", "lighting.description"]), T::Text, R::None),
    ]);
    v
}

/// Air conditioning, in both non-domestic kinds.
fn aircon() -> [Col; 4] {
    [
        c("aircon_present", j("aircon-present", &["ac_questionnaire.ac_present"]), T::Bool, R::None),
        c("aircon_kw_rating", j("aircon-kw-rating", &["ac_questionnaire.ac_rated_output.ac_kw_rating"]), T::Float, R::None),
        c("estimated_aircon_kw_rating", j("estimated-aircon-kw-rating", &["ac_questionnaire.ac_estimated_output"]), T::Float, R::None),
        c("ac_inspection_commissioned", j("ac-inspection-commissioned", &["ac_questionnaire.ac_inspection_commissioned"]), T::Text, R::None),
    ]
}

fn non_domestic() -> Vec<Col> {
    let mut v = common(true);
    v.extend([
        c("asset_rating", j("asset-rating", &["asset_rating"]), T::Int, R::None),
        c("asset_rating_band", j("asset-rating-band", &["current_energy_efficiency_band"]), T::Band(A_PLUS_TO_G), R::None),
        c("new_build_benchmark", j("new-build-benchmark", &["new_build_benchmark"]), T::Int, R::None),
        c("existing_stock_benchmark", j("existing-stock-benchmark", &["existing_stock_benchmark"]), T::Int, R::None),
        c("building_level", j("building-level", &["technical_information.building_level"]), T::Int, R::None),
        c("main_heating_fuel", j("main-heating-fuel", &["technical_information.main_heating_fuel"]), T::Text, R::None),
        c("other_fuel_desc", j("other-fuel-desc", &["technical_information.other_fuel_description"]), T::Text, R::None),
        c("special_energy_uses", j("special-energy-uses", &["technical_information.special_energy_uses"]), T::Text, R::None),
        c("renewable_sources", j("renewable-sources", &["technical_information.renewable_sources"]), T::Text, R::None),
        c("building_environment", j("building-environment", &["technical_information.building_environment"]), T::Text, R::None),
        c("floor_area", j("floor-area", &["technical_information.floor_area"]), T::Float, R::Positive),
        c("standard_emissions", j("standard-emissions", &["ser"]), T::Float, R::None),
        c("target_emissions", j("target-emissions", &["ter"]), T::Float, R::None),
        c("typical_emissions", j("typical-emissions", &["tyr"]), T::Float, R::None),
        c("building_emissions", j("building-emissions", &["ber"]), T::Float, R::None),
        c("primary_energy_value", j("primary-energy-value", &["energy_use.energy_consumption_current"]), T::Float, R::None),
    ]);
    v.extend(aircon());
    v
}

fn display() -> Vec<Col> {
    let mut v = common(false);
    v.extend([
        c("current_operational_rating", j("current-operational-rating", &["this_assessment.energy_rating"]), T::Int, R::OperationalRating),
        c("yr1_operational_rating", j("yr1-operational-rating", &["year1_assessment.energy_rating"]), T::Int, R::OperationalRating),
        c("yr2_operational_rating", j("yr2-operational-rating", &["year2_assessment.energy_rating"]), T::Int, R::OperationalRating),
        c("operational_rating_band", j("operational-rating-band", &["current_energy_efficiency_band"]), T::Band(A_TO_G), R::None),
        c("electric_co2", j("electric-co2", &["this_assessment.electricity_co2"]), T::Float, R::None),
        c("heating_co2", j("heating-co2", &["this_assessment.heating_co2"]), T::Float, R::None),
        c("renewables_co2", j("renewables-co2", &["this_assessment.renewables_co2"]), T::Float, R::None),
        c("main_benchmark", j("main-benchmark", &["main_benchmark"]), T::Text, R::None),
        c("building_category", j("building-category", &["building_category"]), T::Text, R::None),
        c("occupancy_level", j("occupancy-level", &["occupancy_level"]), T::Text, R::None),
        c("main_heating_fuel", j("main-heating-fuel", &["technical_information.main_heating_fuel"]), T::Text, R::None),
        c("other_fuel", j("other-fuel", &["technical_information.other_fuel_description"]), T::Text, R::None),
        c("special_energy_uses", j("special-energy-uses", &["technical_information.special_energy_uses"]), T::Text, R::None),
        c("renewable_sources", j("renewable-sources", &["technical_information.renewable_sources"]), T::Text, R::None),
        c("building_environment", j("building-environment", &["technical_information.building_environment"]), T::Text, R::None),
        c("total_floor_area", j("total-floor-area", &["technical_information.floor_area"]), T::Float, R::Positive),
        c("annual_thermal_fuel_usage", j("annual-thermal-fuel-usage", &["dec_annual_energy_summary.annual_energy_use_fuel_thermal"]), T::Float, R::None),
        c("typical_thermal_fuel_usage", j("typical-thermal-fuel-usage", &["typical_thermal_fuel_usage"]), T::Float, R::None),
        c("annual_electrical_fuel_usage", j("annual-electrical-fuel-usage", &["dec_annual_energy_summary.annual_energy_use_electrical"]), T::Float, R::None),
        c("typical_electrical_fuel_usage", j("typical-electrical-fuel-usage", &["dec_annual_energy_summary.typical_electrical_use"]), T::Float, R::None),
        c("renewables_fuel_thermal", j("renewables-fuel-thermal", &["dec_annual_energy_summary.renewables_fuel_thermal"]), T::Float, R::None),
        c("renewables_electrical", j("renewables-electrical", &["dec_annual_energy_summary.renewables_electrical"]), T::Float, R::None),
        c("typical_thermal_use", j("typical-thermal-use", &["dec_annual_energy_summary.typical_thermal_use"]), T::Float, R::None),
        c("nominated_date", j("nominated-date", &["this_assessment.nominated_date"]), T::Date, R::None),
        c("or_assessment_end_date", j("or-assessment-end-date", &["or_assessment_end_date"]), T::Date, R::None),
    ]);
    v.extend(aircon());
    v
}

/// The values both registers use for "no value". Compared after trimming
/// and upper-casing.
const PLACEHOLDERS: &[&str] = &["", "NO DATA!", "INVALID!", "N/A", "NOT RECORDED", "NOT RECORDED."];

const NUMBER: &str = r"^-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?$";
const INTEGER: &str = r"^-?[0-9]+(\.0+)?$";
const UPRN: &str = r"^[0-9]{1,12}$";
const DATE: &str = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}";
/// A date alone reads as midnight: some real rows' LODGEMENT_DATETIME holds
/// only the date.
const DATETIME: &str = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}($|[ T][0-9]{2}:[0-9]{2}:[0-9]{2})";
const EDGE_SPACE: &str = r"^\s+|\s+$";

#[derive(Clone, Copy, PartialEq)]
enum Dialect {
    BigQuery,
    DuckDb,
}

impl Dialect {
    fn table(self, name: &str) -> String {
        match self {
            Dialect::BigQuery => format!("`{{{{PROJECT}}}}.{{{{DATASET}}}}.{name}`"),
            Dialect::DuckDb => format!("\"{{{{DATASET}}}}\".\"{name}\""),
        }
    }

    /// The scalar at `path` of `record` as text; NULL for a missing key, a
    /// JSON null, an object or an array (BigQuery's JSON_VALUE; DuckDB's
    /// json_value gives the scalar as JSON, `->> '$'` unquotes it).
    fn json(self, path: &str) -> String {
        match self {
            Dialect::BigQuery => format!("JSON_VALUE(record, '{path}')"),
            Dialect::DuckDb => format!("(json_value(record, '{path}') ->> '$')"),
        }
    }

    /// A partial match (both engines use RE2).
    fn regex(self, expr: &str, pattern: &str) -> String {
        match self {
            Dialect::BigQuery => format!("REGEXP_CONTAINS({expr}, r'{pattern}')"),
            Dialect::DuckDb => format!("regexp_matches({expr}, '{pattern}')"),
        }
    }

    /// Every match replaced.
    fn regex_replace(self, expr: &str, pattern: &str, with: &str) -> String {
        match self {
            Dialect::BigQuery => format!("REGEXP_REPLACE({expr}, r'{pattern}', '{with}')"),
            Dialect::DuckDb => format!("regexp_replace({expr}, '{pattern}', '{with}', 'g')"),
        }
    }

    /// A cast that gives NULL instead of failing.
    fn safe_cast(self, expr: &str, ty: &str) -> String {
        let (f, t) = match (self, ty) {
            (Dialect::BigQuery, t) => ("SAFE_CAST", t),
            (Dialect::DuckDb, "FLOAT64") => ("TRY_CAST", "DOUBLE"),
            (Dialect::DuckDb, "INT64") => ("TRY_CAST", "BIGINT"),
            (Dialect::DuckDb, "DATETIME") => ("TRY_CAST", "TIMESTAMP"),
            (Dialect::DuckDb, t) => ("TRY_CAST", t),
        };
        format!("{f}({expr} AS {t})")
    }

    /// Today's date in UTC. The DuckDB warehouse's bundled build has no
    /// ICU, so `current_date` does not exist there; a TIMESTAMPTZ cast to
    /// TIMESTAMP is UTC without ICU (and the session's zone where ICU is
    /// loaded, e.g. in the duckdb CLI).
    fn today(self) -> &'static str {
        match self {
            Dialect::BigQuery => "CURRENT_DATE()",
            Dialect::DuckDb => "CAST(CAST(get_current_timestamp() AS TIMESTAMP) AS DATE)",
        }
    }

    fn concat_arrays(self) -> &'static str {
        match self {
            Dialect::BigQuery => "ARRAY_CONCAT",
            Dialect::DuckDb => "list_concat",
        }
    }
}

fn quote_list(items: &[&str]) -> String {
    items.iter().map(|s| format!("'{s}'")).collect::<Vec<_>>().join(", ")
}

/// A JSONPath for a key or a dotted path. ODC keys have hyphens, which a
/// JSONPath must quote.
fn odc_path(key: &str) -> String {
    format!("$.\"{key}\"")
}

fn gepbd_path(path: &str) -> String {
    format!("$.{path}")
}

/// The text of a column as extracted from the row, edges trimmed.
fn extract(d: Dialect, col: &Col) -> String {
    let raw = match col.src {
        Src::Env(name) => name.to_string(),
        Src::Json(odc, gepbd) => {
            let odc = odc.map_or_else(|| "NULL".to_string(), |k| d.json(&odc_path(k)));
            let gepbd: Vec<String> = gepbd.iter().map(|p| d.json(&gepbd_path(p))).collect();
            let gepbd = if gepbd.len() == 1 { gepbd[0].clone() } else { format!("COALESCE({})", gepbd.join(", ")) };
            format!("CASE WHEN source = 'odc' THEN {odc} ELSE {gepbd} END")
        }
    };
    d.regex_replace(&raw, EDGE_SPACE, "")
}

/// The typed value of `{name}_txt`, NULL when it cannot be read.
fn parse(d: Dialect, col: &Col) -> String {
    let t = format!("{}_txt", col.name);
    match col.ty {
        Ty::Text => t,
        Ty::Upper => format!("UPPER({t})"),
        Ty::Uprn => format!("CASE WHEN {} THEN {t} END", d.regex(&t, UPRN)),
        Ty::Float => format!("CASE WHEN {} THEN {} END", d.regex(&t, NUMBER), d.safe_cast(&t, "FLOAT64")),
        Ty::Int => format!(
            "CASE WHEN {} THEN {} END",
            d.regex(&t, INTEGER),
            d.safe_cast(&d.safe_cast(&t, "FLOAT64"), "INT64")
        ),
        Ty::Bool => format!(
            "CASE WHEN UPPER({t}) IN ('Y', 'YES', 'TRUE') THEN TRUE WHEN UPPER({t}) IN ('N', 'NO', 'FALSE') THEN FALSE END"
        ),
        Ty::Date => format!("CASE WHEN {} THEN {} END", d.regex(&t, DATE), d.safe_cast(&format!("SUBSTR({t}, 1, 10)"), "DATE")),
        Ty::DateTime => format!(
            "CASE WHEN {} THEN {} END",
            d.regex(&t, DATETIME),
            d.safe_cast(&format!("REPLACE(SUBSTR({t}, 1, 19), 'T', ' ')"), "DATETIME")
        ),
        Ty::Band(bands) => format!("CASE WHEN UPPER({t}) IN ({}) THEN UPPER({t}) END", quote_list(bands)),
        Ty::EnvDate => t,
        Ty::Key => unreachable!("keys are carried, not parsed"),
    }
}

/// The published value: the parsed one where it passes the rule.
fn publish(d: Dialect, col: &Col) -> String {
    let v = format!("{}_val", col.name);
    match col.rule {
        Rule::None => v,
        Rule::Positive => format!("CASE WHEN {v} > 0 THEN {v} END"),
        Rule::Between(lo, hi) => format!("CASE WHEN {v} BETWEEN {lo} AND {hi} THEN {v} END"),
        Rule::DateWindow => format!("CASE WHEN {v} >= DATE '2007-01-01' AND {v} <= {} THEN {v} END", d.today()),
        Rule::OperationalRating => format!("CASE WHEN {v} >= 0 AND {v} <> 9999 THEN {v} END"),
    }
}

/// The flag a column adds to `quality_flags`, as a one- or zero-element
/// array; `None` for columns that cannot be flagged.
fn flag(d: Dialect, col: &Col) -> Option<String> {
    let (n, t, v) = (col.name, format!("{}_txt", col.name), format!("{}_val", col.name));
    let mut arms = Vec::new();
    match col.ty {
        Ty::Text | Ty::Upper | Ty::EnvDate | Ty::Key => {}
        Ty::Band(_) => arms.push((format!("{t} IS NOT NULL AND {v} IS NULL"), "not_a_to_g")),
        _ => arms.push((format!("{t} IS NOT NULL AND {v} IS NULL"), "unreadable")),
    }
    match col.rule {
        Rule::None => {}
        Rule::Positive => arms.push((format!("{v} <= 0"), "not_positive")),
        Rule::Between(lo, hi) => arms.push((format!("{v} NOT BETWEEN {lo} AND {hi}"), "out_of_range")),
        Rule::DateWindow => {
            arms.push((format!("{v} < DATE '2007-01-01'"), "before_2007"));
            arms.push((format!("{v} > {}", d.today()), "after_today"));
        }
        Rule::OperationalRating => {
            arms.push((format!("{v} = 9999"), "9999"));
            arms.push((format!("{v} < 0"), "negative"));
        }
    }
    if arms.is_empty() {
        return None;
    }
    let mut s = String::from("CASE");
    for (cond, reason) in arms {
        write!(s, " WHEN {cond} THEN ['{n}:{reason}']").unwrap();
    }
    s.push_str(" ELSE [] END");
    Some(s)
}

fn render(d: Dialect, kind: &str, view: &str, all: &[Col]) -> String {
    let cols = all;
    let raw = d.table(&format!("{kind}_raw_json"));
    let mut s = String::new();
    writeln!(s, "-- {view}: one row per {} certificate, typed, in the bulk files' column names.", kind.replace('_', "-")).unwrap();
    writeln!(s, "-- Generated by crates/views/tests/enriched_views.rs from its column list; edit that").unwrap();
    writeln!(s, "-- and run `DAME_BLESS_VIEWS=1 cargo test -p views --test enriched_views`.").unwrap();
    writeln!(s, "-- Rules and columns: docs/views.md.").unwrap();
    writeln!(
        s,
        "CREATE OR REPLACE VIEW {} AS",
        match d {
            Dialect::BigQuery => format!("`{{{{PROJECT}}}}.{{{{DATASET}}}}.{view}`"),
            Dialect::DuckDb => format!("\"{{{{DATASET}}}}\".\"{view}\""),
        }
    )
    .unwrap();
    // 1. The change feed: certificates removed from the register, and each
    // certificate's latest UPRN change (GEPBD's deltas).
    let events = d.table("certificate_events");
    s.push_str("WITH removed AS (\n");
    writeln!(s, "  SELECT DISTINCT certificate_number FROM {events} WHERE event_type = 'removed'").unwrap();
    s.push_str("),\nuprn_now AS (\n  SELECT certificate_number, uprn\n");
    writeln!(s, "  FROM {events}").unwrap();
    s.push_str("  WHERE event_type = 'uprn-changed'\n  QUALIFY ROW_NUMBER() OVER (\n");
    s.push_str("    PARTITION BY certificate_number ORDER BY event_timestamp DESC, landed_at DESC\n  ) = 1\n),\n");
    // 2. The latest load of each certificate still on the register.
    s.push_str("latest AS (\n  SELECT\n");
    s.push_str("    r.source, r.certificate_number, r.lmk_key, r.lodgement_date, COALESCE(u.uprn, r.uprn) AS uprn, r.postcode, r.record, r.load_id, r.ingested_at\n");
    writeln!(s, "  FROM {raw} AS r").unwrap();
    s.push_str("  LEFT JOIN uprn_now AS u ON u.certificate_number = r.certificate_number\n");
    s.push_str("  WHERE r.certificate_number IS NULL OR r.certificate_number NOT IN (SELECT certificate_number FROM removed)\n");
    s.push_str("  QUALIFY ROW_NUMBER() OVER (\n");
    s.push_str("    PARTITION BY r.source, COALESCE(r.certificate_number, r.lmk_key)\n");
    s.push_str("    ORDER BY r.ingested_at DESC, r.landed_at DESC, r.landed_object DESC, r.load_id DESC\n  ) = 1\n),\n");
    // 3. Each column's text.
    let carried = "source, certificate_number, lmk_key, load_id, ingested_at";
    let cols: Vec<&Col> = cols.iter().filter(|c| !matches!(c.ty, Ty::Key)).collect();
    s.push_str("extracted AS (\n  SELECT\n");
    writeln!(s, "    {carried},").unwrap();
    let mut lines = Vec::new();
    for col in &cols {
        if let Ty::EnvDate = col.ty {
            lines.push(format!("    {} AS {}_txt", col.name, col.name));
        } else {
            lines.push(format!("    {} AS {}_raw", extract(d, col), col.name));
        }
    }
    s.push_str(&lines.join(",\n"));
    s.push_str("\n  FROM latest\n),\n");
    // 4. Placeholders to NULL.
    s.push_str("cleaned AS (\n  SELECT\n");
    writeln!(s, "    {carried},").unwrap();
    let lines: Vec<String> = cols
        .iter()
        .map(|col| match col.ty {
            Ty::EnvDate => format!("    {}_txt", col.name),
            _ => format!(
                "    CASE WHEN UPPER({n}_raw) IN ({}) THEN NULL ELSE {n}_raw END AS {n}_txt",
                quote_list(PLACEHOLDERS),
                n = col.name
            ),
        })
        .collect();
    s.push_str(&lines.join(",\n"));
    s.push_str("\n  FROM extracted\n),\n");
    // 5. Typed values.
    s.push_str("parsed AS (\n  SELECT\n");
    writeln!(s, "    {carried},").unwrap();
    let lines: Vec<String> = cols
        .iter()
        .map(|col| format!("    {n}_txt,\n    {} AS {n}_val", parse(d, col), n = col.name))
        .collect();
    s.push_str(&lines.join(",\n"));
    s.push_str("\n  FROM cleaned\n)\n");
    // 6. Rules, flags, the published columns.
    s.push_str("SELECT\n");
    for col in all {
        match col.ty {
            Ty::Key => writeln!(s, "  {},", col.name).unwrap(),
            _ => writeln!(s, "  {} AS {},", publish(d, col), col.name).unwrap(),
        }
    }
    s.push_str("  load_id,\n  ingested_at AS loaded_at,\n");
    let flags: Vec<String> = cols.iter().filter_map(|col| flag(d, col)).collect();
    writeln!(s, "  {}(\n    {}\n  ) AS quality_flags", d.concat_arrays(), flags.join(",\n    ")).unwrap();
    s.push_str("FROM parsed\n");
    s
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn enriched_views_match_their_column_lists() {
    let views: [(&str, &str, &str, Vec<Col>); 3] = [
        ("01", "domestic", "enr_domestic_certificates_v", domestic()),
        ("02", "non_domestic", "enr_non_domestic_certificates_v", non_domestic()),
        ("03", "display", "enr_display_certificates_v", display()),
    ];
    let bless = std::env::var_os("DAME_BLESS_VIEWS").is_some();
    let mut stale = Vec::new();
    for (nn, kind, view, cols) in &views {
        let mut names: Vec<&str> = cols.iter().map(|c| c.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), cols.len(), "{view}: a column is listed twice");
        for (d, dir) in [(Dialect::BigQuery, "sql/views"), (Dialect::DuckDb, "sql/views/duckdb")] {
            let path = root().join(dir).join(format!("{nn}_{view}.sql"));
            let text = render(d, kind, view, cols);
            let current = std::fs::read_to_string(&path).unwrap_or_default();
            if current != text {
                if bless {
                    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                    std::fs::write(&path, &text).unwrap();
                } else {
                    stale.push(path.display().to_string());
                }
            }
        }
    }
    assert!(
        stale.is_empty(),
        "out of date (run DAME_BLESS_VIEWS=1 cargo test -p views --test enriched_views): {stale:?}"
    );
}
