//! Overtone's browser SDK. The protocol logic is a sans-IO core in plain Rust, tested natively;
//! everything that touches the browser (WebSocket, timers, window events, storage) lives in
//! [`web`], compiled only for wasm; the auth `fetch` is done by the TypeScript layer over it.
//! [`secretbox`] opens `private-encrypted-*` events.
//!
//! With the `no-std` feature (the npm package's build) the crate is `no_std`: the code uses
//! `alloc` and `core` paths so that it builds both ways.

#![cfg_attr(feature = "no-std", no_std)]

extern crate alloc;

/// The part of std's prelude the crate uses, from `alloc`, for the `no-std` build.
mod prelude {
    pub(crate) use alloc::borrow::ToOwned;
    pub(crate) use alloc::string::String;
    pub(crate) use alloc::vec::Vec;
}

/// Without std, panics (which are bugs: the code avoids them) trap at once: no message is
/// formatted, so `core::fmt` stays out of the wasm.
#[cfg(all(feature = "no-std", target_arch = "wasm32"))]
#[panic_handler]
fn panic(_: &::core::panic::PanicInfo) -> ! {
    ::core::arch::wasm32::unreachable()
}

/// A small allocator for single-threaded wasm, growing the memory as needed (std's dlmalloc is
/// bigger; see Cargo.toml).
#[cfg(all(feature = "no-std", target_arch = "wasm32"))]
#[global_allocator]
static ALLOCATOR: talc::wasm::WasmDynamicTalc = talc::wasm::new_wasm_dynamic_allocator();

#[cfg(target_arch = "wasm32")]
mod web;
#[cfg(target_arch = "wasm32")]
pub use web::call;
pub mod core;
pub mod features;
pub mod secretbox;
