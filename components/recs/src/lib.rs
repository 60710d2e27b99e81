//! Component `recs`: recommendations of the certificates already landed.
//!
//! Not built yet: it refuses every call with `not-available` rather than
//! pretend.

wit_bindgen::generate!({
    world: "dame:recs/recs",
    path: ["../../wit", "wit"],
    with: {
        "dame:epc/types@0.1.0": epc_bindings::types,
        "wasi:config/store@0.2.0-draft-2024-09-27": epc_bindings::config_store,
    },
});

use epc_bindings::types;
use exports::dame::epc::recs::{Guest, RecsOutcome};

struct Recs;

impl Guest for Recs {
    fn fetch_recs(api: types::Api, kind: types::Kind, month: types::Month) -> Result<RecsOutcome, types::Error> {
        let _ = (api, kind, month);
        Err(types::Error::NotAvailable(
            "fetching recommendations is not available in this build; nothing was fetched".into(),
        ))
    }
}

export!(Recs);
