/// Why a BigQuery call failed. Each message names the object and says whose
/// move it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BqError {
    /// A name or label breaks Google's rules; nothing was sent.
    #[error("{0}")]
    InvalidInput(String),
    /// Credentials missing, refused, or lacking a role.
    #[error("{0}")]
    Unauthorized(String),
    /// BigQuery could not be reached, or kept failing after retries.
    #[error("{0}")]
    Unavailable(String),
    /// BigQuery refused a request or a job failed: its reason and message.
    #[error("{what}: {reason}: {message}{advice}")]
    Refused { what: String, reason: String, message: String, advice: String },
    /// A dataset or table exists in a shape dame does not create (other
    /// location, partitioning or clustering); the message says what to do.
    #[error("{0}")]
    Mismatch(String),
    /// A job did not finish in time; it may still finish.
    #[error("{0}")]
    Timeout(String),
    /// BigQuery answered something this client cannot read.
    #[error("{0}")]
    Protocol(String),
}

impl BqError {
    /// BigQuery's reason (`invalidQuery`, `notFound`, …) when it gave one.
    pub fn reason(&self) -> Option<&str> {
        match self {
            BqError::Refused { reason, .. } => Some(reason),
            _ => None,
        }
    }
}

impl From<epc_model::InputError> for BqError {
    fn from(e: epc_model::InputError) -> Self {
        BqError::InvalidInput(e.0)
    }
}

/// The runbook's advice when a table's partitioning or clustering differs
/// from what a job (or dame) asks for.
pub(crate) fn shape_advice(table: &str) -> String {
    format!(
        "; table {table} exists with other partitioning or clustering than dame-epc creates: drop it once \
         (`bq rm -t {}`; the next load recreates it) or load into a new table name",
        table.replacen('.', ":", 1)
    )
}

/// Whether BigQuery's message is about a table's partitioning or
/// clustering not matching.
pub(crate) fn is_shape_mismatch(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.contains("incompatible table partitioning specification")
        || (m.contains("clustering") && (m.contains("incompatible") || m.contains("mismatch") || m.contains("does not match")))
}
