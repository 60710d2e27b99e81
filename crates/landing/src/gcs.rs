//! Google Cloud Storage as an object store, over the JSON API.
//!
//! Four calls, each one request (plus paging for lists):
//!
//! - create-if-absent: a multipart upload with `ifGenerationMatch=0`. GCS
//!   answers 412 when the object exists, atomically, so two runs can never
//!   both land a page. (Multipart rather than a media upload because
//!   fake-gcs-server, the stand-in the tests use, ignores the precondition on
//!   media uploads; GCS honours it on both, and multipart is one request
//!   too.)
//! - replace: the same upload without the precondition;
//! - read: `alt=media` download;
//! - list: `prefix` + `pageToken`, asking for names only;
//! - delete.
//!
//! Retries (429, 5xx, connection errors) come from the [`Client`]; a 401
//! fetches a fresh token once ([`Auth::send`]); 403 and a missing bucket
//! stop the run with what a person must grant or create.

use crate::store::{ObjectStore, StoreError, check_key};
use google_auth::{Auth, SendError};
use http_client::{Client, Method, Request, Response, Transport};
use std::sync::atomic::{AtomicBool, Ordering};

/// Where Cloud Storage is when no emulator is configured.
pub const GCS_BASE_URL: &str = "https://storage.googleapis.com";

/// The role the landing store's writer needs on its bucket.
const ROLE: &str = "roles/storage.objectAdmin";

/// `gs://BUCKET[/PREFIX]`, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GcsLocation {
    pub bucket: String,
    /// Empty, or ends in `/`.
    pub prefix: String,
}

impl GcsLocation {
    /// Parses `gs://BUCKET[/PREFIX]`. The bucket must follow Google's
    /// naming rules and the prefix the store's key rules, so neither can
    /// smuggle anything into a URL.
    pub fn parse(url: &str) -> Result<Self, StoreError> {
        let rest = url.strip_prefix("gs://").ok_or_else(|| {
            StoreError::Denied(format!("landing store {url:?} is not a gs://BUCKET[/PREFIX] URL"))
        })?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        epc_model::warehouse::check_bucket(bucket)
            .map_err(|e| StoreError::Denied(format!("landing store {url}: {e}")))?;
        let prefix = prefix.trim_matches('/');
        if !prefix.is_empty() {
            check_key(prefix).map_err(|_| {
                StoreError::Denied(format!(
                    "landing store {url}: the prefix may hold only letters, digits, '-', '_', '.' and '/'"
                ))
            })?;
        }
        let prefix = if prefix.is_empty() { String::new() } else { format!("{prefix}/") };
        Ok(Self { bucket: bucket.to_string(), prefix })
    }

    /// The `gs://` URI of a store key, as BigQuery load jobs name sources.
    pub fn uri(&self, key: &str) -> String {
        format!("gs://{}/{}{key}", self.bucket, self.prefix)
    }

    /// [`uri`](Self::uri) for a key from outside, checked by the store's
    /// key rules first.
    pub fn checked_uri(&self, key: &str) -> Result<String, StoreError> {
        check_key(key)?;
        Ok(self.uri(key))
    }
}

impl std::fmt::Display for GcsLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "gs://{}/{}", self.bucket, self.prefix)
    }
}

/// Percent-encodes everything but RFC 3986's unreserved characters, so an
/// object name (with its `/`) is one path segment or one query value.
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A bucket (and prefix) as an [`ObjectStore`].
pub struct GcsStore<T> {
    client: Client<T>,
    auth: Auth,
    base: String,
    location: GcsLocation,
    /// Set once the bucket is known to exist, so that a 404 on a read or
    /// delete means "no such object" without asking again.
    bucket_seen: AtomicBool,
    /// `maxResults` of list calls; GCS's default (1,000) when `None`.
    page_size: Option<u32>,
}

#[derive(serde::Deserialize)]
struct ListPage {
    #[serde(default)]
    items: Vec<ListItem>,
    #[serde(default, rename = "nextPageToken")]
    next_page_token: Option<String>,
}

#[derive(serde::Deserialize)]
struct ListItem {
    name: String,
}

impl<T: Transport> GcsStore<T> {
    /// A store for `url` (`gs://BUCKET[/PREFIX]`). `emulator` is the
    /// `STORAGE_EMULATOR_HOST` value (with or without `http://`); with it,
    /// requests go there and carry no credentials, whatever `auth` holds.
    pub fn new(url: &str, client: Client<T>, auth: Auth, emulator: Option<&str>) -> Result<Self, StoreError> {
        let location = GcsLocation::parse(url)?;
        let (base, auth) = match emulator.filter(|e| !e.trim().is_empty()) {
            Some(e) => (google_auth::emulator_url(e), Auth::none()),
            None => (GCS_BASE_URL.to_string(), auth),
        };
        Ok(Self { client, auth, base, location, bucket_seen: AtomicBool::new(false), page_size: None })
    }

    /// Lists in pages of `n` names (tests use it to exercise paging).
    pub fn with_page_size(mut self, n: u32) -> Self {
        self.page_size = Some(n);
        self
    }

    pub fn location(&self) -> &GcsLocation {
        &self.location
    }

    pub fn client(&self) -> &Client<T> {
        &self.client
    }

    fn object_name(&self, key: &str) -> Result<String, StoreError> {
        check_key(key)?;
        Ok(format!("{}{key}", self.location.prefix))
    }

    fn object_url(&self, name: &str) -> String {
        format!("{}/storage/v1/b/{}/o/{}", self.base, self.location.bucket, encode(name))
    }

    async fn send(&self, request: Request, what: &str) -> Result<Response, StoreError> {
        let response = self.auth.send(&self.client, &request).await.map_err(|e| match e {
            SendError::Auth(a) => StoreError::Denied(format!("{what}: {a}")),
            SendError::Http(h) => StoreError::Io(format!("{what}: {h}")),
        })?;
        if response.is_success() {
            self.bucket_seen.store(true, Ordering::Relaxed);
        }
        Ok(response)
    }

    /// The error for a response no caller expected.
    fn failure(&self, response: &Response, what: &str) -> StoreError {
        let bucket = &self.location.bucket;
        let said = google_message(response);
        match response.status {
            401 => StoreError::Denied(format!(
                "{what}: Cloud Storage refused the credentials ({}) even after a fresh token: {said}; \
                 check the key or token is current",
                self.auth.describe()
            )),
            403 => StoreError::Denied(format!(
                "{what}: permission denied for {}: grant it {ROLE} on bucket gs://{bucket} ({said})",
                self.auth.describe()
            )),
            404 => self.no_bucket(),
            s => StoreError::Io(format!("{what}: HTTP {s}: {said}")),
        }
    }

    fn no_bucket(&self) -> StoreError {
        StoreError::Denied(format!(
            "bucket gs://{} does not exist; create it (in the BigQuery dataset's region) or correct `landing`",
            self.location.bucket
        ))
    }

    /// A 404 on an object call: "no such object" when the bucket exists.
    /// GCS's message says which, but stand-ins say only "Not Found", so the
    /// bucket is checked once by listing it (which the role allows; getting
    /// bucket metadata would need more).
    async fn object_missing(&self, response: &Response, what: &str) -> Result<(), StoreError> {
        if self.bucket_seen.load(Ordering::Relaxed) {
            return Ok(());
        }
        if google_message(response).contains("bucket does not exist") {
            return Err(self.no_bucket());
        }
        let url = format!("{}/storage/v1/b/{}/o?maxResults=1&fields=nextPageToken", self.base, self.location.bucket);
        let check = self.send(Request::get(url), what).await?;
        match check.status {
            404 => Err(self.no_bucket()),
            _ if check.is_success() => Ok(()),
            _ => Err(self.failure(&check, what)),
        }
    }

    async fn upload(&self, key: &str, bytes: &[u8], content_type: &str, create_only: bool) -> Result<bool, StoreError> {
        let name = self.object_name(key)?;
        let what = format!("writing {}", self.location.uri(key));
        let mut url = format!("{}/upload/storage/v1/b/{}/o?uploadType=multipart", self.base, self.location.bucket);
        if create_only {
            url.push_str("&ifGenerationMatch=0");
        }
        let request = Request::new(Method::Post, url)
            .header("Content-Type", format!("multipart/related; boundary={BOUNDARY}"))
            .body(multipart(&name, content_type, bytes));
        let response = self.send(request, &what).await?;
        match response.status {
            s if (200..300).contains(&s) => Ok(true),
            412 if create_only => Ok(false),
            _ => Err(self.failure(&response, &what)),
        }
    }
}

/// Separates the metadata and media parts; cannot occur in the metadata
/// (JSON of a checked name) and is checked against the media.
const BOUNDARY: &str = "dame_epc_part_boundary_7f3a9c1e";

fn multipart(name: &str, content_type: &str, bytes: &[u8]) -> Vec<u8> {
    let metadata = serde_json::json!({"name": name, "contentType": content_type}).to_string();
    let mut body = Vec::with_capacity(bytes.len() + 400);
    body.extend_from_slice(
        format!(
            "--{BOUNDARY}\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n{metadata}\r\n--{BOUNDARY}\r\nContent-Type: {content_type}\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
    body
}

/// Google's own explanation from an error body (`error.message`), or the
/// start of the body.
fn google_message(response: &Response) -> String {
    serde_json::from_slice::<serde_json::Value>(&response.body)
        .ok()
        .and_then(|v| v["error"]["message"].as_str().map(str::to_string))
        .unwrap_or_else(|| response.snippet())
}

impl<T: Transport> ObjectStore for GcsStore<T> {
    async fn put_new(&self, key: &str, bytes: &[u8], content_type: &str) -> Result<bool, StoreError> {
        self.upload(key, bytes, content_type, true).await
    }

    async fn put(&self, key: &str, bytes: &[u8], content_type: &str) -> Result<(), StoreError> {
        self.upload(key, bytes, content_type, false).await.map(|_| ())
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let name = self.object_name(key)?;
        let what = format!("reading {}", self.location.uri(key));
        let response = self.send(Request::get(format!("{}?alt=media", self.object_url(&name))), &what).await?;
        match response.status {
            s if (200..300).contains(&s) => Ok(Some(response.body)),
            404 => self.object_missing(&response, &what).await.map(|()| None),
            _ => Err(self.failure(&response, &what)),
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let what = format!("listing {}", self.location.uri(prefix));
        let full = format!("{}{prefix}", self.location.prefix);
        let mut keys = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut url = format!(
                "{}/storage/v1/b/{}/o?prefix={}&fields=items(name),nextPageToken",
                self.base,
                self.location.bucket,
                encode(&full)
            );
            if let Some(n) = self.page_size {
                url.push_str(&format!("&maxResults={n}"));
            }
            if let Some(t) = &token {
                url.push_str(&format!("&pageToken={}", encode(t)));
            }
            let response = self.send(Request::get(url), &what).await?;
            if !response.is_success() {
                return Err(self.failure(&response, &what));
            }
            let page: ListPage = serde_json::from_slice(&response.body)
                .map_err(|e| StoreError::Io(format!("{what}: the listing is not what the JSON API returns ({e})")))?;
            keys.extend(page.items.into_iter().filter_map(|i| i.name.strip_prefix(&self.location.prefix).map(str::to_string)));
            match page.next_page_token.filter(|t| !t.is_empty()) {
                Some(t) => token = Some(t),
                None => break,
            }
        }
        keys.sort();
        Ok(keys)
    }

    async fn delete(&self, key: &str) -> Result<bool, StoreError> {
        let name = self.object_name(key)?;
        let what = format!("deleting {}", self.location.uri(key));
        let response = self.send(Request::new(Method::Delete, self.object_url(&name)), &what).await?;
        match response.status {
            s if (200..300).contains(&s) => Ok(true),
            404 => self.object_missing(&response, &what).await.map(|()| false),
            _ => Err(self.failure(&response, &what)),
        }
    }

    fn describe(&self) -> String {
        let p = self.location.prefix.trim_end_matches('/');
        if p.is_empty() { format!("gs://{}", self.location.bucket) } else { format!("gs://{}/{p}", self.location.bucket) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_run::run;
    use http_client::TransportError;

    /// Answers every request with one status.
    struct Always(u16);

    impl Transport for Always {
        async fn send(&self, _: &Request, _: usize) -> Result<Response, TransportError> {
            let body = br#"{"error":{"code":403,"message":"caller lacks storage.objects.create"}}"#.to_vec();
            Ok(Response { status: self.0, headers: vec![], body })
        }
        async fn sleep(&self, _: std::time::Duration) {}
        fn random(&self) -> u64 {
            0
        }
        fn now(&self) -> std::time::Duration {
            std::time::Duration::ZERO
        }
    }


    fn store(status: u16) -> GcsStore<Always> {
        GcsStore::new("gs://dame-landing/p", Client::new(Always(status)), Auth::none(), Some("localhost:1")).unwrap()
    }

    #[test]
    fn refusals_say_what_to_grant() {
        let err = run(store(403).put_new("raw/a.gz", b"x", "application/gzip")).unwrap_err().to_string();
        assert!(err.contains("roles/storage.objectAdmin") && err.contains("gs://dame-landing"), "{err}");
        assert!(err.contains("gs://dame-landing/p/raw/a.gz") && err.contains("storage.objects.create"), "{err}");
        let err = run(store(401).get("raw/a.gz")).unwrap_err().to_string();
        assert!(err.contains("refused the credentials"), "{err}");
    }

    #[test]
    fn locations_are_checked() {
        let l = GcsLocation::parse("gs://dame-landing/epc/v1/").unwrap();
        assert_eq!((l.bucket.as_str(), l.prefix.as_str()), ("dame-landing", "epc/v1/"));
        assert_eq!(l.uri("raw/x.gz"), "gs://dame-landing/epc/v1/raw/x.gz");
        assert_eq!(GcsLocation::parse("gs://dame-landing").unwrap().prefix, "");
        for bad in ["s3://x", "gs://Bad", "gs://ok-bucket/../x", "gs://ok-bucket/a b", "gs://goog-x"] {
            assert!(GcsLocation::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn names_become_one_segment() {
        assert_eq!(encode("raw/domestic/part-1.ndjson.gz"), "raw%2Fdomestic%2Fpart-1.ndjson.gz");
        assert_eq!(encode("a+b=c"), "a%2Bb%3Dc");
    }
}
