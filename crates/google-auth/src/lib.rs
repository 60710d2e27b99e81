//! Google access tokens for the Cloud Storage and BigQuery clients.
//!
//! Sources are tried in the order Google's own client libraries use, so a
//! deployment that works with `gcloud`-era tooling works here unchanged:
//!
//! 1. an explicit access token (configuration `google_oauth_access_token`);
//! 2. a service-account key (configuration
//!    `google_application_credentials_json`: the content of the key file
//!    that `GOOGLE_APPLICATION_CREDENTIALS` names, read by the host),
//!    exchanged at its `token_uri` for an access token with an RS256-signed
//!    JWT;
//! 3. the metadata server of the Google Cloud machine the job runs on.
//!
//! Talking to an emulator uses [`Auth::none`]: no credentials at all, so a
//! developer's real token never reaches a stand-in.
//!
//! Tokens are cached until 60 s before they expire. After a 401 from an API
//! the caller may ask once for a fresh token ([`Auth::send`] does this).
//! Secrets are held in [`Secret`], whose `Debug` prints nothing, and no
//! error message ever quotes a token, a key or a token endpoint's reply
//! beyond its error code.

mod jwt;
mod secret;
mod secret_manager;

pub use jwt::ServiceAccountKey;
pub use secret::Secret;
pub use secret_manager::{SECRET_MANAGER_URL, access_secret, check_secret_name};

use http_client::{Client, Method, Request, Response, Transport, TransportError};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Configuration key of an explicit OAuth access token.
pub const CONFIG_ACCESS_TOKEN: &str = "google_oauth_access_token";
/// Configuration key of a service-account key file's JSON content.
pub const CONFIG_CREDENTIALS_JSON: &str = "google_application_credentials_json";
/// The one scope asked for: Cloud Storage and BigQuery both accept it, and
/// IAM roles, not scopes, are what limit the job.
pub const SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";
/// Where a Google Cloud machine hands out its service account's tokens.
pub const METADATA_TOKEN_URL: &str =
    "http://metadata.google.internal/computeMetadata/v1/instance/service-accounts/default/token";
/// A token is replaced this long before it expires, so that one fetched at
/// the start of a request is still valid when the request arrives.
pub const EXPIRY_MARGIN: Duration = Duration::from_secs(60);

/// Why no token could be had. Messages say which source failed and what to
/// change; none quotes a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// The configured credentials cannot be used as they are.
    #[error("{0}")]
    Invalid(String),
    /// The token endpoint or the API refused the credentials.
    #[error("{0}")]
    Refused(String),
    /// The token endpoint or metadata server could not be reached.
    #[error("{0}")]
    Unavailable(String),
}

enum Source {
    Emulator,
    Token(Secret),
    ServiceAccount(Box<ServiceAccountKey>),
    Metadata { url: String },
}

struct Cached {
    token: Secret,
    /// Unix seconds after which the token is fetched again.
    refresh_at: u64,
}

/// Where tokens come from, and the current one.
pub struct Auth {
    source: Source,
    cache: Mutex<Option<Cached>>,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth").field("source", &self.describe()).finish_non_exhaustive()
    }
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// `STORAGE_EMULATOR_HOST` / `BIGQUERY_EMULATOR_HOST` as a base URL: the
/// ecosystem accepts `host:port` as well as `http://host:port`.
pub fn emulator_url(value: &str) -> String {
    let v = value.trim().trim_end_matches('/');
    if v.contains("://") { v.to_string() } else { format!("http://{v}") }
}

#[derive(serde::Deserialize)]
struct TokenReply {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
}

#[derive(serde::Deserialize)]
struct TokenRefusal {
    #[serde(default)]
    error: String,
    #[serde(default)]
    error_description: String,
}

impl Auth {
    /// No credentials: for emulators.
    pub fn none() -> Self {
        Self::from_source(Source::Emulator)
    }

    fn from_source(source: Source) -> Self {
        Self { source, cache: Mutex::new(None) }
    }

    /// Picks the first configured source, in Google's order: explicit
    /// token, service-account key, metadata server. Blank values count as
    /// absent. A key that does not parse is an error here, before any
    /// request.
    pub fn from_settings(access_token: Option<String>, credentials_json: Option<String>) -> Result<Self, AuthError> {
        let present = |v: Option<String>| v.filter(|s| !s.trim().is_empty());
        if let Some(token) = present(access_token) {
            return Ok(Self::from_source(Source::Token(Secret::new(token.trim().to_string()))));
        }
        if let Some(json) = present(credentials_json) {
            return Ok(Self::from_source(Source::ServiceAccount(Box::new(ServiceAccountKey::from_json(&json)?))));
        }
        Ok(Self::from_source(Source::Metadata { url: METADATA_TOKEN_URL.to_string() }))
    }

    /// Asks a different metadata server (a test stand-in, or a host's
    /// proxy of it); only matters when no other source is configured.
    pub fn with_metadata_url(mut self, url: impl Into<String>) -> Self {
        if let Source::Metadata { url: u } = &mut self.source {
            *u = url.into();
        }
        self
    }

    /// Which source is in use, for messages: never the secret itself.
    pub fn describe(&self) -> String {
        match &self.source {
            Source::Emulator => "no credentials (emulator)".into(),
            Source::Token(_) => format!("the access token in `{CONFIG_ACCESS_TOKEN}`"),
            Source::ServiceAccount(k) => format!("service account {}", k.client_email()),
            Source::Metadata { .. } => "the metadata server's default service account".into(),
        }
    }

    /// Whether asking again can give a different token.
    fn refreshable(&self) -> bool {
        matches!(self.source, Source::ServiceAccount(_) | Source::Metadata { .. })
    }

    /// The `Authorization` header value, from the cache while it is fresh;
    /// `None` for emulators.
    pub async fn authorization<T: Transport>(&self, client: &Client<T>) -> Result<Option<Secret>, AuthError> {
        let token = match &self.source {
            Source::Emulator => return Ok(None),
            Source::Token(t) => t.clone(),
            _ => {
                let cached = self.cache.lock().ok().and_then(|c| {
                    c.as_ref().filter(|c| now() < c.refresh_at).map(|c| c.token.clone())
                });
                match cached {
                    Some(t) => t,
                    None => self.fetch(client).await?,
                }
            }
        };
        Ok(Some(Secret::new(format!("Bearer {}", token.expose()))))
    }

    /// Forgets the cached token, so the next request fetches a new one.
    pub fn invalidate(&self) {
        if let Ok(mut c) = self.cache.lock() {
            *c = None;
        }
    }

    async fn fetch<T: Transport>(&self, client: &Client<T>) -> Result<Secret, AuthError> {
        let reply = match &self.source {
            Source::ServiceAccount(key) => {
                let assertion = key.signed_jwt(SCOPE, now())?;
                let body = format!("grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion={assertion}");
                let request = Request::new(Method::Post, key.token_uri())
                    .header("Content-Type", "application/x-www-form-urlencoded")
                    .body(body.into_bytes());
                let response = client.send(&request).await.map_err(|e| {
                    AuthError::Unavailable(format!("exchanging the key of {} for a token: {e}", key.client_email()))
                })?;
                if !response.is_success() {
                    return Err(refusal(&response, &self.describe()));
                }
                response
            }
            Source::Metadata { url } => metadata_token(client, url).await?,
            Source::Emulator | Source::Token(_) => unreachable!("only fetched sources reach here"),
        };
        let parsed: TokenReply = serde_json::from_slice(&reply.body).map_err(|e| {
            AuthError::Refused(format!("{} answered a token request with something that is not a token ({e})", self.describe()))
        })?;
        let token = Secret::new(parsed.access_token);
        // Google's tokens last an hour; a reply without a lifetime is used
        // for this request only.
        let lifetime = parsed.expires_in.unwrap_or(0);
        let refresh_at = (now() + lifetime).saturating_sub(EXPIRY_MARGIN.as_secs());
        if let Ok(mut c) = self.cache.lock() {
            *c = Some(Cached { token: token.clone(), refresh_at });
        }
        Ok(token)
    }

    /// Sends `request` with credentials. On a 401 it fetches a fresh token
    /// once and tries again (a token can be revoked or expire early); a
    /// second 401, or a 401 with a token that cannot be refreshed, is
    /// returned for the caller to explain with [`Auth::describe`].
    pub async fn send<T: Transport>(&self, client: &Client<T>, request: &Request) -> Result<Response, SendError> {
        let response = self.send_once(client, request).await?;
        if response.status != 401 || !self.refreshable() {
            return Ok(response);
        }
        self.invalidate();
        self.send_once(client, request).await
    }

    async fn send_once<T: Transport>(&self, client: &Client<T>, request: &Request) -> Result<Response, SendError> {
        match self.authorization(client).await? {
            None => Ok(client.send(request).await?),
            Some(header) => {
                let mut r = request.clone();
                r.headers.retain(|(k, _)| !k.eq_ignore_ascii_case("authorization"));
                r.headers.push(("Authorization".into(), header.expose().to_string()));
                Ok(client.send(&r).await?)
            }
        }
    }
}

/// The metadata server answers at once on Google Cloud and not at all
/// elsewhere: three quick tries, not the client's minute of backoff, so a
/// laptop without credentials hears so in a second.
async fn metadata_token<T: Transport>(client: &Client<T>, url: &str) -> Result<Response, AuthError> {
    let request = Request::get(url).header("Metadata-Flavor", "Google");
    let transport = client.transport();
    let mut last = String::new();
    for attempt in 0..3u32 {
        if attempt > 0 {
            transport.sleep(Duration::from_millis(200 << attempt)).await;
        }
        match transport.send(&request, 64 * 1024).await {
            Ok(r) if r.is_success() => return Ok(r),
            Ok(r) if r.status >= 500 => last = format!("HTTP {}", r.status),
            Ok(r) => return Err(refusal(&r, "the metadata server")),
            Err(TransportError::Connection(e)) => last = e,
            Err(e) => {
                last = e.to_string();
                break;
            }
        }
    }
    Err(AuthError::Unavailable(format!(
        "no Google credentials: set `{CONFIG_ACCESS_TOKEN}`, or GOOGLE_APPLICATION_CREDENTIALS to a service-account \
         key file, or run on Google Cloud (the metadata server did not answer: {last})"
    )))
}

/// A token endpoint's refusal, by its OAuth error code and description
/// (which name the problem, e.g. `invalid_grant: Invalid JWT Signature`,
/// and carry no secret).
fn refusal(response: &Response, who: &str) -> AuthError {
    let why = match serde_json::from_slice::<TokenRefusal>(&response.body) {
        Ok(r) if !r.error.is_empty() => format!("{}: {}", r.error, r.error_description),
        _ => format!("HTTP {}", response.status),
    };
    AuthError::Refused(format!(
        "{who} could not get an access token ({why}); check that the key is current and the account not disabled"
    ))
}

/// Why an authenticated request failed before the caller could read a
/// response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    #[error("{0}")]
    Auth(#[from] AuthError),
    #[error("{0}")]
    Http(#[from] http_client::Error),
}
