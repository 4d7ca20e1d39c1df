//! Health checks for load balancers and orchestrators: `/up` answers 200 while the process
//! serves at all; `/ready` answers 503 from the moment the node is asked to shut down (through
//! the drain delay, while it still serves, so the load balancer stops sending it clients before
//! it stops accepting them), or when it has been cut
//! off from the cluster's Redis for longer than [`REDIS_GRACE`] (its clients would miss what
//! other nodes publish), and 200 otherwise.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;

use crate::state::Shared;

/// How long a node may be without Redis before it stops reporting ready: a Redis restart or
/// failover should not empty the load balancer.
pub const REDIS_GRACE: Duration = Duration::from_secs(5);

pub fn routes() -> Router<Shared> {
    Router::new()
        .route("/up", get(|| async { "OK" }))
        .route("/ready", get(ready))
}

async fn ready(State(shared): State<Shared>) -> (StatusCode, &'static str) {
    if shared.is_draining() {
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down");
    }
    if shared
        .cluster()
        .is_some_and(|cluster| cluster.disconnected_for(REDIS_GRACE))
    {
        return (StatusCode::SERVICE_UNAVAILABLE, "redis unreachable");
    }
    (StatusCode::OK, "ready")
}
