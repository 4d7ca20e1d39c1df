//! The features module's shell: typing, presence statuses, read receipts and unread badges
//! ([`crate::features`]) as a second, small wasm that the npm package loads on first use, so
//! an app that only needs laravel-echo's API does not download them. It sees no socket: the
//! page (`pkg-js/src/features.ts`) tells it what the client saw (presence members, whispers,
//! notifications, positions, the server's reads and statuses, the connection going down) and
//! sends the whispers and frames it asks for through the client. Its boundary is the client's ([`crate::abi`]): an entry, [`call`], and `out`.

use crate::prelude::*;

use crate::abi::{self, given, ModuleState, Record};
use crate::core::push_decimal;
use crate::features::badges::ReadTarget;
use crate::features::status::{MemberStatus, Status, StatusConfig};
use crate::features::{push_json_string, ClientFeatures, Extensions, FeatureAction, Watched};

/// The operations of [`call`]; `Op` in `pkg-js/src/features.ts` names them in the same order.
/// Arguments are `a`–`d` (strings, `""` for none) and `n` (a number, `-1` for none). Times
/// given as `n` in `MEMBER_LEFT`, `STATUS_SEEN`, `MEMBER_DETAIL` and `LEFT_BEFORE` are the wall
/// clock's (ms since the epoch): the machines' own clock is the page's monotonic one.
pub(crate) mod op {
    /// `(a: the stored badges' text, b: "1" when hidden, c: awayAfterMs in decimal or "",
    /// d: the device)`.
    /// Returns the index of this client's features.
    pub const NEW: u32 = 0;
    /// `(userId)`: one member of the list the next `PresenceUp` carries.
    pub const PRESENCE_MEMBER: u32 = 1;
    /// `(channel, ownUserId)`: a presence subscription was confirmed with those members.
    pub const PRESENCE_UP: u32 = 2;
    /// `(channel, userId)`.
    pub const MEMBER_JOINED: u32 = 3;
    /// `(channel, userId, n: last seen)`.
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
    /// `(channel, user, status, message, n: now)`: a status (a whisper, or the server's), with
    /// the device and `away_since` of the `MEMBER_DETAIL` before it.
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
    /// `(n: 1 reads + 2 statuses)`: connected, to a server carrying those extensions.
    pub const ESTABLISHED: u32 = 22;
    /// `(channel, latest position or "")`: a private or presence subscription succeeded.
    pub const SUBSCRIBED: u32 = 23;
    /// `(channel, position)`: an event on it.
    pub const READ_EVENT: u32 = 24;
    /// `(channel, user, upTo, ownUserId)`: a marker from `overtone:reads`.
    pub const READS_SEEN: u32 = 25;
    /// `(channel, upTo, ownUserId)` -> 0, or -1 for a marker empty or too long.
    pub const MARK_CHANNEL_READ: u32 = 26;
    /// `(channel, upTo)`: `Item` (a: user) each other reader.
    pub const READERS: u32 = 27;
    /// `(channel, user or "" for this one)`: one `Item` (a: marker) if any.
    pub const READ_UP_TO: u32 = 28;
    /// `(channel)`: `Item` (a: user, b: marker) each.
    pub const READ_MARKERS: u32 = 29;
    /// `(channel)` -> the unread count.
    pub const UNREAD: u32 = 30;
    /// `(status or "" to clear, message)` -> 0, or -1 when refused.
    pub const SET_STATUS: u32 = 31;
    /// `(device, n: away_since or -1)`: for the next `STATUS_SEEN`.
    pub const MEMBER_DETAIL: u32 = 32;
    /// `(channel, user, n: last seen)`: a member who left before this client came.
    pub const LEFT_BEFORE: u32 = 33;
    /// `(channel)`: one `Item` (a: JSON `{"members":{id:{status,message,device,awaySince}},
    /// "left":{id:lastSeenAt},"own":{..}}`).
    pub const MEMBER_STATUSES: u32 = 34;
    /// The user signed in on this connection.
    pub const SIGNED_IN: u32 = 35;
}

/// What `out(client, kind, n, a, b)` asks; `kind` is the number.
#[derive(Clone, Copy)]
enum Out {
    /// `(n: 0 typing | 1 status, a: channel, b: data JSON)`: whisper it on the channel.
    Whisper,
    /// `(n: 0 typing | 1 status | 2 badges | 3 reads, a: channel)`: that state changed.
    Changed,
    /// `(a: text)`: the badges to keep (localStorage).
    StoreBadges,
    /// `(a: text)`: a badge change for the user's other tabs (BroadcastChannel).
    PostBadges,
    /// `(n: delay ms)`: replace the timer (`-1`: none); report with `TIMER`.
    Timer,
    /// `(n, a, b)`: one entry of what the operation asked for.
    Item,
    /// `(a: frame JSON)`: send it on the socket.
    Send,
}

/// One client's machines, the deadline its armed timer is for, and its queued `out` records.
struct Machines {
    features: ClientFeatures,
    /// The members of the next `PRESENCE_UP`.
    presence: Vec<String>,
    /// The device and `away_since` of the next `STATUS_SEEN`.
    detail: (String, Option<u64>),
    timer: Option<u64>,
    outs: Vec<Record>,
}

/// Each client's features, by the index `NEW` returned.
static ALL: ModuleState<Vec<Machines>> = ModuleState::new(Vec::new());

/// Runs operation `op` (one of [`op`]; its strings' byte lengths are `a`–`d`, see [`abi`]) on
/// the features of client `client`, then makes the `out` calls it caused.
#[export_name = "c"]
extern "C" fn call(client: u32, op: u32, a: usize, b: usize, c: usize, d: usize, n: f64) -> f64 {
    abi::serve(client, [a, b, c, d], |[a, b, c, d]| {
        run(client, op, [a, b, c, d], n)
    })
}

fn run(client: u32, op: u32, [a, b, c, d]: [&str; 4], n: f64) -> (f64, Vec<Record>) {
    let now = abi::now() as u64;
    let mut all = ALL.0.borrow_mut();
    if op == op::NEW {
        let mut status_config = StatusConfig::default();
        if let Ok(ms) = c.parse() {
            status_config.away_after_ms = ms;
        }
        let mut features = ClientFeatures::new(a, b != "1", status_config);
        features.set_device(d);
        all.push(Machines {
            features,
            presence: Vec::new(),
            detail: (String::new(), None),
            timer: None,
            outs: Vec::new(),
        });
        return ((all.len() - 1) as f64, Vec::new());
    }
    let Some(m) = all.get_mut(client as usize) else {
        return (-1.0, Vec::new());
    };
    let result = m.perform(op, [a, b, c, d], n, now);
    m.flush(now);
    (result, core::mem::take(&mut m.outs))
}

impl Machines {
    fn perform(&mut self, op: u32, [a, b, c, d]: [&str; 4], n: f64, now: u64) -> f64 {
        let f = &mut self.features;
        let time = (n >= 0.0).then_some(n as u64);
        match op {
            op::PRESENCE_MEMBER => self.presence.push(a.into()),
            op::PRESENCE_UP => {
                let members = core::mem::take(&mut self.presence);
                f.presence_up(a, given(b), members.iter().map(String::as_str), now);
            }
            op::MEMBER_JOINED => f.member_joined(a, b, now),
            op::MEMBER_LEFT => f.member_left(a, b, time.unwrap_or(0)),
            op::LEFT => f.left(a),
            op::DOWN => f.down(),
            op::SERVER_ERROR => f.server_error(a),
            op::TYPING => f.typing(a, own(b), now),
            op::STOP_TYPING => f.stop_typing(a, own(b), now),
            op::TYPING_USERS => {
                for user in f.typing_users(a, own(b)) {
                    self.item(-1.0, &user, "");
                }
            }
            op::TYPING_SEEN => f.typing_seen(a, b, n > 0.0, now),
            op::STATUS_SEEN => {
                let (device, away_since) = core::mem::take(&mut self.detail);
                let update = MemberStatus {
                    status: c.into(),
                    message: d.into(),
                    device,
                    away_since,
                };
                f.member_status(a, b, update, time.unwrap_or(0));
            }
            op::STATUSES => {
                for (user, status) in f.statuses(a) {
                    self.item(-1.0, &user, status.as_str());
                }
            }
            op::STATUS => {
                let status = f.status_of(a, own(b));
                return status.map_or(-1.0, |s| if s == Status::Online { 0.0 } else { 1.0 });
            }
            op::NOTIFICATION => f.notification(a, b),
            op::BADGE_COUNT => f.badge_count(a, n as u32),
            op::BADGE_COUNTS => {
                let counts: Vec<(String, u32)> = f
                    .badges()
                    .counts()
                    .map(|(c, n)| (c.to_owned(), n))
                    .collect();
                for (category, count) in counts {
                    self.item(count.into(), &category, "");
                }
            }
            op::MARK_READ => f.mark_read(match a {
                "id" => ReadTarget::Id(b),
                "category" => ReadTarget::Category(b),
                _ => ReadTarget::All,
            }),
            op::BADGES_REMOTE => f.badges_from_tab(a),
            op::VISIBILITY => f.visibility_changed(n > 0.0, now),
            op::TIMER => {
                self.timer = None;
                f.handle_timeout(now);
            }
            op::ESTABLISHED => {
                let bits = n as u32;
                f.established(Extensions {
                    reads: bits & 1 != 0,
                    status: bits & 2 != 0,
                });
            }
            op::SUBSCRIBED => f.subscribed(a, b, now),
            op::READ_EVENT => f.read_event(a, b),
            op::READS_SEEN => f.reads_seen(a, b, c, own(d)),
            op::MARK_CHANNEL_READ => {
                return if f.mark_channel_read(a, b, now) {
                    0.0
                } else {
                    -1.0
                }
            }
            op::READERS => {
                for user in f.readers(a, b) {
                    self.item(-1.0, &user, "");
                }
            }
            op::READ_UP_TO => {
                if let Some(marker) = f.read_up_to(a, own(b)) {
                    self.item(-1.0, &marker, "");
                }
            }
            op::READ_MARKERS => {
                for (user, marker) in f.read_markers(a) {
                    self.item(-1.0, &user, &marker);
                }
            }
            op::UNREAD => return f.unread(a).into(),
            op::SET_STATUS => {
                let set = (!a.is_empty()).then_some((a, b));
                return if f.set_status(set) { 0.0 } else { -1.0 };
            }
            op::SIGNED_IN => f.signed_in(now),
            op::MEMBER_DETAIL => self.detail = (a.into(), time),
            op::LEFT_BEFORE => f.left_before(a, b, time.unwrap_or(0)),
            op::MEMBER_STATUSES => {
                let json = member_statuses_json(f, a);
                self.item(-1.0, &json, "");
            }
            _ => {}
        }
        -1.0
    }

    fn item(&mut self, n: f64, a: &str, b: &str) {
        self.outs.push(record(Out::Item, n, a, b));
    }

    /// Turns the machines' actions into `out` records, then re-arms the timer.
    fn flush(&mut self, now: u64) {
        while let Some(action) = self.features.poll_action() {
            self.outs.push(match action {
                FeatureAction::Whisper {
                    what,
                    channel,
                    data,
                } => record(Out::Whisper, watched(what), &channel, &data),
                FeatureAction::Changed { what, channel } => {
                    record(Out::Changed, watched(what), &channel, "")
                }
                FeatureAction::StoreBadges(text) => record(Out::StoreBadges, -1.0, &text, ""),
                FeatureAction::PostBadges(text) => record(Out::PostBadges, -1.0, &text, ""),
                FeatureAction::Send(frame) => record(Out::Send, -1.0, &frame, ""),
            });
        }
        let due = self.features.poll_timeout();
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

/// `Whisper` and `Changed` name what by number: 0 typing, 1 status, 2 badges.
fn watched(what: Watched) -> f64 {
    match what {
        Watched::Typing => 0.0,
        Watched::Status => 1.0,
        Watched::Badges => 2.0,
        Watched::Reads => 3.0,
    }
}

/// `channel`'s members' statuses, the members who left and this user's own, as the JSON
/// `MEMBER_STATUSES` answers: one string for the page to parse rather than an item per field.
fn member_statuses_json(f: &mut ClientFeatures, channel: &str) -> String {
    let mut json = String::from("{\"members\":{");
    for (i, (user, member)) in f.member_statuses(channel).iter().enumerate() {
        if i > 0 {
            json.push(',');
        }
        push_json_string(&mut json, user);
        json.push(':');
        push_member(&mut json, member);
    }
    json.push_str("},\"left\":{");
    for (i, (user, at)) in f.left_members(channel).iter().enumerate() {
        if i > 0 {
            json.push(',');
        }
        push_json_string(&mut json, user);
        json.push(':');
        push_decimal(&mut json, *at);
    }
    json.push_str("},\"own\":");
    push_member(&mut json, &f.own_member());
    json.push('}');
    json
}

/// `{"status","message","device","awaySince"}` (`awaySince` a number or null).
fn push_member(json: &mut String, member: &MemberStatus) {
    for (name, value) in [
        ("{\"status\":", &member.status),
        (",\"message\":", &member.message),
        (",\"device\":", &member.device),
    ] {
        json.push_str(name);
        push_json_string(json, value);
    }
    json.push_str(",\"awaySince\":");
    match member.away_since {
        Some(at) => push_decimal(json, at),
        None => json.push_str("null"),
    }
    json.push('}');
}

/// The page's own user id, `""` for none.
fn own(id: &str) -> Option<&str> {
    (!id.is_empty()).then_some(id)
}
