//! Server configuration: the `serve` flags (each with an `OVERTONE_*` environment variable,
//! falling back to Reverb's `REVERB_*` names so a Laravel `.env` works as is), the optional
//! TOML config file (`--config`, see `server/overtone.example.toml`) and the apps it declares.
//!
//! Precedence for the listen address: flag / `OVERTONE_*` > config file > `REVERB_SERVER_*` >
//! default. Apps: every `[[apps]]` of the file, plus the app given by the flags / `OVERTONE_APP_*`
//! / `REVERB_APP_*` if any; with neither, one app with default credentials.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use serde::Deserialize;

use crate::cluster::RedisConfig;
use crate::webhooks::WebhookConfig;

const DEFAULT_APP_ID: &str = "app-id";
const DEFAULT_APP_KEY: &str = "app-key";
const DEFAULT_APP_SECRET: &str = "app-secret";
const DEFAULT_HOST: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);
const DEFAULT_PORT: u16 = 8080;
const DEFAULT_ACTIVITY_TIMEOUT_SECS: u64 = 30;
const DEFAULT_REDIS_PREFIX: &str = "overtone";
const DEFAULT_SHUTDOWN_GRACE_SECS: u64 = 10;
/// Seconds between SIGTERM (`/ready` turning 503) and no longer accepting connections.
const DEFAULT_SHUTDOWN_DRAIN_SECS: f64 = 1.0;

/// Flags of `overtone serve`.
#[derive(Args, Debug, Clone)]
pub struct ServeArgs {
    /// TOML file declaring the server and its apps (see server/overtone.example.toml).
    #[arg(long, env = "OVERTONE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1; fallback env REVERB_SERVER_HOST].
    #[arg(long, env = "OVERTONE_HOST")]
    pub host: Option<IpAddr>,
    /// Port to listen on, 0 picks a free one [default: 8080; fallback env REVERB_SERVER_PORT].
    #[arg(long, env = "OVERTONE_PORT")]
    pub port: Option<u16>,
    /// Seconds of silence announced to clients before they ping (stale after twice that).
    #[arg(long, env = "OVERTONE_ACTIVITY_TIMEOUT")]
    pub activity_timeout: Option<u64>,
    /// The app's id, used in HTTP API paths (`/apps/{id}/...`) [fallback env REVERB_APP_ID].
    #[arg(long, env = "OVERTONE_APP_ID")]
    pub app_id: Option<String>,
    /// The app's public key, used in WebSocket URLs (`/app/{key}`) [fallback env REVERB_APP_KEY].
    #[arg(long, env = "OVERTONE_APP_KEY")]
    pub app_key: Option<String>,
    /// The app's secret, signing channel auth and API requests [fallback env REVERB_APP_SECRET].
    #[arg(long, env = "OVERTONE_APP_SECRET")]
    pub app_secret: Option<String>,
    /// Redis shared by every node of a cluster (`redis://host:port/db`), or a Redis Cluster's
    /// seed nodes, comma-separated (`redis://h1:7000,redis://h2:7000,...`: two or more URLs
    /// mean a Redis Cluster); without it this node is alone and keeps everything in memory.
    #[arg(long, env = "OVERTONE_REDIS_URL")]
    pub redis_url: Option<String>,
    /// Starts every Redis key and channel, so deployments sharing a Redis stay apart
    /// [default: overtone].
    #[arg(long, env = "OVERTONE_REDIS_PREFIX")]
    pub redis_prefix: Option<String>,
    /// Seconds shutdown waits for connections to close after asking them to (4200) [default: 10].
    #[arg(long, env = "OVERTONE_SHUTDOWN_GRACE")]
    pub shutdown_grace: Option<u64>,
    /// Seconds between SIGTERM/SIGINT and closing: `/ready` answers 503 at once so the load
    /// balancer stops sending new clients, while this node keeps serving (fractions allowed)
    /// [default: 1].
    #[arg(long, env = "OVERTONE_SHUTDOWN_DRAIN")]
    pub shutdown_drain: Option<f64>,
    /// The bearer token `/metrics` asks for (`Authorization: Bearer TOKEN`); without it or
    /// --metrics-addr, `/metrics` is off.
    #[arg(long, env = "OVERTONE_METRICS_TOKEN")]
    pub metrics_token: Option<String>,
    /// Serve `/metrics` on this address (e.g. 127.0.0.1:9090) instead of the main port.
    #[arg(long, env = "OVERTONE_METRICS_ADDR")]
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// Serve the operator's console at `/console` (needs --console-token).
    #[arg(long, env = "OVERTONE_CONSOLE")]
    pub console: bool,
    /// The admin token the console asks for (never an app secret).
    #[arg(long, env = "OVERTONE_CONSOLE_TOKEN")]
    pub console_token: Option<String>,
    /// Serve `wss://` and `https://` with this PEM certificate chain (leaf first; needs
    /// --tls-key); reloaded on SIGHUP or when the file changes.
    #[arg(long, env = "OVERTONE_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, env = "OVERTONE_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
}

/// One app: its credentials, what its clients may do and its limits.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppConfig {
    pub id: String,
    pub key: String,
    pub secret: String,
    /// A disabled app refuses connections (4003) and API calls (403).
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Whether subscribed members may send `client-*` events (on by default, as Reverb does).
    #[serde(default = "yes")]
    pub client_events: bool,
    /// Browser origins allowed to connect: `*`, a full origin (`https://app.test`), a host
    /// (`app.test`) or a wildcard host (`*.app.test`). Empty means all. Clients that send no
    /// `Origin` (servers, native apps) are not browsers and are always let in.
    #[serde(default)]
    pub allowed_origins: Vec<String>,
    /// Most simultaneous connections; more are refused with 4004. None: no limit.
    #[serde(default)]
    pub max_connections: Option<usize>,
    #[serde(default = "default_max_presence_members")]
    pub max_presence_members: usize,
    #[serde(default = "default_max_user_info_bytes")]
    pub max_user_info_bytes: usize,
    /// Send `pusher_internal:subscription_count` to non-presence channels' subscribers.
    #[serde(default)]
    pub subscription_count: bool,
    /// Client events one connection may send per second; more get `pusher:error` 4301.
    #[serde(default = "default_max_client_events_per_second")]
    pub max_client_events_per_second: u32,
    /// Largest event payload (API or client event), in bytes; the API answers 413 above it.
    #[serde(default = "default_max_event_bytes")]
    pub max_event_bytes: usize,
    #[serde(default = "default_max_channels_per_event")]
    pub max_channels_per_event: usize,
    #[serde(default = "default_max_batch_size")]
    pub max_batch_size: usize,
    /// Endpoints that get Pusher-style webhooks.
    #[serde(default)]
    pub webhooks: Vec<WebhookConfig>,
    /// Channel authorization by the server itself (`/broadcasting/auth`); see [`crate::authz`].
    #[serde(default)]
    pub authz: Option<crate::authz::AuthzConfig>,
    /// Which channels keep history, and how much (the first matching rule decides). None
    /// configured: every channel, 100 events, 300 s. See [`crate::history`].
    #[serde(default)]
    pub history: Vec<crate::history::HistoryRule>,
    /// Most bytes of history this node keeps in memory for the app, all channels together;
    /// over it, a channel that publishes keeps only its newest event.
    #[serde(default = "default_history_max_bytes")]
    pub history_max_bytes: usize,
    /// How long a presence member whose last connection closed stays a member (milliseconds;
    /// 0, the default: none): a reload within it is no `member_removed` + `member_added`.
    #[serde(default)]
    pub presence_grace_ms: u64,
}

fn yes() -> bool {
    true
}
fn default_max_presence_members() -> usize {
    100
}
fn default_max_user_info_bytes() -> usize {
    1024
}
fn default_max_client_events_per_second() -> u32 {
    10
}
fn default_max_event_bytes() -> usize {
    10 * 1024
}
fn default_max_channels_per_event() -> usize {
    100
}
fn default_max_batch_size() -> usize {
    10
}
fn default_history_max_bytes() -> usize {
    64 * 1024 * 1024
}

impl AppConfig {
    /// An app with the given credentials and every other setting at its default.
    pub fn new(id: &str, key: &str, secret: &str) -> AppConfig {
        AppConfig {
            id: id.into(),
            key: key.into(),
            secret: secret.into(),
            enabled: true,
            client_events: true,
            allowed_origins: Vec::new(),
            max_connections: None,
            max_presence_members: default_max_presence_members(),
            max_user_info_bytes: default_max_user_info_bytes(),
            subscription_count: false,
            max_client_events_per_second: default_max_client_events_per_second(),
            max_event_bytes: default_max_event_bytes(),
            max_channels_per_event: default_max_channels_per_event(),
            max_batch_size: default_max_batch_size(),
            webhooks: Vec::new(),
            authz: None,
            history: Vec::new(),
            history_max_bytes: default_history_max_bytes(),
            presence_grace_ms: 0,
        }
    }

    /// Whether `allowed_origins` names the sites it allows: not empty, no `*`. Only then may a
    /// browser send credentials (a session cookie) from another origin.
    pub fn origins_are_explicit(&self) -> bool {
        !self.allowed_origins.is_empty() && !self.allowed_origins.iter().any(|o| o == "*")
    }

    /// Whether a browser at `origin` may connect (see [`AppConfig::allowed_origins`]).
    pub fn allows_origin(&self, origin: &str) -> bool {
        if self.allowed_origins.is_empty() {
            return true;
        }
        let host = origin.split_once("://").map_or(origin, |(_, rest)| rest);
        let host = host.rsplit_once(':').map_or(host, |(h, port)| {
            if port.bytes().all(|b| b.is_ascii_digit()) {
                h
            } else {
                host
            }
        });
        self.allowed_origins.iter().any(|allowed| {
            allowed == "*"
                || allowed.eq_ignore_ascii_case(origin)
                || allowed.eq_ignore_ascii_case(host)
                || allowed.strip_prefix("*.").is_some_and(|domain| {
                    // Bytes, not str slices: a cut inside a multi-byte character cannot panic.
                    let (host, domain) = (host.as_bytes(), domain.as_bytes());
                    host.len() > domain.len() + 1
                        && host[host.len() - domain.len()..].eq_ignore_ascii_case(domain)
                        && host[host.len() - domain.len() - 1] == b'.'
                })
        })
    }
}

/// The config file's shape.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    #[serde(default)]
    server: ServerSection,
    #[serde(default)]
    apps: Vec<AppConfig>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ServerSection {
    host: Option<IpAddr>,
    port: Option<u16>,
    activity_timeout: Option<u64>,
    redis_url: Option<String>,
    redis_prefix: Option<String>,
    shutdown_grace: Option<u64>,
    shutdown_drain: Option<f64>,
    metrics_token: Option<String>,
    metrics_addr: Option<std::net::SocketAddr>,
    console_token: Option<String>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
}

/// Everything the server needs to start.
#[derive(Debug, Clone)]
pub struct Config {
    pub host: IpAddr,
    pub port: u16,
    /// Announced to clients in `connection_established`; a connection silent for twice this
    /// is pinged, and closed with 4201 if it stays silent for this long again.
    pub activity_timeout: Duration,
    pub apps: Vec<AppConfig>,
    /// The Redis this node shares with the others, if it is one of several.
    pub redis: Option<RedisConfig>,
    /// How long shutdown waits for connections to close.
    pub shutdown_grace: Duration,
    /// How long a shutting-down node keeps serving, not ready, before it closes.
    pub shutdown_drain: Duration,
    /// Who may read `/metrics`.
    pub metrics: crate::metrics::Access,
    /// How long HTTP clients get to send a request head and to finish a request.
    pub deadlines: crate::listener::Deadlines,
    /// The operator's console's admin token; the console is off without one.
    pub console_token: Option<String>,
    /// The certificate and key to serve TLS with, if any.
    pub tls: Option<crate::tls::TlsFiles>,
}

impl Config {
    /// A loopback server on a free port with one app; what tests and benches start from.
    pub fn for_tests(app: AppConfig) -> Config {
        Config {
            host: DEFAULT_HOST,
            port: 0,
            activity_timeout: Duration::from_secs(DEFAULT_ACTIVITY_TIMEOUT_SECS),
            apps: vec![app],
            redis: None,
            shutdown_grace: Duration::from_secs(DEFAULT_SHUTDOWN_GRACE_SECS),
            shutdown_drain: Duration::ZERO,
            metrics: Default::default(),
            deadlines: Default::default(),
            console_token: None,
            tls: None,
        }
    }
}

/// Reads an environment variable, treating empty as unset (Laravel `.env` files often have `KEY=`).
fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

impl ServeArgs {
    pub fn into_config(self) -> Result<Config, String> {
        let file = match &self.config {
            Some(path) => read_config_file(path)?,
            None => ConfigFile::default(),
        };
        let host = match self.host.or(file.server.host) {
            Some(host) => host,
            None => match env("REVERB_SERVER_HOST") {
                Some(h) => h
                    .parse()
                    .map_err(|_| format!("REVERB_SERVER_HOST={h} is not an IP address"))?,
                None => DEFAULT_HOST,
            },
        };
        let port = match self.port.or(file.server.port) {
            Some(port) => port,
            None => match env("REVERB_SERVER_PORT") {
                Some(p) => p
                    .parse()
                    .map_err(|_| format!("REVERB_SERVER_PORT={p} is not a port"))?,
                None => DEFAULT_PORT,
            },
        };
        let activity_timeout = self
            .activity_timeout
            .or(file.server.activity_timeout)
            .unwrap_or(DEFAULT_ACTIVITY_TIMEOUT_SECS);
        if activity_timeout == 0 {
            return Err("activity_timeout must be at least 1 second".into());
        }

        let mut apps = file.apps;
        let id = self.app_id.or_else(|| env("REVERB_APP_ID"));
        let key = self.app_key.or_else(|| env("REVERB_APP_KEY"));
        let secret = self.app_secret.or_else(|| env("REVERB_APP_SECRET"));
        if apps.is_empty() || id.is_some() || key.is_some() || secret.is_some() {
            let app = AppConfig::new(
                id.as_deref().unwrap_or(DEFAULT_APP_ID),
                key.as_deref().unwrap_or(DEFAULT_APP_KEY),
                secret.as_deref().unwrap_or(DEFAULT_APP_SECRET),
            );
            let uses_defaults = app.id == DEFAULT_APP_ID
                || app.key == DEFAULT_APP_KEY
                || app.secret == DEFAULT_APP_SECRET;
            if uses_defaults && !host.is_loopback() {
                tracing::warn!(
                    %host,
                    "serving with default app credentials on a non-loopback address: \
                     set --app-id, --app-key and --app-secret"
                );
            }
            apps.push(app);
        }
        validate_apps(&apps)?;

        let redis = match self.redis_url.or(file.server.redis_url) {
            Some(url) => {
                let prefix = self.redis_prefix.or(file.server.redis_prefix);
                Some(RedisConfig::new(
                    &url,
                    prefix.as_deref().unwrap_or(DEFAULT_REDIS_PREFIX),
                )?)
            }
            None => None,
        };
        let drain = self
            .shutdown_drain
            .or(file.server.shutdown_drain)
            .unwrap_or(DEFAULT_SHUTDOWN_DRAIN_SECS);
        let shutdown_drain = Duration::try_from_secs_f64(drain)
            .map_err(|_| format!("shutdown_drain must be a number of seconds >= 0, not {drain}"))?;
        let metrics = crate::metrics::Access {
            token: self
                .metrics_token
                .or(file.server.metrics_token)
                .filter(|t| !t.is_empty()),
            addr: self.metrics_addr.or(file.server.metrics_addr),
        };
        let console_token = if self.console {
            let token = self.console_token.or(file.server.console_token);
            Some(console_token(token, &apps)?)
        } else {
            None
        };
        let tls = match (
            self.tls_cert.or(file.server.tls_cert),
            self.tls_key.or(file.server.tls_key),
        ) {
            (Some(cert), Some(key)) => Some(crate::tls::TlsFiles { cert, key }),
            (None, None) => None,
            _ => return Err("tls_cert and tls_key go together: give both or neither".into()),
        };
        Ok(Config {
            console_token,
            tls,
            metrics,
            deadlines: Default::default(),
            shutdown_drain,
            host,
            port,
            activity_timeout: Duration::from_secs(activity_timeout),
            apps,
            redis,
            shutdown_grace: Duration::from_secs(
                self.shutdown_grace
                    .or(file.server.shutdown_grace)
                    .unwrap_or(DEFAULT_SHUTDOWN_GRACE_SECS),
            ),
        })
    }
}

/// The console's admin token: required, long enough to resist guessing, and not an app secret
/// (whoever holds the console's token must not be able to sign as an app).
fn console_token(token: Option<String>, apps: &[AppConfig]) -> Result<String, String> {
    const MIN_BYTES: usize = 16;
    let token = token.filter(|t| !t.is_empty()).ok_or(
        "--console needs an admin token: --console-token, OVERTONE_CONSOLE_TOKEN or \
         console_token in [server]",
    )?;
    if token.len() < MIN_BYTES {
        return Err(format!(
            "the console token must be at least {MIN_BYTES} bytes"
        ));
    }
    if apps.iter().any(|app| app.secret == token) {
        return Err("the console token must not be an app's secret".into());
    }
    Ok(token)
}

fn read_config_file(path: &Path) -> Result<ConfigFile, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read config file {}: {e}", path.display()))?;
    toml::from_str(&text).map_err(|e| format!("config file {}: {e}", path.display()))
}

/// Every app needs credentials, and ids and keys must be unique.
fn validate_apps(apps: &[AppConfig]) -> Result<(), String> {
    for (i, app) in apps.iter().enumerate() {
        if app.id.is_empty() || app.key.is_empty() || app.secret.is_empty() {
            return Err(format!(
                "app #{} needs a non-empty id, key and secret",
                i + 1
            ));
        }
        if apps[..i].iter().any(|other| other.id == app.id) {
            return Err(format!("two apps have the id {:?}", app.id));
        }
        if apps[..i].iter().any(|other| other.key == app.key) {
            return Err(format!("two apps have the key {:?}", app.key));
        }
        for hook in &app.webhooks {
            hook.validate()
                .map_err(|e| format!("app {:?}: {e}", app.id))?;
        }
        crate::history::Rules::new(&app.history).map_err(|e| format!("app {:?}: {e}", app.id))?;
        let cookie = app
            .authz
            .as_ref()
            .is_some_and(|a| a.verifier.cookie.is_some());
        if cookie && !app.origins_are_explicit() {
            // Else any site the user visits could use their cookie to get channel signatures.
            return Err(format!(
                "app {:?}: [apps.authz.cookie] needs allowed_origins listing the sites that \
                 may use it (not empty, no \"*\")",
                app.id
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_file_parses_with_defaults_filled_in() {
        let text = include_str!("../overtone.example.toml");
        let file: ConfigFile = toml::from_str(text).unwrap();
        assert_eq!(file.server.port, Some(8080));
        assert_eq!(file.server.shutdown_drain, Some(1.0));
        assert_eq!(file.apps.len(), 2);
        let second = &file.apps[1];
        assert!(second.enabled && second.client_events);
        assert_eq!(second.max_presence_members, 100);
        assert_eq!(second.max_user_info_bytes, 1024);
        assert_eq!(second.webhooks.len(), 1);
        assert!(second.history.is_empty());
        let rules = crate::history::Rules::new(&file.apps[0].history).unwrap();
        assert_eq!(
            rules.for_channel("private-orders.7").unwrap().max_events,
            500
        );
        assert_eq!(rules.for_channel("presence-room"), None);
        assert_eq!(rules.for_channel("news").unwrap().max_events, 100);
        validate_apps(&file.apps).unwrap();
    }

    #[test]
    fn unknown_fields_are_errors() {
        let err = toml::from_str::<ConfigFile>(
            "[[apps]]\nid='a'\nkey='b'\nsecret='c'\nclient_event=true\n",
        );
        assert!(err.unwrap_err().to_string().contains("client_event"));
    }

    #[test]
    fn duplicate_keys_are_refused() {
        let apps = [AppConfig::new("a", "k", "s"), AppConfig::new("b", "k", "s")];
        assert!(validate_apps(&apps).unwrap_err().contains("key"));
    }

    #[test]
    fn cookie_authorization_needs_explicit_origins() {
        let authz: crate::authz::AuthzConfig = toml::from_str(
            "[cookie]\nname = 's'\nsecret = 'a-cookie-secret-of-at-least-32-bytes'\n",
        )
        .unwrap();
        let mut app = AppConfig::new("a", "k", "s");
        app.authz = Some(authz);
        for origins in [
            vec![],
            vec!["*".to_string()],
            vec!["https://app.test".into(), "*".into()],
        ] {
            app.allowed_origins = origins;
            let err = validate_apps(std::slice::from_ref(&app)).unwrap_err();
            assert!(err.contains("allowed_origins"), "{err}");
        }
        app.allowed_origins = vec!["https://app.test".into(), "*.app.test".into()];
        validate_apps(&[app]).unwrap();
    }

    #[test]
    fn the_console_token_is_required_long_and_not_an_app_secret() {
        let apps = [AppConfig::new("a", "k", "an-app-secret-of-some-length")];
        assert!(console_token(None, &apps)
            .unwrap_err()
            .contains("--console-token"));
        assert!(console_token(Some("short".into()), &apps)
            .unwrap_err()
            .contains("16 bytes"));
        let secret = Some(apps[0].secret.clone());
        assert!(console_token(secret, &apps).unwrap_err().contains("secret"));
        let token = "a-console-token-long-enough".to_string();
        assert_eq!(console_token(Some(token.clone()), &apps), Ok(token));
    }

    #[test]
    fn origin_rules() {
        let mut app = AppConfig::new("a", "k", "s");
        assert!(app.allows_origin("https://anything.example"));
        app.allowed_origins = vec![
            "https://app.test".into(),
            "admin.test".into(),
            "*.corp.test".into(),
        ];
        assert!(app.allows_origin("https://app.test"));
        assert!(!app.allows_origin("http://app.test:8000"));
        assert!(app.allows_origin("http://admin.test:8000"));
        assert!(app.allows_origin("https://a.b.corp.test"));
        assert!(!app.allows_origin("https://corp.test"));
        assert!(!app.allows_origin("https://evilcorp.test"));
        assert!(!app.allows_origin("https://evil.test"));
        assert!(!app.allows_origin("https://aaaaaaaaaaaaaé"));
    }
}
