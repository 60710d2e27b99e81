//! Request counters and the expected counts, for tests and benchmarks.
//!
//! A client's tests want to assert more than "the rows arrived": that it kept
//! its GEPBD windows within one page, that it backed off, how many requests a
//! run cost. The emulator counts every API request by route and status; the
//! counts are read with [`crate::Emulator::stats`] or `GET /_emulator/stats`.
//! [`Expected`] says what the loaded data holds, so a test can compare what a
//! client landed with what it should have landed.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use serde::{Deserialize, Serialize};

use crate::Emulator;
use crate::data::Kind;

/// Requests served, by route and HTTP status. Routes are labelled
/// `GET /api/domestic/search`, `GET /api/v1/display/certificate/{lmk-key}`, ...
/// (concrete kinds, keys replaced by a placeholder); anything that matched no
/// route is `GET (unmatched)`. The emulator's own `/_emulator/*` routes are
/// not counted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    pub total: u64,
    /// Requests by route and status; a request whose connection a fault
    /// reset before the response is counted under status 0.
    pub routes: BTreeMap<String, BTreeMap<u16, u64>>,
    /// Faults injected, by class (`429`, `reset`, `dup`, ... as in the
    /// `--faults` spec); classes never injected are absent.
    #[serde(default)]
    pub faults: BTreeMap<String, u64>,
    /// Requests refused by the rate limit (429 with `Retry-After`).
    #[serde(default)]
    pub rate_limited: u64,
}

impl Stats {
    /// Requests to `route` answered with `status`.
    pub fn count(&self, route: &str, status: u16) -> u64 {
        self.routes
            .get(route)
            .and_then(|s| s.get(&status))
            .copied()
            .unwrap_or(0)
    }

    /// Faults of `class` injected.
    pub fn faults_of(&self, class: &str) -> u64 {
        self.faults.get(class).copied().unwrap_or(0)
    }

    /// Requests to `route`, any status.
    pub fn route_total(&self, route: &str) -> u64 {
        self.routes
            .get(route)
            .map(|s| s.values().sum())
            .unwrap_or(0)
    }
}

/// What the loaded data holds for one kind.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KindCounts {
    pub total: u64,
    /// Certificates per lodgement month, `YYYY-MM`; months without any are absent.
    pub months: BTreeMap<String, u64>,
    /// Certificates per lodgement day, `YYYY-MM-DD`.
    pub days: BTreeMap<String, u64>,
}

/// What the loaded data holds, per kind (all three kinds always present).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Expected {
    pub kinds: BTreeMap<Kind, KindCounts>,
}

impl Expected {
    /// Certificates of `kind` lodged in `month` (`YYYY-MM`).
    pub fn month(&self, kind: Kind, month: &str) -> u64 {
        self.kinds
            .get(&kind)
            .and_then(|k| k.months.get(month))
            .copied()
            .unwrap_or(0)
    }

    /// Certificates of `kind` lodged on `day` (`YYYY-MM-DD`).
    pub fn day(&self, kind: Kind, day: &str) -> u64 {
        self.kinds
            .get(&kind)
            .and_then(|k| k.days.get(day))
            .copied()
            .unwrap_or(0)
    }

    /// All certificates of `kind`.
    pub fn total(&self, kind: Kind) -> u64 {
        self.kinds.get(&kind).map(|k| k.total).unwrap_or(0)
    }
}

/// What the made-up recommendations hold for the certificates of one kind
/// lodged in one month.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecommendationCounts {
    /// Certificates with at least one recommendation.
    pub certificates: u64,
    /// Recommendations in all (ODC rows; GEPBD improvements or report items).
    pub recommendations: u64,
    /// Certificates without any.
    pub without: u64,
    /// Non-domestic and display certificates whose GEPBD recommendation
    /// report is missing (404); ODC still serves their recommendations.
    pub missing_reports: u64,
    /// Recommendations GEPBD serves: all of them, less those of the
    /// certificates whose report is missing.
    #[serde(default)]
    pub gepbd_recommendations: u64,
}

/// Per kind, per lodgement month (`YYYY-MM`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExpectedRecommendations {
    pub kinds: BTreeMap<Kind, BTreeMap<String, RecommendationCounts>>,
}

impl ExpectedRecommendations {
    pub fn month(&self, kind: Kind, month: &str) -> RecommendationCounts {
        self.kinds
            .get(&kind)
            .and_then(|m| m.get(month))
            .copied()
            .unwrap_or_default()
    }
}

/// The live counters behind [`Stats`].
#[derive(Debug, Default)]
pub struct Recorder {
    inner: Mutex<Stats>,
}

impl Recorder {
    pub fn record(&self, route: String, status: u16) {
        let mut s = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        s.total += 1;
        *s.routes
            .entry(route)
            .or_default()
            .entry(status)
            .or_insert(0) += 1;
    }

    pub fn fault(&self, class: &str) {
        let mut s = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        *s.faults.entry(class.to_owned()).or_insert(0) += 1;
    }

    pub fn rate_limited(&self) {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).rate_limited += 1;
    }

    pub fn snapshot(&self) -> Stats {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// The label a request is counted under; `None` for the emulator's own routes.
pub fn route_label(method: &str, path: &str) -> Option<String> {
    if path.starts_with("/_emulator/") {
        return None;
    }
    let kinds = Kind::ALL.map(Kind::slug);
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let files = [
        "domestic",
        "non-domestic",
        "display",
        "non-domestic-recommendations",
        "display-recommendations",
    ];
    let known = match segments.as_slice() {
        ["api", "certificate"] | ["api", "deltas"] | ["api", "v1", "info"] | ["api", "v1", "files"] => true,
        ["api", kind, "search"] | ["api", "v1", kind, "search"] => kinds.contains(kind),
        ["api", "files", file, "csv" | "json"] | ["api", "files", file, "csv" | "json", "info"] => {
            files.contains(file)
        }
        ["api", "v1", "files", _] => return Some(format!("{method} /api/v1/files/{{name}}")),
        ["_files", ..] => return Some(format!("{method} /_files/{{name}}")),
        ["api", "v1", kind, what @ ("certificate" | "recommendations"), _] => {
            return kinds
                .contains(kind)
                .then(|| format!("{method} /api/v1/{kind}/{what}/{{lmk-key}}"))
                .or_else(|| Some(format!("{method} (unmatched)")));
        }
        _ => false,
    };
    Some(if known {
        format!("{method} {path}")
    } else {
        format!("{method} (unmatched)")
    })
}

/// Outermost layer: counts every request by route and final status.
pub async fn record(State(emu): State<Arc<Emulator>>, request: Request, next: Next) -> Response {
    let label = route_label(request.method().as_str(), request.uri().path());
    let response = next.run(request).await;
    if let Some(label) = label {
        let status = if response.extensions().get::<crate::faults::Aborted>().is_some() {
            0
        } else {
            response.status().as_u16()
        };
        emu.recorder.record(label, status);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels() {
        assert_eq!(
            route_label("GET", "/api/domestic/search").unwrap(),
            "GET /api/domestic/search"
        );
        assert_eq!(
            route_label("GET", "/api/v1/display/certificate/abc").unwrap(),
            "GET /api/v1/display/certificate/{lmk-key}"
        );
        assert_eq!(
            route_label("GET", "/api/commercial/search").unwrap(),
            "GET (unmatched)"
        );
        assert_eq!(route_label("GET", "/_emulator/stats"), None);
    }
}
