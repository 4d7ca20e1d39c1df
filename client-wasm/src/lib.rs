//! Overtone's browser SDK. The protocol logic is a sans-IO core in plain Rust, tested natively;
//! everything that touches the browser (WebSocket, timers, window events, storage) lives in
//! [`web`], compiled only for wasm; the auth `fetch` is done by the TypeScript layer over it.
//! [`secretbox`] opens `private-encrypted-*` events.

#[cfg(target_arch = "wasm32")]
mod web;
#[cfg(target_arch = "wasm32")]
pub use web::Client;
pub mod core;
pub mod features;
pub mod secretbox;
