use crate::{InputError, Kind};
use std::fmt;
use std::str::FromStr;

/// What a landed object holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Content {
    Certificates,
    Recommendations,
}

/// A stream of landed records, named as its folder in the landing store:
/// `domestic`, or `domestic-recommendations` for its recommendations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Dataset {
    pub kind: Kind,
    pub content: Content,
}

impl Dataset {
    pub fn certificates(kind: Kind) -> Self {
        Self { kind, content: Content::Certificates }
    }

    pub fn recommendations(kind: Kind) -> Self {
        Self { kind, content: Content::Recommendations }
    }

    /// The folder name under `raw/` and `state/`.
    pub fn name(self) -> String {
        match self.content {
            Content::Certificates => self.kind.as_str().to_string(),
            Content::Recommendations => format!("{}-recommendations", self.kind.as_str()),
        }
    }

    /// The warehouse raw table, e.g. `domestic_raw_json`.
    pub fn raw_table(self) -> String {
        match self.content {
            Content::Certificates => format!("{}_raw_json", self.kind.snake()),
            Content::Recommendations => format!("{}_recommendations_raw_json", self.kind.snake()),
        }
    }
}

impl fmt::Display for Dataset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

impl FromStr for Dataset {
    type Err = InputError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.strip_suffix("-recommendations") {
            Some(kind) => Ok(Dataset::recommendations(kind.parse()?)),
            None => Ok(Dataset::certificates(s.parse()?)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for kind in Kind::ALL {
            for ds in [Dataset::certificates(kind), Dataset::recommendations(kind)] {
                assert_eq!(ds.name().parse::<Dataset>().unwrap(), ds);
            }
        }
        assert_eq!(Dataset::certificates(Kind::NonDomestic).raw_table(), "non_domestic_raw_json");
    }
}
