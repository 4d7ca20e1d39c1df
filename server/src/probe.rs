//! `overtone health`: the container's health check. An image `FROM scratch` has no shell or
//! curl for `HEALTHCHECK` to run, so the binary asks its own server: exit 0 if the URL answers
//! 200, 1 otherwise (with the reason on stderr).

use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

/// Flags of `overtone health`.
#[derive(Args, Debug)]
pub struct HealthArgs {
    /// What to ask [default: /ready on 127.0.0.1, the port of OVERTONE_PORT or 8080, https if
    /// OVERTONE_TLS_CERT is set]. The certificate is not checked: the name it is for is not
    /// 127.0.0.1.
    #[arg(long, env = "OVERTONE_HEALTH_URL")]
    pub url: Option<String>,
    /// Seconds to wait for the answer.
    #[arg(long, default_value_t = 3)]
    pub timeout: u64,
}

pub fn run(args: HealthArgs, runtime: &tokio::runtime::Runtime) -> ExitCode {
    let url = args.url.unwrap_or_else(|| {
        let set = |name| std::env::var(name).ok().filter(|v| !v.is_empty());
        let scheme = if set("OVERTONE_TLS_CERT").is_some() {
            "https"
        } else {
            "http"
        };
        let port = set("OVERTONE_PORT").unwrap_or_else(|| "8080".into());
        format!("{scheme}://127.0.0.1:{port}/ready")
    });
    let asked = runtime.block_on(async {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(args.timeout))
            .danger_accept_invalid_certs(true)
            .build()
            .map_err(|err| err.to_string())?;
        let response = client
            .get(&url)
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
            eprintln!("overtone health: {url}: {err}");
            ExitCode::FAILURE
        }
    }
}
