use http_client::Response;
use serde_json::Value;

/// Why a page could not be read, sorted by whose move it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SourceError {
    #[error("{0}")]
    InvalidInput(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    Protocol(String),
}

impl From<http_client::Error> for SourceError {
    fn from(e: http_client::Error) -> Self {
        match e {
            http_client::Error::Unavailable { .. } => SourceError::Unavailable(format!(
                "{e}; the API is unreachable or overloaded: check --api-url and try again later"
            )),
            http_client::Error::Refused { .. } => SourceError::Protocol(e.to_string()),
        }
    }
}

/// The message an EPC API put in an error body. Both shapes are in use
/// (`{"error": "…"}` and `{"errors": [{"code", "title"}]}`), sometimes
/// wrapped in `{"data": …}`.
pub(crate) fn api_message(response: &Response) -> String {
    let Ok(v) = serde_json::from_slice::<Value>(&response.body) else {
        return response.snippet();
    };
    let v = v.get("data").filter(|d| d.is_object()).unwrap_or(&v);
    if let Some(s) = v.get("error").and_then(Value::as_str) {
        return s.to_string();
    }
    if let Some(list) = v.get("errors").and_then(Value::as_array) {
        let parts: Vec<String> = list
            .iter()
            .map(|e| {
                let code = e.get("code").and_then(Value::as_str).unwrap_or("");
                match e.get("title").and_then(Value::as_str) {
                    Some(t) => format!("{code}: {t}"),
                    None => code.to_string(),
                }
            })
            .collect();
        return parts.join("; ");
    }
    response.snippet()
}

/// The error for a status the caller did not expect.
pub(crate) fn unexpected(what: &str, response: &Response) -> SourceError {
    let msg = api_message(response);
    match response.status {
        401 | 403 => SourceError::Unauthorized(format!(
            "{what}: the API refused the credentials (HTTP {}: {msg}); check EPC_TOKEN, or EPC_EMAIL and EPC_API_KEY",
            response.status
        )),
        400 => SourceError::InvalidInput(format!("{what}: the API rejected the request (HTTP 400: {msg})")),
        s => SourceError::Protocol(format!("{what}: unexpected HTTP {s} ({msg})")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resp(status: u16, body: &str) -> Response {
        Response { status, headers: vec![], body: body.as_bytes().to_vec() }
    }

    #[test]
    fn reads_both_error_shapes() {
        assert_eq!(api_message(&resp(400, r#"{"error":"bad date"}"#)), "bad date");
        assert_eq!(api_message(&resp(400, r#"{"data":{"error":"wrapped"}}"#)), "wrapped");
        assert_eq!(
            api_message(&resp(403, r#"{"errors":[{"code":"UNAUTHORISED","title":"You are not authenticated"}]}"#)),
            "UNAUTHORISED: You are not authenticated"
        );
        assert!(matches!(unexpected("search", &resp(403, "{}")), SourceError::Unauthorized(_)));
    }
}
