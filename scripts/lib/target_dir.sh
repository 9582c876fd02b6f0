# Where cargo puts what it builds: CARGO_TARGET_DIR, a `build.target-dir` in cargo's config, or
# target/ in the workspace; `cargo metadata` knows which. Source it after `set -euo pipefail`,
# from anywhere in the repository:
#
#   . "$(dirname "$0")/lib/target_dir.sh"
#   "$TARGET_DIR/debug/syncws" ...
#
# Scripts that keep their own files (logs, a venv, certificates) keep them there too, so a
# user with CARGO_TARGET_DIR set has nothing written into the source tree.
TARGET_DIR=$(
    cd "$(dirname "${BASH_SOURCE[0]}")/../.." &&
        cargo metadata --format-version 1 --no-deps |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])'
)
mkdir -p "$TARGET_DIR"
export TARGET_DIR
