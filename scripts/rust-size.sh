#!/usr/bin/env bash
# The size report of the Rust API: what a Rust app's wasm weighs with it, for the smallest app
# (examples/bare-echo: one Echo, one typed listener) and the Leptos example. Each is built
# size-first (the `wasm` profile: opt-level z, LTO, panic abort), run through wasm-bindgen and
# wasm-opt -Oz (npm binaryen's, as the npm package), then measured raw and gzip -9; wasm-bindgen's
# JS glue beside it. Run by hand: scripts/rust-size.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ensure_rust_wasm
ensure_wasm_bindgen
ensure_npm pkg-js
out="$ROOT/target/rust-size"
mkdir -p "$out"
printf '%-18s %12s %12s %12s\n' app "wasm raw" "wasm gzip" "JS gzip"
for app in bare-echo leptos-presence; do
  crate="${app//-/_}"
  (cd "$ROOT" && cargo build -q -p "$app" --target wasm32-unknown-unknown --profile wasm)
  wasm-bindgen --target web --no-typescript --out-dir "$out/$app" --out-name "$crate" \
    "$ROOT/target/wasm32-unknown-unknown/wasm/$app.wasm"
  wasm-opt -Oz --strip-debug --strip-producers --enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext \
    --enable-mutable-globals --enable-multivalue --enable-reference-types \
    "$out/$app/${crate}_bg.wasm" -o "$out/$app/${crate}_opt.wasm"
  wasm="$out/$app/${crate}_opt.wasm"
  printf '%-18s %12s %12s %12s\n' "$app" "$(stat -c %s "$wasm")" "$(gzip -9c "$wasm" | wc -c)" \
    "$(gzip -9c "$out/$app/$crate.js" | wc -c)"
done
