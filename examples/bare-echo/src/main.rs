//! The smallest app on Overtone's Rust API, for `scripts/rust-size.sh`: one Echo at the page's
//! host, one channel, one typed listener.

use overtone_client::echo::{Echo, Options};
use serde::Deserialize;

#[derive(Deserialize)]
struct OrderShipped {
    id: u64,
}

fn main() {
    let echo = Echo::new(Options::new("app-key"));
    let orders = echo.channel("orders").expect("a valid channel name");
    orders
        .listen("OrderShipped", |order: OrderShipped| {
            web_sys::console::log_1(&order.id.into());
        })
        .forget();
    // The page's client for its whole life: `main` returns, the app goes on.
    std::mem::forget(echo);
}
