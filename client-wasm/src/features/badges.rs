//! Unread badges: unread counts by category, shared by every tab of the user and kept across
//! reloads.
//!
//! Counts move with server notifications ([`Badges::notification`], each id counted once),
//! absolute counts from the server ([`Badges::set_count`], which override local arithmetic for
//! their category, so the first one after a reconnect re-synchronizes) and the user's
//! [`Badges::mark_read`]. The last [`MAX_TRACKED_IDS`] notification ids are remembered, read
//! ones too, so memory stays bounded and a notification marked read in another tab before it
//! arrived here is not counted.
//!
//! Every local change that alters the state is also handed out as an operation message for the
//! other tabs (BroadcastChannel), which feed it to [`Badges::apply_remote`]. Operations are
//! idempotent and mark-read ones only clear what the marking tab had seen, so tabs that got the
//! same notifications in a different order still agree. [`Badges::encode`] is the whole state
//! for localStorage (or for a tab that just opened); [`Badges::restore`] reads it back and falls
//! back to empty on anything corrupt or from another format version.
//!
//! Text format (both kinds): a header line, then one record per line, fields separated by tabs,
//! with `%`, tab, CR and LF inside fields written `%25`, `%09`, `%0D`, `%0A`.
//! - state, header `overtone-badges 1`: `c <category> <count>` per non-zero category, then
//!   `t <id> <category> <u|r>` per remembered id, oldest first.
//! - operation, header `overtone-badge-op 1`: `n <id> <category>` (notification),
//!   `c <category> <count>` (absolute count), or mark-read records: `r <id>` per id and
//!   `x <category> <count>` for unread the marking tab counted without knowing their ids.

use crate::prelude::*;

use core::str::Chars;

use super::sorted_map::SortedMap;
use crate::core::push_decimal;

/// How many notification ids (unread and read) are remembered.
pub const MAX_TRACKED_IDS: usize = 200;

const STATE_HEADER: &str = "overtone-badges 1";
const OP_HEADER: &str = "overtone-badge-op 1";

/// What [`Badges::mark_read`] marks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadTarget<'a> {
    Id(&'a str),
    Category(&'a str),
    All,
}

/// What the badges machine asks its shell to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BadgeAction {
    /// The state changed: redraw the badges and store [`Badges::encode`] in localStorage.
    Changed,
    /// Post this message to the user's other tabs; they pass it to [`Badges::apply_remote`].
    Broadcast(String),
}

#[derive(Debug, PartialEq, Eq)]
struct Tracked {
    id: String,
    category: String,
    unread: bool,
}

/// Unread counts of one user. Call inputs, then drain [`Badges::poll_action`].
///
/// A local change is made as the operation message the other tabs get, then applied by the
/// same code as theirs: one decoder instead of an operation type with its encoder and decoder.
#[derive(Debug, Default)]
pub struct Badges {
    /// Non-zero unread counts by category.
    counts: SortedMap<u32>,
    /// Remembered notification ids, oldest first.
    tracked: Vec<Tracked>,
    actions: Vec<BadgeAction>,
}

impl Badges {
    /// Nothing unread.
    pub fn new() -> Badges {
        Badges::default()
    }

    /// The state stored by [`Badges::encode`]; empty if `text` is corrupt or of another version.
    pub fn restore(text: &str) -> Badges {
        decode_state(text).unwrap_or_default()
    }

    /// The whole state as text, for localStorage or for another tab.
    pub fn encode(&self) -> String {
        let mut text = String::from(STATE_HEADER);
        for (category, &count) in &self.counts {
            push_count_record(&mut text, "c", category, count);
        }
        for entry in &self.tracked {
            let unread = if entry.unread { "u" } else { "r" };
            push_record(&mut text, &["t", &entry.id, &entry.category, unread]);
        }
        text
    }

    /// A notification arrived from the server; an id already seen (or read) is ignored.
    pub fn notification(&mut self, id: &str, category: &str) {
        let mut op = String::from(OP_HEADER);
        push_record(&mut op, &["n", id, category]);
        self.apply_local(op);
    }

    /// The server's absolute unread count for `category`; it replaces the local count.
    pub fn set_count(&mut self, category: &str, count: u32) {
        let mut op = String::from(OP_HEADER);
        push_count_record(&mut op, "c", category, count);
        self.apply_local(op);
    }

    /// The user read a notification, a category or everything: an `r` record per id, then an
    /// `x` record per category with unread the tab counted without knowing their ids.
    pub fn mark_read(&mut self, target: ReadTarget) {
        let mut op = String::from(OP_HEADER);
        let mut uncounted = String::new();
        if let ReadTarget::Id(id) = target {
            push_record(&mut op, &["r", id]);
        }
        for (category, &count) in &self.counts {
            let in_target = match target {
                ReadTarget::Id(_) => false,
                ReadTarget::Category(wanted) => category == wanted,
                ReadTarget::All => true,
            };
            if !in_target {
                continue;
            }
            let mut known = 0;
            for entry in &self.tracked {
                if entry.unread && entry.category == *category {
                    push_record(&mut op, &["r", &entry.id]);
                    known += 1;
                }
            }
            if count > known {
                push_count_record(&mut uncounted, "x", category, count - known);
            }
        }
        op.push_str(&uncounted);
        self.apply_local(op);
    }

    /// A message another tab broadcast, or a state it encoded: an operation is applied, a
    /// state replaces this one. Anything unreadable is ignored.
    pub fn apply_remote(&mut self, message: &str) {
        let changed = if message.starts_with(OP_HEADER) {
            self.apply_op(message)
        } else if let Some(state) = decode_state(message) {
            // Equal states encode the same: comparing the texts spares derived comparisons.
            let before = self.encode();
            self.counts = state.counts;
            self.tracked = state.tracked;
            self.encode() != before
        } else {
            false
        };
        if changed {
            self.actions.push(BadgeAction::Changed);
        }
    }

    /// The next thing for the shell to do.
    pub fn poll_action(&mut self) -> Option<BadgeAction> {
        // A Vec used as a queue: VecDeque's code costs more wasm than shifting a few entries.
        (!self.actions.is_empty()).then(|| self.actions.remove(0))
    }

    /// Unread count of one category.
    pub fn count(&self, category: &str) -> u32 {
        self.counts.get(category).copied().unwrap_or(0)
    }

    /// Unread count of all categories.
    pub fn total(&self) -> u32 {
        let mut total = 0u32;
        for &count in self.counts.values() {
            total = total.saturating_add(count);
        }
        total
    }

    /// Categories with unread notifications and their counts, sorted by category.
    pub fn counts(&self) -> impl Iterator<Item = (&str, u32)> {
        self.counts
            .iter()
            .map(|(category, &count)| (category.as_str(), count))
    }

    fn apply_local(&mut self, op: String) {
        if self.apply_op(&op) {
            self.actions.push(BadgeAction::Changed);
            self.actions.push(BadgeAction::Broadcast(op));
        }
    }

    /// Applies an operation message; returns whether the state changed. A message that is not
    /// one whole operation (a single `n` or `c` record, or `r` and `x` records only) changes
    /// nothing.
    fn apply_op(&mut self, text: &str) -> bool {
        let Some(records) = Records::after(text, OP_HEADER) else {
            return false;
        };
        // Checked whole before anything is applied: a second pass reads the text again.
        let (mut count, mut single_kind, mut valid) = (0, false, true);
        for record in records.clone() {
            count += 1;
            valid &= match record.as_slice() {
                [kind, _, _] if kind == "n" => {
                    single_kind = true;
                    true
                }
                [kind, _, count] if kind == "c" => {
                    single_kind = true;
                    parse_count(count).is_some()
                }
                [kind, _] => kind == "r",
                [kind, _, count] => kind == "x" && parse_count(count).is_some(),
                _ => false,
            };
        }
        if !valid || count == 0 || (single_kind && count > 1) {
            return false;
        }
        // The records of a mark-read may come in any order: reading an id and taking an
        // uncounted number off its category give the same counts either way round.
        let mut changed = false;
        for record in records {
            changed |= match record.as_slice() {
                [kind, id, category] if kind == "n" => self.notify(id, category),
                [_, id] => self.read(id),
                [kind, category, count] => {
                    let count = parse_count(count).unwrap_or_default();
                    if kind == "c" {
                        self.set(category, count)
                    } else {
                        subtract(&mut self.counts, category, count)
                    }
                }
                _ => false,
            };
        }
        changed
    }

    /// Counts a new notification; an id already remembered changes nothing.
    fn notify(&mut self, id: &str, category: &str) -> bool {
        if self.find(id).is_some() {
            return false;
        }
        self.track(id, category, true);
        let count = self.counts.get_or_insert(category, 0);
        *count = count.saturating_add(1);
        true
    }

    /// Sets the absolute count of `category`.
    fn set(&mut self, category: &str, count: u32) -> bool {
        let mut changed = false;
        if count == 0 {
            // Nothing unread: the remembered ids of the category were read.
            for entry in &mut self.tracked {
                if entry.unread && entry.category == category {
                    entry.unread = false;
                    changed = true;
                }
            }
        }
        let previous = self.counts.remove(category).unwrap_or(0);
        if count > 0 {
            self.counts.insert(category.to_owned(), count);
        }
        changed || previous != count
    }

    /// Marks `id` read.
    fn read(&mut self, id: &str) -> bool {
        let Some(i) = self.find(id) else {
            // Read before it arrived here: remember it so it is never counted.
            self.track(id, "", false);
            return true;
        };
        let entry = &mut self.tracked[i];
        if !entry.unread {
            return false;
        }
        entry.unread = false;
        subtract(&mut self.counts, &entry.category, 1);
        true
    }

    fn find(&self, id: &str) -> Option<usize> {
        self.tracked.iter().position(|entry| entry.id == id)
    }

    fn track(&mut self, id: &str, category: &str, unread: bool) {
        if self.tracked.len() == MAX_TRACKED_IDS {
            self.tracked.remove(0);
        }
        self.tracked.push(Tracked {
            id: id.to_owned(),
            category: category.to_owned(),
            unread,
        });
    }
}

/// Takes `amount` off `category`, not below zero; returns whether the count moved.
fn subtract(counts: &mut SortedMap<u32>, category: &str, amount: u32) -> bool {
    let Some(count) = counts.get_mut(category) else {
        return false;
    };
    *count = count.saturating_sub(amount);
    if *count == 0 {
        counts.remove(category);
    }
    amount > 0
}

/// The counts and remembered ids of a state text, with no actions.
fn decode_state(text: &str) -> Option<Badges> {
    let mut badges = Badges::new();
    for record in Records::after(text, STATE_HEADER)? {
        match record.as_slice() {
            [kind, category, count] if kind == "c" => {
                let count = parse_count(count)?;
                if count > 0 && badges.counts.insert(category.clone(), count).is_some() {
                    return None;
                }
            }
            [kind, id, category, unread] if kind == "t" => {
                let unread = match unread.as_str() {
                    "u" => true,
                    "r" => false,
                    _ => return None,
                };
                if badges.tracked.len() == MAX_TRACKED_IDS || badges.find(id).is_some() {
                    return None;
                }
                badges.track(id, category, unread);
            }
            _ => return None,
        }
    }
    Some(badges)
}

/// The records of a text, each as its unescaped fields, read one line at a time over the
/// characters: `str::split`, and collecting every record first, cost the wasm more.
#[derive(Clone)]
struct Records<'a> {
    /// What is left to read; `None` once the last record was read.
    chars: Option<Chars<'a>>,
}

impl<'a> Records<'a> {
    /// The records of `text` if its first line is `header`; `None` for another header.
    fn after(text: &'a str, header: &str) -> Option<Records<'a>> {
        let chars = match text.strip_prefix(header)? {
            "" => None,
            rest => Some(rest.strip_prefix('\n')?.chars()),
        };
        Some(Records { chars })
    }
}

impl Iterator for Records<'_> {
    /// A record that does not unescape comes out empty, which every decoder rejects, and ends
    /// the reading.
    type Item = Vec<String>;

    fn next(&mut self) -> Option<Vec<String>> {
        let chars = self.chars.as_mut()?;
        let (mut fields, mut field) = (Vec::new(), String::new());
        loop {
            let unescaped = match chars.next() {
                Some('%') => match [chars.next(), chars.next()] {
                    [Some('2'), Some('5')] => '%',
                    [Some('0'), Some('9')] => '\t',
                    [Some('0'), Some('A')] => '\n',
                    [Some('0'), Some('D')] => '\r',
                    _ => {
                        self.chars = None;
                        return Some(Vec::new());
                    }
                },
                Some('\t') => {
                    fields.push(core::mem::take(&mut field));
                    continue;
                }
                Some('\n') => break,
                None => {
                    self.chars = None;
                    break;
                }
                Some(c) => c,
            };
            field.push(unescaped);
        }
        fields.push(field);
        Some(fields)
    }
}

/// A count field: decimal digits after an optional `+`, as `str::parse::<u32>` reads it
/// (whose generic code is bigger); `None` when empty, not a number or over `u32::MAX`.
fn parse_count(field: &str) -> Option<u32> {
    let digits = match field.as_bytes() {
        [b'+', digits @ ..] => digits,
        digits => digits,
    };
    if digits.is_empty() {
        return None;
    }
    let mut count: u64 = 0;
    for &byte in digits {
        if !byte.is_ascii_digit() {
            return None;
        }
        count = count * 10 + u64::from(byte - b'0');
        if count > u64::from(u32::MAX) {
            return None;
        }
    }
    Some(count as u32)
}

fn push_count_record(text: &mut String, kind: &str, name: &str, count: u32) {
    push_record(text, &[kind, name]);
    text.push('\t');
    push_decimal(text, count.into());
}

/// Appends a line of `fields`, tab-separated, escaping `%`, tab, CR and LF.
fn push_record(text: &mut String, fields: &[&str]) {
    for (i, field) in fields.iter().enumerate() {
        text.push(if i == 0 { '\n' } else { '\t' });
        for c in field.chars() {
            match c {
                '%' => text.push_str("%25"),
                '\t' => text.push_str("%09"),
                '\n' => text.push_str("%0A"),
                '\r' => text.push_str("%0D"),
                c => text.push(c),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Drains the actions: whether any `Changed` came out, and the broadcast messages.
    fn drain(badges: &mut Badges) -> (bool, Vec<String>) {
        let mut changed = false;
        let mut broadcasts = Vec::new();
        while let Some(action) = badges.poll_action() {
            match action {
                BadgeAction::Changed => changed = true,
                BadgeAction::Broadcast(message) => broadcasts.push(message),
            }
        }
        (changed, broadcasts)
    }

    #[test]
    fn notifications_count_once_per_id() {
        let mut badges = Badges::new();
        badges.notification("1", "messages");
        badges.notification("2", "messages");
        badges.notification("3", "orders");
        assert!(drain(&mut badges).0);
        badges.notification("2", "messages");
        assert_eq!(
            drain(&mut badges),
            (false, vec![]),
            "a duplicate changes nothing"
        );
        assert_eq!(
            (
                badges.count("messages"),
                badges.count("orders"),
                badges.count("other")
            ),
            (2, 1, 0)
        );
        assert_eq!(badges.total(), 3);
        assert_eq!(
            badges.counts().collect::<Vec<_>>(),
            [("messages", 2), ("orders", 1)]
        );
    }

    #[test]
    fn absolute_counts_override_local_arithmetic() {
        let mut badges = Badges::new();
        badges.notification("1", "messages");
        badges.set_count("messages", 12);
        assert_eq!(badges.count("messages"), 12);
        badges.notification("2", "messages");
        badges.mark_read(ReadTarget::Id("1"));
        assert_eq!(badges.count("messages"), 12);
        badges.set_count("messages", 4);
        assert_eq!(badges.count("messages"), 4);
        badges.set_count("messages", 0);
        assert_eq!(badges.total(), 0);
        drain(&mut badges);
        badges.set_count("messages", 0);
        assert_eq!(
            drain(&mut badges),
            (false, vec![]),
            "the second zero changes nothing"
        );
        badges.mark_read(ReadTarget::Id("2"));
        badges.set_count("messages", 3);
        badges.mark_read(ReadTarget::Id("2"));
        assert_eq!(
            badges.count("messages"),
            3,
            "zero marked every known id of the category read"
        );
    }

    #[test]
    fn mark_read_by_id_category_and_all() {
        let mut badges = Badges::new();
        for (id, category) in [
            ("1", "messages"),
            ("2", "messages"),
            ("3", "orders"),
            ("4", "alerts"),
        ] {
            badges.notification(id, category);
        }
        badges.set_count("alerts", 5);
        drain(&mut badges);
        badges.mark_read(ReadTarget::Id("1"));
        assert_eq!(badges.count("messages"), 1);
        badges.mark_read(ReadTarget::Id("1"));
        badges.mark_read(ReadTarget::Category("nothing-here"));
        assert_eq!(
            drain(&mut badges).1.len(),
            1,
            "only the first read changed something"
        );
        badges.mark_read(ReadTarget::Category("alerts"));
        assert_eq!((badges.count("alerts"), badges.total()), (0, 2));
        badges.mark_read(ReadTarget::All);
        assert_eq!(badges.total(), 0);
        badges.notification("2", "messages");
        assert_eq!(badges.total(), 0, "read ids stay read");
    }

    #[test]
    fn an_id_read_before_it_arrives_is_never_counted() {
        let mut badges = Badges::new();
        badges.mark_read(ReadTarget::Id("9"));
        badges.notification("9", "messages");
        assert_eq!(badges.total(), 0);
    }

    #[test]
    fn remembered_ids_are_bounded() {
        let mut badges = Badges::new();
        for i in 0..(MAX_TRACKED_IDS + 50) {
            badges.notification(&i.to_string(), "messages");
        }
        assert_eq!(badges.tracked.len(), MAX_TRACKED_IDS);
        assert_eq!(badges.count("messages"), MAX_TRACKED_IDS as u32 + 50);
        badges.mark_read(ReadTarget::All);
        assert_eq!(
            badges.total(),
            0,
            "unread without a remembered id are cleared too"
        );
    }

    #[test]
    fn state_round_trips_through_text() {
        let mut badges = Badges::new();
        badges.notification("a\tb%c\nd\re", "odd\tcategory%");
        badges.notification("2", "messages");
        badges.mark_read(ReadTarget::Id("2"));
        badges.mark_read(ReadTarget::Id("never-seen"));
        badges.set_count("orders", 7);
        let text = badges.encode();
        let restored = Badges::restore(&text);
        assert_eq!(
            (&restored.counts, &restored.tracked),
            (&badges.counts, &badges.tracked)
        );
        assert_eq!(restored.encode(), text);
    }

    #[test]
    fn corrupt_or_foreign_state_falls_back_to_empty() {
        let mut badges = Badges::new();
        badges.notification("1", "messages");
        let good = badges.encode();
        let corrupt = [
            String::new(),
            "garbage".to_owned(),
            good.replace(" 1", " 2"),
            good.replace("\tu", "\tmaybe"),
            good.replace("\t1", "\t-1"),
            format!("{good}\nc\tmessages\t99999999999"),
            format!("{good}\nt\t1\tmessages\tu"),
            format!("{good}\nq\tunknown"),
            good.replace("messages", "bad%2escape"),
            good.replace("messages", "cut%0"),
            good.replace("messages", "multibyte%é"),
        ];
        for text in corrupt {
            let restored = Badges::restore(&text);
            assert_eq!(
                (restored.total(), restored.tracked.len()),
                (0, 0),
                "{text:?}"
            );
        }
    }

    #[test]
    fn corrupt_operations_are_ignored() {
        let mut badges = Badges::new();
        badges.notification("1", "messages");
        drain(&mut badges);
        for message in [
            OP_HEADER.to_owned(),
            format!("{OP_HEADER}\nn\t2"),
            format!("{OP_HEADER}\nn\t2\tmessages\nn\t3\tmessages"),
            format!("{OP_HEADER}\nc\tmessages\tmany"),
            format!("{OP_HEADER}\nr\t1\nx\tmessages\t-1"),
            format!("{OP_HEADER}\nr\t1\nzz"),
            "overtone-badge-op 0\nr\t1".to_owned(),
        ] {
            badges.apply_remote(&message);
            assert_eq!(drain(&mut badges), (false, vec![]), "{message:?}");
        }
        assert_eq!(badges.count("messages"), 1);
    }

    #[test]
    fn counts_are_read_as_str_parse_reads_them() {
        for field in [
            "0",
            "+5",
            "007",
            "4294967295",
            "4294967296",
            "",
            "+",
            "-1",
            "1.0",
            " 1",
        ] {
            assert_eq!(parse_count(field), field.parse().ok(), "{field:?}");
        }
    }

    /// Hands every message `from` broadcasts to `to`; returns whether `to` changed.
    fn relay(from: &mut Badges, to: &mut Badges) -> bool {
        let mut changed = false;
        for message in drain(from).1 {
            to.apply_remote(&message);
            let (to_changed, echoed) = drain(to);
            assert!(
                echoed.is_empty(),
                "remote operations are never re-broadcast"
            );
            changed |= to_changed;
        }
        changed
    }

    #[test]
    fn tabs_applying_each_others_operations_agree() {
        let (mut a, mut b) = (Badges::new(), Badges::new());
        a.notification("1", "messages");
        a.notification("2", "messages");
        a.notification("3", "orders");
        a.set_count("alerts", 4);
        assert!(relay(&mut a, &mut b));
        // b hears of 4 before a marks messages read; a hears of it afterwards.
        b.notification("4", "messages");
        let b_heard_4 = drain(&mut b).1;
        a.mark_read(ReadTarget::Category("messages"));
        a.notification("4", "messages");
        relay(&mut a, &mut b);
        a.apply_remote(&b_heard_4[0]);
        assert_eq!(drain(&mut a), (false, vec![]), "a already had 4");
        assert_eq!((a.count("messages"), b.count("messages")), (1, 1));
        b.mark_read(ReadTarget::Id("3"));
        b.mark_read(ReadTarget::All);
        relay(&mut b, &mut a);
        assert_eq!(a.total(), 0);
        a.notification("5", "orders");
        relay(&mut a, &mut b);
        assert_eq!(a.encode(), b.encode());
        assert_eq!(b.count("orders"), 1);
    }

    #[test]
    fn the_next_absolute_count_resynchronizes_tabs_that_drifted_apart() {
        let (mut a, mut b) = (Badges::new(), Badges::new());
        // While b was disconnected it missed two notifications and a's broadcasts.
        a.notification("1", "messages");
        a.notification("2", "messages");
        b.notification("3", "messages");
        drain(&mut a);
        drain(&mut b);
        for tab in [&mut a, &mut b] {
            tab.set_count("messages", 5);
        }
        assert_eq!((a.count("messages"), b.count("messages")), (5, 5));
    }

    #[test]
    fn a_state_from_another_tab_replaces_this_one() {
        let (mut a, mut b) = (Badges::new(), Badges::new());
        a.notification("1", "messages");
        a.set_count("orders", 3);
        b.notification("9", "alerts");
        b.apply_remote(&a.encode());
        assert!(drain(&mut b).0);
        assert_eq!(b.encode(), a.encode());
        b.apply_remote(&a.encode());
        assert!(!drain(&mut b).0, "the same state changes nothing");
    }
}
