#!/usr/bin/env bash
# Soak test: many sockets × many messages through syncws's own echo server and through a
# third-party peer (Python `websockets`), over ws and wss. See docs/soak.md.
#
#   scripts/soak.sh            # full: 1000 sockets × 10000 messages, all four combinations
#   scripts/soak.sh --short    # CI: 100 sockets × 500 messages
#   scripts/soak.sh --only syncws-ws,python-wss     # a subset (syncws-ws syncws-wss python-ws
#                                                   # python-wss); combines with --short
#   SOAK_SOCKETS=500 SOAK_MESSAGES=2000 scripts/soak.sh   # other sizes
#
# - Creates a venv in soak-venv in cargo's target directory (reused) with `websockets` from PyPI.
# - Builds examples/soak.rs in release mode, writes a throwaway certificate to soak-cert there.
# - Runs each combination (python ones against scripts/soak_peer.py, started and stopped here),
#   everything under `nice -n 19`. Logs: soak-logs/<combination>.log there.
# - Writes the SOAK summary lines to soak-results.txt there; exits non-zero if any run failed.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"

SOCKETS=1000
MESSAGES=10000
MODE=full
ONLY="syncws-ws,syncws-wss,python-ws,python-wss"
while [ $# -gt 0 ]; do
    case "$1" in
    --short)
        SOCKETS=100
        MESSAGES=500
        MODE=short
        ;;
    --only)
        ONLY="${2:?--only needs a list}"
        shift
        ;;
    -h | --help)
        sed -n '2,15p' "$0"
        exit 0
        ;;
    *)
        echo "soak.sh: unknown argument '$1' (try --help)" >&2
        exit 2
        ;;
    esac
    shift
done
SOCKETS="${SOAK_SOCKETS:-$SOCKETS}"
MESSAGES="${SOAK_MESSAGES:-$MESSAGES}"

. "$ROOT/scripts/lib/target_dir.sh"
TARGET="$TARGET_DIR"
VENV="$TARGET/soak-venv"
CERT_DIR="$TARGET/soak-cert"
LOGS="$TARGET/soak-logs"
RESULTS="$TARGET/soak-results.txt"
BIN="$TARGET/release/examples/soak"
PEER_PID=""
START=$SECONDS

say() { printf '== %s\n' "$*"; }

stop_peer() {
    [ -n "$PEER_PID" ] || return 0
    kill -TERM "$PEER_PID" 2>/dev/null || true
    local i
    for i in $(seq 100); do
        kill -0 "$PEER_PID" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$PEER_PID" 2>/dev/null; then
        echo "soak.sh: the Python peer ignored SIGTERM for 10 s; killing it" >&2
        kill -KILL "$PEER_PID" 2>/dev/null || true
    fi
    wait "$PEER_PID" 2>/dev/null || true
    exec {PEER_OUT}<&-
    PEER_PID=""
}
trap stop_peer EXIT
trap 'exit 130' INT TERM

# --- the Python peer's venv -----------------------------------------------------------------
. "$ROOT/scripts/lib/websockets_venv.sh"
websockets_venv "$VENV" soak.sh
PY_VERSION="$(websockets_version "$VENV")"

# --- the driver -----------------------------------------------------------------------------
say "building examples/soak.rs (release)"
nice -n 19 cargo build --release --example soak --quiet

# The syncws peer needs 2 descriptors per socket pair, plus a margin.
NEED_FDS=$((SOCKETS * 2 + 64))
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt "$NEED_FDS" ]; then
    ulimit -n "$NEED_FDS" 2>/dev/null ||
        echo "soak.sh: warning: ulimit -n is $(ulimit -n) and cannot be raised to $NEED_FDS" >&2
fi

"$BIN" --gen-cert --cert-dir "$CERT_DIR" >/dev/null
mkdir -p "$LOGS"
COMMIT="${SOAK_COMMIT:-}"
if [ -z "$COMMIT" ]; then
    COMMIT="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
    if [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]; then
        COMMIT="$COMMIT+dirty"
    fi
fi
{
    echo "# soak $MODE: $SOCKETS sockets × $MESSAGES messages; $(date -u '+%Y-%m-%d %H:%M UTC');" \
        "commit $COMMIT; $(nproc) cores; $PY_VERSION"
} >"$RESULTS"
say "soak ($MODE): $SOCKETS sockets × $MESSAGES messages; $PY_VERSION"

# Starts scripts/soak_peer.py and sets PEER_PORT from the `PORT n` line it prints once it
# listens. $1: tls (1) or not (0); $2: its log file.
start_peer() {
    local tls_args=() line
    if [ "$1" = 1 ]; then
        tls_args=(--cert "$CERT_DIR/cert.pem" --key "$CERT_DIR/key.pem")
    fi
    exec {PEER_OUT}< <(exec nice -n 19 "$VENV/bin/python" -u "$ROOT/scripts/soak_peer.py" \
        "${tls_args[@]}" 2>"$2")
    PEER_PID=$!
    if ! read -r -t 60 -u "$PEER_OUT" line || [ "${line%% *}" != PORT ]; then
        echo "soak.sh: the Python peer did not report its port; its log:" >&2
        cat "$2" >&2
        return 1
    fi
    PEER_PORT="${line#PORT }"
}

FAILED=()
run_one() {
    local name="$1" log="$LOGS/$1.log" args=(--sockets "$SOCKETS" --messages "$MESSAGES")
    local peer="${name%%-*}" scheme="${name##*-}" tls=0 rc=0 t0=$SECONDS
    if [ "$scheme" = wss ]; then
        tls=1
        args+=(--tls --cert-dir "$CERT_DIR")
    fi
    args+=(--peer "$peer")
    say "$name"
    if [ "$peer" = python ]; then
        if ! start_peer "$tls" "$LOGS/$name.peer.log"; then
            FAILED+=("$name")
            echo "SOAK FAIL peer=python tls=$([ $tls = 1 ] && echo true || echo false) (peer did not start)" >>"$RESULTS"
            stop_peer
            return
        fi
        args+=(--python-url "$scheme://localhost:$PEER_PORT/")
    fi
    if [ "$peer" = python ]; then
        # The peer's stdout pipe stays out of the driver's descriptor count.
        nice -n 19 "$BIN" "${args[@]}" >"$log" 2>&1 {PEER_OUT}<&- || rc=$?
    else
        nice -n 19 "$BIN" "${args[@]}" >"$log" 2>&1 || rc=$?
    fi
    stop_peer
    # The result block and the summary line.
    sed -n '/^== soak result/,$p' "$log"
    if [ "$peer" = python ]; then
        grep '^soak_peer: stopped' "$LOGS/$name.peer.log" || true
    fi
    if grep -q '^SOAK ' "$log"; then
        grep '^SOAK ' "$log" >>"$RESULTS"
    else
        echo "SOAK FAIL $name (no summary, exit $rc; see $log)" >>"$RESULTS"
        tail -20 "$log"
    fi
    say "$name: exit $rc in $((SECONDS - t0)) s"
    [ "$rc" = 0 ] || FAILED+=("$name")
}

for combo in syncws-ws syncws-wss python-ws python-wss; do
    case ",$ONLY," in *",$combo,"*) run_one "$combo" ;; esac
done

say "results ($RESULTS), $((SECONDS - START)) s in all:"
cat "$RESULTS"
if [ ${#FAILED[@]} -gt 0 ]; then
    say "FAILED: ${FAILED[*]}"
    exit 1
fi
say "all soak runs passed"
