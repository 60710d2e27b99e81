//! The vocabulary every dame-epc step shares.
//!
//! Components, the native host and the tests all speak in these terms, so
//! they live in one plain library that compiles for `wasm32-wasip2` and for
//! the host alike. Nothing here does I/O: parsing, validation, the landing
//! layout and the checkpoint documents only.

mod certificate;
mod checkpoint;
mod dataset;
mod envelope;
mod error;
mod kind;
mod layout;
mod month;
mod source;
pub mod warehouse;

pub use certificate::Certificate;
pub use checkpoint::{DoneMarker, FailedMarker, LoadMarker, MonthState, MonthStatus, PartCheckpoint};
pub use dataset::{Content, Dataset};
pub use envelope::{Envelope, ndjson_line, one_line};
pub use error::InputError;
pub use kind::{Kind, parse_kinds};
pub use layout::{Layout, ObjectKind};
pub use month::{Month, MonthRange};
pub use source::Source;

/// Certificates per landed part at most. A part is what one `fetch` call
/// returns and one object holds; bounding it bounds memory in every
/// component whatever the size of a month (full GEPBD documents are
/// 10–20 KB each).
pub const MAX_RECORDS_PER_PART: usize = 250;
