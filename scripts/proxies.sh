#!/usr/bin/env bash
# Runs tests/real_proxies.rs against real proxies: Debian's tinyproxy (HTTP CONNECT, once
# without and once with Basic auth) and dante-server (SOCKS5, no authentication).
#
#   bash scripts/proxies.sh [extra cargo test arguments]
#
# Installs the two packages if they are missing (apt-get, as root or through sudo), writes
# their configurations into a temporary directory, starts them in the foreground mode of each
# daemon on free 127.0.0.1 ports, waits until they accept connections, runs
#   cargo test --features _real-proxy-tests --test real_proxies
# with the proxies' URLs in SYNCWS_TINYPROXY, SYNCWS_TINYPROXY_AUTH and SYNCWS_DANTE, and stops
# the daemons when it exits, however it exits. See docs/proxies.md.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/services.sh

# --- install (idempotent: nothing to do when both programs are there) -----------------------
tinyproxy_bin=$(command -v tinyproxy || echo /usr/bin/tinyproxy)
danted_bin=$(command -v danted || echo /usr/sbin/danted)
missing=()
[ -x "$tinyproxy_bin" ] || missing+=(tinyproxy)
[ -x "$danted_bin" ] || missing+=(dante-server)
if [ ${#missing[@]} -gt 0 ]; then
    install_packages "${missing[@]}"
    tinyproxy_bin=$(command -v tinyproxy || echo /usr/bin/tinyproxy)
    danted_bin=$(command -v danted || echo /usr/sbin/danted)
fi
"$tinyproxy_bin" -v
"$danted_bin" -v

# --- configure and start ------------------------------------------------------------------
SERVICES_WORK=$(mktemp -d)
work=$SERVICES_WORK
trap services_cleanup EXIT

free_port tiny_port
free_port tiny_auth_port
free_port dante_port
user=syncws
password=pr0xy-s3cret

# No ConnectPort line: tinyproxy then allows CONNECT to every port (Debian's packaged
# configuration allows only 443 and 563, and the test servers listen on ephemeral ports).
tinyproxy_conf() {
    cat <<EOF
Port $1
Listen 127.0.0.1
Timeout 60
MaxClients 64
Allow 127.0.0.1
DisableViaHeader Yes
LogLevel Info
LogFile "$work/tinyproxy-$1.log"
PidFile "$work/tinyproxy-$1.pid"
EOF
}
tinyproxy_conf "$tiny_port" >"$work/tinyproxy.conf"
{
    tinyproxy_conf "$tiny_auth_port"
    echo "BasicAuth $user $password"
} >"$work/tinyproxy-auth.conf"

cat >"$work/danted.conf" <<EOF
logoutput: $work/danted.log
internal: 127.0.0.1 port = $dante_port
external: 127.0.0.1
clientmethod: none
socksmethod: none
user.privileged: root
user.unprivileged: nobody
client pass {
    from: 127.0.0.0/8 to: 0.0.0.0/0
}
socks pass {
    from: 127.0.0.0/8 to: 0.0.0.0/0
    command: connect
}
EOF

start() {
    local name=$1
    shift
    setsid "$@" >"$work/$name.out" 2>&1 &
    SERVICES_PIDS+=($!)
}
start tinyproxy "$tinyproxy_bin" -d -c "$work/tinyproxy.conf"
start tinyproxy-auth "$tinyproxy_bin" -d -c "$work/tinyproxy-auth.conf"
# danted stays in the foreground unless given -D.
start danted "$danted_bin" -f "$work/danted.conf" -p "$work/danted.pid" -N 1

show_logs() {
    for f in "$work"/*.out "$work"/*.log; do
        [ -s "$f" ] && { echo "--- $f"; tail -n 30 "$f"; }
    done
    true
}

for port in "$tiny_port" "$tiny_auth_port" "$dante_port"; do
    for _ in $(seq 100); do
        listening "$port" && break
        sleep 0.1
    done
    if ! listening "$port"; then
        echo "a proxy did not start listening on 127.0.0.1:$port" >&2
        show_logs >&2
        exit 1
    fi
done
echo "== tinyproxy on $tiny_port, tinyproxy with BasicAuth on $tiny_auth_port, danted on $dante_port"

# --- test ---------------------------------------------------------------------------------
status=0
SYNCWS_TINYPROXY="http://127.0.0.1:$tiny_port" \
SYNCWS_TINYPROXY_AUTH="http://$user:$password@127.0.0.1:$tiny_auth_port" \
SYNCWS_DANTE="127.0.0.1:$dante_port" \
    cargo test --features _real-proxy-tests --test real_proxies "$@" || status=$?
if [ "$status" != 0 ]; then
    show_logs >&2
fi
exit "$status"
