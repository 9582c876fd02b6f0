#!/usr/bin/env bash
# Checks that the library builds with the oldest Rust it declares (`rust-version` in
# Cargo.toml), with each TLS choice: the default features (native-tls) plus `http`, rustls alone, and no
# TLS at all. Installs that toolchain (rustup, minimal profile) if it is missing, so it is
# idempotent on a fresh machine. Uses its own target dir (target/msrv) so the main build is
# not evicted. Uses the committed Cargo.lock as is (--locked): a dependency update that needs
# a newer Rust fails here, not in a user's build.
#
#   bash scripts/msrv.sh
set -euo pipefail
cd "$(dirname "$0")/.."

msrv=$(sed -n 's/^rust-version *= *"\([0-9][0-9.]*\)".*/\1/p' Cargo.toml | head -n 1)
if [ -z "$msrv" ]; then
    echo "msrv.sh: no rust-version in Cargo.toml" >&2
    exit 1
fi
if ! rustup run "$msrv" rustc --version >/dev/null 2>&1; then
    echo "== installing Rust $msrv"
    rustup toolchain install "$msrv" --profile minimal
fi

export CARGO_TARGET_DIR=target/msrv
for features in "--features http" "--no-default-features --features rustls" "--no-default-features"; do
    echo "== cargo +$msrv check --lib ${features:-(default features)}"
    # shellcheck disable=SC2086 # the feature flags are separate words
    cargo +"$msrv" check --lib --locked $features
done
echo "msrv.sh: the library builds with Rust $msrv"
