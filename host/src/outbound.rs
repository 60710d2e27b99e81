//! Every outgoing request a component makes passes through here: it goes
//! out only if the destination is in the instance's allow-list (Spin's
//! `allowed_outbound_hosts`), and plain http only to loopback or the cloud
//! metadata server, so a component cannot reach anything it was not given
//! nor send a credential in clear over the network.

use anyhow::{Result, bail};
use http::Uri;
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody, WasiHttpHooks};

#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    scheme: String,
    host: String,
    port: Option<u16>,
}

/// Destinations an instance may reach, in Spin's notation:
/// `https://host`, `http://127.0.0.1:*`, `https://*.googleapis.com`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowList {
    entries: Vec<Entry>,
}

fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    }
}

impl AllowList {
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<Self> {
        let mut out = Vec::new();
        for raw in entries {
            let raw = raw.as_ref().trim();
            if raw.is_empty() {
                continue;
            }
            let Some((scheme, rest)) = raw.split_once("://") else {
                bail!("allowed outbound host '{raw}' has no scheme: write it as https://host[:port]");
            };
            let rest = rest.trim_end_matches('/');
            if rest.contains('/') {
                bail!("allowed outbound host '{raw}' has a path: give only scheme, host and port");
            }
            let (host, port) = match rest.rsplit_once(':') {
                Some((h, "*")) => (h, None),
                Some((h, p)) if !h.ends_with(']') || rest.starts_with('[') => match p.parse::<u16>() {
                    Ok(p) => (h, Some(p)),
                    Err(_) => bail!("allowed outbound host '{raw}' has a bad port '{p}'"),
                },
                _ => (rest, default_port(scheme)),
            };
            if host.is_empty() {
                bail!("allowed outbound host '{raw}' has no host");
            }
            out.push(Entry { scheme: scheme.to_ascii_lowercase(), host: host.to_ascii_lowercase(), port });
        }
        Ok(Self { entries: out })
    }

    pub fn allows(&self, uri: &Uri) -> bool {
        let scheme = uri.scheme_str().unwrap_or("https").to_ascii_lowercase();
        let Some(host) = uri.host().map(str::to_ascii_lowercase) else { return false };
        let port = uri.port_u16().or_else(|| default_port(&scheme));
        self.entries.iter().any(|e| {
            (e.scheme == "*" || e.scheme == scheme)
                && (e.host == "*"
                    || e.host == host
                    || e.host.strip_prefix("*.").is_some_and(|d| host.ends_with(&format!(".{d}"))))
                && (e.port.is_none() || e.port == port)
        })
    }
}

/// Plain http is allowed only where nothing crosses a network: loopback,
/// and the cloud metadata server (which speaks only http, on a link-local
/// address).
pub fn cleartext_allowed(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host.eq_ignore_ascii_case("metadata.google.internal")
        || host == "169.254.169.254"
        || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// The wasi-http hooks of one instance.
pub struct Outbound {
    allow: AllowList,
}

impl Outbound {
    pub fn new(allow: AllowList) -> Self {
        Self { allow }
    }

    fn check(&self, uri: &Uri) -> Result<(), String> {
        let shown = format!("{}://{}", uri.scheme_str().unwrap_or("?"), uri.authority().map(|a| a.as_str()).unwrap_or("?"));
        if !self.allow.allows(uri) {
            return Err(format!("{shown} is not in allowed_outbound_hosts"));
        }
        if uri.scheme_str() == Some("http") && !cleartext_allowed(uri.host().unwrap_or("")) {
            return Err(format!("{shown} uses plain http to a non-loopback host; use https"));
        }
        Ok(())
    }
}

type SendFuture = Box<
    dyn std::future::Future<
            Output = Result<(http::Response<WasiBody>, Box<dyn std::future::Future<Output = Result<(), HttpError>> + Send>), HttpError>,
        > + Send,
>;

impl WasiHttpHooks for Outbound {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: Box<dyn std::future::Future<Output = Result<(), HttpError>> + Send>,
    ) -> SendFuture {
        _ = fut;
        if let Err(why) = self.check(request.uri()) {
            eprintln!("dame: refused an outgoing request: {why}");
            return Box::new(async { Err(HttpError::HttpRequestDenied) });
        }
        Box::new(async move {
            use http_body_util::BodyExt;
            let (res, io) = wasmtime_wasi_http::default_send_request(request, options).await?;
            Ok((res.map(BodyExt::boxed_unsync), Box::new(io) as Box<dyn std::future::Future<Output = _> + Send>))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uri(s: &str) -> Uri {
        s.parse().unwrap()
    }

    #[test]
    fn spin_notation_is_understood() {
        let a = AllowList::parse(&["https://api.example.org", "http://127.0.0.1:*", "https://*.googleapis.com"]).unwrap();
        assert!(a.allows(&uri("https://api.example.org/api/x")));
        assert!(!a.allows(&uri("https://api.example.org:8443/api/x")));
        assert!(!a.allows(&uri("http://api.example.org/api/x")));
        assert!(a.allows(&uri("http://127.0.0.1:4567/x")));
        assert!(a.allows(&uri("https://storage.googleapis.com/b")));
        assert!(!a.allows(&uri("https://googleapis.com.evil.org/b")));
        assert!(!a.allows(&uri("https://evil.org/")));
        assert!(AllowList::default().entries.is_empty());
        assert!(!AllowList::default().allows(&uri("https://api.example.org/")));
    }

    #[test]
    fn bad_entries_are_named() {
        for bad in ["api.example.org", "https://h/path", "https://h:port"] {
            let e = AllowList::parse(&[bad]).unwrap_err().to_string();
            assert!(e.contains(bad), "{e}");
        }
    }

    #[test]
    fn cleartext_only_to_loopback() {
        let o = Outbound::new(AllowList::parse(&["*://*:*"]).unwrap());
        assert!(o.check(&uri("http://127.0.0.1:80/x")).is_ok());
        assert!(o.check(&uri("http://[::1]:80/x")).is_ok());
        assert!(o.check(&uri("http://metadata.google.internal/computeMetadata")).is_ok());
        assert!(o.check(&uri("http://example.org/x")).unwrap_err().contains("https"));
        assert!(o.check(&uri("https://example.org/x")).is_ok());
    }
}
