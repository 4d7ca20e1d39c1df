//! Demo mode: serves the demo page at `/` and the built npm package at `/pkg/`.

use axum::Router;
use tower_http::services::ServeDir;

use crate::config::DemoAssets;
use crate::state::Shared;

pub fn routes(assets: &DemoAssets) -> Router<Shared> {
    Router::new()
        .nest_service("/pkg", ServeDir::new(&assets.package))
        .fallback_service(ServeDir::new(&assets.site))
}
