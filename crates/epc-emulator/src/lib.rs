//! A local stand-in for the two England and Wales EPC APIs, served from
//! ODC-format bulk CSV files on one port:
//!
//! - GEPBD ("Get energy performance of buildings data", the live API) under
//!   `/api/…`: bearer auth, date-window search with OFFSET paging whose order
//!   is genuinely unstable, full certificate documents;
//! - ODC v1 (Open Data Communities, the legacy API) under `/api/v1/…`: Basic
//!   auth, `search-after` paging, JSON or CSV rows.
//!
//! Both views show the same certificates, so a client can be tested against
//! either source and the results compared. The emulator is faithful to the
//! facts in `shared/epc/API-NOTES.md` where they are known, including the
//! awkward ones a client must cope with (unstable GEPBD paging, empty ODC
//! bodies, 400s for ranges that include today), because the point of it is
//! that a client which passes against the emulator works against the services.
//!
//! Also served, without auth: `GET /_emulator/stats` (request counters, see
//! [`Stats`]) and `GET /_emulator/expected` (what the data holds, see
//! [`Expected`]), `GET /_emulator/expected-recommendations` (see
//! [`ExpectedRecommendations`]).
//!
//! Optional, through [`Config`] (all off by default): recommendations
//! ([`Recommendations`]), GEPBD deltas ([`DeltaEvent`]), bulk files
//! ([`BulkFiles`]), injected faults ([`Faults`]), GEPBD's rate limit
//! ([`RateLimit`]) and synthetic months ([`Synthetic`]); see the README.

mod auth;
mod data;
mod deltas;
mod documents;
mod faults;
mod files;
mod gepbd;
mod ids;
mod net;
mod odc;
mod ordering;
mod recommendations;
mod stats;
mod synthetic;
mod values;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::middleware::from_fn_with_state;
use axum::response::Response;
use axum::routing::get;
use jiff::civil::Date;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use data::Kind;
pub use deltas::{DeltaChange, DeltaEvent, UprnEvent};
pub use faults::{Fault, Faults, RateLimit, parse_duration};
pub use files::BulkFiles;
pub use ids::gepbd_certificate_number;
pub use odc::NEXT_SEARCH_AFTER;
pub use recommendations::Recommendations;
pub use synthetic::Synthetic;
pub use stats::{Expected, ExpectedRecommendations, KindCounts, RecommendationCounts, Stats};

/// How to build an [`Emulator`].
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// ODC-format bulk CSV files (UPPER_SNAKE headers); each file's kind is
    /// recognised from its header.
    pub data: Vec<DataFile>,
    /// The GEPBD bearer token. `Some`: required. `None`: any non-empty bearer
    /// token is accepted; a missing one is still a 403.
    pub token: Option<String>,
    /// ODC Basic-auth e-mail and API key. Each one given is checked; when
    /// neither is given any Basic credentials are accepted; missing ones are
    /// always a 401.
    pub odc_email: Option<String>,
    pub odc_api_key: Option<String>,
    /// The emulator's "today" (default: the real UTC date), so that tests of
    /// GEPBD's "cannot include today" rule are deterministic.
    pub today: Option<Date>,
    /// Seeds everything the emulator makes up: the GEPBD tie shuffling and
    /// fault draws (the same seed and the same sequence of requests give the
    /// same orders and faults), recommendations, synthetic months and bulk
    /// file URLs.
    pub seed: u64,
    /// Added to every response, like a real network's round trip, so that
    /// runs last long enough to be interrupted in tests.
    pub latency: Option<std::time::Duration>,
    /// Made-up recommendations for every certificate (see
    /// [`Recommendations`]). `None` (default): domestic documents carry no
    /// `suggested_improvements`, recommendation reports are 404 and ODC has
    /// no recommendations route.
    pub recommendations: Option<Recommendations>,
    /// Changes served by `GET /api/deltas` and applied to the data once
    /// their day is past (see [`DeltaEvent`]); none by default.
    pub deltas: Vec<DeltaEvent>,
    /// How a UPRN change is named in the deltas (`uprn_updated` by default).
    pub uprn_event: UprnEvent,
    /// Faults injected into API responses (none by default; see [`Faults`]
    /// for the spec grammar and the `chaos` profile).
    pub faults: Faults,
    /// GEPBD's per-IP rate limit (`None`, the default: no limit; the real
    /// service's is [`RateLimit::gepbd`]).
    pub rate_limit: Option<RateLimit>,
    /// Synthetic months generated from the loaded rows, added to them
    /// (`None`, the default: none). See [`Synthetic`].
    pub synthetic: Option<Synthetic>,
    /// Bulk files behind both APIs' file routes (`None`, the default: no
    /// file routes). See [`BulkFiles`].
    pub files: Option<BulkFiles>,
}

/// One CSV input.
#[derive(Debug, Clone)]
pub enum DataFile {
    Path(PathBuf),
    /// CSV text held in memory; `name` stands for the file in error messages.
    Text {
        name: String,
        csv: String,
    },
}

/// Waits the configured latency before answering.
async fn delay(State(emu): State<Arc<Emulator>>, request: axum::extract::Request, next: axum::middleware::Next) -> axum::response::Response {
    if let Some(d) = emu.latency {
        tokio::time::sleep(d).await;
    }
    next.run(request).await
}

/// The loaded data and settings; immutable once loaded, shared by requests.
#[derive(Debug)]
pub struct Emulator {
    data: data::Dataset,
    token: Option<String>,
    odc_email: Option<String>,
    odc_api_key: Option<String>,
    today: Option<Date>,
    seed: u64,
    latency: Option<std::time::Duration>,
    recommendations: Option<Recommendations>,
    deltas: Vec<DeltaEvent>,
    uprn_event: UprnEvent,
    faults: Faults,
    /// Numbers API requests for the fault draws.
    fault_requests: AtomicU64,
    rate_limit: Option<RateLimit>,
    limiter: faults::Limiter,
    files: Option<files::Files>,
    /// Counts GEPBD searches, so each one shuffles ties differently.
    requests: AtomicU64,
    recorder: stats::Recorder,
}

impl Emulator {
    /// Parses the CSV files, recognises their kinds and derives the GEPBD
    /// view. Fails, naming the file (and line), on an unknown header, a
    /// duplicate LMK key within a kind, an unreadable row, or a collision of
    /// derived certificate numbers.
    pub fn load(config: Config) -> anyhow::Result<Emulator> {
        let mut data = match &config.synthetic {
            None => data::load(&config.data)?,
            Some(synthetic) => data::load_with(&config.data, |kinds, origins| {
                synthetic::generate(kinds, origins, synthetic, config.seed)
            })?,
        };
        deltas::apply(&mut data, &config.deltas)?;
        Ok(Emulator {
            data,
            token: config.token,
            odc_email: config.odc_email,
            odc_api_key: config.odc_api_key,
            today: config.today,
            seed: config.seed,
            latency: config.latency,
            recommendations: config.recommendations,
            deltas: config.deltas,
            uprn_event: config.uprn_event,
            faults: config.faults,
            fault_requests: AtomicU64::new(0),
            rate_limit: config.rate_limit,
            limiter: faults::Limiter::default(),
            files: config.files.map(files::Files::new),
            requests: AtomicU64::new(0),
            recorder: stats::Recorder::default(),
        })
    }

    /// The emulator's "today": the configured date, else the real UTC date
    /// (read per request, so a long-running emulator moves on at midnight).
    pub fn today(&self) -> Date {
        self.today.unwrap_or_else(|| {
            jiff::tz::Offset::UTC
                .to_datetime(jiff::Timestamp::now())
                .date()
        })
    }

    /// Both APIs and the `/_emulator` routes as one router.
    pub fn router(self: Arc<Self>) -> Router {
        let downloads = match self.files {
            Some(_) => files::download_routes(),
            None => Router::new(),
        };
        Router::new()
            .merge(downloads)
            .merge(gepbd::routes(self.clone()))
            .merge(odc::routes(self.clone()))
            .route("/api/v1/info", get(odc::info))
            .route(
                "/_emulator/stats",
                get(|State(emu): State<Arc<Emulator>>| async move { axum::Json(emu.stats()) }),
            )
            .route(
                "/_emulator/expected",
                get(|State(emu): State<Arc<Emulator>>| async move { axum::Json(emu.expected()) }),
            )
            .route(
                "/_emulator/expected-recommendations",
                get(|State(emu): State<Arc<Emulator>>| async move {
                    axum::Json(emu.expected_recommendations())
                }),
            )
            .fallback(not_found)
            .layer(from_fn_with_state(self.clone(), faults::inject))
            .layer(from_fn_with_state(self.clone(), faults::limit))
            .layer(from_fn_with_state(self.clone(), stats::record))
            .layer(from_fn_with_state(self.clone(), delay))
            .with_state(self)
    }

    /// Serves on `listener` until the server fails.
    pub async fn serve(self, listener: tokio::net::TcpListener) -> anyhow::Result<()> {
        let app = Arc::new(self).router();
        axum::serve(
            net::EmuListener(listener),
            app.into_make_service_with_connect_info::<net::Conn>(),
        )
        .await?;
        Ok(())
    }

    /// Binds `addr` (port 0 picks a free port), serves in a background task
    /// and returns at once with the bound address.
    pub async fn start(self, addr: SocketAddr) -> anyhow::Result<Running> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let emulator = Arc::new(self);
        let (tx, rx) = oneshot::channel::<()>();
        let app = emulator.clone().router();
        let task = tokio::spawn(async move {
            axum::serve(
                net::EmuListener(listener),
                app.into_make_service_with_connect_info::<net::Conn>(),
            )
                .with_graceful_shutdown(async move {
                    let _ = rx.await;
                })
                .await
        });
        Ok(Running {
            addr,
            emulator,
            shutdown: Some(tx),
            task: Some(task),
        })
    }

    /// Requests served so far, by route and status.
    pub fn stats(&self) -> Stats {
        self.recorder.snapshot()
    }

    /// What the data holds: per kind, the number of certificates per
    /// lodgement month (`YYYY-MM`) and day (certificates removed by a delta
    /// that has happened are not counted).
    pub fn expected(&self) -> Expected {
        let today = self.today();
        let mut expected = Expected::default();
        for data in &self.data.kinds {
            let mut counts = KindCounts::default();
            for cert in data.certs.iter().filter(|c| !c.removed(today)) {
                counts.total += 1;
                *counts.months.entry(cert.month()).or_insert(0) += 1;
                *counts
                    .days
                    .entry(cert.lodgement_date.to_string())
                    .or_insert(0) += 1;
            }
            expected.kinds.insert(data.kind, counts);
        }
        expected
    }

    /// What the recommendations hold, per kind and lodgement month (empty
    /// when recommendations are not configured); removed certificates are
    /// not counted.
    pub fn expected_recommendations(&self) -> ExpectedRecommendations {
        let mut expected = ExpectedRecommendations::default();
        let Some(recs) = &self.recommendations else {
            return expected;
        };
        let today = self.today();
        for data in &self.data.kinds {
            let months = expected.kinds.entry(data.kind).or_default();
            for cert in data.certs.iter().filter(|c| !c.removed(today)) {
                let n = recs.of(self.seed, cert).len() as u64;
                let m = months.entry(cert.month()).or_default();
                if n > 0 {
                    m.certificates += 1;
                    m.recommendations += n;
                } else {
                    m.without += 1;
                }
                if recs.report_missing(self.seed, cert) {
                    m.missing_reports += 1;
                } else {
                    m.gepbd_recommendations += n;
                }
            }
        }
        expected
    }

    /// The GEPBD certificate number of the certificate of `kind` with this
    /// LMK key, if it is loaded.
    pub fn certificate_number(&self, kind: Kind, lmk_key: &str) -> Option<&str> {
        let data = self.data.kind(kind);
        data.by_lmk
            .get(lmk_key)
            .map(|&i| data.certs[i].certificate_number.as_str())
    }
}

async fn not_found() -> Response {
    gepbd::error(StatusCode::NOT_FOUND, "Not found")
}

/// A started emulator. Dropping it stops the server too; [`Running::shutdown`]
/// also waits for it to finish.
#[derive(Debug)]
pub struct Running {
    pub addr: SocketAddr,
    emulator: Arc<Emulator>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl Running {
    /// `http://127.0.0.1:PORT` (the loopback address when bound to all).
    pub fn url(&self) -> String {
        let mut addr = self.addr;
        if addr.ip().is_unspecified() {
            addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
        }
        format!("http://{addr}")
    }

    pub fn emulator(&self) -> &Arc<Emulator> {
        &self.emulator
    }

    pub fn stats(&self) -> Stats {
        self.emulator.stats()
    }

    /// Stops accepting, lets open requests finish and waits for the server.
    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await??;
        }
        Ok(())
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}
