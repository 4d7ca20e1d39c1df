//! The Overtone server: Pusher protocol 7 over WebSocket at `/app/{key}` and the Pusher HTTP API
//! under `/apps/{app_id}`, on axum and tokio.
//!
//! One module per concern: [`config`] (apps, flags, config file), [`state`] (the one shared
//! handle), [`frame`] (protocol frames in and out), [`connection`] (one WebSocket's life),
//! [`channels`] (who is subscribed to what, fanout, cache channels), [`presence`] (members by
//! user id), [`auth`] (checking signatures), [`http_api`] (the signed REST API), [`demo`] (the
//! demo page's static files), [`authz`] (the server's own `/broadcasting/auth` from tokens).

pub mod auth;
pub mod authz;
pub mod channels;
pub mod config;
pub mod connection;
pub mod demo;
pub mod frame;
pub mod http_api;
pub mod presence;
pub mod state;

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use tokio_util::sync::CancellationToken;

pub use config::Config;
pub use state::Shared;

/// Builds the router for a shared state: WebSocket, HTTP API and (optionally) the demo.
pub fn router(shared: Shared) -> Router {
    let mut router = Router::new()
        .merge(connection::routes())
        .merge(http_api::routes())
        .merge(authz::routes(shared.config()));
    if let Some(assets) = &shared.config().demo {
        router = router.merge(demo::routes(assets));
    }
    router.with_state(shared)
}

/// Binds, serves until `shutdown` is cancelled, then closes every client with 4200.
pub async fn serve(config: Config, shutdown: CancellationToken) -> std::io::Result<()> {
    let addr = SocketAddr::new(config.host, config.port);
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let shared = Shared::new(config, shutdown.clone());
    tokio::spawn(sweep_caches(shared.clone()));
    tracing::info!(%local, "listening");
    if shared.config().demo.is_some() {
        println!("Overtone demo: http://{local}/");
    }
    println!("Overtone listening on ws://{local}/app/{{key}}");
    axum::serve(listener, router(shared).into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
}

/// Every minute, forgets expired cache-channel events nobody is subscribed to, until shutdown.
async fn sweep_caches(shared: Shared) {
    let mut every_minute = tokio::time::interval(Duration::from_secs(60));
    loop {
        tokio::select! {
            _ = every_minute.tick() => shared.apps().for_each(|app| app.channels.sweep_expired_cache()),
            _ = shared.shutdown().cancelled() => return,
        }
    }
}
