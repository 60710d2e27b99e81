//! A native async transport for [`http_client::Client`]: hyper's pooled
//! client on tokio, configured as the dame host's pool for the components'
//! wasi-http requests (`host/src/pool.rs`), so the native and the WASM runs
//! reuse connections alike and keep several requests in flight alike.

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use http_client::{Method, Request, Response, Transport, TransportError};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Plain HTTP/1.1 over a pooled hyper client (loopback only: no TLS).
pub struct HyperTransport {
    client: Client<HttpConnector, Full<Bytes>>,
    read_timeout: Duration,
    origin: Instant,
    counter: AtomicU64,
}

impl Default for HyperTransport {
    fn default() -> Self {
        Self::new(Duration::from_secs(10), Duration::from_secs(60))
    }
}

impl HyperTransport {
    /// Must be created inside a tokio runtime's context.
    pub fn new(connect_timeout: Duration, read_timeout: Duration) -> Self {
        let mut http = HttpConnector::new();
        http.set_nodelay(true);
        http.set_connect_timeout(Some(connect_timeout));
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(32)
            .build(http);
        Self { client, read_timeout, origin: Instant::now(), counter: AtomicU64::new(0) }
    }
}

impl Transport for HyperTransport {
    async fn send(&self, request: &Request, max_body: usize) -> Result<Response, TransportError> {
        if !request.url.starts_with("http://") {
            return Err(TransportError::Refused("the native benchmark transport speaks plain HTTP only".into()));
        }
        let method = match request.method {
            Method::Get => http::Method::GET,
            Method::Post => http::Method::POST,
            Method::Put => http::Method::PUT,
            Method::Patch => http::Method::PATCH,
            Method::Delete => http::Method::DELETE,
        };
        let mut builder = http::Request::builder().method(method).uri(&request.url);
        for (k, v) in &request.headers {
            builder = builder.header(k.as_str(), v.as_str());
        }
        let req = builder
            .body(Full::new(Bytes::copy_from_slice(&request.body)))
            .map_err(|e| TransportError::Refused(format!("invalid request: {e}")))?;
        let response = match tokio::time::timeout(self.read_timeout, self.client.request(req)).await {
            Err(_) => return Err(TransportError::Connection("timed out waiting for the response".into())),
            Ok(Err(e)) => return Err(TransportError::Connection(format!("{e:?}"))),
            Ok(Ok(r)) => r,
        };
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str().to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
            .collect();
        let body = Limited::new(response.into_body(), max_body);
        let body = match tokio::time::timeout(self.read_timeout, body.collect()).await {
            Err(_) => return Err(TransportError::Connection("timed out reading the response".into())),
            Ok(Err(e)) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => {
                return Err(TransportError::TooLarge { limit: max_body });
            }
            Ok(Err(e)) => return Err(TransportError::Connection(format!("reading the response: {e}"))),
            Ok(Ok(b)) => b.to_bytes().to_vec(),
        };
        Ok(Response { status, headers, body })
    }

    async fn sleep(&self, duration: Duration) {
        tokio::time::sleep(duration).await;
    }

    fn now(&self) -> Duration {
        self.origin.elapsed()
    }

    fn random(&self) -> u64 {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(self.counter.fetch_add(1, Ordering::Relaxed));
        h.finish()
    }
}
