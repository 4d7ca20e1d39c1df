//! Demo mode: serves the demo page at `/`, the built npm package at `/pkg/`, and
//! `/demo/config.json` telling the page which app key to connect with.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use tower_http::services::ServeDir;

use crate::config::DemoAssets;
use crate::state::Shared;

pub fn routes(assets: &DemoAssets) -> Router<Shared> {
    Router::new()
        .route("/demo/config.json", get(config))
        .nest_service("/pkg", ServeDir::new(&assets.package))
        .fallback_service(ServeDir::new(&assets.site))
}

async fn config(State(shared): State<Shared>) -> Json<serde_json::Value> {
    let key = shared
        .config()
        .apps
        .first()
        .map(|app| app.key.as_str())
        .unwrap_or_default();
    Json(serde_json::json!({ "key": key }))
}
