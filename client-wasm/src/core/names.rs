//! Event names as laravel-echo 2.5 writes them: namespace prefixing for `listen`, the name
//! `listenToAll` reports, whispers and the notification event.

use crate::prelude::*;

use super::joined;

/// What `notification(cb)` listens for (leading `.`: taken as written).
pub const NOTIFICATION_EVENT: &str =
    ".Illuminate\\Notifications\\Events\\BroadcastNotificationCreated";

/// The wire name of a whisper: `whisper('typing')` sends `client-typing`.
pub fn whisper_event(event: &str) -> String {
    joined("client-", event)
}

/// What `listenForWhisper('typing')` listens for: `.client-typing`.
pub fn whisper_listen_name(event: &str) -> String {
    joined(".client-", event)
}

/// Turns the names an app passes to `listen` into wire event names, given Echo's `namespace`
/// option (`App.Events` by default, `None` for `namespace: false`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventFormatter {
    namespace: Option<String>,
}

impl Default for EventFormatter {
    fn default() -> Self {
        EventFormatter::new(Some("App.Events".into()))
    }
}

impl EventFormatter {
    /// An empty namespace behaves like none, as in Echo (`if (this.namespace)`).
    pub fn new(namespace: Option<String>) -> EventFormatter {
        EventFormatter {
            namespace: namespace.filter(|ns| !ns.is_empty()),
        }
    }

    /// A leading `.` or `\` means "as written" and is stripped; otherwise the namespace is
    /// prefixed and every `.` becomes `\` (`OrderShipped` -> `App\Events\OrderShipped`).
    pub fn format(&self, event: &str) -> String {
        let mut wire = String::new();
        match event.as_bytes().first() {
            Some(b'.' | b'\\') => wire.push_str(event.get(1..).unwrap_or_default()),
            _ => {
                if let Some(ns) = &self.namespace {
                    push_dots_as_backslashes(&mut wire, ns);
                    wire.push('\\');
                }
                push_dots_as_backslashes(&mut wire, event);
            }
        }
        wire
    }

    /// The name `listenToAll` callbacks receive for a wire event: relative to the namespace
    /// when inside it (`App\Events\OrderShipped` -> `OrderShipped`), else `.` + the wire name,
    /// so that passing it back to `listen` binds the same event.
    pub fn name_for_all(&self, wire: &str) -> String {
        if let Some(ns) = &self.namespace {
            let mut prefix = String::new();
            push_dots_as_backslashes(&mut prefix, ns);
            prefix.push('\\');
            if let Some(rest) = wire.strip_prefix(prefix.as_str()) {
                return rest.to_owned();
            }
        }
        joined(".", wire)
    }
}

/// Appends `name` with every `.` turned into `\` (a PHP class path).
fn push_dots_as_backslashes(out: &mut String, name: &str) {
    for c in name.chars() {
        out.push(if c == '.' { '\\' } else { c });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_table() {
        let echo = EventFormatter::default();
        let custom = EventFormatter::new(Some("Domain.Orders".into()));
        let none = EventFormatter::new(None);
        let cases = [
            (&echo, "OrderShipped", "App\\Events\\OrderShipped"),
            (&echo, "Orders.Shipped", "App\\Events\\Orders\\Shipped"),
            (&echo, ".order.shipped", "order.shipped"),
            (&echo, "\\App\\Other\\Thing", "App\\Other\\Thing"),
            (&echo, ".client-typing", "client-typing"),
            (
                &echo,
                NOTIFICATION_EVENT,
                "Illuminate\\Notifications\\Events\\BroadcastNotificationCreated",
            ),
            (&custom, "Shipped", "Domain\\Orders\\Shipped"),
            (&none, "OrderShipped", "OrderShipped"),
            (&none, "order.shipped", "order\\shipped"),
            (&none, ".order.shipped", "order.shipped"),
        ];
        for (formatter, input, wire) in cases {
            assert_eq!(formatter.format(input), wire, "{input} with {formatter:?}");
        }
        assert_eq!(EventFormatter::new(Some(String::new())), none);
    }

    #[test]
    fn whisper_names() {
        assert_eq!(whisper_event("typing"), "client-typing");
        assert_eq!(
            EventFormatter::default().format(&whisper_listen_name("typing")),
            "client-typing"
        );
    }

    #[test]
    fn listen_to_all_names_round_trip_through_format() {
        let echo = EventFormatter::default();
        let none = EventFormatter::new(None);
        let cases = [
            (&echo, "App\\Events\\OrderShipped", "OrderShipped"),
            (&echo, "App\\Events\\Orders\\Shipped", "Orders\\Shipped"),
            (&echo, "order.shipped", ".order.shipped"),
            (&echo, "client-typing", ".client-typing"),
            (&echo, "App\\EventsX", ".App\\EventsX"),
            (&none, "OrderShipped", ".OrderShipped"),
        ];
        for (formatter, wire, reported) in cases {
            assert_eq!(formatter.name_for_all(wire), reported, "{wire}");
            assert_eq!(formatter.format(reported), wire, "{reported} binds {wire}");
        }
    }
}
