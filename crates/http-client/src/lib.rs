//! The one HTTP client every dame-epc component uses.
//!
//! Components reach the network only through wasi-http; this crate puts the
//! policy every caller needs on top of it, written once: retries with
//! exponential backoff and jitter on 429, 5xx and connection failures,
//! `Retry-After` honoured, response bodies bounded so that a hostile or
//! broken server cannot exhaust a component's memory, and counters for the
//! run's summary.
//!
//! The transport is a trait so the same code path runs natively (tests
//! against local stand-ins, `native::NativeTransport`) and inside
//! components (`wasi::WasiTransport`).

mod client;
mod budget;
mod request;
mod retry;
#[cfg(not(target_arch = "wasm32"))]
pub mod native;
#[cfg(target_arch = "wasm32")]
pub mod wasi;

pub use budget::RequestBudget;
pub use client::{Client, Counters, Error};
pub use request::{Method, Request, Response, TransportError, redact_url};
pub use retry::RetryPolicy;

use std::future::Future;
use std::time::Duration;

/// What the client needs from its environment.
pub trait Transport {
    /// Sends one request and reads at most `max_body` bytes of its response.
    fn send(&self, request: &Request, max_body: usize) -> impl Future<Output = Result<Response, TransportError>>;

    fn sleep(&self, duration: Duration) -> impl Future<Output = ()>;

    /// A random number for jitter; it need not be cryptographic.
    fn random(&self) -> u64;

    /// Time on a monotonic clock (from any fixed origin), for the request
    /// budget.
    fn now(&self) -> Duration;
}
