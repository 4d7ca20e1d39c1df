//! Wire facts of the Pusher protocol 7 that both the Overtone server and the browser client need:
//! channel kinds and name rules ([`channel`]), close and error codes ([`codes`]) and, behind the
//! `sign` feature, the HMAC signatures of channel auth and the HTTP API ([`signature`]).
//!
//! No dependencies by default, so the wasm client pays nothing for what it does not use; and
//! `no_std` without `sign`, so the client can be built without std.

#![cfg_attr(not(any(feature = "sign", test)), no_std)]

pub mod channel;
pub mod codes;
#[cfg(feature = "sign")]
pub mod signature;

/// The protocol version both sides speak (`?protocol=7` in the WebSocket URL).
pub const PROTOCOL_VERSION: u32 = 7;
