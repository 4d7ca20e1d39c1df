//! Overtone's browser SDK. The protocol logic is a sans-IO core in plain Rust, tested natively,
//! and so are the feature machines (typing, status, badges). Two wasm modules are built from
//! it: the client (`web`: the core behind one export) and the features module
//! (`web_features`, with the `features-module` feature), which the npm package loads on first
//! use. The page's TypeScript does the IO (socket, timers, window events, storage, `fetch`).
//! [`secretbox`] opens `private-encrypted-*` events.
//!
//! With the `web` feature, [`echo`] is the same client for Rust apps: Laravel Echo's API on
//! wasm-bindgen, web-sys and gloo-timers, doing its own IO.
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

#[cfg(all(feature = "no-std", feature = "web"))]
compile_error!("`web` (the Rust API) needs std: build it without `no-std`");

// The npm package's boundary: not in a Rust app's wasm (`web`), whose glue is wasm-bindgen's.
#[cfg(all(target_arch = "wasm32", not(feature = "web")))]
mod abi;
pub mod core;
#[cfg(all(target_arch = "wasm32", feature = "web"))]
#[warn(missing_docs)]
pub mod echo;
pub mod features;
pub mod secretbox;
#[cfg(all(
    target_arch = "wasm32",
    not(feature = "features-module"),
    not(feature = "web")
))]
mod web;
#[cfg(all(
    target_arch = "wasm32",
    feature = "features-module",
    not(feature = "web")
))]
mod web_features;
