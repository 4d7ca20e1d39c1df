//! Typing indicators for one private or presence channel, both directions.
//!
//! Sender: [`Typing::keystroke`] on every key. The first key sends `client-typing`
//! `{"typing":true}` at once; while keys keep coming it is re-sent at most once per
//! `throttle_ms` (so receivers can tell a live typist from a closed tab), whatever the key
//! rate. `idle_ms` without keys, or [`Typing::sent`], sends `{"typing":false}`.
//!
//! Receiver: [`Typing::received`] records who is typing with an expiry of `expire_ms` after
//! their last `typing:true`; the entry goes away on their `typing:false`, when they leave
//! ([`Typing::member_left`]) or when refreshes stop, so a closed tab never leaves
//! "Ana is typing…" behind.
//!
//! Payload: `{"typing":bool,"user_id":"…"}`. `user_id` is included when the machine knows its
//! own id; on presence channels the server also puts `user_id` on the event itself. The shell
//! passes whichever it finds (event first, then payload) to [`Typing::received`].

use crate::prelude::*;

use super::{earliest, Action, Outbox};

/// The client event name; laravel-echo apps see it as the whisper `typing`.
pub const TYPING_EVENT: &str = "client-typing";

/// Timing of the typing indicator, in milliseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TypingConfig {
    /// At most one `typing:true` per this window: 1000 keeps a typist at about one client
    /// event per second, far below the servers' 10 per second per connection.
    pub throttle_ms: u64,
    /// Keyboard silence after which the sender announces `typing:false`.
    pub idle_ms: u64,
    /// How long a receiver trusts a `typing:true`. Between two refreshes of a live typist (or
    /// a refresh and the stop) pass less than `throttle_ms + idle_ms`: a key just before the
    /// window ends is not announced, the next one comes just before the idle stop. So this must
    /// exceed that sum by a network margin.
    pub expire_ms: u64,
}

impl Default for TypingConfig {
    fn default() -> Self {
        TypingConfig {
            throttle_ms: 1000,
            idle_ms: 3000,
            expire_ms: 5000,
        }
    }
}

/// Typing indicator state of one channel. Drive it with inputs, then drain
/// [`Typing::poll_action`] and re-arm the timer at [`Typing::poll_timeout`].
#[derive(Debug)]
pub struct Typing {
    config: TypingConfig,
    outbox: Outbox,
    /// The local user is typing: a key came less than `idle_ms` ago and no message was sent since.
    active: bool,
    /// Receivers were told `typing:true` and not told `false` since.
    announced: bool,
    last_key_ms: u64,
    last_true_ms: Option<u64>,
    /// Remote typists in the order they started typing, with the time their entry expires.
    typists: Vec<(String, u64)>,
}

impl Typing {
    /// `own_user_id` goes into the payload (needed on private channels) and is ignored when
    /// received, so the user's other tabs do not show the user typing.
    pub fn new(config: TypingConfig, own_user_id: Option<String>) -> Typing {
        Typing {
            config,
            outbox: Outbox::new(own_user_id),
            active: false,
            announced: false,
            last_key_ms: 0,
            last_true_ms: None,
            typists: Vec::new(),
        }
    }

    /// The local user pressed a key in the message box.
    pub fn keystroke(&mut self, now_ms: u64) {
        if !self.outbox.sending_enabled {
            return;
        }
        self.active = true;
        self.last_key_ms = now_ms;
        if self.true_allowed_at().is_none_or(|at| now_ms >= at) {
            self.send(true, now_ms);
        }
        // Otherwise: announced and refreshed recently enough, or stopped a moment ago and the
        // timer re-announces at the end of the window.
    }

    /// The local user sent the message: stop at once.
    pub fn sent(&mut self, now_ms: u64) {
        self.active = false;
        if self.announced {
            self.send(false, now_ms);
        }
    }

    /// A `client-typing` event arrived from `user_id`.
    pub fn received(&mut self, user_id: &str, typing: bool, now_ms: u64) {
        if self.outbox.is_own(user_id) {
            return;
        }
        let position = self.typists.iter().position(|(id, _)| id == user_id);
        match (typing, position) {
            (true, Some(i)) => self.typists[i].1 = now_ms.saturating_add(self.config.expire_ms),
            (true, None) => {
                self.typists.push((
                    user_id.to_owned(),
                    now_ms.saturating_add(self.config.expire_ms),
                ));
                self.outbox.changed();
            }
            (false, Some(_)) => self.member_left(user_id),
            (false, None) => {}
        }
    }

    /// A presence member left the channel: they are not typing any more.
    pub fn member_left(&mut self, user_id: &str) {
        self.forget_typists(Some(user_id), None);
    }

    /// The server refused client events (a `pusher:error` about them): stop sending, keep
    /// showing what others send.
    pub fn client_events_refused(&mut self) {
        self.outbox.sending_enabled = false;
        self.active = false;
        self.announced = false;
    }

    /// The channel was left or the connection lost: forget every typist and the local state
    /// (nobody remembers our `typing:true` after a resubscribe).
    pub fn reset(&mut self) {
        self.active = false;
        self.announced = false;
        if !self.typists.is_empty() {
            self.typists.clear();
            self.outbox.changed();
        }
    }

    /// The earliest time [`Typing::handle_timeout`] has something to do, if any.
    pub fn poll_timeout(&self) -> Option<u64> {
        let mut at = None;
        if self.active {
            at = Some(self.idle_stop_at());
            if !self.announced {
                at = earliest(at, self.true_allowed_at());
            }
        }
        for &(_, expires) in &self.typists {
            at = earliest(at, Some(expires));
        }
        at
    }

    /// Runs what is due at `now_ms`: the idle stop, a start deferred by the throttle, expiries.
    pub fn handle_timeout(&mut self, now_ms: u64) {
        if self.active && now_ms >= self.idle_stop_at() {
            self.active = false;
            if self.announced {
                self.send(false, now_ms);
            }
        }
        if self.active && !self.announced && self.true_allowed_at().is_none_or(|at| now_ms >= at) {
            self.send(true, now_ms);
        }
        self.forget_typists(None, Some(now_ms));
    }

    /// The next thing for the shell to do.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.outbox.poll()
    }

    /// Who is typing, in the order they started (stable while they keep typing).
    pub fn typing_users(&self) -> impl Iterator<Item = &str> {
        self.typists.iter().map(|(id, _)| id.as_str())
    }

    /// When the throttle lets the next `typing:true` go; `None` before the first one.
    fn true_allowed_at(&self) -> Option<u64> {
        self.last_true_ms
            .map(|at| at.saturating_add(self.config.throttle_ms))
    }

    /// Drops the entry of `user_id` and, given the time, the expired ones. A plain loop:
    /// `Vec::retain`'s code is several times bigger.
    fn forget_typists(&mut self, user_id: Option<&str>, now_ms: Option<u64>) {
        let mut changed = false;
        let mut i = 0;
        while let Some((id, expires)) = self.typists.get(i) {
            if Some(id.as_str()) == user_id || now_ms.is_some_and(|now| *expires <= now) {
                self.typists.remove(i);
                changed = true;
            } else {
                i += 1;
            }
        }
        if changed {
            self.outbox.changed();
        }
    }

    fn idle_stop_at(&self) -> u64 {
        self.last_key_ms.saturating_add(self.config.idle_ms)
    }

    fn send(&mut self, typing: bool, now_ms: u64) {
        if typing {
            self.last_true_ms = Some(now_ms);
        }
        self.announced = typing;
        let fields = if typing {
            "\"typing\":true"
        } else {
            "\"typing\":false"
        };
        self.outbox.send(TYPING_EVENT, fields);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn typing() -> Typing {
        Typing::new(TypingConfig::default(), Some("me".to_owned()))
    }

    /// Drains the actions, returning the `typing` value of each event sent and whether any
    /// `Changed` came out.
    fn drain(machine: &mut Typing) -> (Vec<bool>, bool) {
        let mut sent = Vec::new();
        let mut changed = false;
        while let Some(action) = machine.poll_action() {
            match action {
                Action::SendClientEvent { event, data } => {
                    assert_eq!(event, TYPING_EVENT);
                    assert!(data.ends_with(r#","user_id":"me"}"#), "{data}");
                    sent.push(data.starts_with(r#"{"typing":true"#));
                }
                Action::Changed => changed = true,
            }
        }
        (sent, changed)
    }

    /// Advances a fake clock to `to`, firing every timer the machine asks for on the way.
    fn run_timers(machine: &mut Typing, to: u64) {
        while let Some(at) = machine.poll_timeout().filter(|&at| at <= to) {
            machine.handle_timeout(at);
        }
    }

    #[test]
    fn a_thousand_keystrokes_in_ten_seconds_send_at_most_ten_events() {
        let mut machine = typing();
        let mut sent = Vec::new();
        for key in 0..1000u64 {
            let now = key * 10;
            run_timers(&mut machine, now);
            machine.keystroke(now);
            sent.extend(drain(&mut machine).0);
        }
        assert_eq!(sent.len(), 10, "{sent:?}");
        assert!(sent.iter().all(|&typing| typing));
    }

    #[test]
    fn stop_is_sent_after_idle() {
        let mut machine = typing();
        machine.keystroke(0);
        machine.keystroke(500);
        assert_eq!(drain(&mut machine).0, [true]);
        assert_eq!(machine.poll_timeout(), Some(3500));
        machine.handle_timeout(3499);
        assert!(drain(&mut machine).0.is_empty());
        machine.handle_timeout(3500);
        assert_eq!(drain(&mut machine).0, [false]);
        assert_eq!(machine.poll_timeout(), None);
    }

    #[test]
    fn stop_is_sent_at_once_when_the_message_is_sent() {
        let mut machine = typing();
        machine.keystroke(0);
        machine.sent(200);
        assert_eq!(drain(&mut machine).0, [true, false]);
        assert_eq!(machine.poll_timeout(), None);
        machine.sent(300);
        assert!(drain(&mut machine).0.is_empty(), "no second stop");
    }

    #[test]
    fn typing_again_right_after_sending_waits_for_the_throttle_window() {
        let mut machine = typing();
        machine.keystroke(0);
        machine.sent(200);
        machine.keystroke(300);
        assert_eq!(drain(&mut machine).0, [true, false]);
        assert_eq!(machine.poll_timeout(), Some(1000));
        machine.handle_timeout(1000);
        assert_eq!(drain(&mut machine).0, [true]);
    }

    #[test]
    fn refused_client_events_stop_sending() {
        let mut machine = typing();
        machine.client_events_refused();
        machine.keystroke(0);
        run_timers(&mut machine, 10_000);
        assert!(drain(&mut machine).0.is_empty());
    }

    #[test]
    fn a_slow_live_typist_never_expires_at_the_receiver() {
        let mut sender = typing();
        let mut receiver = Typing::new(TypingConfig::default(), None);
        // The worst case: a key just inside the throttle window (not announced), the next one
        // just before the idle stop; and a network that delivers every other event 500 ms late.
        let keys: Vec<u64> = (0..6u64).flat_map(|i| [i * 3980, i * 3980 + 990]).collect();
        let last_key = *keys.last().unwrap();
        let mut in_flight: Vec<(u64, bool)> = Vec::new();
        let mut events_sent = 0;
        for now in (0..30_000).step_by(10) {
            run_timers(&mut sender, now);
            run_timers(&mut receiver, now);
            if keys.contains(&now) {
                sender.keystroke(now);
            }
            for typing in drain(&mut sender).0 {
                events_sent += 1;
                in_flight.push((now + 500 * (1 - events_sent % 2), typing));
            }
            for &(_, typing) in in_flight.iter().filter(|&&(at, _)| at == now) {
                receiver.received("me", typing, now);
            }
            if now < last_key + 3000 {
                assert_eq!(
                    receiver.typing_users().collect::<Vec<_>>(),
                    ["me"],
                    "at {now}"
                );
            }
        }
        assert_eq!(receiver.typing_users().count(), 0, "the stop arrived");
    }

    #[test]
    fn receiver_expires_a_typist_whose_updates_stop() {
        let mut machine = typing();
        machine.received("ana", true, 0);
        assert!(drain(&mut machine).1);
        machine.received("ana", true, 1000);
        assert!(!drain(&mut machine).1, "a refresh changes nothing visible");
        assert_eq!(machine.poll_timeout(), Some(6000));
        machine.handle_timeout(5999);
        assert_eq!(machine.typing_users().collect::<Vec<_>>(), ["ana"]);
        machine.handle_timeout(6000);
        assert!(drain(&mut machine).1);
        assert_eq!(machine.typing_users().count(), 0);
    }

    #[test]
    fn receiver_keeps_start_order_and_drops_on_stop_leave_and_reset() {
        let mut machine = typing();
        machine.received("bob", true, 0);
        machine.received("ana", true, 10);
        machine.received("bob", true, 20);
        machine.received("me", true, 30);
        assert_eq!(machine.typing_users().collect::<Vec<_>>(), ["bob", "ana"]);
        machine.received("bob", false, 40);
        assert_eq!(machine.typing_users().collect::<Vec<_>>(), ["ana"]);
        drain(&mut machine);
        machine.received("bob", false, 50);
        assert!(!drain(&mut machine).1, "stopping twice changes nothing");
        machine.member_left("ana");
        assert!(drain(&mut machine).1);
        machine.received("cyd", true, 60);
        machine.reset();
        assert_eq!(machine.typing_users().count(), 0);
    }
}
