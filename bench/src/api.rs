//! Signed calls to the server's HTTP API (`POST /apps/{id}/events`), written as plain
//! HTTP/1.1 over one keep-alive TCP connection: cheap, so the bench's own CPU stays low.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use md5::{Digest, Md5};
use overtone_protocol::signature::{api_string_to_sign, hmac_hex};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use super::server_under_test::Target;
use super::Result;

const REPLY_TIMEOUT: Duration = Duration::from_secs(10);

/// A keep-alive connection to the HTTP API of one app.
pub struct Api {
    target: Target,
    stream: Option<BufReader<TcpStream>>,
}

impl Api {
    pub fn new(target: &Target) -> Self {
        Self {
            target: target.clone(),
            stream: None,
        }
    }

    /// Triggers event `name` with string `data` on `channels`; Ok once the server answered 2xx.
    pub async fn trigger(&mut self, name: &str, channels: &[String], data: &str) -> Result<()> {
        let body = json!({ "name": name, "channels": channels, "data": data }).to_string();
        let path = format!("/apps/{}/events", self.target.app_id);
        let (status, reply) = tokio::time::timeout(REPLY_TIMEOUT, self.post(&path, &body))
            .await
            .map_err(|_| format!("POST {path}: no answer within 10 s"))??;
        if !(200..300).contains(&status) {
            return Err(format!("POST {path}: HTTP {status}: {}", reply.trim()));
        }
        Ok(())
    }

    async fn post(&mut self, path: &str, body: &str) -> Result<(u16, String)> {
        let failed = |err: std::io::Error| format!("POST {path} to {}: {err}", self.target.addr);
        let request = self.signed_request(path, body);
        let stream = match &mut self.stream {
            Some(stream) => stream,
            None => {
                let tcp = TcpStream::connect(self.target.addr).await.map_err(failed)?;
                tcp.set_nodelay(true).map_err(failed)?;
                self.stream.insert(BufReader::new(tcp))
            }
        };
        let result = exchange(stream, request.as_bytes()).await;
        match result {
            Ok((status, reply, keep_alive)) => {
                if !keep_alive {
                    self.stream = None;
                }
                Ok((status, reply))
            }
            Err(err) => {
                self.stream = None;
                Err(failed(err))
            }
        }
    }

    fn signed_request(&self, path: &str, body: &str) -> String {
        let timestamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let body_md5 = hex::encode(Md5::digest(body.as_bytes()));
        let timestamp = timestamp.to_string();
        let params = [
            ("auth_key", self.target.app_key.as_str()),
            ("auth_timestamp", timestamp.as_str()),
            ("auth_version", "1.0"),
            ("body_md5", body_md5.as_str()),
        ];
        let signature = hmac_hex(
            &self.target.app_secret,
            &api_string_to_sign("POST", path, params),
        );
        let query: String = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(params)
            .append_pair("auth_signature", &signature)
            .finish();
        format!(
            "POST {path}?{query} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: keep-alive\r\n\r\n{body}",
            self.target.addr,
            body.len()
        )
    }
}

/// Writes one request and reads its response: (status, body, whether the connection stays open).
async fn exchange(
    stream: &mut BufReader<TcpStream>,
    request: &[u8],
) -> std::io::Result<(u16, String, bool)> {
    let invalid =
        |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_owned());
    stream.get_mut().write_all(request).await?;
    let mut line = String::new();
    stream.read_line(&mut line).await?;
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| invalid("not an HTTP response"))?;
    let (mut content_length, mut chunked, mut keep_alive) = (None, false, true);
    loop {
        line.clear();
        if stream.read_line(&mut line).await? == 0 {
            return Err(invalid("connection closed inside the headers"));
        }
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        let Some((name, value)) = header.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match name.to_ascii_lowercase().as_str() {
            "content-length" => content_length = value.parse::<usize>().ok(),
            "transfer-encoding" => chunked = value.eq_ignore_ascii_case("chunked"),
            "connection" => keep_alive = !value.eq_ignore_ascii_case("close"),
            _ => {}
        }
    }
    let mut body = Vec::new();
    if chunked {
        loop {
            line.clear();
            stream.read_line(&mut line).await?;
            let size = usize::from_str_radix(line.trim().split(';').next().unwrap_or(""), 16)
                .map_err(|_| invalid("bad chunk size"))?;
            let mut chunk = vec![0; size + 2]; // the chunk and its CRLF
            stream.read_exact(&mut chunk).await?;
            if size == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..size]);
        }
    } else if let Some(length) = content_length {
        body.resize(length, 0);
        stream.read_exact(&mut body).await?;
    } else {
        stream.read_to_end(&mut body).await?;
        keep_alive = false;
    }
    Ok((
        status,
        String::from_utf8_lossy(&body).into_owned(),
        keep_alive,
    ))
}
