//! Overtone's Rust API in a Leptos (CSR) app: the members of a presence channel with their
//! online/away status, who is typing, and the user's unread notifications.
//!
//! The `Echo` lives in a context for the whole app (a `LocalStorage` `StoredValue`: it is not
//! `Send`); each component keeps the `Listener`s it
//! registers in a `StoredValue`, so they are dropped (and unbound) when it unmounts.
//!
//! Where to connect comes from the page's query (`?user=1&host=127.0.0.1&port=8080&key=...
//! &auth=http://...`), so that the test in `tests/page/leptos-example.test.mjs` can point it.

use leptos::prelude::*;
use overtone_client::echo::{Echo, Listener, Member, Options, Status};
use serde::Deserialize;

/// What the auth endpoint puts in a presence member's `user_info`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
struct Info {
    name: String,
}

/// A Laravel notification as broadcast to `App.Models.User.{id}`.
#[derive(Debug, Clone, Deserialize)]
struct Notification {
    id: String,
}

fn main() {
    leptos::mount::mount_to_body(App);
}

/// The query parameter `name` of the page's URL.
fn param(name: &str) -> Option<String> {
    let search = web_sys::window()?.location().search().ok()?;
    web_sys::UrlSearchParams::new_with_str(&search)
        .ok()?
        .get(name)
}

#[component]
fn App() -> impl IntoView {
    let user = param("user").unwrap_or_else(|| "1".into());
    let mut options = Options::new(param("key").unwrap_or_else(|| "app-key".into()));
    options.ws_host = param("host");
    options.ws_port = param("port").and_then(|p| p.parse().ok());
    options.force_tls = Some(false);
    if let Some(auth) = param("auth") {
        options.auth_endpoint = auth;
    }
    options.away_after_ms = 500;
    options.badge_scope = Some(format!("user-{user}"));
    // Contexts hold `Send` values; a `LocalStorage` StoredValue is the handle to one that is
    // not, like the `Echo` (wasm in a page is single-threaded).
    provide_context(StoredValue::new_local(Echo::new(options)));
    view! {
        <h1>"Team room"</h1>
        <Room name="team"/>
        <Notifications user=user/>
    }
}

/// The app's `Echo`, from the context `App` provides.
fn use_echo() -> Echo {
    expect_context::<StoredValue<Echo, LocalStorage>>().get_value()
}

#[component]
fn Room(name: &'static str) -> impl IntoView {
    let echo = use_echo();
    let room = echo.join(name).expect("a valid channel name");
    let members = RwSignal::new(Vec::<Member<Info>>::new());
    let statuses = RwSignal::new(Vec::<(String, Status)>::new());
    let typists = RwSignal::new(Vec::<String>::new());
    let listeners: Vec<Listener> = vec![
        room.here(move |list| members.set(list)),
        room.joining(move |member| members.update(|list| list.push(member))),
        room.leaving(move |gone: Member<Info>| {
            members.update(|list| list.retain(|m| m.user_id != gone.user_id))
        }),
        room.on_status_change(move |now| statuses.set(now)),
        room.on_typing_change(move |now| typists.set(now)),
    ];
    let _listeners = StoredValue::new_local(listeners);
    let room = StoredValue::new_local(room);

    let status_of = move |user: &str| {
        let away = statuses.with(|all| all.iter().any(|(u, s)| u == user && *s == Status::Away));
        if away {
            "away"
        } else {
            "online"
        }
    };
    let typing_line = move || {
        let names: Vec<String> = typists
            .get()
            .iter()
            .map(|id| name_of(&members.get(), id))
            .collect();
        match names.as_slice() {
            [] => String::new(),
            [one] => format!("{one} is typing…"),
            many => format!("{} are typing…", many.join(", ")),
        }
    };
    view! {
        <ul id="members">
            {move || {
                members
                    .get()
                    .into_iter()
                    .map(|member| {
                        let id = member.user_id.clone();
                        let status = move || status_of(&id);
                        view! {
                            <li data-user=member.user_id.clone()>
                                <span class="name">{member.info.name.clone()}</span>
                                " "
                                <span class="status">{status}</span>
                            </li>
                        }
                    })
                    .collect_view()
            }}
        </ul>
        <p id="typing">{typing_line}</p>
        <input
            id="message"
            placeholder="Say something"
            on:input=move |_| room.with_value(|r| r.typing())
            on:change=move |_| room.with_value(|r| r.stop_typing())
        />
    }
}

/// A member's display name, or the id while their info is not known.
fn name_of(members: &[Member<Info>], id: &str) -> String {
    members
        .iter()
        .find(|m| m.user_id == id)
        .map_or_else(|| id.to_owned(), |m| m.info.name.clone())
}

#[component]
fn Notifications(user: String) -> impl IntoView {
    let echo = use_echo();
    let badges = echo.badges();
    let unread = RwSignal::new(badges.total());
    let latest = RwSignal::new(String::new());
    let channel = echo
        .private(&format!("App.Models.User.{user}"))
        .expect("a valid channel name");
    let listeners = vec![
        badges.on_change(move |counts| unread.set(counts.iter().map(|(_, n)| n).sum())),
        channel.notification(move |n: Notification| latest.set(n.id)),
    ];
    let _listeners = StoredValue::new_local(listeners);
    view! {
        <p>
            "Unread: " <span id="badge">{move || unread.get()}</span>
            " " <span id="latest">{move || latest.get()}</span>
        </p>
    }
}
