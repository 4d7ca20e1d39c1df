//! The boundary both wasm modules share with the page (`pkg-js/src/wasm.ts`), by hand: only
//! numbers cross, and strings as UTF-8 in this module's memory. Generated glue (wasm-bindgen's)
//! weighed more than the client's whole page side, for two functions.
//!
//! - Export `b(len)`: a buffer of `len` bytes, where the page writes a call's strings one after
//!   the other.
//! - Export `c(client, op, a, b, c, d, n)`: the call; `a`–`d` are the byte lengths of its four
//!   strings in that buffer, `n` a number. Defined by each module ([`crate::web`],
//!   [`crate::web_features`]) with [`serve`].
//! - Import `o.o(client, kind, n, a, aLen, b, bLen)`: one `out` record, with two strings
//!   by address and length; `o.t()`: `performance.now()`.

use crate::prelude::*;

use core::cell::{RefCell, UnsafeCell};

#[link(wasm_import_module = "o")]
extern "C" {
    #[link_name = "o"]
    fn out_js(
        client: u32,
        kind: u32,
        n: f64,
        a: *const u8,
        a_len: usize,
        b: *const u8,
        b_len: usize,
    );
    #[link_name = "t"]
    fn performance_now() -> f64;
}

/// Milliseconds on the page's monotonic clock.
pub(crate) fn now() -> f64 {
    // SAFETY: an import without arguments or memory access.
    unsafe { performance_now() }
}

/// Sends one `out` record to the page.
pub(crate) fn out(client: u32, kind: u32, n: f64, a: &str, b: &str) {
    // SAFETY: the page reads both strings before returning and keeps no reference to them.
    unsafe { out_js(client, kind, n, a.as_ptr(), a.len(), b.as_ptr(), b.len()) }
}

struct Input(UnsafeCell<Vec<u8>>);

// The wasm is single-threaded: there is no other thread to share with.
unsafe impl Sync for Input {}

static INPUT: Input = Input(UnsafeCell::new(Vec::new()));

/// The buffer for the next call's strings, at least `len` bytes.
#[export_name = "b"]
extern "C" fn input(len: usize) -> *mut u8 {
    // SAFETY: single-threaded, and no `strings` result is alive: the page asks for the buffer
    // only between calls, or from inside an `out`, after the call read its strings.
    let buffer = unsafe { &mut *INPUT.0.get() };
    buffer.resize(len, 0);
    buffer.as_mut_ptr()
}

/// A module's `c` export: `run` gets the call's four strings (of these byte lengths, from the
/// input buffer) and returns its result and the `out` records it caused, which are sent once it
/// has returned, so that the module's state is released and the page may call back in.
pub(crate) fn serve(
    client: u32,
    lengths: [usize; 4],
    run: impl FnOnce([&str; 4]) -> (f64, Vec<Record>),
) -> f64 {
    let (result, outs) = strings(lengths, run);
    for record in outs {
        record.send(client);
    }
    result
}

/// The call's strings, from the input buffer; `f` runs with them (they must not outlive it: an
/// `out` may let the page write the buffer again). Invalid UTF-8, which the page's
/// `TextEncoder` never writes, reads as empty.
fn strings<R>(lengths: [usize; 4], f: impl FnOnce([&str; 4]) -> R) -> R {
    // SAFETY: single-threaded; the page wrote the buffer before this call and does not touch
    // it until `f` returns (outs are sent after).
    let buffer = unsafe { &*INPUT.0.get() };
    let mut rest = buffer.as_slice();
    let strings = lengths.map(|len| {
        let (text, after) = rest.split_at(len.min(rest.len()));
        rest = after;
        core::str::from_utf8(text).unwrap_or_default()
    });
    f(strings)
}

/// One `out` call, queued until the module's state is released (the page may call back in).
pub(crate) struct Record {
    kind: u32,
    n: f64,
    a: String,
    b: String,
}

impl Record {
    pub(crate) fn new(kind: u32, n: f64, a: &str, b: &str) -> Record {
        Record {
            kind,
            n,
            a: a.to_owned(),
            b: b.to_owned(),
        }
    }

    pub(crate) fn send(self, client: u32) {
        out(client, self.kind, self.n, &self.a, &self.b);
    }
}

/// `Some(text)` unless empty: the page sends `""` for "none".
pub(crate) fn given(text: &str) -> Option<String> {
    (!text.is_empty()).then(|| text.into())
}

/// What a module keeps for the page's life (its clients), in a `static`.
pub(crate) struct ModuleState<T>(pub(crate) RefCell<T>);

// The wasm is single-threaded: there is no other thread to share with.
unsafe impl<T> Sync for ModuleState<T> {}

impl<T> ModuleState<T> {
    pub(crate) const fn new(value: T) -> ModuleState<T> {
        ModuleState(RefCell::new(value))
    }
}
