#!/usr/bin/env bash
# Checks autobahn_report.py's verdicts on made-up reports: it must pass only all-OK runs.
# Usage: scripts/test_autobahn_report.sh [python]   (any Python 2.7 or 3)
set -euo pipefail
PY="${1:-python3}"
HERE="$(cd "$(dirname "$0")" && pwd)"
T="$(mktemp -d)"
trap 'rm -rf "$T"' EXIT

# make_report DIR "case:behavior:close" ...
make_report() {
    local dir=$1; shift
    mkdir -p "$dir"
    "$PY" - "$dir" "$@" <<'PY'
import json, sys
d = sys.argv[1]
index = {}
for spec in sys.argv[2:]:
    case, behavior, close = spec.split(":")
    f = "syncws_case_%s.json" % case.replace(".", "_")
    index[case] = {"behavior": behavior, "behaviorClose": close, "duration": 1,
                   "remoteCloseCode": 1000, "reportfile": f}
    json.dump({"description": "case <b>%s</b>" % case}, open("%s/%s" % (d, f), "w"))
json.dump({"syncws": index}, open(d + "/index.json", "w"))
PY
}

PASSED=0
expect() {
    local want=$1 name=$2; shift 2
    set +e
    "$PY" "$HERE/autobahn_report.py" "$@" >"$T/out" 2>&1
    local got=$?
    set -e
    if [ "$got" != "$want" ]; then
        echo "FAIL: $name: exit $got, wanted $want"; cat "$T/out"; exit 1
    fi
    PASSED=$((PASSED + 1))
    echo "ok: $name"
}

make_report "$T/ok" 1.1.1:OK:OK 7.1.6:INFORMATIONAL:INFORMATIONAL 12.1.1:UNIMPLEMENTED:OK
expect 0 "all OK, INFORMATIONAL passes, allowed UNIMPLEMENTED" "12 13" "client:$T/ok"
expect 1 "UNIMPLEMENTED outside the allowed sections" "" "client:$T/ok"
make_report "$T/nonstrict" 1.1.1:OK:OK 6.4.3:NON-STRICT:OK
expect 1 "NON-STRICT fails" "12 13" "client:$T/nonstrict"
make_report "$T/badclose" 1.1.1:OK:OK 7.1.1:OK:UNCLEAN
expect 1 "an OK case with an unclean close fails" "12 13" "client:$T/badclose"
make_report "$T/failed" 5.6:FAILED:OK
expect 1 "FAILED fails, even when another role passes" "12 13" "client:$T/ok" "server:$T/failed"
grep -q "NOT OK 5.6" "$T/out" || { echo "FAIL: the failing case is not listed"; exit 1; }
echo "autobahn_report: $PASSED passed, 0 failed"
