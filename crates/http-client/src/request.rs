use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
    Put,
    Patch,
    Delete,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
        }
    }
}

/// A request as the caller builds it. Headers may carry credentials, so
/// `Debug` prints their names only and errors never include them.
#[derive(Clone)]
pub struct Request {
    pub method: Method,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl fmt::Debug for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Request")
            .field("method", &self.method)
            .field("url", &redact_url(&self.url))
            .field("headers", &self.headers.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>())
            .field("body_len", &self.body.len())
            .finish()
    }
}

impl Request {
    pub fn new(method: Method, url: impl Into<String>) -> Self {
        Self { method, url: url.into(), headers: Vec::new(), body: Vec::new() }
    }

    pub fn get(url: impl Into<String>) -> Self {
        Self::new(Method::Get, url)
    }

    pub fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_string(), value.into()));
        self
    }

    pub fn body(mut self, body: Vec<u8>) -> Self {
        self.body = body;
        self
    }
}

#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// The first header of that name, case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The start of the body as text, for error messages: servers explain
    /// themselves there, and a bounded snippet cannot flood a log.
    pub fn snippet(&self) -> String {
        let text = String::from_utf8_lossy(&self.body[..self.body.len().min(300)]);
        text.split_whitespace().collect::<Vec<_>>().join(" ")
    }
}

/// A failure below HTTP: the request got no complete response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    /// Connection refused, reset, DNS failure, timeout: worth retrying.
    #[error("{0}")]
    Connection(String),
    /// The body was larger than the caller allows.
    #[error("response body exceeds {limit} bytes")]
    TooLarge { limit: usize },
    /// The request could not be built or was refused by the host (e.g. a
    /// destination outside the allow-list): retrying cannot help.
    #[error("{0}")]
    Refused(String),
}

/// The URL without its query string's values, for messages: query strings
/// can carry signatures (pre-signed bulk URLs) and none of it is needed to
/// tell which request failed.
pub fn redact_url(url: &str) -> String {
    match url.split_once('?') {
        None => url.to_string(),
        Some((base, query)) => {
            let names: Vec<&str> = query.split('&').map(|kv| kv.split('=').next().unwrap_or("")).collect();
            let safe = names
                .iter()
                .all(|n| !n.to_ascii_lowercase().contains("sig") && !n.to_ascii_lowercase().contains("token"));
            if safe { url.to_string() } else { format!("{base}?{}", names.join("&")) }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_header_values() {
        let r = Request::get("http://x/api?a=1").header("Authorization", "Bearer secret-token");
        let shown = format!("{r:?}");
        assert!(shown.contains("Authorization") && !shown.contains("secret-token"), "{shown}");
    }

    #[test]
    fn signed_urls_lose_their_values() {
        assert_eq!(redact_url("https://s3/x.zip?X-Amz-Signature=abc&X-Amz-Date=1"), "https://s3/x.zip?X-Amz-Signature&X-Amz-Date");
        assert_eq!(redact_url("http://h/api/certificate?certificate_number=1"), "http://h/api/certificate?certificate_number=1");
    }
}
