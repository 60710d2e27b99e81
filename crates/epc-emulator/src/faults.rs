//! Injected faults and GEPBD's rate limit, for testing clients' resilience.
//!
//! Faults apply to the API routes (`/api/…`) only, never to `/_emulator/*`
//! nor to bulk downloads (`/_files/…`, the stand-in for S3). Each API request
//! draws at most one fault class, from a generator seeded by the configured
//! seed and the request's sequence number: the same seed and the same
//! sequence of requests give the same faults. A class that does not apply to
//! the response it drew (a truncated body on an empty 200, rows shifted on a
//! one-page window) does nothing and is not counted.
//!
//! Spec grammar (`--faults`): a profile name (`chaos`, `none`) or a
//! comma-separated list of `CLASS=RATE[:PARAM]`, optionally after a profile
//! (`chaos,slow=0:1s` overrides one class of it). Classes and their PARAM:
//!
//! | class | what the client sees | PARAM |
//! |---|---|---|
//! | `429` | 429 with `Retry-After` | seconds to ask for (default 1) |
//! | `429bare` | 429 without `Retry-After` | |
//! | `500`, `502`, `503` | that status (502/503 with an HTML body, as gateways send) | |
//! | `reset` | the connection reset before any response | |
//! | `cut` | headers and part of the body, then the connection closed | |
//! | `slow` | the response after a delay (longer than a client's timeout) | delay (default `30s`) |
//! | `truncate` | a 200 whose body is cut short (valid framing, invalid content) | |
//! | `badjson` | a 200 whose JSON body is invalid | |
//! | `badutf8` | a 200 whose body holds invalid UTF-8 | |
//! | `dup` | a GEPBD search page of a multi-page window shifted back or forward (rows repeated or skipped across pages) | |
//! | `total` | a GEPBD search reporting a different `totalRecords` (as if rows arrived or left during the window) | |

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use axum::body::{Body, Bytes};
use axum::extract::connect_info::ConnectInfo;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::Emulator;
use crate::net::Conn;
use crate::ordering::Rng;
use crate::recommendations::unit;

/// A fault class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Fault {
    TooMany,
    TooManyBare,
    Internal,
    BadGateway,
    Unavailable,
    Reset,
    Cut,
    Slow,
    Truncate,
    BadJson,
    BadUtf8,
    Dup,
    Total,
}

impl Fault {
    pub const ALL: [Fault; 13] = [
        Fault::TooMany,
        Fault::TooManyBare,
        Fault::Internal,
        Fault::BadGateway,
        Fault::Unavailable,
        Fault::Reset,
        Fault::Cut,
        Fault::Slow,
        Fault::Truncate,
        Fault::BadJson,
        Fault::BadUtf8,
        Fault::Dup,
        Fault::Total,
    ];

    /// The name in specs and in [`crate::Stats::faults`].
    pub fn name(self) -> &'static str {
        match self {
            Fault::TooMany => "429",
            Fault::TooManyBare => "429bare",
            Fault::Internal => "500",
            Fault::BadGateway => "502",
            Fault::Unavailable => "503",
            Fault::Reset => "reset",
            Fault::Cut => "cut",
            Fault::Slow => "slow",
            Fault::Truncate => "truncate",
            Fault::BadJson => "badjson",
            Fault::BadUtf8 => "badutf8",
            Fault::Dup => "dup",
            Fault::Total => "total",
        }
    }
}

impl std::str::FromStr for Fault {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> anyhow::Result<Fault> {
        Fault::ALL
            .into_iter()
            .find(|f| f.name() == s)
            .with_context(|| {
                format!(
                    "unknown fault class {s:?}: use one of {}",
                    Fault::ALL.map(Fault::name).join(", ")
                )
            })
    }
}

/// Which faults to inject, and how often (each a share of API requests;
/// the shares add up to at most 1). `Default`: none.
#[derive(Debug, Clone, PartialEq)]
pub struct Faults {
    pub rates: BTreeMap<Fault, f64>,
    /// What a `429` fault asks for in `Retry-After`.
    pub retry_after: Duration,
    /// How long a `slow` fault holds the response.
    pub slow: Duration,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            rates: BTreeMap::new(),
            retry_after: Duration::from_secs(1),
            slow: Duration::from_secs(30),
        }
    }
}

impl Faults {
    /// Every class at a moderate rate (about one API request in four draws
    /// a fault, one in six fails outright), so that a client making six
    /// attempts with backoff still gets everything: the chance that one
    /// request fails six times running is about 3 in 100,000. Slow
    /// responses are held 10 s, longer than a test client's timeout and
    /// short enough not to stall a run.
    pub fn chaos() -> Faults {
        let rates = [
            (Fault::TooMany, 0.03),
            (Fault::TooManyBare, 0.01),
            (Fault::Internal, 0.02),
            (Fault::BadGateway, 0.02),
            (Fault::Unavailable, 0.02),
            (Fault::Reset, 0.02),
            (Fault::Cut, 0.01),
            (Fault::Slow, 0.01),
            (Fault::Truncate, 0.01),
            (Fault::BadJson, 0.01),
            (Fault::BadUtf8, 0.01),
            (Fault::Dup, 0.05),
            (Fault::Total, 0.02),
        ];
        Faults {
            rates: rates.into_iter().collect(),
            retry_after: Duration::from_secs(1),
            slow: Duration::from_secs(10),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.rates.values().all(|&r| r <= 0.0)
    }

    pub fn rate(&self, fault: Fault) -> f64 {
        self.rates.get(&fault).copied().unwrap_or(0.0)
    }

    /// The class a request draws (`None` most of the time).
    fn draw(&self, rng: &mut Rng) -> Option<Fault> {
        let u = unit(rng);
        let mut acc = 0.0;
        for (&f, &r) in &self.rates {
            acc += r.max(0.0);
            if u < acc {
                return Some(f);
            }
        }
        None
    }
}

impl std::str::FromStr for Faults {
    type Err = anyhow::Error;
    /// See the module documentation for the grammar.
    fn from_str(spec: &str) -> anyhow::Result<Faults> {
        let mut faults = Faults::default();
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match part {
                "chaos" => {
                    faults = Faults::chaos();
                    continue;
                }
                "none" | "off" => {
                    faults = Faults::default();
                    continue;
                }
                _ => {}
            }
            let (class, value) = part
                .split_once('=')
                .with_context(|| format!("fault {part:?}: expected CLASS=RATE[:PARAM] or a profile (chaos, none)"))?;
            let fault: Fault = class.trim().parse()?;
            let (rate, param) = match value.split_once(':') {
                Some((r, p)) => (r, Some(p.trim())),
                None => (value, None),
            };
            let rate: f64 = rate
                .trim()
                .parse()
                .ok()
                .filter(|r: &f64| (0.0..=1.0).contains(r))
                .with_context(|| format!("fault {part:?}: the rate must be a number from 0 to 1"))?;
            match (fault, param) {
                (_, None) => {}
                (Fault::TooMany, Some(p)) => {
                    faults.retry_after = parse_duration(p)
                        .or_else(|_| parse_duration(&format!("{p}s")))
                        .with_context(|| format!("fault {part:?}: Retry-After {p:?}"))?
                }
                (Fault::Slow, Some(p)) => {
                    faults.slow = parse_duration(p).with_context(|| format!("fault {part:?}: delay {p:?}"))?
                }
                (_, Some(_)) => bail!("fault {part:?}: class {} takes no parameter", fault.name()),
            }
            faults.rates.insert(fault, rate);
        }
        let sum: f64 = faults.rates.values().sum();
        if sum > 1.0 + 1e-9 {
            bail!("fault rates add up to {sum}, more than 1");
        }
        Ok(faults)
    }
}

/// `30s`, `500ms`, `2m`, `1.5s`, `1h`.
pub fn parse_duration(s: &str) -> anyhow::Result<Duration> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .with_context(|| format!("duration {s:?} has no unit (ms, s, m, h)"))?;
    let (n, unit) = s.split_at(split);
    let n: f64 = n.parse().with_context(|| format!("duration {s:?}"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" | "min" => n * 60.0,
        "h" => n * 3600.0,
        _ => bail!("duration {s:?}: unit must be ms, s, m or h"),
    };
    Duration::try_from_secs_f64(secs).with_context(|| format!("duration {s:?}"))
}

/// A fault drawn for a request and left to its handler (`dup`, `total`).
#[derive(Debug, Clone, Copy)]
pub struct Drawn(pub Fault);

/// Marks a response whose connection a fault killed (counted as status 0).
#[derive(Debug, Clone, Copy)]
pub struct Aborted;

fn is_api(path: &str) -> bool {
    path.starts_with("/api/")
}

const FAULT_SALT: u64 = 0xFA17_5EED;

/// The fault layer.
pub async fn inject(State(emu): State<Arc<Emulator>>, mut request: Request, next: Next) -> Response {
    if emu.faults.is_empty() || !is_api(request.uri().path()) {
        return next.run(request).await;
    }
    let n = emu.fault_requests.fetch_add(1, Ordering::Relaxed);
    let mut rng = Rng::new(emu.seed ^ FAULT_SALT, n);
    let Some(fault) = emu.faults.draw(&mut rng) else {
        return next.run(request).await;
    };
    let count = || emu.recorder.fault(fault.name());
    match fault {
        Fault::TooMany => {
            count();
            let secs = emu.faults.retry_after.as_secs_f64().ceil().max(0.0) as u64;
            let mut r = crate::gepbd::error(StatusCode::TOO_MANY_REQUESTS, "Too many requests");
            r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
            r
        }
        Fault::TooManyBare => {
            count();
            crate::gepbd::error(StatusCode::TOO_MANY_REQUESTS, "Too many requests")
        }
        Fault::Internal => {
            count();
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                axum::Json(json!({"errors": [{"code": "Unexpected error"}]})),
            )
                .into_response()
        }
        Fault::BadGateway | Fault::Unavailable => {
            count();
            let (status, title) = if fault == Fault::BadGateway {
                (StatusCode::BAD_GATEWAY, "502 Bad Gateway")
            } else {
                (StatusCode::SERVICE_UNAVAILABLE, "503 Service Temporarily Unavailable")
            };
            let html = format!("<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n<center><h1>{title}</h1></center>\r\n</body>\r\n</html>\r\n");
            (status, [(header::CONTENT_TYPE, "text/html")], html).into_response()
        }
        Fault::Reset => {
            count();
            match request.extensions().get::<ConnectInfo<Conn>>() {
                Some(ConnectInfo(conn)) => conn.control.kill(),
                // Served without the emulator's listener: fail the body instead.
                None => return cut(StatusCode::OK, None, Bytes::new(), 16),
            }
            let mut r = StatusCode::INTERNAL_SERVER_ERROR.into_response();
            r.extensions_mut().insert(Aborted);
            r
        }
        Fault::Slow => {
            count();
            tokio::time::sleep(emu.faults.slow).await;
            next.run(request).await
        }
        Fault::Dup | Fault::Total => {
            request.extensions_mut().insert(Drawn(fault));
            next.run(request).await
        }
        Fault::Cut | Fault::Truncate | Fault::BadJson | Fault::BadUtf8 => {
            let response = next.run(request).await;
            mangle(&emu, fault, response, &mut rng).await
        }
    }
}

/// Applies a body fault to a 200 with a body; anything else passes.
async fn mangle(emu: &Emulator, fault: Fault, response: Response, rng: &mut Rng) -> Response {
    if response.status() != StatusCode::OK {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let json = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("json"));
    let applies = !bytes.is_empty() && (fault != Fault::BadJson || json);
    if !applies {
        return Response::from_parts(parts, Body::from(bytes));
    }
    emu.recorder.fault(fault.name());
    let len = bytes.len();
    parts.headers.remove(header::CONTENT_LENGTH);
    let body: Vec<u8> = match fault {
        Fault::Cut => {
            let keep = rng.below(len);
            return cut(parts.status, Some(parts), bytes.slice(..keep), len);
        }
        Fault::Truncate => {
            // At least one byte: an empty ODC body would read as "no results".
            let keep = if len < 2 { len } else { 1 + rng.below(len - 1) };
            bytes[..keep].to_vec()
        }
        Fault::BadJson => {
            // A stray comma after the opening bracket: no JSON parser takes it.
            let at = bytes.iter().position(|&b| b == b'{' || b == b'[').map_or(0, |p| p + 1);
            let mut v = bytes.to_vec();
            v.splice(at..at, *b",,");
            v
        }
        Fault::BadUtf8 => {
            // Inside a string value, after a quote in the second half.
            let from = len / 2;
            let at = bytes[from..]
                .iter()
                .position(|&b| b == b'"')
                .map_or(from, |p| from + p + 1);
            let mut v = bytes.to_vec();
            v.splice(at..at, [0xC3u8, 0x28, 0xFF]);
            v
        }
        _ => bytes.to_vec(),
    };
    Response::from_parts(parts, Body::from(body))
}

/// A response that sends `head` (headers claiming the whole body) and then
/// `partial`, and then fails, so the connection is closed mid-body.
fn cut(
    status: StatusCode,
    parts: Option<axum::http::response::Parts>,
    partial: Bytes,
    claimed: usize,
) -> Response {
    use futures::StreamExt;
    // The error comes a moment after the partial body, so that the head and
    // the partial body are flushed before the connection is closed.
    let stream = futures::stream::iter([Ok::<Bytes, std::io::Error>(partial)]).chain(futures::stream::once(async {
        tokio::time::sleep(Duration::from_millis(20)).await;
        Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionAborted,
            "connection cut by the emulator (fault)",
        ))
    }));
    let mut response = match parts {
        Some(parts) => Response::from_parts(parts, Body::from_stream(stream)),
        None => Response::new(Body::from_stream(stream)),
    };
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from(claimed));
    response
}

/// GEPBD's rate limit: at most `limit` requests per `window` per client IP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub limit: u32,
    pub window: Duration,
}

impl RateLimit {
    /// The real service's: 6,000 requests per 5 minutes.
    pub fn gepbd() -> RateLimit {
        RateLimit {
            limit: 6000,
            window: Duration::from_secs(300),
        }
    }
}

impl std::str::FromStr for RateLimit {
    type Err = anyhow::Error;
    /// `LIMIT/WINDOW`, e.g. `6000/300s`, `60/3s`, `6000/5m`.
    fn from_str(s: &str) -> anyhow::Result<RateLimit> {
        let (limit, window) = s
            .split_once('/')
            .with_context(|| format!("rate limit {s:?}: expected LIMIT/WINDOW, e.g. 6000/300s"))?;
        let limit: u32 = limit
            .trim()
            .parse()
            .ok()
            .filter(|&n| n > 0)
            .with_context(|| format!("rate limit {s:?}: LIMIT must be a positive integer"))?;
        let window = parse_duration(window)?;
        if window.is_zero() {
            bail!("rate limit {s:?}: the window must be longer than 0");
        }
        Ok(RateLimit { limit, window })
    }
}

/// Fixed windows per client IP: (window start, requests admitted).
#[derive(Debug, Default)]
pub struct Limiter {
    windows: Mutex<HashMap<IpAddr, (Instant, u32)>>,
}

impl Limiter {
    /// `Ok` to admit, `Err(seconds to wait)` to refuse.
    fn admit(&self, ip: IpAddr, limit: RateLimit) -> Result<(), u64> {
        let now = Instant::now();
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        let w = windows.entry(ip).or_insert((now, 0));
        if now.duration_since(w.0) >= limit.window {
            *w = (now, 0);
        }
        if w.1 >= limit.limit {
            let left = limit.window.saturating_sub(now.duration_since(w.0));
            return Err(left.as_secs_f64().ceil().max(1.0) as u64);
        }
        w.1 += 1;
        Ok(())
    }
}

/// The rate-limit layer: GEPBD routes only (ODC documents none).
pub async fn limit(State(emu): State<Arc<Emulator>>, request: Request, next: Next) -> Response {
    let path = request.uri().path();
    let Some(limit) = emu.rate_limit else {
        return next.run(request).await;
    };
    if !is_api(path) || path.starts_with("/api/v1/") {
        return next.run(request).await;
    }
    let ip = request
        .extensions()
        .get::<ConnectInfo<Conn>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.remote.ip());
    match emu.limiter.admit(ip, limit) {
        Ok(()) => next.run(request).await,
        Err(wait) => {
            emu.recorder.rate_limited();
            let mut r = crate::gepbd::error(StatusCode::TOO_MANY_REQUESTS, "Too many requests");
            r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(wait));
            r
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs() {
        let f: Faults = "429=0.05:2,500=0.02,reset=0.01,slow=0.01:30s,truncate=0.01,badjson=0.01,dup=0.05,total=0.02"
            .parse()
            .unwrap();
        assert_eq!(f.rate(Fault::TooMany), 0.05);
        assert_eq!(f.retry_after, Duration::from_secs(2));
        assert_eq!(f.slow, Duration::from_secs(30));
        assert_eq!(f.rates.len(), 8);
        // The brief's own example.
        let b: Faults = "429=0.05,500=0.02,reset=0.01,slow=0.01:30s,truncate=0.01,badjson=0.01,dup=0.05,total=0.02"
            .parse()
            .unwrap();
        assert_eq!((b.rate(Fault::Total), b.slow, b.retry_after), (0.02, Duration::from_secs(30), Duration::from_secs(1)));
        let c: Faults = "chaos,slow=0.02:1s".parse().unwrap();
        assert_eq!(c.rate(Fault::Slow), 0.02);
        assert_eq!(c.slow, Duration::from_secs(1));
        assert_eq!(c.rate(Fault::Dup), 0.05);
        assert!("chaos".parse::<Faults>().unwrap() == Faults::chaos());
        assert!("none".parse::<Faults>().unwrap().is_empty());
        assert!("nope=0.1".parse::<Faults>().is_err());
        assert!("500=2".parse::<Faults>().is_err());
        assert!("500=0.6,502=0.6".parse::<Faults>().is_err());
        assert!("500=0.1:3".parse::<Faults>().is_err());
        let sum: f64 = Faults::chaos().rates.values().sum();
        assert!(sum <= 1.0);
        let r: RateLimit = "6000/300s".parse().unwrap();
        assert_eq!(r, RateLimit::gepbd());
        assert_eq!("60/3s".parse::<RateLimit>().unwrap().window, Duration::from_secs(3));
        assert!("60".parse::<RateLimit>().is_err());
        assert!("0/3s".parse::<RateLimit>().is_err());
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert!(parse_duration("5").is_err());
    }
}

#[cfg(test)]
mod draw_tests {
    use super::*;

    #[test]
    fn draws_follow_the_rates() {
        let f = Faults::chaos();
        let n = 200_000u64;
        let mut counts: BTreeMap<Fault, u64> = BTreeMap::new();
        for i in 0..n {
            if let Some(c) = f.draw(&mut Rng::new(42 ^ FAULT_SALT, i)) {
                *counts.entry(c).or_default() += 1;
            }
        }
        for (fault, rate) in &f.rates {
            let got = counts.get(fault).copied().unwrap_or(0) as f64 / n as f64;
            assert!((got - rate).abs() < 0.004, "{fault:?}: {got} for {rate}");
        }
    }
}
