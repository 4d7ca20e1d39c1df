//! `overtone health`: the container's health check. An image `FROM scratch` has no shell or
//! curl for `HEALTHCHECK` to run, so the binary asks its own server: exit 0 if the URL answers
//! 200, 1 otherwise (with the reason on stderr).

use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

/// Flags of `overtone health`.
#[derive(Args, Debug)]
pub struct HealthArgs {
    /// What to ask: `/ready` (503 while draining) or `/up`. With TLS use https://; the
    /// certificate is not checked, since the name it is for is not 127.0.0.1.
    #[arg(
        long,
        env = "OVERTONE_HEALTH_URL",
        default_value = "http://127.0.0.1:8080/ready"
    )]
    pub url: String,
    /// Seconds to wait for the answer.
    #[arg(long, default_value_t = 3)]
    pub timeout: u64,
}

pub fn run(args: HealthArgs, runtime: &tokio::runtime::Runtime) -> ExitCode {
    let asked = runtime.block_on(async {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(args.timeout))
            .danger_accept_invalid_certs(true)
            .build()
            .map_err(|err| err.to_string())?;
        let response = client
            .get(&args.url)
            .send()
            .await
            .map_err(|err| err.to_string())?;
        match response.status() {
            reqwest::StatusCode::OK => Ok(()),
            status => Err(format!("{status}")),
        }
    });
    match asked {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("overtone health: {}: {err}", args.url);
            ExitCode::FAILURE
        }
    }
}
