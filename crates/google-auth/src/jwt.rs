use crate::AuthError;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rsa::RsaPrivateKey;
use rsa::pkcs1v15::SigningKey;
use rsa::pkcs8::DecodePrivateKey;
use rsa::signature::{SignatureEncoding, Signer};
use sha2::Sha256;

/// A service-account key file, parsed. Its `Debug` names the account only.
pub struct ServiceAccountKey {
    client_email: String,
    private_key_id: Option<String>,
    token_uri: String,
    key: RsaPrivateKey,
}

impl std::fmt::Debug for ServiceAccountKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceAccountKey").field("client_email", &self.client_email).finish_non_exhaustive()
    }
}

#[derive(serde::Deserialize)]
struct KeyFile {
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    client_email: String,
    #[serde(default)]
    private_key_id: Option<String>,
    #[serde(default)]
    private_key: String,
    #[serde(default)]
    token_uri: Option<String>,
}

/// Where Google's key files send token requests when they do not say.
const DEFAULT_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";

impl ServiceAccountKey {
    /// Parses a key file's content. Errors say what is wrong with the file
    /// without quoting it.
    pub fn from_json(json: &str) -> Result<Self, AuthError> {
        let bad = |why: String| {
            AuthError::Invalid(format!(
                "the service-account key (GOOGLE_APPLICATION_CREDENTIALS) cannot be used: {why}; \
                 download a new JSON key for the service account"
            ))
        };
        // serde_json's messages give positions, never content.
        let file: KeyFile = serde_json::from_str(json).map_err(|e| bad(format!("not JSON ({e})")))?;
        if file.kind != "service_account" {
            return Err(bad(format!(
                "its type is {:?}, not \"service_account\" (user credentials from `gcloud auth application-default login` \
                 are not supported: pass a token in google_oauth_access_token instead)",
                file.kind
            )));
        }
        if file.client_email.is_empty() {
            return Err(bad("it has no client_email".into()));
        }
        let key = RsaPrivateKey::from_pkcs8_pem(&file.private_key)
            .map_err(|_| bad("its private_key is not a PKCS#8 PEM RSA key".into()))?;
        Ok(Self {
            client_email: file.client_email,
            private_key_id: file.private_key_id.filter(|s| !s.is_empty()),
            token_uri: file.token_uri.filter(|s| !s.is_empty()).unwrap_or_else(|| DEFAULT_TOKEN_URI.into()),
            key,
        })
    }

    pub fn client_email(&self) -> &str {
        &self.client_email
    }

    pub fn token_uri(&self) -> &str {
        &self.token_uri
    }

    /// The JWT bearer assertion of RFC 7523 that Google's token endpoint
    /// takes: issued by the account, for `scope`, addressed to the token
    /// endpoint, valid for an hour from `now` (Unix seconds), signed RS256.
    pub fn signed_jwt(&self, scope: &str, now: u64) -> Result<String, AuthError> {
        let mut header = serde_json::json!({"alg": "RS256", "typ": "JWT"});
        if let Some(kid) = &self.private_key_id {
            header["kid"] = kid.as_str().into();
        }
        let claims = serde_json::json!({
            "iss": self.client_email,
            "scope": scope,
            "aud": self.token_uri,
            "iat": now,
            "exp": now + 3600,
        });
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signer = SigningKey::<Sha256>::new(self.key.clone());
        let signature = signer
            .try_sign(signing_input.as_bytes())
            .map_err(|_| AuthError::Invalid(format!("signing a token request for {} failed", self.client_email)))?;
        Ok(format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature.to_bytes())))
    }
}
