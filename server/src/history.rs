//! Channel history on one node: which channels keep it (the app's `[[apps.history]]` rules),
//! positions (`EPOCH:OFFSET`), and the bounded in-memory ring of each channel's recent events.
//!
//! A [`Ring`] lives inside the channel's entry of [`crate::channels::ChannelRegistry`], so an
//! event's offset is assigned, its positioned frame built, stored and delivered under the one
//! channel lock: subscribers see events in offset order, and a subscriber that registers and
//! reads the ring under that lock can neither miss an event nor get one twice. Each ring is
//! bounded by count (`max_events`) and age (`max_age_secs`); the registry also bounds all rings
//! of an app together by bytes, and its sweeper drops idle channels' rings once their events
//! aged out. A ring's epoch is random and new whenever the ring is created, so a position from
//! before a restart or from history that was dropped is never mistaken for a current one.
//!
//! With Redis, positions come from Redis instead ([`crate::cluster::history`]); the ring is then
//! only the fallback while Redis is away.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::Utf8Bytes;
use serde::Deserialize;

/// Most events one subscribe replays (and the HTTP API returns at once).
pub const MAX_REPLAY: usize = 1000;
/// Longest epoch on the wire.
pub const MAX_EPOCH_CHARS: usize = 16;

/// One `[[apps.history]]` rule of the config file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistoryRule {
    /// Channel name pattern: `*` matches any run of characters, `{name}` a non-empty run
    /// without `.` (as in authz rules); anything else matches itself.
    pub channel: String,
    #[serde(default = "default_max_events")]
    pub max_events: usize,
    #[serde(default = "default_max_age_secs")]
    pub max_age_secs: u64,
}

fn default_max_events() -> usize {
    100
}
fn default_max_age_secs() -> u64 {
    300
}

impl HistoryRule {
    /// The rule used when an app configures none: every channel, 100 events, 5 minutes.
    pub fn default_rule() -> HistoryRule {
        HistoryRule {
            channel: "*".into(),
            max_events: default_max_events(),
            max_age_secs: default_max_age_secs(),
        }
    }

    /// Checks the pattern and the bounds (a config file error otherwise).
    pub fn validate(&self) -> Result<(), String> {
        Pattern::parse(&self.channel)?;
        if self.max_age_secs == 0 && self.max_events > 0 {
            return Err(format!(
                "history rule {:?}: max_age_secs must be at least 1",
                self.channel
            ));
        }
        Ok(())
    }
}

/// How much of one channel's history is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_events: usize,
    pub max_age: Duration,
}

/// An app's history rules, parsed; the first matching rule decides.
#[derive(Debug, Clone)]
pub struct Rules(Vec<(Pattern, Limits)>);

impl Rules {
    /// Parses the rules (the default rule when `rules` is empty).
    pub fn new(rules: &[HistoryRule]) -> Result<Rules, String> {
        let default = [HistoryRule::default_rule()];
        let rules = if rules.is_empty() { &default[..] } else { rules };
        rules
            .iter()
            .map(|rule| {
                rule.validate()?;
                let limits = Limits {
                    max_events: rule.max_events,
                    max_age: Duration::from_secs(rule.max_age_secs),
                };
                Ok((Pattern::parse(&rule.channel)?, limits))
            })
            .collect::<Result<_, String>>()
            .map(Rules)
    }

    /// The channel's limits, or None when it keeps no history (no rule, `max_events = 0`,
    /// `#server-to-user-` channels).
    pub fn for_channel(&self, channel: &str) -> Option<Limits> {
        if channel.starts_with(overtone_protocol::channel::SERVER_TO_USER_PREFIX) {
            return None;
        }
        let (_, limits) = self.0.iter().find(|(p, _)| p.matches(channel))?;
        (limits.max_events > 0).then_some(*limits)
    }
}

impl Default for Rules {
    fn default() -> Rules {
        Rules::new(&[]).expect("the default rule parses")
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Piece {
    Literal(String),
    /// `*`: any run of characters, possibly empty.
    Star,
    /// `{name}`: a non-empty run of characters other than `.`.
    Placeholder,
}

/// A channel name pattern of a history rule.
#[derive(Debug, Clone)]
struct Pattern(Vec<Piece>);

impl Pattern {
    fn parse(pattern: &str) -> Result<Pattern, String> {
        if pattern.is_empty() {
            return Err("a history rule's channel pattern may not be empty".into());
        }
        let mut pieces = Vec::new();
        let mut rest = pattern;
        while let Some(at) = rest.find(['*', '{', '}']) {
            if at > 0 {
                pieces.push(Piece::Literal(rest[..at].into()));
            }
            match rest.as_bytes()[at] {
                b'*' => {
                    pieces.push(Piece::Star);
                    rest = &rest[at + 1..];
                }
                b'{' => {
                    let close = rest[at..].find('}').ok_or_else(|| {
                        format!("history pattern {pattern:?} has an unclosed {{")
                    })?;
                    let name = &rest[at + 1..at + close];
                    if name.is_empty()
                        || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                    {
                        return Err(format!(
                            "history pattern {pattern:?}: bad placeholder {{{name}}}"
                        ));
                    }
                    pieces.push(Piece::Placeholder);
                    rest = &rest[at + close + 1..];
                }
                _ => return Err(format!("history pattern {pattern:?} has a }} without a {{")),
            }
        }
        if !rest.is_empty() {
            pieces.push(Piece::Literal(rest.into()));
        }
        Ok(Pattern(pieces))
    }

    fn matches(&self, channel: &str) -> bool {
        fn from(pieces: &[Piece], text: &str) -> bool {
            match pieces.split_first() {
                None => text.is_empty(),
                Some((Piece::Literal(l), rest)) => text
                    .strip_prefix(l.as_str())
                    .is_some_and(|after| from(rest, after)),
                Some((Piece::Star, rest)) => (0..=text.len())
                    .filter(|&i| text.is_char_boundary(i))
                    .any(|i| from(rest, &text[i..])),
                Some((Piece::Placeholder, rest)) => {
                    let longest = text.find('.').unwrap_or(text.len());
                    (1..=longest)
                        .filter(|&i| text.is_char_boundary(i))
                        .any(|i| from(rest, &text[i..]))
                }
            }
        }
        from(&self.0, channel)
    }
}

/// A fresh random epoch: 8 characters of `[A-Za-z0-9]`.
pub fn new_epoch() -> String {
    (0..8).map(|_| fastrand::alphanumeric()).collect()
}

/// Parses `EPOCH:OFFSET`; None when malformed (a client's position is then not recoverable).
pub fn parse_position(position: &str) -> Option<(&str, u64)> {
    let (epoch, offset) = position.split_once(':')?;
    let epoch_ok = (1..=MAX_EPOCH_CHARS).contains(&epoch.len())
        && epoch.bytes().all(|b| b.is_ascii_alphanumeric());
    let offset_ok = !offset.is_empty() && offset.bytes().all(|b| b.is_ascii_digit());
    (epoch_ok && offset_ok).then_some(())?;
    Some((epoch, offset.parse().ok()?))
}

/// `EPOCH:OFFSET`.
pub fn format_position(epoch: &str, offset: u64) -> String {
    format!("{epoch}:{offset}")
}

struct Stored {
    offset: u64,
    /// The frame as subscribers got it, with its position; shared, not copied.
    frame: Utf8Bytes,
    at: Instant,
}

/// What a client asked to resume from, checked against a ring (or Redis).
#[derive(Debug, PartialEq)]
pub enum Replay<T> {
    /// Every event after the client's offset, oldest first (possibly none).
    Complete(Vec<T>),
    /// The position is from another epoch, malformed, or older than what is kept.
    Incomplete,
}

/// One channel's recent events, bounded by count and age.
pub struct Ring {
    epoch: Arc<str>,
    /// The last offset assigned (0: none yet).
    last: u64,
    events: VecDeque<Stored>,
    bytes: usize,
    limits: Limits,
}

impl Ring {
    pub fn new(limits: Limits) -> Ring {
        Ring {
            epoch: new_epoch().into(),
            last: 0,
            events: VecDeque::new(),
            bytes: 0,
            limits,
        }
    }

    pub fn epoch(&self) -> &Arc<str> {
        &self.epoch
    }

    pub fn last(&self) -> u64 {
        self.last
    }

    /// `EPOCH:OFFSET` of the newest event (`EPOCH:0` before the first).
    pub fn position(&self) -> String {
        format_position(&self.epoch, self.last)
    }

    /// Bytes of the frames held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Assigns the next offset to `frame` (an event frame without a position), stores the
    /// positioned frame and returns it, with the change in bytes held.
    pub fn push(&mut self, frame: &Utf8Bytes, now: Instant) -> (Utf8Bytes, isize) {
        let before = self.bytes as isize;
        self.last += 1;
        let positioned = crate::frame::with_position(frame, &self.epoch, self.last);
        self.bytes += positioned.len();
        self.events.push_back(Stored {
            offset: self.last,
            frame: positioned.clone(),
            at: now,
        });
        self.trim(now);
        (positioned, self.bytes as isize - before)
    }

    /// Drops events beyond `max_events` or older than `max_age`; returns the bytes freed.
    pub fn trim(&mut self, now: Instant) -> usize {
        let before = self.bytes;
        while let Some(oldest) = self.events.front() {
            let too_many = self.events.len() > self.limits.max_events;
            let too_old = now.saturating_duration_since(oldest.at) >= self.limits.max_age;
            if !(too_many || too_old) {
                break;
            }
            self.bytes -= oldest.frame.len();
            self.events.pop_front();
        }
        before - self.bytes
    }

    /// Keeps only the newest event (the app is over its history memory); returns bytes freed.
    pub fn shrink_to_newest(&mut self) -> usize {
        let before = self.bytes;
        while self.events.len() > 1 {
            if let Some(e) = self.events.pop_front() {
                self.bytes -= e.frame.len();
            }
        }
        before - self.bytes
    }

    /// Whether the ring still holds an event younger than its max age.
    pub fn is_live(&self, now: Instant) -> bool {
        self.events
            .back()
            .is_some_and(|e| now.saturating_duration_since(e.at) < self.limits.max_age)
    }

    /// The events after `position` (a client's `EPOCH:OFFSET`, unparsed), if every one of
    /// them is still here.
    pub fn replay(&self, position: &str, now: Instant) -> Replay<Utf8Bytes> {
        let Some((epoch, offset)) = parse_position(position) else {
            return Replay::Incomplete;
        };
        if epoch != &*self.epoch || offset > self.last {
            return Replay::Incomplete;
        }
        let (events, complete) = self.after(Some(offset), MAX_REPLAY, now);
        match complete {
            true => Replay::Complete(events.into_iter().map(|(_, f)| f).collect()),
            false => Replay::Incomplete,
        }
    }

    /// Up to `limit` events after `after` (the newest `limit` without it), oldest first, and
    /// whether they are every event after `after` (without `after`: every event since the
    /// epoch began).
    pub fn after(
        &self,
        after: Option<u64>,
        limit: usize,
        now: Instant,
    ) -> (Vec<(u64, Utf8Bytes)>, bool) {
        let live = |e: &&Stored| now.saturating_duration_since(e.at) < self.limits.max_age;
        let kept: Vec<&Stored> = self.events.iter().filter(live).collect();
        let first_kept = kept.first().map_or(self.last + 1, |e| e.offset);
        match after {
            Some(after) => {
                let complete = after <= self.last && first_kept <= after + 1;
                let events = kept
                    .iter()
                    .filter(|e| e.offset > after)
                    .take(limit)
                    .map(|e| (e.offset, e.frame.clone()))
                    .collect::<Vec<_>>();
                let all = complete && events.len() as u64 == self.last - after;
                (events, all)
            }
            None => {
                let skip = kept.len().saturating_sub(limit);
                let events: Vec<_> = kept[skip..]
                    .iter()
                    .map(|e| (e.offset, e.frame.clone()))
                    .collect();
                let complete = self.last == 0 || events.first().is_some_and(|e| e.0 == 1);
                (events, complete)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max_events: usize, secs: u64) -> Limits {
        Limits {
            max_events,
            max_age: Duration::from_secs(secs),
        }
    }

    fn event(n: u64) -> Utf8Bytes {
        crate::frame::channel_event("c", "e", &n.to_string(), None)
    }

    fn offsets(r: &Replay<Utf8Bytes>) -> Vec<u64> {
        match r {
            Replay::Complete(frames) => frames
                .iter()
                .map(|f| {
                    let v: serde_json::Value = serde_json::from_str(f).unwrap();
                    let p = v["position"].as_str().unwrap().to_owned();
                    parse_position(&p).unwrap().1
                })
                .collect(),
            Replay::Incomplete => panic!("incomplete"),
        }
    }

    #[test]
    fn positions_parse_strictly() {
        assert_eq!(parse_position("k3J9x:17"), Some(("k3J9x", 17)));
        assert_eq!(parse_position("a:0"), Some(("a", 0)));
        for bad in [
            "",
            ":1",
            "a:",
            "a",
            "a:-1",
            "a:1.5",
            "a:b",
            "a-b:1",
            "abcdefghijklmnopq:1",
            "a:99999999999999999999999",
            "a:1:2",
            "é:1",
        ] {
            assert_eq!(parse_position(bad), None, "{bad}");
        }
    }

    #[test]
    fn frames_carry_their_position_and_the_ring_trims_by_count() {
        let now = Instant::now();
        let mut ring = Ring::new(limits(3, 60));
        let epoch = ring.epoch().to_string();
        assert_eq!(ring.position(), format!("{epoch}:0"));
        for n in 1..=5 {
            let (frame, _) = ring.push(&event(n), now);
            let v: serde_json::Value = serde_json::from_str(&frame).unwrap();
            assert_eq!(v["position"], format!("{epoch}:{n}"));
            assert_eq!(v["data"], n.to_string());
        }
        assert_eq!(ring.position(), format!("{epoch}:5"));
        assert_eq!(offsets(&ring.replay(&format!("{epoch}:2"), now)), [3, 4, 5]);
        assert_eq!(offsets(&ring.replay(&format!("{epoch}:4"), now)), [5]);
        assert_eq!(
            offsets(&ring.replay(&format!("{epoch}:5"), now)),
            Vec::<u64>::new()
        );
        // Event 2 was trimmed: resuming after 1 would skip it.
        assert_eq!(ring.replay(&format!("{epoch}:1"), now), Replay::Incomplete);
        assert_eq!(ring.replay(&format!("{epoch}:0"), now), Replay::Incomplete);
        // A position from the future, another epoch, or malformed.
        assert_eq!(ring.replay(&format!("{epoch}:6"), now), Replay::Incomplete);
        assert_eq!(ring.replay("other:4", now), Replay::Incomplete);
        assert_eq!(ring.replay("garbage", now), Replay::Incomplete);
    }

    #[test]
    fn the_ring_trims_by_age() {
        let t0 = Instant::now();
        let mut ring = Ring::new(limits(100, 10));
        let epoch = ring.epoch().to_string();
        ring.push(&event(1), t0);
        ring.push(&event(2), t0 + Duration::from_secs(5));
        let later = t0 + Duration::from_secs(12);
        assert!(ring.is_live(later));
        // Event 1 is older than 10 s: gone even before a trim.
        assert_eq!(ring.replay(&format!("{epoch}:0"), later), Replay::Incomplete);
        assert_eq!(offsets(&ring.replay(&format!("{epoch}:1"), later)), [2]);
        assert!(ring.trim(later) > 0);
        assert!(!ring.is_live(t0 + Duration::from_secs(16)));
        ring.trim(t0 + Duration::from_secs(16));
        assert_eq!(ring.bytes(), 0);
        // Offsets go on in the same epoch.
        ring.push(&event(3), t0 + Duration::from_secs(16));
        assert_eq!(ring.position(), format!("{epoch}:3"));
    }

    #[test]
    fn reads_after_a_position_or_the_newest() {
        let now = Instant::now();
        let mut ring = Ring::new(limits(5, 60));
        for n in 1..=4 {
            ring.push(&event(n), now);
        }
        let (events, complete) = ring.after(None, 2, now);
        assert_eq!(events.iter().map(|e| e.0).collect::<Vec<_>>(), [3, 4]);
        assert!(!complete);
        let (events, complete) = ring.after(None, 10, now);
        assert_eq!(events.len(), 4);
        assert!(complete);
        let (events, complete) = ring.after(Some(1), 2, now);
        assert_eq!(events.iter().map(|e| e.0).collect::<Vec<_>>(), [2, 3]);
        assert!(!complete, "limited: not every event after 1");
        let (events, complete) = ring.after(Some(1), 10, now);
        assert_eq!(events.len(), 3);
        assert!(complete);
        for n in 5..=8 {
            ring.push(&event(n), now);
        }
        let (events, complete) = ring.after(Some(1), 10, now);
        assert_eq!(events.iter().map(|e| e.0).collect::<Vec<_>>(), [4, 5, 6, 7, 8]);
        assert!(!complete, "2 and 3 were trimmed");
    }

    #[test]
    fn new_rings_get_new_epochs() {
        let a = Ring::new(limits(1, 1));
        let b = Ring::new(limits(1, 1));
        assert_ne!(a.epoch(), b.epoch());
        assert!(parse_position(&a.position()).is_some());
    }

    #[test]
    fn rules_pick_the_first_match() {
        let rule = |channel: &str, max_events| HistoryRule {
            channel: channel.into(),
            max_events,
            max_age_secs: 60,
        };
        let rules = Rules::new(&[
            rule("private-noisy-*", 0),
            rule("private-orders.{id}", 500),
            rule("*", 10),
        ])
        .unwrap();
        assert_eq!(rules.for_channel("private-noisy-x"), None);
        assert_eq!(
            rules.for_channel("private-orders.42").unwrap().max_events,
            500
        );
        assert_eq!(
            rules.for_channel("private-orders.42.x").unwrap().max_events,
            10
        );
        assert_eq!(rules.for_channel("#server-to-user-1"), None);
        let only = Rules::new(&[rule("cache-*", 5)]).unwrap();
        assert_eq!(only.for_channel("chat"), None);
        assert!(only.for_channel("cache-x").is_some());
        let default = Rules::default().for_channel("anything").unwrap();
        assert_eq!(default.max_events, 100);
        assert_eq!(default.max_age, Duration::from_secs(300));
        assert!(Rules::new(&[rule("a{", 1)]).is_err());
        assert!(Rules::new(&[rule("", 1)]).is_err());
        assert!(Rules::new(&[HistoryRule {
            max_age_secs: 0,
            ..rule("*", 1)
        }])
        .is_err());
    }
}
