//! Scenario tests of the whole core against a fake clock: the shell's side of the
//! conversation, played by hand.

use super::*;

type Msg = ServerMessage<String>;

const OPEN_WSS: &str =
    "wss://ws.example.com:443/app/app-key?protocol=7&client=js&version=8.6.0&flash=false";

fn client() -> Client<String> {
    Client::new(Config::new("app-key", "ws.example.com"), 1)
}

fn drain(client: &mut Client<String>) -> Vec<Action<String>> {
    std::iter::from_fn(|| client.poll_action()).collect()
}

fn established(socket_id: &str) -> Msg {
    ServerMessage::ConnectionEstablished {
        socket_id: socket_id.into(),
        activity_timeout: Some(30),
    }
}

/// A client connected at `now` with socket id `socket_id`, actions drained.
fn connected(now: u64, socket_id: &str) -> Client<String> {
    let mut c = client();
    c.connect(now);
    c.handle_message(now, established(socket_id));
    drain(&mut c);
    c
}

fn opens(actions: &[Action<String>]) -> usize {
    actions
        .iter()
        .filter(|a| matches!(a, Action::OpenSocket { .. }))
        .count()
}

fn subscribe_frame(channel: &str) -> Action<String> {
    Action::Send(ClientFrame::Subscribe {
        channel: channel.into(),
        auth: None,
        channel_data: None,
        position: None,
    })
}

fn state_change(previous: State, current: State) -> Action<String> {
    Action::StateChanged { previous, current }
}

fn event(channel: &str, name: &str, data: &str) -> Msg {
    ServerMessage::Event {
        channel: channel.into(),
        event: name.into(),
        data: data.into(),
        user_id: None,
        position: None,
    }
}

// ---- connection states and close codes ----

#[test]
fn connect_opens_the_socket_and_establishment_connects() {
    let mut c = client();
    assert_eq!(c.state(), State::Initialized);
    c.connect(0);
    assert_eq!(
        drain(&mut c),
        [
            state_change(State::Initialized, State::Connecting),
            Action::OpenSocket {
                url: OPEN_WSS.into()
            }
        ]
    );
    assert_eq!(c.poll_timeout(), Some(10_000), "connect timeout");
    c.handle_message(5, established("1.2"));
    assert_eq!(
        drain(&mut c),
        [state_change(State::Connecting, State::Connected)]
    );
    assert_eq!(c.socket_id(), Some("1.2"));
    c.connect(6);
    assert!(
        drain(&mut c).is_empty(),
        "connect while connected is a no-op"
    );
}

#[test]
fn refused_codes_fail_and_nothing_reconnects() {
    for code in [4001, 4003, 4004, 4005, 4006, 4007, 4008, 4009, 4301, 4999] {
        let mut c = connected(0, "1.1");
        c.socket_closed(100, code);
        assert_eq!(
            drain(&mut c),
            [state_change(State::Connected, State::Failed)],
            "{code}"
        );
        assert_eq!(c.poll_timeout(), None);
        c.handle_timeout(1_000_000);
        c.set_online(1_000_001, false);
        c.set_online(1_000_002, true);
        c.page_shown(1_000_003);
        c.socket_error(1_000_004);
        assert!(
            drain(&mut c).is_empty(),
            "{code}: no action after a refusal"
        );
        assert_eq!(c.state(), State::Failed);
        c.connect(2_000_000);
        assert_eq!(
            opens(&drain(&mut c)),
            1,
            "the app may still connect explicitly"
        );
    }
}

#[test]
fn retry_codes_reconnect_at_once() {
    for code in [4200, 4201, 4202, 1000, 1006] {
        let mut c = connected(0, "1.1");
        c.socket_closed(60_000, code);
        let actions = drain(&mut c);
        assert_eq!(
            actions[0],
            state_change(State::Connected, State::Reconnecting),
            "{code}"
        );
        assert_eq!(
            actions[1..],
            [Action::OpenSocket {
                url: OPEN_WSS.into()
            }],
            "{code}"
        );
        assert_eq!(c.socket_id(), None);
    }
}

#[test]
fn backoff_codes_wait_at_least_the_base_delay() {
    for code in [4100, 4199, 1002, 1003, 1004] {
        let mut c = connected(0, "1.1");
        c.socket_closed(60_000, code);
        assert_eq!(
            drain(&mut c),
            [state_change(State::Connected, State::Reconnecting)],
            "{code}"
        );
        let at = c.poll_timeout().expect("a retry is scheduled");
        assert!(
            (61_000..=61_000).contains(&at),
            "{code}: first 41xx retry after exactly base: {at}"
        );
        c.handle_timeout(at - 1);
        assert!(drain(&mut c).is_empty());
        c.handle_timeout(at);
        assert_eq!(opens(&drain(&mut c)), 1, "{code}");
    }
}

#[test]
fn close_4000_switches_to_tls() {
    let mut config = Config::new("app-key", "ws.example.com");
    config.force_tls = false;
    config.ws_port = 6001;
    let mut c: Client<String> = Client::new(config, 9);
    c.connect(0);
    let plain =
        "ws://ws.example.com:6001/app/app-key?protocol=7&client=js&version=8.6.0&flash=false";
    assert_eq!(drain(&mut c)[1], Action::OpenSocket { url: plain.into() });
    c.socket_closed(10, 4000);
    assert_eq!(
        drain(&mut c)[1],
        Action::OpenSocket {
            url: OPEN_WSS.into()
        }
    );
}

#[test]
fn unanswered_attempts_time_out_back_off_and_become_unavailable() {
    let mut c = client();
    c.connect(0);
    drain(&mut c);
    let mut now = 0;
    let mut states = Vec::new();
    for _ in 0..4 {
        now = c.poll_timeout().unwrap(); // connect timeout
        c.handle_timeout(now);
        let actions = drain(&mut c);
        assert_eq!(actions[0], Action::CloseSocket);
        states.extend(actions.iter().filter_map(|a| match a {
            Action::StateChanged { current, .. } => Some(*current),
            _ => None,
        }));
        let retry = c.poll_timeout().unwrap();
        assert!(retry >= now + 1_000, "a timed-out attempt backs off");
        c.handle_timeout(retry);
        assert_eq!(opens(&drain(&mut c)), 1);
    }
    assert_eq!(states, [State::Reconnecting, State::Unavailable]);
    c.handle_message(now + 60_000, established("9.9"));
    assert_eq!(
        drain(&mut c),
        [state_change(State::Unavailable, State::Connected)]
    );
}

/// Fails `n` attempts in a row by closing each with 1006 before it is established; returns
/// each attempt's delay.
fn failure_delays(c: &mut Client<String>, n: usize, mut now: u64) -> Vec<u64> {
    (0..n)
        .map(|_| {
            c.socket_closed(now, 1006);
            let delay = match opens(&drain(c)) {
                1 => 0,
                _ => c.poll_timeout().unwrap() - now,
            };
            now += delay;
            c.handle_timeout(now);
            drain(c);
            delay
        })
        .collect()
}

#[test]
fn backoff_delays_are_bounded_jittered_and_capped() {
    let mut all_at_fifth = Vec::new();
    for seed in 1..=20 {
        let mut c: Client<String> = Client::new(Config::new("k", "h"), seed);
        c.connect(0);
        drain(&mut c);
        let delays = failure_delays(&mut c, 12, 0);
        assert_eq!(delays[0], 0, "the first failure retries at once");
        for (n, delay) in delays.iter().enumerate().skip(1) {
            let bound = (1_000u64 << n).min(30_000);
            assert!(
                *delay <= bound,
                "seed {seed}, failure {n}: {delay} > {bound}"
            );
        }
        all_at_fifth.push(delays[5]);
    }
    assert!(
        all_at_fifth.iter().any(|d| *d != all_at_fifth[0]),
        "jittered: {all_at_fifth:?}"
    );
}

#[test]
fn a_stable_connection_resets_the_backoff_and_a_flapping_one_does_not() {
    for (uptime, immediate) in [(10_000, true), (2_000, false)] {
        let mut c = client();
        c.connect(0);
        drain(&mut c);
        failure_delays(&mut c, 6, 0);
        let now = 1_000_000;
        c.handle_message(now, established("2.2"));
        drain(&mut c);
        c.socket_closed(now + uptime, 1006);
        assert_eq!(opens(&drain(&mut c)) == 1, immediate, "uptime {uptime}");
    }
}

#[test]
fn disconnect_closes_and_stays_closed() {
    let mut c = connected(0, "1.1");
    c.disconnect();
    assert_eq!(
        drain(&mut c),
        [
            Action::CloseSocket,
            state_change(State::Connected, State::Disconnected)
        ]
    );
    assert_eq!(c.poll_timeout(), None);
    c.socket_closed(5, 1000);
    c.page_shown(6);
    c.set_online(7, true);
    assert!(drain(&mut c).is_empty());
    assert_eq!(c.state(), State::Disconnected);
}

// ---- keepalive, visibility, online ----

#[test]
fn silence_sends_a_ping_and_a_missing_pong_reconnects() {
    let mut c = connected(0, "1.1");
    assert_eq!(
        c.poll_timeout(),
        Some(30_000),
        "min(120 s client, 30 s server)"
    );
    c.handle_message(20_000, event("x", "y", "z"));
    assert_eq!(c.poll_timeout(), Some(50_000), "any frame is activity");
    c.handle_timeout(50_000);
    assert_eq!(drain(&mut c), [Action::Send(ClientFrame::Ping)]);
    assert_eq!(c.poll_timeout(), Some(80_000), "pong timeout");
    c.handle_message(50_100, ServerMessage::Pong);
    assert_eq!(c.poll_timeout(), Some(80_100));
    c.handle_timeout(80_100);
    assert_eq!(drain(&mut c), [Action::Send(ClientFrame::Ping)]);
    c.handle_timeout(110_100);
    let actions = drain(&mut c);
    assert_eq!(
        actions[..2],
        [
            Action::CloseSocket,
            state_change(State::Connected, State::Reconnecting)
        ]
    );
    assert_eq!(opens(&actions), 1);
}

#[test]
fn server_pings_are_answered() {
    let mut c = connected(0, "1.1");
    c.handle_message(1, ServerMessage::Ping);
    assert_eq!(drain(&mut c), [Action::Send(ClientFrame::Pong)]);
}

#[test]
fn page_shown_checks_liveness_at_once() {
    let mut c = connected(0, "1.1");
    c.page_shown(1_000);
    assert_eq!(drain(&mut c), [Action::Send(ClientFrame::Ping)]);
    assert_eq!(c.poll_timeout(), Some(6_000), "a quick pong is expected");
    c.handle_timeout(6_000);
    let actions = drain(&mut c);
    assert_eq!(actions[0], Action::CloseSocket);
    assert_eq!(opens(&actions), 1);

    let mut alive = connected(0, "1.1");
    alive.page_shown(1_000);
    alive.handle_message(1_200, ServerMessage::Pong);
    drain(&mut alive);
    alive.handle_timeout(6_000);
    assert!(drain(&mut alive).is_empty());
    assert_eq!(alive.state(), State::Connected);
}

#[test]
fn page_shown_while_backing_off_retries_now() {
    let mut c = connected(0, "1.1");
    c.socket_closed(100, 4100);
    drain(&mut c);
    assert!(c.poll_timeout().is_some());
    c.page_shown(200);
    assert_eq!(opens(&drain(&mut c)), 1);
}

#[test]
fn offline_pauses_retries_and_online_resumes_them() {
    let mut c = connected(0, "1.1");
    c.set_online(50, false);
    assert_eq!(
        drain(&mut c),
        [Action::Send(ClientFrame::Ping)],
        "liveness check"
    );
    c.socket_closed(100, 1006);
    assert_eq!(
        drain(&mut c),
        [state_change(State::Connected, State::Unavailable)]
    );
    assert_eq!(c.poll_timeout(), None, "no retries while offline");
    c.set_online(5_000, true);
    let actions = drain(&mut c);
    assert_eq!(
        actions[0],
        state_change(State::Unavailable, State::Reconnecting)
    );
    assert_eq!(opens(&actions), 1);

    let mut waiting = connected(0, "1.1");
    waiting.socket_closed(100, 4100);
    drain(&mut waiting);
    waiting.set_online(200, false);
    assert_eq!(
        drain(&mut waiting),
        [state_change(State::Reconnecting, State::Unavailable)]
    );
    assert_eq!(waiting.poll_timeout(), None);

    let mut never = client();
    never.set_online(0, false);
    never.connect(1);
    assert_eq!(
        drain(&mut never),
        [state_change(State::Initialized, State::Unavailable)]
    );
    never.set_online(2, true);
    assert_eq!(opens(&drain(&mut never)), 1);
}

// ---- channels ----

fn auth(user_id: Option<&str>) -> ChannelAuth {
    ChannelAuth {
        auth: "app-key:sig".into(),
        channel_data: user_id.map(|id| format!("{{\"user_id\":\"{id}\"}}")),
        user_id: user_id.map(Into::into),
    }
}

fn authorize(channel: &str, socket_id: &str) -> Action<String> {
    Action::Authorize {
        channel: channel.into(),
        socket_id: socket_id.into(),
    }
}

#[test]
fn every_reconnect_resubscribes_everything_with_fresh_auth() {
    let mut c = client();
    for name in ["chat", "private-orders", "presence-room", "private-gone"] {
        c.subscribe(name).unwrap();
    }
    c.leave_channel("private-gone");
    assert!(
        drain(&mut c).is_empty(),
        "nothing is sent before connecting"
    );
    c.connect(0);
    c.handle_message(1, established("1.1"));
    let first = drain(&mut c);
    assert_eq!(
        first[3..],
        [
            subscribe_frame("chat"),
            authorize("private-orders", "1.1"),
            authorize("presence-room", "1.1")
        ]
    );
    c.authorized("private-orders", "1.1", auth(None));
    assert_eq!(
        drain(&mut c),
        [Action::Send(ClientFrame::Subscribe {
            channel: "private-orders".into(),
            auth: Some("app-key:sig".into()),
            channel_data: None,
            position: None,
        })]
    );

    c.socket_closed(60_000, 4200);
    drain(&mut c);
    c.authorized("presence-room", "1.1", auth(Some("7")));
    assert!(
        drain(&mut c).is_empty(),
        "a reply for the old socket is never used"
    );
    c.handle_message(60_001, established("2.2"));
    assert_eq!(
        drain(&mut c)[1..],
        [
            subscribe_frame("chat"),
            authorize("private-orders", "2.2"),
            authorize("presence-room", "2.2")
        ]
    );
    c.authorized("presence-room", "1.1", auth(Some("7")));
    assert!(drain(&mut c).is_empty(), "stale after the reconnect too");
    c.authorized("presence-room", "2.2", auth(Some("7")));
    assert_eq!(drain(&mut c).len(), 1);
}

#[test]
fn subscribing_while_connected_and_leaving() {
    let mut c = connected(0, "1.1");
    assert_eq!(
        c.subscribe("bad name"),
        Err(Error::InvalidChannelName(NameError::InvalidCharacter))
    );
    assert_eq!(c.subscribe("#server-to-user-1"), Err(Error::SignInRequired));
    c.subscribe("chat").unwrap();
    c.subscribe("chat").unwrap();
    assert_eq!(
        drain(&mut c),
        [subscribe_frame("chat")],
        "subscribing twice sends once"
    );
    let id = c.listen("chat", "OrderShipped").unwrap();
    c.subscribe("presence-chat").unwrap();
    drain(&mut c);
    assert_eq!(c.leave("chat"), [id]);
    assert_eq!(
        drain(&mut c),
        [Action::Send(ClientFrame::Unsubscribe {
            channel: "chat".into()
        })],
        "presence-chat was still authorizing: nothing to unsubscribe"
    );
    c.authorized("presence-chat", "1.1", auth(Some("1")));
    assert!(
        drain(&mut c).is_empty(),
        "a late reply for a left channel is dropped"
    );
    assert_eq!(c.listen("chat", "OrderShipped"), Err(Error::NotSubscribed));
}

#[test]
fn auth_failures_and_subscription_errors_reach_error_listeners() {
    let mut c = connected(0, "1.1");
    c.subscribe("private-orders").unwrap();
    let on_error = c.bind("private-orders", Binding::Error).unwrap();
    drain(&mut c);
    c.authorization_failed("private-orders", "1.1", Some(403), "Forbidden".into());
    assert_eq!(
        drain(&mut c),
        [Action::Dispatch {
            listeners: vec![on_error],
            payload: Payload::SubscriptionError {
                status: Some(403),
                error: "Forbidden".into()
            },
        }]
    );
    c.handle_message(
        1,
        ServerMessage::SubscriptionError {
            channel: "private-orders".into(),
            status: Some(401),
            error: "Unauthorized".into(),
        },
    );
    assert!(matches!(
        &drain(&mut c)[..],
        [Action::Dispatch {
            payload: Payload::SubscriptionError {
                status: Some(401),
                ..
            },
            ..
        }]
    ));
}

#[test]
fn events_reach_listeners_by_formatted_name_and_listen_to_all() {
    let mut c = connected(0, "1.1");
    c.subscribe("orders").unwrap();
    let shipped = c.listen("orders", "OrderShipped").unwrap();
    let dotted = c.listen("orders", ".order.placed").unwrap();
    let all = c.bind("orders", Binding::AllEvents).unwrap();
    let subscribed = c.bind("orders", Binding::Subscribed).unwrap();
    drain(&mut c);

    c.handle_message(
        1,
        ServerMessage::SubscriptionSucceeded {
            channel: "orders".into(),
            presence: None,
            position: None,
            recovered: None,
        },
    );
    assert_eq!(
        drain(&mut c),
        [Action::Dispatch {
            listeners: vec![subscribed],
            payload: Payload::Subscribed
        }]
    );

    c.handle_message(2, event("orders", "App\\Events\\OrderShipped", "{}"));
    assert_eq!(
        drain(&mut c),
        [
            Action::Dispatch {
                listeners: vec![shipped],
                payload: Payload::Event {
                    data: "{}".into(),
                    user_id: None
                }
            },
            Action::Dispatch {
                listeners: vec![all],
                payload: Payload::NamedEvent {
                    event: "OrderShipped".into(),
                    data: "{}".into()
                },
            },
        ]
    );
    c.handle_message(3, event("orders", "order.placed", "1"));
    assert_eq!(
        drain(&mut c)[0],
        Action::Dispatch {
            listeners: vec![dotted],
            payload: Payload::Event {
                data: "1".into(),
                user_id: None
            },
        }
    );
    c.handle_message(4, event("orders", "pusher:cache_miss", ""));
    assert!(
        drain(&mut c).is_empty(),
        "pusher:* events do not reach listenToAll"
    );
    c.handle_message(5, event("elsewhere", "App\\Events\\OrderShipped", "{}"));
    assert!(
        drain(&mut c).is_empty(),
        "events of unknown channels are dropped"
    );

    assert_eq!(
        c.listeners(
            "orders",
            &Binding::Event("App\\Events\\OrderShipped".into())
        ),
        [shipped]
    );
    assert_eq!(c.unbind_all("orders", &Binding::AllEvents), [all]);
    assert!(c.unbind(shipped));
    assert!(!c.unbind(shipped));
    c.handle_message(6, event("orders", "App\\Events\\OrderShipped", "{}"));
    assert!(drain(&mut c).is_empty());
}

#[test]
fn whispers_only_on_subscribed_private_and_presence_channels() {
    let mut c = connected(0, "1.1");
    c.subscribe("chat").unwrap();
    c.subscribe("private-encrypted-secret").unwrap();
    c.subscribe("private-chat").unwrap();
    assert_eq!(
        c.whisper("chat", "typing", "{}".into()),
        Err(Error::ClientEventsNotAllowed)
    );
    assert_eq!(
        c.whisper("private-encrypted-secret", "typing", "{}".into()),
        Err(Error::ClientEventsNotAllowed)
    );
    assert_eq!(
        c.whisper("private-chat", "typing", "{}".into()),
        Err(Error::NotSubscribed)
    );
    assert_eq!(
        c.whisper("private-none", "typing", "{}".into()),
        Err(Error::NotSubscribed)
    );
    c.authorized("private-chat", "1.1", auth(None));
    c.handle_message(
        1,
        ServerMessage::SubscriptionSucceeded {
            channel: "private-chat".into(),
            presence: None,
            position: None,
            recovered: None,
        },
    );
    drain(&mut c);
    let whisper_listener = c
        .listen("private-chat", &whisper_listen_name("typing"))
        .unwrap();
    c.whisper("private-chat", "typing", "{\"a\":1}".into())
        .unwrap();
    assert_eq!(
        drain(&mut c),
        [Action::Send(ClientFrame::ClientEvent {
            channel: "private-chat".into(),
            event: "client-typing".into(),
            data: "{\"a\":1}".into(),
        })]
    );
    c.handle_message(2, event("private-chat", "client-typing", "{}"));
    assert!(
        matches!(&drain(&mut c)[0], Action::Dispatch { listeners, .. } if *listeners == [whisper_listener])
    );
}

// ---- presence ----

fn member(user_id: &str, info: &str) -> Member<String> {
    Member {
        user_id: user_id.into(),
        info: info.into(),
    }
}

#[test]
fn presence_members_are_one_per_user_and_leave_only_when_the_server_says() {
    let mut c = connected(0, "1.1");
    c.subscribe("presence-room").unwrap();
    let here = c.bind("presence-room", Binding::Here).unwrap();
    let joining = c.bind("presence-room", Binding::Joining).unwrap();
    let leaving = c.bind("presence-room", Binding::Leaving).unwrap();
    c.authorized("presence-room", "1.1", auth(Some("1")));
    drain(&mut c);

    let list = vec![
        ("1".into(), "ann".into()),
        ("2".into(), "bob".into()),
        ("1".into(), "ann".into()),
    ];
    c.handle_message(
        1,
        ServerMessage::SubscriptionSucceeded {
            channel: "presence-room".into(),
            presence: Some(list),
            position: None,
            recovered: None,
        },
    );
    assert_eq!(
        drain(&mut c),
        [Action::Dispatch {
            listeners: vec![here],
            payload: Payload::Members(vec![member("1", "ann"), member("2", "bob")])
        }]
    );
    assert_eq!(c.me("presence-room"), Some(&member("1", "ann")));

    let added = |user: &str, info: &str| ServerMessage::MemberAdded {
        channel: "presence-room".into(),
        user_id: user.into(),
        info: info.into(),
    };
    let removed = |user: &str| ServerMessage::MemberRemoved {
        channel: "presence-room".into(),
        user_id: user.into(),
    };

    c.handle_message(2, added("3", "cat"));
    assert_eq!(
        drain(&mut c),
        [Action::Dispatch {
            listeners: vec![joining],
            payload: Payload::Member(member("3", "cat"))
        }]
    );
    c.handle_message(3, added("3", "cat, second tab"));
    assert!(
        drain(&mut c).is_empty(),
        "the same user again is not a new member"
    );
    assert_eq!(c.members("presence-room").len(), 3);
    c.handle_message(4, removed("3"));
    assert_eq!(
        drain(&mut c),
        [Action::Dispatch {
            listeners: vec![leaving],
            payload: Payload::Member(member("3", "cat, second tab"))
        }]
    );
    c.handle_message(5, removed("3"));
    assert!(
        drain(&mut c).is_empty(),
        "removing an absent member says nothing"
    );
    assert_eq!(
        c.members("presence-room"),
        [member("1", "ann"), member("2", "bob")]
    );

    c.socket_closed(6, 1006);
    assert!(
        c.members("presence-room").is_empty(),
        "the list belongs to the socket"
    );
    assert!(
        drain(&mut c)
            .iter()
            .all(|a| !matches!(a, Action::Dispatch { .. })),
        "no leaving on a drop"
    );
}

// ---- user sign-in ----

#[test]
fn signin_on_every_socket_then_the_user_channel() {
    let mut c = client();
    let notified = c.bind_user(Binding::Event("notify".into()));
    c.signin();
    assert!(drain(&mut c).is_empty());
    c.connect(0);
    c.handle_message(1, established("1.1"));
    assert_eq!(
        drain(&mut c)[3..],
        [Action::AuthorizeUser {
            socket_id: "1.1".into()
        }]
    );
    c.user_authorized("1.1", "app-key:sig".into(), "{\"id\":\"7\"}".into());
    assert_eq!(
        drain(&mut c),
        [Action::Send(ClientFrame::Signin {
            auth: "app-key:sig".into(),
            user_data: "{\"id\":\"7\"}".into()
        })]
    );
    c.handle_message(
        2,
        ServerMessage::SigninSuccess {
            user_id: "7".into(),
        },
    );
    assert_eq!(
        drain(&mut c),
        [
            subscribe_frame("#server-to-user-7"),
            Action::SignedIn {
                user_id: "7".into()
            }
        ]
    );
    assert_eq!(c.user_id(), Some("7"));
    c.handle_message(3, event("#server-to-user-7", "notify", "hi"));
    assert_eq!(
        drain(&mut c),
        [Action::Dispatch {
            listeners: vec![notified],
            payload: Payload::Event {
                data: "hi".into(),
                user_id: None
            }
        }]
    );

    c.socket_closed(60_000, 4200);
    c.handle_message(60_001, established("2.2"));
    let actions = drain(&mut c);
    assert!(
        !actions.contains(&subscribe_frame("#server-to-user-7")),
        "only after signing in again"
    );
    assert_eq!(
        actions.last(),
        Some(&Action::AuthorizeUser {
            socket_id: "2.2".into()
        })
    );
    c.user_authorized("1.1", "old".into(), "{}".into());
    assert!(
        drain(&mut c).is_empty(),
        "a sign-in for the old socket is dropped"
    );
}

#[test]
fn server_errors_are_surfaced() {
    let mut c = client();
    c.connect(0);
    drain(&mut c);
    c.handle_message(
        1,
        ServerMessage::Error {
            code: Some(4001),
            message: "App not found".into(),
        },
    );
    assert_eq!(
        drain(&mut c),
        [Action::ServerError {
            code: Some(4001),
            message: "App not found".into()
        }]
    );
}

#[test]
fn connect_after_disconnect_resubscribes() {
    let mut c = connected(0, "1.1");
    c.subscribe("chat").unwrap();
    c.disconnect();
    drain(&mut c);
    c.connect(100);
    assert_eq!(
        drain(&mut c)[0],
        state_change(State::Disconnected, State::Connecting)
    );
    c.handle_message(200, established("3.3"));
    assert_eq!(drain(&mut c)[1..], [subscribe_frame("chat")]);
}

#[test]
fn decimals_match_to_string() {
    for n in [0, 7, 10, 4000, u64::from(u32::MAX), u64::MAX] {
        let mut text = String::from("x");
        push_decimal(&mut text, n);
        assert_eq!(text, ["x", &n.to_string()].concat());
    }
}

// ---- history and resume (issue #11) ----

fn positioned(channel: &str, data: &str, position: &str) -> Msg {
    ServerMessage::Event {
        channel: channel.into(),
        event: "App\\Events\\Tick".into(),
        data: data.into(),
        user_id: None,
        position: Some(position.into()),
    }
}

fn succeeded(channel: &str, position: Option<&str>, recovered: Option<bool>) -> Msg {
    ServerMessage::SubscriptionSucceeded {
        channel: channel.into(),
        presence: None,
        position: position.map(Into::into),
        recovered,
    }
}

fn subscribe_at(channel: &str, position: &str) -> Action<String> {
    Action::Send(ClientFrame::Subscribe {
        channel: channel.into(),
        auth: None,
        channel_data: None,
        position: Some(position.into()),
    })
}

/// The data of every event dispatched to `listener`, in order.
fn delivered(actions: &[Action<String>], listener: ListenerId) -> Vec<String> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Dispatch {
                listeners,
                payload: Payload::Event { data, .. },
            } if listeners.contains(&listener) => Some(data.clone()),
            _ => None,
        })
        .collect()
}

/// Drops the socket at `now` and brings up a new one with `socket_id`; returns the actions.
fn reconnect(c: &mut Client<String>, now: u64, socket_id: &str) -> Vec<Action<String>> {
    c.socket_closed(now, 4200);
    drain(c);
    c.handle_message(now + 1, established(socket_id));
    drain(c)
}

#[test]
fn the_last_position_is_sent_on_every_resubscribe_and_replayed_events_are_delivered() {
    let mut c = connected(0, "1.1");
    c.subscribe("chat").unwrap();
    let tick = c.listen("chat", "Tick").unwrap();
    assert_eq!(
        drain(&mut c),
        [subscribe_frame("chat")],
        "nothing known yet"
    );
    c.handle_message(1, succeeded("chat", Some("ep1:0"), None));
    c.handle_message(2, positioned("chat", "a", "ep1:1"));
    c.handle_message(3, positioned("chat", "b", "ep1:2"));
    assert_eq!(delivered(&drain(&mut c), tick), ["a", "b"]);

    let actions = reconnect(&mut c, 60_000, "2.2");
    assert_eq!(actions[1..], [subscribe_at("chat", "ep1:2")]);
    // The newest position comes first, then the missed events, then live ones.
    c.handle_message(60_002, succeeded("chat", Some("ep1:4"), Some(true)));
    c.handle_message(60_003, positioned("chat", "c", "ep1:3"));
    c.handle_message(60_004, positioned("chat", "d", "ep1:4"));
    c.handle_message(60_005, positioned("chat", "d", "ep1:4"));
    c.handle_message(60_006, positioned("chat", "e", "ep1:5"));
    assert_eq!(delivered(&drain(&mut c), tick), ["c", "d", "e"]);

    // A second drop asks from where the first recovery left off.
    let actions = reconnect(&mut c, 120_000, "3.3");
    assert_eq!(actions[1..], [subscribe_at("chat", "ep1:5")]);
}

#[test]
fn duplicates_are_dropped_for_every_listener_and_other_epochs_are_adopted() {
    let mut c = connected(0, "1.1");
    c.subscribe("chat").unwrap();
    let tick = c.listen("chat", "Tick").unwrap();
    let all = c.bind("chat", Binding::AllEvents).unwrap();
    c.handle_message(1, succeeded("chat", Some("ep1:10"), None));
    drain(&mut c);
    for (data, position) in [
        ("old", "ep1:9"),
        ("same", "ep1:10"),
        ("11", "ep1:11"),
        ("11 again", "ep1:11"),
        ("13", "ep1:13"),
        ("12 late", "ep1:12"),
        // History was lost (server restart): a new epoch starts over.
        ("new 1", "ep2:1"),
        ("new 2", "ep2:2"),
        // A malformed position counts as none: delivered, and the position stays.
        ("bad", "ep2:x"),
        ("new 2 again", "ep2:2"),
    ] {
        c.handle_message(2, positioned("chat", data, position));
    }
    let actions = drain(&mut c);
    let expected = ["11", "13", "new 1", "new 2", "bad"];
    assert_eq!(delivered(&actions, tick), expected);
    let named: Vec<_> = actions
        .iter()
        .filter_map(|a| match a {
            Action::Dispatch {
                payload: Payload::NamedEvent { data, .. },
                listeners,
            } if *listeners == [all] => Some(data.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(named, expected, "listenToAll sees no duplicate either");
    // Client events have no position and never move it.
    c.handle_message(3, event("chat", "client-x", "w"));
    drain(&mut c);
    assert_eq!(
        reconnect(&mut c, 60_000, "2.2")[1..],
        [subscribe_at("chat", "ep2:2")]
    );
}

#[test]
fn a_failed_recovery_is_told_before_subscribed_and_the_new_position_is_adopted() {
    let mut c = connected(0, "1.1");
    c.subscribe("chat").unwrap();
    let failed = c.listen("chat", ".pusher:recovery_failed").unwrap();
    let subscribed = c.bind("chat", Binding::Subscribed).unwrap();
    let tick = c.listen("chat", "Tick").unwrap();
    drain(&mut c);
    c.handle_message(1, succeeded("chat", Some("ep1:0"), None));
    assert_eq!(
        drain(&mut c),
        [Action::Dispatch {
            listeners: vec![subscribed],
            payload: Payload::Subscribed
        }],
        "a first subscribe recovers nothing, so nothing failed"
    );
    c.handle_message(2, positioned("chat", "a", "ep1:1"));
    drain(&mut c);

    assert_eq!(
        reconnect(&mut c, 60_000, "2.2")[1..],
        [subscribe_at("chat", "ep1:1")]
    );
    c.handle_message(60_002, succeeded("chat", Some("ep1:900"), Some(false)));
    assert_eq!(
        drain(&mut c),
        [
            Action::Dispatch {
                listeners: vec![failed],
                payload: Payload::Subscribed
            },
            Action::Dispatch {
                listeners: vec![subscribed],
                payload: Payload::Subscribed
            }
        ]
    );
    c.handle_message(60_003, positioned("chat", "old", "ep1:900"));
    c.handle_message(60_004, positioned("chat", "live", "ep1:901"));
    assert_eq!(delivered(&drain(&mut c), tick), ["live"]);

    // The server's history is gone altogether (e.g. turned off): no position is kept.
    reconnect(&mut c, 120_000, "3.3");
    c.handle_message(120_002, succeeded("chat", None, Some(false)));
    drain(&mut c);
    assert_eq!(
        reconnect(&mut c, 180_000, "4.4")[1..],
        [subscribe_frame("chat")]
    );
}

#[test]
fn private_channels_send_the_position_with_their_auth() {
    let mut c = connected(0, "1.1");
    c.subscribe("private-orders").unwrap();
    c.authorized("private-orders", "1.1", auth(None));
    c.handle_message(1, succeeded("private-orders", Some("ep1:0"), None));
    c.handle_message(2, positioned("private-orders", "a", "ep1:7"));
    let actions = reconnect(&mut c, 60_000, "2.2");
    assert_eq!(actions[1..], [authorize("private-orders", "2.2")]);
    c.authorized("private-orders", "2.2", auth(None));
    assert_eq!(
        drain(&mut c),
        [Action::Send(ClientFrame::Subscribe {
            channel: "private-orders".into(),
            auth: Some("app-key:sig".into()),
            channel_data: None,
            position: Some("ep1:7".into()),
        })]
    );
}

#[test]
fn leaving_forgets_the_position() {
    let mut c = connected(0, "1.1");
    c.subscribe("chat").unwrap();
    c.handle_message(1, succeeded("chat", Some("ep1:3"), None));
    c.leave_channel("chat");
    drain(&mut c);
    c.subscribe("chat").unwrap();
    assert_eq!(drain(&mut c), [subscribe_frame("chat")]);
}

#[test]
fn without_the_extension_nothing_changes() {
    let mut c = connected(0, "1.1");
    c.subscribe("chat").unwrap();
    let tick = c.listen("chat", "Tick").unwrap();
    let failed = c.listen("chat", ".pusher:recovery_failed").unwrap();
    c.handle_message(1, succeeded("chat", None, None));
    let same = || event("chat", "App\\Events\\Tick", "same");
    c.handle_message(2, same());
    c.handle_message(3, same());
    let actions = drain(&mut c);
    assert_eq!(
        delivered(&actions, tick),
        ["same", "same"],
        "no deduplication"
    );
    assert_eq!(delivered(&actions, failed), Vec::<String>::new());
    assert_eq!(
        reconnect(&mut c, 60_000, "2.2")[1..],
        [subscribe_frame("chat")]
    );
}

/// A model server with history (`keep` events) and a client whose socket drops at random,
/// losing what was in flight, while the server also resends at random: the app sees every
/// event exactly once and in order, or hears that recovery failed.
#[test]
fn random_drops_and_resends_lose_nothing_and_duplicate_nothing() {
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut random = move |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    let keep = 50;
    let mut c = connected(0, "1.1");
    c.subscribe("feed").unwrap();
    let tick = c.listen("feed", "Tick").unwrap();
    let failed = c.listen("feed", ".pusher:recovery_failed").unwrap();
    c.handle_message(1, succeeded("feed", Some("ep:0"), None));
    drain(&mut c);
    let collect = |actions: Vec<Action<String>>, seen: &mut Vec<String>, failures: &mut usize| {
        for action in actions {
            match action {
                Action::Dispatch {
                    listeners,
                    payload: Payload::Event { data, .. },
                } if listeners == [tick] => seen.push(data),
                Action::Dispatch { listeners, .. } if listeners == [failed] => *failures += 1,
                _ => {}
            }
        }
    };
    let (mut published, mut seen, mut failures) = (0u64, Vec::new(), 0);
    let (mut connected_now, mut opened) = (true, false);
    let mut now = 10;
    while published < 10_000 {
        now += 1;
        published += 1;
        let position = ["ep:", &published.to_string()].concat();
        if connected_now {
            c.handle_message(now, positioned("feed", &published.to_string(), &position));
            if random(10) == 0 {
                // A resend of something recent (replay and live overlapping).
                let back = published - random(published.min(5));
                let again = ["ep:", &back.to_string()].concat();
                c.handle_message(now, positioned("feed", &back.to_string(), &again));
            }
            if random(200) == 0 {
                connected_now = false;
                let mut actions = drain(&mut c);
                c.socket_closed(now, 4200);
                let closing = drain(&mut c);
                opened = opens(&closing) == 1;
                actions.extend(closing);
                collect(actions, &mut seen, &mut failures);
            }
        } else if random(30) == 0 {
            // Back (after the backoff): the server replays from the client's position if
            // its history reaches back.
            if !opened {
                now = c.poll_timeout().unwrap();
                c.handle_timeout(now);
                assert_eq!(opens(&drain(&mut c)), 1);
            }
            c.handle_message(now, established("2.2"));
            let actions = drain(&mut c);
            let Some(Action::Send(ClientFrame::Subscribe {
                position: Some(from),
                ..
            })) = actions.last()
            else {
                panic!("no resubscribe with a position: {actions:?}");
            };
            let from: u64 = from["ep:".len()..].parse().unwrap();
            let newest = ["ep:", &published.to_string()].concat();
            if published - from <= keep {
                c.handle_message(now, succeeded("feed", Some(&newest), Some(true)));
                for n in from + 1..=published {
                    let at = ["ep:", &n.to_string()].concat();
                    c.handle_message(now, positioned("feed", &n.to_string(), &at));
                }
            } else {
                c.handle_message(now, succeeded("feed", Some(&newest), Some(false)));
                seen.push(String::from("failed"));
            }
            connected_now = true;
        }
        collect(drain(&mut c), &mut seen, &mut failures);
    }
    // Every event once and in order, except the stretches a failure announced as lost.
    let mut expected = 0u64;
    for entry in &seen {
        if entry == "failed" {
            continue;
        }
        let n: u64 = entry.parse().unwrap();
        assert!(
            n > expected,
            "duplicate or out of order: {n} after {expected}"
        );
        let gap_announced = seen
            .iter()
            .position(|e| e == entry)
            .is_some_and(|i| i > 0 && seen[i - 1] == "failed");
        assert!(
            n == expected + 1 || gap_announced,
            "lost {}..{n}",
            expected + 1
        );
        expected = n;
    }
    assert_eq!(
        failures,
        seen.iter().filter(|e| *e == "failed").count(),
        "the app heard every failure"
    );
    assert!(
        failures > 0 && failures < 20,
        "both paths ran: {failures} failures"
    );
}
