//! The one handle every task shares: the configuration, the apps with their channel registries,
//! and the shutdown signal.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::channels::ChannelRegistry;
use crate::config::{AppConfig, Config};

/// Cheap to clone; everything behind it is shared.
#[derive(Clone)]
pub struct Shared(Arc<Inner>);

struct Inner {
    config: Config,
    apps_by_key: HashMap<String, Arc<App>>,
    apps_by_id: HashMap<String, Arc<App>>,
    shutdown: CancellationToken,
    /// Random per process so socket ids do not repeat across restarts.
    socket_id_prefix: u32,
    next_socket: AtomicU64,
}

/// One app at run time: its configuration and its channels.
pub struct App {
    pub config: AppConfig,
    pub channels: ChannelRegistry,
}

impl Shared {
    pub fn new(config: Config, shutdown: CancellationToken) -> Shared {
        let apps: Vec<Arc<App>> = config
            .apps
            .iter()
            .map(|app| Arc::new(App { config: app.clone(), channels: ChannelRegistry::default() }))
            .collect();
        let apps_by_key = apps.iter().map(|a| (a.config.key.clone(), a.clone())).collect();
        let apps_by_id = apps.iter().map(|a| (a.config.id.clone(), a.clone())).collect();
        Shared(Arc::new(Inner {
            config,
            apps_by_key,
            apps_by_id,
            shutdown,
            socket_id_prefix: fastrand::u32(1..1_000_000_000),
            next_socket: AtomicU64::new(1),
        }))
    }

    pub fn config(&self) -> &Config {
        &self.0.config
    }

    pub fn app_by_key(&self, key: &str) -> Option<&Arc<App>> {
        self.0.apps_by_key.get(key)
    }

    pub fn app_by_id(&self, id: &str) -> Option<&Arc<App>> {
        self.0.apps_by_id.get(id)
    }

    pub fn shutdown(&self) -> &CancellationToken {
        &self.0.shutdown
    }

    /// A new socket id in Pusher's `digits.digits` form, unique within this process.
    pub fn next_socket_id(&self) -> SocketId {
        let n = self.0.next_socket.fetch_add(1, Ordering::Relaxed);
        SocketId(format!("{}.{}", self.0.socket_id_prefix, n).into())
    }
}

/// A connection's id as the protocol shows it (`123.456`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SocketId(Arc<str>);

impl SocketId {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}
