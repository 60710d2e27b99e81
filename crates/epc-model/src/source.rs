use crate::InputError;
use std::fmt;
use std::str::FromStr;

/// The two EPC APIs. Their identifiers never join (LMK keys were withdrawn
/// in 2026 and cannot be mapped to certificate numbers), so every landed
/// month records which one it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// "Get energy performance of buildings data", live since 2026.
    Gepbd,
    /// Open Data Communities v1, retired in 2026.
    Odc,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Gepbd => "gepbd",
            Source::Odc => "odc",
        }
    }

    /// The public base URL of the service.
    pub fn default_url(self) -> &'static str {
        match self {
            Source::Gepbd => "https://api.get-energy-performance-data.communities.gov.uk",
            Source::Odc => "https://epc.opendatacommunities.org",
        }
    }

    /// The column that identifies a certificate of this source.
    pub fn id_column(self) -> &'static str {
        match self {
            Source::Gepbd => "certificate_number",
            Source::Odc => "lmk_key",
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Source {
    type Err = InputError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "gepbd" => Ok(Source::Gepbd),
            "odc" => Ok(Source::Odc),
            _ => Err(InputError::new(format!(
                "unknown source '{s}': use gepbd (the live API) or odc (the retired Open Data Communities API)"
            ))),
        }
    }
}
