#!/usr/bin/env bash
# The retention job's run over a day of minute buckets: a release `strata serve` on the
# local stack, its PostgreSQL catalogue in a fresh database filled by SQL with OBJECTS
# objects (default 5,000), each with one access a minute over a whole day that ended
# three days ago (past the default two days of minute buckets, and rolled up) and one
# hour bucket an hour over the last 40 days (five days past the default 35). The service
# starts with RETENTION_INTERVAL_SECS=1; its first run's log line gives the rows removed
# and the time taken. Prints the access_buckets table's rows and size before, after the
# run, after VACUUM (space reusable, file unchanged) and after VACUUM FULL (returned).
#
#   scripts/bench/retention.sh [OBJECTS]
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
OBJECTS=${1:-5000}

NAME=retention
. "$ROOT/scripts/bench/lib/catalogue.sh"
export RUST_LOG=strata=info
NOW=$(date +%s%3N)
HOUR=3600000
DAY_START=$(( (NOW / HOUR) * HOUR - 4 * 24 * HOUR ))
"${PG[@]}" -d "$DB" <<SQL
INSERT INTO objects (id, bucket, object_key, size, content_type, checksum, tier, location,
                     version, created_at, updated_at, modified_at, access_total, metadata)
SELECT 'obj-' || lpad(g::text, 8, '0'), 'strata', 'bench/' || g, 1000,
       'application/octet-stream', 'blake3:00', 'public', 'objects/' || g, 1,
       $NOW - 41 * 24 * $HOUR::bigint, $NOW, $NOW, 2400, '{}'
FROM generate_series(1, $OBJECTS) AS g;
INSERT INTO access_buckets (object_id, resolution_ms, bucket_start, hits, last_at)
SELECT 'obj-' || lpad(o::text, 8, '0'), 60000, $DAY_START + m * 60000, 1, $DAY_START + m * 60000
FROM generate_series(1, $OBJECTS) AS o, generate_series(0, 1439) AS m;
INSERT INTO access_buckets (object_id, resolution_ms, bucket_start, hits)
SELECT 'obj-' || lpad(o::text, 8, '0'), $HOUR, ($NOW / $HOUR - h) * $HOUR::bigint, 60
FROM generate_series(1, $OBJECTS) AS o, generate_series(1, 40 * 24) AS h;
UPDATE access_rollup SET rolled_before = $NOW - 10 * 60000;
VACUUM ANALYZE access_buckets;
SQL
size() {
    "${PG[@]}" -d "$DB" -c "SELECT COUNT(*) || ' rows, ' || pg_size_pretty(pg_total_relation_size('access_buckets')) FROM access_buckets"
}
echo "catalogue: $OBJECTS objects; a day of minute buckets 3 days old, 40 days of hour buckets"
echo "before:            $(size)"
RETENTION_INTERVAL_SECS=1 start_server
deadline=$((SECONDS + 600))
until grep -q "history past its retention removed" "$WORK/strata.log"; do
    [ $SECONDS -lt $deadline ] || { echo "no retention run logged" >&2; cat "$WORK/strata.log" >&2; exit 1; }
    sleep 0.5
done
stop_server
grep "history past its retention removed" "$WORK/strata.log" | head -1 | sed 's/.*INFO strata::jobs: /first run: /'
echo "after the run:     $(size)"
"${PG[@]}" -d "$DB" -c "VACUUM access_buckets"
echo "after VACUUM:      $(size)"
"${PG[@]}" -d "$DB" -c "VACUUM FULL access_buckets"
echo "after VACUUM FULL: $(size)"
