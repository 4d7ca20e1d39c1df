//! One client's feature machines together: a typing machine per channel, an away-status
//! machine per presence channel and the user's badges, fed what the client saw and drained as
//! one queue of [`FeatureAction`]s with one deadline. Both shells drive it — the npm package's
//! features module (`web_features`) and the Rust API (`echo`) — so they cannot drift.

use crate::prelude::*;

use super::badges::{BadgeAction, Badges, ReadTarget};
use super::status::{AwayStatus, Status, StatusConfig};
use super::typing::{Typing, TypingConfig};
use super::{earliest, refuses_client_events, Action};

/// What changed, for the app's change callbacks; also which machine a whisper comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Watched {
    Typing,
    Status,
    Badges,
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
}

/// The feature machines of one client. Call inputs, then drain [`ClientFeatures::poll_action`]
/// and arm one timer for [`ClientFeatures::poll_timeout`].
pub struct ClientFeatures {
    typing: Vec<(String, Typing)>,
    statuses: Vec<(String, AwayStatus)>,
    status_config: StatusConfig,
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
            let status = AwayStatus::new(self.status_config, own, self.visible, now);
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

    pub fn member_left(&mut self, channel: &str, user: &str) {
        if let Some(status) = self.status(channel) {
            status.member_left(user);
        }
        if let Some(typing) = self.typing_of(channel) {
            typing.member_left(user);
        }
    }

    /// The app left `channel`.
    pub fn left(&mut self, channel: &str) {
        self.typing.retain(|(name, _)| name != channel);
        self.statuses.retain(|(name, _)| name != channel);
    }

    /// The connection went down: nobody is seen typing, statuses wait for the next subscribe.
    pub fn down(&mut self) {
        self.typing.iter_mut().for_each(|(_, t)| t.reset());
        self.statuses.iter_mut().for_each(|(_, s)| s.unsubscribed());
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

    /// A status whisper from `user`; an unknown status is ignored.
    pub fn status_seen(&mut self, channel: &str, user: &str, status: &str) {
        if let (Some(machine), Some(value)) = (self.status(channel), Status::parse(status)) {
            machine.received(user, value);
        }
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
    }

    /// When to call [`ClientFeatures::handle_timeout`] next (absolute ms), if at all.
    pub fn poll_timeout(&self) -> Option<u64> {
        let typing = self.typing.iter().map(|(_, t)| t.poll_timeout());
        let statuses = self.statuses.iter().map(|(_, s)| s.poll_timeout());
        typing.chain(statuses).fold(None, earliest)
    }

    /// The next thing to do; call until `None` after every input.
    pub fn poll_action(&mut self) -> Option<FeatureAction> {
        if self.actions.is_empty() {
            self.collect_actions();
        }
        // A Vec used as a queue: VecDeque's code costs more wasm than shifting a few entries.
        (!self.actions.is_empty()).then(|| self.actions.remove(0))
    }

    /// Moves every machine's actions into the queue: typing, then statuses, then badges.
    fn collect_actions(&mut self) {
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
        features.status_seen("presence-room", "2", "away");
        assert_eq!(
            features.status_of("presence-room", Some("2")),
            Some(Status::Away)
        );
        features.member_left("presence-room", "2");
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
}
