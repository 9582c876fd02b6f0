#!/usr/bin/env bash
# `syncws bridge` between real programs nobody here wrote: a TCP (or Unix socket) client goes
# through one bridge into a web socket and out of another bridge to its server.
#
#   client --TCP--> syncws bridge tcp-l: ws:// --WS--> syncws bridge ws-l: tcp: --TCP--> server
#
# - redis-cli to redis-server over TCP, and over Unix sockets (unix-l:, unix:): commands and
#   their answers both ways, then a 64 MiB value set from a file and read back, checked by
#   its SHA-256;
# - curl to Python's http.server: a 256 MiB file (short mode: 64 MiB) downloaded through the
#   tunnel, checked by its SHA-256.
#
#   scripts/bridges.sh [--short]
#
# Installs redis-server (and redis-tools) if missing (apt-get, as root or through sudo).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/services.sh
SHORT=0
[ "${1:-}" = "--short" ] && SHORT=1
missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v redis-cli >/dev/null 2>&1 || missing+=(redis-tools)
command -v curl >/dev/null 2>&1 || missing+=(curl)
install_packages "${missing[@]}"
stop_system_services redis-server

echo "== building the command-line tool (release: the transfers are large)"
cargo build --quiet --release -p syncws-cli
. scripts/lib/target_dir.sh
SYNCWS="$TARGET_DIR/release/syncws"

SERVICES_WORK=$(mktemp -d)
work=$SERVICES_WORK
trap services_cleanup EXIT

start() { # name, command...
    local name=$1
    shift
    setsid "$@" >"$work/$name.log" 2>&1 &
    SERVICES_PIDS+=($!)
}
up() { # port, name
    wait_listening "$1" && return 0
    echo "bridges.sh: $2 does not listen on $1"
    cat "$work"/*.log
    exit 1
}
check() { # what, expected, got
    if [ "$2" != "$3" ]; then
        echo "bridges.sh: $1: expected $2, got $3"
        cat "$work"/*.log
        exit 1
    fi
    echo "   ok: $1"
}

free_port REDIS
free_port WS
free_port LOCAL
start redis redis-server --port "$REDIS" --save '' --appendonly no \
    --unixsocket "$work/redis.sock" --unixsocketperm 700 --proto-max-bulk-len 512mb
up "$REDIS" redis-server
start ws-side "$SYNCWS" bridge "ws-l:127.0.0.1:$WS" "tcp:127.0.0.1:$REDIS"
up "$WS" "the ws-l: bridge"
start tcp-side "$SYNCWS" bridge "tcp-l:127.0.0.1:$LOCAL" "ws://127.0.0.1:$WS/redis"
up "$LOCAL" "the tcp-l: bridge"

echo "== redis-cli -> tcp-l: -> ws -> ws-l: -> redis-server"
check "PING" PONG "$(redis-cli -p "$LOCAL" PING)"
check "SET" OK "$(redis-cli -p "$LOCAL" SET greeting 'hello through a web socket')"
check "GET" 'hello through a web socket' "$(redis-cli -p "$LOCAL" GET greeting)"
# A large value both ways: 64 MiB of random bytes, base64 (redis-cli -x takes stdin).
head -c $((48 << 20)) /dev/urandom | base64 -w0 >"$work/value"
# What `redis-cli --raw GET` prints: the value and a newline.
want=$( (cat "$work/value"; echo) | sha256sum | cut -d' ' -f1)
check "SET 64 MiB" OK "$(redis-cli -p "$LOCAL" -x SET big <"$work/value")"
# `--raw` ends the value with a newline: compared whole (cutting it off with `head` could
# leave redis-cli writing into a closed pipe: SIGPIPE, and pipefail fails the script).
got=$(redis-cli -p "$LOCAL" --raw GET big | sha256sum | cut -d' ' -f1)
check "GET 64 MiB, its SHA-256" "$want" "$got"

echo "== redis-cli -s -> unix-l: -> ws -> ws-l: -> unix: redis-server"
free_port WS2
start ws-unix "$SYNCWS" bridge "ws-l:127.0.0.1:$WS2" "unix:$work/redis.sock"
up "$WS2" "the ws-l: to unix: bridge"
start unix-side "$SYNCWS" bridge "unix-l:$work/bridge.sock" "ws://127.0.0.1:$WS2/"
for _ in $(seq 100); do [ -S "$work/bridge.sock" ] && break; sleep 0.1; done
check "PING over Unix sockets" PONG "$(redis-cli -s "$work/bridge.sock" PING)"
got=$(redis-cli -s "$work/bridge.sock" --raw GET big | sha256sum | cut -d' ' -f1)
check "GET 64 MiB over Unix sockets, its SHA-256" "$want" "$got"

echo "== curl -> tcp-l: -> ws -> ws-l: -> python3 -m http.server"
size=$((256 << 20))
[ "$SHORT" = 1 ] && size=$((64 << 20))
mkdir "$work/www"
head -c "$size" /dev/urandom >"$work/www/file.bin"
want=$(sha256sum <"$work/www/file.bin" | cut -d' ' -f1)
free_port HTTP
free_port WS3
free_port LOCAL3
start http python3 -m http.server "$HTTP" --bind 127.0.0.1 --directory "$work/www"
up "$HTTP" "http.server"
start ws-http "$SYNCWS" bridge "ws-l:127.0.0.1:$WS3" "tcp:127.0.0.1:$HTTP"
up "$WS3" "the ws-l: bridge to http.server"
start tcp-http "$SYNCWS" bridge "tcp-l:127.0.0.1:$LOCAL3" "ws://127.0.0.1:$WS3/"
up "$LOCAL3" "the tcp-l: bridge for curl"
start=$(date +%s.%N)
got=$(curl -sS --fail "http://127.0.0.1:$LOCAL3/file.bin" | sha256sum | cut -d' ' -f1)
end=$(date +%s.%N)
check "curl $((size >> 20)) MiB, its SHA-256" "$want" "$got"
python3 -c "print(f'   {$size / ($end - $start) / 1e6:.0f} MB/s through two bridges')"
echo "== bridges: all checks passed"
