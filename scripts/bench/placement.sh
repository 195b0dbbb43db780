#!/usr/bin/env bash
# Placement quality of `strata simulate` against its references, per workload shape and
# hot-tier capacity: for each workload (a shape of scripts/gen-trace.py over a Zipf
# background, scans over a hot set, and a mix of every shape; about 1,000 objects, DAYS
# days, default 7) and each capacity (CAPS, default "0.02 0.10": the hot tier's share of
# all the trace's bytes; `private` gets 5 x that), runs a release `strata simulate
# --policy all --json` (the model trained on the first quarter of the trace) and prints
# one row: the combined policy's HOT HIT, its share of perfect foresight, the references,
# and the bytes moved against perfect foresight's. Then the mean share of perfect
# foresight over all rows. WORKLOADS="catalogue catalogue-churn catalogue-flat" runs
# scripts/bench/catalogue-trace.py's workloads instead (workloads.sh).
#
#   scripts/bench/placement.sh [DAYS]          SEEDS="1 2" CAPS="0.02" WORKLOADS="daily mix"
#   HEADROOM=0 scripts/bench/placement.sh      (TIER_<hot tiers>_HEADROOM for the runs)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
DAYS=${1:-7}
CAPS=${CAPS:-"0.02 0.10"}
# shellcheck source=scripts/bench/workloads.sh
source "$ROOT/scripts/bench/workloads.sh"
for seed in $SEEDS; do
    for workload in $WORKLOADS; do
        trace=$(workload_trace "$workload" "$DAYS" "$seed")
        total=$(python3 -c '
import sys
sizes = {}
with open(sys.argv[1]) as f:
    next(f)
    for line in f:
        _, oid, size, _ = line.split(",", 3)
        sizes.setdefault(oid, int(size))
print(sum(sizes.values()))' "$trace")
        for cap in $CAPS; do
            hot=$(python3 -c "print(int($total * $cap))")
            # An empty environment but PATH: only the capacities change the tiers.
            env -i PATH="$PATH" ${HEADROOM:+TIER_ONPREM_HEADROOM=$HEADROOM TIER_PRIVATE_HEADROOM=$HEADROOM} TIER_ONPREM_CAPACITY_BYTES="$hot" \
                TIER_PRIVATE_CAPACITY_BYTES=$((hot * 5)) \
                target/release/strata simulate --trace "$trace" --policy all --json \
                >"$OUT/$workload-$cap-$seed.json"
        done
    done
done
python3 - "$OUT" <<'EOF'
import json, os, sys
rows = []
for name in sorted(os.listdir(sys.argv[1])):
    workload, cap, seed = name[:-5].rsplit("-", 2)
    r = json.load(open(os.path.join(sys.argv[1], name)))
    refs = {x["name"]: x for x in r["references"]}
    pol = {p["policy"]: p for p in r["policies"]}
    perfect = refs["perfect foresight"]
    rows.append((workload, float(cap), seed, pol, refs, perfect))
print(f"{'workload':<15} {'cap':>5} {'seed':>4} {'static':>7} {'react':>6} {'proact':>6} {'comb':>6} "
      f"{'true':>6} {'best st':>7} {'LRU':>6} {'perfect':>7} {'of pf':>6} {'moved/pf':>8}  ok")
shares = []
for workload, cap, seed, pol, refs, perfect in rows:
    c = pol["combined"]
    moved = sum(m["bytes"] for m in c["moves"])
    moved_ratio = moved / max(perfect["bytes_moved"], 1)
    share = c["hot_hit_ratio"] / perfect["hot_hit_ratio"] if perfect["hot_hit_ratio"] else 0
    shares.append(share)
    ok = (c["hot_hit_ratio"] >= refs["best static"]["hot_hit_ratio"]
          and c["hot_hit_ratio"] >= refs["LRU"]["hot_hit_ratio"] and moved_ratio <= 2)
    print(f"{workload:<15} {cap:>5.2f} {seed:>4} {pol['static']['hot_hit_ratio']:>7.3f} "
          f"{pol['reactive']['hot_hit_ratio']:>6.3f} {pol['proactive']['hot_hit_ratio']:>6.3f} "
          f"{c['hot_hit_ratio']:>6.3f} {pol['true-counts']['hot_hit_ratio']:>6.3f} "
          f"{refs['best static']['hot_hit_ratio']:>7.3f} "
          f"{refs['LRU']['hot_hit_ratio']:>6.3f} {perfect['hot_hit_ratio']:>7.3f} {share:>6.3f} "
          f"{moved_ratio:>8.2f}  {'yes' if ok else 'NO'}")
print(f"mean share of perfect foresight: {sum(shares) / len(shares):.3f}")
EOF
