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
        Ok(Self::new(rate, (rate / 2.0).ceil().max(1.0) as u32))
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
    fn specs_parse() {
        assert!((RequestBudget::parse("6000/300s").unwrap().rate() - 20.0).abs() < 1e-9);
        assert!((RequestBudget::parse("2.5").unwrap().rate() - 2.5).abs() < 1e-9);
        for bad in ["", "x", "5/0s", "-3", "1/x"] {
            assert!(RequestBudget::parse(bad).is_err(), "{bad}");
        }
    }
}
