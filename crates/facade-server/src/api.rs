//! The routes other than scanning: health, the OpenAPI document, the page, networks,
//! accounts, thumbnails and reviews.

use std::sync::Arc;

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::Json;
use facade_store::{Decision, NewReview, Store, Subject};
use serde::Deserialize;

use crate::{ApiError, AppState};

const OPENAPI: &str = include_str!("openapi.json");
const REVIEW_PAGE: &str = include_str!("review.html");

/// The longest note a review may carry, in bytes.
const MAX_NOTE_CHARS: usize = 10_000;

pub(crate) async fn health() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok", "version": env!("CARGO_PKG_VERSION") }))
}

pub(crate) async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

pub(crate) async fn review_page() -> Html<&'static str> {
    Html(REVIEW_PAGE)
}

pub(crate) async fn not_found() -> ApiError {
    ApiError::not_found("no such route; see /openapi.json")
}

/// Runs a store call on a blocking thread (the store waits for the disk or the database server).
async fn with_store<T: Send + 'static>(
    state: &Arc<AppState>,
    call: impl FnOnce(&mut Store) -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    let state = state.clone();
    tokio::task::spawn_blocking(move || call(&mut state.lock_store()))
        .await
        .map_err(|e| ApiError::internal("a store task", e))?
}

#[derive(Deserialize)]
pub(crate) struct Listing {
    /// Everything, not only what is flagged.
    #[serde(default)]
    all: bool,
}

pub(crate) async fn list_networks(
    State(state): State<Arc<AppState>>,
    listing: Result<Query<Listing>, QueryRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let Query(listing) = listing?;
    let networks = with_store(&state, move |s| Ok(s.networks(listing.all)?)).await?;
    Ok(Json(serde_json::json!({ "networks": networks })))
}

pub(crate) async fn get_network(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let found = with_store(&state, move |s| {
        let Some(network) = s.network(&id)? else {
            return Err(ApiError::not_found(format!("no network {id:?}")));
        };
        let accounts = s.accounts_of_network(&id)?;
        let reviews = s.reviews(Some(&Subject::Network(id)))?;
        Ok(serde_json::json!({
            "network": network,
            "accounts": accounts,
            "reviews": reviews,
        }))
    })
    .await?;
    Ok(Json(found))
}

/// Accounts whose picture scored at least this are listed as flagged.
const FLAGGED_AI_SCORE: f64 = 0.5;

pub(crate) async fn list_accounts(
    State(state): State<Arc<AppState>>,
    listing: Result<Query<Listing>, QueryRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let Query(listing) = listing?;
    let accounts = with_store(&state, move |s| {
        Ok(s.accounts(listing.all, FLAGGED_AI_SCORE)?)
    })
    .await?;
    Ok(Json(serde_json::json!({ "accounts": accounts })))
}

pub(crate) async fn image_thumbnail(
    State(state): State<Arc<AppState>>,
    Path(sha256): Path<String>,
) -> Result<Response, ApiError> {
    // Checked before it reaches the store: the only key is a hash, never a path.
    let Ok(Subject::Image(sha256)) = format!("image:{sha256}").parse::<Subject>() else {
        return Err(ApiError::bad_request(
            "an image is named by the SHA-256 of its bytes: 64 lowercase hex digits",
        ));
    };
    let jpeg = with_store(&state, move |s| Ok(s.thumbnail(&sha256)?)).await?;
    match jpeg {
        Some(jpeg) => Ok((
            [
                (header::CONTENT_TYPE, "image/jpeg"),
                (header::CACHE_CONTROL, "private, max-age=86400"),
            ],
            jpeg,
        )
            .into_response()),
        None => Err(ApiError::not_found("no thumbnail for this image")),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReviewRequest {
    subject: String,
    decision: Decision,
    #[serde(default)]
    note: String,
    /// Who decided; the page asks for a name.
    #[serde(default)]
    reviewer: Option<String>,
}

pub(crate) async fn add_review(
    State(state): State<Arc<AppState>>,
    request: Result<Json<ReviewRequest>, JsonRejection>,
) -> Result<(StatusCode, Json<facade_store::Review>), ApiError> {
    let Json(request) = request?;
    let subject: Subject = request
        .subject
        .parse()
        .map_err(|e: facade_store::SubjectError| ApiError::bad_request(e.to_string()))?;
    // Counted in characters, as the document's maxLength counts them.
    if request.note.chars().count() > MAX_NOTE_CHARS {
        return Err(ApiError::bad_request(format!(
            "the note is longer than {MAX_NOTE_CHARS} characters"
        )));
    }
    let reviewer = request
        .reviewer
        .map(|r| {
            r.trim()
                .chars()
                .filter(|c| !c.is_control())
                .take(100)
                .collect()
        })
        .filter(|r: &String| !r.is_empty())
        .unwrap_or_else(|| "anonymous".to_owned());
    let review = NewReview {
        subject,
        decision: request.decision,
        note: request.note,
        reviewer,
    };
    let stored = with_store(&state, move |s| {
        // A network is reviewed by the id the store gave it; a typo should not pass silently.
        if let Subject::Network(id) = &review.subject {
            if s.network(id)?.is_none() {
                return Err(ApiError::not_found(format!("no network {id:?}")));
            }
        }
        Ok(s.add_review(&review)?)
    })
    .await?;
    Ok((StatusCode::CREATED, Json(stored)))
}

#[derive(Deserialize)]
pub(crate) struct ReviewFilter {
    subject: Option<String>,
}

pub(crate) async fn list_reviews(
    State(state): State<Arc<AppState>>,
    filter: Result<Query<ReviewFilter>, QueryRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let Query(filter) = filter?;
    let subject = match filter.subject {
        Some(text) => Some(
            text.parse::<Subject>()
                .map_err(|e| ApiError::bad_request(e.to_string()))?,
        ),
        None => None,
    };
    let reviews = with_store(&state, move |s| Ok(s.reviews(subject.as_ref())?)).await?;
    Ok(Json(serde_json::json!({ "reviews": reviews })))
}
