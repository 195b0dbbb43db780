#!/usr/bin/env bash
# Strata's S3 endpoint against the S3 server holding its landing tier, with one client
# (rclone) in one run: PUT and GET of COUNT x 1 MiB objects (default 1000) and of one
# LARGE_MIB object (default 1024), straight to the stack's s3s-fs server of the `public`
# tier and through a release `strata serve` whose landing tier is that server. Each
# measurement runs direct and through-Strata, in turn (direct first in odd runs,
# through Strata first in even ones), after a sync, RUNS times (default 3); the medians
# and their ratio (Strata / direct, throughput) are printed, then each run's own ratio
# (its direct and through-Strata copies ran one after the other, so the machine's
# drift between runs cancels out), with Strata's peak RSS.
# rclone runs with --transfers 8, 8 MiB parts, 4 parts at a time, both ways. COUNT=0
# measures the large object alone (with Strata's RSS before and after: its memory for
# one large put and get); LARGE_MIB=0 the small objects alone.
#
#   scripts/bench/s3_endpoint.sh [COUNT] [LARGE_MIB]
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
COUNT=${1:-1000}
LARGE_MIB=${2:-1024}
RUNS=${RUNS:-3}
scripts/stack.sh up >/dev/null
set -a; . .stack/stack.env; set +a
cargo build --release --quiet
WORK=$(mktemp -d "${TMPDIR:-/tmp}/strata-bench.XXXXXX")
DB=strata_bench_s3_$$
PREFIX=bench-s3-$$
S3_PORT=${S3_PORT:-19210}
API_PORT=${API_PORT:-19211}
psql -q -h 127.0.0.1 -U postgres -c "CREATE DATABASE $DB" postgres
export DATABASE_URL="postgres://postgres@127.0.0.1:5432/$DB"
. "$ROOT/scripts/bench/lib/rclone.sh"
tier_remote DIRECT PUBLIC
rclone_remote STRATA "http://127.0.0.1:$S3_PORT" bench bench-secret
S3_LISTEN_ADDR=127.0.0.1:$S3_PORT S3_ACCESS_KEY_ID=bench S3_SECRET_ACCESS_KEY=bench-secret \
    LISTEN_ADDR=127.0.0.1:$API_PORT RUST_LOG=strata=warn DATA_DIR="$WORK/data" \
    target/release/strata serve >"$WORK/strata.log" 2>&1 &
STRATA=$!
cleanup() {
    # Through Strata, so that the tier's bytes go with the catalogue's objects.
    rclone purge "STRATA:strata/$PREFIX" >/dev/null 2>&1 || true
    kill "$STRATA" 2>/dev/null || true
    wait "$STRATA" 2>/dev/null || true
    # The stack's own files, removed where s3s-fs keeps them: `rclone purge` left a
    # run's direct uploads behind (6 GB a run).
    rm -rf "${STACK_S3_ROOT:?}/public/strata-public/$PREFIX"
    psql -q -h 127.0.0.1 -U postgres -c "DROP DATABASE IF EXISTS $DB" postgres || true
    rm -rf "$WORK"
    "$ROOT/scripts/bench/lib/s3s_fs_sweep.py" "$STACK_S3_ROOT"/* || true
}
trap cleanup EXIT
for _ in $(seq 100); do
    curl -fs "http://127.0.0.1:$API_PORT/readyz" >/dev/null && break
    sleep 0.2
done
curl -fs "http://127.0.0.1:$API_PORT/readyz" >/dev/null || { cat "$WORK/strata.log"; exit 1; }
idle=$(grep VmHWM "/proc/$STRATA/status" | awk '{print $2}')
SIZES=(small large)
[ "$COUNT" -gt 0 ] || SIZES=(large)
[ "$LARGE_MIB" -gt 0 ] || SIZES=(small)

mkdir -p "$WORK/small" "$WORK/large"
python3 - "$WORK/small" "$COUNT" <<'PY'
import os, sys
for i in range(int(sys.argv[2])):
    with open(os.path.join(sys.argv[1], f"{i:05d}.bin"), "wb") as f:
        f.write(os.urandom(1024 * 1024))
PY
head -c "$((LARGE_MIB * 1024 * 1024))" /dev/urandom >"$WORK/large/object.bin"

(cd "$WORK/small" && ls) >"$WORK/small.list"
echo object.bin >"$WORK/large.list"
# Named files, read from the bucket's root: rclone asks whether a remote directory path
# is a file, and s3s-fs answers that for a directory after a long wait.
FLAGS=(--transfers 8 --s3-chunk-size 8M --s3-upload-concurrency 4 --s3-no-check-bucket
    --no-traverse)
# Each copy starts with no dirty pages: the bytes a copy leaves for the kernel to write
# back (30 s later by default) would otherwise be written during the next one.
secs() { sync; local s=$EPOCHREALTIME; "$@" >/dev/null; echo "$EPOCHREALTIME - $s" | bc -l; }
put() { secs rclone copy "${FLAGS[@]}" --files-from "$WORK/$1.list" "$WORK/$1" "$2"; }
get() { # BUCKET_REMOTE PATH WHAT
    rm -rf "$WORK/back"
    sed "s|^|$2/|" "$WORK/$3.list" >"$WORK/get.list"
    secs rclone copy "${FLAGS[@]}" --files-from "$WORK/get.list" "$1" "$WORK/back"
}
declare -A took
declare -A BUCKET=([direct]=DIRECT:strata-public [strata]=STRATA:strata)
for run in $(seq "$RUNS"); do
    for what in "${SIZES[@]}"; do
        path="$PREFIX/$run/$what"
        # Direct first in odd runs, through Strata first in even ones.
        order=(direct strata)
        [ $((run % 2)) -eq 1 ] || order=(strata direct)
        for via in "${order[@]}"; do
            took[put_${via}_$what]+=" $(put "$what" "${BUCKET[$via]}/$path")"
        done
        for via in "${order[@]}"; do
            took[get_${via}_$what]+=" $(get "${BUCKET[$via]}" "$path" "$what")"
        done
    done
done
rss=$(grep VmHWM "/proc/$STRATA/status" | awk '{print $2}')
median() { tr ' ' '\n' <<<"$1" | grep . | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
bytes_small=$((COUNT * 1024 * 1024))
bytes_large=$((LARGE_MIB * 1024 * 1024))
for what in "${SIZES[@]}"; do
    bytes_var=bytes_$what
    for op in put get; do
        d=$(median "${took[${op}_direct_$what]}")
        s=$(median "${took[${op}_strata_$what]}")
        python3 -c "
import statistics, sys
b, d, s = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
print(f'{sys.argv[4]:3} {sys.argv[5]:5}: direct {d:6.2f} s ({b / d / 2**20:7.1f} MiB/s), '
      f'through strata {s:6.2f} s ({b / s / 2**20:7.1f} MiB/s), ratio {d / s:.2f}')
runs = [float(x) / float(y) for x, y in zip(sys.argv[6].split(), sys.argv[7].split())]
print(f'{\"\":11} run by run: {\" \".join(f\"{r:.2f}\" for r in runs)}, '
      f'median {statistics.median(runs):.2f}')
" "${!bytes_var}" "$d" "$s" "$op" "$what" "${took[${op}_direct_$what]}" \
            "${took[${op}_strata_$what]}"
    done
done
echo "strata peak RSS: $((rss / 1024)) MiB, idle $((idle / 1024)) MiB (runs: $RUNS; all times: ${took[*]})"
