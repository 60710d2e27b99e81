//! Google authentication against local stand-ins of a token endpoint, a
//! metadata server and an API, over real sockets.

mod support;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use google_auth::{Auth, AuthError, SCOPE, ServiceAccountKey};
use http_client::native::{NativeTransport, block_on};
use http_client::{Client, Request};
use rsa::pkcs1v15::{Signature, VerifyingKey};
use rsa::pkcs8::DecodePublicKey;
use rsa::signature::Verifier;
use sha2::Sha256;
use support::StandIn;

const KEY_FILE: &str = include_str!("fixtures/test-only-service-account.json");
const PUBLIC_KEY: &str = include_str!("fixtures/test-only-public.pem");

fn key_json_with_token_uri(uri: &str) -> String {
    let mut v: serde_json::Value = serde_json::from_str(KEY_FILE).unwrap();
    v["token_uri"] = uri.into();
    v.to_string()
}

fn client() -> Client<NativeTransport> {
    Client::new(NativeTransport::default())
}

fn token_server(expires_in: u64) -> StandIn {
    StandIn::start(move |_, n| (200, format!(r#"{{"access_token":"ya29.token-{n}","expires_in":{expires_in},"token_type":"Bearer"}}"#)))
}

#[test]
fn the_jwt_verifies_against_the_keys_public_half() {
    let key = ServiceAccountKey::from_json(KEY_FILE).unwrap();
    let jwt = key.signed_jwt(SCOPE, 1_700_000_000).unwrap();
    let parts: Vec<&str> = jwt.split('.').collect();
    assert_eq!(parts.len(), 3);

    let public = rsa::RsaPublicKey::from_public_key_pem(PUBLIC_KEY).unwrap();
    let signature = Signature::try_from(URL_SAFE_NO_PAD.decode(parts[2]).unwrap().as_slice()).unwrap();
    VerifyingKey::<Sha256>::new(public)
        .verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &signature)
        .expect("RS256 signature verifies");

    let header: serde_json::Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
    assert_eq!(header["alg"], "RS256");
    assert_eq!(header["kid"], "0000test0only0key0000");
    let claims: serde_json::Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    assert_eq!(claims["iss"], key.client_email());
    assert_eq!(claims["aud"], "https://oauth2.googleapis.com/token");
    assert_eq!(claims["scope"], SCOPE);
    assert_eq!(claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(), 3600);
}

#[test]
fn the_key_is_exchanged_once_and_the_token_cached() {
    let server = token_server(3600);
    let auth = Auth::from_settings(None, Some(key_json_with_token_uri(&format!("{}/token", server.url)))).unwrap();
    let c = client();
    let first = block_on(auth.authorization(&c)).unwrap().unwrap();
    let second = block_on(auth.authorization(&c)).unwrap().unwrap();
    assert_eq!(first.expose(), "Bearer ya29.token-0");
    assert_eq!(second, first, "served from the cache");

    let seen = server.requests();
    assert_eq!(seen.len(), 1, "one exchange for two requests");
    assert_eq!((seen[0].method.as_str(), seen[0].path.as_str()), ("POST", "/token"));
    assert_eq!(seen[0].header("content-type"), Some("application/x-www-form-urlencoded"));
    assert!(seen[0].body.starts_with("grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion=ey"));
}

#[test]
fn a_token_within_a_minute_of_expiry_is_not_reused() {
    let server = token_server(45);
    let auth = Auth::from_settings(None, Some(key_json_with_token_uri(&server.url))).unwrap();
    let c = client();
    let a = block_on(auth.authorization(&c)).unwrap().unwrap();
    let b = block_on(auth.authorization(&c)).unwrap().unwrap();
    assert_ne!(a, b);
    assert_eq!(server.requests().len(), 2);
}

#[test]
fn an_explicit_token_comes_first() {
    let server = token_server(3600);
    let metadata = token_server(3600);
    let auth = Auth::from_settings(Some("ya29.explicit".into()), Some(key_json_with_token_uri(&server.url)))
        .unwrap()
        .with_metadata_url(&metadata.url);
    assert_eq!(block_on(auth.authorization(&client())).unwrap().unwrap().expose(), "Bearer ya29.explicit");
    assert!(server.requests().is_empty() && metadata.requests().is_empty());
}

#[test]
fn a_key_comes_before_the_metadata_server() {
    let server = token_server(3600);
    let metadata = token_server(3600);
    let auth = Auth::from_settings(Some("  ".into()), Some(key_json_with_token_uri(&server.url)))
        .unwrap()
        .with_metadata_url(&metadata.url);
    block_on(auth.authorization(&client())).unwrap();
    assert_eq!(server.requests().len(), 1);
    assert!(metadata.requests().is_empty());
}

#[test]
fn with_nothing_configured_the_metadata_server_is_asked() {
    let metadata = token_server(3600);
    let auth = Auth::from_settings(None, None).unwrap().with_metadata_url(format!("{}/computeMetadata/v1/token", metadata.url));
    let header = block_on(auth.authorization(&client())).unwrap().unwrap();
    assert_eq!(header.expose(), "Bearer ya29.token-0");
    let seen = metadata.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].header("metadata-flavor"), Some("Google"));
}

#[test]
fn no_metadata_server_means_a_clear_error_quickly() {
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let auth = Auth::from_settings(None, None).unwrap().with_metadata_url(format!("http://127.0.0.1:{port}/token"));
    let started = std::time::Instant::now();
    let err = block_on(auth.authorization(&client())).unwrap_err();
    assert!(started.elapsed().as_secs() < 5);
    assert!(matches!(&err, AuthError::Unavailable(m) if m.contains("GOOGLE_APPLICATION_CREDENTIALS")), "{err}");
}

#[test]
fn emulators_get_no_credentials() {
    assert!(block_on(Auth::none().authorization(&client())).unwrap().is_none());
}

#[test]
fn a_401_fetches_a_fresh_token_once() {
    let tokens = token_server(3600);
    // The API refuses the first token and accepts the second.
    let api = StandIn::start(|req, _| match req.header("authorization") {
        Some("Bearer ya29.token-1") => (200, "{}".into()),
        _ => (401, r#"{"error":{"code":401}}"#.into()),
    });
    let auth = Auth::from_settings(None, Some(key_json_with_token_uri(&tokens.url))).unwrap();
    let c = client();
    let r = block_on(auth.send(&c, &Request::get(format!("{}/api", api.url)))).unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(tokens.requests().len(), 2);
    assert_eq!(api.requests().len(), 2);

    // An explicit token cannot be refreshed: the 401 is the caller's.
    let auth = Auth::from_settings(Some("ya29.stale".into()), None).unwrap();
    let r = block_on(auth.send(&c, &Request::get(format!("{}/api", api.url)))).unwrap();
    assert_eq!(r.status, 401);
    assert_eq!(api.requests().len(), 3);
}

#[test]
fn refusals_and_debug_output_carry_no_secrets() {
    let server = StandIn::start(|_, _| (400, r#"{"error":"invalid_grant","error_description":"Invalid JWT Signature."}"#.into()));
    let json = key_json_with_token_uri(&server.url);
    let auth = Auth::from_settings(None, Some(json.clone())).unwrap();
    let err = block_on(auth.authorization(&client())).unwrap_err().to_string();
    assert!(err.contains("invalid_grant") && err.contains("test-only-not-a-real-account"), "{err}");
    let assertion = server.requests()[0].body.clone();
    let key_body = "MII"; // every PKCS#8 RSA key's base64 starts so
    for shown in [err, format!("{auth:?}"), format!("{:?}", ServiceAccountKey::from_json(&json).unwrap())] {
        assert!(!shown.contains(key_body) && !shown.contains(&assertion[40..80]), "{shown}");
    }

    let auth = Auth::from_settings(Some("ya29.secret-value".into()), None).unwrap();
    let header = block_on(auth.authorization(&client())).unwrap().unwrap();
    assert_eq!(format!("{header:?} {header} {auth:?}").matches("secret-value").count(), 0);

    let broken = KEY_FILE.replace("MII", "XXX");
    let err = ServiceAccountKey::from_json(&broken).unwrap_err().to_string();
    assert!(err.contains("PKCS#8") && !err.contains("XXX"), "{err}");
}

#[test]
fn secrets_are_read_from_secret_manager_with_the_token() {
    let api = StandIn::start(|seen, _| {
        if seen.path == "/v1/projects/p-123456/secrets/epc-token/versions/latest:access" {
            (200, r#"{"name":"projects/p-123456/secrets/epc-token/versions/1","payload":{"data":"dG9rLWZyb20tc20K"}}"#.into())
        } else {
            (403, r#"{"error":{"code":403,"status":"PERMISSION_DENIED"}}"#.into())
        }
    });
    let auth = Auth::from_settings(Some("ya29.explicit".into()), None).unwrap();
    let name = "projects/p-123456/secrets/epc-token/versions/latest";
    let secret = block_on(google_auth::access_secret(&client(), &auth, name, Some(&api.url))).unwrap();
    assert_eq!(secret.expose(), "tok-from-sm");
    assert_eq!(api.seen.lock().unwrap()[0].header("authorization"), Some("Bearer ya29.explicit"));
    let denied = block_on(google_auth::access_secret(&client(), &auth, "projects/p-123456/secrets/other/versions/latest", Some(&api.url)))
        .unwrap_err()
        .to_string();
    assert!(denied.contains("secretmanager.secretAccessor") && !denied.contains("ya29"), "{denied}");
    let before = api.seen.lock().unwrap().len();
    assert!(block_on(google_auth::access_secret(&client(), &auth, "epc-token", Some(&api.url))).is_err());
    assert_eq!(api.seen.lock().unwrap().len(), before, "a bad name sent a request");
}
