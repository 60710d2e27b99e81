//! A GET over wasi-http whose response body is read as a stream.
//!
//! `http_client::wasi::WasiTransport` reads whole (bounded) bodies, which
//! suits API answers; a bulk archive of gigabytes must flow through
//! instead. This reads the body with `blocking-read` in chunks as the ZIP
//! reader above asks for them, so TCP's flow control paces the download to
//! the landing, and memory holds one chunk.

use bulk::remote::{StreamGet, Streamed};
use std::io;
use std::time::Duration;
use wasip2::http::outgoing_handler;
use wasip2::http::types::{
    ErrorCode, Fields, IncomingBody, IncomingResponse, Method, OutgoingRequest, RequestOptions, Scheme,
};
use wasip2::io::streams::{InputStream, StreamError};
use wstd::io::AsyncPollable;

/// Largest chunk asked of the host at once.
const CHUNK: u64 = 256 * 1024;

pub struct WasiStreamGet {
    connect_timeout: Duration,
    /// Between bytes: the landing between two reads takes far less.
    read_timeout: Duration,
}

impl Default for WasiStreamGet {
    fn default() -> Self {
        Self { connect_timeout: Duration::from_secs(10), read_timeout: Duration::from_secs(120) }
    }
}

/// A response body being read; its resources are dropped child first.
pub struct WasiBody {
    stream: Option<InputStream>,
    _body: Option<IncomingBody>,
    _response: Option<IncomingResponse>,
    /// Bytes returned by the host but not yet taken by the reader.
    pending: Vec<u8>,
    offset: usize,
}

impl Drop for WasiBody {
    fn drop(&mut self) {
        self.stream.take();
        self._body.take();
        self._response.take();
    }
}

impl io::Read for WasiBody {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        while self.offset >= self.pending.len() {
            let Some(stream) = &self.stream else { return Ok(0) };
            match stream.blocking_read(CHUNK.min(buf.len().max(16 * 1024) as u64)) {
                Ok(chunk) => {
                    self.pending = chunk;
                    self.offset = 0;
                }
                Err(StreamError::Closed) => {
                    self.stream = None;
                    return Ok(0);
                }
                Err(StreamError::LastOperationFailed(e)) => {
                    return Err(io::Error::new(
                        io::ErrorKind::ConnectionAborted,
                        format!("the connection failed: {}", e.to_debug_string()),
                    ));
                }
            }
        }
        let n = buf.len().min(self.pending.len() - self.offset);
        buf[..n].copy_from_slice(&self.pending[self.offset..self.offset + n]);
        self.offset += n;
        Ok(n)
    }
}

fn split_url(url: &str) -> Result<(Scheme, &str, &str), String> {
    let (scheme, rest) = url.split_once("://").ok_or_else(|| "not an absolute URL".to_string())?;
    let scheme = match scheme {
        "https" => Scheme::Https,
        "http" => Scheme::Http,
        other => return Err(format!("unsupported scheme {other:?}")),
    };
    let (authority, path) = match rest.find(['/', '?']) {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.is_empty() {
        return Err("no host in the URL".into());
    }
    Ok((scheme, authority, path))
}

fn describe(code: ErrorCode) -> String {
    match code {
        ErrorCode::HttpRequestDenied => {
            "the host refused this destination: the pre-signed URL's host must be in allowed_outbound_hosts".into()
        }
        other => format!("{other:?}"),
    }
}

impl StreamGet for WasiStreamGet {
    type Body = WasiBody;

    async fn get(&self, url: &str) -> Result<Streamed<WasiBody>, String> {
        let (scheme, authority, path) = split_url(url)?;
        let req = OutgoingRequest::new(Fields::new());
        req.set_method(&Method::Get).map_err(|()| "bad method")?;
        req.set_scheme(Some(&scheme)).map_err(|()| "bad scheme")?;
        req.set_authority(Some(authority)).map_err(|()| format!("bad host {authority:?}"))?;
        req.set_path_with_query(Some(path)).map_err(|()| "bad path".to_string())?;
        let options = RequestOptions::new();
        let nanos = |d: Duration| d.as_nanos().min(u64::MAX as u128) as u64;
        let _ = options.set_connect_timeout(Some(nanos(self.connect_timeout)));
        let _ = options.set_first_byte_timeout(Some(nanos(self.read_timeout)));
        let _ = options.set_between_bytes_timeout(Some(nanos(self.read_timeout)));
        let pending = outgoing_handler::handle(req, Some(options)).map_err(describe)?;
        AsyncPollable::new(pending.subscribe()).wait_for().await;
        let response = match pending.get() {
            Some(Ok(Ok(r))) => r,
            Some(Ok(Err(code))) => return Err(describe(code)),
            Some(Err(())) | None => return Err("the response was lost".into()),
        };
        let status = response.status();
        let body = response.consume().map_err(|()| "no response body".to_string())?;
        let stream = body.stream().map_err(|()| "no response body stream".to_string())?;
        Ok(Streamed {
            status,
            body: WasiBody {
                stream: Some(stream),
                _body: Some(body),
                _response: Some(response),
                pending: Vec::new(),
                offset: 0,
            },
        })
    }
}
