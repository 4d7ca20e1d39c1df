//! The main port's TCP connections until they become WebSockets: accepting (an accept error,
//! EMFILE included, never stops the server), `TCP_NODELAY`, HTTP/1.1 with a deadline for each
//! request head and for each request's handling (its body included), a bound on connections
//! not yet upgraded, and graceful shutdown. With TLS ([`crate::tls`]) the handshake comes
//! first, under the request-head deadline and inside the same bound. A WebSocket leaves this
//! module's count when it upgrades; from then on [`crate::connection`] and its activity timeout
//! own it.
//!
//! Why not `axum::serve`: it sets no deadlines, so a socket that sends nothing, a head sent a
//! byte a second or a body announced and never sent held a file descriptor forever, and enough
//! of them stopped `/up` and new WebSockets.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::tls::Tls;

/// How long HTTP clients get (the config's; these defaults unless a test shortens them).
#[derive(Debug, Clone, Copy)]
pub struct Deadlines {
    /// To send a request head, the first and every next one on the connection.
    pub head: Duration,
    /// For one request, from its head to its answer, reading its body included.
    pub request: Duration,
}

impl Default for Deadlines {
    fn default() -> Deadlines {
        Deadlines {
            head: Duration::from_secs(10),
            request: Duration::from_secs(30),
        }
    }
}

/// Most connections not yet upgraded, whatever the fd limit (half of it when lower).
const MAX_UNUPGRADED: usize = 10_000;
/// The pause after an accept error that is not the one connection's fault (EMFILE, ENFILE,
/// ENOBUFS): the next accept could only fail the same way at once.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Serves `router` on `listener` (over TLS if `tls`) until `shutdown`; then stops accepting,
/// lets every request in progress finish (idle connections close at once) and returns once
/// they are done.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    deadlines: Deadlines,
    tls: Option<Tls>,
    shutdown: CancellationToken,
) {
    let limit = unupgraded_limit();
    let slots = Arc::new(Semaphore::new(limit));
    let mut saturated = false;
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    on_accept_error(err).await;
                    continue;
                }
            },
            _ = shutdown.cancelled() => break,
        };
        // Over the bound, the newcomer is closed at once: its descriptor is back, and the
        // connections already open time out on their own.
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            if !std::mem::replace(&mut saturated, true) {
                tracing::warn!(
                    limit,
                    "too many connections not yet upgraded: closing new ones"
                );
            }
            continue;
        };
        saturated = false;
        // Events are small and latency-sensitive: send each as soon as it is written rather
        // than letting Nagle's algorithm hold it back to coalesce it with later ones.
        if let Err(err) = tcp.set_nodelay(true) {
            tracing::debug!(%err, "could not set TCP_NODELAY");
        }
        let service = TowerToHyperService::new(router.clone());
        let shutdown = shutdown.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let served = match tls {
                None => serve_http(tcp, service, deadlines, &shutdown).await,
                Some(tls) => match handshake(&tls, tcp, deadlines.head, &shutdown).await {
                    Ok(stream) => serve_http(stream, service, deadlines, &shutdown).await,
                    Err(err) => Err(err),
                },
            };
            if let Err(err) = served {
                tracing::debug!(%peer, %err, "HTTP connection ended");
            }
            // Upgraded or closed: either way no longer this module's.
            drop(slot);
        });
    }
    // Every slot back: every HTTP connection has finished or upgraded.
    let _ = slots.acquire_many(limit as u32).await;
}

/// The TLS handshake, given as long as a request head: a client that never finishes it is
/// dropped then (or at shutdown), its slot and descriptor back.
async fn handshake(
    tls: &Tls,
    tcp: tokio::net::TcpStream,
    limit: Duration,
    shutdown: &CancellationToken,
) -> Result<tokio_rustls::server::TlsStream<tokio::net::TcpStream>, String> {
    tokio::select! {
        done = tokio::time::timeout(limit, tls.accept(tcp)) => match done {
            Ok(stream) => stream.map_err(|err| format!("TLS handshake failed: {err}")),
            Err(_) => Err("TLS handshake took too long".into()),
        },
        _ = shutdown.cancelled() => Err("shutting down during the TLS handshake".into()),
    }
}

/// HTTP/1.1 on one connection (plain TCP or TLS) until it closes, upgrades or, after
/// `shutdown`, finishes its request in progress.
async fn serve_http<Io>(
    io: Io,
    service: TowerToHyperService<Router>,
    deadlines: Deadlines,
    shutdown: &CancellationToken,
) -> Result<(), String>
where
    Io: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let connection = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(deadlines.head)
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
    tokio::pin!(connection);
    let served = tokio::select! {
        served = connection.as_mut() => served,
        _ = shutdown.cancelled() => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    served.map_err(|err| err.to_string())
}

/// The bound on connections not yet upgraded: [`MAX_UNUPGRADED`], or half the process's fd
/// limit if lower (the other half for WebSockets, Redis and webhooks).
fn unupgraded_limit() -> usize {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid rlimit for getrlimit to write.
    let soft = match unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } {
        0 => usize::try_from(limit.rlim_cur).unwrap_or(usize::MAX),
        _ => usize::MAX,
    };
    MAX_UNUPGRADED.min(soft / 2).max(1)
}

/// Errors of one connection (reset before it was accepted) cost nothing; running out of
/// descriptors or buffers gets a pause, never the end of accepting.
async fn on_accept_error(err: std::io::Error) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(
        err.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset
    ) {
        return;
    }
    tracing::warn!(%err, "accept failed; retrying");
    tokio::time::sleep(ACCEPT_BACKOFF).await;
}

/// Middleware: a request not answered within `limit` ([`Deadlines::request`]: a body announced
/// and sent slowly, or never) gets 408 with a JSON error, and its connection is closed.
pub async fn deadline(State(limit): State<Duration>, request: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            let body = Json(serde_json::json!({ "error": "Request took too long" }));
            let mut response = (StatusCode::REQUEST_TIMEOUT, body).into_response();
            response.headers_mut().insert(
                axum::http::header::CONNECTION,
                axum::http::HeaderValue::from_static("close"),
            );
            response
        }
    }
}
