//! Channel kinds by name prefix and the rules a channel name must follow.

/// What a channel name's prefix says about how it is subscribed and what it relays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelKind {
    Public,
    Private,
    /// `private-encrypted-`: the server relays ciphertext it cannot read.
    PrivateEncrypted,
    Presence,
    /// `#server-to-user-{id}`: reachable only after `pusher:signin`.
    ServerToUser,
}

/// A channel's kind plus whether it is a cache channel (last event replayed on subscribe).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChannelType {
    pub kind: ChannelKind,
    pub cache: bool,
}

impl ChannelType {
    /// Classifies a channel by its prefix; does not validate the name (see [`validate_name`]).
    pub fn of(name: &str) -> ChannelType {
        let (kind, rest) = if let Some(rest) = name.strip_prefix("private-encrypted-") {
            (ChannelKind::PrivateEncrypted, rest)
        } else if let Some(rest) = name.strip_prefix("private-") {
            (ChannelKind::Private, rest)
        } else if let Some(rest) = name.strip_prefix("presence-") {
            (ChannelKind::Presence, rest)
        } else if name.starts_with(SERVER_TO_USER_PREFIX) {
            (ChannelKind::ServerToUser, "")
        } else {
            (ChannelKind::Public, name)
        };
        ChannelType {
            kind,
            cache: rest.starts_with("cache-"),
        }
    }

    /// Whether subscribing needs a signature from the app's auth endpoint.
    pub fn needs_auth(self) -> bool {
        matches!(
            self.kind,
            ChannelKind::Private | ChannelKind::PrivateEncrypted | ChannelKind::Presence
        )
    }

    /// Whether clients may send `client-*` events on it.
    pub fn allows_client_events(self) -> bool {
        matches!(self.kind, ChannelKind::Private | ChannelKind::Presence)
    }
}

pub const SERVER_TO_USER_PREFIX: &str = "#server-to-user-";

/// Longest channel name accepted, in bytes.
pub const MAX_CHANNEL_NAME_LEN: usize = 164;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameError {
    Empty,
    TooLong,
    InvalidCharacter,
}

impl NameError {
    /// The message as users see it. A plain `&str` so the browser client can report it without
    /// `core::fmt`, which costs kilobytes of wasm.
    pub fn message(&self) -> &'static str {
        match self {
            NameError::Empty => "Channel name is empty",
            NameError::TooLong => "Channel name is longer than 164 characters",
            NameError::InvalidCharacter => {
                "Channel name may only contain A-Z, a-z, 0-9, _ - = @ , . ;"
            }
        }
    }
}

impl core::fmt::Display for NameError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.message())
    }
}

/// Checks a channel name: 1..=164 bytes of `[A-Za-z0-9_\-=@,.;]`, or a leading `#` for
/// server-to-user channels.
pub fn validate_name(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name.len() > MAX_CHANNEL_NAME_LEN {
        return Err(NameError::TooLong);
    }
    let body = if name.starts_with(SERVER_TO_USER_PREFIX) {
        // Past the `#`. `get` rather than indexing: always `Some` here, and it has no panic
        // path, whose message formatting would cost the wasm client.
        name.get(1..).unwrap_or(name)
    } else {
        name
    };
    if body.bytes().all(is_name_byte) {
        Ok(())
    } else {
        Err(NameError::InvalidCharacter)
    }
}

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'=' | b'@' | b',' | b'.' | b';')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_by_prefix() {
        let cases = [
            ("chat", ChannelKind::Public, false),
            ("cache-chat", ChannelKind::Public, true),
            ("private-chat.1", ChannelKind::Private, false),
            ("private-cache-x", ChannelKind::Private, true),
            ("private-encrypted-x", ChannelKind::PrivateEncrypted, false),
            (
                "private-encrypted-cache-x",
                ChannelKind::PrivateEncrypted,
                true,
            ),
            ("presence-room", ChannelKind::Presence, false),
            ("presence-cache-room", ChannelKind::Presence, true),
            ("#server-to-user-42", ChannelKind::ServerToUser, false),
        ];
        for (name, kind, cache) in cases {
            assert_eq!(ChannelType::of(name), ChannelType { kind, cache }, "{name}");
        }
    }

    #[test]
    fn auth_and_client_event_rules() {
        assert!(!ChannelType::of("chat").needs_auth());
        assert!(ChannelType::of("private-encrypted-x").needs_auth());
        assert!(ChannelType::of("presence-x").allows_client_events());
        assert!(!ChannelType::of("private-encrypted-x").allows_client_events());
        assert!(!ChannelType::of("chat").allows_client_events());
    }

    #[test]
    fn name_rules() {
        assert_eq!(validate_name("private-App.Models.User.1"), Ok(()));
        assert_eq!(validate_name("a_b-c=d@e,f.g;h"), Ok(()));
        assert_eq!(validate_name("#server-to-user-7"), Ok(()));
        assert_eq!(validate_name(""), Err(NameError::Empty));
        assert_eq!(validate_name(&"a".repeat(164)), Ok(()));
        assert_eq!(validate_name(&"a".repeat(165)), Err(NameError::TooLong));
        assert_eq!(validate_name("chat room"), Err(NameError::InvalidCharacter));
        assert_eq!(validate_name("#chat"), Err(NameError::InvalidCharacter));
        assert_eq!(validate_name("chät"), Err(NameError::InvalidCharacter));
    }
}
