//! Component `apply-views`: the published views over the raw tables.
//!
//! Not built yet: it refuses every call with `not-available` rather than
//! pretend.

wit_bindgen::generate!({
    world: "dame:apply-views/apply-views",
    path: ["../../wit", "wit"],
    with: {
        "dame:epc/types@0.1.0": epc_bindings::types,
        "wasi:config/store@0.2.0-draft-2024-09-27": epc_bindings::config_store,
    },
    generate_all,
});

use epc_bindings::types;
use exports::dame::epc::views::{Guest, ViewOutcome};

struct ApplyViews;

impl Guest for ApplyViews {
    fn apply_views() -> Result<Vec<ViewOutcome>, types::Error> {
        Err(types::Error::NotAvailable("publishing views is not available in this build; nothing was applied".into()))
    }
}

export!(ApplyViews);
