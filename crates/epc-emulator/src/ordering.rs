//! The two APIs' orderings, including GEPBD's deliberate instability.
//!
//! GEPBD sorts search results by `registration_date DESC` and pages with
//! OFFSET, with no tie-breaker. The database is then free to return rows of
//! the same date in any order, and it does: a window spanning several pages
//! shows some rows twice and skips others. A client that is only ever tested
//! against a stable order will pass its tests and lose rows in production, so
//! the emulator makes the instability real: it shuffles the rows of each date
//! afresh on every request, with a generator seeded from the configured seed
//! and a per-request counter (deterministic for a given seed and request
//! sequence, different between requests).
//!
//! ODC pages with a `search-after` cursor over a total order (lodgement
//! datetime, then LMK key), so paging there is stable.

use jiff::civil::Date;

/// SplitMix64: tiny, fast and good enough to shuffle; no dependency needed.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64, request: u64) -> Rng {
        let mut r = Rng(seed ^ request.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        r.next();
        r
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0); the modulo bias is irrelevant here.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Shuffles, in place, every run of equal dates in `rows`, which must already
/// be sorted by date (newest first). Rows of different dates keep their order.
pub fn shuffle_ties(rows: &mut [usize], date_of: impl Fn(usize) -> Date, rng: &mut Rng) {
    let mut start = 0;
    while start < rows.len() {
        let date = date_of(rows[start]);
        let mut end = start + 1;
        while end < rows.len() && date_of(rows[end]) == date {
            end += 1;
        }
        let run = &mut rows[start..end];
        for i in (1..run.len()).rev() {
            run.swap(i, rng.below(i + 1));
        }
        start = end;
    }
}

/// The ODC `search-after` cursor of a row: `YYYYMMDDHHMMSS-<LMK key>`. It is
/// opaque to clients; it only contains characters that need no escaping in a
/// query string, so a client that forgets to encode it still works.
pub fn encode_cursor(sort_key: &str, lmk_key: &str) -> String {
    format!("{sort_key}-{lmk_key}")
}

/// Reads a cursor back; `None` when it is not one the emulator wrote.
pub fn decode_cursor(cursor: &str) -> Option<(&str, &str)> {
    let (key, lmk) = cursor.split_once('-')?;
    (key.len() == 14 && key.bytes().all(|b| b.is_ascii_digit()) && !lmk.is_empty())
        .then_some((key, lmk))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shuffles_only_within_a_date() {
        let d = |i: usize| Date::new(2021, 1, if i < 10 { 2 } else { 1 }).unwrap();
        let base: Vec<usize> = (0..20).collect();
        let mut seen = std::collections::HashSet::new();
        for req in 0..10 {
            let mut rows = base.clone();
            shuffle_ties(&mut rows, d, &mut Rng::new(7, req));
            assert!(rows[..10].iter().all(|&i| i < 10));
            assert!(rows[10..].iter().all(|&i| i >= 10));
            seen.insert(rows);
        }
        assert!(seen.len() > 5, "the order must change between requests");
        let mut a = base.clone();
        let mut b = base.clone();
        shuffle_ties(&mut a, d, &mut Rng::new(7, 3));
        shuffle_ties(&mut b, d, &mut Rng::new(7, 3));
        assert_eq!(a, b, "deterministic per seed and request");
    }

    #[test]
    fn cursors_round_trip() {
        let c = encode_cursor("20210806073531", "0003-abc");
        assert_eq!(decode_cursor(&c), Some(("20210806073531", "0003-abc")));
        assert_eq!(decode_cursor("2021-abc"), None);
        assert_eq!(decode_cursor("20210806073531-"), None);
    }
}
