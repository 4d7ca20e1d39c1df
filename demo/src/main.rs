//! `overtone-demo`: the Overtone server with the demo added next to it, as an app's backend sits
//! next to its realtime server. It embeds the server library (every `overtone serve` flag works
//! here) and adds the demo's routes: the site (`demo/site/`) at `/`, the built npm package at
//! `/pkg/` and the backend under `/demo/api/` ([`site`], [`chat`], [`direct`], [`seats`]). The product
//! binary, `overtone`, has none of this.

mod chat;
mod direct;
mod seats;
mod site;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use overtone_server::config::ServeArgs;
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(
    name = "overtone-demo",
    version,
    about = "The Overtone server with its demo site: chat, a live seat map, notifications"
)]
struct Cli {
    #[command(flatten)]
    serve: ServeArgs,
    /// The folder served at `/` [default: demo/site of the checkout]. Tests serve their own
    /// pages from here.
    #[arg(long, env = "OVERTONE_DEMO_SITE")]
    site_dir: Option<PathBuf>,
    /// The built npm package, served at `/pkg/` [default: pkg-js/dist of the checkout].
    #[arg(long, env = "OVERTONE_DEMO_PACKAGE")]
    package_dir: Option<PathBuf>,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("OVERTONE_LOG")
                .unwrap_or_else(|_| "overtone_server=info,overtone_demo=info".into()),
        )
        .init();
    let cli = Cli::parse();
    let mut config = match cli.serve.into_config() {
        Ok(config) => config,
        Err(err) => {
            eprintln!("overtone-demo: {err}");
            return ExitCode::from(2);
        }
    };
    let checkout = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
    let files = site::Files {
        site: cli.site_dir.unwrap_or_else(|| checkout.join("demo/site")),
        package: cli
            .package_dir
            .unwrap_or_else(|| checkout.join("pkg-js/dist")),
    };
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let served = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind((config.host, config.port)).await?;
        let mut addr = listener.local_addr()?;
        println!("Overtone demo: http://{addr}/");
        // The server asks the demo itself about direct messages: over loopback when it listens
        // on every address.
        if addr.ip().is_unspecified() {
            addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
        }
        let scheme = if config.tls.is_some() {
            "https"
        } else {
            "http"
        };
        site::configure_first_app(&mut config.apps, &format!("{scheme}://{addr}"));
        let shutdown = CancellationToken::new();
        tokio::spawn(overtone_server::cancel_on_signal(shutdown.clone()));
        let routes = Box::new(move |shared: &_| site::routes(&files, shared));
        overtone_server::serve_with(listener, config, shutdown, routes).await
    });
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("overtone-demo: {err}");
            ExitCode::FAILURE
        }
    }
}
