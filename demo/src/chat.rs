//! The demo's chat room: messages posted to `POST /demo/api/chat/messages` are kept in a
//! bounded history and broadcast on the room's presence channel to everyone but the sender's
//! connection (`X-Socket-ID`); `@id` mentions notify the mentioned visitor, and the sender hears
//! which `@names` nobody answers to. `GET` returns the last messages, or those after an id (what
//! a page missed while reconnecting).

use std::collections::VecDeque;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::site::{
    lock, parse_body, sender_socket, unix_ms, Demo, DemoError, Person, CHAT_CHANNEL,
};

/// Messages remembered; older ones are forgotten.
const MAX_HISTORY: usize = 200;
/// Messages a page gets when it opens.
const ON_LOAD: usize = 50;
const MAX_TEXT_CHARS: usize = 500;
/// The event name on the channel (`.message` in Echo's terms), in the room and in direct
/// messages.
pub const MESSAGE_EVENT: &str = "message";

#[derive(Debug, Clone, Serialize)]
pub struct Message {
    /// Increasing, and from the clock, so ids keep increasing across a restart and "after the
    /// last id I saw" stays meaningful to a page that outlived the server.
    pub id: u64,
    pub user: Person,
    pub text: String,
    pub at: u64,
}

#[derive(Default)]
pub struct History {
    messages: VecDeque<Message>,
    last_id: u64,
}

impl History {
    pub fn add(&mut self, user: Person, text: String, at: u64) -> Message {
        self.last_id = (self.last_id + 1).max(at);
        let message = Message {
            id: self.last_id,
            user,
            text,
            at,
        };
        if self.messages.len() == MAX_HISTORY {
            self.messages.pop_front();
        }
        self.messages.push_back(message.clone());
        message
    }

    /// Messages after `after`, or the last [`ON_LOAD`] without it.
    pub fn since(&self, after: Option<u64>) -> Vec<Message> {
        match after {
            Some(after) => self
                .messages
                .iter()
                .filter(|m| m.id > after)
                .cloned()
                .collect(),
            None => self
                .messages
                .iter()
                .skip(self.messages.len().saturating_sub(ON_LOAD))
                .cloned()
                .collect(),
        }
    }
}

/// A message's text, trimmed: 1 to [`MAX_TEXT_CHARS`] characters.
pub fn check_text(text: &str) -> Result<String, DemoError> {
    let text = text.trim();
    if text.is_empty() || text.chars().count() > MAX_TEXT_CHARS {
        return Err(DemoError::bad_request(format!(
            "A message is 1 to {MAX_TEXT_CHARS} characters"
        )));
    }
    Ok(text.to_string())
}

/// The ids `@mentioned` in a text, each once, in order.
fn mentions(text: &str) -> Vec<String> {
    let mut ids: Vec<String> = Vec::new();
    for word in text.split('@').skip(1) {
        let id: String = word
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
            .flat_map(char::to_lowercase)
            .collect();
        let id = id.trim_end_matches('-').to_string();
        if !id.is_empty() && !ids.contains(&id) {
            ids.push(id);
        }
    }
    ids
}

/// `GET /demo/api/chat/messages[?after=ID]` -> `{messages}`.
pub async fn history(
    State(demo): State<Arc<Demo>>,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, DemoError> {
    let after = form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .find(|(k, _)| k == "after")
        .map(|(_, v)| {
            v.parse::<u64>()
                .map_err(|_| DemoError::bad_request("after must be a message id"))
        })
        .transpose()?;
    Ok(Json(json!({ "messages": lock(&demo.chat).since(after) })))
}

/// The body of a message sent to the room or to a conversation.
#[derive(Deserialize)]
pub struct NewMessage {
    pub text: String,
}

/// `POST /demo/api/chat/messages {text}` -> `{message, unknown}`: the message, as broadcast to
/// the others, and the `@ids` mentioned that nobody answers to (nobody was notified of those).
pub async fn send(
    State(demo): State<Arc<Demo>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, DemoError> {
    let user = demo.visitor(&headers)?;
    let except = sender_socket(&headers)?;
    let NewMessage { text } = parse_body(&body)?;
    let text = check_text(&text)?;
    let message = lock(&demo.chat).add(user.clone(), text, unix_ms());
    demo.publish(
        CHAT_CHANNEL,
        MESSAGE_EVENT,
        &json!(message),
        except.as_ref(),
    );
    let mut unknown = Vec::new();
    for id in mentions(&message.text)
        .into_iter()
        .filter(|id| *id != user.id)
    {
        if demo.knows(&id) {
            demo.notify(
                &id,
                "mention",
                &format!("{} mentioned you: {}", user.name, message.text),
            );
        } else {
            unknown.push(id);
        }
    }
    Ok(Json(json!({ "message": message, "unknown": unknown })))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ana() -> Person {
        Person {
            id: "ana".into(),
            name: "Ana".into(),
            color: "#000".into(),
        }
    }

    #[test]
    fn history_is_bounded_and_ids_increase_even_when_the_clock_does_not() {
        let mut history = History::default();
        let first = history.add(ana(), "a".into(), 1000);
        let second = history.add(ana(), "b".into(), 1000);
        assert!(second.id > first.id);
        for i in 0..MAX_HISTORY {
            history.add(ana(), i.to_string(), 2000);
        }
        assert_eq!(history.messages.len(), MAX_HISTORY);
        assert_eq!(history.since(None).len(), ON_LOAD);
        assert!(history.since(Some(second.id)).len() == MAX_HISTORY);
        let last = history.messages.back().unwrap().id;
        assert!(history.since(Some(last)).is_empty());
    }

    #[test]
    fn mentions_are_ids_once_each() {
        assert_eq!(mentions("hi @Bob and @ana-b, @bob!"), vec!["bob", "ana-b"]);
        assert!(mentions("mail me at @ or @@").is_empty());
    }
}
