//! Overtone's browser SDK. The protocol logic is a sans-IO core in plain Rust, tested natively;
//! everything that touches the browser (WebSocket, timers, events, fetch) lives in [`web`],
//! compiled only for wasm.

#[cfg(target_arch = "wasm32")]
mod web;
#[cfg(target_arch = "wasm32")]
pub use web::Client;
pub mod core;
pub mod features;
pub mod secretbox;
