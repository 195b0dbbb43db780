#!/usr/bin/env bash
# Tier moves against rclone between the same two local S3 servers (public -> onprem),
# in one run:
#   1. one large object (default 1024 MiB): `rclone copy` server to server vs one move;
#   2. many small objects (default 2000 x 100 KiB): `rclone copy --transfers N` vs the
#      mover with MOVER_CONCURRENCY=N (default N=8).
# Strata's moves verify each copy before the source is deleted: the large object is
# moved with MOVER_VERIFY=checksum (the default: end-to-end checksums) and with
# MOVER_VERIFY=full (the copy also read back), alternating with rclone, RUNS times
# (default 3), and the medians are compared; rclone compares the MD5 the server reports.
# Strata signs its uploads to onprem where rclone signs its own: the parts of the large
# object (each part's SHA-256 in its signature), not the single requests of the small
# ones (rclone streams those unsigned, with the source's MD5 as Content-MD5). A
# TIER_ONPREM_SIGN_PAYLOAD set by the caller applies to both.
#
#   scripts/bench/mover.sh [LARGE_MIB] [COUNT] [N]
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
LARGE_MIB=${1:-1024}
COUNT=${2:-2000}
N=${3:-8}
SMALL=102400
RUNS=${RUNS:-3}
scripts/stack.sh up >/dev/null
sign_large=${TIER_ONPREM_SIGN_PAYLOAD:-true}
sign_many=${TIER_ONPREM_SIGN_PAYLOAD:-false}
set -a; . .stack/stack.env; set +a
. "$ROOT/scripts/bench/lib/rclone.sh"
tier_remote PUBLIC PUBLIC
tier_remote ONPREM ONPREM
WORK=$(mktemp -d "${TMPDIR:-/tmp}/strata-bench.XXXXXX")
PREFIX=bench-mover-$$
cleanup() {
    # The stack's own files, removed where s3s-fs keeps them: `rclone purge` left a
    # run's copies behind (gigabytes a run).
    rm -rf "${STACK_S3_ROOT:?}/public/strata-public/$PREFIX" "${STACK_S3_ROOT:?}/onprem/strata-onprem/$PREFIX"
    rm -rf "$WORK"
    "$ROOT/scripts/bench/lib/s3s_fs_sweep.py" "$STACK_S3_ROOT"/* || true
}
trap cleanup EXIT
cargo bench --bench mover_transfer --no-run >/dev/null 2>&1
secs() { local s=$EPOCHREALTIME; "$@" >/dev/null 2>&1; echo "$EPOCHREALTIME - $s" | bc -l; }
json() { python3 -c "import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])" "$1" "$2"; }

head -c "$((LARGE_MIB * 1024 * 1024))" /dev/urandom >"$WORK/object.bin"
rclone copy "$WORK/object.bin" "PUBLIC:strata-public/$PREFIX/large/"
rclone_large="" strata_large_checksum="" strata_large_full=""
for run in $(seq "$RUNS"); do
    # A fresh destination each run: rclone skips a file the destination already has.
    rclone_large+=" $(secs rclone copy "PUBLIC:strata-public/$PREFIX/large/object.bin" "ONPREM:strata-onprem/$PREFIX/large-$run/")"
    strata_large_checksum+=" $(json "$(TIER_ONPREM_SIGN_PAYLOAD=$sign_large MOVER_VERIFY=checksum cargo bench --bench mover_transfer -- large "$WORK/object.bin" 2>/dev/null | tail -n 1)" secs)"
    strata_large_full+=" $(json "$(TIER_ONPREM_SIGN_PAYLOAD=$sign_large MOVER_VERIFY=full cargo bench --bench mover_transfer -- large "$WORK/object.bin" 2>/dev/null | tail -n 1)" secs)"
done
rm -f "$WORK/object.bin"

# Named files, copied from the buckets' roots: rclone first asks whether a directory
# path names a file, s3s-fs answers that HEAD with 500, and rclone's retries of it took
# about 90 s of each run whatever COUNT (the figures before session 25).
MANY="$WORK/src/$PREFIX/many"
mkdir -p "$MANY"
python3 - "$MANY" "$COUNT" "$SMALL" <<'PY'
import os, sys
d, n, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for i in range(n):
    with open(os.path.join(d, f"{i:05}.bin"), "wb") as f:
        f.write(os.urandom(size))
PY
(cd "$WORK/src" && find . -type f | sed 's|^\./||') >"$WORK/many.list"
FROM_LIST=(--transfers "$N" --files-from "$WORK/many.list" --no-traverse)
rclone copy "${FROM_LIST[@]}" "$WORK/src" "PUBLIC:strata-public"
rclone_many="" strata_many=""
for run in $(seq "$RUNS"); do
    # A fresh destination each run: rclone skips a file the destination already has.
    rm -rf "${STACK_S3_ROOT:?}/onprem/strata-onprem/$PREFIX/many"
    rclone_many+=" $(secs rclone copy "${FROM_LIST[@]}" "PUBLIC:strata-public" "ONPREM:strata-onprem")"
    strata_many+=" $(json "$(TIER_ONPREM_SIGN_PAYLOAD=$sign_many MOVER_VERIFY=checksum cargo bench --bench mover_transfer -- many "$COUNT" "$SMALL" "$N" 2>/dev/null | tail -n 1)" secs)"
done

python3 - "$LARGE_MIB" "$rclone_large" "$strata_large_checksum" "$COUNT" "$N" "$rclone_many" "$strata_many" "$strata_large_full" <<'PY'
import statistics, sys
median = lambda arg: statistics.median(float(x) for x in arg.split())
mib, rl, sc = float(sys.argv[1]), median(sys.argv[2]), median(sys.argv[3])
count, n, rm, sm = int(sys.argv[4]), int(sys.argv[5]), median(sys.argv[6]), median(sys.argv[7])
sf = median(sys.argv[8])
runs = len(sys.argv[2].split())
print(f"one {mib:.0f} MiB object, public -> onprem, median of {runs} alternating runs:")
print(f"  rclone copy {mib/rl:7.1f} MiB/s   strata move (verify checksum) {mib/sc:7.1f} MiB/s   ratio {rl/sc:.2f}")
print(f"  rclone copy {mib/rl:7.1f} MiB/s   strata move (verify full)     {mib/sf:7.1f} MiB/s   ratio {rl/sf:.2f}")
print(f"{count} objects of 100 KiB, {n} at once, median of {runs} alternating runs:")
print(f"  rclone copy {count/rm:7.1f} obj/s   strata moves {count/sm:7.1f} obj/s   ratio {rm/sm:.2f}")
PY
