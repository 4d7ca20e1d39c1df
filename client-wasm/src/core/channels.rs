//! The channels the app asked for: their kind, how far their subscription got on the current
//! socket, the position of the last event seen (history and resume), and, on presence
//! channels, the members deduplicated by user id.

use crate::prelude::*;

use overtone_protocol::channel::ChannelType;

use super::parse_decimal;

/// How far a channel's subscription got on the current socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Subscription {
    /// No socket, or not asked on this one yet.
    Idle,
    /// Waiting for the shell's auth reply for this socket id.
    Authorizing,
    /// `pusher:subscribe` sent.
    Pending,
    Subscribed,
    /// Auth or the server refused; retried after the next reconnect.
    Failed,
}

/// Where a channel's event stream stands on a server with history: the history's epoch and
/// the offset of the last event seen, kept as received (`"EPOCH:OFFSET"`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Position {
    pub(crate) wire: String,
    /// Where the epoch ends: the index of the `:`.
    epoch_len: usize,
    pub(crate) offset: u64,
}

impl Position {
    /// `"EPOCH:OFFSET"`, or `None` when malformed (the event is then treated as having none).
    pub(crate) fn parse(wire: String) -> Option<Position> {
        let bytes = wire.as_bytes();
        let epoch_len = bytes.iter().position(|&b| b == b':')?;
        if epoch_len == 0 {
            return None;
        }
        let offset = parse_decimal(bytes.get(epoch_len + 1..)?)?;
        Some(Position {
            wire,
            epoch_len,
            offset,
        })
    }

    pub(crate) fn same_epoch(&self, other: &Position) -> bool {
        self.wire.as_bytes().get(..self.epoch_len) == other.wire.as_bytes().get(..other.epoch_len)
    }
}

/// A presence channel member.
#[derive(Debug, Clone, PartialEq)]
pub struct Member<P> {
    pub user_id: String,
    pub info: P,
}

#[derive(Debug)]
pub(crate) struct Channel<P> {
    pub(crate) name: String,
    pub(crate) kind: ChannelType,
    pub(crate) subscription: Subscription,
    /// Presence only; one entry per user id, in arrival order.
    pub(crate) members: Vec<Member<P>>,
    /// Our own user id on a presence channel, from the auth reply's `channel_data`.
    pub(crate) my_id: Option<String>,
    /// The last event's position, kept across sockets: every resubscribe asks the server to
    /// replay what came after it. Gone with the channel when the app leaves it.
    pub(crate) position: Option<Position>,
}

impl<P> Channel<P> {
    pub(crate) fn new(name: String) -> Channel<P> {
        Channel {
            kind: ChannelType::of(&name),
            name,
            subscription: Subscription::Idle,
            members: Vec::new(),
            my_id: None,
            position: None,
        }
    }

    /// The socket is gone: so are the subscription and the member list it reported (the
    /// position stays, for the resubscribe).
    pub(crate) fn reset(&mut self) {
        self.subscription = Subscription::Idle;
        self.members.clear();
    }

    /// Replaces the member list with the one from `subscription_succeeded`; a user listed
    /// twice keeps the last info.
    pub(crate) fn set_members(&mut self, list: Vec<(String, P)>) {
        self.members.clear();
        for (user_id, info) in list {
            self.upsert(user_id, info);
        }
    }

    /// Adds or updates a member; returns it when the user is new (only then is it a
    /// "joining").
    pub(crate) fn upsert(&mut self, user_id: String, info: P) -> Option<&Member<P>> {
        match self.members.iter_mut().find(|m| m.user_id == user_id) {
            Some(member) => {
                member.info = info;
                None
            }
            None => {
                self.members.push(Member { user_id, info });
                self.members.last()
            }
        }
    }

    pub(crate) fn remove_member(&mut self, user_id: &str) -> Option<Member<P>> {
        let index = self.members.iter().position(|m| m.user_id == user_id)?;
        Some(self.members.remove(index))
    }

    pub(crate) fn me(&self) -> Option<&Member<P>> {
        let my_id = self.my_id.as_deref()?;
        self.members.iter().find(|m| m.user_id == my_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids<'a>(channel: &'a Channel<&str>) -> Vec<&'a str> {
        channel.members.iter().map(|m| m.user_id.as_str()).collect()
    }

    #[test]
    fn members_are_deduplicated_by_user_id() {
        let mut channel = Channel::new("presence-room".into());
        channel.set_members(vec![
            ("1".into(), "ann"),
            ("2".into(), "bob"),
            ("1".into(), "ann (tab 2)"),
        ]);
        assert_eq!(ids(&channel), ["1", "2"]);
        assert_eq!(channel.members[0].info, "ann (tab 2)");
        assert_eq!(channel.upsert("2".into(), "bob again"), None);
        let cat = Member {
            user_id: "3".into(),
            info: "cat",
        };
        assert_eq!(channel.upsert("3".into(), "cat"), Some(&cat));
        assert_eq!(ids(&channel), ["1", "2", "3"]);
        assert_eq!(
            channel.remove_member("2").map(|m| m.info),
            Some("bob again")
        );
        assert_eq!(channel.remove_member("2"), None);
        assert_eq!(ids(&channel), ["1", "3"]);
    }

    #[test]
    fn positions_parse_and_compare_epochs() {
        let parse = |text: &str| Position::parse(text.into());
        let p = parse("k3J9x:17").unwrap();
        assert_eq!((p.wire.as_str(), p.offset), ("k3J9x:17", 17));
        assert_eq!(parse("e:0").unwrap().offset, 0);
        let max = parse("e:9999999999999999999").unwrap();
        assert_eq!(max.offset, 9_999_999_999_999_999_999);
        assert!(p.same_epoch(&parse("k3J9x:1").unwrap()));
        assert!(!p.same_epoch(&parse("k3J9:17").unwrap()));
        assert!(!p.same_epoch(&parse("k3J9xy:17").unwrap()));
        for bad in [
            "",
            "e",
            ":1",
            "e:",
            "e:-1",
            "e:1x",
            "e:+1",
            "e:1:2",
            "e:10000000000000000000",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn me_is_found_by_my_id() {
        let mut channel = Channel::new("presence-room".into());
        channel.set_members(vec![("1".into(), "ann"), ("2".into(), "bob")]);
        assert_eq!(channel.me(), None);
        channel.my_id = Some("2".into());
        assert_eq!(channel.me().map(|m| m.info), Some("bob"));
        channel.reset();
        assert_eq!(channel.me(), None);
        assert_eq!(channel.subscription, Subscription::Idle);
    }
}
