//! Sends the components' requests through one pooled client, so that a
//! run's thousands of requests to the same API reuse their connections (and
//! TLS sessions) instead of opening one each, which is what
//! wasmtime-wasi-http does by default. The components' timeouts still
//! apply: connect plus first byte as a deadline on the response head, and
//! the between-bytes timeout on every frame of the body.

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context, Poll};
use std::time::Duration;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody};

type Https = hyper_rustls::HttpsConnector<HttpConnector>;

fn client() -> &'static Client<Https, WasiBody> {
    static CLIENT: OnceLock<Client<Https, WasiBody>> = OnceLock::new();
    CLIENT.get_or_init(|| {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(Duration::from_secs(30)));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_webpki_roots()
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        Client::builder(TokioExecutor::new()).pool_idle_timeout(Duration::from_secs(60)).pool_max_idle_per_host(32).build(https)
    })
}

/// The defaults wasmtime-wasi-http uses when a component sets no timeout.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);

pub async fn send(request: http::Request<WasiBody>, options: Option<RequestOptions>) -> Result<http::Response<WasiBody>, Error> {
    let connect = options.and_then(|o| o.connect_timeout).unwrap_or(DEFAULT_TIMEOUT);
    let first_byte = options.and_then(|o| o.first_byte_timeout).unwrap_or(DEFAULT_TIMEOUT);
    let between = options.and_then(|o| o.between_bytes_timeout).unwrap_or(DEFAULT_TIMEOUT);
    let response = match tokio::time::timeout(connect + first_byte, client().request(request)).await {
        Err(_) => return Err(Error::ConnectionReadTimeout),
        Ok(Err(e)) if e.is_connect() => {
            return Err(if format!("{e:?}").contains("ConnectionRefused") { Error::ConnectionRefused } else { Error::DestinationUnavailable });
        }
        Ok(Err(_)) => return Err(Error::ConnectionTerminated),
        Ok(Ok(r)) => r,
    };
    Ok(response.map(|body| TimeoutBody::new(body.map_err(Error::from), between).boxed_unsync()))
}

/// A body whose every frame must arrive within `between` of the last.
struct TimeoutBody<B> {
    inner: Pin<Box<B>>,
    between: Duration,
    timer: Pin<Box<tokio::time::Sleep>>,
}

impl<B> TimeoutBody<B> {
    fn new(inner: B, between: Duration) -> Self {
        Self { inner: Box::pin(inner), between, timer: Box::pin(tokio::time::sleep(between)) }
    }
}

impl<B: Body<Data = Bytes, Error = Error>> Body for TimeoutBody<B> {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        match self.inner.as_mut().poll_frame(cx) {
            Poll::Ready(frame) => {
                let deadline = tokio::time::Instant::now() + self.between;
                self.timer.as_mut().reset(deadline);
                Poll::Ready(frame)
            }
            Poll::Pending => match self.timer.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Some(Err(Error::ConnectionReadTimeout))),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
