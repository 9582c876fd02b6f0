#!/usr/bin/env bash
# The scale-out chat (examples/chat): Redis, HAProxy and three chat-server processes;
# chat-check connects reconnecting clients through HAProxy, checks every message reaches
# every client exactly once and in order per sender, kills the process holding the first
# client, and checks its clients come back on another process and keep chatting.
#
#   scripts/chat.sh
#
# Installs redis-server and haproxy if they are missing (apt-get, as root or through sudo);
# everything runs from a temporary directory and is stopped at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/services.sh
missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ] || missing+=(haproxy)
install_packages "${missing[@]}"
stop_system_services redis-server haproxy
HAPROXY=$(command -v haproxy || echo /usr/sbin/haproxy)

echo "== building examples/chat"
cargo build --quiet -p syncws-chat
. scripts/lib/target_dir.sh
BIN="$TARGET_DIR/debug"

SERVICES_WORK=$(mktemp -d)
work=$SERVICES_WORK
trap services_cleanup EXIT

started() {
    wait_listening "$1" && return 0
    echo "chat.sh: nothing listens on $1"
    cat "$work"/*.log 2>/dev/null || true
    exit 1
}

# A Redis URL's password never reaches the output: chat-server names the URL it cannot reach
# without its userinfo.
free_port DEAD_PORT
if "$BIN/chat-server" --listen 127.0.0.1:0 --redis "redis://chat:s3cret-pw@127.0.0.1:$DEAD_PORT/" \
    >"$work/redacted.log" 2>&1; then
    echo "chat.sh: chat-server ran without Redis"
    exit 1
fi
grep -q "cannot reach Redis at redis://127.0.0.1:$DEAD_PORT/" "$work/redacted.log" ||
    { echo "chat.sh: unexpected output:"; cat "$work/redacted.log"; exit 1; }
if grep -q "s3cret-pw" "$work/redacted.log"; then
    echo "chat.sh: chat-server printed the Redis password:"
    cat "$work/redacted.log"
    exit 1
fi

free_port REDIS_PORT
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no >"$work/redis.log" 2>&1 &
SERVICES_PIDS+=($!)
started "$REDIS_PORT"

servers=""
backend=""
for name in s1 s2 s3; do
    free_port port
    "$BIN/chat-server" --listen "127.0.0.1:$port" --redis "redis://127.0.0.1:$REDIS_PORT/" \
        --name "$name" >"$work/$name.log" 2>&1 &
    pid=$!
    SERVICES_PIDS+=("$pid")
    started "$port"
    servers="${servers:+$servers,}$name=$pid"
    backend="$backend    server $name 127.0.0.1:$port check inter 300ms fall 1 rise 2"$'\n'
done

free_port LB_PORT
cat >"$work/haproxy.cfg" <<EOF
global
    maxconn 1024
defaults
    mode http
    timeout connect 2s
    timeout client 1h
    timeout server 1h
    timeout tunnel 1h
    # A dead server's connection attempts go to another one.
    option redispatch
    retries 3
frontend chat
    bind 127.0.0.1:$LB_PORT
    default_backend chat
backend chat
    balance roundrobin
$backend
EOF
"$HAPROXY" -db -f "$work/haproxy.cfg" >"$work/haproxy.log" 2>&1 &
SERVICES_PIDS+=($!)
started "$LB_PORT"

if ! "$BIN/chat-check" --url "ws://127.0.0.1:$LB_PORT/" --clients 6 --messages 20 --servers "$servers"; then
    for f in "$work"/*.log; do
        [ -s "$f" ] && { echo "--- $f"; tail -n 20 "$f"; }
    done
    exit 1
fi
