//! Bearer-token access control: with `API_TOKEN` set, mutating requests need
//! `Authorization: Bearer <token>`; reads too when `API_TOKEN_READS=true`. Liveness and
//! readiness stay open so that probes need no secret, and the console's files, which
//! hold no data (the console asks for the token and sends it with its API calls).

use axum::extract::{Request, State};
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::{ApiError, AppState};

/// Who may call the API.
#[derive(Clone)]
pub struct Auth {
    /// BLAKE3 of the token; comparing hashes takes the same time wherever the presented
    /// token differs, so timing reveals nothing about the secret.
    token: Option<blake3::Hash>,
    reads: bool,
}

impl Auth {
    /// Requires `token` (when set) for mutating requests, and for reads when `reads`.
    pub fn new(token: Option<&str>, reads: bool) -> Auth {
        Auth {
            token: token.map(|t| blake3::hash(t.as_bytes())),
            reads,
        }
    }

    fn protects(&self, method: &Method, path: &str) -> bool {
        if self.token.is_none()
            || matches!(path, "/healthz" | "/readyz")
            || super::console::serves(path)
        {
            return false;
        }
        let read = matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS);
        !read || self.reads
    }

    fn admits(&self, authorization: Option<&str>) -> Result<(), ApiError> {
        let Some(expected) = self.token else {
            return Ok(());
        };
        let presented = authorization
            .and_then(|value| value.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim())
            .ok_or_else(|| {
                ApiError::Unauthorized(
                    "this request needs Authorization: Bearer <API_TOKEN>".into(),
                )
            })?;
        if blake3::hash(presented.as_bytes()) == expected {
            Ok(())
        } else {
            Err(ApiError::Unauthorized("wrong bearer token".into()))
        }
    }
}

/// Middleware: refuses a protected request without the right token with 401.
pub async fn check(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if state.auth.protects(request.method(), request.uri().path()) {
        let authorization = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        if let Err(e) = state.auth.admits(authorization) {
            tracing::info!(method = %request.method(), path = %request.uri().path(), "refused: {e}");
            return e.into_response();
        }
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mutations_need_the_token_reads_only_when_asked() {
        let open = Auth::new(None, false);
        assert!(!open.protects(&Method::POST, "/api/v1/objects"));
        assert!(open.admits(None).is_ok());

        let writes = Auth::new(Some("t0ken"), false);
        assert!(writes.protects(&Method::POST, "/api/v1/objects"));
        assert!(writes.protects(&Method::DELETE, "/api/v1/objects/x"));
        assert!(!writes.protects(&Method::GET, "/api/v1/objects"));

        let all = Auth::new(Some("t0ken"), true);
        assert!(all.protects(&Method::GET, "/api/v1/objects"));
        assert!(all.protects(&Method::GET, "/metrics"));
        assert!(!all.protects(&Method::GET, "/healthz"));
        assert!(!all.protects(&Method::GET, "/readyz"));
    }

    #[test]
    fn only_the_exact_bearer_token_is_admitted() {
        let access = Auth::new(Some("t0ken"), false);
        assert!(access.admits(Some("Bearer t0ken")).is_ok());
        assert!(access.admits(Some("bearer t0ken")).is_ok());
        for wrong in [
            None,
            Some("t0ken"),
            Some("Basic t0ken"),
            Some("Bearer t0ke"),
            Some("Bearer t0ken2"),
            Some("Bearer "),
        ] {
            assert!(
                matches!(access.admits(wrong), Err(ApiError::Unauthorized(_))),
                "{wrong:?} was admitted"
            );
        }
    }
}
