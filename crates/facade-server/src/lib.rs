//! # facade-server: the scan API, networks and reviews over HTTP, and the review page
//!
//! A thin shell over the library crates: [`facade_detect::Judge`] scans uploaded images exactly
//! as `facade scan` does, [`facade_store::Store`] keeps scans (so the same bytes are judged
//! once), networks and the analysts' decisions: in a SQLite file, or in a PostgreSQL database
//! that several server processes share (each sees the others' reviews and scans).
//!
//! What a caller can rely on:
//! - with a token configured, every `/v1` route needs `Authorization: Bearer <token>` (401);
//!   `/healthz`, the page (`/`) and `/openapi.json` do not;
//! - bodies over the limit are refused with 413 before they are read whole; every request has
//!   a deadline (408 past it);
//! - scans run on a fixed pool of workers (one per core by default) behind a bounded queue; a
//!   scan that finds the queue full is refused at once with 503 and `Retry-After`, so load
//!   never grows memory or crashes the service;
//! - nothing in a request names a file: images arrive in the body, thumbnails come from the
//!   store by content hash.
//!
//! The routes and their JSON are described in `openapi.json` (served at `/openapi.json`).

mod api;
mod auth;
mod error;
mod scan;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use facade_detect::{Judge, JudgingPool};
use facade_image::DecodeLimits;
use facade_store::Store;
use tokio::sync::Semaphore;
use tower_http::timeout::TimeoutLayer;

pub use error::ApiError;

/// The service's knobs; [`Default`] is what `facade serve` uses without options.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// The bearer token every `/v1` call must carry; `None` leaves the API open.
    pub token: Option<String>,
    /// Largest accepted request body, in bytes.
    pub max_body_bytes: usize,
    /// Deadline of one request, reading its body included.
    pub request_timeout: Duration,
    /// Scans judged at once (CPU-bound: about one per core).
    pub scan_workers: usize,
    /// Scans admitted at once, running or waiting for a worker; more are refused with 503.
    pub max_queued_scans: usize,
    /// Limits on the images themselves (file size, sides, pixels).
    pub decode_limits: DecodeLimits,
    /// Answer a scan of bytes seen before from the store (false: judge every upload; for
    /// benchmarks of the judging itself).
    pub reuse_scans: bool,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        ServiceConfig {
            token: None,
            max_body_bytes: 20 << 20,
            request_timeout: Duration::from_secs(30),
            scan_workers: cores,
            max_queued_scans: 64,
            decode_limits: DecodeLimits {
                max_file_bytes: 20 << 20,
                ..DecodeLimits::default()
            },
            reuse_scans: true,
        }
    }
}

/// What every handler shares.
pub(crate) struct AppState {
    pub judge: Judge,
    /// The threads scans are judged on; as many scans run at once (`workers`).
    pub pool: JudgingPool,
    pub store: Mutex<Store>,
    pub config: ServiceConfig,
    /// Scans admitted (running or queued); `try_acquire` failing means 503.
    pub admission: Arc<Semaphore>,
    /// Scans running.
    pub workers: Arc<Semaphore>,
}

impl AppState {
    /// The store, even if a thread panicked while holding it (the database's own state stays
    /// sound: a transaction that did not commit is rolled back).
    pub(crate) fn lock_store(&self) -> std::sync::MutexGuard<'_, Store> {
        self.store
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Reads and drops the body (within the size limit) before answering `error`: a client
    /// still sending its upload would otherwise see its connection reset instead of the
    /// answer.
    pub(crate) async fn refuse(
        &self,
        request: axum::extract::Request,
        error: ApiError,
    ) -> ApiError {
        let _ = axum::body::to_bytes(request.into_body(), self.config.max_body_bytes).await;
        error
    }
}

/// The whole service as an axum router, judging uploads on `pool`, one scan per pool thread.
pub fn router(judge: Judge, pool: JudgingPool, store: Store, config: ServiceConfig) -> Router {
    let state = Arc::new(AppState {
        admission: Arc::new(Semaphore::new(config.max_queued_scans.max(1))),
        workers: Arc::new(Semaphore::new(pool.threads())),
        pool,
        judge,
        store: Mutex::new(store),
        config: config.clone(),
    });
    let v1 = Router::new()
        .route("/scan", post(scan::scan_one))
        .route("/scan/batch", post(scan::scan_batch))
        .route("/images/{sha256}", get(api::image_thumbnail))
        .route("/networks", get(api::list_networks))
        .route("/networks/{id}", get(api::get_network))
        .route("/accounts", get(api::list_accounts))
        .route("/reviews", post(api::add_review).get(api::list_reviews))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_token,
        ));
    Router::new()
        .route("/", get(api::review_page))
        .route("/healthz", get(api::health))
        .route("/openapi.json", get(api::openapi))
        .nest("/v1", v1)
        .fallback(api::not_found)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::refuse_declared_oversize,
        ))
        .with_state(state)
        .layer(DefaultBodyLimit::max(config.max_body_bytes))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            config.request_timeout,
        ))
}

/// Serves `router` on `addr` until Ctrl-C or SIGTERM, finishing the requests under way.
pub async fn serve(addr: SocketAddr, router: Router) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    serve_on(listener, router).await
}

pub async fn serve_on(listener: tokio::net::TcpListener, router: Router) -> std::io::Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown_signal())
        .await
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
}
