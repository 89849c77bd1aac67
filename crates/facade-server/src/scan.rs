//! `POST /v1/scan` and `POST /v1/scan/batch`: images in, scan records out.
//!
//! An upload is the raw body (any content type but multipart) or the multipart fields named
//! `image`. Each image is judged on the worker pool, or found in the store by its SHA-256 when
//! the same judge has seen the same bytes before.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRequest, Multipart, Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use facade_detect::record::Record;
use facade_image::sha256_hex;
use facade_store::{NewScan, THUMBNAIL_SIDE};
use tokio::sync::OwnedSemaphorePermit;

use crate::{ApiError, AppState};

/// The most images one batch request may carry.
pub const MAX_BATCH: usize = 256;

pub(crate) async fn scan_one(
    State(state): State<Arc<AppState>>,
    request: Request,
) -> Result<Response, ApiError> {
    let (_admitted, mut uploads) = admitted_uploads(request, &state, 1).await?;
    let (name, bytes) = uploads.pop().ok_or_else(no_image)?;
    let (record, cache) = judge_upload(&state, name, bytes).await?;
    // 200 whatever became of the image, as in a batch: the request was handled, and the
    // record's own status (`error` with the reason, for bytes that are not a readable image)
    // says what the image was.
    Ok((
        StatusCode::OK,
        [(CACHE_HEADER, cache.as_str())],
        Json(record),
    )
        .into_response())
}

pub(crate) async fn scan_batch(
    State(state): State<Arc<AppState>>,
    request: Request,
) -> Result<Json<serde_json::Value>, ApiError> {
    let (_admitted, uploads) = admitted_uploads(request, &state, MAX_BATCH).await?;
    // Every image of the batch queues for a worker; records come back in upload order.
    let mut tasks = tokio::task::JoinSet::new();
    for (index, (name, bytes)) in uploads.into_iter().enumerate() {
        let state = state.clone();
        tasks.spawn(async move { (index, judge_upload(&state, name, bytes).await) });
    }
    let mut records: Vec<Option<Record>> = vec![None; tasks.len()];
    while let Some(joined) = tasks.join_next().await {
        let (index, record) = joined.map_err(|e| ApiError::internal("a scan task", e))?;
        records[index] = Some(record?.0);
    }
    let records: Vec<Record> = records.into_iter().flatten().collect();
    Ok(Json(serde_json::json!({ "records": records })))
}

fn no_image() -> ApiError {
    ApiError::bad_request(
        "no image: send the image bytes as the body, or as multipart fields named \"image\"",
    )
}

/// A place in the scan queue (503 at once when it is full) and the uploaded images, at least
/// one and at most `max`.
async fn admitted_uploads(
    request: Request,
    state: &Arc<AppState>,
    max: usize,
) -> Result<(OwnedSemaphorePermit, Vec<(String, Bytes)>), ApiError> {
    let Ok(admitted) = state.admission.clone().try_acquire_owned() else {
        return Err(state.refuse(request, ApiError::busy()).await);
    };
    let uploads = read_uploads(request, state, max).await?;
    if uploads.is_empty() {
        return Err(no_image());
    }
    Ok((admitted, uploads))
}

/// The uploaded images with their names (a multipart file name, or `upload`).
async fn read_uploads(
    request: Request,
    state: &Arc<AppState>,
    max: usize,
) -> Result<Vec<(String, Bytes)>, ApiError> {
    let is_multipart = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("multipart/form-data"));
    if !is_multipart {
        let bytes = Bytes::from_request(request, state).await?;
        return Ok(if bytes.is_empty() {
            Vec::new()
        } else {
            vec![("upload".to_owned(), bytes)]
        });
    }
    let mut multipart = Multipart::from_request(request, state).await?;
    let mut uploads = Vec::new();
    while let Some(field) = multipart.next_field().await? {
        // Strict, as the document says: only files in fields named `image`, so that a form
        // sent to the wrong place, or a text field posing as an image, is refused rather than
        // silently scanned or skipped.
        if field.name() != Some("image") {
            let name: String = field.name().unwrap_or("").chars().take(40).collect();
            return Err(ApiError::bad_request(format!(
                "unexpected multipart field {name:?}: send images as file fields named \"image\""
            )));
        }
        let Some(file_name) = field.file_name() else {
            return Err(ApiError::bad_request(
                "the \"image\" field must be a file (a part with a filename), not a text value",
            ));
        };
        let name: String = file_name
            .chars()
            .filter(|c| !c.is_control())
            .take(255)
            .collect();
        if uploads.len() == max {
            return Err(ApiError::bad_request(format!(
                "too many images: at most {max} per request"
            )));
        }
        let bytes = field.bytes().await?;
        if bytes.is_empty() {
            return Err(ApiError::bad_request(format!(
                "the image field {name:?} is empty"
            )));
        }
        uploads.push((name, bytes));
    }
    Ok(uploads)
}

/// Waits for a worker, then judges the image on a blocking thread; the worker is released
/// when the judging ends, even if the request has timed out meanwhile.
async fn judge_upload(
    state: &Arc<AppState>,
    name: String,
    bytes: Bytes,
) -> Result<(Record, Cache), ApiError> {
    let permit = state
        .workers
        .clone()
        .acquire_owned()
        .await
        .map_err(|e| ApiError::internal("the worker pool", e))?;
    let state = state.clone();
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        state.pool.run(|| judge_blocking(&state, name, &bytes))
    })
    .await
    .map_err(|e| ApiError::internal("a scan task", e))?
}

/// Whether a record came from the store (the same bytes judged before by the same judge).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cache {
    Hit,
    Miss,
}

impl Cache {
    fn as_str(self) -> &'static str {
        match self {
            Cache::Hit => "hit",
            Cache::Miss => "miss",
        }
    }
}

/// Response header of `POST /v1/scan`: `hit` when the record came from the store.
const CACHE_HEADER: &str = "x-facade-cache";

fn judge_blocking(
    state: &AppState,
    name: String,
    bytes: &[u8],
) -> Result<(Record, Cache), ApiError> {
    let sha = sha256_hex(bytes);
    let judge = state.judge.fingerprint();
    let cached = match state.config.reuse_scans {
        true => state.lock_store().cached_scan(&sha, judge)?,
        false => None,
    };
    if let Some(hit) = cached {
        let mut record: Record = serde_json::from_value(hit.record)
            .map_err(|e| ApiError::internal("a stored scan", e))?;
        record.path = name;
        record.sha256 = Some(sha);
        return Ok((record, Cache::Hit));
    }
    match state
        .judge
        .scan_hashed(&name, bytes, sha, &state.config.decode_limits)
    {
        Ok(scanned) => {
            let thumbnail = scanned.thumbnail(THUMBNAIL_SIDE);
            state.lock_store().put_scan(&NewScan {
                sha256: scanned.record.sha256.as_deref().unwrap_or_default(),
                judge,
                record: &serde_json::to_value(&scanned.record)
                    .map_err(|e| ApiError::internal("encoding a record", e))?,
                thumbnail: Some(&thumbnail),
            })?;
            Ok((scanned.record, Cache::Miss))
        }
        Err(failed) => Ok((*failed, Cache::Miss)),
    }
}
