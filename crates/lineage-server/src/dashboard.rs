//! The dashboard (placeholder, filled in below).
use std::sync::Arc;
use axum::Router;
use crate::AppState;
pub fn routes() -> Router<Arc<AppState>> { Router::new() }
