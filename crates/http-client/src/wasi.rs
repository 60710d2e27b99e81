//! The transport inside a component: wasi-http, driven by `wstd`'s reactor
//! so that several requests can be in flight at once.
//!
//! It speaks to `wasi:http` directly rather than through `wstd`'s client
//! for one reason: a request without a body must not open one. `wstd`
//! always opens and writes the outgoing body, which (a) makes the host send
//! `Transfer-Encoding: chunked` on every GET, which some API gateways
//! refuse, and (b) races a fast response: the host may close the body
//! before the zero-length write, and the request fails with "connection
//! reset" though the server answered.
//!
//! Timeouts are kept here, in the guest, rather than passed to the host as
//! `request-options`: wasmtime-wasi-http (as of 48) reads the options
//! resource that `handle` takes ownership of but never frees it, so every
//! request with options left one entry in the host's resource table for
//! the life of the instance. Over a GEPBD month (one request per
//! certificate, 150,000 for a big month) that was 14 MiB of the run's peak
//! memory, growing with the month. A timer raced against each wait costs
//! a pollable that is freed when the wait ends.

use crate::{Method, Request, Response, Transport, TransportError};
use std::time::Duration;
use wasip2::http::outgoing_handler;
use wasip2::http::types::{
    ErrorCode, Fields, Method as WasiMethod, OutgoingBody, OutgoingRequest, Scheme,
};
use wasip2::io::streams::StreamError;
use wstd::future::FutureExt;
use wstd::io::{AsyncOutputStream, AsyncPollable};

/// wasi-http with timeouts: a server that accepts and then stalls must not
/// hang a run. `connect_timeout` plus `read_timeout` bounds the wait for the
/// response head; `read_timeout` bounds each wait for more of the body.
pub struct WasiTransport {
    connect_timeout: Duration,
    read_timeout: Duration,
}

impl Default for WasiTransport {
    fn default() -> Self {
        Self::new(Duration::from_secs(10), Duration::from_secs(60))
    }
}

impl WasiTransport {
    pub fn new(connect_timeout: Duration, read_timeout: Duration) -> Self {
        Self { connect_timeout, read_timeout }
    }
}

fn refused(msg: impl Into<String>) -> TransportError {
    TransportError::Refused(msg.into())
}

/// Splits `https://host:port/path?q` into scheme, authority and path.
fn split_url(url: &str) -> Result<(Scheme, &str, &str), TransportError> {
    let (scheme, rest) = url.split_once("://").ok_or_else(|| refused(format!("invalid URL {url:?}")))?;
    let scheme = match scheme {
        "https" => Scheme::Https,
        "http" => Scheme::Http,
        other => return Err(refused(format!("unsupported scheme {other:?}"))),
    };
    let (authority, path) = match rest.find(['/', '?']) {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.is_empty() {
        return Err(refused(format!("no host in URL {url:?}")));
    }
    Ok((scheme, authority, path))
}

impl Transport for WasiTransport {
    async fn send(&self, request: &Request, max_body: usize) -> Result<Response, TransportError> {
        let (scheme, authority, path) = split_url(&request.url)?;
        let mut headers: Vec<(String, Vec<u8>)> =
            request.headers.iter().map(|(k, v)| (k.to_ascii_lowercase(), v.clone().into_bytes())).collect();
        if !request.body.is_empty() {
            headers.push(("content-length".into(), request.body.len().to_string().into_bytes()));
        }
        let fields = Fields::from_list(&headers).map_err(|e| refused(format!("bad request header: {e:?}")))?;
        let req = OutgoingRequest::new(fields);
        let method = match request.method {
            Method::Get => WasiMethod::Get,
            Method::Post => WasiMethod::Post,
            Method::Put => WasiMethod::Put,
            Method::Patch => WasiMethod::Patch,
            Method::Delete => WasiMethod::Delete,
        };
        req.set_method(&method).map_err(|()| refused("bad method"))?;
        req.set_scheme(Some(&scheme)).map_err(|()| refused("bad scheme"))?;
        req.set_authority(Some(authority)).map_err(|()| refused(format!("bad host {authority:?}")))?;
        req.set_path_with_query(Some(path)).map_err(|()| refused(format!("bad path {path:?}")))?;
        // Only a request with content opens a body (see the module docs).
        let body = if request.body.is_empty() { None } else { Some(req.body().map_err(|()| refused("no body"))?) };

        let pending = outgoing_handler::handle(req, None).map_err(classify)?;
        let send_body = async {
            if let Some(body) = body {
                let stream = AsyncOutputStream::new(body.write().map_err(|()| refused("body already taken"))?);
                stream
                    .write_all(&request.body)
                    .await
                    .map_err(|e| TransportError::Connection(format!("sending the request body: {e}")))?;
                drop(stream);
                OutgoingBody::finish(body, None).map_err(classify)?;
            }
            Ok::<(), TransportError>(())
        };
        let receive = async {
            let head = self.connect_timeout + self.read_timeout;
            AsyncPollable::new(pending.subscribe()).wait_for().timeout(wstd::time::Duration::from(head)).await.map_err(
                |_| TransportError::Connection(format!("no response within {} s", head.as_secs())),
            )?;
            match pending.get() {
                Some(Ok(Ok(response))) => Ok(response),
                Some(Ok(Err(code))) => Err(classify(code)),
                Some(Err(())) | None => Err(TransportError::Connection("the response was lost".into())),
            }
        };
        let ((), response) = futures::future::try_join(send_body, receive).await?;

        let status = response.status();
        let headers: Vec<(String, String)> = response
            .headers()
            .entries()
            .into_iter()
            .map(|(k, v)| (k, String::from_utf8_lossy(&v).into_owned()))
            .collect();
        let incoming = response.consume().map_err(|()| TransportError::Connection("no response body".into()))?;
        let stream = incoming.stream().map_err(|()| TransportError::Connection("no response body stream".into()))?;
        // Sized from the length the server announces, where it does: a body
        // grown by doubling holds up to twice its size, and a 5,000-row ODC
        // page is several MB.
        let announced = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| v.trim().parse::<usize>().ok())
            .unwrap_or(0);
        let mut body = Vec::with_capacity(announced.min(max_body));
        {
            let ready = AsyncPollable::new(stream.subscribe());
            loop {
                match stream.read(256 * 1024) {
                    Ok(chunk) if chunk.is_empty() => {
                        ready.wait_for().timeout(wstd::time::Duration::from(self.read_timeout)).await.map_err(|_| {
                            TransportError::Connection(format!(
                                "the response stalled: no data for {} s",
                                self.read_timeout.as_secs()
                            ))
                        })?
                    }
                    Ok(chunk) => {
                        if body.len() + chunk.len() > max_body {
                            return Err(TransportError::TooLarge { limit: max_body });
                        }
                        body.extend_from_slice(&chunk);
                    }
                    Err(StreamError::Closed) => break,
                    Err(StreamError::LastOperationFailed(e)) => {
                        return Err(TransportError::Connection(format!("reading the response: {}", e.to_debug_string())));
                    }
                }
            }
        }
        drop(stream);
        drop(incoming);
        Ok(Response { status, headers, body })
    }

    async fn sleep(&self, duration: Duration) {
        wstd::task::sleep(duration.into()).await;
    }

    fn now(&self) -> Duration {
        Duration::from_nanos(wasip2::clocks::monotonic_clock::now())
    }

    fn random(&self) -> u64 {
        wasip2::random::insecure::get_insecure_random_u64()
    }
}

/// Sorts wasi-http's errors into worth-retrying or not. The host refusing a
/// destination (outside `allowed_outbound_hosts`) is final; everything about
/// connections and timeouts is not.
fn classify(code: ErrorCode) -> TransportError {
    match code {
        ErrorCode::HttpRequestDenied => {
            refused("the host refused this destination; check allowed_outbound_hosts (and use https)")
        }
        ErrorCode::HttpRequestUriInvalid => refused("invalid URL"),
        other => TransportError::Connection(format!("{other:?}")),
    }
}
