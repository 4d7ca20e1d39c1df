//! Direct messages between two visitors on `private-chat.{a}.{b}` (the two ids in order): the
//! conversation's messages are kept here (bounded, as the room's) and broadcast on that channel
//! to everyone but the sender's connection. The channel is authorized by the server's rule
//! delegating to [`authorize`] (the server asks it, as an app's backend is asked), which allows
//! the two people the name holds and nobody else. Read receipts and unread counts are the SDK's
//! (`channel.markRead(id)` with these messages' ids), kept by the server.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::chat::{check_text, History, NewMessage, MESSAGE_EVENT};
use crate::site::{lock, parse_body, sender_socket, unix_ms, Demo, DemoError};

/// Conversations kept; a new one past this is refused (each keeps the room's bounded history).
pub const MAX_CONVERSATIONS: usize = 10_000;
/// Where the server's authorization rule for direct messages asks (see `site::DEMO_AUTHZ`).
pub const AUTHORIZE_PATH: &str = "/demo/api/dm/authorize";

/// The conversations, by channel name.
pub type Conversations = HashMap<String, History>;

/// The channel of the conversation between `a` and `b`; `None` when they are one person.
pub fn channel(a: &str, b: &str) -> Option<String> {
    let (first, second) = if a < b { (a, b) } else { (b, a) };
    (first != second).then(|| format!("private-chat.{first}.{second}"))
}

/// The visitor and their conversation with `peer` (an id as the demo makes them).
fn conversation(
    demo: &Arc<Demo>,
    headers: &HeaderMap,
    peer: &str,
) -> Result<(crate::site::Person, String), DemoError> {
    let me = demo.visitor(headers)?;
    let id_like = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-';
    if peer.is_empty() || !peer.chars().all(id_like) {
        return Err(DemoError::bad_request(format!(
            "{peer:?} is not a person's id"
        )));
    }
    let channel = channel(&me.id, peer)
        .ok_or_else(|| DemoError::bad_request("A conversation needs someone else"))?;
    Ok((me, channel))
}

/// `GET /demo/api/dm/{peer}` -> `{channel, messages}`: every message kept, oldest first.
pub async fn history(
    State(demo): State<Arc<Demo>>,
    headers: HeaderMap,
    Path(peer): Path<String>,
) -> Result<Json<Value>, DemoError> {
    let (_, channel) = conversation(&demo, &headers, &peer)?;
    let messages = lock(&demo.direct)
        .get(&channel)
        .map(|history| history.since(Some(0)))
        .unwrap_or_default();
    Ok(Json(json!({ "channel": channel, "messages": messages })))
}

/// `POST /demo/api/dm/{peer} {text}` -> `{message}`, as broadcast to the conversation.
pub async fn send(
    State(demo): State<Arc<Demo>>,
    headers: HeaderMap,
    Path(peer): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, DemoError> {
    let (me, channel) = conversation(&demo, &headers, &peer)?;
    // Reading works across a restart (the list is empty then); writing needs someone there.
    if !demo.knows(&peer) {
        return Err(DemoError::new(
            StatusCode::NOT_FOUND,
            format!("Nobody called {peer} has signed in"),
        ));
    }
    let except = sender_socket(&headers)?;
    let NewMessage { text } = parse_body(&body)?;
    let text = check_text(&text)?;
    let message = {
        let mut conversations = lock(&demo.direct);
        if conversations.len() >= MAX_CONVERSATIONS && !conversations.contains_key(&channel) {
            return Err(DemoError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "The demo keeps no more conversations: try an existing one",
            ));
        }
        let history = conversations.entry(channel.clone()).or_default();
        history.add(me, text, unix_ms())
    };
    demo.publish(&channel, MESSAGE_EVENT, &json!(message), except.as_ref());
    Ok(Json(json!({ "message": message })))
}

/// What the server asks of a rule delegated to the app (`authz::upstream`).
#[derive(Deserialize)]
pub struct Question {
    user_id: String,
    params: HashMap<String, String>,
}

/// `POST /demo/api/dm/authorize`, asked by the server for `private-chat.{a}.{b}`: allowed to
/// `a` and `b` only, and only in the channel's one spelling (`a` before `b`).
pub async fn authorize(Json(question): Json<Question>) -> Json<Value> {
    let param = |name: &str| question.params.get(name).map_or("", String::as_str);
    let (a, b) = (param("a"), param("b"));
    let allow = a < b && (question.user_id == a || question.user_id == b);
    let message = (!allow).then(|| format!("{} is not in this conversation", question.user_id));
    Json(json!({ "allow": allow, "message": message }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_channel_per_pair_in_one_spelling() {
        assert_eq!(
            channel("bob", "ana").as_deref(),
            Some("private-chat.ana.bob")
        );
        assert_eq!(channel("ana", "bob"), channel("bob", "ana"));
        assert_eq!(channel("ana", "ana"), None);
    }

    #[tokio::test]
    async fn only_the_two_people_are_allowed() {
        let ask = |user: &str, a: &str, b: &str| {
            let params = [
                ("a".to_owned(), a.to_owned()),
                ("b".to_owned(), b.to_owned()),
            ];
            authorize(Json(Question {
                user_id: user.into(),
                params: params.into_iter().collect(),
            }))
        };
        assert_eq!(ask("ana", "ana", "bob").await.0["allow"], true);
        assert_eq!(ask("bob", "ana", "bob").await.0["allow"], true);
        let refused = ask("chen", "ana", "bob").await.0;
        assert_eq!(refused["allow"], false);
        assert_eq!(refused["message"], "chen is not in this conversation");
        assert_eq!(
            ask("ana", "bob", "ana").await.0["allow"],
            false,
            "one spelling"
        );
    }
}
