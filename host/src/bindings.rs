//! Host-side bindings for the component exports the host calls itself.

pub mod pipeline {
    wasmtime::component::bindgen!({
        path: ["../wit", "../components/pipeline/wit"],
        world: "dame:pipeline/pipeline",
        exports: { default: async },
    });
}

pub mod landing {
    wasmtime::component::bindgen!({
        path: ["../wit", "../components/gzip-land/wit"],
        world: "dame:gzip-land/gzip-land",
        exports: { default: async },
        with: { "dame:epc/types": super::pipeline::dame::epc::types },
    });
}

pub use pipeline::dame::epc::types;

/// The message of a step's error, without the variant's name: messages
/// already say what went wrong and what to do.
pub fn message(e: &types::Error) -> &str {
    use types::Error as E;
    match e {
        E::InvalidInput(m) | E::Unauthorized(m) | E::Unavailable(m) | E::Protocol(m) | E::Conflict(m)
        | E::Storage(m) | E::NotAvailable(m) => m,
    }
}

pub mod views {
    wasmtime::component::bindgen!({
        path: ["../wit", "../components/apply-views/wit"],
        world: "dame:apply-views/apply-views",
        exports: { default: async },
        with: {
            "dame:epc/types": super::pipeline::dame::epc::types,
            "dame:epc/warehouse": crate::warehouse::bindings::dame::epc::warehouse,
        },
    });
}
