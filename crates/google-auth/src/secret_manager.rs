//! Secrets from Google Secret Manager, read over REST with the same token
//! as the other Google APIs: how production gives the pipeline its EPC
//! credentials without putting them in variables or files.

use crate::{Auth, AuthError, Secret, SendError};
use base64::Engine;
use http_client::{Client, Request, Transport};

/// Secret Manager's API.
pub const SECRET_MANAGER_URL: &str = "https://secretmanager.googleapis.com";

/// Checks `projects/P/secrets/NAME/versions/V` before any request: the
/// name goes into a URL path.
pub fn check_secret_name(name: &str) -> Result<(), AuthError> {
    let parts: Vec<&str> = name.split('/').collect();
    let seg = |s: &str, max: usize| !s.is_empty() && s.len() <= max && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    let ok = parts.len() == 6
        && parts[0] == "projects"
        && seg(parts[1], 30)
        && parts[2] == "secrets"
        && seg(parts[3], 255)
        && parts[4] == "versions"
        && (parts[5] == "latest" || (!parts[5].is_empty() && parts[5].chars().all(|c| c.is_ascii_digit())));
    if ok {
        Ok(())
    } else {
        Err(AuthError::Invalid(format!(
            "secret '{name}' is not a Secret Manager version name: write projects/PROJECT/secrets/NAME/versions/latest"
        )))
    }
}

/// Reads a secret version's payload. `base_url` overrides the API's URL
/// (a local stand-in in tests).
pub async fn access_secret<T: Transport>(
    client: &Client<T>,
    auth: &Auth,
    name: &str,
    base_url: Option<&str>,
) -> Result<Secret, AuthError> {
    check_secret_name(name)?;
    let base = base_url.unwrap_or(SECRET_MANAGER_URL).trim_end_matches('/');
    let request = Request::get(format!("{base}/v1/{name}:access")).header("Accept", "application/json");
    let response = auth.send(client, &request).await.map_err(|e| match e {
        SendError::Auth(a) => a,
        SendError::Http(h) => AuthError::Unavailable(format!("reading secret {name}: {h}")),
    })?;
    match response.status {
        200 => {}
        403 => {
            return Err(AuthError::Refused(format!(
                "reading secret {name}: permission denied; grant {} roles/secretmanager.secretAccessor on it",
                auth.describe()
            )));
        }
        404 => return Err(AuthError::Invalid(format!("secret {name} does not exist (or has no such version)"))),
        s => return Err(AuthError::Unavailable(format!("reading secret {name}: HTTP {s}"))),
    }
    #[derive(serde::Deserialize)]
    struct Payload {
        data: String,
    }
    #[derive(serde::Deserialize)]
    struct Access {
        payload: Payload,
    }
    let access: Access = serde_json::from_slice(&response.body)
        .map_err(|e| AuthError::Invalid(format!("reading secret {name}: unexpected reply ({e})")))?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(access.payload.data.trim())
        .map_err(|_| AuthError::Invalid(format!("reading secret {name}: the payload is not base64")))?;
    let text = String::from_utf8(bytes).map_err(|_| AuthError::Invalid(format!("secret {name} is not UTF-8 text")))?;
    Ok(Secret::new(text.trim().to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        assert!(check_secret_name("projects/my-proj/secrets/epc-token/versions/latest").is_ok());
        assert!(check_secret_name("projects/123456/secrets/epc_token/versions/3").is_ok());
        for bad in ["epc-token", "projects/p/secrets/x", "projects/p/secrets/../versions/latest", "projects/p/secrets/x/versions/one"] {
            assert!(check_secret_name(bad).is_err(), "{bad}");
        }
    }
}
