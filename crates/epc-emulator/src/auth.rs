//! The two APIs' authentication, as route layers.
//!
//! GEPBD takes `Authorization: Bearer <token>` and answers 403 with its
//! `UNAUTHORISED` body when the token is missing or wrong. ODC takes HTTP
//! Basic (`email:api-key`) and answers 401. When the emulator is not given
//! credentials it accepts any well-formed ones, so a client can be run against
//! it without secrets while a missing header is still refused as the real
//! services refuse it.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde_json::json;

use crate::Emulator;

/// GEPBD's answer to a missing or unknown token.
pub fn gepbd_forbidden() -> Response {
    (
        StatusCode::FORBIDDEN,
        axum::Json(
            json!({"errors": [{"code": "UNAUTHORISED", "title": "You are not authenticated"}]}),
        ),
    )
        .into_response()
}

fn credentials<'a>(headers: &'a HeaderMap, scheme: &str) -> Option<&'a str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (s, rest) = value.split_once(' ')?;
    s.eq_ignore_ascii_case(scheme).then(|| rest.trim())
}

/// Layer for the GEPBD routes.
pub async fn bearer(State(emu): State<Arc<Emulator>>, request: Request, next: Next) -> Response {
    let ok = match credentials(request.headers(), "Bearer") {
        Some(token) if !token.is_empty() => emu.token.as_deref().is_none_or(|t| t == token),
        _ => false,
    };
    if ok {
        next.run(request).await
    } else {
        gepbd_forbidden()
    }
}

/// Layer for the authenticated ODC routes.
pub async fn basic(State(emu): State<Arc<Emulator>>, request: Request, next: Next) -> Response {
    let decoded = credentials(request.headers(), "Basic")
        .and_then(|b64| base64::engine::general_purpose::STANDARD.decode(b64).ok())
        .and_then(|bytes| String::from_utf8(bytes).ok());
    let ok = match decoded.as_deref().and_then(|s| s.split_once(':')) {
        Some((email, key)) if !email.is_empty() || !key.is_empty() => {
            emu.odc_email.as_deref().is_none_or(|e| e == email)
                && emu.odc_api_key.as_deref().is_none_or(|k| k == key)
        }
        _ => false,
    };
    if ok {
        next.run(request).await
    } else {
        (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Basic realm=\"EPC open data\"")],
            "Unauthorized",
        )
            .into_response()
    }
}
