#!/usr/bin/env bash
# The test kit's MockServer against a foreign client, Python `websockets`: a
# refusal, then a script of every step a foreign client can answer (see
# examples/mock_foreign.rs and scripts/mock_foreign_client.py).
#
#   scripts/mock_foreign.sh
#
# Uses (and if needed creates) the soak venv, soak-venv in cargo's target directory, with `websockets` from PyPI.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
. "$ROOT/scripts/lib/target_dir.sh"
VENV="$TARGET_DIR/soak-venv"

. "$ROOT/scripts/lib/websockets_venv.sh"
websockets_venv "$VENV" mock_foreign.sh
echo "== $(websockets_version "$VENV")"
cargo run --quiet --features testing --example mock_foreign -- \
    "$VENV/bin/python" "$ROOT/scripts/mock_foreign_client.py"
