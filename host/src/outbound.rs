//! Every outgoing request a component makes passes through here: it goes
//! out only if the destination is in the instance's allow-list (Spin's
//! `allowed_outbound_hosts`), and plain http only to loopback or the cloud
//! metadata server, so a component cannot reach anything it was not given
//! nor send a credential in clear over the network.

use anyhow::{Result, bail};
use http::Uri;
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody, WasiHttpHooks};

#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    scheme: String,
    host: String,
    port: Option<u16>,
}

/// Destinations an instance may reach, in Spin's notation:
/// `https://host`, `http://127.0.0.1:*`, `https://*.googleapis.com`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowList {
    entries: Vec<Entry>,
}

fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    }
}

impl AllowList {
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<Self> {
        let mut out = Vec::new();
        for raw in entries {
            let raw = raw.as_ref().trim();
            if raw.is_empty() {
                continue;
            }
            let Some((scheme, rest)) = raw.split_once("://") else {
                bail!("allowed outbound host '{raw}' has no scheme: write it as https://host[:port]");
            };
            let rest = rest.trim_end_matches('/');
            if rest.contains('/') {
                bail!("allowed outbound host '{raw}' has a path: give only scheme, host and port");
            }
            let (host, port) = match rest.rsplit_once(':') {
                Some((h, "*")) => (h, None),
                Some((h, p)) if !h.ends_with(']') || rest.starts_with('[') => match p.parse::<u16>() {
                    Ok(p) => (h, Some(p)),
                    Err(_) => bail!("allowed outbound host '{raw}' has a bad port '{p}'"),
                },
                _ => (rest, default_port(scheme)),
            };
            if host.is_empty() {
                bail!("allowed outbound host '{raw}' has no host");
            }
            out.push(Entry { scheme: scheme.to_ascii_lowercase(), host: host.to_ascii_lowercase(), port });
        }
        Ok(Self { entries: out })
    }

    pub fn allows(&self, uri: &Uri) -> bool {
        let scheme = uri.scheme_str().unwrap_or("https").to_ascii_lowercase();
        let Some(host) = uri.host().map(str::to_ascii_lowercase) else { return false };
        let port = uri.port_u16().or_else(|| default_port(&scheme));
        self.entries.iter().any(|e| {
            (e.scheme == "*" || e.scheme == scheme)
                && (e.host == "*"
                    || e.host == host
                    || e.host.strip_prefix("*.").is_some_and(|d| host.ends_with(&format!(".{d}"))))
                && (e.port.is_none() || e.port == port)
        })
    }
}

/// Plain http is allowed only where nothing crosses a network: loopback,
/// and the cloud metadata server (which speaks only http, on a link-local
/// address).
pub fn cleartext_allowed(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host.eq_ignore_ascii_case("metadata.google.internal")
        || host == "169.254.169.254"
        || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Faults injected into the components' requests to Cloud Storage and
/// BigQuery (paths under `/storage/`, `/upload/storage/`, `/bigquery/`),
/// reproducible by seed: how the crash-safety and fault tests make the
/// host side fail the way the cloud sometimes does.
///
/// Spec: `error=0.05,drop=0.02,delay=0.05:2s,seed=7` — `error` answers 503,
/// `drop` ends the connection before a response, `delay` waits before
/// sending. Set with `DAME_HOST_FAULTS`.
#[derive(Debug, Default)]
pub struct Faults {
    error: f64,
    drop: f64,
    delay: f64,
    delay_for: std::time::Duration,
    seed: u64,
    counter: std::sync::atomic::AtomicU64,
    pub injected: std::sync::atomic::AtomicU64,
}

impl Faults {
    pub fn parse(spec: &str) -> Result<Self> {
        let mut f = Faults { delay_for: std::time::Duration::from_secs(1), ..Default::default() };
        for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let Some((k, v)) = item.split_once('=') else {
                bail!("host fault '{item}' is not NAME=RATE (error, drop, delay[:DURATION], seed)");
            };
            let (rate, extra) = v.split_once(':').map_or((v, None), |(r, e)| (r, Some(e)));
            let rate = || -> Result<f64> {
                let r: f64 = rate.parse().map_err(|_| anyhow::anyhow!("host fault '{item}': rate must be 0..1"))?;
                if !(0.0..=1.0).contains(&r) {
                    bail!("host fault '{item}': rate must be 0..1");
                }
                Ok(r)
            };
            match k {
                "error" => f.error = rate()?,
                "drop" => f.drop = rate()?,
                "delay" => {
                    f.delay = rate()?;
                    if let Some(d) = extra {
                        let ms = d.strip_suffix("ms").map(|n| n.parse::<u64>().ok()).unwrap_or_else(|| {
                            d.trim_end_matches('s').parse::<f64>().ok().map(|s| (s * 1000.0) as u64)
                        });
                        f.delay_for = std::time::Duration::from_millis(
                            ms.ok_or_else(|| anyhow::anyhow!("host fault '{item}': bad duration '{d}' (e.g. 500ms, 2s)"))?,
                        );
                    }
                }
                "seed" => f.seed = v.parse().map_err(|_| anyhow::anyhow!("host fault '{item}': seed must be a number"))?,
                _ => bail!("unknown host fault '{k}': use error, drop, delay or seed"),
            }
        }
        Ok(f)
    }

    /// The next uniform number in [0, 1) of the seeded sequence.
    fn next(&self) -> f64 {
        let n = self.counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut z = self.seed.wrapping_add(n.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    }

    fn applies(uri: &Uri) -> bool {
        let p = uri.path();
        p.starts_with("/storage/") || p.starts_with("/upload/storage/") || p.starts_with("/bigquery/")
    }
}

/// What to do to one request.
enum Injected {
    None,
    Error,
    Drop,
    Delay(std::time::Duration),
}

/// The wasi-http hooks of one instance.
pub struct Outbound {
    allow: AllowList,
    faults: Option<std::sync::Arc<Faults>>,
}

impl Outbound {
    pub fn new(allow: AllowList, faults: Option<std::sync::Arc<Faults>>) -> Self {
        Self { allow, faults }
    }

    fn inject(&self, uri: &Uri) -> Injected {
        let Some(f) = self.faults.as_ref().filter(|_| Faults::applies(uri)) else { return Injected::None };
        let r = f.next();
        let hit = |x: Injected| {
            f.injected.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            x
        };
        if r < f.error {
            hit(Injected::Error)
        } else if r < f.error + f.drop {
            hit(Injected::Drop)
        } else if r < f.error + f.drop + f.delay {
            hit(Injected::Delay(f.delay_for))
        } else {
            Injected::None
        }
    }

    fn check(&self, uri: &Uri) -> Result<(), String> {
        let shown = format!("{}://{}", uri.scheme_str().unwrap_or("?"), uri.authority().map(|a| a.as_str()).unwrap_or("?"));
        if !self.allow.allows(uri) {
            return Err(format!("{shown} is not in allowed_outbound_hosts"));
        }
        if uri.scheme_str() == Some("http") && !cleartext_allowed(uri.host().unwrap_or("")) {
            return Err(format!("{shown} uses plain http to a non-loopback host; use https"));
        }
        Ok(())
    }
}

type SendFuture = Box<
    dyn std::future::Future<
            Output = Result<(http::Response<WasiBody>, Box<dyn std::future::Future<Output = Result<(), HttpError>> + Send>), HttpError>,
        > + Send,
>;

impl WasiHttpHooks for Outbound {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: Box<dyn std::future::Future<Output = Result<(), HttpError>> + Send>,
    ) -> SendFuture {
        _ = fut;
        if let Err(why) = self.check(request.uri()) {
            eprintln!("dame: refused an outgoing request: {why}");
            return Box::new(async { Err(HttpError::HttpRequestDenied) });
        }
        let delay = match self.inject(request.uri()) {
            Injected::None => None,
            Injected::Delay(d) => Some(d),
            Injected::Drop => return Box::new(async { Err(HttpError::ConnectionTerminated) }),
            Injected::Error => {
                return Box::new(async {
                    use http_body_util::BodyExt;
                    let body = http_body_util::Full::new(bytes::Bytes::from_static(b"{\"error\":\"injected by DAME_HOST_FAULTS\"}"))
                        .map_err(|e| match e {})
                        .boxed_unsync();
                    let response = http::Response::builder().status(503).body(body).expect("a valid response");
                    Ok((response, Box::new(async { Ok(()) }) as Box<dyn std::future::Future<Output = _> + Send>))
                });
            }
        };
        Box::new(async move {
            if let Some(d) = delay {
                tokio::time::sleep(d).await;
            }
            let response = crate::pool::send(request, options).await?;
            // The pool drives its connections itself: nothing to report.
            Ok((response, Box::new(async { Ok(()) }) as Box<dyn std::future::Future<Output = _> + Send>))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_are_reproducible_and_only_hit_the_cloud_apis() {
        let spec = "error=0.1,drop=0.05,delay=0.05:10ms,seed=42";
        let run = || {
            let o = Outbound::new(AllowList::default(), Some(std::sync::Arc::new(Faults::parse(spec).unwrap())));
            (0..1000)
                .map(|_| match o.inject(&uri("http://h/storage/v1/b/x/o")) {
                    Injected::None => 'n',
                    Injected::Error => 'e',
                    Injected::Drop => 'd',
                    Injected::Delay(_) => 'w',
                })
                .collect::<String>()
        };
        let a = run();
        assert_eq!(a, run(), "the same seed gives the same faults");
        let errors = a.matches('e').count();
        assert!((60..=140).contains(&errors), "{errors} errors in 1000 at 10%");
        let o = Outbound::new(AllowList::default(), Some(std::sync::Arc::new(Faults::parse("error=1").unwrap())));
        assert!(matches!(o.inject(&uri("http://h/api/domestic/search")), Injected::None), "EPC requests are the emulator's to fault");
        for bad in ["error", "error=2", "oops=0.1", "delay=0.1:soon"] {
            assert!(Faults::parse(bad).is_err(), "{bad}");
        }
    }

    fn uri(s: &str) -> Uri {
        s.parse().unwrap()
    }

    #[test]
    fn spin_notation_is_understood() {
        let a = AllowList::parse(&["https://api.example.org", "http://127.0.0.1:*", "https://*.googleapis.com"]).unwrap();
        assert!(a.allows(&uri("https://api.example.org/api/x")));
        assert!(!a.allows(&uri("https://api.example.org:8443/api/x")));
        assert!(!a.allows(&uri("http://api.example.org/api/x")));
        assert!(a.allows(&uri("http://127.0.0.1:4567/x")));
        assert!(a.allows(&uri("https://storage.googleapis.com/b")));
        assert!(!a.allows(&uri("https://googleapis.com.evil.org/b")));
        assert!(!a.allows(&uri("https://evil.org/")));
        assert!(AllowList::default().entries.is_empty());
        assert!(!AllowList::default().allows(&uri("https://api.example.org/")));
    }

    #[test]
    fn bad_entries_are_named() {
        for bad in ["api.example.org", "https://h/path", "https://h:port"] {
            let e = AllowList::parse(&[bad]).unwrap_err().to_string();
            assert!(e.contains(bad), "{e}");
        }
    }

    #[test]
    fn cleartext_only_to_loopback() {
        let o = Outbound::new(AllowList::parse(&["*://*:*"]).unwrap(), None);
        assert!(o.check(&uri("http://127.0.0.1:80/x")).is_ok());
        assert!(o.check(&uri("http://[::1]:80/x")).is_ok());
        assert!(o.check(&uri("http://metadata.google.internal/computeMetadata")).is_ok());
        assert!(o.check(&uri("http://example.org/x")).unwrap_err().contains("https"));
        assert!(o.check(&uri("https://example.org/x")).is_ok());
    }
}
