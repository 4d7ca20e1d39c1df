//! The `overtone` binary: parses the command line and runs a subcommand.

mod probe;

use clap::{Parser, Subcommand};
use overtone_server::config::ServeArgs;
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(
    name = "overtone",
    version,
    about = "A realtime server that speaks the Pusher protocol"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
// Parsed once at start: the variants' sizes cost nothing.
#[allow(clippy::large_enum_variant)]
enum Command {
    /// Run the server.
    Serve(ServeArgs),
    /// Print a JWT the config's [apps.authz] accepts, for trying private channels locally.
    Token(overtone_server::authz::TokenArgs),
    /// Exit 0 if the server's /ready (or the URL given) answers 200: a container health check.
    Health(probe::HealthArgs),
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("OVERTONE_LOG")
                .unwrap_or_else(|_| "overtone_server=info".into()),
        )
        .init();
    let cli = Cli::parse();
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    match cli.command {
        Command::Token(args) => match args.mint() {
            Ok(token) => {
                println!("{token}");
                std::process::ExitCode::SUCCESS
            }
            Err(err) => {
                eprintln!("overtone: {err}");
                std::process::ExitCode::from(2)
            }
        },
        Command::Health(args) => probe::run(args, &runtime),
        Command::Serve(args) => {
            let config = match args.into_config() {
                Ok(config) => config,
                Err(err) => {
                    eprintln!("overtone: {err}");
                    return std::process::ExitCode::from(2);
                }
            };
            runtime.block_on(async {
                let shutdown = CancellationToken::new();
                tokio::spawn(overtone_server::cancel_on_signal(shutdown.clone()));
                match overtone_server::serve(config, shutdown).await {
                    Ok(()) => std::process::ExitCode::SUCCESS,
                    Err(err) => {
                        eprintln!("overtone: {err}");
                        std::process::ExitCode::FAILURE
                    }
                }
            })
        }
    }
}
