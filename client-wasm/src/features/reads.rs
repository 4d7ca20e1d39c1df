//! Read receipts of one private or presence channel: how far each user has read, this user's
//! own marker sent to the server in batches, and how many events are unread.
//!
//! A marker ("up to") is what the app passes to `markRead`: a history position
//! (`EPOCH:OFFSET`) or an id it chose. Two markers compare when both are positions of the same
//! epoch (by offset) or both unsigned integers (numerically); otherwise they do not, and a new
//! one replaces the old (a new epoch, an app that changed its ids). A marker moves only forward
//! when they compare, so a late or reordered update never takes a receipt back.
//!
//! Own marks are batched: the first mark arms a window of [`BATCH_MS`]; when it closes, one
//! `overtone:read` carries the furthest marker, so marking 200 messages at once is one frame.
//! They are sent only while the server takes them (it announced `reads`, and the channel is
//! subscribed); elsewhere they stay local. A mark made while not subscribed goes after the next
//! subscription. The server's `overtone:reads` bring everyone's markers, this user's from their
//! other tabs and devices too.
//!
//! Unread: the newest position the channel reached (the subscription's and each event's) less
//! the own marker, when both are positions of one epoch (offsets are consecutive within an
//! epoch, from 1), which holds across reloads; with no marker on a server keeping them, every
//! event of the epoch; otherwise the events seen since the last own mark.

use crate::prelude::*;

use core::cmp::Ordering;

use super::sorted_map::SortedMap;
use crate::core::parse_decimal;

/// How long own marks gather before one frame takes the furthest (ms). Short: the other side
/// should see "Seen" well within 100 ms.
pub const BATCH_MS: u64 = 20;
/// Most other users whose markers a channel keeps; later ones are ignored.
pub const MAX_READERS: usize = 1000;
/// Longest marker accepted (bytes); longer ones are refused or ignored.
pub const MAX_MARKER_LEN: usize = 64;

/// What the reads machine asks its shell to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReadsAction {
    /// Send `overtone:read` with this marker as `up_to`.
    Send(String),
    /// Markers or the unread count changed: read them again.
    Changed,
}

/// Read state of one channel. Drive it with inputs, then drain [`Reads::poll_action`] and
/// re-arm the timer at [`Reads::poll_timeout`].
#[derive(Debug, Default)]
pub struct Reads {
    /// This user's marker.
    mine: Option<String>,
    /// Other users' markers by user id.
    others: SortedMap<String>,
    /// The newest position seen on the channel.
    latest: Option<String>,
    /// Events seen since the last own mark (the count when positions cannot tell).
    unseen: u32,
    subscribed: bool,
    /// The server takes marks now (it announced reads, the channel is subscribed, and on a
    /// private channel the user is signed in).
    live: bool,
    /// The last subscription was to a server keeping reads: with no marker from it, this user
    /// has read nothing there.
    server_keeps: bool,
    /// The own marker is newer than what the server was sent.
    unsent: bool,
    /// When the current batch goes.
    send_at: Option<u64>,
    actions: Vec<ReadsAction>,
}

/// How two markers compare, if they do.
pub fn compare(a: &str, b: &str) -> Option<Ordering> {
    if a == b {
        return Some(Ordering::Equal);
    }
    if let (Some((epoch_a, offset_a)), Some((epoch_b, offset_b))) = (position(a), position(b)) {
        return (epoch_a == epoch_b).then(|| offset_a.cmp(&offset_b));
    }
    let (a, b) = (parse_decimal(a.as_bytes())?, parse_decimal(b.as_bytes())?);
    Some(a.cmp(&b))
}

/// `EPOCH:OFFSET` split into its epoch and offset.
fn position(marker: &str) -> Option<(&str, u64)> {
    let colon = marker.bytes().position(|b| b == b':')?;
    let epoch = marker.get(..colon).filter(|e| !e.is_empty())?;
    Some((epoch, parse_decimal(marker.get(colon + 1..)?.as_bytes())?))
}

/// Whether `new` may replace `old`: it is further, or the two do not compare.
fn advances(old: Option<&str>, new: &str) -> bool {
    old.is_none_or(|old| compare(new, old).is_none_or(|o| o == Ordering::Greater))
}

fn valid(marker: &str) -> bool {
    !marker.is_empty() && marker.len() <= MAX_MARKER_LEN
}

impl Reads {
    pub fn new() -> Reads {
        Reads::default()
    }

    /// The user read up to `up_to` at `now_ms`. `false` (and nothing done) when the marker is
    /// empty or longer than [`MAX_MARKER_LEN`]; a marker behind the current one is ignored.
    pub fn mark(&mut self, up_to: &str, now_ms: u64) -> bool {
        if !valid(up_to) {
            return false;
        }
        if advances(self.mine.as_deref(), up_to) {
            self.mine = Some(up_to.to_owned());
            self.unseen = 0;
            self.unsent = true;
            self.actions.push(ReadsAction::Changed);
            self.arm(now_ms.saturating_add(BATCH_MS));
        }
        true
    }

    /// A marker from the server (`overtone:reads`); `own` says it is this user's (another tab's
    /// or device's mark). Malformed or older ones are ignored, and so are new readers past
    /// [`MAX_READERS`].
    pub fn received(&mut self, user: &str, up_to: &str, own: bool) {
        if !valid(up_to) {
            return;
        }
        if own {
            if advances(self.mine.as_deref(), up_to) {
                self.mine = Some(up_to.to_owned());
                self.unseen = 0;
                self.unsent = false;
                self.actions.push(ReadsAction::Changed);
            } else if self.mine.as_deref() == Some(up_to) {
                self.unsent = false;
            }
            return;
        }
        let old = self.others.get(user).map(String::as_str);
        if old.is_none() && self.others.len() >= MAX_READERS {
            return;
        }
        if old != Some(up_to) && advances(old, up_to) {
            self.others.insert(user.to_owned(), up_to.to_owned());
            self.actions.push(ReadsAction::Changed);
        }
    }

    /// The channel's subscription succeeded at `latest` (its newest position, if it keeps
    /// history); `live`: the server takes marks. A mark it has not been sent goes now.
    pub fn subscribed(&mut self, latest: Option<&str>, live: bool, now_ms: u64) {
        self.subscribed = true;
        self.live = live;
        self.server_keeps = live;
        if let Some(latest) = latest {
            self.seen(latest, false);
        }
        if self.unsent {
            self.arm(now_ms);
        }
        self.actions.push(ReadsAction::Changed);
    }

    /// The subscription is gone (the connection went down): marks wait for the next one.
    pub fn unsubscribed(&mut self) {
        self.subscribed = false;
        self.live = false;
        self.send_at = None;
    }

    /// An event at `position` arrived on the channel.
    pub fn event(&mut self, position: &str) {
        self.seen(position, true);
    }

    fn seen(&mut self, at: &str, counts: bool) {
        if position(at).is_none() {
            return;
        }
        let newer = advances(self.latest.as_deref(), at) && self.latest.as_deref() != Some(at);
        if newer {
            self.latest = Some(at.to_owned());
        }
        if newer && counts {
            self.unseen = self.unseen.saturating_add(1);
            self.actions.push(ReadsAction::Changed);
        }
    }

    fn arm(&mut self, at: u64) {
        if self.live && self.send_at.is_none() {
            self.send_at = Some(at);
        }
    }

    pub fn is_subscribed(&self) -> bool {
        self.subscribed
    }

    pub fn poll_timeout(&self) -> Option<u64> {
        self.send_at
    }

    /// Sends the batch when its window has closed.
    pub fn handle_timeout(&mut self, now_ms: u64) {
        if self.send_at.is_none_or(|at| now_ms < at) {
            return;
        }
        self.send_at = None;
        if let (true, true, Some(mine)) = (self.live, self.unsent, &self.mine) {
            self.unsent = false;
            self.actions.push(ReadsAction::Send(mine.clone()));
        }
    }

    pub fn poll_action(&mut self) -> Option<ReadsAction> {
        // A Vec used as a queue: VecDeque's code costs more wasm than shifting a few entries.
        (!self.actions.is_empty()).then(|| self.actions.remove(0))
    }

    /// The other users who read `up_to` or further, sorted by id.
    pub fn readers<'a>(&'a self, up_to: &'a str) -> impl Iterator<Item = &'a str> {
        self.others
            .iter()
            .filter(move |(_, marker)| compare(marker, up_to).is_some_and(|o| o != Ordering::Less))
            .map(|(user, _)| user.as_str())
    }

    /// How far `user` read; this user's own marker without `user`.
    pub fn read_up_to(&self, user: Option<&str>) -> Option<&str> {
        match user {
            None => self.mine.as_deref(),
            Some(user) => self.others.get(user).map(String::as_str),
        }
    }

    /// Every other user's marker, sorted by user id.
    pub fn markers(&self) -> impl Iterator<Item = (&str, &str)> {
        self.others.iter().map(|(u, m)| (u.as_str(), m.as_str()))
    }

    /// Events past this user's marker.
    pub fn unread(&self) -> u32 {
        let latest = self.latest.as_deref().and_then(position);
        let mine = self.mine.as_deref().map(position);
        let past = match (latest, mine) {
            (Some((epoch, latest)), Some(Some((own_epoch, mine)))) if epoch == own_epoch => {
                latest.saturating_sub(mine)
            }
            (Some((_, latest)), None) if self.server_keeps => latest,
            _ => self.unseen.into(),
        };
        past.min(u32::MAX.into()) as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(reads: &mut Reads) -> (Vec<String>, bool) {
        let mut sent = Vec::new();
        let mut changed = false;
        while let Some(action) = reads.poll_action() {
            match action {
                ReadsAction::Send(up_to) => sent.push(up_to),
                ReadsAction::Changed => changed = true,
            }
        }
        (sent, changed)
    }

    fn live() -> Reads {
        let mut reads = Reads::new();
        reads.subscribed(Some("e1:10"), true, 0);
        drain(&mut reads);
        reads
    }

    #[test]
    fn markers_compare_by_offset_or_number_and_otherwise_not() {
        assert_eq!(compare("e1:9", "e1:10"), Some(Ordering::Less));
        assert_eq!(compare("e1:10", "e1:10"), Some(Ordering::Equal));
        assert_eq!(compare("e2:1", "e1:10"), None, "another epoch");
        assert_eq!(compare("10", "9"), Some(Ordering::Greater), "numerically");
        assert_eq!(compare("msg-b", "msg-a"), None);
        assert_eq!(compare("msg-a", "msg-a"), Some(Ordering::Equal));
        assert_eq!(compare(":3", ":4"), None, "no epoch is no position");
    }

    #[test]
    fn two_hundred_marks_in_one_window_send_one_frame_with_the_furthest() {
        let mut reads = live();
        for offset in 1..=200u64 {
            let mut marker = String::from("e1:");
            crate::core::push_decimal(&mut marker, offset);
            assert!(reads.mark(&marker, 1000 + offset / 100));
        }
        assert_eq!(reads.poll_timeout(), Some(1000 + BATCH_MS));
        reads.handle_timeout(1000 + BATCH_MS - 1);
        assert!(drain(&mut reads).0.is_empty(), "the window is still open");
        reads.handle_timeout(1000 + BATCH_MS);
        assert_eq!(drain(&mut reads).0, ["e1:200"]);
        assert_eq!(reads.poll_timeout(), None);
        // Marking what is already read sends nothing.
        reads.mark("e1:150", 2000);
        assert_eq!(reads.poll_timeout(), None);
    }

    #[test]
    fn marks_wait_for_the_subscription_and_stay_local_on_other_servers() {
        let mut reads = Reads::new();
        reads.mark("e1:3", 0);
        assert_eq!(
            reads.poll_timeout(),
            None,
            "not subscribed: nothing to send yet"
        );
        reads.subscribed(Some("e1:5"), true, 100);
        assert_eq!(reads.poll_timeout(), Some(100));
        reads.handle_timeout(100);
        assert_eq!(drain(&mut reads).0, ["e1:3"]);

        let mut elsewhere = Reads::new();
        elsewhere.subscribed(Some("e1:5"), false, 0);
        elsewhere.event("e1:6");
        assert_eq!(
            elsewhere.unread(),
            1,
            "no marker, no server keeping them: the events seen"
        );
        elsewhere.mark("e1:6", 0);
        assert_eq!(elsewhere.poll_timeout(), None);
        assert_eq!(elsewhere.read_up_to(None), Some("e1:6"));
        assert_eq!(elsewhere.unread(), 0);
    }

    #[test]
    fn a_mark_during_a_disconnection_goes_after_the_resubscription() {
        let mut reads = live();
        reads.mark("e1:4", 0);
        reads.unsubscribed();
        assert_eq!(reads.poll_timeout(), None);
        reads.subscribed(Some("e1:10"), true, 500);
        reads.handle_timeout(500);
        assert_eq!(drain(&mut reads).0, ["e1:4"]);
    }

    #[test]
    fn readers_and_markers_only_move_forward() {
        let mut reads = live();
        reads.received("ana", "e1:7", false);
        reads.received("bob", "e1:3", false);
        assert!(drain(&mut reads).1);
        reads.received("ana", "e1:5", false);
        assert!(!drain(&mut reads).1, "an older marker is ignored");
        assert_eq!(reads.read_up_to(Some("ana")), Some("e1:7"));
        assert_eq!(reads.readers("e1:3").collect::<Vec<_>>(), ["ana", "bob"]);
        assert_eq!(reads.readers("e1:6").collect::<Vec<_>>(), ["ana"]);
        assert_eq!(reads.readers("e1:8").count(), 0);
        reads.received("ana", "e2:1", false);
        assert_eq!(
            reads.read_up_to(Some("ana")),
            Some("e2:1"),
            "a new epoch replaces"
        );
        reads.received("cyd", "", false);
        reads.received("cyd", &"9".repeat(MAX_MARKER_LEN + 1), false);
        assert_eq!(
            reads.read_up_to(Some("cyd")),
            None,
            "malformed markers are ignored"
        );
    }

    #[test]
    fn own_markers_from_other_tabs_move_this_one_and_are_not_sent_back() {
        let mut reads = live();
        reads.event("e1:11");
        reads.event("e1:12");
        assert_eq!(reads.unread(), 12, "no marker: the whole epoch");
        reads.received("me", "e1:12", true);
        assert_eq!(reads.unread(), 0);
        assert_eq!(reads.read_up_to(None), Some("e1:12"));
        assert!(
            reads.readers("e1:12").next().is_none(),
            "the own user is no reader"
        );
        reads.mark("e1:12", 0);
        assert_eq!(reads.poll_timeout(), None, "the server has it already");
    }

    #[test]
    fn unread_counts_by_positions_across_reloads_and_by_events_otherwise() {
        // A reload: the subscription says where the channel is, the server where we read.
        let mut reads = Reads::new();
        reads.subscribed(Some("e1:40"), true, 0);
        reads.received("me", "e1:35", true);
        assert_eq!(reads.unread(), 5);
        reads.event("e1:41");
        assert_eq!(reads.unread(), 6);
        reads.event("e1:41");
        assert_eq!(reads.unread(), 6, "a duplicate is no new event");
        reads.mark("e1:41", 0);
        assert_eq!(reads.unread(), 0);

        let mut by_id = live();
        by_id.mark("1001", 0);
        by_id.event("e1:11");
        by_id.event("e1:12");
        assert_eq!(by_id.unread(), 2, "app ids: events since the mark");
        by_id.mark("1003", 0);
        assert_eq!(by_id.unread(), 0);
    }

    #[test]
    fn readers_are_bounded() {
        let mut reads = live();
        for i in 0..MAX_READERS as u64 + 10 {
            let mut user = String::from("u");
            crate::core::push_decimal(&mut user, i);
            reads.received(&user, "e1:1", false);
        }
        assert_eq!(reads.markers().count(), MAX_READERS);
        assert!(!reads.mark("", 0), "an empty marker is refused");
    }
}
