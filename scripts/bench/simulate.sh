#!/usr/bin/env bash
# `strata simulate` replay speed and memory: generates a large trace (every workload
# shape of scripts/gen-trace.py; DAYS days, default 7, about 3.3 million accesses a day)
# once into TRACE_DIR (default target/bench-traces), then times a release `strata
# simulate --policy combined` on it with the shipped model (so the time is the replay's:
# the pass that checks the trace, then the replay), and prints accesses per second and
# peak RSS (from /usr/bin/time -v when present). The issue asks for at least 1,000,000
# accesses/s, with memory bounded by the objects, not the accesses: run it with two
# lengths (DAYS 3 and 7) and the peak RSS should barely move. With HOT_SHARE set (a
# share of all the trace's bytes, e.g. 0.02), `onprem` gets that capacity and `private`
# 5 x that, so the replay ranks placement every forecaster run: compare with a run
# without it, on the same trace.
#
#   scripts/bench/simulate.sh [DAYS]          HOT_SHARE=0.02 scripts/bench/simulate.sh 3
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
DAYS=${1:-7}
DIR=${TRACE_DIR:-$ROOT/target/bench-traces}
SHAPES=zipf=100000,daily=500,burst=300,rising=100,decay=300,batch=500,scan=20000
TRACE="$DIR/simulate-$DAYS-days.csv"
mkdir -p "$DIR"
if [ ! -s "$TRACE" ]; then
    echo "generating $TRACE" >&2
    python3 scripts/gen-trace.py --shapes "$SHAPES" --zipf-rate 100000 --days "$DAYS" \
        --seed 1 >"$TRACE.part"
    mv "$TRACE.part" "$TRACE"
fi
cargo build --release --quiet
MODEL=$(ls models/*.json | tail -n 1)
ACCESSES=$(($(wc -l <"$TRACE") - 1))
OUT=$(mktemp)
trap 'rm -f "$OUT" "$OUT.time"' EXIT
CAPACITIES=()
if [ -n "${HOT_SHARE:-}" ]; then
    # Each object's size once, summed.
    TOTAL=$(awk -F, 'NR > 1 && !seen[$2]++ { total += $3 } END { printf "%d", total }' "$TRACE")
    HOT=$(python3 -c "print(int($TOTAL * $HOT_SHARE))")
    CAPACITIES=(TIER_ONPREM_CAPACITY_BYTES="$HOT" TIER_PRIVATE_CAPACITY_BYTES=$((HOT * 5)))
fi
# An empty environment but PATH: no .env or stack variables change the tiers.
RUN=(env -i PATH="$PATH" "${CAPACITIES[@]}" target/release/strata simulate --trace "$TRACE"
    --policy combined --model "$MODEL" --json)
START=$(date +%s.%N)
if [ -x /usr/bin/time ]; then
    /usr/bin/time -v -o "$OUT.time" "${RUN[@]}" >"$OUT"
else
    "${RUN[@]}" >"$OUT"
fi
END=$(date +%s.%N)
python3 - "$OUT" "$ACCESSES" "$START" "$END" "$OUT.time" <<'EOF'
import json, re, sys
report = json.load(open(sys.argv[1]))
accesses, start, end = int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
assert report["accesses"] == accesses, (report["accesses"], accesses)
seconds = end - start
rss = "n/a"
try:
    m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", open(sys.argv[5]).read())
    rss = f"{int(m.group(1)) / 1024:.1f} MiB" if m else rss
except OSError:
    pass
combined = report["policies"][0]
print(f"trace: {accesses} accesses of {report['objects']} objects over "
      f"{(report['last_ms'] - report['first_ms']) / 86_400_000:.1f} days")
print(f"combined: {seconds:.2f} s, {accesses / seconds / 1e6:.2f} M accesses/s, peak RSS {rss}; "
      f"hot hit ratio {combined['hot_hit_ratio']:.3f}, "
      f"moves {sum(m['moves'] for m in combined['moves'])}")
EOF
