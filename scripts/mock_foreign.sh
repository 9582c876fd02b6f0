#!/usr/bin/env bash
# The test kit's MockServer against a foreign client, Python `websockets` (issue 16): a
# refusal, then a script of every step a foreign client can answer (see
# examples/mock_foreign.rs and scripts/mock_foreign_client.py).
#
#   scripts/mock_foreign.sh
#
# Uses (and if needed creates) the soak venv, target/soak-venv, with `websockets` from PyPI.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
VENV="$ROOT/target/soak-venv"

if ! "$VENV/bin/python" -c 'import websockets.sync.client' >/dev/null 2>&1; then
    if ! command -v python3 >/dev/null 2>&1; then
        echo "mock_foreign.sh: python3 is needed for the foreign client (websockets)" >&2
        exit 2
    fi
    echo "== creating $VENV with websockets"
    rm -rf "$VENV"
    python3 -m venv "$VENV"
    PIP_DISABLE_PIP_VERSION_CHECK=1 "$VENV/bin/pip" install --quiet 'websockets>=13'
fi
"$VENV/bin/python" -c 'import sys, websockets; print(f"== python {sys.version.split()[0]}, websockets {websockets.__version__}")'
cargo run --quiet --features testing --example mock_foreign -- \
    "$VENV/bin/python" "$ROOT/scripts/mock_foreign_client.py"
