//! `ApiError`: what the API answers when it cannot do what was asked, as the same JSON
//! `{"schema": 1, "error": {"message", "hint"}}` the CLI prints under `--format json`.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use lineage_store::StoreError;

#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    pub hint: Option<String>,
}

impl ApiError {
    pub fn new(
        status: StatusCode,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) -> ApiError {
        ApiError {
            status,
            message: message.into(),
            hint: Some(hint.into()),
        }
    }

    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: message.into(),
            hint: Some("see the server's log".into()),
        }
    }
}

impl From<lineage_core::Error> for ApiError {
    fn from(e: lineage_core::Error) -> ApiError {
        use lineage_core::Error as E;
        let status = match &e {
            E::Parse(_)
            | E::Invalid(..)
            | E::UnknownEnvironment { .. }
            | E::Import { .. }
            | E::ImageClaimed { .. }
            | E::NoServiceForImage(_)
            | E::UnknownService(_)
            | E::Refused(..) => StatusCode::UNPROCESSABLE_ENTITY,
            // The server's own policy files or lineage.toml are broken: not the caller's fault.
            E::Policy(_) | E::Config(_) => StatusCode::INTERNAL_SERVER_ERROR,
            E::ServiceExists(_) | E::BuildConflict { .. } => StatusCode::CONFLICT,
            E::Store(StoreError::Missing(_)) => StatusCode::SERVICE_UNAVAILABLE,
            E::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError {
            status,
            message: e.to_string(),
            hint: e.hint(),
        }
    }
}

impl From<lineage_model::ParseError> for ApiError {
    fn from(e: lineage_model::ParseError) -> ApiError {
        ApiError::from(lineage_core::Error::Parse(e))
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        ApiError::from(lineage_core::Error::Store(e))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({
            "schema": 1,
            "error": { "message": self.message, "hint": self.hint },
        });
        let mut response = (self.status, axum::Json(body)).into_response();
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            // Every 503 here passes (loading, a slow request, an unreachable database).
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("2"));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}
