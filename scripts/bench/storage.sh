#!/usr/bin/env bash
# Streaming put then get of one large object through Strata's S3 backend, against
# `rclone copy` up and down with the same file and the same local s3s-fs server, in one
# run. Prints both and the ratio; the issue asks for Strata >= 0.8 x rclone and a peak
# RSS under 100 MiB.
#
#   scripts/bench/storage.sh [SIZE_MIB]     (default 1024)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
SIZE_MIB=${1:-1024}
TIER=public
scripts/stack.sh up >/dev/null
set -a; . .stack/stack.env; set +a
. "$ROOT/scripts/bench/lib/rclone.sh"
tier_remote STACK PUBLIC

WORK=$(mktemp -d "${TMPDIR:-/tmp}/strata-bench.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
head -c "$((SIZE_MIB * 1024 * 1024))" /dev/urandom >"$WORK/object.bin"
cargo bench --bench storage_transfer --no-run >/dev/null 2>&1

secs() { local s=$EPOCHREALTIME; "$@" >/dev/null 2>&1; echo "$EPOCHREALTIME - $s" | bc -l; }

prefix="stack:strata-$TIER/bench-rclone-$$"
rclone_put=$(secs rclone copy "$WORK/object.bin" "$prefix/")
mkdir -p "$WORK/down"
rclone_get=$(secs rclone copy "$prefix/object.bin" "$WORK/down/")
rclone purge "$prefix" >/dev/null 2>&1 || true
rm -rf "$WORK/down"

strata=$(cargo bench --bench storage_transfer -- "$WORK/object.bin" "$TIER" 2>/dev/null | tail -n 1)
field() { python3 -c "import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])" "$strata" "$1"; }
strata_put=$(field put_secs); strata_get=$(field get_secs); rss=$(field peak_rss_mib)

python3 - "$SIZE_MIB" "$rclone_put" "$rclone_get" "$strata_put" "$strata_get" "$rss" <<'PY'
import sys
size, rp, rg, sp, sg, rss = float(sys.argv[1]), *map(float, sys.argv[2:])
print(f"object: {size:.0f} MiB, tier public (s3s-fs on loopback)")
print(f"put:  rclone {size/rp:7.1f} MiB/s   strata {size/sp:7.1f} MiB/s   ratio {rp/sp:.2f}")
print(f"get:  rclone {size/rg:7.1f} MiB/s   strata {size/sg:7.1f} MiB/s   ratio {rg/sg:.2f}")
both_r, both_s = rp + rg, sp + sg
print(f"put+get: rclone {2*size/both_r:7.1f} MiB/s   strata {2*size/both_s:7.1f} MiB/s   ratio {both_r/both_s:.2f}")
print(f"strata peak RSS: {rss:.1f} MiB")
PY
