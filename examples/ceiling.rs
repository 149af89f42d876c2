//! The machine's ceiling for one HTTP request (bench/run.sh): axum and tokio as gatehouse
//! uses them, answering every request with a fixed 200 JSON body shaped like
//! `GET /api/users/me/`'s, with no database, no token and no logging. Whatever gatehouse
//! does beyond this is the cost of its work.
//!
//!   cargo run --release --example ceiling -- 127.0.0.1:8002

use axum::http::header;
use axum::response::IntoResponse;
use axum::Router;

/// The size and shape of a `me` answer, so both servers write the same bytes.
const BODY: &str = r#"{"id":1,"username":"bench","email":"bench@example.com","first_name":"","last_name":"","is_active":true,"is_staff":false,"is_superuser":false,"date_joined":"2026-01-01T00:00:00.000000Z","last_login":"2026-01-01T00:00:00.000000Z"}"#;

async fn answer() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], BODY)
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8002".to_owned());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    let app = Router::new().fallback(answer);
    axum::serve(listener, app).await
}
