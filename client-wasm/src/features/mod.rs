//! Sans-IO state machines for the realtime UI features built on client events and server
//! pushes: typing indicators ([`typing`]), presence statuses ([`status`]: online/away and what
//! the user set), read receipts ([`reads`]) and unread badges ([`badges`]).
//!
//! None of them does IO or reads a clock: the shell feeds them plain inputs with the current
//! time in milliseconds, keeps one timer armed at the machine's `poll_timeout()` and calls
//! `handle_timeout(now)` when it fires, and executes the outputs it drains with `poll_action()`
//! (send this client event, redraw, broadcast to the other tabs). That keeps them testable
//! natively with a fake clock.

use crate::prelude::*;

pub(crate) use crate::core::push_json_string;
pub use client::{ClientFeatures, Extensions, FeatureAction, Watched};

pub mod badges;
mod client;
pub mod reads;
mod sorted_map;
pub mod status;
pub mod typing;

/// What the typing and status machines ask their shell to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Send a client event (a whisper) on the machine's channel: `event` is the full name,
    /// `client-` prefix included, `data` is the JSON payload text.
    SendClientEvent { event: &'static str, data: String },
    /// The state the UI shows changed: read it again and redraw.
    Changed,
}

/// Whether a `pusher:error` message means client events are refused for good on this
/// connection (disabled for the app, or not allowed on the channel kind), as Pusher, Reverb,
/// Soketi and Overtone word it, rather than a rate limit or a whisper sent before subscribing.
/// Servers use code 4301 for both kinds, so only the message tells them apart. On `true` the
/// shell calls `client_events_refused()` on the typing and status machines.
pub fn refuses_client_events(error_message: &str) -> bool {
    let message = error_message.to_ascii_lowercase();
    let about_client_events =
        contains(&message, "client event") || contains(&message, "client messaging");
    about_client_events
        && ["enable", "disabled", "only", "not supported", "not allowed"]
            .iter()
            .any(|w| contains(&message, w))
}

/// `haystack.contains(needle)` by plain byte comparison: `str::contains` brings a two-way
/// searcher (~2.3 KB of wasm) that short server messages do not need.
fn contains(haystack: &str, needle: &str) -> bool {
    haystack
        .as_bytes()
        .windows(needle.len())
        .any(|window| window == needle.as_bytes())
}

/// What the typing and status machines share, one copy of its code for both: the local
/// user's id, whether the server takes client events, and the queue of actions.
#[derive(Debug)]
struct Outbox {
    own_user_id: Option<String>,
    sending_enabled: bool,
    actions: Vec<Action>,
}

impl Outbox {
    fn new(own_user_id: Option<String>) -> Outbox {
        Outbox {
            own_user_id,
            sending_enabled: true,
            actions: Vec::new(),
        }
    }

    fn is_own(&self, user_id: &str) -> bool {
        self.own_user_id.as_deref() == Some(user_id)
    }

    fn changed(&mut self) {
        self.actions.push(Action::Changed);
    }

    /// Queues the client event `event` with the payload `fields` (JSON members, encoded).
    fn send(&mut self, event: &'static str, fields: &str) {
        let data = payload_with_user_id(fields, self.own_user_id.as_deref());
        self.actions.push(Action::SendClientEvent { event, data });
    }

    fn poll(&mut self) -> Option<Action> {
        // A Vec used as a queue: VecDeque's code costs more wasm than shifting a few entries.
        (!self.actions.is_empty()).then(|| self.actions.remove(0))
    }
}

/// The earlier of two optional times (`None`: nothing due).
fn earliest(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, None) => a,
        (None, b) => b,
    }
}

/// A JSON object with `fields` (JSON members, already encoded) and, when the sender knows it,
/// `user_id` — needed on private channels, where the server adds no `user_id`.
fn payload_with_user_id(fields: &str, user_id: Option<&str>) -> String {
    let mut data = String::with_capacity(40);
    data.push('{');
    data.push_str(fields);
    if let Some(id) = user_id {
        data.push_str(",\"user_id\":");
        push_json_string(&mut data, id);
    }
    data.push('}');
    data
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_event_refusals_are_told_from_transient_errors() {
        for refusal in [
            "The app does not have client messaging enabled.",
            "To send client events, you must enable this feature in the Settings page of your dashboard.",
            "Client events are disabled for this app",
            "Client events are only allowed on private and presence channels",
            "Client events are not supported on encrypted channels.",
        ] {
            assert!(refuses_client_events(refusal), "{refusal}");
        }
        for transient in [
            "Client event rate limit reached",
            "The rate limit for sending client events exceeded the quota.",
            "Subscribe to the channel before sending client events",
            "Invalid message format",
        ] {
            assert!(!refuses_client_events(transient), "{transient}");
        }
    }

    #[test]
    fn payload_carries_user_id_only_when_known() {
        assert_eq!(
            payload_with_user_id("\"typing\":true", None),
            r#"{"typing":true}"#
        );
        assert_eq!(
            payload_with_user_id("\"status\":\"away\"", Some("7")),
            r#"{"status":"away","user_id":"7"}"#
        );
    }
}
