//! Recommendations, derived from each certificate on request.
//!
//! The ODC bulk files the emulator loads carry no recommendations, so they
//! are made up, deterministically: a certificate's recommendations depend
//! only on the configured seed and its LMK key, never on the order of
//! requests, so both APIs show the same ones and a restarted emulator shows
//! them again. Nothing is stored: a certificate's list is rebuilt (a few
//! microseconds) each time it is asked for.
//!
//! - Domestic: RdSAP/SAP improvements (`suggested_improvements[]` inside the
//!   GEPBD document; ODC's `/recommendations/{lmk-key}` rows). Improvement
//!   numbers, letters, texts and indicative costs follow the real register's
//!   forms (`£100 - £350`, `£4,000 - £14,000`, a single `£35`, ...); the
//!   energy and environmental ratings climb from the certificate's current
//!   values to its potential ones.
//! - Non-domestic and display: short/medium/long/other payback lists of
//!   `{co2_impact, recommendation, recommendation_code}`, the shape of the
//!   GEPBD recommendation report (`CEPC-RR`, `DEC-RR`) that the certificate's
//!   `related_certificate_number` names.
//!
//! About [`Recommendations::without`] of the certificates have none; about
//! [`Recommendations::missing_reports`] of the non-domestic and display ones
//! have a report that GEPBD does not serve (404), as happens in the register.

use serde_json::{Map, Value, json};

use crate::data::{Certificate, Kind, Schema};
use crate::ordering::Rng;
use crate::values;

/// How recommendations are made up.
#[derive(Debug, Clone, PartialEq)]
pub struct Recommendations {
    /// Share of certificates with no recommendation at all (default 0.15).
    pub without: f64,
    /// Share of non-domestic and display certificates whose recommendation
    /// report GEPBD answers 404 for (default 0.05).
    pub missing_reports: f64,
}

impl Default for Recommendations {
    fn default() -> Self {
        Recommendations {
            without: 0.15,
            missing_reports: 0.05,
        }
    }
}

/// One domestic improvement.
#[derive(Debug, Clone, PartialEq)]
pub struct Improvement {
    /// 1, 2, ... (`sequence`, ODC `improvement-item`).
    pub sequence: u32,
    pub number: u32,
    pub letter: &'static str,
    pub text: &'static str,
    /// ODC's summary and description texts, empty for most improvements
    /// (the register fills them only for free-text ones).
    pub summary: &'static str,
    pub description: &'static str,
    pub cost: &'static str,
    pub typical_saving: u32,
    pub energy_rating: i64,
    pub environmental_rating: i64,
}

/// Payback classes of a non-domestic recommendation report, in report order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Payback {
    Short,
    Medium,
    Long,
    Other,
}

impl Payback {
    pub const ALL: [Payback; 4] = [Payback::Short, Payback::Medium, Payback::Long, Payback::Other];

    /// The report's list name (`short_payback`, ...).
    pub fn field(self) -> &'static str {
        match self {
            Payback::Short => "short_payback",
            Payback::Medium => "medium_payback",
            Payback::Long => "long_payback",
            Payback::Other => "other_payback",
        }
    }

    /// ODC's `payback-type`.
    pub fn odc(self) -> &'static str {
        match self {
            Payback::Short => "SHORT",
            Payback::Medium => "MEDIUM",
            Payback::Long => "LONG",
            Payback::Other => "OTHER",
        }
    }
}

/// One non-domestic or display recommendation.
#[derive(Debug, Clone, PartialEq)]
pub struct Advice {
    /// 1, 2, ... across the four lists (ODC `recommendation-item`).
    pub item: u32,
    pub payback: Payback,
    pub code: &'static str,
    pub text: &'static str,
    pub co2_impact: &'static str,
}

/// A certificate's recommendations.
#[derive(Debug, Clone, PartialEq)]
pub enum Recs {
    Domestic(Vec<Improvement>),
    Report(Vec<Advice>),
}

impl Recs {
    pub fn len(&self) -> usize {
        match self {
            Recs::Domestic(v) => v.len(),
            Recs::Report(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// (number, letter, text, indicative costs seen for it, typical saving range).
type Measure = (u32, &'static str, &'static str, &'static [&'static str], (u32, u32));

/// Improvement measures in the order the register lists them (fabric first,
/// then heating and hot water, then renewables).
const MEASURES: &[Measure] = &[
    (5, "A", "Increase loft insulation to 270 mm", &["£100 - £350"], (15, 90)),
    (6, "B", "Cavity wall insulation", &["£500 - £1,500"], (60, 220)),
    (7, "Q", "Internal or external wall insulation", &["£4,000 - £14,000", "£5,500 - £14,500"], (80, 400)),
    (57, "W1", "Floor insulation (suspended floor)", &["£800 - £1,200"], (30, 110)),
    (58, "W2", "Floor insulation (solid floor)", &["£4,000 - £6,000"], (25, 90)),
    (10, "D", "Draught proofing", &["£80 - £120"], (10, 45)),
    (1, "C", "Insulate hot water cylinder with 80 mm jacket", &["£15 - £30"], (10, 50)),
    (35, "E", "Low energy lighting for all fixed outlets", &["£35", "£20", "£40"], (10, 60)),
    (4, "F", "Hot water cylinder thermostat", &["£200 - £400"], (15, 60)),
    (13, "G", "Heating controls (room thermostat and TRVs)", &["£350 - £450", "£220 - £250"], (20, 140)),
    (20, "I", "Replace boiler with new condensing boiler", &["£2,200 - £3,000", "£3,000 - £7,000"], (60, 320)),
    (8, "O", "Replace single glazed windows with low-E double glazed windows", &["£3,300 - £6,500"], (40, 180)),
    (19, "N", "Solar water heating", &["£4,000 - £6,000", "£4,000 - £7,000"], (25, 90)),
    (34, "U", "Solar photovoltaic panels, 2.5 kWp", &["£3,500 - £5,500", "£8,000 - £10,000", "£5,000 - £8,000"], (200, 650)),
    (44, "V", "Wind turbine", &["£15,000 - £25,000"], (20, 120)),
];

/// (code, text, CO2 impact, the payback it is usually listed under).
type Measure2 = (&'static str, &'static str, &'static str, Payback);

const ADVICE: &[Measure2] = &[
    ("EPC-L7", "Introduce HF (high frequency) ballasts for fluorescent tubes: Reduced number of fittings required.", "LOW", Payback::Short),
    ("ECP-L5", "Consider replacing T8 lamps with retrofit T5 conversion kit.", "HIGH", Payback::Short),
    ("EPC-L2", "Add local time control to lighting.", "MEDIUM", Payback::Short),
    ("EPC-H1", "Some space heating is provided by electric heaters: consider replacing with a more efficient system.", "MEDIUM", Payback::Short),
    ("EPC-V1", "Consider introducing variable speed drives (VSD) for fans, pumps and compressors.", "LOW", Payback::Short),
    ("EPC-H7", "Add optimum start/stop to the heating system.", "MEDIUM", Payback::Medium),
    ("EPC-W1", "Consider installing point of use hot water heaters.", "LOW", Payback::Medium),
    ("EPC-F1", "Some windows have high U-values - consider installing secondary glazing.", "MEDIUM", Payback::Medium),
    ("ECP-C1", "Engage experts to propose specific measures to reduce hot water wastage and plan to carry this out.", "LOW", Payback::Medium),
    ("EPC-F4", "Roof is poorly insulated. Install or improve insulation of roof.", "MEDIUM", Payback::Long),
    ("EPC-R5", "Consider installing an air source heat pump.", "HIGH", Payback::Long),
    ("ECP-F4", "Consider replacing or improving glazing.", "LOW", Payback::Long),
    ("EPC-R4", "Consider installing PV.", "HIGH", Payback::Other),
    ("EPC-R1", "Consider installing building mounted wind turbine(s).", "LOW", Payback::Other),
    ("ECP-H2", "Consider installing a ground source heat pump.", "HIGH", Payback::Other),
];

/// A generator for one certificate: seed and LMK key only.
fn rng(seed: u64, salt: u64, lmk_key: &str) -> Rng {
    // FNV-1a over the key, then SplitMix in Rng::new.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in lmk_key.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    Rng::new(seed ^ salt, h)
}

/// A uniform draw in [0, 1).
pub fn unit(rng: &mut Rng) -> f64 {
    (rng.next() >> 11) as f64 / (1u64 << 53) as f64
}

impl Recommendations {
    /// The certificate's recommendations.
    pub fn of(&self, seed: u64, cert: &Certificate) -> Recs {
        let mut r = rng(seed, 0x0005_EC50_F7E5, &cert.lmk_key);
        let none = unit(&mut r) < self.without;
        if cert.schema == Schema::RdSap || cert.schema == Schema::Sap {
            if none {
                return Recs::Domestic(Vec::new());
            }
            Recs::Domestic(improvements(&mut r, cert))
        } else {
            if none {
                return Recs::Report(Vec::new());
            }
            Recs::Report(advice(&mut r))
        }
    }

    /// Whether GEPBD has no recommendation report for this certificate.
    pub fn report_missing(&self, seed: u64, cert: &Certificate) -> bool {
        cert.related_rrn.is_some()
            && unit(&mut rng(seed, 0x0DD_BA11, &cert.lmk_key)) < self.missing_reports
    }
}

fn int(cert: &Certificate, column: &str) -> Option<i64> {
    cert.value(column).trim().parse::<i64>().ok()
}

fn improvements(r: &mut Rng, cert: &Certificate) -> Vec<Improvement> {
    let n = 1 + r.below(6);
    // Pick n distinct measures, then list them in the register's order.
    let mut picked: Vec<usize> = Vec::with_capacity(n);
    while picked.len() < n {
        let m = r.below(MEASURES.len());
        if !picked.contains(&m) {
            picked.push(m);
        }
    }
    picked.sort_unstable();
    let current = int(cert, "CURRENT_ENERGY_EFFICIENCY").unwrap_or(50).clamp(1, 100);
    let potential = int(cert, "POTENTIAL_ENERGY_EFFICIENCY")
        .unwrap_or(current + 10)
        .clamp(current, 100)
        .max((current + n as i64).min(100));
    let env_current = int(cert, "ENVIRONMENT_IMPACT_CURRENT").unwrap_or(current).clamp(1, 100);
    let env_potential = int(cert, "ENVIRONMENT_IMPACT_POTENTIAL")
        .unwrap_or(env_current + 10)
        .clamp(env_current, 100);
    let step = |from: i64, to: i64, i: usize| from + (to - from) * (i as i64 + 1) / n as i64;
    picked
        .into_iter()
        .enumerate()
        .map(|(i, m)| {
            let (number, letter, text, costs, (lo, hi)) = MEASURES[m];
            let free_text = r.below(4) == 0;
            Improvement {
                sequence: i as u32 + 1,
                number,
                letter,
                text,
                summary: if free_text { text } else { "" },
                description: if free_text { text } else { "" },
                cost: costs[r.below(costs.len())],
                typical_saving: lo + r.below((hi - lo + 1) as usize) as u32,
                energy_rating: step(current, potential, i),
                environmental_rating: step(env_current, env_potential, i),
            }
        })
        .collect()
}

fn advice(r: &mut Rng) -> Vec<Advice> {
    let n = 1 + r.below(7);
    let mut picked: Vec<usize> = Vec::with_capacity(n);
    while picked.len() < n {
        let m = r.below(ADVICE.len());
        if !picked.contains(&m) {
            picked.push(m);
        }
    }
    let impacts = ["LOW", "MEDIUM", "HIGH"];
    let mut items: Vec<(Payback, &'static str, &'static str, &'static str)> = picked
        .into_iter()
        .map(|m| {
            let (code, text, impact, usual) = ADVICE[m];
            // Mostly the usual payback and impact; sometimes not, as assessors judge.
            let payback = if r.below(5) == 0 { Payback::ALL[r.below(4)] } else { usual };
            let impact = if r.below(6) == 0 { impacts[r.below(3)] } else { impact };
            (payback, code, text, impact)
        })
        .collect();
    items.sort_by_key(|i| Payback::ALL.iter().position(|p| *p == i.0));
    items
        .into_iter()
        .enumerate()
        .map(|(i, (payback, code, text, co2_impact))| Advice {
            item: i as u32 + 1,
            payback,
            code,
            text,
            co2_impact,
        })
        .collect()
}

/// GEPBD's `suggested_improvements[]` for a domestic document.
pub fn suggested_improvements(recs: &[Improvement], schema: Schema) -> Value {
    Value::Array(
        recs.iter()
            .map(|i| {
                let saving = if schema == Schema::Sap {
                    json!({"value": i.typical_saving, "currency": "GBP"})
                } else {
                    json!(i.typical_saving)
                };
                json!({
                    "sequence": i.sequence,
                    "typical_saving": saving,
                    "indicative_cost": i.cost,
                    "improvement_type": i.letter,
                    "improvement_details": {"improvement_number": i.number},
                    "improvement_category": 5,
                    "energy_performance_rating": i.energy_rating,
                    "environmental_impact_rating": i.environmental_rating,
                })
            })
            .collect(),
    )
}

/// The GEPBD recommendation report (`CEPC-RR` or `DEC-RR`) of a
/// non-domestic or display certificate: the `data` of `/api/certificate`
/// for its `related_certificate_number`.
pub fn report(cert: &Certificate, advice: &[Advice], uprn: Value) -> Value {
    let rrn = cert.related_rrn.clone().unwrap_or_default();
    let text = |c: &str| values::text(cert.value(c).trim());
    let dec = cert.schema == Schema::Dec;
    let mut doc = Map::new();
    doc.insert("certificate_number".into(), rrn.into());
    doc.insert("schema_type".into(), cert.schema.schema_type().into());
    doc.insert(
        "assessment_type".into(),
        if dec { "DEC-RR" } else { "CEPC-RR" }.into(),
    );
    doc.insert("report_type".into(), if dec { 2 } else { 4 }.into());
    doc.insert("status".into(), "entered".into());
    doc.insert("language_code".into(), 1.into());
    doc.insert(
        "related_certificate_number".into(),
        cert.certificate_number.clone().into(),
    );
    doc.insert("address_line_1".into(), text("ADDRESS1"));
    doc.insert("address_line_2".into(), text("ADDRESS2"));
    doc.insert("address_line_3".into(), text("ADDRESS3"));
    doc.insert("address_line_4".into(), text("ADDRESS4"));
    doc.insert("postcode".into(), text("POSTCODE"));
    doc.insert("post_town".into(), text("POSTTOWN"));
    doc.insert("uprn".into(), uprn);
    doc.insert("uprn_source".into(), text("UPRN_SOURCE"));
    doc.insert("property_type".into(), text("PROPERTY_TYPE"));
    doc.insert("inspection_date".into(), text("INSPECTION_DATE"));
    let registered = cert.lodgement_date.to_string();
    doc.insert("registration_date".into(), registered.clone().into());
    doc.insert("issue_date".into(), registered.into());
    let area = if dec { "TOTAL_FLOOR_AREA" } else { "FLOOR_AREA" };
    doc.insert(
        "technical_information".into(),
        json!({
            "floor_area": values::auto(cert.value(area).trim()),
            "building_environment": text("BUILDING_ENVIRONMENT"),
        }),
    );
    for payback in Payback::ALL {
        let list: Vec<Value> = advice
            .iter()
            .filter(|a| a.payback == payback)
            .map(|a| {
                json!({"co2_impact": a.co2_impact, "recommendation": a.text, "recommendation_code": a.code})
            })
            .collect();
        doc.insert(payback.field().into(), Value::Array(list));
    }
    Value::Object(doc)
}

/// ODC's recommendation columns for a kind.
pub fn odc_columns(kind: Kind) -> &'static [&'static str] {
    match kind {
        Kind::Domestic => &[
            "LMK_KEY",
            "IMPROVEMENT_ITEM",
            "IMPROVEMENT_SUMMARY_TEXT",
            "IMPROVEMENT_DESCR_TEXT",
            "IMPROVEMENT_ID",
            "IMPROVEMENT_ID_TEXT",
            "INDICATIVE_COST",
        ],
        Kind::NonDomestic | Kind::Display => &[
            "LMK_KEY",
            "PAYBACK_TYPE",
            "RECOMMENDATION_ITEM",
            "RECOMMENDATION_CODE",
            "RECOMMENDATION",
            "CO2_IMPACT",
        ],
    }
}

/// ODC's recommendation rows of a certificate, values in [`odc_columns`] order.
pub fn odc_rows(lmk_key: &str, recs: &Recs) -> Vec<Vec<String>> {
    match recs {
        Recs::Domestic(list) => list
            .iter()
            .map(|i| {
                vec![
                    lmk_key.to_owned(),
                    i.sequence.to_string(),
                    i.summary.to_owned(),
                    i.description.to_owned(),
                    i.number.to_string(),
                    i.text.to_owned(),
                    i.cost.to_owned(),
                ]
            })
            .collect(),
        Recs::Report(list) => list
            .iter()
            .map(|a| {
                vec![
                    lmk_key.to_owned(),
                    a.payback.odc().to_owned(),
                    a.item.to_string(),
                    a.code.to_owned(),
                    a.text.to_owned(),
                    a.co2_impact.to_owned(),
                ]
            })
            .collect(),
    }
}
