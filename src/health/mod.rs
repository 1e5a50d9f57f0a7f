//! The health endpoint operators read (linkerd2-proxy's admin server is the model):
//! `/healthz` 200 while the main loop ticks (503 when it stalls), `/readyz` 503 until setup
//! and the first disk check are done, `/status` JSON, `/metrics` Prometheus text. Bound to
//! loopback unless the settings allow otherwise.

pub mod metrics;
pub mod server;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::sync::watch;

use crate::node::status::{self, Board};

pub struct HealthContext {
    /// What the status loop publishes.
    pub board: watch::Receiver<Arc<Board>>,
    pub setup_marker: PathBuf,
    /// The main loop counts as stalled when its last tick is older than this.
    pub stale_after: Duration,
}

impl HealthContext {
    fn alive(&self, board: &Board) -> bool {
        board.last_tick.is_some_and(|t| t.elapsed() <= self.stale_after)
    }

    fn ready(&self, board: &Board) -> bool {
        self.setup_marker.exists() && board.document.disk.is_some()
    }

    /// The latest document, judged alive and ready now.
    pub fn document(&self) -> status::StatusDocument {
        let board = self.board.borrow().clone();
        let mut document = board.document.clone();
        document.alive = self.alive(&board);
        document.ready = self.ready(&board);
        document.generated_at = std::time::SystemTime::now();
        document
    }
}

pub fn router(context: Arc<HealthContext>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/status", get(status_json))
        .route("/metrics", get(metrics_text))
        .with_state(context)
}

async fn healthz(State(context): State<Arc<HealthContext>>) -> Response {
    let board = context.board.borrow().clone();
    if context.alive(&board) {
        (StatusCode::OK, "ok\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "main loop stalled\n").into_response()
    }
}

async fn readyz(State(context): State<Arc<HealthContext>>) -> Response {
    let board = context.board.borrow().clone();
    if context.ready(&board) {
        return (StatusCode::OK, "ready\n").into_response();
    }
    let why = match board.docker_error.clone() {
        Some(error) => format!("not ready: waiting for Docker: {error}\n"),
        None => "not ready: setup or the first disk check has not finished\n".to_string(),
    };
    (StatusCode::SERVICE_UNAVAILABLE, why).into_response()
}

async fn status_json(State(context): State<Arc<HealthContext>>) -> Response {
    axum::Json(context.document()).into_response()
}

async fn metrics_text(State(context): State<Arc<HealthContext>>) -> Response {
    ([(header::CONTENT_TYPE, metrics::CONTENT_TYPE)], metrics::encode(&context.document())).into_response()
}

/// Serves until shutdown, with the hardened accept loop of [`server`].
pub async fn serve(listener: tokio::net::TcpListener, context: Arc<HealthContext>, shutdown: watch::Receiver<bool>) {
    server::serve(listener, router(context), shutdown).await;
}
