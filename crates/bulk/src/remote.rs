//! The services' bulk-file routes.
//!
//! - GEPBD: `GET /api/files/{kind}/{json|csv}/info` →
//!   `{"data":{"fileSize","lastUpdated"}}`; `GET /api/files/{kind}/{json|csv}`
//!   → 302 to a pre-signed URL that expires 30 seconds later.
//! - ODC: `GET /api/v1/files` → `{"files":{name:{"size"}}}`;
//!   `GET /api/v1/files/{kind}-YYYY-MM.zip` → 302 the same way.
//!
//! The API requests go through [`Client`] (retries, bounded bodies); the
//! download itself is a [`StreamGet`], whose body is read as a stream and
//! never held. The redirect is followed at once, without the API's
//! credentials (the URL carries its own signature), and a download that
//! cannot start (the URL expired, the storage service failed) is retried
//! with a fresh redirect.

use crate::driver::{Remote, RemoteFile};
use crate::records::RecordFormat;
use crate::BulkError;
use epc_model::{Kind, Month, Source};
use http_client::{Client, Request, Response, Transport, redact_url};
use serde_json::Value;
use std::future::Future;
use std::io::Read;

/// Attempts at starting a download, each with a fresh redirect.
const DOWNLOAD_ATTEMPTS: u32 = 3;

/// A streamed response.
pub struct Streamed<B> {
    pub status: u16,
    pub body: B,
}

/// A GET whose body is read as a stream (wasi-http in the component, a
/// blocking client in tests). Its error is a connection failure's text.
pub trait StreamGet {
    type Body: Read;
    fn get(&self, url: &str) -> impl Future<Output = Result<Streamed<Self::Body>, String>>;
}

/// The credentials of an API, as its `Authorization` header. `Debug` hides it.
#[derive(Clone)]
pub struct Authorization(String);

impl std::fmt::Debug for Authorization {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Authorization(<redacted>)")
    }
}

impl Authorization {
    pub fn bearer(token: &str) -> Self {
        Self(format!("Bearer {}", token.trim()))
    }

    pub fn basic(email: &str, api_key: &str) -> Self {
        use base64::Engine;
        let pair = format!("{}:{}", email.trim(), api_key.trim());
        Self(format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(pair)))
    }
}

/// One kind's bulk files on one service.
pub struct HttpRemote<T, G> {
    client: Client<T>,
    getter: G,
    base_url: String,
    source: Source,
    kind: Kind,
    format: RecordFormat,
    auth: Authorization,
}

/// `https://host[/api[/v1]]` → `https://host`.
pub fn base_url(url: &str) -> Result<String, BulkError> {
    let trimmed = url.trim().trim_end_matches('/');
    let trimmed = trimmed.strip_suffix("/api/v1").or_else(|| trimmed.strip_suffix("/api")).unwrap_or(trimmed);
    let ok = (trimmed.starts_with("https://") || trimmed.starts_with("http://"))
        && trimmed.split("://").nth(1).is_some_and(|rest| !rest.is_empty() && !rest.contains(['?', '#', ' ']));
    if !ok {
        return Err(BulkError::InvalidInput(format!("API URL '{url}' is not an http(s) URL")));
    }
    Ok(trimmed.to_string())
}

impl<T: Transport, G: StreamGet> HttpRemote<T, G> {
    pub fn new(
        client: Client<T>,
        getter: G,
        api_url: &str,
        source: Source,
        kind: Kind,
        format: RecordFormat,
        auth: Authorization,
    ) -> Result<Self, BulkError> {
        Ok(Self { client, getter, base_url: base_url(api_url)?, source, kind, format, auth })
    }

    pub fn client(&self) -> &Client<T> {
        &self.client
    }

    fn format_name(&self) -> &'static str {
        match self.format {
            RecordFormat::GepbdJson => "json",
            _ => "csv",
        }
    }

    async fn api(&self, url: String, what: &str) -> Result<Response, BulkError> {
        let request = Request::get(url).header("Authorization", self.auth.0.clone()).header("Accept", "application/json");
        self.client.send(&request).await.map_err(|e| match e {
            http_client::Error::Unavailable { .. } => {
                BulkError::Unavailable(format!("{what}: {e}; the API is unreachable or overloaded: try again later"))
            }
            http_client::Error::Refused { .. } => BulkError::Protocol(format!("{what}: {e}")),
        })
    }

    fn unexpected(&self, what: &str, r: &Response) -> BulkError {
        let said = r.snippet();
        match r.status {
            401 | 403 => BulkError::Unauthorized(format!(
                "{what}: the API refused the credentials (HTTP {}: {said}); check EPC_TOKEN, or EPC_EMAIL and EPC_API_KEY",
                r.status
            )),
            404 => BulkError::InvalidInput(format!(
                "{what}: the service has no such file (HTTP 404: {said}); check --source, --kind and --format"
            )),
            s => BulkError::Protocol(format!("{what}: unexpected HTTP {s}: {said}")),
        }
    }

    fn json(&self, what: &str, r: &Response) -> Result<Value, BulkError> {
        serde_json::from_slice(&r.body)
            .map_err(|e| BulkError::Protocol(format!("{what}: the answer is not JSON ({e}): {}", r.snippet())))
    }

    /// The route that answers with the redirect.
    fn file_url(&self, f: &RemoteFile) -> String {
        match self.source {
            Source::Gepbd => format!("{}/api/files/{}/{}", self.base_url, self.kind.as_str(), self.format_name()),
            Source::Odc => format!("{}/api/v1/files/{}", self.base_url, f.name),
        }
    }

    async fn gepbd_files(&self) -> Result<Vec<RemoteFile>, BulkError> {
        let format = self.format_name();
        let kind = self.kind.as_str();
        let what = format!("GEPBD bulk file {kind}/{format}: …/info");
        let r = self.api(format!("{}/api/files/{kind}/{format}/info", self.base_url), &what).await?;
        if r.status != 200 {
            return Err(self.unexpected(&what, &r));
        }
        let v = self.json(&what, &r)?;
        let data = v.get("data").filter(|d| d.is_object()).unwrap_or(&v);
        let size = match data.get("fileSize") {
            Some(Value::Number(n)) => n.as_u64(),
            Some(Value::String(s)) => s.trim().parse().ok(),
            _ => None,
        }
        .ok_or_else(|| BulkError::Protocol(format!("{what}: no fileSize in {}", r.snippet())))?;
        let last_updated = data.get("lastUpdated").and_then(Value::as_str).map(str::to_string);
        Ok(vec![RemoteFile { name: format!("{kind}-{format}.zip"), size, last_updated, month: None }])
    }

    async fn odc_files(&self) -> Result<Vec<RemoteFile>, BulkError> {
        let what = "ODC bulk files: /api/v1/files";
        let r = self.api(format!("{}/api/v1/files", self.base_url), what).await?;
        if r.status != 200 {
            return Err(self.unexpected(what, &r));
        }
        let v = self.json(what, &r)?;
        let files = v
            .get("files")
            .and_then(Value::as_object)
            .ok_or_else(|| BulkError::Protocol(format!("{what}: expected {{\"files\":{{…}}}}, got {}", r.snippet())))?;
        let prefix = format!("{}-", self.kind.as_str());
        let mut out = Vec::new();
        for (name, info) in files {
            let Some(month) = name
                .strip_prefix(&prefix)
                .and_then(|rest| rest.strip_suffix(".zip"))
                .filter(|ym| ym.len() == 7)
                .and_then(|ym| ym.parse::<Month>().ok())
            else {
                continue;
            };
            let size = info.get("size").and_then(Value::as_u64).unwrap_or(0);
            out.push(RemoteFile { name: name.clone(), size, last_updated: None, month: Some(month) });
        }
        out.sort_by_key(|f| f.month);
        Ok(out)
    }

    /// The pre-signed URL of one download: the `Location` of the API's redirect.
    async fn redirect(&self, f: &RemoteFile) -> Result<String, BulkError> {
        let what = format!("{}: asking for the download", f.name);
        let r = self.api(self.file_url(f), &what).await?;
        if !matches!(r.status, 301 | 302 | 303 | 307 | 308) {
            return Err(match r.status {
                200 => BulkError::Protocol(format!("{what}: expected a redirect to the file, got HTTP 200")),
                _ => self.unexpected(&what, &r),
            });
        }
        let location = r
            .header("location")
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .ok_or_else(|| BulkError::Protocol(format!("{what}: HTTP {} without a Location", r.status)))?;
        Ok(if location.starts_with('/') { format!("{}{location}", self.base_url) } else { location.to_string() })
    }
}

/// What a storage service said in its XML error, e.g. S3's
/// `<Code>AccessDenied</Code><Message>Request has expired</Message>`.
fn storage_error(body: &str) -> String {
    let tag = |t: &str| {
        let open = format!("<{t}>");
        let start = body.find(&open)? + open.len();
        let end = body[start..].find(&format!("</{t}>"))? + start;
        Some(body[start..end].to_string())
    };
    match (tag("Code"), tag("Message")) {
        (Some(c), Some(m)) => format!("{c}: {m}"),
        (Some(c), None) => c,
        _ => body.split_whitespace().collect::<Vec<_>>().join(" ").chars().take(200).collect(),
    }
}

impl<T: Transport, G: StreamGet> Remote for HttpRemote<T, G> {
    type Body = G::Body;

    async fn files(&self) -> Result<Vec<RemoteFile>, BulkError> {
        match self.source {
            Source::Gepbd => self.gepbd_files().await,
            Source::Odc => self.odc_files().await,
        }
    }

    async fn open(&self, f: &RemoteFile) -> Result<G::Body, BulkError> {
        let mut last = String::new();
        let mut expired = false;
        for attempt in 1..=DOWNLOAD_ATTEMPTS {
            if attempt > 1 {
                self.client.transport().sleep(std::time::Duration::from_millis(500 * attempt as u64)).await;
            }
            let url = self.redirect(f).await?;
            let shown = redact_url(&url);
            match self.getter.get(&url).await {
                Ok(s) if s.status == 200 => return Ok(s.body),
                Ok(mut s) => {
                    let mut text = Vec::new();
                    let _ = (&mut s.body).take(4096).read_to_end(&mut text);
                    let said = storage_error(&String::from_utf8_lossy(&text));
                    expired = s.status == 403 && said.to_ascii_lowercase().contains("expired");
                    last = format!("GET {shown}: HTTP {}: {said}", s.status);
                    if !(expired || s.status == 429 || s.status >= 500) {
                        return Err(BulkError::Unavailable(format!(
                            "{}: the download was refused ({last}); the pre-signed URL's host must be in \
                             allowed_outbound_hosts and reachable",
                            f.name
                        )));
                    }
                }
                Err(e) => last = format!("GET {shown}: {e}"),
            }
        }
        if expired {
            return Err(BulkError::Unavailable(format!(
                "{}: the download URL expired before the download started ({last}); the service's URLs live 30 \
                 seconds: check the clock and the connection, then run again (each run asks for a fresh URL)",
                f.name
            )));
        }
        Err(BulkError::Unavailable(format!(
            "{}: the download could not be started after {DOWNLOAD_ATTEMPTS} attempts ({last}); run again later",
            f.name
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_errors_are_read() {
        let s3 = "<?xml version=\"1.0\"?>\n<Error><Code>AccessDenied</Code><Message>Request has expired</Message><X-Amz-Expires>30</X-Amz-Expires></Error>";
        assert_eq!(storage_error(s3), "AccessDenied: Request has expired");
        assert_eq!(storage_error("plain\n text"), "plain text");
        assert_eq!(base_url("http://h:1/api/v1/").unwrap(), "http://h:1");
        assert!(base_url("h:1").is_err());
        assert!(format!("{:?}", Authorization::bearer("s3cret")).contains("redacted"));
    }
}
