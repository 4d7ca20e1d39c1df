//! Server frames, parsed by the page's `JSON.parse`, to the core's [`ServerMessage`], read with
//! `Reflect` (no JSON parser in the wasm). Frames missing a required field are dropped.

use crate::prelude::*;

use js_sys::{Array, Object, Reflect, JSON};
use wasm_bindgen::{JsCast, JsValue};

use crate::core::{push_decimal, ServerMessage};

/// `target[key]`, or `undefined` when `target` is not an object.
pub(crate) fn get(target: &JsValue, key: &str) -> JsValue {
    if !target.is_object() {
        return JsValue::UNDEFINED;
    }
    Reflect::get(target, &JsValue::from_str(key)).unwrap_or(JsValue::UNDEFINED)
}

/// A user id as the core keeps it: strings as they are, integers in decimal.
pub(crate) fn id_string(value: &JsValue) -> Option<String> {
    value.as_string().or_else(|| {
        let n = value.as_f64()?;
        // Integral and below 9e15 in size (`as` saturates, NaN gives 0, so the round trip
        // fails for anything else). No `f64::fract`: it needs std.
        let whole = n as i64;
        (whole as f64 == n && whole.unsigned_abs() < 9_000_000_000_000_000).then(|| {
            let mut id = String::new();
            if whole < 0 {
                id.push('-');
            }
            push_decimal(&mut id, whole.unsigned_abs());
            id
        })
    })
}

/// `JSON.parse(text)`, or `None` for invalid JSON.
pub(crate) fn parse_json(text: &str) -> Option<JsValue> {
    JSON::parse(text).ok()
}

/// `JSON.stringify(value)`; `null` for what JSON cannot hold.
pub(crate) fn to_json(value: &JsValue) -> String {
    JSON::stringify(value)
        .ok()
        .and_then(|s| s.as_string())
        .unwrap_or_else(|| "null".into())
}

fn number(value: JsValue) -> Option<u64> {
    value.as_f64().filter(|n| *n >= 0.0).map(|n| n as u64)
}

/// One frame from the socket, which the page parsed with `JSON.parse` (and `data` too when it
/// was a JSON string: the protocol double-encodes it): its `event`, `channel` and `data`, and the
/// frame for its other fields. `None` when a required field is missing.
pub(crate) fn parse_message(
    event: Option<String>,
    channel: Option<String>,
    data: JsValue,
    frame: &JsValue,
) -> Option<ServerMessage<JsValue>> {
    let event = event?;
    let field = |key: &str| get(&data, key);
    let position = get(frame, "position").as_string();
    Some(match (event.as_str(), channel) {
        ("pusher:connection_established", _) => ServerMessage::ConnectionEstablished {
            socket_id: field("socket_id").as_string()?,
            activity_timeout: number(field("activity_timeout")),
        },
        ("pusher:ping", _) => ServerMessage::Ping,
        ("pusher:pong", _) => ServerMessage::Pong,
        ("pusher:error", _) => ServerMessage::Error {
            code: number(field("code")).map(|c| c.min(u16::MAX.into()) as u16),
            message: field("message").as_string().unwrap_or_default(),
        },
        ("pusher:signin_success", _) => {
            let user = parse_json(&field("user_data").as_string()?)?;
            ServerMessage::SigninSuccess {
                user_id: id_string(&get(&user, "id"))?,
            }
        }
        (_, None) => return None,
        ("pusher_internal:subscription_succeeded", Some(channel)) => {
            let hash = get(&field("presence"), "hash");
            let presence = hash.is_object().then(|| {
                Object::entries(hash.unchecked_ref())
                    .iter()
                    .filter_map(|entry| {
                        let entry: Array = entry.unchecked_into();
                        Some((entry.get(0).as_string()?, entry.get(1)))
                    })
                    .collect()
            });
            ServerMessage::SubscriptionSucceeded {
                channel,
                presence,
                position,
                recovered: get(frame, "recovered").as_bool(),
            }
        }
        ("pusher:subscription_error", Some(channel)) => ServerMessage::SubscriptionError {
            channel,
            status: number(field("status")).map(|s| s.min(u16::MAX.into()) as u16),
            error: field("error")
                .as_string()
                .unwrap_or_else(|| "Subscription refused".into()),
        },
        ("pusher_internal:member_added", Some(channel)) => ServerMessage::MemberAdded {
            channel,
            user_id: id_string(&field("user_id"))?,
            info: field("user_info"),
        },
        ("pusher_internal:member_removed", Some(channel)) => ServerMessage::MemberRemoved {
            channel,
            user_id: id_string(&field("user_id"))?,
        },
        (_, Some(channel)) => ServerMessage::Event {
            channel,
            event,
            data,
            user_id: id_string(&get(frame, "user_id")),
            position,
        },
    })
}
