//! The Overtone server: Pusher protocol 7 over WebSocket at `/app/{key}` and the Pusher HTTP API
//! under `/apps/{app_id}`, on axum and tokio.
//!
//! One module per concern: [`config`] (apps, flags, config file), [`state`] (the one shared
//! handle), [`frame`] (protocol frames in and out), [`connection`] (one WebSocket's life),
//! [`channels`] (who is subscribed to what, fanout, cache channels), [`history`] (which channels
//! keep history, positions, the in-memory ring), [`presence`] (members by
//! user id), [`users`] (signed-in users and watchlists), [`auth`] (checking signatures),
//! [`http_api`] (the signed REST API), [`webhooks`] (Pusher-style webhooks), [`cluster`] (many
//! nodes on one Redis), [`health`] (`/up`, `/ready`), [`metrics`] (Prometheus), [`authz`] (the
//! server's own `/broadcasting/auth` from tokens), [`demo`] (the demo site and its backend),
//! [`memory`] (handing the heap back after many connections close), [`listener`] (the main
//! port's TCP connections until they upgrade: deadlines, a bound, accept errors), [`tls`]
//! (`wss://` and `https://` on the main port, certificates reloaded).

pub mod auth;
pub mod authz;
pub mod channels;
pub mod cluster;
pub mod config;
pub mod connection;
pub mod demo;
pub mod frame;
pub mod health;
pub mod history;
pub mod http_api;
pub mod listener;
pub mod memory;
pub mod metrics;
pub mod presence;
pub mod state;
pub mod tls;
pub mod users;
pub mod webhooks;

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use tokio_util::sync::CancellationToken;

pub use config::Config;
pub use state::Shared;

/// Builds the router for a shared state: WebSocket, HTTP API and (optionally) the demo.
pub fn router(shared: Shared) -> Router {
    let router = Router::new()
        .merge(connection::routes())
        .merge(http_api::routes())
        .merge(health::routes())
        .merge(metrics::routes(&shared.config().metrics))
        .merge(authz::routes(shared.config()));
    let router = match &shared.config().demo {
        Some(assets) => router.merge(demo::routes(assets, &shared)),
        None => router.fallback(http_api::not_found),
    };
    let limit = shared.config().deadlines.request;
    router
        .with_state(shared)
        .layer(axum::middleware::from_fn_with_state(
            limit,
            listener::deadline,
        ))
}

/// Binds and serves until `shutdown` is cancelled; then drains (see [`serve_on`]) and closes
/// every client with 4200.
pub async fn serve(config: Config, shutdown: CancellationToken) -> std::io::Result<()> {
    let addr = SocketAddr::new(config.host, config.port);
    let listener = tokio::net::TcpListener::bind(addr).await?;
    serve_on(listener, config, shutdown).await
}

/// Serves on a listener already bound (the config's host and port are not used again).
///
/// Once `shutdown` is cancelled: `/ready` answers 503 at once, the node keeps serving (new
/// connections included) for the config's `shutdown_drain`, then stops accepting, closes every
/// client with 4200 and waits up to `shutdown_grace` for them to go.
pub async fn serve_on(
    listener: tokio::net::TcpListener,
    config: Config,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let local = listener.local_addr()?;
    let tls = match &config.tls {
        Some(files) => Some(tls::Tls::load(files).map_err(|err| {
            std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("TLS: {err}"))
        })?),
        None => None,
    };
    // What everything inside stops on: cancelled after the drain.
    let closing = CancellationToken::new();
    let shared = Shared::new(config, closing.clone());
    tokio::spawn(drain_then_close(shared.clone(), shutdown));
    let shutdown = closing;
    if let Some(addr) = shared.config().metrics.addr {
        let metrics_listener = tokio::net::TcpListener::bind(addr).await?;
        tracing::info!(addr = %metrics_listener.local_addr()?, "metrics listening");
        tokio::spawn(metrics::serve_on(metrics_listener, shared.clone()));
    }
    tokio::spawn(sweep_caches(shared.clone()));
    tokio::spawn(memory::trim_after_closes(shared.clone()));
    cluster::start(&shared);
    let deliveries: Vec<_> = shared.apps().filter_map(webhooks::start).collect();
    tracing::info!(%local, "listening");
    if shared.config().demo.is_some() {
        println!("Overtone demo: http://{local}/");
    }
    tokio::spawn(tls::reload_on_change(tls.clone(), shutdown.clone()));
    let scheme = if tls.is_some() { "wss" } else { "ws" };
    println!("Overtone listening on {scheme}://{local}/app/{{key}}");
    let deadlines = shared.config().deadlines;
    listener::serve(listener, router(shared.clone()), deadlines, tls, shutdown).await;
    // Upgraded WebSockets are no longer axum's connections, so it does not wait for them: wait
    // here until each has sent its 4200 close, then for the webhooks their departures caused,
    // for at most the grace period in all.
    let grace = shared.config().shutdown_grace;
    let deadline = tokio::time::Instant::now() + grace;
    let drained = async {
        while shared.apps().any(|app| app.connection_count() > 0) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    if tokio::time::timeout_at(deadline, drained).await.is_err() {
        tracing::warn!(
            ?grace,
            "shutdown grace period over: leaving open connections"
        );
    }
    shared
        .apps()
        .for_each(|app| webhooks::report_departures(app));
    if let Some(cluster) = shared.cluster() {
        cluster.finish(deadline).await;
    }
    for delivery in deliveries {
        delivery.finish(deadline).await;
    }
    Ok(())
}

/// When `shutdown` is cancelled: not ready at once, closing after the drain delay.
async fn drain_then_close(shared: Shared, shutdown: CancellationToken) {
    tokio::select! {
        _ = shutdown.cancelled() => {}
        _ = shared.shutdown().cancelled() => return,
    }
    shared.start_draining();
    let drain = shared.config().shutdown_drain;
    tracing::info!(
        ?drain,
        "shutting down: not ready; closing after the drain delay"
    );
    tokio::time::sleep(drain).await;
    shared.shutdown().cancel();
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{AppConfig, DemoAssets};

    #[tokio::test(start_paused = true)]
    async fn shutdown_drains_before_closing() {
        let mut config = Config::for_tests(AppConfig::new("a", "k", "s"));
        config.shutdown_drain = Duration::from_secs(2);
        let shared = Shared::new(config, CancellationToken::new());
        let asked = CancellationToken::new();
        let task = tokio::spawn(drain_then_close(shared.clone(), asked.clone()));
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert!(
            !shared.is_draining(),
            "nothing before shutdown is asked for"
        );
        asked.cancel();
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert!(shared.is_draining(), "not ready at once");
        assert!(
            !shared.shutdown().is_cancelled(),
            "still serving during the drain"
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert!(shared.shutdown().is_cancelled(), "closing after the drain");
        task.await.unwrap();
    }

    #[test]
    fn routes_build_with_and_without_the_demo() {
        let config = Config::for_tests(AppConfig::new("a", "k", "s"));
        let _ = router(Shared::new(config.clone(), CancellationToken::new()));
        let demo = DemoAssets {
            site: "demo".into(),
            package: "pkg-js/dist".into(),
        };
        let _ = router(Shared::new(
            Config {
                demo: Some(demo),
                ..config
            },
            CancellationToken::new(),
        ));
    }
}
