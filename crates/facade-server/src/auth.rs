//! What is checked before a request reaches its route: the declared body size, and the
//! bearer token that guards `/v1`.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::{ApiError, AppState};

/// Lets a request through when no token is configured or it carries the right one.
pub(crate) async fn require_token(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    let Some(expected) = &state.config.token else {
        return next.run(request).await;
    };
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match given {
        Some(token) if same_secret(token.trim().as_bytes(), expected.as_bytes()) => {
            next.run(request).await
        }
        _ => {
            let error = ApiError::new(StatusCode::UNAUTHORIZED, "missing or wrong bearer token");
            let mut response = state.refuse(request, error).await.into_response();
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
            response
        }
    }
}

/// Answers 413 at once when the declared `Content-Length` is over the limit, instead of
/// reading up to the limit first (bodies without a declared length are cut at the limit by
/// the extractors).
pub(crate) async fn refuse_declared_oversize(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let limit = state.config.max_body_bytes as u64;
    match declared {
        Some(length) if length > limit => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the body is {length} bytes; the limit is {limit}"),
        )
        .into_response(),
        _ => next.run(request).await,
    }
}

/// Compares without stopping at the first difference, so that timing does not reveal how
/// much of a guess was right.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    let mut diff = (a.len() != b.len()) as u8;
    for i in 0..a.len().max(b.len()) {
        diff |= a.get(i).copied().unwrap_or(0) ^ b.get(i).copied().unwrap_or(0);
    }
    diff == 0
}

#[cfg(test)]
mod tests {
    #[test]
    fn secrets_compare_whole() {
        assert!(super::same_secret(b"abc", b"abc"));
        assert!(!super::same_secret(b"abc", b"abd"));
        assert!(!super::same_secret(b"abc", b"abcd"));
        assert!(!super::same_secret(b"", b"a"));
    }
}
