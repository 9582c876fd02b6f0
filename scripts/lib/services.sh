# Shared by the scripts that start real services for tests (proxies.sh, behind_proxies.sh,
# chat.sh): installing Debian packages, finding free ports, waiting for a port to listen, and
# stopping what was started. Source it after `set -euo pipefail`:
#
#   . "$(dirname "$0")/lib/services.sh"

# Runs a command as root (directly, or through sudo).
as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

# Installs the Debian packages given (apt-get, quietly); nothing when none is given.
install_packages() {
    [ $# -gt 0 ] || return 0
    echo "== installing $*"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "$@" >/dev/null
}

# Debian starts a service when its package is installed; the tests run their own instances.
stop_system_services() {
    local svc
    for svc in "$@"; do
        as_root systemctl stop "$svc" >/dev/null 2>&1 || as_root service "$svc" stop >/dev/null 2>&1 || true
    done
}

# Whether something listens on 127.0.0.1:$1.
listening() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# Sets the variable named $1 to a port nothing listens on, different from the ones already
# handed out, and below the kernel's ephemeral range: a port in that range can be held by one
# of the many short-lived test connections (as their local port, or in TIME_WAIT), and a
# daemon's bind then fails. It sets a variable rather than printing the port because
# `$(free_port)` would run in a subshell, and the list of ports handed out would be lost.
SERVICES_TAKEN=()
SERVICES_EPHEMERAL_LOW=$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
[ "$SERVICES_EPHEMERAL_LOW" -gt 12000 ] || SERVICES_EPHEMERAL_LOW=32768
free_port() {
    local candidate
    while :; do
        candidate=$((10000 + RANDOM % (SERVICES_EPHEMERAL_LOW - 10000)))
        [[ " ${SERVICES_TAKEN[*]-} " == *" $candidate "* ]] && continue
        listening "$candidate" && continue
        SERVICES_TAKEN+=("$candidate")
        printf -v "$1" '%s' "$candidate"
        return
    done
}

# Waits up to 10 s for 127.0.0.1:$1 to listen; returns 1 if it does not.
wait_listening() {
    local _
    for _ in $(seq 100); do
        listening "$1" && return 0
        sleep 0.1
    done
    listening "$1"
}

# What a script started: the processes (a pid that leads its own process group, as `setsid`
# makes it, has its whole group stopped) and its work directory, stopped and removed on exit
# by `services_cleanup` (call `trap services_cleanup EXIT`).
SERVICES_PIDS=()
services_cleanup() {
    local pid
    for pid in "${SERVICES_PIDS[@]}"; do
        kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${SERVICES_PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    [ -z "${SERVICES_WORK:-}" ] || rm -rf "$SERVICES_WORK"
}
