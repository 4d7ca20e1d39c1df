//! Protocol frames: parsing what clients send and building what the server sends.
//!
//! Outgoing frames are built once into [`Utf8Bytes`]; cloning one for each subscriber shares
//! the bytes instead of copying them.

use std::borrow::Cow;

use axum::extract::ws::Utf8Bytes;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// A frame from a client, before it is interpreted. `data` is kept raw so client events are
/// relayed byte for byte; strings are borrowed unless they hold escapes.
#[derive(Debug, Deserialize)]
pub struct ClientFrame<'a> {
    #[serde(borrow)]
    pub event: Cow<'a, str>,
    #[serde(borrow, default)]
    pub channel: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub data: Option<&'a RawValue>,
}

impl<'a> ClientFrame<'a> {
    pub fn parse(text: &'a str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }
}

/// `pusher:subscribe` data.
#[derive(Debug, Deserialize)]
pub struct SubscribeData {
    pub channel: String,
    #[serde(default)]
    pub auth: Option<String>,
    #[serde(default)]
    pub channel_data: Option<String>,
    /// The last position the client saw (`EPOCH:OFFSET`), asking to resume after it. Any JSON
    /// value is accepted here; anything but a well-formed string is simply not recoverable.
    #[serde(default)]
    pub position: Option<serde_json::Value>,
}

/// `pusher:signin` data.
#[derive(Debug, Deserialize)]
pub struct SigninData {
    pub auth: String,
    pub user_data: String,
}

/// `pusher:unsubscribe` data.
#[derive(Debug, Deserialize)]
pub struct UnsubscribeData {
    pub channel: String,
}

#[derive(Serialize)]
struct Frame<'a> {
    event: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    channel: Option<&'a str>,
    /// Always a JSON string holding JSON (the protocol's double encoding).
    data: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_id: Option<&'a str>,
}

fn build(event: &str, channel: Option<&str>, data: &str, user_id: Option<&str>) -> Utf8Bytes {
    let frame = Frame {
        event,
        channel,
        data,
        user_id,
    };
    serde_json::to_string(&frame)
        .expect("frames serialize")
        .into()
}

/// An event on a channel; `data` is the event's payload as a JSON string.
pub fn channel_event(channel: &str, event: &str, data: &str, user_id: Option<&str>) -> Utf8Bytes {
    build(event, Some(channel), data, user_id)
}

/// `frame` (an event frame, a JSON object) with `"position":"EPOCH:OFFSET"` added as its last
/// top-level field.
pub fn with_position(frame: &str, epoch: &str, offset: u64) -> Utf8Bytes {
    let head = frame.strip_suffix('}').unwrap_or(frame);
    let mut out = String::with_capacity(frame.len() + epoch.len() + 36);
    out.push_str(head);
    out.push_str(",\"position\":\"");
    out.push_str(epoch);
    out.push(':');
    out.push_str(&offset.to_string());
    out.push_str("\"}");
    out.into()
}

/// `pusher_internal:subscription_succeeded` on a channel with history: with the `position`
/// of the newest event before the subscriber went live and, when the client asked to resume,
/// whether every event it missed follows.
pub fn subscription_succeeded_at(
    channel: &str,
    data: &str,
    position: &str,
    recovered: Option<bool>,
) -> Utf8Bytes {
    #[derive(Serialize)]
    struct Succeeded<'a> {
        event: &'a str,
        channel: &'a str,
        data: &'a str,
        position: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        recovered: Option<bool>,
    }
    let frame = Succeeded {
        event: "pusher_internal:subscription_succeeded",
        channel,
        data,
        position,
        recovered,
    };
    serde_json::to_string(&frame)
        .expect("frames serialize")
        .into()
}

pub fn connection_established(socket_id: &str, activity_timeout_secs: u64) -> Utf8Bytes {
    // `overtone`: the wire extensions this server speaks (README, "Wire extensions").
    let data = serde_json::json!({
        "socket_id": socket_id,
        "activity_timeout": activity_timeout_secs,
        "overtone": { "reads": 1, "status": 1 },
    });
    build(
        "pusher:connection_established",
        None,
        &data.to_string(),
        None,
    )
}

pub fn subscription_succeeded(channel: &str, data: &str) -> Utf8Bytes {
    build(
        "pusher_internal:subscription_succeeded",
        Some(channel),
        data,
        None,
    )
}

/// `pusher:subscription_error` as pusher-js reports it: `{type, error, status}`.
pub fn subscription_error(channel: &str, kind: &str, error: &str, status: u16) -> Utf8Bytes {
    let data = serde_json::json!({ "type": kind, "error": error, "status": status });
    build(
        "pusher:subscription_error",
        Some(channel),
        &data.to_string(),
        None,
    )
}

/// A presence member's first connection; `user_info` is JSON text.
pub fn member_added(channel: &str, user_id: &str, user_info: &str) -> Utf8Bytes {
    let data = format!(
        r#"{{"user_id":{},"user_info":{user_info}}}"#,
        serde_json::Value::from(user_id)
    );
    build("pusher_internal:member_added", Some(channel), &data, None)
}

/// A presence member's last connection left; `last_seen_at` (ms) is an Overtone extension.
pub fn member_removed(channel: &str, user_id: &str) -> Utf8Bytes {
    let last_seen_at = crate::user_status::now_ms();
    let data = serde_json::json!({ "user_id": user_id, "last_seen_at": last_seen_at });
    build(
        "pusher_internal:member_removed",
        Some(channel),
        &data.to_string(),
        None,
    )
}

/// The refusal of a presence subscription over the app's `max_presence_members` (one node's
/// check or the cluster's).
pub fn member_limit(channel: &str, max_members: usize) -> Utf8Bytes {
    let error = format!("The presence channel already has {max_members} members");
    subscription_error(channel, "LimitReached", &error, 403)
}

pub fn subscription_count(channel: &str, count: usize) -> Utf8Bytes {
    let data = serde_json::json!({ "subscription_count": count });
    build(
        "pusher_internal:subscription_count",
        Some(channel),
        &data.to_string(),
        None,
    )
}

pub fn cache_miss(channel: &str) -> Utf8Bytes {
    build("pusher:cache_miss", Some(channel), "{}", None)
}

/// `pusher_internal:watchlist_events` with one event (`online` or `offline`).
pub fn watchlist_event(name: &str, user_ids: &[&str]) -> Utf8Bytes {
    let data = serde_json::json!({ "events": [{ "name": name, "user_ids": user_ids }] });
    build(
        "pusher_internal:watchlist_events",
        None,
        &data.to_string(),
        None,
    )
}

/// `pusher:signin_success`; pusher-js parses `user_data` (a JSON string) itself.
pub fn signin_success(user_data: &str) -> Utf8Bytes {
    let data = serde_json::json!({ "user_data": user_data });
    build("pusher:signin_success", None, &data.to_string(), None)
}

/// `pusher:error`; its data is an object, not a string, as pusher-js expects.
pub fn error(code: Option<u16>, message: &str) -> Utf8Bytes {
    serde_json::json!({ "event": "pusher:error", "data": { "code": code, "message": message } })
        .to_string()
        .into()
}

pub fn ping() -> Utf8Bytes {
    Utf8Bytes::from_static(r#"{"event":"pusher:ping","data":{}}"#)
}

pub fn pong() -> Utf8Bytes {
    Utf8Bytes::from_static(r#"{"event":"pusher:pong","data":{}}"#)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_carry_data_as_a_string() {
        let frame = channel_event("chat", "msg", r#"{"a":1}"#, None);
        assert_eq!(
            frame.as_str(),
            r#"{"event":"msg","channel":"chat","data":"{\"a\":1}"}"#
        );
    }

    #[test]
    fn positions_are_a_last_top_level_field() {
        let frame = channel_event("chat", "msg", r#"{"a":1}"#, None);
        assert_eq!(
            with_position(&frame, "k3J9x", 17).as_str(),
            r#"{"event":"msg","channel":"chat","data":"{\"a\":1}","position":"k3J9x:17"}"#
        );
        assert_eq!(
            subscription_succeeded_at("c", "{}", "k3J9x:40", Some(true)).as_str(),
            r#"{"event":"pusher_internal:subscription_succeeded","channel":"c","data":"{}","position":"k3J9x:40","recovered":true}"#
        );
        assert!(!subscription_succeeded_at("c", "{}", "e:0", None).contains("recovered"));
    }

    #[test]
    fn connection_established_shape() {
        let frame = connection_established("1.2", 30);
        let v: serde_json::Value = serde_json::from_str(frame.as_str()).unwrap();
        let data: serde_json::Value = serde_json::from_str(v["data"].as_str().unwrap()).unwrap();
        assert_eq!(data["socket_id"], "1.2");
        assert_eq!(data["activity_timeout"], 30);
        assert_eq!(
            data["overtone"],
            serde_json::json!({"reads": 1, "status": 1})
        );
    }

    #[test]
    fn parses_client_frames_keeping_data_raw() {
        let f = ClientFrame::parse(r#"{"event":"client-x","channel":"private-a","data":{"b": 2}}"#)
            .unwrap();
        assert_eq!(f.event, "client-x");
        assert_eq!(f.channel.as_deref(), Some("private-a"));
        assert_eq!(f.data.unwrap().get(), r#"{"b": 2}"#);
        assert!(ClientFrame::parse("not json").is_err());
        assert!(ClientFrame::parse(r#"{"data":{}}"#).is_err());
        let escaped = ClientFrame::parse(r#"{"event":"client-\u0041"}"#).unwrap();
        assert_eq!(escaped.event, "client-A");
    }

    #[test]
    fn member_added_embeds_user_info_as_json() {
        let frame = member_added("presence-a", "7", r#"{"name":"Ann"}"#);
        let v: serde_json::Value = serde_json::from_str(frame.as_str()).unwrap();
        let data: serde_json::Value = serde_json::from_str(v["data"].as_str().unwrap()).unwrap();
        assert_eq!(
            data,
            serde_json::json!({"user_id":"7","user_info":{"name":"Ann"}})
        );
    }
}
