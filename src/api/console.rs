//! The web console at `/`: one page and its script and style, built into the binary.
//! It reads and acts only through the public REST API, with the same token.

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

/// Only the console's own files may load; the script talks only to this origin.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' data: blob:; connect-src 'self'; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

/// Whether a path is one of the console's files (open to all: they hold no data).
pub fn serves(path: &str) -> bool {
    path == "/" || path.starts_with("/console/")
}

/// The console's routes.
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route(
            "/",
            get(|| async {
                asset(
                    "text/html; charset=utf-8",
                    include_str!("console/index.html"),
                )
            }),
        )
        .route(
            "/console/app.js",
            get(|| async {
                asset(
                    "text/javascript; charset=utf-8",
                    include_str!("console/app.js"),
                )
            }),
        )
        .route(
            "/console/app.css",
            get(|| async { asset("text/css; charset=utf-8", include_str!("console/app.css")) }),
        )
}

fn asset(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_console_files_are_open() {
        assert!(serves("/"));
        assert!(serves("/console/app.js"));
        assert!(!serves("/api/v1/objects"));
        assert!(!serves("/metrics"));
    }
}
