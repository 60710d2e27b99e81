use crate::retry::parse_retry_after;
use crate::{Request, Response, RetryPolicy, Transport, TransportError, redact_url};
use std::sync::atomic::{AtomicU64, Ordering};

/// Response bodies larger than this are refused unless a caller asks for
/// more: the largest legitimate EPC response (a 5,000-row search page) is a
/// few megabytes.
pub const DEFAULT_MAX_BODY: usize = 64 * 1024 * 1024;

/// Why a request could not be completed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Still failing after every retry (5xx, 429, connection errors).
    #[error("{method} {url}: {last} (gave up after {attempts} attempts)")]
    Unavailable { method: &'static str, url: String, attempts: u32, last: String },
    /// Failed in a way retrying cannot fix.
    #[error("{method} {url}: {reason}")]
    Refused { method: &'static str, url: String, reason: String },
}

/// Request counters, readable while requests are in flight.
#[derive(Debug, Default)]
pub struct Counters {
    requests: AtomicU64,
    retries: AtomicU64,
    bytes: AtomicU64,
    /// Why requests were retried, by short reason, for the run's report.
    reasons: std::sync::Mutex<std::collections::BTreeMap<String, u32>>,
}

impl Counters {
    /// (requests, retries, body bytes) so far.
    pub fn snapshot(&self) -> (u64, u64, u64) {
        (
            self.requests.load(Ordering::Relaxed),
            self.retries.load(Ordering::Relaxed),
            self.bytes.load(Ordering::Relaxed),
        )
    }

    /// "3 × HTTP 429, 1 × connection reset"-style summary of retry reasons,
    /// or `None` when nothing was retried.
    pub fn retry_reasons(&self) -> Option<String> {
        let reasons = self.reasons.lock().ok()?;
        if reasons.is_empty() {
            return None;
        }
        Some(reasons.iter().map(|(r, n)| format!("{n} × {r}")).collect::<Vec<_>>().join(", "))
    }

    /// Like [`Counters::retry_reasons`], and forgets them: for reporting
    /// per page with a client that lives longer.
    pub fn take_retry_reasons(&self) -> Option<String> {
        let summary = self.retry_reasons();
        if let Ok(mut r) = self.reasons.lock() {
            r.clear();
        }
        summary
    }

    fn note_retry(&self, reason: &str) {
        self.retries.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut r) = self.reasons.lock() {
            let short: String = reason.chars().take(80).collect();
            *r.entry(short).or_default() += 1;
        }
    }
}

pub struct Client<T> {
    transport: T,
    policy: RetryPolicy,
    max_body: usize,
    counters: Counters,
    budget: Option<crate::RequestBudget>,
}

impl<T: Transport> Client<T> {
    pub fn new(transport: T) -> Self {
        Self { transport, policy: RetryPolicy::default(), max_body: DEFAULT_MAX_BODY, counters: Counters::default(), budget: None }
    }

    /// Every request, retries included, first takes a token from `budget`.
    pub fn with_budget(mut self, budget: crate::RequestBudget) -> Self {
        self.budget = Some(budget);
        self
    }

    /// Waits until the budget allows one more request.
    async fn take_token(&self) {
        let Some(budget) = &self.budget else { return };
        while let Err(wait) = budget.try_take(self.transport.now()) {
            self.transport.sleep(wait).await;
        }
    }

    pub fn with_policy(mut self, policy: RetryPolicy) -> Self {
        self.policy = policy;
        self
    }

    pub fn with_max_body(mut self, max_body: usize) -> Self {
        self.max_body = max_body;
        self
    }

    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    pub fn transport(&self) -> &T {
        &self.transport
    }

    /// Sends `request`, retrying what is worth retrying. Any response that is
    /// not retryable (2xx, 3xx, 4xx other than 429) is returned for the
    /// caller to interpret: a 404 means "no results" to one API and "gone" to
    /// another.
    pub async fn send(&self, request: &Request) -> Result<Response, Error> {
        let method = request.method.as_str();
        let mut attempt = 0;
        loop {
            attempt += 1;
            self.take_token().await;
            self.counters.requests.fetch_add(1, Ordering::Relaxed);
            let outcome = self.transport.send(request, self.max_body).await;
            let (last, retry_after) = match outcome {
                Ok(response) => {
                    self.counters.bytes.fetch_add(response.body.len() as u64, Ordering::Relaxed);
                    if !is_retryable(response.status) {
                        return Ok(response);
                    }
                    let why = format!("HTTP {}", response.status);
                    (why, parse_retry_after(response.header("retry-after")))
                }
                Err(TransportError::Connection(e)) => (e, None),
                Err(e @ (TransportError::TooLarge { .. } | TransportError::Refused(_))) => {
                    return Err(Error::Refused { method, url: redact_url(&request.url), reason: e.to_string() });
                }
            };
            if attempt >= self.policy.max_attempts {
                return Err(Error::Unavailable { method, url: redact_url(&request.url), attempts: attempt, last });
            }
            self.counters.note_retry(&last);
            let wait = self.policy.delay(attempt, retry_after, self.transport.random());
            self.transport.sleep(wait).await;
        }
    }
}

fn is_retryable(status: u16) -> bool {
    matches!(status, 408 | 429 | 500 | 502 | 503 | 504)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::collections::VecDeque;
    use std::time::Duration;

    /// Replays scripted outcomes and records the waits asked for.
    struct Script {
        outcomes: RefCell<VecDeque<Result<Response, TransportError>>>,
        waits: RefCell<Vec<Duration>>,
    }

    impl Transport for Script {
        async fn send(&self, _: &Request, _: usize) -> Result<Response, TransportError> {
            self.outcomes.borrow_mut().pop_front().expect("script ran out")
        }
        async fn sleep(&self, d: Duration) {
            self.waits.borrow_mut().push(d);
        }
        fn random(&self) -> u64 {
            0
        }
        fn now(&self) -> Duration {
            Duration::ZERO
        }
    }

    fn status(code: u16, headers: &[(&str, &str)]) -> Result<Response, TransportError> {
        Ok(Response {
            status: code,
            headers: headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            body: b"busy".to_vec(),
        })
    }

    fn run<F: std::future::Future>(f: F) -> F::Output {
        // The futures here never wait on anything real, so one poll loop with
        // a no-op waker drives them to the end.
        let mut f = std::pin::pin!(f);
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        loop {
            if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) {
                return v;
            }
        }
    }

    fn client(outcomes: Vec<Result<Response, TransportError>>) -> Client<Script> {
        Client::new(Script { outcomes: RefCell::new(outcomes.into()), waits: RefCell::new(Vec::new()) })
    }

    #[test]
    fn retries_429_and_5xx_then_succeeds() {
        let c = client(vec![
            status(429, &[("Retry-After", "2")]),
            status(503, &[]),
            Err(TransportError::Connection("reset".into())),
            status(200, &[]),
        ]);
        let r = run(c.send(&Request::get("http://x/a"))).unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(c.counters().snapshot().0, 4);
        assert_eq!(c.counters().snapshot().1, 3);
        assert_eq!(c.transport().waits.borrow()[0], Duration::from_secs(2));
    }

    #[test]
    fn other_statuses_are_the_callers_to_read() {
        let c = client(vec![status(404, &[])]);
        assert_eq!(run(c.send(&Request::get("http://x/a"))).unwrap().status, 404);
        assert_eq!(c.counters().snapshot().1, 0);
    }

    #[test]
    fn gives_up_with_the_last_reason() {
        let c = client((0..6).map(|_| status(502, &[])).collect());
        let err = run(c.send(&Request::get("http://x/a").header("Authorization", "Bearer s3cret"))).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("HTTP 502") && msg.contains("6 attempts") && !msg.contains("s3cret"), "{msg}");
    }

    #[test]
    fn oversized_bodies_are_not_retried() {
        let c = client(vec![Err(TransportError::TooLarge { limit: 10 })]);
        assert!(matches!(run(c.send(&Request::get("http://x/a"))), Err(Error::Refused { .. })));
    }
}
