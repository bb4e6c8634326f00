#!/usr/bin/env bash
# Every test of trainconsole, on a fresh machine: installs what is missing (Debian's Chromium
# and python3, the web page's npm packages), then runs the Rust tests, the web unit tests (Vitest) and the
# real-browser test (playwright-core driving /usr/bin/chromium against the real binary).
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)           # the real-browser test
command -v python3 >/dev/null || missing+=(python3)       # the Python client and toy trainer tests
if [ ${#missing[@]} -gt 0 ]; then
  step "installing ${missing[*]} (Debian packages) for the tests"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q "${missing[@]}"
fi
if ! command -v npm >/dev/null || [ "$(node -p 'process.versions.node.split(".")[0]')" -lt 20 ]; then
  echo "error: Node.js 20 or newer with npm is needed to build and test the web page" >&2
  exit 1
fi

step "npm ci (web/)"
(cd web && npm ci --no-audit --no-fund)

step "cargo build (dev profile; dependencies optimised, see Cargo.toml)"
cargo build --workspace --bins

step "cargo test"
cargo test --workspace

step "web unit tests (vitest)"
(cd web && npm test)

step "real-browser test (playwright-core + Debian chromium)"
(cd web && TRAINCONSOLE_BIN="$PWD/../target/debug/trainconsole" npm run e2e)
