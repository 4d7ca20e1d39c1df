# Shared steps of scripts/run and scripts/test: install what is missing (and only that), build.
# Sourced, not run. Every step is idempotent: a second run on the same machine skips installs.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export PATH="$HOME/.cargo/bin:$ROOT/pkg-js/node_modules/.bin:$PATH"

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

# The wasm-bindgen version Cargo.lock pins; the CLI must match it exactly.
wasm_bindgen_version() {
  awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' "$ROOT/Cargo.lock"
}

ensure_rust_wasm() {
  if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
    say "adding the wasm32 target"
    rustup target add wasm32-unknown-unknown
  fi
  local want
  want="$(wasm_bindgen_version)"
  if [ "$(wasm-bindgen --version 2>/dev/null | awk '{print $2}')" != "$want" ]; then
    say "installing wasm-bindgen-cli $want (a few minutes, once)"
    # Not --locked: its lockfile pins a crate version the registry here lacks.
    cargo install wasm-bindgen-cli --version "$want"
  fi
  if ! command -v wasm-pack >/dev/null; then
    say "installing wasm-pack (a few minutes, once)"
    # Not the npm package: its postinstall downloads from GitHub.
    cargo install wasm-pack --locked
  fi
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

# The npm package: wasm-pack builds the client twice (`overtone` without decryption into
# pkg-js/wasm, `overtone/with-encryption` with it into pkg-js/wasm-encryption, as pusher-js splits
# its builds; the second recompiles only the client crate) and the features module (typing,
# status, badges, loaded on first use) into pkg-js/wasm-features; wasm-opt shrinks them, esbuild
# bundles the layer. The two client .wasm have the same imports and exports, so one glue loads
# either: checked here.
build_package() {
  ensure_rust_wasm
  ensure_npm pkg-js
  say "building the wasm package (without and with encryption, and the features module)"
  local log="$ROOT/target/wasm-pack.log"
  mkdir -p "$ROOT/target"
  # --no-opt: wasm-pack would try to download binaryen; we run npm binaryen's wasm-opt ourselves.
  (cd "$ROOT/client-wasm" && wasm-pack build --target web --profile wasm --no-opt \
    --out-dir "$ROOT/pkg-js/wasm" --out-name overtone -- --features no-std \
    && wasm-pack build --target web --profile wasm --no-opt \
    --out-dir "$ROOT/pkg-js/wasm-encryption" --out-name overtone -- --features no-std,encryption \
    && wasm-pack build --target web --profile wasm --no-opt \
    --out-dir "$ROOT/pkg-js/wasm-features" --out-name overtone -- --features no-std,features-module) \
    >"$log" 2>&1 || { cat "$log" >&2; exit 1; }
  # --converge: rerun -Oz until it stops shrinking; --zero-filled-memory: the module's own
  # memory starts zeroed, so zero data segments can go. Both builds at once (2 cores).
  local features=(--enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext
    --enable-mutable-globals --enable-reference-types --enable-multivalue)
  local flags=(-Oz --converge --strip-producers --zero-filled-memory "${features[@]}")
  local wasm="$ROOT/pkg-js/wasm/overtone_bg.wasm" encrypting="$ROOT/pkg-js/wasm-encryption/overtone_bg.wasm"
  local features_wasm="$ROOT/pkg-js/wasm-features/overtone_bg.wasm"
  wasm-opt "${flags[@]}" "$wasm" -o "$wasm" &
  local first=$!
  wasm-opt "${flags[@]}" "$encrypting" -o "$encrypting"
  wait "$first"
  wasm-opt "${flags[@]}" "$features_wasm" -o "$features_wasm"
  # Then one-letter import, export and module names instead of wasm-bindgen's hashed ones (~3 KB
  # of each .wasm and of its glue); the mapping, printed as JSON, lets build.mjs rename them in
  # the glue. Not under --converge, which would rename (and print) twice.
  local module
  for module in "$wasm" "$encrypting" "$features_wasm"; do
    wasm-opt "${features[@]}" --minify-imports-and-exports-and-modules "$module" -o "$module" \
      >"$(dirname "$module")/names.json"
  done
  local file
  for file in overtone.js names.json; do
    if ! cmp -s "$ROOT/pkg-js/wasm/$file" "$ROOT/pkg-js/wasm-encryption/$file"; then
      echo "the encryption build's $file differs from the base build's: one glue cannot load both" >&2
      exit 1
    fi
  done
  (cd "$ROOT/pkg-js" && node build.mjs)
}
