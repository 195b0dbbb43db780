#!/usr/bin/env bash
# Strata over a large catalogue, alone and as three instances: release `strata serve`
# processes on the local stack, their PostgreSQL catalogue filled by SQL with OBJECTS
# objects (default 10,000,000), HISTORY of them (default 1,000,000) with a week of hour
# buckets, each object read in one hour of DENSITY (default 10: most objects are not read
# every hour). Prints, for one instance and then for three started together: the time
# from start to ready (`/readyz` answers 200), the first forecast run of each instance
# (objects it predicted and the seconds it took, from `/metrics`) and each instance's
# peak RSS (VmHWM) after it; with one instance, REST latency (p50, p99 of ROUNDS
# requests, default 200) of a page of 100 objects (following the cursor) and of one
# object's metadata; the database's size. Last, the query with which the holder of
# forecast shard 0 reads the stored values to rank every object when the shards are
# split (tiers onprem and private with a capacity), timed by psql.
#
#   scripts/bench/scale.sh [OBJECTS] [HISTORY] [DENSITY] [ROUNDS]
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
OBJECTS=${1:-10000000}
HISTORY=${2:-1000000}
DENSITY=${3:-10}
ROUNDS=${4:-200}

NAME=scale
. "$ROOT/scripts/bench/lib/catalogue.sh"
export RUST_LOG=strata=info
PIDS=()
stop_all() {
    for pid in "${PIDS[@]}"; do kill -INT "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    PIDS=()
}
trap 'stop_all; cleanup' EXIT

NOW=$(date +%s%3N)
HOUR=3600000
started=$SECONDS
"${PG[@]}" -d "$DB" <<SQL
INSERT INTO objects (id, bucket, object_key, size, content_type, checksum, tier, location,
                     version, created_at, updated_at, modified_at, access_total, metadata)
SELECT 'obj-' || lpad(g::text, 8, '0'), 'strata', 'bench/' || lpad(g::text, 8, '0'),
       1000 + g % 100000, 'application/octet-stream', 'blake3:00',
       CASE WHEN g % 50 = 0 THEN 'onprem' WHEN g % 10 = 0 THEN 'private' ELSE 'public' END,
       'objects/' || g, 1, $NOW - 30 * 24 * $HOUR::bigint, $NOW, $NOW - 30 * 24 * $HOUR::bigint,
       0, '{}'
FROM generate_series(1, $OBJECTS) AS g;
INSERT INTO access_buckets (object_id, resolution_ms, bucket_start, hits)
SELECT 'obj-' || lpad(o::text, 8, '0'), $HOUR, ($NOW / $HOUR - h) * $HOUR::bigint, 1 + (o + h) % 7
FROM generate_series(1, $HISTORY) AS o, generate_series(0, 167) AS h
WHERE (o + h) % $DENSITY = 0;
UPDATE access_rollup SET rolled_before = $NOW - 10 * 60000;
DELETE FROM tier_counts;
INSERT INTO tier_counts (tier, objects, bytes)
SELECT tier, COUNT(*), SUM(size) FROM objects GROUP BY tier;
VACUUM ANALYZE;
SQL
HOURS=$("${PG[@]}" -d "$DB" -c "SELECT COUNT(*) FROM access_buckets")
echo "catalogue: $OBJECTS objects, $HOURS hour buckets of $HISTORY of them; filled in $((SECONDS - started)) s"
echo "database size: $("${PG[@]}" -d "$DB" -c "SELECT pg_size_pretty(pg_database_size('$DB'))")"

metric() { # url name
    curl -s "$1/metrics" | awk -v n="$2" '$1 == n { print $2 }'
}

# Starts COUNT instances at once; for each, the time to ready, its first forecast run and
# its peak RSS after it.
instances() { # count
    local count=$1 ports=() starts=() i
    for ((i = 0; i < count; i++)); do
        ports+=("$(free_port)")
        mkdir -p "$WORK/run$i"
        starts+=("$(date +%s%N)")
        (cd "$WORK/run$i" && LISTEN_ADDR=127.0.0.1:${ports[i]} exec "$BIN" serve) \
            >"$WORK/instance$i.log" 2>&1 &
        PIDS+=($!)
    done
    local ready_ms=() deadline=$((SECONDS + 600))
    for ((i = 0; i < count; i++)); do
        until [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:${ports[i]}/readyz")" = 200 ]; do
            [ $SECONDS -lt $deadline ] && kill -0 "${PIDS[i]}" 2>/dev/null || {
                echo "instance $i did not become ready; its log:" >&2
                cat "$WORK/instance$i.log" >&2
                exit 1
            }
            sleep 0.1
        done
        ready_ms+=($((($(date +%s%N) - starts[i]) / 1000000)))
    done
    # Each instance's figures as soon as its first run is over (later runs predict only
    # the objects whose history changed).
    local reported=() left=$count
    while [ "$left" -gt 0 ]; do
        [ $SECONDS -lt $deadline ] || { echo "an instance made no forecast run" >&2; exit 1; }
        for ((i = 0; i < count; i++)); do
            local url=http://127.0.0.1:${ports[i]}
            [ -z "${reported[i]:-}" ] && [ "$(metric "$url" strata_forecast_runs_total)" -ge 1 ] 2>/dev/null || continue
            reported[i]=1
            left=$((left - 1))
            printf '%d of %d: ready in %6.2f s; first forecast run: %8s objects in %7.2f s; peak RSS %5s MiB\n' \
                "$((i + 1))" "$count" "$(echo "${ready_ms[i]} / 1000" | bc -l)" \
                "$(metric "$url" strata_forecast_last_objects)" \
                "$(metric "$url" strata_forecast_last_seconds)" \
                "$(awk '/VmHWM/ { printf "%.0f", $2 / 1024 }' "/proc/${PIDS[i]}/status")"
        done
        sleep 0.5
    done
    if [ "$count" = 1 ]; then
        latency "http://127.0.0.1:${ports[0]}"
    fi
    stop_all
}

# p50 and p99 of ROUNDS pages of 100 objects (each from the last one's cursor) and of
# ROUNDS metadata reads of objects spread over the catalogue.
latency() { # url
    python3 - "$1" "$ROUNDS" "$OBJECTS" <<'PY'
import json, sys, time, urllib.parse, urllib.request
url, rounds, objects = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
def timed(path):
    started = time.perf_counter()
    with urllib.request.urlopen(url + path) as reply:
        body = reply.read()
    return (time.perf_counter() - started) * 1000, body
def report(name, times):
    times.sort()
    pick = lambda q: times[min(len(times) - 1, int(q * len(times)))]
    print(f"{name}: p50 {pick(0.5):.1f} ms, p99 {pick(0.99):.1f} ms ({len(times)} requests)")
pages, cursor = [], None
for _ in range(rounds):
    ms, body = timed("/api/v1/objects?limit=100" + (f"&after={urllib.parse.quote(cursor)}" if cursor else ""))
    pages.append(ms)
    cursor = json.loads(body).get("next")
reads = []
for n in range(rounds):
    ms, _ = timed(f"/api/v1/objects/obj-{(n * 7919) % objects + 1:08d}")
    reads.append(ms)
report("list a page of 100", pages)
report("read one object's metadata", reads)
PY
}

# The shipped model; the tiers keep their thresholds. The objects' predictions pass
# none, and each was placed just now (`updated_at`: no demotion within the minimum
# residence), so nothing is queued and the runs measure forecasting alone.
export MODELS_DIR=$ROOT/models
# No second run while the figures of the first are read.
export FORECAST_INTERVAL_SECS=600
instances 1
# The leases of the stopped instance would count it as a member for three intervals.
"${PG[@]}" -d "$DB" -c "DELETE FROM leases" >/dev/null
instances 3
echo "ranking from the stored values (psql, second run): $("${PG[@]}" -d "$DB" <<'SQL' | grep -o 'Time: [0-9.]* ms' | tail -1
\timing on
\o /dev/null
SELECT o.id, o.tier, o.size, m.to_tier, COALESCE(p.placement_value, 0.0),
       COALESCE(p.variance, 0.0), COALESCE(p.day_rate, 0.0)
FROM objects o LEFT JOIN predictions p ON p.object_id = o.id
LEFT JOIN migrations m ON m.object_id = o.id AND m.status IN ('pending', 'copying', 'verifying')
WHERE p.placement_value > 0 OR m.to_tier IS NOT NULL OR o.tier IN ('onprem', 'private');
SELECT o.id, o.tier, o.size, m.to_tier, COALESCE(p.placement_value, 0.0),
       COALESCE(p.variance, 0.0), COALESCE(p.day_rate, 0.0)
FROM objects o LEFT JOIN predictions p ON p.object_id = o.id
LEFT JOIN migrations m ON m.object_id = o.id AND m.status IN ('pending', 'copying', 'verifying')
WHERE p.placement_value > 0 OR m.to_tier IS NOT NULL OR o.tier IN ('onprem', 'private');
SQL
)"
