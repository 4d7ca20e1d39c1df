//! Close and error codes, and what a client must do when a connection closes with one.

/// `pusher:error` code for a malformed frame, and the generic "reconnect now" close.
pub const GENERIC_RECONNECT: u16 = 4200;
/// App key unknown: refused, the client must not retry unchanged.
pub const APP_NOT_FOUND: u16 = 4001;
pub const APP_DISABLED: u16 = 4003;
pub const OVER_CONNECTION_QUOTA: u16 = 4004;
pub const PATH_NOT_FOUND: u16 = 4005;
pub const INVALID_VERSION: u16 = 4006;
pub const UNSUPPORTED_PROTOCOL: u16 = 4007;
/// Origin not allowed, or (as a `pusher:error`) a subscription that failed authorization.
pub const UNAUTHORIZED: u16 = 4009;
/// Over capacity, or a slow reader whose send queue filled: back off, then reconnect.
pub const OVER_CAPACITY: u16 = 4100;
/// No pong within the activity timeout.
pub const PONG_NOT_RECEIVED: u16 = 4201;
pub const CLOSED_AFTER_INACTIVITY: u16 = 4202;
/// Client event rate limit exceeded (sent as a `pusher:error`, never as a close).
pub const CLIENT_EVENT_RATE_LIMIT: u16 = 4301;

/// What a client does after the socket closed with a code, per pusher-js.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseAction {
    /// The server refused this client as it is (4000–4099 except 4000, and >= 4300): stop.
    Refused,
    /// 4000: the server wants TLS.
    UseTls,
    /// 41xx and the WebSocket protocol errors 1002–1004: back off, then reconnect.
    Backoff,
    /// 42xx and everything else: reconnect at once.
    Retry,
}

impl CloseAction {
    pub fn for_code(code: u16) -> CloseAction {
        match code {
            4000 => CloseAction::UseTls,
            4001..=4099 => CloseAction::Refused,
            4100..=4199 | 1002..=1004 => CloseAction::Backoff,
            c if c >= 4300 => CloseAction::Refused,
            _ => CloseAction::Retry,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_code_table() {
        for (code, action) in [
            (1000, CloseAction::Retry),
            (1002, CloseAction::Backoff),
            (1004, CloseAction::Backoff),
            (1006, CloseAction::Retry),
            (4000, CloseAction::UseTls),
            (4001, CloseAction::Refused),
            (4009, CloseAction::Refused),
            (4099, CloseAction::Refused),
            (4100, CloseAction::Backoff),
            (4200, CloseAction::Retry),
            (4201, CloseAction::Retry),
            (4301, CloseAction::Refused),
            (4999, CloseAction::Refused),
        ] {
            assert_eq!(CloseAction::for_code(code), action, "{code}");
        }
    }
}
