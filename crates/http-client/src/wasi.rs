//! The transport inside a component: wasi-http through `wstd`.

use crate::{Method, Request, Response, Transport, TransportError};
use std::time::Duration;
use wstd::http::body::util::BodyExt;
use wstd::http::{Body, Client};

/// wasi-http with timeouts: a server that accepts and then stalls must not
/// hang a run.
pub struct WasiTransport {
    client: Client,
}

impl Default for WasiTransport {
    fn default() -> Self {
        Self::new(Duration::from_secs(10), Duration::from_secs(60))
    }
}

impl WasiTransport {
    pub fn new(connect_timeout: Duration, read_timeout: Duration) -> Self {
        let mut client = Client::new();
        client.set_connect_timeout(connect_timeout);
        client.set_first_byte_timeout(read_timeout);
        client.set_between_bytes_timeout(read_timeout);
        Self { client }
    }
}

impl Transport for WasiTransport {
    async fn send(&self, request: &Request, max_body: usize) -> Result<Response, TransportError> {
        let method = match request.method {
            Method::Get => wstd::http::Method::GET,
            Method::Post => wstd::http::Method::POST,
            Method::Put => wstd::http::Method::PUT,
            Method::Patch => wstd::http::Method::PATCH,
            Method::Delete => wstd::http::Method::DELETE,
        };
        let mut builder = wstd::http::Request::builder().method(method).uri(&request.url);
        for (k, v) in &request.headers {
            builder = builder.header(k, v);
        }
        let body = if request.body.is_empty() { Body::empty() } else { Body::from(request.body.clone()) };
        let req = builder.body(body).map_err(|e| TransportError::Refused(format!("bad request: {e}")))?;
        let response = self.client.send(req).await.map_err(classify)?;
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str().to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
            .collect();
        let mut incoming = response.into_body().into_boxed_body();
        let mut body = Vec::new();
        while let Some(frame) = incoming.frame().await {
            let frame = frame.map_err(|e| TransportError::Connection(format!("reading the response: {e:#}")))?;
            if let Ok(data) = frame.into_data() {
                if body.len() + data.len() > max_body {
                    return Err(TransportError::TooLarge { limit: max_body });
                }
                body.extend_from_slice(&data);
            }
        }
        Ok(Response { status, headers, body })
    }

    async fn sleep(&self, duration: Duration) {
        wstd::task::sleep(duration.into()).await;
    }

    fn random(&self) -> u64 {
        let mut b = [0u8; 8];
        wstd::rand::get_insecure_random_bytes(&mut b);
        u64::from_le_bytes(b)
    }
}

/// Sorts wasi-http's errors into worth-retrying or not. The host refusing a
/// destination (outside `allowed_outbound_hosts`) is final; everything about
/// connections and timeouts is not.
fn classify(e: wstd::http::Error) -> TransportError {
    let text = format!("{e:#}");
    let code = e.downcast_ref::<wstd::http::ErrorCode>();
    match code {
        Some(wstd::http::ErrorCode::HttpRequestDenied) => {
            TransportError::Refused(format!("the host refused this destination ({text}); check allowed_outbound_hosts"))
        }
        Some(wstd::http::ErrorCode::HttpRequestUriInvalid) => TransportError::Refused(format!("invalid URL: {text}")),
        _ => TransportError::Connection(text),
    }
}
