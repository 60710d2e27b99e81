//! Synthetic months: N made-up certificates per month per kind, built from
//! the loaded (real or sample) rows, for benchmarks of 10k to 150k records a
//! month.
//!
//! Each synthetic row resamples a loaded row of its kind and changes what
//! must differ or is worth varying: a fresh LMK key; lodgement date and time
//! spread over the days of the month with weekday peaks (Saturdays a
//! quarter, Sundays a tenth of a weekday) and office hours; inspection date
//! a few days before; energy scores moved a little with their bands
//! recomputed; floor area, emissions and costs scaled together; a new house
//! number and postcode unit; a new UPRN (about 7 % none) and its source. Every
//! other value is the template's, so the distributions of the samples
//! (property types, descriptions, placeholders such as `NO DATA!`) carry over.
//!
//! Generation is deterministic by seed (per kind and month, so months can be
//! generated in parallel) and keeps only the changed values per row, over
//! the template's (see [`crate::data::Values`]).

use std::sync::Arc;

use anyhow::{Context, bail};
use jiff::civil::{Date, Weekday};

use crate::data::{self, Certificate, Kind, KindData, Origin, Values};
use crate::ordering::Rng;

/// What to generate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Synthetic {
    /// Certificates per month per kind.
    pub per_month: u32,
    /// The months (any day of each; the first is used).
    pub months: Vec<Date>,
    /// The kinds to generate; each needs loaded rows of its kind to resample.
    pub kinds: Vec<Kind>,
}

impl Synthetic {
    /// Months from `2024-01..2024-03` (inclusive), `2024-01,2024-05` or `2024-01`.
    pub fn months(spec: &str) -> anyhow::Result<Vec<Date>> {
        let month = |s: &str| -> anyhow::Result<Date> {
            let s = s.trim();
            let (y, m) = s
                .split_once('-')
                .with_context(|| format!("month {s:?}: expected YYYY-MM"))?;
            Date::new(
                y.parse().with_context(|| format!("month {s:?}"))?,
                m.parse().with_context(|| format!("month {s:?}"))?,
                1,
            )
            .with_context(|| format!("month {s:?}"))
        };
        let mut out = Vec::new();
        for part in spec.split(',').filter(|p| !p.trim().is_empty()) {
            match part.split_once("..") {
                Some((a, b)) => {
                    let (mut m, last) = (month(a)?, month(b)?);
                    if m > last {
                        bail!("months {part:?}: the first is after the last");
                    }
                    while m <= last {
                        out.push(m);
                        m = m.checked_add(jiff::Span::new().months(1))?;
                    }
                }
                None => out.push(month(part)?),
            }
        }
        if out.is_empty() {
            bail!("no months in {spec:?}");
        }
        out.sort();
        out.dedup();
        Ok(out)
    }
}

/// Adds the synthetic rows to `kinds` (before the indexes are built).
pub fn generate(
    kinds: &mut [KindData; 3],
    origins: &mut [Vec<Origin>; 3],
    config: &Synthetic,
    seed: u64,
) -> anyhow::Result<()> {
    let mut months: Vec<Date> = config.months.iter().map(|d| d.first_of_month()).collect();
    months.sort();
    months.dedup();
    let mut wanted = config.kinds.clone();
    wanted.sort();
    wanted.dedup();
    for kind in wanted {
        let data = &kinds[kind.index()];
        if data.certs.is_empty() {
            bail!("synthetic {kind} certificates need {kind} rows to resample: load a {kind} file");
        }
        // Fixed-size chunks, each with its own generator, so the rows do
        // not depend on how many threads made them.
        let mut tasks: Vec<(Date, u64, u32)> = Vec::new();
        for &m in &months {
            let mut left = config.per_month;
            let mut chunk = 0;
            while left > 0 {
                let n = left.min(CHUNK);
                tasks.push((m, chunk, n));
                left -= n;
                chunk += 1;
            }
        }
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, tasks.len().max(1));
        let mut results: Vec<Option<anyhow::Result<Vec<Certificate>>>> = (0..tasks.len()).map(|_| None).collect();
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..threads)
                .map(|t| {
                    let tasks = &tasks;
                    s.spawn(move || {
                        (t..tasks.len())
                            .step_by(threads)
                            .map(|i| {
                                let (m, chunk, n) = tasks[i];
                                (i, rows(kind, data, m, chunk, n, seed))
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            for h in handles {
                for (i, r) in h.join().expect("generator thread") {
                    results[i] = Some(r);
                }
            }
        });
        let data = &mut kinds[kind.index()];
        let origins = &mut origins[kind.index()];
        let file: Arc<str> = Arc::from(format!("synthetic {kind}"));
        data.certs.reserve(months.len() * config.per_month as usize);
        data.by_lmk.reserve(months.len() * config.per_month as usize);
        let mut line = 0;
        for result in results.into_iter().flatten() {
            for cert in result? {
                line += 1;
                let origin = Origin {
                    file: file.clone(),
                    line,
                };
                data::push(data, origins, cert, origin)?;
            }
        }
    }
    Ok(())
}

/// Rows per generator.
const CHUNK: u32 = 8192;

const UNIT_LETTERS: &[u8] = b"ABDEFGHJLNPQRSTUWXYZ";
const HEX: &[u8] = b"0123456789abcdef";

/// Weight of a lodgement on a day of the week.
fn weight(day: Weekday) -> u32 {
    match day {
        Weekday::Saturday => 25,
        Weekday::Sunday => 10,
        Weekday::Monday | Weekday::Friday => 95,
        _ => 100,
    }
}

/// Office-hours weights for 0..24.
const HOURS: [u32; 24] = [1, 0, 0, 0, 0, 1, 2, 5, 10, 14, 15, 15, 12, 14, 15, 14, 12, 9, 5, 3, 2, 2, 1, 1];

fn pick(cumulative: &[u32], rng: &mut Rng) -> usize {
    let total = *cumulative.last().expect("weights");
    let x = (rng.next() % total as u64) as u32;
    cumulative.partition_point(|&c| c <= x)
}

fn cumulative(weights: impl Iterator<Item = u32>) -> Vec<u32> {
    let mut acc = 0;
    weights
        .map(|w| {
            acc += w;
            acc
        })
        .collect()
}

fn sap_band(score: i64) -> &'static str {
    match score {
        92.. => "A",
        81..=91 => "B",
        69..=80 => "C",
        55..=68 => "D",
        39..=54 => "E",
        21..=38 => "F",
        _ => "G",
    }
}

fn rating_band(rating: i64) -> &'static str {
    match rating {
        ..=0 => "A+",
        1..=25 => "A",
        26..=50 => "B",
        51..=75 => "C",
        76..=100 => "D",
        101..=125 => "E",
        126..=150 => "F",
        _ => "G",
    }
}

/// `raw` scaled by `factor`, with as many decimals as it had; `None` when
/// it is not a plain number (placeholders stay as they are).
fn scale(raw: &str, factor: f64) -> Option<String> {
    let x: f64 = raw.trim().parse().ok().filter(|x: &f64| x.is_finite())?;
    if raw.contains(['e', 'E']) || raw.trim().is_empty() {
        return None;
    }
    let decimals = raw.split_once('.').map_or(0, |(_, f)| f.len());
    Some(format!("{:.*}", decimals, x * factor))
}

fn scaled_columns(kind: Kind) -> &'static [&'static str] {
    match kind {
        Kind::Domestic => &[
            "TOTAL_FLOOR_AREA",
            "ENERGY_CONSUMPTION_CURRENT",
            "ENERGY_CONSUMPTION_POTENTIAL",
            "CO2_EMISSIONS_CURRENT",
            "CO2_EMISSIONS_POTENTIAL",
            "LIGHTING_COST_CURRENT",
            "LIGHTING_COST_POTENTIAL",
            "HEATING_COST_CURRENT",
            "HEATING_COST_POTENTIAL",
            "HOT_WATER_COST_CURRENT",
            "HOT_WATER_COST_POTENTIAL",
        ],
        Kind::NonDomestic => &[
            "FLOOR_AREA",
            "STANDARD_EMISSIONS",
            "TARGET_EMISSIONS",
            "TYPICAL_EMISSIONS",
            "BUILDING_EMISSIONS",
            "PRIMARY_ENERGY_VALUE",
        ],
        Kind::Display => &[
            "TOTAL_FLOOR_AREA",
            "ELECTRIC_CO2",
            "HEATING_CO2",
            "ANNUAL_THERMAL_FUEL_USAGE",
            "ANNUAL_ELECTRICAL_FUEL_USAGE",
        ],
    }
}

/// The columns a synthetic row reads or changes.
const COLUMNS: &[&str] = &[
    "LMK_KEY",
    "LODGEMENT_DATE",
    "LODGEMENT_DATETIME",
    "INSPECTION_DATE",
    "BUILDING_REFERENCE_NUMBER",
    "UPRN",
    "UPRN_SOURCE",
    "POSTCODE",
    "ADDRESS1",
    "ADDRESS2",
    "ADDRESS3",
    "ADDRESS",
    "CURRENT_ENERGY_EFFICIENCY",
    "CURRENT_ENERGY_RATING",
    "POTENTIAL_ENERGY_EFFICIENCY",
    "POTENTIAL_ENERGY_RATING",
    "ENVIRONMENT_IMPACT_CURRENT",
    "ASSET_RATING",
    "ASSET_RATING_BAND",
    "CURRENT_OPERATIONAL_RATING",
    "OPERATIONAL_RATING_BAND",
    "CO2_EMISSIONS_CURRENT",
    "TOTAL_FLOOR_AREA",
    "CO2_EMISS_CURR_PER_FLOOR_AREA",
];
const LMK: usize = 0;
const DATE: usize = 1;
const DATETIME: usize = 2;
const INSPECTED: usize = 3;
const BRN: usize = 4;
const UPRN: usize = 5;
const UPRN_SOURCE: usize = 6;
const POSTCODE: usize = 7;
const ADDRESS1: usize = 8;
const ADDRESS2: usize = 9;
const ADDRESS3: usize = 10;
const ADDRESS: usize = 11;
const CUR_EFF: usize = 12;
const CUR_BAND: usize = 13;
const POT_EFF: usize = 14;
const POT_BAND: usize = 15;
const ENV_CUR: usize = 16;
const ASSET: usize = 17;
const ASSET_BAND: usize = 18;
const OPERATIONAL: usize = 19;
const OPERATIONAL_BAND: usize = 20;
const CO2: usize = 21;
const AREA: usize = 22;
const CO2_PER_AREA: usize = 23;

/// Column positions in one header, looked up once per header.
struct Positions {
    header: *const data::Header,
    named: Vec<Option<usize>>,
    scaled: Vec<usize>,
}

fn positions(kind: Kind, header: &data::Header) -> Positions {
    Positions {
        header,
        named: COLUMNS.iter().map(|c| header.position(c)).collect(),
        scaled: scaled_columns(kind).iter().filter_map(|c| header.position(c)).collect(),
    }
}

/// `n` rows of one kind and month, chunk `chunk` of the month.
fn rows(kind: Kind, data: &KindData, first: Date, chunk: u64, n: u32, seed: u64) -> anyhow::Result<Vec<Certificate>> {
    let salt = (kind.index() as u64) << 40 | chunk << 24 | (first.year() as u64) << 8 | first.month() as u64;
    let mut rng = Rng::new(seed ^ 0x5717_7E71C, salt);
    let days: Vec<Date> = (0..first.days_in_month())
        .filter_map(|d| first.checked_add(jiff::Span::new().days(d)).ok())
        .collect();
    let day_weights = cumulative(days.iter().map(|d| weight(d.weekday())));
    let hour_weights = cumulative(HOURS.iter().copied());
    let templates = &data.certs;
    let mut cache: Vec<Positions> = Vec::new();
    let mut out = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let t = &templates[rng.below(templates.len())];
        let header = t.header.clone();
        let p = match cache.iter().position(|p| std::ptr::eq(p.header, Arc::as_ptr(&header))) {
            Some(i) => &cache[i],
            None => {
                cache.push(positions(kind, &header));
                cache.last().expect("pushed")
            }
        };
        let get = |k: usize| p.named[k].map_or("", |i| t.values.at(i));
        let int = |k: usize| get(k).trim().parse::<i64>().ok();
        let mut changes: Vec<(usize, String)> = Vec::with_capacity(32);
        let mut set = |k: usize, value: String| {
            if let Some(i) = p.named[k] {
                changes.push((i, value));
            }
        };

        let mut key = String::with_capacity(64);
        for _ in 0..4 {
            let x = rng.next();
            for k in 0..16 {
                key.push(HEX[((x >> (60 - 4 * k)) & 0xF) as usize] as char);
            }
        }
        set(LMK, key);

        let day = days[pick(&day_weights, &mut rng)];
        let hour = pick(&hour_weights, &mut rng);
        let (minute, second) = (rng.below(60), rng.below(60));
        set(DATE, day.to_string());
        set(DATETIME, format!("{day} {hour:02}:{minute:02}:{second:02}"));
        let inspected = day
            .checked_sub(jiff::Span::new().days(rng.below(22) as i64))
            .unwrap_or(day);
        set(INSPECTED, inspected.to_string());
        set(BRN, format!("{}", 1_000_000_000 + rng.below(9_000_000_000)));

        // UPRN: about 7 % without.
        if rng.below(100) < 7 {
            set(UPRN, String::new());
            set(UPRN_SOURCE, String::new());
        } else {
            set(UPRN, format!("{}", 10_000_000 + rng.below(100_099_999_990)));
            let source = if rng.below(4) == 0 { "Address Matched" } else { "Energy Assessor" };
            set(UPRN_SOURCE, source.to_owned());
        }

        // Postcode unit and house number.
        if let Some((outward, inward)) = get(POSTCODE).split_once(' ')
            && inward.len() == 3
            && inward.as_bytes()[0].is_ascii_digit()
        {
            let a = UNIT_LETTERS[rng.below(UNIT_LETTERS.len())] as char;
            let b = UNIT_LETTERS[rng.below(UNIT_LETTERS.len())] as char;
            set(POSTCODE, format!("{outward} {}{a}{b}", &inward[..1]));
        }
        let address1 = get(ADDRESS1);
        let number_end = address1.find(|c: char| !c.is_ascii_digit()).unwrap_or(address1.len());
        let new_address1 = if number_end > 0 && number_end < address1.len() {
            format!("{}{}", 1 + rng.below(199), &address1[number_end..])
        } else {
            address1.to_owned()
        };
        if p.named[ADDRESS].is_some() {
            let parts: Vec<&str> = [new_address1.as_str(), get(ADDRESS2), get(ADDRESS3)]
                .into_iter()
                .filter(|p| !p.is_empty())
                .collect();
            set(ADDRESS, parts.join(", "));
        }
        set(ADDRESS1, new_address1);

        // Scores and bands.
        let jitter = |rng: &mut Rng, spread: i64| rng.below(2 * spread as usize + 1) as i64 - spread;
        match kind {
            Kind::Domestic => {
                if let Some(cur) = int(CUR_EFF) {
                    let cur = (cur + jitter(&mut rng, 4)).clamp(1, 100);
                    set(CUR_EFF, cur.to_string());
                    set(CUR_BAND, sap_band(cur).to_owned());
                    if let Some(pot) = int(POT_EFF) {
                        let pot = (pot + jitter(&mut rng, 3)).clamp(cur, 100);
                        set(POT_EFF, pot.to_string());
                        set(POT_BAND, sap_band(pot).to_owned());
                    }
                }
                if let Some(env) = int(ENV_CUR) {
                    set(ENV_CUR, (env + jitter(&mut rng, 4)).clamp(1, 100).to_string());
                }
            }
            Kind::NonDomestic => {
                if let Some(r) = int(ASSET) {
                    let r = (r + jitter(&mut rng, 8)).max(-20);
                    set(ASSET, r.to_string());
                    set(ASSET_BAND, rating_band(r).to_owned());
                }
            }
            Kind::Display => {
                if let Some(r) = int(OPERATIONAL).filter(|&r| r != 9999) {
                    let r = (r + jitter(&mut rng, 8)).max(0);
                    set(OPERATIONAL, r.to_string());
                    set(OPERATIONAL_BAND, rating_band(r).to_owned());
                }
            }
        }
        let factor = 0.85 + 0.3 * crate::recommendations::unit(&mut rng);
        for &i in &p.scaled {
            if let Some(v) = scale(t.values.at(i), factor) {
                changes.push((i, v));
            }
        }
        if kind == Kind::Domestic
            && let (Ok(co2), Ok(area)) = (get(CO2).trim().parse::<f64>(), get(AREA).trim().parse::<f64>())
            && area > 0.0
            && let Some(i) = p.named[CO2_PER_AREA]
        {
            changes.push((i, format!("{:.0}", co2 * factor * 1000.0 / (area * factor))));
        }

        let values = Values::derived(t.values.base().clone(), changes);
        out.push(data::certificate(kind, header, values)?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn month_specs() {
        let d = |y, m| Date::new(y, m, 1).unwrap();
        assert_eq!(Synthetic::months("2024-01..2024-03").unwrap(), [d(2024, 1), d(2024, 2), d(2024, 3)]);
        assert_eq!(Synthetic::months("2024-11..2025-01").unwrap().len(), 3);
        assert_eq!(Synthetic::months("2024-05,2024-01").unwrap(), [d(2024, 1), d(2024, 5)]);
        assert!(Synthetic::months("2024-03..2024-01").is_err());
        assert!(Synthetic::months("2024-13").is_err());
        assert!(Synthetic::months("").is_err());
    }

    #[test]
    fn bands_and_scaling() {
        assert_eq!(sap_band(92), "A");
        assert_eq!(sap_band(68), "D");
        assert_eq!(sap_band(1), "G");
        assert_eq!(rating_band(-3), "A+");
        assert_eq!(rating_band(151), "G");
        assert_eq!(scale("12.50", 2.0).as_deref(), Some("25.00"));
        assert_eq!(scale("70", 1.1).as_deref(), Some("77"));
        assert_eq!(scale("NO DATA!", 1.1), None);
    }
}
