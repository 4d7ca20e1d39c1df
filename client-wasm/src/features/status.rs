//! Online/away status of the members of one presence channel, own and remote.
//!
//! Local side: the page hidden for `away_after_ms`, or (when `idle_after_ms` is set) no user
//! input for that long, makes the own status `away`; visible again or any input makes it
//! `online` at once. Each change is announced as `client-overtone-status`
//! `{"status":"online"|"away","user_id":"…"}` (`user_id` when known; the server adds it on
//! presence channels anyway).
//!
//! Remote side: every member is `online` when the subscription succeeds or when they join, then
//! follows their announcements, and is gone when they leave. Because newcomers assume `online`,
//! only an `away` member has anything to tell them: a join makes an away member re-announce,
//! after `announce_delay_ms` so a burst of joins costs one event.
//!
//! Nothing is sent between [`AwayStatus::unsubscribed`] and the next [`AwayStatus::subscribed`].
//! If the server refuses client events the machine stops sending and the feature degrades to
//! plain presence: everyone stays `online` unless they manage to announce otherwise.

use crate::prelude::*;

use super::sorted_map::SortedMap;

use super::{earliest, Action, Outbox};

/// The client event name; laravel-echo apps see it as the whisper `overtone-status`.
pub const STATUS_EVENT: &str = "client-overtone-status";

/// A present member's status. A member who left has none.
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
    hidden_since_ms: Option<u64>,
    last_input_ms: u64,
    own: Status,
    /// Present members by user id (sorted, so listings are stable), own entry included.
    members: SortedMap<Status>,
    /// When the re-announcement for newcomers is due.
    announce_at_ms: Option<u64>,
}

impl AwayStatus {
    /// `visible` is the page's visibility at `now_ms`. `own_user_id` goes into the payload and
    /// marks the own entry among the members, which mirrors [`AwayStatus::own_status`]. Create
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
            hidden_since_ms: (!visible).then_some(now_ms),
            last_input_ms: now_ms,
            own: Status::Online,
            members: SortedMap::default(),
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

    /// The subscription succeeded with these members (the presence `ids`): all start `online`.
    /// Others assume we are online too, so an away status is announced at once.
    pub fn subscribed<'a>(&mut self, member_ids: impl IntoIterator<Item = &'a str>, now_ms: u64) {
        self.subscribed = true;
        let was = self.own;
        // A change due now is announced by update_own itself; an older away status is not.
        self.update_own(now_ms);
        if self.own == Status::Away && was == Status::Away {
            self.announce();
        }
        self.members.clear();
        for id in member_ids {
            self.members.insert(id.to_owned(), Status::Online);
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

    /// `member_added`: the newcomer starts `online`; if we are away, they must hear it.
    pub fn member_joined(&mut self, user_id: &str, now_ms: u64) {
        self.members.insert(user_id.to_owned(), Status::Online);
        self.mirror_own();
        self.outbox.changed();
        if self.own == Status::Away && self.outbox.sending_enabled && self.announce_at_ms.is_none()
        {
            self.announce_at_ms = Some(now_ms.saturating_add(self.config.announce_delay_ms));
        }
    }

    /// `member_removed`: the member is gone.
    pub fn member_left(&mut self, user_id: &str) {
        if self.members.remove(user_id).is_some() {
            self.outbox.changed();
        }
    }

    /// A status event from `user_id`. Only present members are tracked, so a late event
    /// cannot bring back someone who left; our own other tabs do not override this one.
    pub fn received(&mut self, user_id: &str, status: Status) {
        if self.outbox.is_own(user_id) {
            return;
        }
        if let Some(current) = self.members.get_mut(user_id) {
            if *current != status {
                *current = status;
                self.outbox.changed();
            }
        }
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
            if self.own == Status::Away {
                self.announce();
            }
        }
    }

    /// The next thing for the shell to do.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.outbox.poll()
    }

    /// This tab's own status.
    pub fn own_status(&self) -> Status {
        self.own
    }

    /// A member's status; `None` when they are not (or no longer) present.
    pub fn status_of(&self, user_id: &str) -> Option<Status> {
        self.members.get(user_id).copied()
    }

    /// Every present member with their status, sorted by user id.
    pub fn statuses(&self) -> impl Iterator<Item = (&str, Status)> {
        self.members
            .iter()
            .map(|(id, &status)| (id.as_str(), status))
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
            self.announce();
        }
    }

    fn mirror_own(&mut self) {
        if let Some(entry) = self
            .outbox
            .own_user_id
            .as_deref()
            .and_then(|id| self.members.get_mut(id))
        {
            *entry = self.own;
        }
    }

    fn announce(&mut self) {
        // Whatever was pending for newcomers is covered by this announcement.
        self.announce_at_ms = None;
        if !self.outbox.sending_enabled || !self.subscribed {
            return;
        }
        let literal = match self.own {
            Status::Online => "\"online\"",
            Status::Away => "\"away\"",
        };
        self.outbox.send(STATUS_EVENT, "status", literal);
    }
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
        machine.received("ana", Status::Away);
        drain(&mut machine);
        machine.received("ana", Status::Away);
        assert!(!drain(&mut machine).1, "same status, no change");
        machine.received("me", Status::Away);
        machine.received("ghost", Status::Away);
        let all: Vec<_> = machine.statuses().collect();
        assert_eq!(
            all,
            [
                ("ana", Status::Away),
                ("bob", Status::Online),
                ("me", Status::Online)
            ]
        );
        machine.member_left("ana");
        assert_eq!(machine.status_of("ana"), None);
        assert!(drain(&mut machine).1);
        assert_eq!(Status::parse("away"), Some(Status::Away));
        assert_eq!(Status::parse("busy"), None);
    }
}
