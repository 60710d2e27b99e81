use std::time::Duration;

/// The longest `Retry-After` obeyed.
const RETRY_AFTER_CEILING: Duration = Duration::from_secs(300);

/// When and how long to wait before trying a request again.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    /// Six attempts over roughly a minute: long enough to ride out a
    /// restart or a rate-limit window, short enough that a dead service
    /// fails the month well inside a run's time budget.
    fn default() -> Self {
        Self { max_attempts: 6, base_delay: Duration::from_millis(500), max_delay: Duration::from_secs(30) }
    }
}

impl RetryPolicy {
    /// The wait before attempt `attempt + 1` (attempt counts from 1):
    /// exponential, with "equal jitter" (half fixed, half random) so that
    /// many clients retrying together spread out, and never shorter than
    /// what the server asked for in `Retry-After`.
    pub fn delay(&self, attempt: u32, retry_after: Option<Duration>, random: u64) -> Duration {
        let exp = self.base_delay.saturating_mul(1u32 << attempt.saturating_sub(1).min(16));
        let capped = exp.min(self.max_delay);
        let half = capped / 2;
        let jitter = if half.is_zero() { Duration::ZERO } else { Duration::from_nanos(random % half.as_nanos() as u64) };
        let backoff = half + jitter;
        match retry_after {
            // The server knows its own window; the ceiling only stops a
            // broken or hostile value from stalling a run for hours.
            Some(asked) => asked.min(RETRY_AFTER_CEILING),
            None => backoff,
        }
    }
}

/// Reads `Retry-After` as delta-seconds (the form rate limiters send). An
/// HTTP-date is treated as absent and the backoff applies.
pub(crate) fn parse_retry_after(value: Option<&str>) -> Option<Duration> {
    let secs: f64 = value?.trim().parse().ok()?;
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs.min(3600.0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let p = RetryPolicy::default();
        let d1 = p.delay(1, None, 0);
        let d3 = p.delay(3, None, 0);
        assert_eq!(d1, Duration::from_millis(250));
        assert_eq!(d3, Duration::from_millis(1000));
        assert!(p.delay(20, None, u64::MAX) <= p.max_delay);
    }

    #[test]
    fn jitter_stays_within_the_step() {
        let p = RetryPolicy::default();
        for r in [0, 1, 12345, u64::MAX / 3, u64::MAX] {
            let d = p.delay(2, None, r);
            assert!(d >= Duration::from_millis(500) && d < Duration::from_millis(1000), "{d:?}");
        }
    }

    #[test]
    fn retry_after_is_honoured() {
        let p = RetryPolicy::default();
        assert_eq!(p.delay(1, Some(Duration::from_secs(7)), 0), Duration::from_secs(7));
        assert_eq!(parse_retry_after(Some(" 3 ")), Some(Duration::from_secs(3)));
        assert_eq!(parse_retry_after(Some("Wed, 21 Oct 2015 07:28:00 GMT")), None);
    }
}
