//! Frames the server sends, as the shell hands them over: already parsed (the browser's
//! `JSON.parse`), with the fields the core needs extracted and payloads left opaque as `P`.

use crate::prelude::*;

/// One server -> client frame. User ids arrive as strings (the shell converts numbers).
#[derive(Debug, Clone, PartialEq)]
pub enum ServerMessage<P> {
    /// `pusher:connection_established`; `activity_timeout` in seconds, as sent.
    ConnectionEstablished {
        socket_id: String,
        activity_timeout: Option<u64>,
    },
    /// `pusher:ping`: answered with a pong.
    Ping,
    /// `pusher:pong`.
    Pong,
    /// `pusher:error`.
    Error { code: Option<u16>, message: String },
    /// `pusher_internal:subscription_succeeded`; `presence` holds the member list
    /// (`presence.hash` as `(user_id, user_info)` pairs) on presence channels. On a channel with
    /// history, `position` (`"EPOCH:OFFSET"`) and, when the subscribe asked for recovery,
    /// `recovered`: the top-level fields of that name.
    SubscriptionSucceeded {
        channel: String,
        presence: Option<Vec<(String, P)>>,
        position: Option<String>,
        recovered: Option<bool>,
    },
    /// `pusher:subscription_error`.
    SubscriptionError {
        channel: String,
        status: Option<u16>,
        error: String,
    },
    /// `pusher_internal:member_added`.
    MemberAdded {
        channel: String,
        user_id: String,
        info: P,
    },
    /// `pusher_internal:member_removed`.
    MemberRemoved { channel: String, user_id: String },
    /// `pusher:signin_success`, with the `id` from its `user_data`.
    SigninSuccess { user_id: String },
    /// Any other frame with a `channel`: app events, whispers (`user_id` on presence
    /// channels), `pusher:cache_miss`, ... `data` is the decoded payload; `position` is the
    /// top-level `"EPOCH:OFFSET"` of events on a channel with history.
    Event {
        channel: String,
        event: String,
        data: P,
        user_id: Option<String>,
        position: Option<String>,
    },
}
