//! The transport outside a component: blocking `ureq` on real sockets.
//!
//! It exists so that the libraries built on [`Client`](crate::Client) —
//! Google authentication, Cloud Storage, BigQuery — can be tested natively
//! against local stand-ins of those services, over the same code path the
//! components run on wasi-http. Each request blocks the calling thread
//! inside the `async fn`; nothing native runs several requests at once, so
//! an executor would buy nothing but dependencies.
//!
//! Like [`WasiTransport`](crate), it never follows redirects (the caller
//! sees every status) and bounds the body it reads. It speaks plain HTTP
//! only: TLS would add a crypto stack to every native build, and the
//! stand-ins it is for listen on loopback without TLS.

use crate::{Method, Request, Response, Transport, TransportError};
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Blocking HTTP/1.1 over `ureq`, with connect and read timeouts so that a
/// stalled server cannot hang a test.
pub struct NativeTransport {
    agent: ureq::Agent,
    /// Mixed into each random number so successive calls differ.
    counter: AtomicU64,
}

impl Default for NativeTransport {
    fn default() -> Self {
        Self::new(Duration::from_secs(10), Duration::from_secs(60))
    }
}

impl NativeTransport {
    pub fn new(connect_timeout: Duration, read_timeout: Duration) -> Self {
        let config = ureq::Agent::config_builder()
            // Statuses are the caller's to read, as on wasi-http.
            .http_status_as_error(false)
            .max_redirects(0)
            // Environment proxies are for reaching the internet; this
            // transport talks to loopback stand-ins.
            .proxy(None)
            .timeout_connect(Some(connect_timeout))
            .timeout_recv_response(Some(read_timeout))
            .timeout_recv_body(Some(read_timeout))
            .build();
        Self { agent: config.new_agent(), counter: AtomicU64::new(0) }
    }

    fn run(&self, request: &Request) -> Result<ureq::http::Response<ureq::Body>, ureq::Error> {
        let method = match request.method {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
        };
        let mut builder = ureq::http::Request::builder().method(method).uri(&request.url);
        for (k, v) in &request.headers {
            builder = builder.header(k.as_str(), v.as_str());
        }
        // A request without content sends no body at all (no
        // `Transfer-Encoding: chunked` on a GET), as on wasi-http.
        if request.body.is_empty() {
            self.agent.run(builder.body(()).map_err(ureq::Error::from)?)
        } else {
            self.agent.run(builder.body(request.body.as_slice()).map_err(ureq::Error::from)?)
        }
    }
}

impl Transport for NativeTransport {
    async fn send(&self, request: &Request, max_body: usize) -> Result<Response, TransportError> {
        if request.url.starts_with("https://") {
            return Err(TransportError::Refused(
                "the native transport speaks plain HTTP only (it is for local stand-ins); https needs a component"
                    .into(),
            ));
        }
        let response = self.run(request).map_err(classify)?;
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str().to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
            .collect();
        let body = response.into_body().into_with_config().limit(max_body as u64).read_to_vec().map_err(|e| match e {
            ureq::Error::BodyExceedsLimit(_) => TransportError::TooLarge { limit: max_body },
            other => TransportError::Connection(format!("reading the response: {other}")),
        })?;
        Ok(Response { status, headers, body })
    }

    async fn sleep(&self, duration: Duration) {
        std::thread::sleep(duration);
    }

    fn now(&self) -> Duration {
        static ORIGIN: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
        ORIGIN.get_or_init(std::time::Instant::now).elapsed()
    }

    fn random(&self) -> u64 {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(self.counter.fetch_add(1, Ordering::Relaxed));
        h.finish()
    }
}

/// Sorts `ureq`'s errors as wasi-http's are sorted: a malformed request is
/// final, anything about the connection is worth retrying.
fn classify(e: ureq::Error) -> TransportError {
    match e {
        ureq::Error::Http(_) | ureq::Error::BadUri(_) | ureq::Error::InvalidProxyUrl => {
            TransportError::Refused(format!("invalid request: {e}"))
        }
        other => TransportError::Connection(other.to_string()),
    }
}

/// Runs a future whose I/O blocks (as [`NativeTransport`]'s does) to the
/// end on the calling thread: such a future never waits on a waker, so a
/// poll loop with a no-op waker is a complete executor for it.
pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    loop {
        if let std::task::Poll::Ready(v) = future.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::yield_now();
    }
}
