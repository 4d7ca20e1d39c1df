//! The features module's shell: typing, online/away status and unread badges
//! ([`crate::features`]) as a second, small wasm that the npm package loads on first use, so
//! an app that only needs laravel-echo's API does not download them. It sees no socket: the
//! page (`pkg-js/src/features.ts`) tells it what the client saw (presence members, whispers,
//! notifications, the connection going down) and sends the whispers it asks for through the
//! client. Its boundary is the client's ([`crate::abi`]): an entry, [`call`], and `out`.

use crate::prelude::*;

use crate::abi::{self, given, ModuleState, Record};
use crate::features::badges::{BadgeAction, Badges, ReadTarget};
use crate::features::status::{AwayStatus, Status, StatusConfig};
use crate::features::typing::{Typing, TypingConfig};
use crate::features::{refuses_client_events, Action};

/// The operations of [`call`]; `Op` in `pkg-js/src/features.ts` names them in the same order.
/// Arguments are `a`–`c` (strings, `""` for none; the fourth is unused) and `n` (a number, `-1`
/// for none).
pub(crate) mod op {
    /// `(a: the stored badges' text, b: "1" when hidden, c: awayAfterMs in decimal or "")`.
    /// Returns the index of this client's features.
    pub const NEW: u32 = 0;
    /// `(userId)`: one member of the list the next `PresenceUp` carries.
    pub const PRESENCE_MEMBER: u32 = 1;
    /// `(channel, ownUserId)`: a presence subscription was confirmed with those members.
    pub const PRESENCE_UP: u32 = 2;
    /// `(channel, userId)`.
    pub const MEMBER_JOINED: u32 = 3;
    pub const MEMBER_LEFT: u32 = 4;
    /// The channel was left.
    pub const LEFT: u32 = 5;
    /// The connection went down: nobody is seen typing, statuses wait for the next subscribe.
    pub const DOWN: u32 = 6;
    /// `(message)` of a `pusher:error`: client events may be refused for good.
    pub const SERVER_ERROR: u32 = 7;
    /// `(channel, ownUserId)`: a keystroke; `STOP_TYPING` when the message was sent.
    pub const TYPING: u32 = 8;
    pub const STOP_TYPING: u32 = 9;
    /// `(channel, ownUserId)`: who is typing (`Item` each: id).
    pub const TYPING_USERS: u32 = 10;
    /// `(channel, user, n: 1 typing | 0)`: a typing whisper.
    pub const TYPING_SEEN: u32 = 11;
    /// `(channel, user, status)`: a status whisper.
    pub const STATUS_SEEN: u32 = 12;
    /// `(channel)`: `Item` (user, status) each.
    pub const STATUSES: u32 = 13;
    /// `(channel, user)` -> 0 online, 1 away, -1 unknown; the own status without `user`.
    pub const STATUS: u32 = 14;
    /// `(id, category)`: a notification.
    pub const NOTIFICATION: u32 = 15;
    /// `(category, n: count)`: an absolute unread count.
    pub const BADGE_COUNT: u32 = 16;
    /// `Item` (n: count, a: category) each.
    pub const BADGE_COUNTS: u32 = 17;
    /// `(kind: id | category | all, value)`.
    pub const MARK_READ: u32 = 18;
    /// `(text)` from another tab.
    pub const BADGES_REMOTE: u32 = 19;
    /// `(n: 1 visible | 0)`.
    pub const VISIBILITY: u32 = 20;
    pub const TIMER: u32 = 21;
}

/// What `out(client, kind, n, a, b)` asks; `kind` is the number.
#[derive(Clone, Copy)]
enum Out {
    /// `(n: 0 typing | 1 status, a: channel, b: data JSON)`: whisper it on the channel.
    Whisper,
    /// `(n: 0 typing | 1 status | 2 badges, a: channel)`: that state changed.
    Changed,
    /// `(a: text)`: the badges to keep (localStorage).
    StoreBadges,
    /// `(a: text)`: a badge change for the user's other tabs (BroadcastChannel).
    PostBadges,
    /// `(n: delay ms)`: replace the timer (`-1`: none); report with `TIMER`.
    Timer,
    /// `(n, a, b)`: one entry of what the operation asked for.
    Item,
}

struct Machines {
    typing: Vec<(String, Typing)>,
    statuses: Vec<(String, AwayStatus)>,
    status_config: StatusConfig,
    badges: Badges,
    visible: bool,
    presence: Vec<String>,
    /// The deadline the armed timer is for.
    timer: Option<u64>,
    outs: Vec<Record>,
}

/// Each client's features, by the index `NEW` returned.
static ALL: ModuleState<Vec<Machines>> = ModuleState::new(Vec::new());

/// Runs operation `op` (one of [`op`]; its strings' byte lengths are `a`–`d`, see [`abi`]) on
/// the features of client `client`, then makes the `out` calls it caused.
#[export_name = "c"]
extern "C" fn call(client: u32, op: u32, a: usize, b: usize, c: usize, d: usize, n: f64) -> f64 {
    abi::serve(client, [a, b, c, d], |[a, b, c, _]| {
        run(client, op, a, b, c, n)
    })
}

fn run(client: u32, op: u32, a: &str, b: &str, c: &str, n: f64) -> (f64, Vec<Record>) {
    let now = abi::now() as u64;
    let mut all = ALL.0.borrow_mut();
    if op == op::NEW {
        let mut status_config = StatusConfig::default();
        if let Ok(ms) = c.parse() {
            status_config.away_after_ms = ms;
        }
        all.push(Machines {
            typing: Vec::new(),
            statuses: Vec::new(),
            status_config,
            badges: match a {
                "" => Badges::new(),
                text => Badges::restore(text),
            },
            visible: b != "1",
            presence: Vec::new(),
            timer: None,
            outs: Vec::new(),
        });
        return ((all.len() - 1) as f64, Vec::new());
    }
    let Some(m) = all.get_mut(client as usize) else {
        return (-1.0, Vec::new());
    };
    let result = m.perform(op, a, b, c, n, now);
    m.flush(now);
    (result, core::mem::take(&mut m.outs))
}

impl Machines {
    fn perform(&mut self, op: u32, a: &str, b: &str, c: &str, n: f64, now: u64) -> f64 {
        match op {
            op::PRESENCE_MEMBER => self.presence.push(a.into()),
            op::PRESENCE_UP => {
                let members = core::mem::take(&mut self.presence);
                if self.status(a).is_none() {
                    let status = AwayStatus::new(self.status_config, given(b), self.visible, now);
                    self.statuses.push((a.into(), status));
                }
                if let Some(status) = self.status(a) {
                    status.subscribed(members.iter().map(String::as_str), now);
                }
            }
            op::MEMBER_JOINED => {
                if let Some(status) = self.status(a) {
                    status.member_joined(b, now);
                }
            }
            op::MEMBER_LEFT => {
                if let Some(status) = self.status(a) {
                    status.member_left(b);
                }
                if let Some(typing) = self.typing_of(a) {
                    typing.member_left(b);
                }
            }
            op::LEFT => {
                self.typing.retain(|(name, _)| name != a);
                self.statuses.retain(|(name, _)| name != a);
            }
            op::DOWN => {
                self.typing.iter_mut().for_each(|(_, t)| t.reset());
                self.statuses.iter_mut().for_each(|(_, s)| s.unsubscribed());
            }
            op::SERVER_ERROR if refuses_client_events(a) => {
                self.typing
                    .iter_mut()
                    .for_each(|(_, t)| t.client_events_refused());
                self.statuses
                    .iter_mut()
                    .for_each(|(_, s)| s.client_events_refused());
            }
            op::TYPING => self.typing(a, b).keystroke(now),
            op::STOP_TYPING => self.typing(a, b).sent(now),
            op::TYPING_USERS => {
                let users: Vec<String> = self
                    .typing(a, b)
                    .typing_users()
                    .map(str::to_owned)
                    .collect();
                for user in users {
                    self.item(-1.0, &user, "");
                }
            }
            op::TYPING_SEEN => {
                if let Some(typing) = self.typing_of(a) {
                    typing.received(b, n > 0.0, now);
                }
            }
            op::STATUS_SEEN => {
                if let (Some(status), Some(value)) = (self.status(a), Status::parse(c)) {
                    status.received(b, value);
                }
            }
            op::STATUSES => {
                let entries: Vec<(String, &'static str)> = self
                    .status(a)
                    .map(|s| {
                        s.statuses()
                            .map(|(u, s)| (u.to_owned(), s.as_str()))
                            .collect()
                    })
                    .unwrap_or_default();
                for (user, status) in entries {
                    self.item(-1.0, &user, status);
                }
            }
            op::STATUS => {
                let Some(status) = self.status(a) else {
                    return -1.0;
                };
                let value = match b {
                    "" => Some(status.own_status()),
                    user => status.status_of(user),
                };
                return value.map_or(-1.0, |s| if s == Status::Online { 0.0 } else { 1.0 });
            }
            op::NOTIFICATION => self.badges.notification(a, b),
            op::BADGE_COUNT => self.badges.set_count(a, n as u32),
            op::BADGE_COUNTS => {
                let counts: Vec<(String, u32)> = self
                    .badges
                    .counts()
                    .map(|(c, n)| (c.to_owned(), n))
                    .collect();
                for (category, count) in counts {
                    self.item(count.into(), &category, "");
                }
            }
            op::MARK_READ => self.badges.mark_read(match a {
                "id" => ReadTarget::Id(b),
                "category" => ReadTarget::Category(b),
                _ => ReadTarget::All,
            }),
            op::BADGES_REMOTE => self.badges.apply_remote(a),
            op::VISIBILITY => {
                self.visible = n > 0.0;
                for (_, status) in &mut self.statuses {
                    status.visibility_changed(n > 0.0, now);
                }
            }
            op::TIMER => {
                self.timer = None;
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
            _ => {}
        }
        -1.0
    }

    fn item(&mut self, n: f64, a: &str, b: &str) {
        self.outs.push(record(Out::Item, n, a, b));
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
    fn typing(&mut self, channel: &str, own: &str) -> &mut Typing {
        let index = match self.typing.iter().position(|(name, _)| name == channel) {
            Some(index) => index,
            None => {
                let typing = Typing::new(TypingConfig::default(), given(own));
                self.typing.push((channel.into(), typing));
                self.typing.len() - 1
            }
        };
        &mut self.typing[index].1
    }

    /// Performs every machine's actions, then re-arms the timer.
    fn flush(&mut self, now: u64) {
        let mut outs = Vec::new();
        for (channel, typing) in &mut self.typing {
            while let Some(action) = typing.poll_action() {
                outs.push(feature_out(0.0, channel, action));
            }
        }
        for (channel, status) in &mut self.statuses {
            while let Some(action) = status.poll_action() {
                outs.push(feature_out(1.0, channel, action));
            }
        }
        while let Some(action) = self.badges.poll_action() {
            match action {
                BadgeAction::Changed => {
                    let text = self.badges.encode();
                    outs.push(record(Out::StoreBadges, -1.0, &text, ""));
                    outs.push(record(Out::Changed, 2.0, "", ""));
                }
                BadgeAction::Broadcast(message) => {
                    outs.push(record(Out::PostBadges, -1.0, &message, ""));
                }
            }
        }
        self.outs.append(&mut outs);
        self.arm_timer(now);
    }

    fn arm_timer(&mut self, now: u64) {
        let mut due: Option<u64> = None;
        let timeouts = self.typing.iter().map(|(_, t)| t.poll_timeout());
        for at in timeouts
            .chain(self.statuses.iter().map(|(_, s)| s.poll_timeout()))
            .flatten()
        {
            due = Some(due.map_or(at, |d| d.min(at)));
        }
        if self.timer == due {
            return;
        }
        self.timer = due;
        let delay = due.map_or(-1.0, |at| {
            at.saturating_sub(now).min(i32::MAX as u64) as f64
        });
        self.outs.push(record(Out::Timer, delay, "", ""));
    }
}

fn record(kind: Out, n: f64, a: &str, b: &str) -> Record {
    Record::new(kind as u32, n, a, b)
}

/// A typing (`kind` 0) or status (1) machine's action on `channel`.
fn feature_out(kind: f64, channel: &str, action: Action) -> Record {
    match action {
        Action::SendClientEvent { data, .. } => record(Out::Whisper, kind, channel, &data),
        Action::Changed => record(Out::Changed, kind, channel, ""),
    }
}
