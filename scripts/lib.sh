# Shared steps of scripts/run and scripts/test: install what is missing (and only that), build.
# Sourced, not run. Every step is idempotent: a second run on the same machine skips installs.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export PATH="$HOME/.cargo/bin:$ROOT/pkg-js/node_modules/.bin:$PATH"

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

ensure_rust_wasm() {
  if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
    say "adding the wasm32 target"
    rustup target add wasm32-unknown-unknown
  fi
}

# The wasm-bindgen CLI (with wasm-bindgen-test-runner) at the version the client crate pins:
# the Rust API's browser tests and the Rust examples need it; installed from crates.io.
ensure_wasm_bindgen() {
  local wanted
  wanted=$(sed -n 's/^version = "=\(.*\)"$/\1/p' "$ROOT/client-wasm/Cargo.toml" | head -1)
  if [ "$(wasm-bindgen --version 2>/dev/null)" != "wasm-bindgen $wanted" ]; then
    say "installing wasm-bindgen-cli $wanted"
    cargo install -q wasm-bindgen-cli --version "$wanted"
  fi
}

# The Leptos example (examples/leptos-presence) on the Rust API, built for the browser into
# target/examples/leptos-presence/: index.html and build/ (the wasm and wasm-bindgen's JS).
build_rust_example() {
  ensure_rust_wasm
  ensure_wasm_bindgen
  say "building the Leptos example on the Rust API"
  local out="$ROOT/target/examples/leptos-presence"
  (cd "$ROOT" && cargo build -q -p leptos-presence --target wasm32-unknown-unknown)
  wasm-bindgen --target web --no-typescript --out-dir "$out/build" --out-name leptos_presence \
    "$ROOT/target/wasm32-unknown-unknown/debug/leptos-presence.wasm"
  cp "$ROOT/examples/leptos-presence/index.html" "$out/"
}

# `npm ci` in a folder unless its node_modules already matches its lockfile.
ensure_npm() {
  local dir="$ROOT/$1"
  if ! cmp -s "$dir/package-lock.json" "$dir/node_modules/.package-lock.json.installed" 2>/dev/null; then
    say "installing npm packages in $1"
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
    cp "$dir/package-lock.json" "$dir/node_modules/.package-lock.json.installed"
  fi
}

# Debian packages, installed only when one of them is missing.
ensure_apt() {
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing+=("$pkg")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    say "installing ${missing[*]} from Debian"
    local sudo=""
    [ "$(id -u)" = 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

# The npm package: cargo builds the client crate three times for wasm32 (`overtone` without
# decryption, `overtone/with-encryption` with it, as pusher-js splits its builds, and the features
# module: typing, status, badges, loaded on first use; each later build recompiles only the
# client crate) into pkg-js/wasm/, wasm-opt shrinks them (npm binaryen's: Debian's is too old),
# esbuild bundles the layer. No wasm-bindgen: the boundary is client-wasm/src/abi.rs.
build_package() {
  ensure_rust_wasm
  ensure_npm pkg-js
  say "building the wasm package (the client without and with encryption, the features module)"
  local out="$ROOT/pkg-js/wasm" built="$ROOT/target/wasm32-unknown-unknown/wasm/overtone_client.wasm"
  mkdir -p "$out"
  local name features
  for name in overtone:no-std overtone_encryption:no-std,encryption overtone_features:no-std,features-module; do
    features="${name#*:}"
    name="${name%%:*}"
    (cd "$ROOT" && cargo build -q -p overtone-client --target wasm32-unknown-unknown --profile wasm \
      --features "$features")
    cp "$built" "$out/${name}_raw.wasm"
  done
  # --converge: rerun -Oz until it stops shrinking; --zero-filled-memory: the module's own
  # memory starts zeroed, so zero data segments can go; --strip-debug: the names section.
  local flags=(-Oz --converge --strip-debug --strip-producers --zero-filled-memory --enable-bulk-memory
    --enable-nontrapping-float-to-int --enable-sign-ext --enable-mutable-globals --enable-multivalue
    --enable-reference-types)
  local pids=()
  for name in overtone overtone_encryption overtone_features; do
    wasm-opt "${flags[@]}" "$out/${name}_raw.wasm" -o "$out/${name}_bg.wasm" &
    pids+=($!)
  done
  # The same modules as JavaScript (binaryen's wasm2js), loaded only where the .wasm cannot be
  # instantiated (a Content-Security-Policy without 'wasm-unsafe-eval', a runtime without
  # WebAssembly). wasm2js needs the post-MVP operations lowered first; build.mjs makes each a
  # module exporting its instantiate function, and minifies it.
  pids=()
  for name in overtone overtone_encryption overtone_features; do
    (wasm-opt "${flags[@]:1}" --llvm-memory-copy-fill-lowering --signext-lowering \
      --llvm-nontrapping-fptoint-lowering -Oz "$out/${name}_raw.wasm" -o "$out/${name}_lowered.wasm" &&
      wasm2js "$out/${name}_lowered.wasm" -Oz -o "$out/${name}_wasm2js.js") &
    pids+=($!)
  done
  for pid in "${pids[@]}"; do wait "$pid"; done
  (cd "$ROOT/pkg-js" && node build.mjs)
}

# A running Docker daemon: Debian's docker.io installed if missing, dockerd started (as root,
# logging to target/dockerd.log) unless one already answers.
ensure_docker() {
  ensure_apt docker.io
  docker info >/dev/null 2>&1 && return
  say "starting dockerd"
  local sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  mkdir -p "$ROOT/target"
  $sudo sh -c "nohup dockerd >'$ROOT/target/dockerd.log' 2>&1 &"
  for _ in $(seq 60); do
    docker info >/dev/null 2>&1 && return
    sleep 0.5
  done
  echo "dockerd did not start; see target/dockerd.log" >&2
  return 1
}
