//! `GET /api/health/` (API.md §8): 200 while the database answers, 503 while it does not.

use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};

#[utoipa::path(
    get,
    path = "/api/health/",
    operation_id = "health",
    tag = "operations",
    summary = "Whether the service and its database answer",
    responses(
        (status = 200, description = "Up", body = super::openapi::Health),
        (status = 503, description = "The database is unavailable", body = super::openapi::Health,
            example = json!({"status": "unavailable", "database": "unavailable"})),
    )
)]
pub async fn health(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    match state.store.ping().await {
        Ok(()) => (
            StatusCode::OK,
            Json(json!({"status": "ok", "database": "ok"})),
        ),
        Err(error) => {
            tracing::warn!(error = %error, "health check: database unavailable");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({"status": "unavailable", "database": "unavailable"})),
            )
        }
    }
}
