//! Presence statuses of the members of one presence channel, own and remote: online/away, and
//! what a user set (`busy`, "In a meeting"), their device, since when they are away, and when
//! members who left were last seen.
//!
//! Local side: the page hidden for `away_after_ms`, or (when `idle_after_ms` is set) no user
//! input for that long, makes the own status `away`; visible again or any input makes it
//! `online` at once. A status the user set ([`AwayStatus::set_own`]) wins over both until
//! cleared. On servers without the status extension each change is announced as
//! `client-overtone-status` `{"status":"online"|"away"|…,"message"?,"device"?,"user_id"?}`
//! (`user_id` when known; the server adds it on presence channels anyway); with it the shell
//! sends the user's status once for all channels ([`super::ClientFeatures`]) and this machine
//! only listens.
//!
//! Remote side: every member is `online` when the subscription succeeds or when they join, then
//! follows their announcements (or the server's updates), and is gone when they leave, into a
//! bounded list of members who left with when they were last seen. Because newcomers assume
//! `online`, only a member with another status has anything to tell them: a join makes them
//! re-announce, after `announce_delay_ms` so a burst of joins costs one event.
//!
//! Nothing is sent between [`AwayStatus::unsubscribed`] and the next [`AwayStatus::subscribed`].
//! If the server refuses client events the machine stops sending and the feature degrades to
//! plain presence: everyone stays `online` unless they manage to announce otherwise.

use crate::prelude::*;

use super::sorted_map::SortedMap;

use super::{earliest, push_json_string, Action, Outbox};

/// The client event name; laravel-echo apps see it as the whisper `overtone-status`.
pub const STATUS_EVENT: &str = "client-overtone-status";
/// Longest status word (bytes) and message (characters) accepted, as the server takes them.
pub const MAX_STATUS_LEN: usize = 16;
pub const MAX_MESSAGE_LEN: usize = 100;
/// Most members who left that a channel remembers; the longest gone are forgotten first.
pub const MAX_LEFT: usize = 100;

/// A present member's availability. A member who left has none.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Online,
    Away,
}

impl Status {
    /// The value of the payload's `status` field.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Online => "online",
            Status::Away => "away",
        }
    }

    /// Reads a payload's `status` field; an unknown value is `None` (ignore the event).
    pub fn parse(value: &str) -> Option<Status> {
        match value {
            "online" => Some(Status::Online),
            "away" => Some(Status::Away),
            _ => None,
        }
    }
}

/// What a present member shows: their status word, message and device, and since when they
/// are away.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemberStatus {
    /// `online`, `away`, or what the user set (`busy`, ...).
    pub status: String,
    /// The user's short message; `""` for none.
    pub message: String,
    /// `desktop` or `mobile`; `""` when not told.
    pub device: String,
    /// Since when (ms since the Unix epoch) the member is `away`.
    pub away_since: Option<u64>,
}

impl MemberStatus {
    fn online() -> MemberStatus {
        MemberStatus {
            status: "online".into(),
            ..MemberStatus::default()
        }
    }

    /// `away` is away; any other status (`busy` too) is there.
    pub fn availability(&self) -> Status {
        if self.status == "away" {
            Status::Away
        } else {
            Status::Online
        }
    }
}

/// Whether `status` and `message` may be set: a word of lowercase letters, digits, `-` or `_`
/// of at most [`MAX_STATUS_LEN`] bytes, and a message of at most [`MAX_MESSAGE_LEN`]
/// characters.
pub fn valid_status(status: &str, message: &str) -> bool {
    let word = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_';
    !status.is_empty()
        && status.len() <= MAX_STATUS_LEN
        && status.bytes().all(word)
        // Characters counted as the bytes that start one: `chars().count()` brings a
        // ~1 KB counting routine into the wasm.
        && message.bytes().filter(|b| b & 0xC0 != 0x80).count() <= MAX_MESSAGE_LEN
}

/// Thresholds of the status machine, in milliseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StatusConfig {
    /// Hidden this long -> away.
    pub away_after_ms: u64,
    /// No input (keys, pointer) this long while visible -> away; `None` ignores input.
    pub idle_after_ms: Option<u64>,
    /// Delay between a join and the re-announcement it triggers; joins in between share it.
    pub announce_delay_ms: u64,
}

impl Default for StatusConfig {
    fn default() -> Self {
        StatusConfig {
            away_after_ms: 30_000,
            idle_after_ms: None,
            announce_delay_ms: 1000,
        }
    }
}

/// Status state of one presence channel. Drive it with inputs, then drain
/// [`AwayStatus::poll_action`] and re-arm the timer at [`AwayStatus::poll_timeout`].
#[derive(Debug)]
pub struct AwayStatus {
    config: StatusConfig,
    outbox: Outbox,
    /// Between `subscribed` and `unsubscribed`: announcements can be sent.
    subscribed: bool,
    /// Announce by whispers (servers without the status extension).
    whispers: bool,
    hidden_since_ms: Option<u64>,
    last_input_ms: u64,
    /// Online/away from visibility and input.
    own: Status,
    /// What the user set (status, message), over `own`.
    set: Option<(String, String)>,
    device: String,
    /// Present members by user id (sorted, so listings are stable), own entry included.
    members: SortedMap<MemberStatus>,
    /// Members who left: when they were last seen (ms since the Unix epoch).
    left: SortedMap<u64>,
    /// When the re-announcement for newcomers is due.
    announce_at_ms: Option<u64>,
}

impl AwayStatus {
    /// `visible` is the page's visibility at `now_ms`. `own_user_id` goes into the payload and
    /// marks the own entry among the members, which mirrors [`AwayStatus::own`]. Create
    /// it once per channel and keep it across reconnects: the own status follows the page, not
    /// the connection.
    pub fn new(
        config: StatusConfig,
        own_user_id: Option<String>,
        visible: bool,
        now_ms: u64,
    ) -> AwayStatus {
        AwayStatus {
            config,
            outbox: Outbox::new(own_user_id),
            subscribed: false,
            whispers: true,
            hidden_since_ms: (!visible).then_some(now_ms),
            last_input_ms: now_ms,
            own: Status::Online,
            set: None,
            device: String::new(),
            members: SortedMap::default(),
            left: SortedMap::default(),
            announce_at_ms: None,
        }
    }

    /// The page became visible or hidden (`visibilitychange`, `pagehide`, `pageshow`).
    pub fn visibility_changed(&mut self, visible: bool, now_ms: u64) {
        if visible {
            self.hidden_since_ms = None;
            // Coming back to the page is activity: the idle clock restarts.
            self.last_input_ms = now_ms;
        } else if self.hidden_since_ms.is_none() {
            self.hidden_since_ms = Some(now_ms);
        }
        self.update_own(now_ms);
    }

    /// The user typed, clicked or moved the pointer (the shell may throttle these).
    pub fn user_input(&mut self, now_ms: u64) {
        self.last_input_ms = now_ms;
        self.update_own(now_ms);
    }

    /// What the user set (`None`: back to online/away by visibility) and their device. Check
    /// it with [`valid_status`] first.
    pub fn set_own(&mut self, set: Option<(String, String)>, device: &str) {
        if self.set == set && self.device == device {
            return;
        }
        self.set = set;
        self.device = device.into();
        self.mirror_own();
        self.outbox.changed();
        self.announce();
    }

    /// Whether the server carries statuses itself (`overtone:status`): then this machine does
    /// not whisper them.
    pub fn server_carries_statuses(&mut self, carries: bool) {
        self.whispers = !carries;
    }

    /// The subscription succeeded with these members (the presence `ids`): all start `online`.
    /// Others assume we are online too, so another status is announced at once.
    pub fn subscribed<'a>(&mut self, member_ids: impl IntoIterator<Item = &'a str>, now_ms: u64) {
        self.subscribed = true;
        let was = self.own;
        // A change due now is announced by update_own itself (unless the user set a status);
        // an older status is not.
        self.update_own(now_ms);
        let announced = self.own != was && self.set.is_none();
        if !announced && !self.is_default() {
            self.announce();
        }
        self.members.clear();
        for id in member_ids {
            self.left.remove(id);
            self.members.insert(id.to_owned(), MemberStatus::online());
        }
        self.mirror_own();
        self.outbox.changed();
    }

    /// The subscription was lost (disconnect, unsubscribe): no members and nothing sent until
    /// the next [`AwayStatus::subscribed`], which announces an away status again.
    pub fn unsubscribed(&mut self) {
        self.subscribed = false;
        self.announce_at_ms = None;
        if !self.members.is_empty() {
            self.members.clear();
            self.outbox.changed();
        }
    }

    /// `member_added`: the newcomer starts `online`; if we are not, they must hear it.
    pub fn member_joined(&mut self, user_id: &str, now_ms: u64) {
        self.left.remove(user_id);
        self.members
            .insert(user_id.to_owned(), MemberStatus::online());
        self.mirror_own();
        self.outbox.changed();
        let announces = self.whispers && self.outbox.sending_enabled;
        if !self.is_default() && announces && self.announce_at_ms.is_none() {
            self.announce_at_ms = Some(now_ms.saturating_add(self.config.announce_delay_ms));
        }
    }

    /// `member_removed`: the member is gone, last seen at `last_seen` (ms since the epoch).
    pub fn member_left(&mut self, user_id: &str, last_seen: u64) {
        if self.members.remove(user_id).is_none() {
            return;
        }
        if self.left.len() >= MAX_LEFT {
            let oldest = self
                .left
                .iter()
                .min_by_key(|(_, &at)| at)
                .map(|(u, _)| u.clone());
            if let Some(oldest) = oldest {
                self.left.remove(&oldest);
            }
        }
        self.left.insert(user_id.to_owned(), last_seen);
        self.outbox.changed();
    }

    /// A member who left before this client subscribed (the server's list), last seen then.
    pub fn left_before(&mut self, user_id: &str, last_seen: u64) {
        if self.members.get(user_id).is_none() && self.left.len() < MAX_LEFT {
            self.left.insert(user_id.to_owned(), last_seen);
            self.outbox.changed();
        }
    }

    /// A status from `user_id` (a whisper, or the server's update). Only present members are
    /// tracked, so a late event cannot bring back someone who left. `away_since` when the
    /// sender said it; else an away member is away from `now_wall_ms` (ms since the epoch)
    /// unless they already were. Our own other tabs' (or the server's) online/away does not
    /// override this tab's; a status the user set there is returned, for this tab to adopt
    /// (after a reload the server still has it).
    pub fn received(
        &mut self,
        user_id: &str,
        update: MemberStatus,
        now_wall_ms: u64,
    ) -> Option<(String, String)> {
        if self.outbox.is_own(user_id) {
            let set = !matches!(update.status.as_str(), "online" | "away");
            return set.then_some((update.status, update.message));
        }
        let current = self.members.get_mut(user_id)?;
        let mut update = update;
        if update.availability() == Status::Away && update.away_since.is_none() {
            update.away_since = current.away_since.or(Some(now_wall_ms));
        }
        if update.availability() == Status::Online {
            update.away_since = None;
        }
        if *current != update {
            *current = update;
            self.outbox.changed();
        }
        None
    }

    /// Between a confirmed subscription and its loss.
    pub fn is_subscribed(&self) -> bool {
        self.subscribed
    }

    /// The server refused client events (a `pusher:error` about them): stop sending.
    pub fn client_events_refused(&mut self) {
        self.outbox.sending_enabled = false;
        self.announce_at_ms = None;
    }

    /// The earliest time [`AwayStatus::handle_timeout`] has something to do, if any.
    pub fn poll_timeout(&self) -> Option<u64> {
        let goes_away = if self.own == Status::Online {
            self.away_at()
        } else {
            None
        };
        earliest(goes_away, self.announce_at_ms)
    }

    /// Runs what is due at `now_ms`: going away, the re-announcement for newcomers.
    pub fn handle_timeout(&mut self, now_ms: u64) {
        self.update_own(now_ms);
        if self.announce_at_ms.is_some_and(|at| now_ms >= at) {
            self.announce_at_ms = None;
            if !self.is_default() {
                self.announce();
            }
        }
    }

    /// The next thing for the shell to do.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.outbox.poll()
    }

    /// This tab's own availability: away when hidden or idle, or set so.
    pub fn own_status(&self) -> Status {
        self.own_member().availability()
    }

    /// This tab's own status as others see it (no `away_since`: the shell knows the wall clock).
    pub fn own_member(&self) -> MemberStatus {
        let (status, message) = match &self.set {
            Some((status, message)) => (status.clone(), message.clone()),
            None => (self.own.as_str().into(), String::new()),
        };
        MemberStatus {
            status,
            message,
            device: self.device.clone(),
            away_since: None,
        }
    }

    /// A member's availability; `None` when they are not (or no longer) present.
    pub fn status_of(&self, user_id: &str) -> Option<Status> {
        self.members.get(user_id).map(MemberStatus::availability)
    }

    /// Every present member with their availability, sorted by user id.
    pub fn statuses(&self) -> impl Iterator<Item = (&str, Status)> {
        self.members
            .iter()
            .map(|(id, member)| (id.as_str(), member.availability()))
    }

    /// Every present member with all they show, sorted by user id.
    pub fn members(&self) -> impl Iterator<Item = (&str, &MemberStatus)> {
        self.members
            .iter()
            .map(|(id, member)| (id.as_str(), member))
    }

    /// Members who left, with when they were last seen, sorted by user id.
    pub fn left(&self) -> impl Iterator<Item = (&str, u64)> {
        self.left.iter().map(|(id, &at)| (id.as_str(), at))
    }

    /// Online with no message: what newcomers assume, so nothing to tell them.
    fn is_default(&self) -> bool {
        self.set.is_none() && self.own == Status::Online
    }

    /// When being hidden or idle makes the own status away, unless the user comes back first.
    fn away_at(&self) -> Option<u64> {
        let hidden = self
            .hidden_since_ms
            .map(|since| since.saturating_add(self.config.away_after_ms));
        let idle = self
            .config
            .idle_after_ms
            .map(|idle| self.last_input_ms.saturating_add(idle));
        earliest(hidden, idle)
    }

    fn update_own(&mut self, now_ms: u64) {
        let status = if self.away_at().is_some_and(|at| now_ms >= at) {
            Status::Away
        } else {
            Status::Online
        };
        if status != self.own {
            self.own = status;
            self.mirror_own();
            self.outbox.changed();
            // What the user set stays what others see.
            if self.set.is_none() {
                self.announce();
            }
        }
    }

    fn mirror_own(&mut self) {
        let own = self.own_member();
        if let Some(entry) = self
            .outbox
            .own_user_id
            .as_deref()
            .and_then(|id| self.members.get_mut(id))
        {
            *entry = own;
        }
    }

    fn announce(&mut self) {
        // Whatever was pending for newcomers is covered by this announcement.
        self.announce_at_ms = None;
        if !self.whispers || !self.outbox.sending_enabled || !self.subscribed {
            return;
        }
        let fields = status_fields(&self.own_member());
        self.outbox.send(STATUS_EVENT, &fields);
    }
}

/// `"status":…` with `"message"` and `"device"` when not empty: the whisper's fields, and the
/// `overtone:status` frame's data.
pub(crate) fn status_fields(member: &MemberStatus) -> String {
    let mut fields = String::from("\"status\":");
    push_json_string(&mut fields, &member.status);
    for (name, value) in [("message", &member.message), ("device", &member.device)] {
        if !value.is_empty() {
            fields.push_str(",\"");
            fields.push_str(name);
            fields.push_str("\":");
            push_json_string(&mut fields, value);
        }
    }
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(visible: bool) -> AwayStatus {
        let mut machine =
            AwayStatus::new(StatusConfig::default(), Some("me".to_owned()), visible, 0);
        machine.subscribed(["ana", "me"], 0);
        machine
    }

    /// Drains the actions, returning the statuses announced and whether any `Changed` came out.
    fn drain(machine: &mut AwayStatus) -> (Vec<String>, bool) {
        let mut sent = Vec::new();
        let mut changed = false;
        while let Some(action) = machine.poll_action() {
            match action {
                Action::SendClientEvent { event, data } => {
                    assert_eq!(event, STATUS_EVENT);
                    sent.push(data);
                }
                Action::Changed => changed = true,
            }
        }
        (sent, changed)
    }

    fn away() -> MemberStatus {
        MemberStatus {
            status: "away".into(),
            ..MemberStatus::default()
        }
    }

    const AWAY: &str = r#"{"status":"away","user_id":"me"}"#;
    const ONLINE: &str = r#"{"status":"online","user_id":"me"}"#;

    #[test]
    fn hidden_past_the_threshold_goes_away_and_visible_comes_back_at_once() {
        let mut machine = status(true);
        assert!(
            drain(&mut machine).0.is_empty(),
            "online needs no announcement"
        );
        machine.visibility_changed(false, 1000);
        assert_eq!(machine.poll_timeout(), Some(31_000));
        machine.handle_timeout(30_999);
        assert_eq!(machine.own_status(), Status::Online);
        machine.handle_timeout(31_000);
        assert_eq!(machine.own_status(), Status::Away);
        assert_eq!(machine.status_of("me"), Some(Status::Away));
        assert_eq!(drain(&mut machine), (vec![AWAY.to_owned()], true));
        machine.visibility_changed(true, 40_000);
        assert_eq!(machine.own_status(), Status::Online);
        assert_eq!(drain(&mut machine), (vec![ONLINE.to_owned()], true));
        assert_eq!(machine.poll_timeout(), None);
    }

    #[test]
    fn coming_back_before_the_threshold_never_goes_away() {
        let mut machine = status(true);
        machine.visibility_changed(false, 0);
        machine.visibility_changed(true, 29_999);
        assert_eq!(machine.poll_timeout(), None);
        machine.handle_timeout(60_000);
        assert_eq!(machine.own_status(), Status::Online);
        assert!(drain(&mut machine).0.is_empty());
    }

    #[test]
    fn idle_threshold_goes_away_and_input_comes_back() {
        let config = StatusConfig {
            idle_after_ms: Some(60_000),
            ..StatusConfig::default()
        };
        let mut machine = AwayStatus::new(config, None, true, 0);
        machine.subscribed(["ana"], 0);
        machine.user_input(10_000);
        assert_eq!(machine.poll_timeout(), Some(70_000));
        machine.handle_timeout(70_000);
        assert_eq!(machine.own_status(), Status::Away);
        machine.user_input(80_000);
        assert_eq!(machine.own_status(), Status::Online);
        let expected = [r#"{"status":"away"}"#, r#"{"status":"online"}"#].map(str::to_owned);
        assert_eq!(drain(&mut machine).0, expected);
    }

    #[test]
    fn subscribing_while_away_announces_it() {
        let mut machine = AwayStatus::new(StatusConfig::default(), Some("me".to_owned()), false, 0);
        machine.handle_timeout(30_000);
        drain(&mut machine);
        machine.subscribed(["me", "ana"], 31_000);
        assert_eq!(drain(&mut machine), (vec![AWAY.to_owned()], true));
        assert_eq!(machine.status_of("me"), Some(Status::Away));
    }

    #[test]
    fn subscribing_when_the_away_timer_is_due_announces_once() {
        let mut machine = AwayStatus::new(StatusConfig::default(), Some("me".to_owned()), false, 0);
        machine.subscribed(["me"], 30_000);
        assert_eq!(drain(&mut machine).0, [AWAY]);
    }

    #[test]
    fn nothing_is_sent_while_unsubscribed_and_away_is_announced_on_resubscribing() {
        let mut machine = status(true);
        machine.visibility_changed(false, 0);
        machine.unsubscribed();
        assert_eq!(machine.statuses().count(), 0);
        machine.handle_timeout(30_000);
        assert_eq!(machine.own_status(), Status::Away);
        assert_eq!(drain(&mut machine), (vec![], true));
        machine.subscribed(["me", "ana"], 40_000);
        assert_eq!(drain(&mut machine).0, [AWAY]);
    }

    #[test]
    fn a_burst_of_joins_is_answered_by_one_announcement() {
        let mut machine = status(false);
        machine.handle_timeout(30_000);
        drain(&mut machine);
        for (i, id) in ["bob", "cyd", "dan"].into_iter().enumerate() {
            machine.member_joined(id, 40_000 + i as u64 * 100);
        }
        assert_eq!(machine.poll_timeout(), Some(41_000));
        assert!(drain(&mut machine).0.is_empty());
        machine.handle_timeout(41_000);
        assert_eq!(drain(&mut machine).0, [AWAY]);
        assert_eq!(machine.poll_timeout(), None);
        machine.member_joined("eve", 50_000);
        machine.handle_timeout(51_000);
        assert_eq!(
            drain(&mut machine).0,
            [AWAY],
            "a later join is answered again"
        );
    }

    #[test]
    fn joins_while_online_send_nothing() {
        let mut machine = status(true);
        machine.member_joined("bob", 1000);
        assert_eq!(machine.poll_timeout(), None);
        assert_eq!(drain(&mut machine), (vec![], true));
    }

    #[test]
    fn refused_client_events_stop_sending_but_keep_local_status() {
        let mut machine = status(false);
        machine.client_events_refused();
        machine.handle_timeout(30_000);
        machine.member_joined("bob", 31_000);
        machine.handle_timeout(40_000);
        assert_eq!(machine.own_status(), Status::Away);
        assert_eq!(machine.poll_timeout(), None);
        assert!(drain(&mut machine).0.is_empty());
    }

    #[test]
    fn remote_statuses_follow_events_joins_and_leaves() {
        let mut machine = status(true);
        machine.member_joined("bob", 0);
        assert_eq!(machine.received("ana", away(), 0), None);
        drain(&mut machine);
        machine.received("ana", away(), 0);
        assert!(!drain(&mut machine).1, "same status, no change");
        assert_eq!(
            machine.received("me", away(), 0),
            None,
            "own online/away is this tab's"
        );
        let busy = MemberStatus {
            status: "busy".into(),
            message: "Lunch".into(),
            ..away()
        };
        assert_eq!(
            machine.received("me", busy, 0),
            Some(("busy".into(), "Lunch".into()))
        );
        machine.received("ghost", away(), 0);
        let all: Vec<_> = machine.statuses().collect();
        assert_eq!(
            all,
            [
                ("ana", Status::Away),
                ("bob", Status::Online),
                ("me", Status::Online)
            ]
        );
        machine.member_left("ana", 5);
        assert_eq!(machine.status_of("ana"), None);
        assert!(drain(&mut machine).1);
        assert_eq!(Status::parse("away"), Some(Status::Away));
        assert_eq!(Status::parse("busy"), None);
    }

    #[test]
    fn a_set_status_wins_over_away_and_goes_to_newcomers_with_message_and_device() {
        let mut machine = status(true);
        machine.set_own(Some(("busy".into(), "In a meeting".into())), "mobile");
        let busy = r#"{"status":"busy","message":"In a meeting","device":"mobile","user_id":"me"}"#;
        assert_eq!(drain(&mut machine), (vec![busy.to_owned()], true));
        assert_eq!(
            machine
                .members()
                .find(|(id, _)| *id == "me")
                .unwrap()
                .1
                .status,
            "busy"
        );
        machine.visibility_changed(false, 0);
        machine.handle_timeout(30_000);
        assert!(
            drain(&mut machine).0.is_empty(),
            "hidden: still busy for the others"
        );
        assert_eq!(machine.own_status(), Status::Online, "busy is there");
        machine.member_joined("bob", 40_000);
        machine.handle_timeout(41_000);
        assert_eq!(drain(&mut machine).0, [busy]);
        machine.set_own(None, "mobile");
        assert_eq!(
            drain(&mut machine).0,
            [r#"{"status":"away","device":"mobile","user_id":"me"}"#]
        );
        assert!(valid_status("in-a_meeting2", ""));
        assert!(!valid_status("Busy", ""));
        assert!(!valid_status("", ""));
        assert!(!valid_status("busy", &"x".repeat(MAX_MESSAGE_LEN + 1)));
        assert!(
            valid_status("busy", &"é".repeat(MAX_MESSAGE_LEN)),
            "characters, not bytes"
        );
    }

    #[test]
    fn with_the_server_carrying_statuses_nothing_is_whispered() {
        let mut machine = status(false);
        machine.server_carries_statuses(true);
        machine.handle_timeout(30_000);
        machine.set_own(Some(("busy".into(), String::new())), "");
        machine.member_joined("bob", 31_000);
        assert_eq!(machine.poll_timeout(), None);
        assert!(drain(&mut machine).0.is_empty());
    }

    #[test]
    fn away_since_is_kept_from_the_first_away_and_left_members_are_remembered_bounded() {
        let mut machine = status(true);
        machine.received("ana", away(), 1_000);
        machine.received("ana", away(), 2_000);
        let ana = machine
            .members()
            .find(|(id, _)| *id == "ana")
            .unwrap()
            .1
            .clone();
        assert_eq!(ana.away_since, Some(1_000));
        let told = MemberStatus {
            away_since: Some(500),
            ..away()
        };
        machine.received("ana", told, 3_000);
        assert_eq!(
            machine
                .members()
                .find(|(id, _)| *id == "ana")
                .unwrap()
                .1
                .away_since,
            Some(500)
        );
        machine.received(
            "ana",
            MemberStatus {
                status: "online".into(),
                ..MemberStatus::default()
            },
            4_000,
        );
        assert_eq!(
            machine
                .members()
                .find(|(id, _)| *id == "ana")
                .unwrap()
                .1
                .away_since,
            None
        );
        machine.member_left("ana", 9_000);
        assert_eq!(machine.left().collect::<Vec<_>>(), [("ana", 9_000)]);
        machine.member_joined("ana", 10_000);
        assert_eq!(machine.left().count(), 0, "back: no longer left");
        for i in 0..MAX_LEFT as u64 + 5 {
            let mut user = String::from("u");
            crate::core::push_decimal(&mut user, i);
            machine.member_joined(&user, 0);
            machine.member_left(&user, 100 + i);
        }
        assert_eq!(machine.left().count(), MAX_LEFT);
        assert!(
            machine.left().all(|(_, at)| at >= 105),
            "the longest gone were forgotten"
        );
    }
}
