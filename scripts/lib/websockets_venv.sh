# Shared by the scripts whose peer is Python `websockets` (soak.sh, mock_foreign.sh): one venv,
# soak-venv in cargo's target directory, with `websockets` from PyPI, created once and reused. Source it after
# `set -euo pipefail`:
#
#   . "$(dirname "$0")/lib/websockets_venv.sh"
#   websockets_venv "$VENV" soak.sh    # then "$VENV/bin/python" has websockets

# Makes sure the venv $1 has `websockets` (both the asyncio server and the sync client, 13 or
# later), creating it if not; $2 names the caller in the error when python3 is missing.
websockets_venv() {
    local venv="$1" who="$2"
    if "$venv/bin/python" -c 'import websockets.asyncio.server, websockets.sync.client' >/dev/null 2>&1; then
        return 0
    fi
    if ! command -v python3 >/dev/null 2>&1; then
        echo "$who: python3 is needed for the Python peer (websockets)" >&2
        exit 2
    fi
    echo "== creating $venv with websockets"
    rm -rf "$venv"
    python3 -m venv "$venv"
    PIP_DISABLE_PIP_VERSION_CHECK=1 "$venv/bin/pip" install --quiet 'websockets>=13'
}

# "python 3.x.y, websockets N" for the venv $1.
websockets_version() {
    "$1/bin/python" -c 'import sys, websockets; print(f"python {sys.version.split()[0]}, websockets {websockets.__version__}")'
}
