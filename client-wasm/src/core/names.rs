//! Event names as laravel-echo 2.5 writes them: namespace prefixing for `listen`, the name
//! `listenToAll` reports, whispers and the notification event.

use crate::prelude::*;

/// What `notification(cb)` listens for (leading `.`: taken as written).
pub const NOTIFICATION_EVENT: &str =
    ".Illuminate\\Notifications\\Events\\BroadcastNotificationCreated";

/// The wire name of a whisper: `whisper('typing')` sends `client-typing`.
pub fn whisper_event(event: &str) -> String {
    ["client-", event].concat()
}

/// What `listenForWhisper('typing')` listens for: `.client-typing`.
pub fn whisper_listen_name(event: &str) -> String {
    [".client-", event].concat()
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
        if let Some(rest) = event.strip_prefix(['.', '\\']) {
            return rest.to_owned();
        }
        let full = match &self.namespace {
            Some(ns) => [ns, ".", event].concat(),
            None => event.to_owned(),
        };
        full.replace('.', "\\")
    }

    /// The name `listenToAll` callbacks receive for a wire event: relative to the namespace
    /// when inside it (`App\Events\OrderShipped` -> `OrderShipped`), else `.` + the wire name,
    /// so that passing it back to `listen` binds the same event.
    pub fn name_for_all(&self, wire: &str) -> String {
        if let Some(ns) = &self.namespace {
            let prefix = [&ns.replace('.', "\\"), "\\"].concat();
            if let Some(rest) = wire.strip_prefix(prefix.as_str()) {
                return rest.to_owned();
            }
        }
        [".", wire].concat()
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
