//! Bindings every dame component shares, generated once.
//!
//! Each component's own `wit_bindgen::generate!` maps `dame:epc/types` and
//! `wasi:config/store` here (its `with` option), so the record types are the
//! same Rust types in every component and the conversions to and from
//! [`epc_model`] are written once.

wit_bindgen::generate!({
    world: "dame:epc/shared",
    path: "../../wit",
    generate_all,
    // `types` has no functions, so nothing in this world uses its types;
    // they are generated here for the components that do.
    generate_unused_types: true,
});

pub use dame::epc::types;
pub use dame::epc::warehouse;
pub use wasi::config::store as config_store;

/// A table spec of [`epc_model::warehouse`] as the warehouse interface
/// takes it.
pub fn table_spec(t: &epc_model::warehouse::TableSpec) -> warehouse::TableSpec {
    warehouse::TableSpec {
        name: t.name.clone(),
        columns: t
            .columns
            .iter()
            .map(|c| warehouse::Column {
                name: c.name.to_string(),
                data_type: c.data_type.to_string(),
                required: c.required,
                description: c.description.to_string(),
            })
            .collect(),
        partition_by_month: t.partition_by_month.as_ref().map(|p| p.to_string()),
        cluster_by: t.cluster_by.iter().map(|c| c.to_string()).collect(),
        description: t.description.clone(),
    }
}

use epc_model::{Content, Dataset, InputError, Kind, Month, Source};

impl From<Kind> for types::Kind {
    fn from(k: Kind) -> Self {
        match k {
            Kind::Domestic => types::Kind::Domestic,
            Kind::NonDomestic => types::Kind::NonDomestic,
            Kind::Display => types::Kind::Display,
        }
    }
}

impl From<types::Kind> for Kind {
    fn from(k: types::Kind) -> Self {
        match k {
            types::Kind::Domestic => Kind::Domestic,
            types::Kind::NonDomestic => Kind::NonDomestic,
            types::Kind::Display => Kind::Display,
        }
    }
}

impl From<Source> for types::Source {
    fn from(s: Source) -> Self {
        match s {
            Source::Gepbd => types::Source::Gepbd,
            Source::Odc => types::Source::Odc,
        }
    }
}

impl From<types::Source> for Source {
    fn from(s: types::Source) -> Self {
        match s {
            types::Source::Gepbd => Source::Gepbd,
            types::Source::Odc => Source::Odc,
        }
    }
}

impl From<Month> for types::Month {
    fn from(m: Month) -> Self {
        types::Month { year: m.year(), month: m.month() }
    }
}

impl TryFrom<types::Month> for Month {
    type Error = InputError;
    fn try_from(m: types::Month) -> Result<Self, InputError> {
        Month::new(m.year, m.month)
    }
}

impl From<Dataset> for types::Dataset {
    fn from(d: Dataset) -> Self {
        types::Dataset {
            kind: d.kind.into(),
            content: match d.content {
                Content::Certificates => types::Content::Certificates,
                Content::Recommendations => types::Content::Recommendations,
            },
        }
    }
}

impl From<types::Dataset> for Dataset {
    fn from(d: types::Dataset) -> Self {
        Dataset {
            kind: d.kind.into(),
            content: match d.content {
                types::Content::Certificates => Content::Certificates,
                types::Content::Recommendations => Content::Recommendations,
            },
        }
    }
}

impl From<epc_model::Certificate> for types::Certificate {
    fn from(c: epc_model::Certificate) -> Self {
        types::Certificate {
            id: c.id,
            lodgement_date: c.lodgement_date,
            uprn: c.uprn,
            postcode: c.postcode,
            document: c.document,
        }
    }
}

impl From<types::Certificate> for epc_model::Certificate {
    fn from(c: types::Certificate) -> Self {
        epc_model::Certificate {
            id: c.id,
            lodgement_date: c.lodgement_date,
            uprn: c.uprn,
            postcode: c.postcode,
            document: c.document,
        }
    }
}

/// The message of an error, without its variant's name: messages already
/// say what went wrong and what to do. (The generated `Display` prints the
/// variant too, which is for debugging.)
pub trait Message {
    fn message(&self) -> String;
}

impl Message for types::Error {
    fn message(&self) -> String {
        use types::Error as E;
        match self {
            E::InvalidInput(m) | E::Unauthorized(m) | E::Unavailable(m) | E::Protocol(m) | E::Conflict(m)
            | E::Storage(m) | E::NotAvailable(m) => m.clone(),
        }
    }
}

impl From<InputError> for types::Error {
    fn from(e: InputError) -> Self {
        types::Error::InvalidInput(e.0)
    }
}

/// A configuration value, blank treated as absent. Configuration comes from
/// Spin variables (`SPIN_VARIABLE_*`) or the dame host's settings.
pub fn config(key: &str) -> Result<Option<String>, types::Error> {
    match config_store::get(key) {
        Ok(v) => Ok(v.filter(|s| !s.trim().is_empty())),
        Err(config_store::Error::Upstream(m) | config_store::Error::Io(m)) => {
            Err(types::Error::InvalidInput(format!("cannot read configuration '{key}': {m}")))
        }
    }
}

/// The landing store named by configuration: `landing` (a folder the host
/// granted, or `gs://BUCKET[/PREFIX]`), else `bucket`. Cloud Storage is
/// reached over wasi-http with Google credentials from configuration, or
/// none when `storage_emulator_host` names a local stand-in.
#[cfg(target_arch = "wasm32")]
pub fn landing_store() -> Result<landing::AnyStore<http_client::wasi::WasiTransport>, types::Error> {
    use google_auth::Auth;
    use http_client::Client;
    use http_client::wasi::WasiTransport;
    use landing::{AnyStore, FsStore, GcsStore};
    let target = match (config("landing")?, config("bucket")?) {
        (Some(landing), _) => landing,
        (None, Some(bucket)) => format!("gs://{bucket}"),
        (None, None) => {
            return Err(types::Error::InvalidInput(
                "no landing store configured: set `landing` to a folder or gs://BUCKET (or set `bucket`)".into(),
            ));
        }
    };
    if !target.starts_with("gs://") {
        return Ok(AnyStore::Folder(FsStore::new(target)));
    }
    let emulator = config("storage_emulator_host")?;
    let auth = match emulator {
        Some(_) => Auth::none(),
        None => Auth::from_settings(config(google_auth::CONFIG_ACCESS_TOKEN)?, config(google_auth::CONFIG_CREDENTIALS_JSON)?)
            .map_err(|e| types::Error::Unauthorized(e.to_string()))?,
    };
    GcsStore::new(&target, Client::new(WasiTransport::default()), auth, emulator.as_deref())
        .map(AnyStore::Gcs)
        .map_err(|e| types::Error::InvalidInput(e.to_string()))
}

/// A landing-protocol error as the WIT error a step returns.
#[cfg(target_arch = "wasm32")]
pub fn landing_error(e: landing::LandingError) -> types::Error {
    use landing::LandingError;
    match e {
        LandingError::Conflict(m) => types::Error::Conflict(m),
        // The month's state and the request disagree: this month needs a
        // person (or a reset), the others can go on.
        LandingError::Invalid(m) | LandingError::Damaged(m) => types::Error::Storage(m),
        LandingError::Store(s) => types::Error::Storage(s.to_string()),
    }
}
