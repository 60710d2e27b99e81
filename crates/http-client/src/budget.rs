//! The request budget: a token bucket every request of a client draws
//! from, retries included, so a run stays under the API's rate limit by
//! construction instead of finding it with 429s.

use std::sync::Mutex;
use std::time::Duration;

/// A token bucket: `rate` requests a second on average, at most `burst`
/// at once.
#[derive(Debug)]
pub struct RequestBudget {
    rate: f64,
    burst: f64,
    state: Mutex<(f64, Option<Duration>)>,
}

impl RequestBudget {
    /// GEPBD allows 6,000 requests per 5 minutes (20 a second) per client
    /// address. 96% of it keeps a margin for clock drift and other callers
    /// while wasting little of the allowance.
    pub fn gepbd_default() -> Self {
        Self::new(19.2, 10)
    }

    pub fn new(rate_per_second: f64, burst: u32) -> Self {
        let rate = rate_per_second.max(0.001);
        let burst = burst.max(1) as f64;
        Self { rate, burst, state: Mutex::new((burst, None)) }
    }

    /// Parses `N/Ds` (e.g. `6000/300s`) or a plain rate per second.
    pub fn parse(spec: &str) -> Result<Self, String> {
        let bad = || format!("request budget '{spec}' is not N/Ds (e.g. 5760/300s) or a rate per second");
        let rate = match spec.trim().split_once('/') {
            Some((n, d)) => {
                let n: f64 = n.trim().parse().map_err(|_| bad())?;
                let d: f64 = d.trim().trim_end_matches('s').parse().map_err(|_| bad())?;
                if d <= 0.0 {
                    return Err(bad());
                }
                n / d
            }
            None => spec.trim().parse().map_err(|_| bad())?,
        };
        if !(rate.is_finite() && rate > 0.0) {
            return Err(bad());
        }
        // At most half a second's requests at once, and at most 1% of the
        // window's: the most a bucket lets through in any window is its
        // burst plus the window's budget, so a budget set a few percent
        // under a fixed-window limit (as GEPBD's 5760/300s is under
        // 6000/300s) stays under it however short the window. With only
        // the half second, 288/10s let 303 through some 10 s windows of a
        // 300/10s limit (`dame bench` saw 429s in steady state).
        let window_count = match spec.trim().split_once('/') {
            Some((n, _)) => n.trim().parse::<f64>().unwrap_or(f64::INFINITY),
            None => f64::INFINITY,
        };
        let burst = (rate / 2.0).min(window_count / 100.0).floor().max(1.0);
        Ok(Self::new(rate, burst as u32))
    }

    /// How many requests may go at once after a pause.
    pub fn burst(&self) -> f64 {
        self.burst
    }

    pub fn rate(&self) -> f64 {
        self.rate
    }

    /// Takes a token at time `now`, or says how long to wait for one.
    pub fn try_take(&self, now: Duration) -> Result<(), Duration> {
        let mut state = self.state.lock().expect("not poisoned");
        let (tokens, last) = &mut *state;
        if let Some(last) = *last {
            let elapsed = now.saturating_sub(last).as_secs_f64();
            *tokens = (*tokens + elapsed * self.rate).min(self.burst);
        }
        *last = Some(now);
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - *tokens) / self.rate))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bursts_then_settles_at_the_rate() {
        let b = RequestBudget::new(10.0, 5);
        let t0 = Duration::from_secs(100);
        for _ in 0..5 {
            assert!(b.try_take(t0).is_ok());
        }
        let wait = b.try_take(t0).unwrap_err();
        assert!((wait.as_secs_f64() - 0.1).abs() < 1e-9, "{wait:?}");
        // Over ten simulated seconds, about 100 more requests.
        let mut taken = 0;
        let mut t = t0;
        while t < t0 + Duration::from_secs(10) {
            match b.try_take(t) {
                Ok(()) => taken += 1,
                Err(w) => t += w,
            }
        }
        assert!((99..=101).contains(&taken), "{taken}");
    }

    #[test]
    fn a_budget_under_a_fixed_window_limit_never_exceeds_it() {
        // 96% of 300 per 10 s: whatever the pauses, no 10 s window may see
        // more than 300 requests.
        let b = RequestBudget::parse("288/10s").unwrap();
        assert!(b.burst() <= 3.0, "{}", b.burst());
        let mut sent = Vec::new();
        let mut t = Duration::from_secs(1);
        let mut n = 0u64;
        while t < Duration::from_secs(120) {
            match b.try_take(t) {
                Ok(()) => sent.push(t),
                Err(w) => t += w,
            }
            // A pause of a second every 200 requests refills the bucket.
            n += 1;
            if n % 200 == 0 {
                t += Duration::from_secs(1);
            }
        }
        for (i, start) in sent.iter().enumerate() {
            let within = sent[i..].iter().take_while(|&&x| x < *start + Duration::from_secs(10)).count();
            assert!(within <= 300, "{within} requests in the 10 s from {start:?}");
        }
        // Production's budget keeps its half-second burst.
        assert_eq!(RequestBudget::parse("5760/300s").unwrap().burst(), 9.0);
    }

    #[test]
    fn specs_parse() {
        assert!((RequestBudget::parse("6000/300s").unwrap().rate() - 20.0).abs() < 1e-9);
        assert!((RequestBudget::parse("2.5").unwrap().rate() - 2.5).abs() < 1e-9);
        for bad in ["", "x", "5/0s", "-3", "1/x"] {
            assert!(RequestBudget::parse(bad).is_err(), "{bad}");
        }
    }
}
