//! The Overtone server: Pusher protocol 7 over WebSocket at `/app/{key}` and the Pusher HTTP API
//! under `/apps/{app_id}`, on axum and tokio.
//!
//! One module per concern: [`config`] (apps, flags, config file), [`state`] (the one shared
//! handle), [`frame`] (protocol frames in and out), [`connection`] (one WebSocket's life),
//! [`channels`] (who is subscribed to what, fanout, cache channels), [`fanout`] (a publish's
//! sends after its answer, in order, per app), [`history`] (which channels keep history,
//! positions, the in-memory ring), [`presence`] (members by user id), [`users`] (signed-in
//! users and watchlists), [`auth`] (checking signatures), [`http_api`] (the signed REST API),
//! [`webhooks`] (Pusher-style webhooks), [`cluster`] (many nodes on one Redis), [`health`]
//! (`/up`, `/ready`), [`metrics`] (Prometheus), [`authz`] (the server's own
//! `/broadcasting/auth` from tokens), [`memory`] (handing the heap back after many connections
//! close), [`listener`] (the main port's TCP connections until they upgrade: deadlines, a
//! bound, accept errors), [`tls`] (`wss://` and `https://` on the main port, certificates
//! reloaded), [`wire`] (a WebSocket's bytes: the upgrade, reading client frames, writing frames
//! straight to the socket), [`console`] (the operator's console at `/console`).
//!
//! A binary that embeds the server adds its own routes with [`serve_with`] (the demo does:
//! `demo/` of the repository).

pub mod auth;
pub mod authz;
pub mod channels;
pub mod cluster;
pub mod config;
pub mod connection;
pub mod console;
pub mod fanout;
pub mod frame;
pub mod health;
pub mod history;
pub mod http_api;
pub mod listener;
pub mod memory;
pub mod metrics;
pub mod presence;
pub mod reads;
pub mod state;
pub mod tls;
pub mod user_status;
pub mod users;
pub mod webhooks;
pub mod wire;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use tokio_util::sync::CancellationToken;

pub use config::Config;
pub use state::Shared;

/// Routes an embedding binary adds to the server's, built once the shared state exists. They
/// answer every path the server does not (their fallback included); [`router`] adds none.
pub type ExtraRoutes = Box<dyn FnOnce(&Shared) -> Router<Shared> + Send>;

/// Builds the router for a shared state: WebSocket, HTTP API, health, metrics, authorization;
/// unknown paths get a JSON 404.
pub fn router(shared: Shared) -> Router {
    router_with(shared, only_the_servers())
}

/// No extra routes: unknown paths get the HTTP API's JSON 404.
fn only_the_servers() -> ExtraRoutes {
    Box::new(|_| Router::new().fallback(http_api::not_found))
}

fn router_with(shared: Shared, extra: ExtraRoutes) -> Router {
    let limit = shared.config().deadlines.request;
    Router::new()
        .merge(connection::routes())
        .merge(
            http_api::routes().route_layer(axum::middleware::from_fn_with_state(
                shared.clone(),
                metrics::count_api,
            )),
        )
        .merge(console::routes(&shared))
        .merge(health::routes())
        .merge(metrics::routes(&shared.config().metrics))
        .merge(authz::routes(shared.config()))
        .merge(extra(&shared))
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
    serve_with(listener, config, shutdown, only_the_servers()).await
}

/// [`serve_on`] with `extra` routes next to the server's.
pub async fn serve_with(
    listener: tokio::net::TcpListener,
    config: Config,
    shutdown: CancellationToken,
    extra: ExtraRoutes,
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
    if let Some(cluster) = shared.cluster() {
        cluster::start(cluster, Arc::new(shared.clone()));
    }
    let deliveries: Vec<_> = shared.apps().filter_map(webhooks::start).collect();
    tracing::info!(%local, "listening");
    tokio::spawn(tls::reload_on_change(tls.clone(), shutdown.clone()));
    let scheme = if tls.is_some() { "wss" } else { "ws" };
    println!("Overtone listening on {scheme}://{local}/app/{{key}}");
    let deadlines = shared.config().deadlines;
    let app = router_with(shared.clone(), extra);
    listener::serve(listener, app, deadlines, tls, shutdown).await;
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

/// Cancels `shutdown` on SIGINT or SIGTERM.
pub async fn cancel_on_signal(shutdown: CancellationToken) {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    let term = async {
        if let Ok(mut term) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            term.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down");
    shutdown.cancel();
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
    // Events already answered for reach their subscribers before the 4200 closes.
    for app in shared.apps() {
        app.fanout.flushed().await;
    }
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
    use crate::config::AppConfig;

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

    /// Events answered for before the closing reach their subscribers before it: the
    /// connections close once `shared.shutdown()` is cancelled.
    #[tokio::test(flavor = "current_thread")]
    async fn shutdown_delivers_queued_fanouts_before_closing() {
        use crate::channels::{Closer, ConnectionHandle, SocketId};
        const EVENTS: usize = 20_000;
        let mut config = Config::for_tests(AppConfig::new("a", "k", "s"));
        config.shutdown_drain = Duration::ZERO;
        let shared = Shared::new(config, CancellationToken::new());
        let app = shared.app_by_id("a").unwrap().clone();
        let (tx, mut rx) = tokio::sync::mpsc::channel(EVENTS + 1);
        let conn = ConnectionHandle::new(SocketId::from("1.1"), tx, Arc::new(Closer::default()));
        app.channels.subscribe("chat", &conn, None, 100).unwrap();
        // Far more than the fanout task sends before the drain delay's timer fires.
        let event = frame::channel_event("chat", "e", "1", None);
        (0..EVENTS).for_each(|_| app.publish("chat", &event, None));
        let asked = CancellationToken::new();
        asked.cancel();
        let received_at_close = async {
            shared.shutdown().cancelled().await;
            std::iter::from_fn(|| rx.try_recv().ok()).count()
        };
        let ((), received) =
            tokio::join!(drain_then_close(shared.clone(), asked), received_at_close);
        assert_eq!(received, EVENTS + 1, "the confirmation and every event");
    }

    #[test]
    fn extra_routes_may_bring_their_own_fallback() {
        let shared = Shared::new(
            Config::for_tests(AppConfig::new("a", "k", "s")),
            CancellationToken::new(),
        );
        let site = Router::new()
            .route("/site/api", axum::routing::get(|| async { "api" }))
            .fallback(|| async { "a page" });
        let _ = router_with(shared, Box::new(|_| site));
    }
}
