#!/usr/bin/env bash
# Browser test: Debian's headless Chromium against the syncws server role. See docs/browser.md.
#
#   scripts/browser.sh
#
# - Installs Debian's `chromium` with apt-get if /usr/bin/chromium is missing (needs root).
# - Runs `npm ci` in tests/browser if its node_modules is missing (playwright-core, pinned by
#   tests/browser/package-lock.json; it drives the installed Chromium, it downloads none).
# - Builds examples/browser_server.rs (release), starts it in the background, runs
#   tests/browser/run.mjs against it, and stops it on exit.
# - The run is bounded (BROWSER_TIMEOUT, default 120 s; installing and building are not
#   counted). Server log: browser-server.log in cargo's target directory. Exits non-zero on any failure.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"

TIMEOUT="${BROWSER_TIMEOUT:-120}"
CHROMIUM=/usr/bin/chromium
DIR="$ROOT/tests/browser"
. "$ROOT/scripts/lib/target_dir.sh"
LOG="$TARGET_DIR/browser-server.log"
BIN="$TARGET_DIR/release/examples/browser_server"
SERVER_PID=""
START=$SECONDS

say() { printf '== %s\n' "$*"; }
fail() {
    printf 'browser.sh: FAILED: %s\n' "$*" >&2
    exit 1
}

stop_server() {
    [ -n "$SERVER_PID" ] || return 0
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=""
}
trap stop_server EXIT
trap 'exit 130' INT TERM

# --- what the test needs ------------------------------------------------------------------
if [ ! -x "$CHROMIUM" ]; then
    say "installing Debian's chromium (apt-get)"
    [ "$(id -u)" -eq 0 ] || fail "$CHROMIUM is missing and installing it needs root: apt-get install chromium"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >/dev/null || fail "apt-get update failed"
    apt-get install -y -q --no-install-recommends chromium >/dev/null ||
        fail "apt-get install chromium failed"
fi
[ -x "$CHROMIUM" ] || fail "$CHROMIUM is still missing after installing the chromium package"
command -v node >/dev/null || fail "node is missing (Node 20 or newer is needed for playwright-core)"

if [ ! -d "$DIR/node_modules/playwright-core" ]; then
    say "npm ci (tests/browser: playwright-core)"
    (cd "$DIR" && npm ci --no-audit --no-fund --loglevel=error) || fail "npm ci in tests/browser failed"
fi

say "building examples/browser_server.rs (release)"
cargo build --release --quiet --example browser_server || fail "building the example failed"

# --- the run --------------------------------------------------------------------------------
RUN_START=$SECONDS
"$BIN" >"$LOG" 2>&1 &
SERVER_PID=$!
HTTP=""
WS=""
for _ in $(seq 100); do
    if LINE="$(grep -m1 'browser_server: listening' "$LOG")"; then
        HTTP="$(sed -n 's/.* http=\([^ ]*\) .*/\1/p' <<<"$LINE")"
        WS="$(sed -n 's/.* ws=\([^ ]*\) .*/\1/p' <<<"$LINE")"
        break
    fi
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.1
done
[ -n "$HTTP" ] && [ -n "$WS" ] || {
    cat "$LOG" >&2
    fail "the example server did not start (log above, $LOG)"
}
say "server up: page $HTTP, websocket $WS (through the frame-counting relay)"

set +e
(cd "$DIR" && timeout --kill-after=10 "$TIMEOUT" node run.mjs --http "$HTTP" --ws "$WS")
DRIVER=$?
set -e
if [ "$DRIVER" -eq 124 ] || [ "$DRIVER" -eq 137 ]; then
    fail "the browser test did not finish within ${TIMEOUT} s (server log: $LOG)"
fi

[ "$DRIVER" -eq 0 ] || fail "the browser test's checks failed (above; server log: $LOG)"

# The example exits by itself once /report was served, with 1 if a server-side check failed.
SERVER=1
for _ in $(seq 100); do
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
        set +e
        wait "$SERVER_PID"
        SERVER=$?
        set -e
        SERVER_PID=""
        break
    fi
    sleep 0.1
done
[ "$SERVER" -eq 0 ] || {
    tail -n 5 "$LOG" >&2
    fail "the example server's own checks failed or it did not exit ($LOG)"
}
say "browser test passed: run $((SECONDS - RUN_START)) s, $((SECONDS - START)) s with install and build"
