#!/usr/bin/env bash
# How well the forecaster ranks objects for placement, per workload shape: for each
# workload of scripts/bench/placement.sh (the same traces, cached in the same place),
# `strata train-model --trace` trains on the first quarter of the hours and evaluates on
# the rest (--eval-fraction 0.75), and one row shows the chosen model's kind, its capture
# ratio (capture over the best reachable) at 1 %, 2 % and 10 % of the bytes, and whether
# it captures at least as much as both naive baselines at every size. The model files go
# to a temporary directory, registered in a throwaway SQLite catalogue.
#
#   scripts/bench/capture.sh [DAYS]          SEEDS="1 2" WORKLOADS="daily mix"
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
DAYS=${1:-7}
# shellcheck source=scripts/bench/workloads.sh
source "$ROOT/scripts/bench/workloads.sh"
for seed in $SEEDS; do
    for workload in $WORKLOADS; do
        trace=$(workload_trace "$workload" "$DAYS" "$seed")
        mkdir -p "$OUT/$workload-$seed"
        env -i PATH="$PATH" RUST_LOG=warn \
            DATABASE_URL="sqlite://$OUT/catalogue.db?mode=rwc" \
            target/release/strata train-model --trace "$trace" --eval-fraction 0.75 \
            --out "$OUT/$workload-$seed" --name "$workload" >/dev/null
    done
done
python3 - "$OUT" <<'EOF'
import glob, json, os, sys
print(f"{'workload':<15} {'seed':>4} {'kind':<10} {'ratio 1%':>8} {'2%':>6} {'10%':>6} "
      f"{'other 2%':>8} {'persist 2%':>10} {'mavg 2%':>7}  beats baselines")
for path in sorted(glob.glob(os.path.join(sys.argv[1], "*-*", "*.json"))):
    workload, seed = os.path.basename(os.path.dirname(path)).rsplit("-", 1)
    m = json.load(open(path))
    c = m["evaluation"]["capture"]
    ratio = [x / b if b else 0 for x, b in zip(c["model"], c["best"])]
    other = m.get("alternatives", [])
    other_2 = (other[0]["evaluation"]["capture"]["model"][1] / c["best"][1]) if other else float("nan")
    beats = all(c["model"][i] >= max(c["persistence"][i], c["moving_average"][i]) for i in range(3))
    print(f"{workload:<15} {seed:>4} {m.get('kind', 'log_linear'):<10} {ratio[0]:>8.3f} {ratio[1]:>6.3f} "
          f"{ratio[2]:>6.3f} {other_2:>8.3f} {c['persistence'][1] / c['best'][1]:>10.3f} "
          f"{c['moving_average'][1] / c['best'][1]:>7.3f}  {'yes' if beats else 'NO'}")
EOF
