#!/usr/bin/env bash
# `syncws connect` driven as a person would, in a real terminal under tmux (issue 17): type a
# line, see it echoed, press Ctrl-D, see the close with 1000, and the program exits 0.
#
#   scripts/cli_tmux.sh
#
# Installs tmux (Debian's package, apt-get as root or through sudo) if it is missing, builds
# the CLI, starts `syncws listen` as the echo server, and runs `syncws connect` in a detached
# tmux session; every wait is a poll of the pane with a deadline.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}
if ! command -v tmux >/dev/null 2>&1; then
    echo "== installing tmux"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends tmux
fi

cargo build --quiet -p syncws-cli
BIN="$ROOT/target/debug/syncws"
WORK="$(mktemp -d)"
SESSION="syncws-cli-test-$$"
LISTEN_PID=""
cleanup() {
    tmux kill-session -t "$SESSION" 2>/dev/null || true
    [ -n "$LISTEN_PID" ] && kill "$LISTEN_PID" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

"$BIN" listen 127.0.0.1:0 2>"$WORK/listen.log" &
LISTEN_PID=$!
URL=""
for _ in $(seq 100); do
    URL="$(sed -n 's/^listening on //p' "$WORK/listen.log")"
    [ -n "$URL" ] && break
    sleep 0.1
done
[ -n "$URL" ] || { echo "cli_tmux.sh: the server did not start"; cat "$WORK/listen.log"; exit 1; }

# The pane's text, and a wait for a pattern in it (10 s at most).
pane() { tmux capture-pane -p -t "$SESSION"; }
wait_for() {
    for _ in $(seq 100); do
        if pane | grep -q -- "$1"; then return 0; fi
        sleep 0.1
    done
    echo "cli_tmux.sh: '$1' never showed; the pane:"
    pane
    exit 1
}

tmux new-session -d -s "$SESSION" -x 120 -y 30 \
    "'$BIN' connect '$URL'; echo \"EXIT=\$?\"; sleep 30"
wait_for "# connected (101"
tmux send-keys -t "$SESSION" "hello from a terminal" Enter
# The typed line (echoed by the terminal) and the server's echo: two lines with the text.
for _ in $(seq 100); do
    [ "$(pane | grep -c -- 'hello from a terminal')" -ge 2 ] && break
    sleep 0.1
done
[ "$(pane | grep -c -- 'hello from a terminal')" -ge 2 ] || { echo "cli_tmux.sh: no echo"; pane; exit 1; }
tmux send-keys -t "$SESSION" C-d
wait_for "EXIT="
pane
pane | grep -q "# closed: 1000" || { echo "cli_tmux.sh: no clean close"; exit 1; }
pane | grep -q "EXIT=0" || { echo "cli_tmux.sh: the exit status was not 0"; exit 1; }
echo "CLI-TMUX OK: typed, echoed, Ctrl-D closed with 1000, exit 0"
