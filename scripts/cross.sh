#!/usr/bin/env bash
# Windows and macOS from this Linux machine: a Debian sid root with
# rustc/cargo and std's source (for -Zbuild-std), mingw-w64 and Wine 10, in which
#
#   windows-test   builds the root package's tests for x86_64-pc-windows-gnu and runs them
#                  under Wine (`cargo test` with Wine as the runner), then the wss tests with
#                  native-tls (SChannel) and rustls;
#   windows-check  checks the library for x86_64-pc-windows-msvc and -gnu with every feature
#                  set users can choose, its tests, examples and benches, and the CLI and the
#                  desktop example (clippy, warnings denied);
#   apple-check    the same for aarch64-apple-darwin and x86_64-apple-darwin: compiled and
#                  linted, not run (there is no macOS runtime here).
#
#   scripts/cross.sh [setup|windows-test|windows-check|apple-check|all] [--short]
#
# Needs root (debootstrap, chroot). The root is cached between runs on the same machine in
# $SYNCWS_CROSS_ROOT (default /var/cache/syncws-cross/sid), with cargo's registry and the
# build directories: a second run downloads nothing and rebuilds only what changed. A fresh
# machine makes it (a few minutes). --short (CI) checks every target with the default
# features and the feature sets one by one on one Windows and one Apple target; the full run
# checks every set on every target.
set -euo pipefail
ROOT_DIR="$(cd "$(dirname "$0")/.." && pwd)"
. "$ROOT_DIR/scripts/lib/services.sh"

SID="${SYNCWS_CROSS_ROOT:-/var/cache/syncws-cross/sid}"
MIRROR="${SYNCWS_CROSS_MIRROR:-http://deb.debian.org/debian}"
PACKAGES=(rustc cargo rust-src rust-clippy gcc-mingw-w64-x86-64 wine wine64 ca-certificates
    git clang lld llvm)
stage="${1:-all}"
short=false
[ "${2:-}" = "--short" ] && short=true

say() { printf '== cross: %s\n' "$*"; }

# Mounts what a build inside the root needs, once per run, and undoes it on exit.
MOUNTED=()
mount_inside() {
    local what=$1 where=$2 how=$3
    mountpoint -q "$SID$where" && return 0
    mkdir -p "$SID$where"
    # shellcheck disable=SC2086
    mount $how "$what" "$SID$where"
    MOUNTED+=("$SID$where")
}
unmount_all() {
    local i
    for ((i = ${#MOUNTED[@]} - 1; i >= 0; i--)); do
        umount -l "${MOUNTED[$i]}" 2>/dev/null || true
    done
}
trap unmount_all EXIT

setup() {
    if [ "$(id -u)" != 0 ]; then
        echo "cross.sh: needs root (debootstrap and chroot)" >&2
        exit 2
    fi
    command -v debootstrap >/dev/null 2>&1 || install_packages debootstrap
    local stamp="$SID/.syncws-cross-packages"
    if [ ! -x "$SID/usr/bin/apt-get" ]; then
        say "debootstrap sid into $SID"
        rm -rf "$SID"
        mkdir -p "$(dirname "$SID")"
        debootstrap --variant=minbase --include=ca-certificates sid "$SID" "$MIRROR" \
            >"$SID.debootstrap.log" 2>&1 ||
            { tail -n 30 "$SID.debootstrap.log"; exit 1; }
    fi
    mount_inside proc /proc "-t proc"
    # A sandbox that intercepts TLS gives its CA in SSL_CERT_FILE: cargo in the root needs it.
    cp "${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}" "$SID/etc/ssl/host-ca.crt"
    if [ "$(cat "$stamp" 2>/dev/null)" != "${PACKAGES[*]}" ]; then
        say "installing ${PACKAGES[*]} in the root"
        # The sid index served here can be past its Valid-Until date.
        chroot "$SID" /usr/bin/env DEBIAN_FRONTEND=noninteractive /bin/sh -c \
            "apt-get -o Acquire::Check-Valid-Until=false update -qq &&
             apt-get -o Acquire::Check-Valid-Until=false install -y -qq --no-install-recommends \
             ${PACKAGES[*]}" >"$SID.apt.log" 2>&1 ||
            { tail -n 30 "$SID.apt.log"; exit 1; }
        echo "${PACKAGES[*]}" >"$stamp"
    fi
    # The sources, read-only at /src; cargo's home and build directories stay in the root.
    mount_inside "$ROOT_DIR" /src "--bind -o ro"
    mkdir -p "$SID/cache/cargo" "$SID/cache/target" "$SID/tmp/xdg"
    chmod 700 "$SID/tmp/xdg"
    chroot "$SID" rustc --version
}

# C for the targets without their SDK (ring, under rustls and the tests' rcgen, builds C):
# clang (clang-cl and llvm-lib for MSVC), freestanding, with ring's no-libc switch and a header
# or two standing in for the SDKs' (scripts/lib/*-sdk-shim). Good for `cargo check` and clippy,
# which link nothing; Windows GNU uses mingw-w64, a real toolchain, and links.
SHIM=/src/scripts/lib
C_TOOLCHAIN=(
    CC_aarch64_apple_darwin=clang CC_x86_64_apple_darwin=clang
    "CFLAGS_aarch64_apple_darwin=-ffreestanding -DRING_CORE_NOSTDLIBINC -I$SHIM/apple-sdk-shim"
    "CFLAGS_x86_64_apple_darwin=-ffreestanding -DRING_CORE_NOSTDLIBINC -I$SHIM/apple-sdk-shim"
    CC_x86_64_pc_windows_msvc=clang-cl AR_x86_64_pc_windows_msvc=llvm-lib
    "CFLAGS_x86_64_pc_windows_msvc=-DRING_CORE_NOSTDLIBINC -I$SHIM/msvc-sdk-shim"
)

# Runs a command in the root, in /src, with cargo set up for the cross builds.
inside() {
    chroot "$SID" /usr/bin/env -i \
        PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root \
        CARGO_HOME=/cache/cargo CARGO_TARGET_DIR=/cache/target \
        CARGO_INCREMENTAL=0 CARGO_PROFILE_DEV_DEBUG=line-tables-only \
        CARGO_PROFILE_TEST_DEBUG=line-tables-only \
        SSL_CERT_FILE=/etc/ssl/host-ca.crt CARGO_HTTP_CAINFO=/etc/ssl/host-ca.crt \
        RUSTC_BOOTSTRAP=1 \
        CARGO_TARGET_X86_64_PC_WINDOWS_GNU_LINKER=x86_64-w64-mingw32-gcc \
        CARGO_TARGET_X86_64_PC_WINDOWS_GNU_RUNNER=/src/scripts/lib/wine_runner.sh \
        WINEPREFIX=/cache/wineprefix WINEDEBUG=-all XDG_RUNTIME_DIR=/tmp/xdg \
        RUST_BACKTRACE=1 \
        "${C_TOOLCHAIN[@]}" \
        /bin/bash -c "cd /src && $*"
}

# -Zbuild-std: the root's rustc has no std for these targets, only std's source.
BUILD_STD="-Zbuild-std"

windows_test() {
    # TLS is rustls's here: Wine's SChannel cannot serve as native-tls needs (a server cannot
    # import the tests' P-256 PKCS#8 key: ERROR_FILE_NOT_FOUND; a client's chain check fails
    # with CERT_E_REVOCATION_FAILURE for certificates without a revocation source). The
    # native-tls build is compiled below and in windows-check.
    say "the test suite for x86_64-pc-windows-gnu, under Wine (rustls)"
    inside "wine --version; cargo test $BUILD_STD --target x86_64-pc-windows-gnu \
        --no-default-features --features rustls --no-fail-fast"
    say "the tests with native-tls (SChannel) compile for x86_64-pc-windows-gnu"
    inside "cargo test $BUILD_STD --target x86_64-pc-windows-gnu --no-run --quiet"
}

# The feature sets users can choose (the library alone, clippy with warnings denied).
FEATURE_SETS=(
    ""
    "--no-default-features --features rustls"
    "--no-default-features --features rustls-webpki-roots"
    "--no-default-features"
    "--features http"
    "--features testing"
)

# clippy, warnings denied, for `target`: the library with every feature set (or, with --short,
# the default set and the others on `full_target` only), then its tests, examples and benches,
# the CLI and (`desktop` yes) the desktop example.
check_target() {
    local target=$1 desktop=$2 full=$3
    local deny="-D warnings"
    # clippy 1.97 on windows-gnu asks to make `const` thread-local initializers that already
    # are `const { .. }` (missing_const_for_thread_local; not on msvc, Linux or Apple): a
    # false positive, allowed for this target only.
    [ "$target" = x86_64-pc-windows-gnu ] && deny="$deny -A clippy::missing_const_for_thread_local"
    local sets=("${FEATURE_SETS[@]}")
    if $short && [ "$full" != yes ]; then
        sets=("")
    fi
    local set
    for set in "${sets[@]}"; do
        say "clippy $target: the library ${set:-(default features)}"
        inside "cargo clippy --quiet $BUILD_STD --target $target --lib $set -- $deny"
    done
    say "clippy $target: tests, examples and benches"
    inside "cargo clippy --quiet $BUILD_STD --target $target --all-targets -- $deny"
    say "clippy $target: the CLI"
    inside "cargo clippy --quiet $BUILD_STD --target $target -p syncws-cli --all-targets -- $deny"
    if [ "$desktop" = yes ]; then
        say "clippy $target: the desktop example"
        inside "cargo clippy --quiet $BUILD_STD --target $target -p syncws-desktop -- $deny"
    fi
}

windows_check() {
    check_target x86_64-pc-windows-msvc yes yes
    check_target x86_64-pc-windows-gnu no no
    say "the CLI and the desktop example link for x86_64-pc-windows-gnu"
    inside "cargo build --quiet $BUILD_STD --target x86_64-pc-windows-gnu -p syncws-cli -p syncws-desktop"
}

apple_check() {
    check_target aarch64-apple-darwin yes yes
    if $short; then
        check_target x86_64-apple-darwin no no
    else
        check_target x86_64-apple-darwin yes yes
    fi
}

case "$stage" in
setup) setup ;;
windows-test) setup; windows_test ;;
windows-check) setup; windows_check ;;
apple-check) setup; apple_check ;;
all) setup; windows_test; windows_check; apple_check ;;
*) echo "cross.sh: unknown stage '$stage'" >&2; exit 2 ;;
esac
