#!/usr/bin/env bash
# Where the machine's CPU goes when rclone puts COUNT x 1 MiB objects (default 1000)
# through Strata's S3 endpoint: the wall time and the CPU (10 ms ticks, user + system,
# from /proc) of Strata, of the PostgreSQL backends serving its catalogue, of the s3s-fs
# server holding its landing tier and of rclone, over COUNT puts after COUNT to warm up.
# Each build named (default the release build of this checkout) runs on a fresh
# database, in turn, RUNS times (default 2), so that builds can be compared in one run;
# DIRECT=1 also measures the same puts straight to the s3s-fs server after each.
# PERF=DIR also records Strata's CPU profile (perf record) of each measured copy
# through it into DIR/<run>-<build>.data, with PERF_FLAGS added to `perf record`'s
# (e.g. "--call-graph dwarf,16384" for call chains). The rclone flags are
# scripts/bench/s3_endpoint.sh's.
#
#   scripts/bench/s3_put_cpu.sh [COUNT] [BIN ...]
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
COUNT=${1:-1000}
shift || true
RUNS=${RUNS:-2}
scripts/stack.sh up >/dev/null
set -a; . .stack/stack.env; set +a
if [ $# -eq 0 ]; then
    cargo build --release --quiet
    set -- "$ROOT/target/release/strata"
fi
WORK=$(mktemp -d "${TMPDIR:-/tmp}/strata-bench.XXXXXX")
S3_PORT=${S3_PORT:-19230}
API_PORT=${API_PORT:-19231}
PG=(psql -q -h 127.0.0.1 -U postgres -d postgres)
. "$ROOT/scripts/bench/lib/rclone.sh"
tier_remote DIRECT PUBLIC
rclone_remote STRATA "http://127.0.0.1:$S3_PORT" bench bench-secret
URL=http://127.0.0.1:$API_PORT
. "$ROOT/scripts/bench/lib/server.sh"
. "$ROOT/scripts/bench/lib/builds.sh"
cleanup() {
    if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
        rclone purge STRATA:strata >/dev/null 2>&1 || true
    fi
    stop_and_drop_db || true
    rm -rf "${STACK_S3_ROOT:?}/public/strata-public/bench-cpu-$$" "$WORK"
    "$ROOT/scripts/bench/lib/s3s_fs_sweep.py" "$STACK_S3_ROOT"/* || true
}
trap cleanup EXIT

mkdir -p "$WORK/warm" "$WORK/measured"
python3 - "$WORK" "$COUNT" <<'PY'
import os, sys
for part in ("warm", "measured"):
    for i in range(int(sys.argv[2])):
        with open(os.path.join(sys.argv[1], part, f"{i:05d}.bin"), "wb") as f:
            f.write(os.urandom(1024 * 1024))
PY
(cd "$WORK/measured" && ls) >"$WORK/list"
FLAGS=(--transfers 8 --s3-chunk-size 8M --s3-upload-concurrency 4 --s3-no-check-bucket
    --no-traverse --files-from "$WORK/list")
s3s_fs=$(pgrep -f "s3s-fs .*--port ${TIER_PUBLIC_ENDPOINT##*:}" | head -1)
# Context switches of PID ... and their threads: each wait for another process's answer
# (a round trip to PostgreSQL or to the tier) costs one, whatever the machine's speed.
switches() {
    local sum=0 pid
    for pid in "$@"; do
        sum=$((sum + $(cat /proc/"$pid"/task/*/status 2>/dev/null |
            awk '/voluntary_ctxt_switches/ {n += $2} END {print n + 0}')))
    done
    echo "$sum"
}
TIMEFORMAT='%R %U %S'
measure() { # LABEL REMOTE: one measured copy; prints its figures
    local backends s0 p0 f0 w0 v0 took
    backends=$(pgrep -f "postgres: .*$DB" || true)
    s0=$(ticks ${SERVER_PID:-}); p0=$(ticks $backends); f0=$(ticks "$s3s_fs")
    w0=$(switches ${SERVER_PID:-}); v0=$(switches $backends)
    # rclone's own CPU from the shell's `time`: real, user and system seconds.
    local perf=
    if [ -n "${PERF:-}" ] && [ -n "${SERVER_PID:-}" ]; then
        mkdir -p "$PERF"
        perf record -q ${PERF_FLAGS:-} -p "$SERVER_PID" -o "$PERF/${1// /-}.data" 2>/dev/null &
        perf=$!
    fi
    took=$( { time rclone copy "${FLAGS[@]}" "$WORK/measured" "$2" >/dev/null 2>&1; } 2>&1)
    read -r real user sys <<<"$took"
    if [ -n "$perf" ]; then
        kill -INT "$perf"
        wait "$perf" || true
    fi
    printf '%-30s %6.2f s  strata %4d  postgres %4d  s3s-fs %4d  rclone %4.0f' "$1" \
        "$real" $(($(ticks ${SERVER_PID:-}) - s0)) $(($(ticks $backends) - p0)) \
        $(($(ticks "$s3s_fs") - f0)) "$(echo "($user + $sys) * 100" | bc -l)"
    printf '  switches: strata %6d postgres %6d\n' $(($(switches ${SERVER_PID:-}) - w0)) \
        $(($(switches $backends) - v0))
}
echo "COUNT=$COUNT puts of 1 MiB, ticks of 10 ms"
direct=0
for run in $(seq "$RUNS"); do
    for bin in "$@"; do
        BIN=$(readlink -f "$bin") # the server runs in $WORK/run
        start_on_fresh_db "cpu_$run" S3_LISTEN_ADDR=127.0.0.1:$S3_PORT S3_ACCESS_KEY_ID=bench \
            S3_SECRET_ACCESS_KEY=bench-secret LISTEN_ADDR=127.0.0.1:$API_PORT \
            RUST_LOG=strata=warn DATA_DIR="$WORK/data"
        rclone copy "${FLAGS[@]}" "$WORK/warm" "STRATA:strata/warm" >/dev/null 2>&1
        measure "run $run $(basename "$bin")" "STRATA:strata/measured"
        # Through Strata, so that the tier's files go with the catalogue's rows; then
        # what s3s-fs keeps of deleted objects, which slows it as it piles up.
        rclone purge STRATA:strata >/dev/null 2>&1 || true
        "$ROOT/scripts/bench/lib/s3s_fs_sweep.py" "$STACK_S3_ROOT"/*
        stop_and_drop_db
        if [ "${DIRECT:-0}" = 1 ]; then
            # A new prefix each time: s3s-fs answers rclone's question whether an
            # existing directory is a file only after a long wait.
            measure "run $run direct to s3s-fs" "DIRECT:strata-public/bench-cpu-$$/$run-$((++direct))"
            rclone purge "DIRECT:strata-public/bench-cpu-$$" >/dev/null 2>&1 || true
            "$ROOT/scripts/bench/lib/s3s_fs_sweep.py" "$STACK_S3_ROOT"/*
        fi
    done
done
