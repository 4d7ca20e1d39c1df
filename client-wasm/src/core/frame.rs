//! Frames the client sends, typed, and their JSON text. The payload of a client event stays
//! opaque: the shell supplies the function that turns it into JSON (`JSON.stringify`).

use crate::prelude::*;

/// One client -> server frame.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientFrame<P> {
    /// `channel_data` is the exact string the auth endpoint returned: the signature covers it.
    /// `position` (`"EPOCH:OFFSET"`, the last event seen) asks the server to replay what
    /// came after it.
    Subscribe {
        channel: String,
        auth: Option<String>,
        channel_data: Option<String>,
        position: Option<String>,
    },
    Unsubscribe {
        channel: String,
    },
    Ping,
    Pong,
    Signin {
        auth: String,
        user_data: String,
    },
    /// A whisper; `event` already carries its `client-` prefix.
    ClientEvent {
        channel: String,
        event: String,
        data: P,
    },
}

impl<P> ClientFrame<P> {
    /// The frame as JSON text; `stringify` renders a client event's payload as JSON.
    pub fn to_json(&self, stringify: impl FnOnce(&P) -> String) -> String {
        let mut out = String::with_capacity(64);
        out.push_str("{\"event\":");
        match self {
            ClientFrame::Subscribe {
                channel,
                auth,
                channel_data,
                position,
            } => {
                push_json_string(&mut out, "pusher:subscribe");
                out.push_str(",\"data\":{");
                push_field(&mut out, "channel", channel);
                for (key, value) in [
                    ("auth", auth),
                    ("channel_data", channel_data),
                    ("position", position),
                ] {
                    if let Some(value) = value {
                        out.push(',');
                        push_field(&mut out, key, value);
                    }
                }
                out.push('}');
            }
            ClientFrame::Unsubscribe { channel } => {
                push_json_string(&mut out, "pusher:unsubscribe");
                out.push_str(",\"data\":{");
                push_field(&mut out, "channel", channel);
                out.push('}');
            }
            ClientFrame::Ping => out.push_str("\"pusher:ping\",\"data\":{}"),
            ClientFrame::Pong => out.push_str("\"pusher:pong\",\"data\":{}"),
            ClientFrame::Signin { auth, user_data } => {
                push_json_string(&mut out, "pusher:signin");
                out.push_str(",\"data\":{");
                push_field(&mut out, "auth", auth);
                out.push(',');
                push_field(&mut out, "user_data", user_data);
                out.push('}');
            }
            ClientFrame::ClientEvent {
                channel,
                event,
                data,
            } => {
                push_json_string(&mut out, event);
                out.push(',');
                push_field(&mut out, "channel", channel);
                out.push_str(",\"data\":");
                out.push_str(&stringify(data));
            }
        }
        out.push('}');
        out
    }
}

fn push_field(out: &mut String, key: &str, value: &str) {
    push_json_string(out, key);
    out.push(':');
    push_json_string(out, value);
}

/// Appends `s` as a JSON string literal, quotes included (also used by the feature machines).
pub(crate) fn push_json_string(out: &mut String, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c < ' ' => {
                let b = c as u8;
                out.push_str("\\u00");
                out.push(HEX[usize::from(b >> 4)] as char);
                out.push(HEX[usize::from(b & 0xf)] as char);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(frame: ClientFrame<String>) -> String {
        frame.to_json(|data| data.clone())
    }

    #[test]
    fn renders_every_frame() {
        let cases = [
            (
                ClientFrame::Subscribe {
                    channel: "chat".into(),
                    auth: None,
                    channel_data: None,
                    position: None,
                },
                r#"{"event":"pusher:subscribe","data":{"channel":"chat"}}"#,
            ),
            (
                ClientFrame::Subscribe {
                    channel: "private-chat".into(),
                    auth: Some("key:abc".into()),
                    channel_data: None,
                    position: Some("k3J9x:17".into()),
                },
                r#"{"event":"pusher:subscribe","data":{"channel":"private-chat","auth":"key:abc","position":"k3J9x:17"}}"#,
            ),
            (
                ClientFrame::Subscribe {
                    channel: "presence-room".into(),
                    auth: Some("key:abc".into()),
                    channel_data: Some(
                        r#"{"user_id":10,"user_info":{"name":"Mr. Channels"}}"#.into(),
                    ),
                    position: None,
                },
                r#"{"event":"pusher:subscribe","data":{"channel":"presence-room","auth":"key:abc","channel_data":"{\"user_id\":10,\"user_info\":{\"name\":\"Mr. Channels\"}}"}}"#,
            ),
            (
                ClientFrame::Unsubscribe {
                    channel: "chat".into(),
                },
                r#"{"event":"pusher:unsubscribe","data":{"channel":"chat"}}"#,
            ),
            (ClientFrame::Ping, r#"{"event":"pusher:ping","data":{}}"#),
            (ClientFrame::Pong, r#"{"event":"pusher:pong","data":{}}"#),
            (
                ClientFrame::Signin {
                    auth: "key:sig".into(),
                    user_data: r#"{"id":"7"}"#.into(),
                },
                r#"{"event":"pusher:signin","data":{"auth":"key:sig","user_data":"{\"id\":\"7\"}"}}"#,
            ),
            (
                ClientFrame::ClientEvent {
                    channel: "private-chat".into(),
                    event: "client-typing".into(),
                    data: r#"{"name":"Ann"}"#.into(),
                },
                r#"{"event":"client-typing","channel":"private-chat","data":{"name":"Ann"}}"#,
            ),
        ];
        for (frame, expected) in cases {
            assert_eq!(json(frame), expected);
        }
    }

    #[test]
    fn escapes_strings() {
        let mut out = String::new();
        push_json_string(&mut out, "a\"b\\c\nd\re\tf\u{1}g\u{1f}h é ☃");
        assert_eq!(out, r#""a\"b\\c\nd\re\tf\u0001g\u001fh é ☃""#);
    }
}
