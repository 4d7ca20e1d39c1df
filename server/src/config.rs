//! Server configuration: the `serve` flags (each with an `OVERTONE_*` environment variable) and
//! the apps the server accepts.

use std::net::IpAddr;
use std::path::PathBuf;

use clap::Args;

const DEFAULT_APP_ID: &str = "app-id";
const DEFAULT_APP_KEY: &str = "app-key";
const DEFAULT_APP_SECRET: &str = "app-secret";

/// Flags of `overtone serve`.
#[derive(Args, Debug, Clone)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "OVERTONE_HOST", default_value = "127.0.0.1")]
    pub host: IpAddr,
    /// Port to listen on (0 picks a free one).
    #[arg(long, env = "OVERTONE_PORT", default_value_t = 8080)]
    pub port: u16,
    /// The app's id, used in HTTP API paths (`/apps/{id}/...`).
    #[arg(long, env = "OVERTONE_APP_ID", default_value = DEFAULT_APP_ID)]
    pub app_id: String,
    /// The app's public key, used in WebSocket URLs (`/app/{key}`).
    #[arg(long, env = "OVERTONE_APP_KEY", default_value = DEFAULT_APP_KEY)]
    pub app_key: String,
    /// The app's secret, used to sign channel auth and API requests.
    #[arg(long, env = "OVERTONE_APP_SECRET", default_value = DEFAULT_APP_SECRET)]
    pub app_secret: String,
    /// Serve the demo page at `/`.
    #[arg(long, env = "OVERTONE_DEMO")]
    pub demo: bool,
    /// Where the demo's files are (default: `demo/` of the checkout).
    #[arg(long, env = "OVERTONE_DEMO_DIR")]
    pub demo_dir: Option<PathBuf>,
    /// Where the built npm package is, served to the demo at `/pkg/` (default: `pkg-js/dist`).
    #[arg(long, env = "OVERTONE_PACKAGE_DIR")]
    pub package_dir: Option<PathBuf>,
}

/// One app: its credentials and what its clients may do.
#[derive(Debug, Clone)]
pub struct AppConfig {
    pub id: String,
    pub key: String,
    pub secret: String,
    /// Whether subscribed members may send `client-*` events (on by default, as Reverb does).
    pub client_events: bool,
}

/// Files served in demo mode.
#[derive(Debug, Clone)]
pub struct DemoAssets {
    pub site: PathBuf,
    pub package: PathBuf,
}

/// Everything the server needs to start.
#[derive(Debug, Clone)]
pub struct Config {
    pub host: IpAddr,
    pub port: u16,
    pub apps: Vec<AppConfig>,
    pub demo: Option<DemoAssets>,
}

impl Config {
    /// A loopback server on a free port with one app; what tests and benches start from.
    pub fn for_tests(app: AppConfig) -> Config {
        Config { host: IpAddr::from([127, 0, 0, 1]), port: 0, apps: vec![app], demo: None }
    }
}

impl ServeArgs {
    pub fn into_config(self) -> Result<Config, String> {
        let uses_defaults = self.app_id == DEFAULT_APP_ID
            || self.app_key == DEFAULT_APP_KEY
            || self.app_secret == DEFAULT_APP_SECRET;
        if uses_defaults && !self.host.is_loopback() {
            tracing::warn!(
                host = %self.host,
                "serving with the default app credentials on a non-loopback address: \
                 set --app-id, --app-key and --app-secret"
            );
        }
        let demo = self.demo.then(|| {
            let root = checkout_root();
            DemoAssets {
                site: self.demo_dir.unwrap_or_else(|| root.join("demo")),
                package: self.package_dir.unwrap_or_else(|| root.join("pkg-js/dist")),
            }
        });
        Ok(Config {
            host: self.host,
            port: self.port,
            apps: vec![AppConfig {
                id: self.app_id,
                key: self.app_key,
                secret: self.app_secret,
                client_events: true,
            }],
            demo,
        })
    }
}

/// The checkout the demo's files come from: the working directory when it holds `demo/`,
/// else the one this binary was built in.
fn checkout_root() -> PathBuf {
    match std::env::current_dir() {
        Ok(cwd) if cwd.join("demo").is_dir() => cwd,
        _ => PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/..")),
    }
}
