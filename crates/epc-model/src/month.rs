use crate::InputError;
use jiff::civil::Date;
use std::fmt;
use std::str::FromStr;

/// A calendar month: the unit of fetching, landing, loading and partitioning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Month {
    year: u16,
    month: u8,
}

/// The first month either API holds (ODC starts in October 2008; GEPBD in
/// 2012). Anything earlier is a typo.
const FIRST_YEAR: u16 = 2008;

impl Month {
    pub fn new(year: u16, month: u8) -> Result<Self, InputError> {
        if !(1..=12).contains(&month) {
            return Err(InputError::new(format!(
                "month {year}-{month:02} does not exist: months run 01 to 12 (YYYY-MM)"
            )));
        }
        if !(FIRST_YEAR..=9999).contains(&year) {
            return Err(InputError::new(format!(
                "month {year}-{month:02} is out of range: EPC data starts in {FIRST_YEAR}"
            )));
        }
        Ok(Self { year, month })
    }

    pub fn year(self) -> u16 {
        self.year
    }

    pub fn month(self) -> u8 {
        self.month
    }

    /// The month that holds `date`.
    pub fn of(date: Date) -> Self {
        Self { year: date.year() as u16, month: date.month() as u8 }
    }

    /// `YYYYMM`, as object keys and partitions spell it.
    pub fn compact(self) -> String {
        format!("{:04}{:02}", self.year, self.month)
    }

    /// Parses `YYYYMM` (object keys).
    pub fn from_compact(s: &str) -> Option<Self> {
        if s.len() != 6 || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        Month::new(s[..4].parse().ok()?, s[4..].parse().ok()?).ok()
    }

    pub fn first_day(self) -> Date {
        Date::new(self.year as i16, self.month as i8, 1).expect("validated month")
    }

    pub fn last_day(self) -> Date {
        self.first_day().last_of_month()
    }

    pub fn next(self) -> Self {
        if self.month == 12 {
            Self { year: self.year + 1, month: 1 }
        } else {
            Self { year: self.year, month: self.month + 1 }
        }
    }

    pub fn prev(self) -> Self {
        if self.month == 1 {
            Self { year: self.year - 1, month: 12 }
        } else {
            Self { year: self.year, month: self.month - 1 }
        }
    }

    /// Whether `date` falls in this month.
    pub fn contains(self, date: Date) -> bool {
        Month::of(date) == self
    }
}

impl fmt::Display for Month {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

impl FromStr for Month {
    type Err = InputError;

    /// `YYYY-MM`, the form people type.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        let bad = || InputError::new(format!("malformed month '{s}': write it as YYYY-MM, e.g. 2024-01"));
        let (y, m) = t.split_once('-').ok_or_else(bad)?;
        if y.len() != 4 || m.len() != 2 || !y.bytes().chain(m.bytes()).all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        Month::new(y.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?)
    }
}

impl serde::Serialize for Month {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Month {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// An inclusive run of months, validated against today.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MonthRange {
    pub start: Month,
    pub end: Month,
}

impl MonthRange {
    /// Checks a requested range against `today` (London): the start must not
    /// follow the end, and every month must be over, because the API serves
    /// nothing from today and a month still in progress cannot be marked
    /// complete.
    pub fn new(start: Month, end: Month, today: Date) -> Result<Self, InputError> {
        if start > end {
            return Err(InputError::new(format!(
                "months are reversed: start {start} is after end {end}; swap them"
            )));
        }
        let current = Month::of(today);
        if end > current {
            return Err(InputError::new(format!(
                "month {end} is in the future (today is {today}): choose months up to {}",
                current.prev()
            )));
        }
        if end == current {
            return Err(InputError::new(format!(
                "month {end} is not over yet (today is {today}) and the API serves nothing from today: \
                 choose months up to {}",
                current.prev()
            )));
        }
        Ok(Self { start, end })
    }

    /// The default when no month is given: the previous calendar month.
    pub fn previous_month(today: Date) -> Self {
        let m = Month::of(today).prev();
        Self { start: m, end: m }
    }

    pub fn iter(self) -> impl Iterator<Item = Month> {
        let end = self.end;
        std::iter::successors(Some(self.start), move |m| (*m < end).then(|| m.next()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

    #[test]
    fn parses_and_prints() {
        let m: Month = "2021-03".parse().unwrap();
        assert_eq!(m.to_string(), "2021-03");
        assert_eq!(m.compact(), "202103");
        assert_eq!(Month::from_compact("202103"), Some(m));
        assert_eq!(m.last_day(), date(2021, 3, 31));
        assert_eq!("2024-02".parse::<Month>().unwrap().last_day(), date(2024, 2, 29));
    }

    #[test]
    fn malformed_months_say_how_to_write_them() {
        for bad in ["2021-3", "21-03", "2021/03", "2021-13", "2021-00", "march", "2021-03-01"] {
            let err = bad.parse::<Month>().unwrap_err();
            assert!(err.0.contains("YYYY-MM") || err.0.contains("01 to 12"), "{bad}: {err}");
        }
        assert!("1999-01".parse::<Month>().unwrap_err().0.contains("2008"));
    }

    #[test]
    fn ranges_are_checked_against_today() {
        let today = date(2026, 11, 27);
        let m = |s: &str| s.parse::<Month>().unwrap();
        assert!(MonthRange::new(m("2021-03"), m("2021-01"), today).unwrap_err().0.contains("reversed"));
        assert!(MonthRange::new(m("2026-10"), m("2026-12"), today).unwrap_err().0.contains("future"));
        assert!(MonthRange::new(m("2026-11"), m("2026-11"), today).unwrap_err().0.contains("not over"));
        let r = MonthRange::new(m("2025-11"), m("2026-02"), today).unwrap();
        let months: Vec<String> = r.iter().map(|m| m.to_string()).collect();
        assert_eq!(months, ["2025-11", "2025-12", "2026-01", "2026-02"]);
        assert_eq!(MonthRange::previous_month(date(2026, 1, 5)).start, m("2025-12"));
    }
}
