//! The server under test: its address (loopback only), app credentials and, optionally, its
//! process id for memory and CPU figures.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use clap::Args;
use overtone_protocol::signature;

use super::Result;

#[derive(Args)]
pub struct TargetArgs {
    /// The server's WebSocket base URL; only loopback addresses are accepted.
    #[arg(long, default_value = "ws://127.0.0.1:8080")]
    url: String,
    #[arg(long, default_value = "bench-app")]
    app_id: String,
    #[arg(long, default_value = "bench-key")]
    app_key: String,
    #[arg(long, default_value = "bench-secret")]
    app_secret: String,
    /// The server's process id: memory (RSS) and CPU time figures are read from /proc/PID.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Loopback addresses to connect from, in turn (e.g. 127.0.0.2,127.0.0.3): each one has
    /// its own ephemeral ports, so one machine can open more connections to a server than one
    /// source address allows. Default: the system's choice.
    #[arg(long, value_delimiter = ',')]
    source_addrs: Vec<IpAddr>,
}

/// Where and as which app the bench talks to the server.
#[derive(Clone)]
pub struct Target {
    pub addr: SocketAddr,
    pub app_id: String,
    pub app_key: String,
    pub app_secret: String,
    pub server_pid: Option<u32>,
    /// Where connections come from, in turn (empty: the system's choice).
    sources: Arc<[IpAddr]>,
    next_source: Arc<AtomicUsize>,
}

impl TargetArgs {
    pub fn resolve(self) -> Result<Target> {
        let authority = self
            .url
            .strip_prefix("ws://")
            .ok_or_else(|| format!("--url {}: expected ws://127.0.0.1:PORT", self.url))?
            .trim_end_matches('/');
        let authority = authority.replacen("localhost:", "127.0.0.1:", 1);
        let addr: SocketAddr = authority
            .parse()
            .map_err(|_| format!("--url {}: expected ws://127.0.0.1:PORT", self.url))?;
        // Load is only ever sent to this machine.
        if !addr.ip().is_loopback() {
            return Err(format!(
                "--url {}: only loopback servers may be benchmarked",
                self.url
            ));
        }
        if let Some(pid) = self.server_pid {
            super::procfs::sample(pid)?;
        }
        if let Some(ip) = self.source_addrs.iter().find(|ip| !ip.is_loopback()) {
            return Err(format!(
                "--source-addrs {ip}: only loopback addresses may be used"
            ));
        }
        Ok(Target {
            addr,
            app_id: self.app_id,
            app_key: self.app_key,
            app_secret: self.app_secret,
            server_pid: self.server_pid,
            sources: self.source_addrs.into(),
            next_source: Arc::default(),
        })
    }
}

impl Target {
    /// A TCP connection to the server, from the next `--source-addrs` address if any.
    pub async fn connect(&self) -> std::io::Result<tokio::net::TcpStream> {
        if self.sources.is_empty() {
            return tokio::net::TcpStream::connect(self.addr).await;
        }
        let turn = self.next_source.fetch_add(1, Ordering::Relaxed);
        let source = self.sources[turn % self.sources.len()];
        let socket = match source {
            IpAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
            IpAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
        };
        socket.bind(SocketAddr::new(source, 0))?;
        socket.connect(self.addr).await
    }

    /// The URL pusher-js would open for this app.
    pub fn ws_url(&self) -> String {
        format!(
            "ws://{}/app/{}?protocol=7&client=overtone-bench&version=0.1.0&flash=false",
            self.addr, self.app_key
        )
    }

    /// The `auth` a private or presence subscription needs, signed as the app's backend would.
    pub fn channel_auth(
        &self,
        socket_id: &str,
        channel: &str,
        channel_data: Option<&str>,
    ) -> String {
        let message = signature::channel_auth_message(socket_id, channel, channel_data);
        signature::auth_token(&self.app_key, &self.app_secret, &message)
    }
}
