#!/usr/bin/env bash
# The layering of docs/architecture.md, checked from the source (`use` lines and paths, code
# only: comments and tests are left out):
#
#   API       client, server, websocket, listener, connection, prepared, reconnect, factory,
#             testing, http_types, fuzz: anything below
#   driver    threads and I/O: config, stats, proto and the foundation; never the API
#   config, stats   what the driver is configured with and reports: proto and the foundation
#   proto     the protocol as data: the foundation only, and no I/O, threads, locks or clock
#   foundation  error, header, message, request, response, ended, redact, panics, waiting,
#             proxy: each other only
#
# and the top-level modules import each other without a circle (`tsort` finds one).
#
#   scripts/layers.sh
set -euo pipefail
cd "$(dirname "$0")/../src"

layer() {
    case $1 in
    error | header | message | request | response | ended | redact | panics | waiting | proxy) echo 0 ;;
    proto) echo 1 ;;
    config | stats) echo 2 ;;
    driver) echo 3 ;;
    *) echo 4 ;;
    esac
}
# A file's code: its tests and comments dropped.
code() { sed -e '/^#\[cfg(test)\]/,$d' -e 's://.*$::' "$1"; }
top() { local f=${1#./}; f=${f%%/*}; echo "${f%.rs}"; }

failed=0
edges=$(mktemp)
trap 'rm -f "$edges"' EXIT
for f in $(find . -name '*.rs' ! -name lib.rs); do
    from=$(top "$f")
    for to in $(code "$f" | grep -o 'crate::[a-z_]*' | sed 's/crate:://' | sort -u); do
        # A module (not an item at the root, such as `crate::channel`), other than its own.
        if [ "$to" = "$from" ] || { [ ! -e "$to.rs" ] && [ ! -d "$to" ]; }; then
            continue
        fi
        echo "$from $to" >>"$edges"
        if [ "$(layer "$to")" -gt "$(layer "$from")" ]; then
            echo "layers: $f ($from) imports $to, a layer above it"
            failed=1
        fi
    done
done
# proto is plain data: no sockets, threads, files, processes, locks or clock outside its tests
# (addresses, `std::net::IpAddr`, are data).
if grep -rnE 'TcpStream|TcpListener|UdpSocket|std::(thread|fs|process)|Mutex|RwLock|Condvar|Instant::now|SystemTime::now' \
    --include='*.rs' proto | grep -vE '^\S+:[0-9]+:\s*//' | while IFS= read -r hit; do
        file=${hit%%:*}
        line=${hit#*:}; line=${line%%:*}
        # Only code before the file's tests.
        tests=$(grep -n '^#\[cfg(test)\]' "$file" | head -1 | cut -d: -f1)
        [ -n "$tests" ] && [ "$line" -ge "$tests" ] && continue
        echo "layers: proto does I/O, threads, locks or reads the clock: $hit"
    done | grep .; then
    failed=1
fi
sort -u "$edges" | tsort >/dev/null 2>"$edges.err" || { cat "$edges.err"; failed=1; }
rm -f "$edges.err"
[ "$failed" = 0 ] && echo "layers: OK ($(sort -u "$edges" | wc -l) module-to-module imports, no circle)"
exit "$failed"
