use crate::InputError;
use std::fmt;
use std::str::FromStr;

/// The three registers of certificates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    Domestic,
    NonDomestic,
    Display,
}

impl Kind {
    pub const ALL: [Kind; 3] = [Kind::Domestic, Kind::NonDomestic, Kind::Display];

    /// The name in URLs, object keys and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Domestic => "domestic",
            Kind::NonDomestic => "non-domestic",
            Kind::Display => "display",
        }
    }

    /// The name where hyphens are not allowed: table names and job labels.
    pub fn snake(self) -> &'static str {
        match self {
            Kind::Domestic => "domestic",
            Kind::NonDomestic => "non_domestic",
            Kind::Display => "display",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Kind {
    type Err = InputError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().replace('_', "-").as_str() {
            "domestic" => Ok(Kind::Domestic),
            "non-domestic" => Ok(Kind::NonDomestic),
            "display" => Ok(Kind::Display),
            _ => Err(InputError::new(format!(
                "unknown kind '{s}': use domestic, non-domestic or display (comma-separated for several)"
            ))),
        }
    }
}

/// Parses a comma-separated list such as `domestic,non-domestic`, keeping the
/// order given and dropping repeats.
pub fn parse_kinds(list: &str) -> Result<Vec<Kind>, InputError> {
    let mut kinds = Vec::new();
    for part in list.split(',').filter(|p| !p.trim().is_empty()) {
        let kind: Kind = part.parse()?;
        if !kinds.contains(&kind) {
            kinds.push(kind);
        }
    }
    if kinds.is_empty() {
        return Err(InputError::new(
            "no kind given: use domestic, non-domestic or display (comma-separated for several)",
        ));
    }
    Ok(kinds)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lists_in_order_without_repeats() {
        assert_eq!(
            parse_kinds("non-domestic, domestic,non_domestic").unwrap(),
            vec![Kind::NonDomestic, Kind::Domestic]
        );
    }

    #[test]
    fn unknown_kind_names_the_fix() {
        let err = parse_kinds("domestic,commercial").unwrap_err();
        assert!(err.0.contains("'commercial'") && err.0.contains("non-domestic"), "{err}");
        assert!(parse_kinds(" , ").is_err());
    }
}
