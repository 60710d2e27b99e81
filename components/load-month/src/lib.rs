//! Component `load-month`: a landed month into its raw warehouse table.
//!
//! Not built yet: it refuses every call with `not-available` rather than
//! pretend, and the pipeline runs it only when a warehouse is configured.

wit_bindgen::generate!({
    world: "dame:load-month/load-month",
    path: ["../../wit", "wit"],
    with: {
        "dame:epc/types@0.1.0": epc_bindings::types,
        "wasi:config/store@0.2.0-draft-2024-09-27": epc_bindings::config_store,
    },
    generate_all,
});

use epc_bindings::types;
use exports::dame::epc::load::{Guest, Loaded};

struct LoadMonth;

impl Guest for LoadMonth {
    fn load_month(dataset: types::Dataset, month: types::Month) -> Result<Loaded, types::Error> {
        let _ = (dataset, month);
        Err(types::Error::NotAvailable(
            "loading into a warehouse is not available in this build; nothing was loaded".into(),
        ))
    }
}

export!(LoadMonth);
