//! One client's feature machines together: a typing machine per channel, a status machine per
//! presence channel, a read-receipts machine per private and presence channel, the user's set
//! status and the user's badges, fed what the client saw and drained as one queue of
//! [`FeatureAction`]s with one deadline. Both shells drive it — the npm package's features
//! module (`web_features`) and the Rust API (`echo`) — so they cannot drift.
//!
//! Servers with Overtone's wire extensions (`"overtone":{"reads":1,"status":1}` in
//! `pusher:connection_established`) are sent `overtone:read` and `overtone:status` frames
//! ([`FeatureAction::Send`]); statuses then go once per connection for every presence channel
//! rather than as a whisper on each. Other servers get whispers for statuses, and reads stay
//! local.

use crate::prelude::*;

use super::badges::{BadgeAction, Badges, ReadTarget};
use super::reads::{Reads, ReadsAction};
use super::status::{valid_status, AwayStatus, MemberStatus, Status, StatusConfig};
use super::typing::{Typing, TypingConfig};
use super::{earliest, push_json_string, refuses_client_events, Action};

/// What changed, for the app's change callbacks; also which machine a whisper comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Watched {
    Typing,
    Status,
    Badges,
    Reads,
}

impl Watched {
    /// The whisper's event name as the app's `whisper(event, ..)` takes it (no `client-`).
    pub fn whisper_event(self) -> &'static str {
        match self {
            Watched::Typing => "typing",
            _ => "overtone-status",
        }
    }
}

/// What the machines ask the shell to do, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FeatureAction {
    /// Whisper `data` (JSON text) on `channel` as `what.whisper_event()`.
    Whisper {
        what: Watched,
        channel: String,
        data: String,
    },
    /// Call the change callbacks of `what` (on `channel`; empty for badges).
    Changed { what: Watched, channel: String },
    /// Keep this text as the badges' stored state (localStorage).
    StoreBadges(String),
    /// Post this text to the user's other tabs (BroadcastChannel).
    PostBadges(String),
    /// Send this frame (JSON text) on the socket: `overtone:read`, `overtone:status`.
    Send(String),
}

/// What the server announced it carries (`pusher:connection_established`'s `overtone`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Extensions {
    pub reads: bool,
    pub status: bool,
}

/// The feature machines of one client. Call inputs, then drain [`ClientFeatures::poll_action`]
/// and arm one timer for [`ClientFeatures::poll_timeout`].
pub struct ClientFeatures {
    typing: Vec<(String, Typing)>,
    statuses: Vec<(String, AwayStatus)>,
    status_config: StatusConfig,
    reads: Vec<(String, Reads)>,
    /// The current connection's extensions; `None` while down.
    server: Option<Extensions>,
    /// What the user set (status, message) and the device.
    set: Option<(String, String)>,
    device: String,
    /// What the server has of this user's status from this connection: nothing set (it may
    /// keep what an earlier connection set) until the first `overtone:status`.
    status_sent: MemberStatus,
    /// The user is signed in on this connection: the server takes reads on private channels.
    signed_in: bool,
    badges: Badges,
    visible: bool,
    actions: Vec<FeatureAction>,
}

impl ClientFeatures {
    /// `stored_badges`: what [`FeatureAction::StoreBadges`] stored last (empty: none).
    pub fn new(stored_badges: &str, visible: bool, status_config: StatusConfig) -> ClientFeatures {
        ClientFeatures {
            typing: Vec::new(),
            statuses: Vec::new(),
            status_config,
            reads: Vec::new(),
            server: None,
            set: None,
            device: String::new(),
            status_sent: MemberStatus::default(),
            signed_in: false,
            badges: match stored_badges {
                "" => Badges::new(),
                text => Badges::restore(text),
            },
            visible,
            actions: Vec::new(),
        }
    }

    /// A presence subscription was confirmed with `members`; `own` is this user's id there.
    pub fn presence_up<'a>(
        &mut self,
        channel: &str,
        own: Option<String>,
        members: impl IntoIterator<Item = &'a str>,
        now: u64,
    ) {
        if self.status(channel).is_none() {
            let mut status = AwayStatus::new(self.status_config, own, self.visible, now);
            status.set_own(self.set.clone(), &self.device);
            status.server_carries_statuses(self.server.unwrap_or_default().status);
            // Set quietly: nothing is subscribed yet, and `subscribed` announces.
            while status.poll_action().is_some() {}
            self.statuses.push((channel.into(), status));
        }
        if let Some(status) = self.status(channel) {
            status.subscribed(members, now);
        }
    }

    pub fn member_joined(&mut self, channel: &str, user: &str, now: u64) {
        if let Some(status) = self.status(channel) {
            status.member_joined(user, now);
        }
    }

    /// `user` left `channel`, last seen at `last_seen` (ms since the epoch).
    pub fn member_left(&mut self, channel: &str, user: &str, last_seen: u64) {
        if let Some(status) = self.status(channel) {
            status.member_left(user, last_seen);
        }
        if let Some(typing) = self.typing_of(channel) {
            typing.member_left(user);
        }
    }

    /// The app left `channel`.
    pub fn left(&mut self, channel: &str) {
        self.typing.retain(|(name, _)| name != channel);
        self.statuses.retain(|(name, _)| name != channel);
        self.reads.retain(|(name, _)| name != channel);
    }

    /// The connection went down: nobody is seen typing, statuses and marks wait for the next
    /// subscribe.
    pub fn down(&mut self) {
        self.server = None;
        self.signed_in = false;
        self.typing.iter_mut().for_each(|(_, t)| t.reset());
        self.statuses.iter_mut().for_each(|(_, s)| s.unsubscribed());
        self.reads.iter_mut().for_each(|(_, r)| r.unsubscribed());
    }

    /// The connection is up, on a server carrying these extensions.
    pub fn established(&mut self, extensions: Extensions) {
        self.server = Some(extensions);
        self.status_sent = MemberStatus::default();
        for (_, status) in &mut self.statuses {
            status.server_carries_statuses(extensions.status);
        }
    }

    /// A private or presence channel's subscription succeeded; `latest` is its newest history
    /// position (`""`: none). Its read receipts are followed from here on.
    pub fn subscribed(&mut self, channel: &str, latest: &str, now: u64) {
        let live = self.takes_reads(channel);
        let latest = (!latest.is_empty()).then_some(latest);
        self.reads_of(channel).subscribed(latest, live, now);
    }

    /// The user signed in on this connection: marks on private channels can go.
    pub fn signed_in(&mut self, now: u64) {
        self.signed_in = true;
        let live = self.server.is_some_and(|s| s.reads);
        for (_, reads) in &mut self.reads {
            if reads.is_subscribed() {
                reads.subscribed(None, live, now);
            }
        }
    }

    /// The server takes `overtone:read` on `channel`: it announced reads, it knows the user
    /// (signed in, or a presence member), and the channel is not end-to-end encrypted (whose
    /// receipts it refuses: they stay in the page).
    fn takes_reads(&self, channel: &str) -> bool {
        let known = self.signed_in || channel.starts_with("presence-");
        let encrypted = channel.starts_with("private-encrypted-");
        known && !encrypted && self.server.is_some_and(|s| s.reads)
    }

    /// An event at history `position` on a followed channel.
    pub fn read_event(&mut self, channel: &str, position: &str) {
        if let Some((_, reads)) = self.reads.iter_mut().find(|(name, _)| name == channel) {
            reads.event(position);
        }
    }

    /// A marker from the server's `overtone:reads`; `own` is this user's id on the channel.
    pub fn reads_seen(&mut self, channel: &str, user: &str, up_to: &str, own: Option<&str>) {
        let is_own = own == Some(user);
        self.reads_of(channel).received(user, up_to, is_own);
    }

    /// The user read `channel` up to `up_to`; `false` for a marker that is empty or too long.
    pub fn mark_channel_read(&mut self, channel: &str, up_to: &str, now: u64) -> bool {
        self.reads_of(channel).mark(up_to, now)
    }

    /// The users other than this one who read `channel` up to `up_to` or further.
    pub fn readers(&mut self, channel: &str, up_to: &str) -> Vec<String> {
        let reads = self.reads_of(channel);
        reads.readers(up_to).map(str::to_owned).collect()
    }

    /// How far `user` read `channel`; this user without `user`.
    pub fn read_up_to(&mut self, channel: &str, user: Option<&str>) -> Option<String> {
        self.reads_of(channel).read_up_to(user).map(str::to_owned)
    }

    /// Every other user's marker on `channel`.
    pub fn read_markers(&mut self, channel: &str) -> Vec<(String, String)> {
        let reads = self.reads_of(channel);
        reads
            .markers()
            .map(|(u, m)| (u.to_owned(), m.to_owned()))
            .collect()
    }

    /// Events on `channel` past this user's marker.
    pub fn unread(&mut self, channel: &str) -> u32 {
        self.reads_of(channel).unread()
    }

    /// The user's status on every presence channel: `None` goes back to online/away by
    /// visibility. `false` (nothing changed) when the status is not a short lowercase word or
    /// the message is too long ([`valid_status`]).
    pub fn set_status(&mut self, set: Option<(&str, &str)>) -> bool {
        if set.is_some_and(|(status, message)| !valid_status(status, message)) {
            return false;
        }
        // `online` with no message is what nothing set shows.
        let set = set.filter(|&(status, message)| status != "online" || !message.is_empty());
        self.set = set.map(|(status, message)| (status.to_owned(), message.to_owned()));
        self.own_changed();
        true
    }

    /// The device this client runs on (`desktop`, `mobile`), as others see it.
    pub fn set_device(&mut self, device: &str) {
        self.device = device.into();
        self.own_changed();
    }

    fn own_changed(&mut self) {
        for (_, status) in &mut self.statuses {
            status.set_own(self.set.clone(), &self.device);
        }
    }

    /// This user's status as others see it.
    pub fn own_member(&self) -> MemberStatus {
        match self.statuses.first() {
            Some((_, status)) => status.own_member(),
            None => {
                let (status, message) =
                    self.set.clone().unwrap_or(("online".into(), String::new()));
                MemberStatus {
                    status,
                    message,
                    device: self.device.clone(),
                    away_since: None,
                }
            }
        }
    }

    /// A `pusher:error`'s message: client events may be refused for good.
    pub fn server_error(&mut self, message: &str) {
        if refuses_client_events(message) {
            self.typing
                .iter_mut()
                .for_each(|(_, t)| t.client_events_refused());
            self.statuses
                .iter_mut()
                .for_each(|(_, s)| s.client_events_refused());
        }
    }

    /// A keystroke by this user (`own`) on `channel`.
    pub fn typing(&mut self, channel: &str, own: Option<&str>, now: u64) {
        self.typing_machine(channel, own).keystroke(now);
    }

    /// The message was sent: this user stopped typing.
    pub fn stop_typing(&mut self, channel: &str, own: Option<&str>, now: u64) {
        self.typing_machine(channel, own).sent(now);
    }

    /// Who is typing on `channel`, in the order they started; typing is followed from the
    /// first look on.
    pub fn typing_users(&mut self, channel: &str, own: Option<&str>) -> Vec<String> {
        let machine = self.typing_machine(channel, own);
        machine.typing_users().map(str::to_owned).collect()
    }

    /// A typing whisper from `user`.
    pub fn typing_seen(&mut self, channel: &str, user: &str, typing: bool, now: u64) {
        if let Some(machine) = self.typing_of(channel) {
            machine.received(user, typing, now);
        }
    }

    /// A status from `user` on `channel` (a whisper, or the server's `overtone:member_updated`
    /// and `overtone:members`); one that is not a valid status is ignored. `now_wall`: ms since
    /// the epoch, for `away_since` when the sender did not say it.
    pub fn member_status(
        &mut self,
        channel: &str,
        user: &str,
        update: MemberStatus,
        now_wall: u64,
    ) {
        if !valid_status(&update.status, &update.message) {
            return;
        }
        let adopt = self
            .status(channel)
            .and_then(|machine| machine.received(user, update, now_wall));
        if adopt.is_some() && adopt != self.set {
            self.set = adopt;
            self.own_changed();
        }
    }

    /// A member who left `channel` before this client came (the server's `overtone:members`).
    pub fn left_before(&mut self, channel: &str, user: &str, last_seen: u64) {
        if let Some(machine) = self.status(channel) {
            machine.left_before(user, last_seen);
        }
    }

    /// Every present member of `channel` with all they show.
    pub fn member_statuses(&mut self, channel: &str) -> Vec<(String, MemberStatus)> {
        self.status(channel).map_or_else(Vec::new, |s| {
            s.members()
                .map(|(u, m)| (u.to_owned(), m.clone()))
                .collect()
        })
    }

    /// The members who left `channel`, with when they were last seen.
    pub fn left_members(&mut self, channel: &str) -> Vec<(String, u64)> {
        self.status(channel).map_or_else(Vec::new, |s| {
            s.left().map(|(u, at)| (u.to_owned(), at)).collect()
        })
    }

    /// Every present member's status on `channel`.
    pub fn statuses(&mut self, channel: &str) -> Vec<(String, Status)> {
        self.status(channel).map_or_else(Vec::new, |s| {
            s.statuses().map(|(u, s)| (u.to_owned(), s)).collect()
        })
    }

    /// `user`'s status on `channel`, or this user's own without `user`.
    pub fn status_of(&mut self, channel: &str, user: Option<&str>) -> Option<Status> {
        let machine = self.status(channel)?;
        match user {
            None => Some(machine.own_status()),
            Some(user) => machine.status_of(user),
        }
    }

    pub fn notification(&mut self, id: &str, category: &str) {
        self.badges.notification(id, category);
    }

    /// An absolute unread count from the server.
    pub fn badge_count(&mut self, category: &str, count: u32) {
        self.badges.set_count(category, count);
    }

    pub fn badges(&self) -> &Badges {
        &self.badges
    }

    pub fn mark_read(&mut self, target: ReadTarget) {
        self.badges.mark_read(target);
    }

    /// A [`FeatureAction::PostBadges`] text from another tab.
    pub fn badges_from_tab(&mut self, text: &str) {
        self.badges.apply_remote(text);
    }

    pub fn visibility_changed(&mut self, visible: bool, now: u64) {
        self.visible = visible;
        for (_, status) in &mut self.statuses {
            status.visibility_changed(visible, now);
        }
    }

    pub fn handle_timeout(&mut self, now: u64) {
        for (_, typing) in &mut self.typing {
            if typing.poll_timeout().is_some_and(|at| at <= now) {
                typing.handle_timeout(now);
            }
        }
        for (_, status) in &mut self.statuses {
            if status.poll_timeout().is_some_and(|at| at <= now) {
                status.handle_timeout(now);
            }
        }
        for (_, reads) in &mut self.reads {
            reads.handle_timeout(now);
        }
    }

    /// When to call [`ClientFeatures::handle_timeout`] next (absolute ms), if at all.
    pub fn poll_timeout(&self) -> Option<u64> {
        let typing = self.typing.iter().map(|(_, t)| t.poll_timeout());
        let statuses = self.statuses.iter().map(|(_, s)| s.poll_timeout());
        let reads = self.reads.iter().map(|(_, r)| r.poll_timeout());
        typing.chain(statuses).chain(reads).fold(None, earliest)
    }

    /// The next thing to do; call until `None` after every input.
    pub fn poll_action(&mut self) -> Option<FeatureAction> {
        if self.actions.is_empty() {
            self.collect_actions();
        }
        // A Vec used as a queue: VecDeque's code costs more wasm than shifting a few entries.
        (!self.actions.is_empty()).then(|| self.actions.remove(0))
    }

    /// Moves every machine's actions into the queue: typing, statuses, the status for the
    /// server, reads, then badges.
    fn collect_actions(&mut self) {
        self.send_status();
        let out = &mut self.actions;
        for (channel, typing) in &mut self.typing {
            while let Some(action) = typing.poll_action() {
                out.push(machine_action(Watched::Typing, channel, action));
            }
        }
        for (channel, status) in &mut self.statuses {
            while let Some(action) = status.poll_action() {
                out.push(machine_action(Watched::Status, channel, action));
            }
        }
        for (channel, reads) in &mut self.reads {
            while let Some(action) = reads.poll_action() {
                out.push(match action {
                    ReadsAction::Send(up_to) => FeatureAction::Send(read_frame(channel, &up_to)),
                    ReadsAction::Changed => FeatureAction::Changed {
                        what: Watched::Reads,
                        channel: channel.clone(),
                    },
                });
            }
        }
        while let Some(action) = self.badges.poll_action() {
            match action {
                BadgeAction::Changed => {
                    out.push(FeatureAction::StoreBadges(self.badges.encode()));
                    out.push(FeatureAction::Changed {
                        what: Watched::Badges,
                        channel: String::new(),
                    });
                }
                BadgeAction::Broadcast(message) => out.push(FeatureAction::PostBadges(message)),
            }
        }
    }

    /// Sends the user's status to a server carrying statuses when it is not what it was last
    /// sent on this connection, once a presence channel is up (the server applies it to all).
    fn send_status(&mut self) {
        let up = self.statuses.iter().any(|(_, s)| s.is_subscribed());
        if !self.server.is_some_and(|s| s.status) || !up {
            return;
        }
        let own = self.own_member();
        let sent = &self.status_sent;
        // Only what changed: an absent field keeps the server's value, so a new connection
        // that has nothing set does not clear what the user set before a reload.
        let mut fields = String::new();
        for (name, value, was) in [
            ("status", &own.status, &sent.status),
            ("message", &own.message, &sent.message),
            ("device", &own.device, &sent.device),
        ] {
            let unset_online = name == "status" && was.is_empty() && value == "online";
            if value != was && !unset_online {
                fields.push_str(if fields.is_empty() { "\"" } else { ",\"" });
                fields.push_str(name);
                fields.push_str("\":");
                push_json_string(&mut fields, value);
            }
        }
        if !fields.is_empty() {
            let mut frame = String::from(r#"{"event":"overtone:status","data":{"#);
            frame.push_str(&fields);
            frame.push_str("}}");
            self.actions.push(FeatureAction::Send(frame));
        }
        self.status_sent = own;
    }

    /// The channel's reads machine, made on first use.
    fn reads_of(&mut self, channel: &str) -> &mut Reads {
        let index = match self.reads.iter().position(|(name, _)| name == channel) {
            Some(index) => index,
            None => {
                self.reads.push((channel.into(), Reads::new()));
                self.reads.len() - 1
            }
        };
        &mut self.reads[index].1
    }

    fn status(&mut self, channel: &str) -> Option<&mut AwayStatus> {
        self.statuses
            .iter_mut()
            .find(|(name, _)| name == channel)
            .map(|(_, s)| s)
    }

    fn typing_of(&mut self, channel: &str) -> Option<&mut Typing> {
        self.typing
            .iter_mut()
            .find(|(name, _)| name == channel)
            .map(|(_, t)| t)
    }

    /// The channel's typing machine, made on first use with the own user id.
    fn typing_machine(&mut self, channel: &str, own: Option<&str>) -> &mut Typing {
        let index = match self.typing.iter().position(|(name, _)| name == channel) {
            Some(index) => index,
            None => {
                let typing = Typing::new(TypingConfig::default(), own.map(str::to_owned));
                self.typing.push((channel.into(), typing));
                self.typing.len() - 1
            }
        };
        &mut self.typing[index].1
    }
}

/// `overtone:read` for `channel` up to `up_to`.
fn read_frame(channel: &str, up_to: &str) -> String {
    let mut frame = String::from(r#"{"event":"overtone:read","data":{"channel":"#);
    push_json_string(&mut frame, channel);
    frame.push_str(r#","up_to":"#);
    push_json_string(&mut frame, up_to);
    frame.push_str("}}");
    frame
}

/// A typing or status machine's action on `channel`.
fn machine_action(what: Watched, channel: &str, action: Action) -> FeatureAction {
    let channel = channel.to_owned();
    match action {
        Action::SendClientEvent { data, .. } => FeatureAction::Whisper {
            what,
            channel,
            data,
        },
        Action::Changed => FeatureAction::Changed { what, channel },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(features: &mut ClientFeatures) -> Vec<FeatureAction> {
        core::iter::from_fn(|| features.poll_action()).collect()
    }

    #[test]
    fn machines_answer_through_one_queue_and_one_deadline() {
        let mut features = ClientFeatures::new("", true, StatusConfig::default());
        features.typing("presence-room", Some("7"), 1_000);
        assert_eq!(
            drain(&mut features),
            [FeatureAction::Whisper {
                what: Watched::Typing,
                channel: "presence-room".into(),
                data: r#"{"typing":true,"user_id":"7"}"#.into(),
            }]
        );
        // The typist's idle stop is due: the one deadline is the typing machine's.
        let due = features.poll_timeout().expect("a deadline");
        features.handle_timeout(due);
        assert!(matches!(
            drain(&mut features).as_slice(),
            [FeatureAction::Whisper { what: Watched::Typing, data, .. }] if data.contains("false")
        ));

        features.notification("n-1", "messages");
        let actions = drain(&mut features);
        assert!(
            matches!(&actions[0], FeatureAction::StoreBadges(text) if text.contains("messages"))
        );
        assert_eq!(
            actions[1],
            FeatureAction::Changed {
                what: Watched::Badges,
                channel: String::new()
            }
        );
        assert!(matches!(&actions[2], FeatureAction::PostBadges(_)));
        assert_eq!(features.badges().total(), 1);
    }

    #[test]
    fn presence_statuses_follow_members_and_visibility() {
        let config = StatusConfig {
            away_after_ms: 100,
            ..StatusConfig::default()
        };
        let mut features = ClientFeatures::new("", true, config);
        features.presence_up("presence-room", Some("1".into()), ["1", "2"], 0);
        drain(&mut features);
        let away = MemberStatus {
            status: "away".into(),
            ..MemberStatus::default()
        };
        features.member_status("presence-room", "2", away, 0);
        assert_eq!(
            features.status_of("presence-room", Some("2")),
            Some(Status::Away)
        );
        features.member_left("presence-room", "2", 0);
        assert_eq!(features.status_of("presence-room", Some("2")), None);
        features.visibility_changed(false, 10);
        let due = features.poll_timeout().expect("the away timer");
        features.handle_timeout(due);
        assert_eq!(
            features.status_of("presence-room", None),
            Some(Status::Away)
        );
        features.left("presence-room");
        assert_eq!(features.status_of("presence-room", None), None);
    }

    #[test]
    fn a_server_with_the_extensions_gets_one_status_frame_for_every_presence_channel() {
        let mut features = ClientFeatures::new("", true, StatusConfig::default());
        features.set_device("desktop");
        features.established(Extensions {
            reads: true,
            status: true,
        });
        for channel in ["presence-a", "presence-b", "presence-c"] {
            features.presence_up(channel, Some("1".into()), ["1", "2"], 0);
        }
        let sent = |actions: Vec<FeatureAction>| -> Vec<String> {
            actions
                .into_iter()
                .filter_map(|a| match a {
                    FeatureAction::Send(frame) => Some(frame),
                    FeatureAction::Whisper { .. } => panic!("no whispers: {a:?}"),
                    _ => None,
                })
                .collect()
        };
        assert_eq!(
            sent(drain(&mut features)),
            [r#"{"event":"overtone:status","data":{"device":"desktop"}}"#],
            "online with nothing set keeps what the server has (set before a reload)"
        );
        assert!(features.set_status(Some(("busy", "In a meeting"))));
        assert_eq!(
            sent(drain(&mut features)),
            [r#"{"event":"overtone:status","data":{"status":"busy","message":"In a meeting"}}"#]
        );
        assert!(!features.set_status(Some(("Busy!", ""))), "a clear refusal");
        assert!(sent(drain(&mut features)).is_empty());
        // A new connection: the server is told again once a presence channel is up.
        features.down();
        features.established(Extensions {
            reads: true,
            status: true,
        });
        assert!(sent(drain(&mut features)).is_empty());
        features.presence_up("presence-a", Some("1".into()), ["1"], 10);
        assert_eq!(
            sent(drain(&mut features)),
            [
                r#"{"event":"overtone:status","data":{"status":"busy","message":"In a meeting","device":"desktop"}}"#
            ]
        );
        // Cleared: the message goes as "" (which clears it on the server).
        features.set_status(None);
        assert_eq!(
            sent(drain(&mut features)),
            [r#"{"event":"overtone:status","data":{"status":"online","message":""}}"#]
        );
        // After a reload the server tells this user's status: adopted, and re-stated once
        // (the server announces no change).
        let lunch = MemberStatus {
            status: "busy".into(),
            message: "Lunch".into(),
            ..MemberStatus::default()
        };
        features.member_status("presence-a", "1", lunch, 0);
        assert_eq!(features.own_member().message, "Lunch");
        assert_eq!(
            sent(drain(&mut features)).len(),
            1,
            "against what this connection last sent"
        );
        // Others' statuses come from the server, for present members only.
        let busy = MemberStatus {
            status: "busy".into(),
            message: "Lunch".into(),
            device: "mobile".into(),
            away_since: None,
        };
        features.member_status("presence-a", "2", busy.clone(), 0);
        assert!(
            features.member_statuses("presence-a").is_empty()
                || features
                    .member_statuses("presence-a")
                    .iter()
                    .all(|(u, _)| u != "2")
        );
        features.member_joined("presence-a", "2", 20);
        features.member_status("presence-a", "2", busy.clone(), 0);
        assert!(features
            .member_statuses("presence-a")
            .contains(&("2".into(), busy)));
        features.member_left("presence-a", "2", 1_700_000_000_000);
        assert_eq!(
            features.left_members("presence-a"),
            [("2".into(), 1_700_000_000_000)]
        );
    }

    #[test]
    fn reads_go_as_one_frame_per_channel_and_window_and_only_to_servers_that_take_them() {
        let mut features = ClientFeatures::new("", true, StatusConfig::default());
        features.established(Extensions {
            reads: true,
            status: false,
        });
        features.subscribed("private-chat.1.2", "e:10", 0);
        features.mark_channel_read("private-chat.1.2", "e:0", 0);
        assert_eq!(
            features.poll_timeout(),
            None,
            "private: not before the sign-in"
        );
        features.signed_in(5);
        assert_eq!(
            features.poll_timeout(),
            Some(5),
            "signed in: the mark goes at once"
        );
        features.handle_timeout(5);
        assert!(drain(&mut features).contains(&FeatureAction::Send(
            r#"{"event":"overtone:read","data":{"channel":"private-chat.1.2","up_to":"e:0"}}"#
                .into()
        )));
        features.reads_seen("private-chat.1.2", "2", "e:10", Some("1"));
        drain(&mut features);
        assert_eq!(features.readers("private-chat.1.2", "e:9"), ["2"]);
        assert_eq!(features.unread("private-chat.1.2"), 10);
        for offset in ["e:1", "e:5", "e:10"] {
            assert!(features.mark_channel_read("private-chat.1.2", offset, 100));
        }
        assert!(!features.mark_channel_read("private-chat.1.2", "", 100));
        assert_eq!(features.unread("private-chat.1.2"), 0);
        let due = features.poll_timeout().expect("the batch");
        features.handle_timeout(due);
        let frames: Vec<_> = drain(&mut features)
            .into_iter()
            .filter(|a| matches!(a, FeatureAction::Send(_)))
            .collect();
        assert_eq!(
            frames,
            [FeatureAction::Send(
                r#"{"event":"overtone:read","data":{"channel":"private-chat.1.2","up_to":"e:10"}}"#
                    .into()
            )]
        );

        let mut encrypted = ClientFeatures::new("", true, StatusConfig::default());
        encrypted.established(Extensions {
            reads: true,
            status: true,
        });
        encrypted.signed_in(0);
        encrypted.subscribed("private-encrypted-dm", "", 0);
        encrypted.mark_channel_read("private-encrypted-dm", "3", 0);
        assert_eq!(encrypted.poll_timeout(), None, "the server refuses those");

        let mut elsewhere = ClientFeatures::new("", true, StatusConfig::default());
        elsewhere.established(Extensions::default());
        elsewhere.subscribed("private-chat.1.2", "", 0);
        elsewhere.mark_channel_read("private-chat.1.2", "7", 0);
        assert_eq!(elsewhere.poll_timeout(), None);
        assert_eq!(
            elsewhere.read_up_to("private-chat.1.2", None).as_deref(),
            Some("7")
        );
    }
}
