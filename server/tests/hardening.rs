//! Abuse a live server on raw TCP: requests that hold the server's memory or sockets without
//! being entitled to, and what the server answers instead.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::{app, start, WAIT};
use overtone_server::config::Config;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Writes `head` (an HTTP request head, without its closing blank line) and returns the stream.
async fn send_head(addr: SocketAddr, head: &str) -> TcpStream {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(format!("{head}\r\nHost: 127.0.0.1\r\n\r\n").as_bytes())
        .await
        .unwrap();
    tcp
}

/// The status line and body of the response on `tcp`, read until the server ends it or has
/// sent all of it (`WAIT` at most).
async fn response(tcp: &mut TcpStream) -> (u16, String) {
    let mut bytes = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let read = tokio::time::timeout(WAIT, tcp.read(&mut buf))
            .await
            .expect("a response in time");
        match read {
            Ok(0) | Err(_) => break,
            Ok(n) => bytes.extend_from_slice(&buf[..n]),
        }
        if complete(&bytes) {
            break;
        }
    }
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_owned();
    (status, body)
}

/// Whether `bytes` hold a whole response with a `content-length` body.
fn complete(bytes: &[u8]) -> bool {
    let text = String::from_utf8_lossy(bytes);
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return false;
    };
    head.lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().parse::<usize>().ok())
        })
        .flatten()
        .is_some_and(|len| body.len() >= len)
}

#[tokio::test]
async fn an_unsigned_api_request_is_refused_before_its_body_is_read() {
    let server = start(Config::for_tests(app())).await;
    // A body announced and never sent: the answer cannot wait for it.
    let mut tcp = send_head(
        server.addr,
        "POST /apps/test-app/events?auth_key=test-key&auth_timestamp=1 HTTP/1.1\r\n\
         Content-Type: application/json\r\nContent-Length: 300000",
    )
    .await;
    let (status, body) = response(&mut tcp).await;
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("\"error\""), "{body}");
}

/// `GET /metrics` on `addr` with `authorization`, if given: the status and body.
async fn get_metrics(addr: SocketAddr, authorization: Option<&str>) -> (u16, String) {
    let header = authorization.map_or(String::new(), |a| format!("\r\nAuthorization: {a}"));
    let mut tcp = send_head(addr, &format!("GET /metrics HTTP/1.1{header}")).await;
    response(&mut tcp).await
}

#[tokio::test]
async fn metrics_are_not_public_by_default() {
    let server = start(Config::for_tests(app())).await;
    let (status, body) = get_metrics(server.addr, None).await;
    assert_eq!(status, 404, "{body}");
    assert!(!body.contains("test-app"), "{body}");
}

#[tokio::test]
async fn metrics_with_a_token_need_it() {
    let mut config = Config::for_tests(app());
    config.metrics.token = Some("s3cret".into());
    let server = start(config).await;
    for wrong in [None, Some("Bearer nope"), Some("s3cret")] {
        let (status, body) = get_metrics(server.addr, wrong).await;
        assert_eq!(status, 401, "{wrong:?}: {body}");
    }
    let (status, body) = get_metrics(server.addr, Some("Bearer s3cret")).await;
    assert_eq!(status, 200);
    assert!(
        body.contains("overtone_connections{app=\"test-app\"} 0"),
        "{body}"
    );
}

#[tokio::test]
async fn metrics_on_their_own_address_leave_the_main_port() {
    let metrics_addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut config = Config::for_tests(app());
    config.metrics.addr = Some(metrics_addr);
    let server = start(config).await;
    let (status, _) = get_metrics(server.addr, None).await;
    assert_eq!(status, 404);
    let mut scraped = None;
    for _ in 0..50 {
        if TcpStream::connect(metrics_addr).await.is_ok() {
            scraped = Some(get_metrics(metrics_addr, None).await);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (status, body) = scraped.expect("the metrics address listens");
    assert_eq!(status, 200);
    assert!(body.contains("overtone_connections"), "{body}");
}

/// Whether the server ends `tcp` within `within`, answering nothing or a 408; sends one byte
/// of `trickle` every 200 ms meanwhile, if given.
async fn closed_within(tcp: &mut TcpStream, within: Duration, trickle: &[u8]) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    let mut trickle = trickle.iter();
    let mut buf = [0u8; 1024];
    loop {
        let read = tokio::time::timeout_at(
            deadline.min(tokio::time::Instant::now() + Duration::from_millis(200)),
            tcp.read(&mut buf),
        )
        .await;
        match read {
            Ok(Ok(0) | Err(_)) => return true,
            Ok(Ok(n)) => assert!(
                String::from_utf8_lossy(&buf[..n]).contains(" 408 "),
                "answered"
            ),
            Err(_) if tokio::time::Instant::now() >= deadline => return false,
            Err(_) => {
                if let Some(byte) = trickle.next() {
                    if tcp.write_all(&[*byte]).await.is_err() {
                        return true;
                    }
                }
            }
        }
    }
}

#[tokio::test]
async fn silent_sockets_and_trickled_heads_are_closed_after_the_head_deadline() {
    let mut config = Config::for_tests(app());
    config.deadlines.head = Duration::from_secs(1);
    let server = start(config).await;
    let mut silent = TcpStream::connect(server.addr).await.unwrap();
    let mut trickled = TcpStream::connect(server.addr).await.unwrap();
    let head = b"GET /up HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    let (silent, trickled) = tokio::join!(
        closed_within(&mut silent, Duration::from_secs(3), b""),
        closed_within(&mut trickled, Duration::from_secs(3), head),
    );
    assert!(silent, "a socket that sends nothing stays open");
    assert!(trickled, "a head sent a byte at a time stays open");
    // And the server still answers.
    let mut up = send_head(server.addr, "GET /up HTTP/1.1").await;
    assert_eq!(response(&mut up).await.0, 200);
}

#[tokio::test]
async fn a_body_announced_and_never_sent_gets_408_after_the_request_deadline() {
    let mut config = Config::for_tests(app());
    config.deadlines.request = Duration::from_secs(1);
    let server = start(config).await;
    let path = "/apps/test-app/events";
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let query = format!("auth_key=test-key&auth_timestamp={now}&auth_version=1.0&body_md5=0");
    let to_sign = overtone_protocol::signature::api_string_to_sign(
        "POST",
        path,
        form_pairs(&query)
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str())),
    );
    let signature = overtone_protocol::signature::hmac_hex("test-secret", &to_sign);
    let mut tcp = send_head(
        server.addr,
        &format!(
            "POST {path}?{query}&auth_signature={signature} HTTP/1.1\r\n\
             Content-Type: application/json\r\nContent-Length: 1000"
        ),
    )
    .await;
    let (status, body) = response(&mut tcp).await;
    assert_eq!(status, 408, "{body}");
    assert!(body.contains("\"error\""), "{body}");
}

fn form_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

#[tokio::test]
async fn websocket_handshakes_that_cannot_upgrade_get_a_clear_status() {
    let server = start(Config::for_tests(app())).await;
    let upgrade = "Connection: Upgrade\r\nUpgrade: websocket";
    let key = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==";
    for (head, status, why) in [
        ("GET /app/test-key HTTP/1.1".to_owned(), 400, "upgrade"),
        (
            format!("GET /app/test-key HTTP/1.1\r\n{upgrade}\r\nSec-WebSocket-Version: 8\r\n{key}"),
            400,
            "Sec-WebSocket-Version",
        ),
        (
            format!("GET /app/test-key HTTP/1.1\r\n{upgrade}\r\nSec-WebSocket-Version: 13"),
            400,
            "Sec-WebSocket-Key",
        ),
    ] {
        let mut tcp = send_head(server.addr, &head).await;
        let (got, body) = response(&mut tcp).await;
        assert_eq!((got, body.contains(why)), (status, true), "{head}: {body}");
    }
    // RFC 6455's example key and the accept it must get.
    let head =
        format!("GET /app/test-key HTTP/1.1\r\n{upgrade}\r\nSec-WebSocket-Version: 13\r\n{key}");
    let mut tcp = send_head(server.addr, &head).await;
    let mut buf = [0u8; 1024];
    let n = tokio::time::timeout(WAIT, tcp.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let answer = String::from_utf8_lossy(&buf[..n]).to_ascii_lowercase();
    assert!(answer.starts_with("http/1.1 101"), "{answer}");
    assert!(
        answer.contains("sec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo="),
        "{answer}"
    );
}
