//! Presence channels: who is a member, counted by user id so one user on several connections
//! is one member (joined on their first connection, gone after their last), and the JSON the
//! protocol shows members as. With the app's `presence_grace_ms`, a member whose last
//! connection closed stays one for that long ([`depart_after`]): a page reload is then no
//! `member_removed` + `member_added` pair, for the other members and for webhooks.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::state::App;
use crate::webhooks;

/// Longest user id accepted, in bytes.
pub const MAX_USER_ID_BYTES: usize = 128;

/// A member as one connection declares it: from `channel_data` or from its sign-in.
#[derive(Debug, Clone)]
pub struct Member {
    pub user_id: Arc<str>,
    /// `user_info` as the JSON text the client sent (`null` when absent).
    pub user_info: Arc<RawValue>,
}

/// A user id may be a JSON string or number; either way it is a string on the wire.
#[derive(Deserialize)]
#[serde(untagged)]
enum UserId {
    Text(String),
    Number(serde_json::Number),
}

impl UserId {
    fn into_string(self) -> String {
        match self {
            UserId::Text(s) => s,
            UserId::Number(n) => n.to_string(),
        }
    }
}

#[derive(Deserialize)]
struct ChannelData {
    user_id: UserId,
    #[serde(default)]
    user_info: Option<Box<RawValue>>,
}

#[derive(Deserialize)]
struct UserData {
    id: String,
    #[serde(default)]
    user_info: Option<Box<RawValue>>,
}

impl Member {
    /// Parses a presence subscription's `channel_data` (`{"user_id":..,"user_info":{..}}`).
    pub fn from_channel_data(json: &str, max_info_bytes: usize) -> Result<Member, String> {
        let data: ChannelData = serde_json::from_str(json).map_err(|_| {
            "channel_data must be JSON {\"user_id\": ..., \"user_info\": {...}}".to_string()
        })?;
        Member::checked(data.user_id.into_string(), data.user_info, max_info_bytes)
    }

    /// The member a signed-in user is when they join presence without `channel_data`.
    pub fn from_user_data(json: &str, max_info_bytes: usize) -> Result<Member, String> {
        let data: UserData = serde_json::from_str(json)
            .map_err(|_| "user_data must be JSON with a string \"id\"".to_string())?;
        Member::checked(data.id, data.user_info, max_info_bytes)
    }

    fn checked(
        user_id: String,
        info: Option<Box<RawValue>>,
        max_info_bytes: usize,
    ) -> Result<Member, String> {
        if user_id.is_empty() || user_id.len() > MAX_USER_ID_BYTES {
            return Err(format!(
                "user_id must be 1 to {MAX_USER_ID_BYTES} characters"
            ));
        }
        let info: Arc<RawValue> = match info {
            Some(raw) => Arc::from(raw),
            None => Arc::from(RawValue::from_string("null".into()).expect("null is JSON")),
        };
        if info.get().len() > max_info_bytes {
            return Err(format!("user_info is larger than {max_info_bytes} bytes"));
        }
        Ok(Member {
            user_id: user_id.into(),
            user_info: info,
        })
    }
}

/// After `grace`, removes `user_id` from `channel` (announced, on a cluster told to the
/// cluster, reported to webhooks) unless a connection of theirs came back meanwhile.
pub fn depart_after(app: &Arc<App>, channel: &str, user_id: &str, grace: Duration) {
    let (app, channel, user_id) = (app.clone(), channel.to_string(), user_id.to_string());
    tokio::spawn(async move {
        tokio::time::sleep(grace).await;
        if let Some(change) = app.channels.depart(&channel, &user_id) {
            app.presence_left(&channel, &user_id);
            crate::user_status::left(&app, &channel, &user_id);
            webhooks::unsubscribed(&app, &channel, change, Some(&user_id));
        }
    });
}

struct Entry {
    info: Arc<RawValue>,
    connections: usize,
}

/// The members of one presence channel.
#[derive(Default)]
pub struct Members {
    by_user: HashMap<Arc<str>, Entry>,
}

impl Members {
    pub fn len(&self) -> usize {
        self.by_user.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_user.is_empty()
    }

    pub fn contains(&self, user_id: &str) -> bool {
        self.by_user.contains_key(user_id)
    }

    /// Counts one more connection of `member`; true if it is the user's first (they joined).
    /// A later connection's `user_info` replaces the earlier one.
    pub fn join(&mut self, member: &Member) -> bool {
        match self.by_user.get_mut(&member.user_id) {
            Some(entry) => {
                entry.connections += 1;
                entry.info = member.user_info.clone();
                false
            }
            None => {
                let entry = Entry {
                    info: member.user_info.clone(),
                    connections: 1,
                };
                self.by_user.insert(member.user_id.clone(), entry);
                true
            }
        }
    }

    /// Counts one connection of `user_id` gone; true if it was the user's last (they left).
    /// With `linger`, a user losing their last connection stays a member with none (false is
    /// returned) until [`Members::depart`] or a new connection.
    pub fn leave(&mut self, user_id: &str, linger: bool) -> bool {
        let Some(entry) = self.by_user.get_mut(user_id) else {
            return false;
        };
        entry.connections = entry.connections.saturating_sub(1);
        entry.connections == 0 && !linger && self.by_user.remove(user_id).is_some()
    }

    /// Removes a member left lingering with no connection; true if they were (they left).
    pub fn depart(&mut self, user_id: &str) -> bool {
        let lingering = self.by_user.get(user_id).is_some_and(|e| e.connections == 0);
        lingering && self.by_user.remove(user_id).is_some()
    }

    /// Each member, with the `user_info` of their latest connection.
    pub fn members(&self) -> impl Iterator<Item = Member> + '_ {
        self.by_user.iter().map(|(id, e)| Member {
            user_id: id.clone(),
            user_info: e.info.clone(),
        })
    }

    pub fn user_ids(&self) -> impl Iterator<Item = &str> {
        self.by_user.keys().map(|id| &**id)
    }

    /// `pusher_internal:subscription_succeeded` data: `{"presence":{"ids","hash","count"}}`.
    pub fn subscription_data(&self) -> String {
        #[derive(serde::Serialize)]
        struct Presence<'a> {
            ids: Vec<&'a str>,
            hash: HashMap<&'a str, &'a RawValue>,
            count: usize,
        }
        let presence = Presence {
            ids: self.user_ids().collect(),
            hash: self
                .by_user
                .iter()
                .map(|(id, e)| (&**id, &*e.info))
                .collect(),
            count: self.len(),
        };
        serde_json::json!({ "presence": presence }).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(id: &str) -> Member {
        Member::from_channel_data(
            &format!(r#"{{"user_id":"{id}","user_info":{{"n":"{id}"}}}}"#),
            1024,
        )
        .unwrap()
    }

    #[test]
    fn one_user_on_two_connections_is_one_member() {
        let mut members = Members::default();
        assert!(members.join(&member("1")));
        assert!(!members.join(&member("1")));
        assert!(members.join(&member("2")));
        assert_eq!(members.len(), 2);
        assert!(!members.leave("1", false));
        assert!(members.leave("1", false));
        assert!(!members.leave("1", false));
        assert_eq!(members.len(), 1);
    }

    #[test]
    fn a_lingering_member_departs_unless_they_come_back() {
        let mut members = Members::default();
        members.join(&member("1"));
        assert!(!members.leave("1", true), "lingers");
        assert!(members.contains("1"));
        assert!(!members.join(&member("1")), "back: not a new member");
        assert!(!members.depart("1"), "connected: stays");
        assert!(!members.leave("1", true));
        assert!(members.depart("1"));
        assert!(members.is_empty());
    }

    #[test]
    fn subscription_data_shape() {
        let mut members = Members::default();
        members.join(&member("7"));
        let v: serde_json::Value = serde_json::from_str(&members.subscription_data()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"presence":{"ids":["7"],"hash":{"7":{"n":"7"}},"count":1}})
        );
    }

    #[test]
    fn channel_data_rules() {
        let numeric = Member::from_channel_data(r#"{"user_id":10}"#, 1024).unwrap();
        assert_eq!(&*numeric.user_id, "10");
        assert_eq!(numeric.user_info.get(), "null");
        assert!(Member::from_channel_data("{}", 1024).is_err());
        assert!(Member::from_channel_data(r#"{"user_id":""}"#, 1024).is_err());
        assert!(Member::from_channel_data(r#"{"user_id":true}"#, 1024).is_err());
        let long_id = format!(r#"{{"user_id":"{}"}}"#, "x".repeat(129));
        assert!(Member::from_channel_data(&long_id, 1024).is_err());
        let big_info = format!(r#"{{"user_id":"1","user_info":"{}"}}"#, "x".repeat(1100));
        assert!(Member::from_channel_data(&big_info, 1024)
            .unwrap_err()
            .contains("user_info"));
        let user = Member::from_user_data(r#"{"id":"5","user_info":{"a":1}}"#, 1024).unwrap();
        assert_eq!((&*user.user_id, user.user_info.get()), ("5", r#"{"a":1}"#));
    }
}
