//! The client in headless Chromium against a started `overtone serve` (scripts/test starts it
//! and passes its address at compile time as `OVERTONE_TEST_WS_URL`).
#![cfg(target_arch = "wasm32")]

use js_sys::{Function, Promise};
use overtone_client::Connection;
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

const WS_URL: &str = match option_env!("OVERTONE_TEST_WS_URL") {
    Some(url) => url,
    None => "ws://127.0.0.1:8080/app/app-key",
};

/// Resolves with the data of the first `event` on `channel`.
fn next_event(conn: &Connection, channel: &str, event: &str) -> JsFuture {
    let mut register = |resolve: Function, _reject: Function| conn.bind(channel, event, resolve);
    JsFuture::from(Promise::new(&mut register))
}

#[wasm_bindgen_test]
async fn connects_and_subscribes_to_a_public_channel() {
    let conn = Connection::new(WS_URL).expect("socket opens");
    let subscribed = next_event(&conn, "wasm-skeleton", "pusher_internal:subscription_succeeded");
    conn.subscribe("wasm-skeleton");
    subscribed.await.expect("subscription succeeded");
    conn.disconnect();
}
