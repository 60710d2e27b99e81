//! Backfill from the EPC services' bulk files.
//!
//! A first load needs the history back to 2012, about 30 million domestic
//! certificates: weeks of API calls at GEPBD's rate limit. Both services
//! publish bulk ZIP files instead (GEPBD: one archive per kind and format
//! holding one file per lodgement year; ODC: one archive per kind and month).
//! This crate turns them into the same landed months the API path produces
//! (same layout, same NDJSON envelope, same checkpoints, parts of at most
//! [`epc_model::MAX_RECORDS_PER_PART`] records), without holding an archive
//! in memory or on disk:
//!
//! - [`zip`]: the archive read front to back from the HTTP body stream;
//! - [`records`]: each entry's certificates, by column name (CSV) or as the
//!   API's documents (JSON);
//! - [`driver`]: which months to land, skip, resume or replace, landing them
//!   through the [`landing`] protocol as the file yields them;
//! - [`remote`]: the services' file routes (`…/info`, the 302 to a
//!   short-lived URL, the download), over any [`http_client::Transport`]
//!   plus a streaming GET.
//!
//! Everything here compiles for `wasm32-wasip2` (the `fetch-bulk`
//! component) and natively (the tests).

pub mod driver;
pub mod records;
pub mod remote;
pub mod state;
pub mod zip;

pub use driver::{BulkMonth, Log, Options, Outcome, Remote, RemoteFile, Report, backfill};
pub use records::RecordFormat;

/// Why a backfill stopped, sorted by whose move it is (the cases of the
/// WIT `types.error`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BulkError {
    /// The request is wrong: the message names the input and the fix.
    #[error("{0}")]
    InvalidInput(String),
    #[error("{0}")]
    Unauthorized(String),
    /// The service or the download failed (after retries where they help).
    #[error("{0}")]
    Unavailable(String),
    /// The file is not what it should be: a truncated or corrupt ZIP, an
    /// unknown column set, a bad row.
    #[error("{0}")]
    Protocol(String),
    /// Another run holds the lease, or wrote first.
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Storage(String),
}

impl From<landing::LandingError> for BulkError {
    fn from(e: landing::LandingError) -> Self {
        use landing::LandingError as L;
        match e {
            L::Conflict(m) => BulkError::Conflict(m),
            L::Invalid(m) | L::Damaged(m) => BulkError::Storage(m),
            L::Store(s) => BulkError::Storage(s.to_string()),
        }
    }
}

impl From<landing::StoreError> for BulkError {
    fn from(e: landing::StoreError) -> Self {
        BulkError::Storage(e.to_string())
    }
}
