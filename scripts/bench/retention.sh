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

scripts/stack.sh up >/dev/null
set -a; . .stack/stack.env; set +a
cargo build --release >/dev/null 2>&1 || { cargo build --release; exit 1; }
BIN=$ROOT/target/release/strata
PG=(psql -h 127.0.0.1 -U postgres -d postgres -qtA)
DB=strata_bench_retention_$$
WORK=$(mktemp -d "${TMPDIR:-/tmp}/strata-bench.XXXXXX")
. "$ROOT/scripts/bench/lib/server.sh"
cleanup() {
    stop_server
    "${PG[@]}" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT
"${PG[@]}" -c "CREATE DATABASE $DB"
export DATABASE_URL=postgres://postgres@127.0.0.1:5432/$DB RUST_LOG=strata=info
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
export LISTEN_ADDR=127.0.0.1:$PORT
URL=http://127.0.0.1:$PORT

# The schema, by the service itself; then the rows.
RETENTION_INTERVAL_SECS=86400 start_server
stop_server
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
