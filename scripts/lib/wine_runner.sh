#!/usr/bin/env bash
# cargo's runner for x86_64-pc-windows-gnu test binaries (scripts/cross.sh): runs one under
# Wine. Wine's first start in a fresh prefix sets the prefix up (a few seconds, once).
#
# Wine keeps descriptors of its own for every thread (its pipes to wineserver), so a test with
# a thousand sockets (two threads each) needs more than the usual 1024: the soft limit is
# raised to the hard one. A Windows process has no such limit on threads.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
exec wine "$@"
