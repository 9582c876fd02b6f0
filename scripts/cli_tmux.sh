#!/usr/bin/env bash
# `syncws connect` driven as a person would, in a real terminal under tmux: type a
# line, see it echoed, press Ctrl-D, see the close with 1000, and the program exits 0. And a
# message carrying an escape sequence (the echo server sends back what we typed) is shown with
# the escape spelled out, not obeyed by the terminal.
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
. "$ROOT/scripts/lib/target_dir.sh"
BIN="$TARGET_DIR/debug/syncws"
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
# ESC [ 3 1 m (red) and ESC ] 0 ; … BEL (the window's title): printed by the terminal as
# `\x1b[31m` and `\x1b]0;…\x07`, never applied.
tmux send-keys -t "$SESSION" -l $'paint\e[31mred\e]0;pwned\atitle'
tmux send-keys -t "$SESSION" Enter
wait_for 'paint\\x1b\[31mred\\x1b]0;pwned\\x07title'
title="$(tmux display-message -p -t "$SESSION" '#{pane_title}')"
[ "$title" != "pwned" ] || { echo "cli_tmux.sh: the peer retitled the window"; exit 1; }
tmux send-keys -t "$SESSION" C-d
wait_for "EXIT="
pane
pane | grep -q "# closed: 1000" || { echo "cli_tmux.sh: no clean close"; exit 1; }
pane | grep -q "EXIT=0" || { echo "cli_tmux.sh: the exit status was not 0"; exit 1; }
echo "CLI-TMUX OK: typed, echoed, an escape sequence shown not obeyed, Ctrl-D closed with 1000, exit 0"
