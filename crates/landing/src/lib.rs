//! Lands pages as gzipped NDJSON objects with checkpoints.
//!
//! The protocol ([`Landing`]) is what makes runs resumable and idempotent:
//!
//! - a page's data object is written first, created only if absent, then
//!   its checkpoint, also create-only; a checkpoint therefore always names a
//!   complete object;
//! - a month is complete only once its done marker exists, written after its
//!   last checkpoint;
//! - before a month is (re)opened, data objects that no checkpoint names
//!   (left by a run killed between the two writes) are removed, so the next
//!   attempt lands that page afresh and loading never sees it twice.
//!
//! Storage is a small trait ([`ObjectStore`]) with a local-folder backend
//! ([`FsStore`], a preopened directory inside a component) and Google Cloud
//! Storage over its JSON API ([`GcsStore`]).

mod any;
mod events;
mod fs;
mod lease;
mod gcs;
mod part;
mod protocol;
mod store;

/// Drives a future to completion in the unit tests: the stores they use
/// (a folder, a scripted transport) never wait, so polling is enough and
/// no runtime is needed.
#[cfg(test)]
mod test_run {
    pub fn run<F: std::future::Future>(f: F) -> F::Output {
        let mut f = std::pin::pin!(f);
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        loop {
            if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) {
                return v;
            }
        }
    }
}

pub use any::AnyStore;
pub use events::EventLine;
pub use fs::FsStore;
pub use lease::{Lease, RunRecord};
pub use gcs::{GCS_BASE_URL, GcsLocation, GcsStore};
pub use part::encode_part;
pub use protocol::{Landing, LandingError, PageInfo};
pub use store::{ObjectStore, StoreError};
