//! `POST /v1/scan` and `POST /v1/scan/batch`: images in, scan records out.
//!
//! An upload is the raw body (any content type but multipart) or the multipart fields named
//! `image`. Each image is judged on the worker pool, or found in the store by its SHA-256 when
//! the same judge has seen the same bytes before.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRequest, Multipart, Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use facade_detect::judge::sha256_hex;
use facade_detect::record::{Record, Status};
use facade_image::thumbnail::{jpeg_thumbnail, square_crop};
use facade_image::{decode, RgbImage};
use facade_store::NewScan;

use crate::{ApiError, AppState};

/// The most images one batch request may carry.
pub const MAX_BATCH: usize = 256;

/// Side of the stored thumbnails, in pixels.
const THUMBNAIL_SIDE: u32 = 160;

pub(crate) async fn scan_one(State(state): State<Arc<AppState>>, request: Request) -> Response {
    let result = async {
        let Ok(_admitted) = state.admission.clone().try_acquire_owned() else {
            return Err(refuse(request, ApiError::busy(), &state).await);
        };
        let mut uploads = read_uploads(request, &state, 1).await?;
        let (name, bytes) = uploads.pop().ok_or_else(no_image)?;
        let (record, cache) = judge_upload(&state, name, bytes).await?;
        let status = match record.status {
            Status::Error => StatusCode::UNPROCESSABLE_ENTITY,
            _ => StatusCode::OK,
        };
        Ok::<_, ApiError>((status, [(CACHE_HEADER, cache.as_str())], Json(record)).into_response())
    };
    result.await.unwrap_or_else(IntoResponse::into_response)
}

pub(crate) async fn scan_batch(State(state): State<Arc<AppState>>, request: Request) -> Response {
    let result = async {
        let Ok(_admitted) = state.admission.clone().try_acquire_owned() else {
            return Err(refuse(request, ApiError::busy(), &state).await);
        };
        let uploads = read_uploads(request, &state, MAX_BATCH).await?;
        if uploads.is_empty() {
            return Err(no_image());
        }
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
        Ok::<_, ApiError>(Json(serde_json::json!({ "records": records })).into_response())
    };
    result.await.unwrap_or_else(IntoResponse::into_response)
}

/// Reads and drops the body (within the size limit) before answering `error`: a client still
/// sending its upload would otherwise see its connection reset instead of the answer.
pub(crate) async fn refuse(request: Request, error: ApiError, state: &AppState) -> ApiError {
    let _ = axum::body::to_bytes(request.into_body(), state.config.max_body_bytes).await;
    error
}

fn no_image() -> ApiError {
    ApiError::bad_request(
        "no image: send the image bytes as the body, or as multipart fields named \"image\"",
    )
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
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|e| ApiError::new(e.status(), e.body_text()))?;
        return Ok(if bytes.is_empty() {
            Vec::new()
        } else {
            vec![("upload".to_owned(), bytes)]
        });
    }
    let mut multipart = Multipart::from_request(request, state)
        .await
        .map_err(|e| ApiError::new(e.status(), e.body_text()))?;
    let mut uploads = Vec::new();
    while let Some(field) = multipart
        .next_field()
        .await
        .map_err(|e| ApiError::new(e.status(), e.body_text()))?
    {
        if field.name() != Some("image") {
            continue;
        }
        if uploads.len() == max {
            return Err(ApiError::bad_request(format!(
                "too many images: at most {max} per request"
            )));
        }
        let name = field
            .file_name()
            .map(|n| n.chars().filter(|c| !c.is_control()).take(255).collect())
            .unwrap_or_else(|| "upload".to_owned());
        let bytes = field
            .bytes()
            .await
            .map_err(|e| ApiError::new(e.status(), e.body_text()))?;
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
        judge_blocking(&state, name, &bytes)
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
        true => lock_store(state).cached_scan(&sha, judge)?,
        false => None,
    };
    if let Some(hit) = cached {
        let mut record: Record = serde_json::from_value(hit.record)
            .map_err(|e| ApiError::internal("a stored scan", e))?;
        record.path = name;
        record.sha256 = Some(sha);
        return Ok((record, Cache::Hit));
    }
    let outcome = catch_unwind(AssertUnwindSafe(|| -> Result<(Record, Vec<u8>), String> {
        let image = decode(bytes, &state.config.decode_limits)
            .map_err(|e| e.to_string())?
            .image;
        let (record, judged) = state.judge.record_image(&name, &image)?;
        let width = |b: &[f32; 4]| b[2] - b[0];
        let boxes = judged.faces.iter().map(|f| f.bbox);
        let largest = boxes.max_by(|a, b| width(a).total_cmp(&width(b)));
        Ok((record, face_thumbnail(&image, largest)))
    }));
    let mut record = match outcome {
        Ok(Ok((record, thumbnail))) => {
            let mut stored = serde_json::to_value(&record)
                .map_err(|e| ApiError::internal("encoding a record", e))?;
            stored["path"] = serde_json::Value::String(String::new());
            lock_store(state).put_scan(&NewScan {
                sha256: &sha,
                judge,
                record: &stored,
                score: record.score,
                verdict: record.verdict.map(|v| v.as_str()),
                thumbnail: Some(&thumbnail),
            })?;
            record
        }
        Ok(Err(error)) => Record::failed(name, error),
        Err(_) => Record::failed(
            name,
            "internal error while scanning this image (caught)".into(),
        ),
    };
    record.sha256 = Some(sha);
    Ok((record, Cache::Miss))
}

/// The face (with a margin) when there is one, else the whole picture.
fn face_thumbnail(image: &RgbImage, face: Option<[f32; 4]>) -> Vec<u8> {
    match face {
        Some(bbox) => jpeg_thumbnail(&square_crop(image, bbox, 0.35), THUMBNAIL_SIDE),
        None => jpeg_thumbnail(image, THUMBNAIL_SIDE),
    }
}

/// The store, even if a thread panicked while holding it (SQLite's own state stays sound: a
/// transaction that did not commit is rolled back).
pub(crate) fn lock_store(state: &AppState) -> std::sync::MutexGuard<'_, facade_store::Store> {
    state
        .store
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
