#!/usr/bin/env bash
# Runs the cargo-fuzz targets in fuzz/ one after another, SECONDS each, and prints the
# executions each did and their total. Exits non-zero if any target crashed, leaked, timed out
# or ran out of memory (the input that did it is left in fuzz/artifacts/<target>/).
#
#   bash scripts/fuzz.sh SECONDS [TARGET...]     # default: every target
#
# Needs rustup's nightly toolchain (`cargo +nightly`); installs cargo-fuzz if it is missing.
# Everything runs under `nice -n 19`, one fuzz process at a time. Inputs: fuzz/seeds/<target>/
# (committed) and fuzz/regressions/<target>/ (committed, minimised crashes) are read;
# fuzz/corpus/<target>/ (ignored by git) is the working corpus that new inputs are written to.
# See docs/fuzzing.md.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

usage() {
    echo "usage: bash scripts/fuzz.sh SECONDS [TARGET...]" >&2
    exit 2
}
[[ $# -ge 1 && $1 =~ ^[0-9]+$ && $1 -ge 1 ]] || usage
seconds=$1
shift
all=(decoder parts roundtrip handshake_request server_request handshake_response extensions utf8 close proxy
    redirect forwarded)
targets=("$@")
[[ ${#targets[@]} -gt 0 ]] || targets=("${all[@]}")

# The longest input libFuzzer makes for each target: long enough for what the target parses
# (several frames, a head with 100 header lines), short enough that one input stays far below
# a second of work.
max_len() {
    case $1 in
        decoder | parts | roundtrip) echo 16384 ;;
        handshake_request | server_request | handshake_response) echo 8192 ;;
        extensions) echo 2048 ;;
        utf8) echo 512 ;;
        close) echo 256 ;;
        proxy) echo 4096 ;;
        redirect) echo 1024 ;;
        forwarded) echo 1024 ;;
        *) echo "unknown target '$1' (targets: ${all[*]})" >&2; exit 2 ;;
    esac
}
dict() {
    case $1 in
        handshake_request | server_request | handshake_response | proxy | redirect)
            echo "$root/fuzz/dicts/http.dict" ;;
        extensions) echo "$root/fuzz/dicts/extensions.dict" ;;
    esac
}
for t in "${targets[@]}"; do max_len "$t" >/dev/null; done

if ! cargo +nightly fuzz --help >/dev/null 2>&1; then
    echo "== installing cargo-fuzz"
    nice -n 19 cargo install cargo-fuzz --locked
fi

cd fuzz
# A build directory of its own when one is set for everything (CI's): the fuzz build's flags
# (--cfg fuzzing, sanitizers) would otherwise rebuild the main one's artifacts.
[ -z "${CARGO_TARGET_DIR:-}" ] || export CARGO_TARGET_DIR="$CARGO_TARGET_DIR/fuzz"
echo "== cargo +nightly fuzz build (all targets)"
build_start=$(date +%s)
nice -n 19 cargo +nightly fuzz build
echo "built in $(($(date +%s) - build_start)) s"

logs=$root/fuzz/target/fuzz-logs
mkdir -p "$logs"
total=0
failed=()
rows=()
for t in "${targets[@]}"; do
    dirs=("$root/fuzz/corpus/$t" "$root/fuzz/seeds/$t")
    mkdir -p "${dirs[0]}"
    [[ -d $root/fuzz/regressions/$t ]] && dirs+=("$root/fuzz/regressions/$t")
    args=(-max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len="$(max_len "$t")"
        -print_final_stats=1)
    d=$(dict "$t")
    [[ -n $d ]] && args+=(-dict="$d")
    log=$logs/$t.log
    echo "== $t: ${seconds}s"
    start=$(date +%s)
    set +e
    nice -n 19 cargo +nightly fuzz run "$t" "${dirs[@]}" -- "${args[@]}" >"$log" 2>&1
    rc=$?
    set -e
    took=$(($(date +%s) - start))
    execs=$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -oE '[0-9]+$' |
        tail -n 1 || true)
    if [[ -z $execs ]]; then
        execs=$(grep -oE 'Done [0-9]+ runs' "$log" | grep -oE '[0-9]+' | tail -n 1 || true)
    fi
    execs=${execs:-0}
    total=$((total + execs))
    crashes=0 leaks=0 timeouts=0 ooms=0
    grep -qE 'ERROR: LeakSanitizer' "$log" && leaks=1
    grep -qE 'ERROR: libFuzzer: timeout' "$log" && timeouts=1
    grep -qE 'ERROR: libFuzzer: out-of-memory' "$log" && ooms=1
    if [[ $rc -ne 0 && $leaks -eq 0 && $timeouts -eq 0 && $ooms -eq 0 ]]; then crashes=1; fi
    cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -n 1 | grep -oE '[0-9]+' || true)
    corpus=$(find "${dirs[0]}" -type f | wc -l)
    printf '%-20s %8s executions in %4ss (cov %s, corpus %s)\n' "$t" "$execs" "$took" \
        "${cov:-?}" "$corpus"
    rows+=("| $t | $took | $execs | $crashes | $leaks | $timeouts |")
    if [[ $rc -ne 0 ]]; then
        failed+=("$t")
        echo "!! $t failed (exit $rc): crash=$crashes leak=$leaks timeout=$timeouts oom=$ooms"
        grep -E 'panicked at|ERROR:|SUMMARY:|Test unit written to|^Output of' "$log" |
            head -n 20 || true
        echo "   full log: $log"
    fi
done

echo "== fuzzing summary (${seconds}s per target)"
echo "| target | seconds | executions | crashes | leaks | timeouts |"
echo "| --- | ---: | ---: | ---: | ---: | ---: |"
printf '%s\n' "${rows[@]}"
echo "total executions: $total"
if [[ ${#failed[@]} -gt 0 ]]; then
    echo "FAILED: ${failed[*]} (inputs in fuzz/artifacts/<target>/)"
    exit 1
fi
echo "all ${#targets[@]} targets ran clean"
