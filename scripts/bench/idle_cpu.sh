#!/usr/bin/env bash
# The CPU an idle `strata serve` uses: its ticks (10 ms, user + system, from /proc) over
# SECS seconds (default 30) after 8 s of start-up, and its thread count, on the local
# stack (Kafka, PostgreSQL, the S3 tiers) with a fresh database. Each build named
# (default the release build of this checkout) runs in turn, RUNS times (default 2).
#
#   scripts/bench/idle_cpu.sh [BIN ...]
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
SECS=${SECS:-30}
scripts/stack.sh up >/dev/null
set -a; . .stack/stack.env; set +a
if [ $# -eq 0 ]; then
    cargo build --release --quiet
    set -- "$ROOT/target/release/strata"
fi
WORK=$(mktemp -d "${TMPDIR:-/tmp}/strata-bench.XXXXXX")
API_PORT=${API_PORT:-19232}
URL=http://127.0.0.1:$API_PORT
PG=(psql -q -h 127.0.0.1 -U postgres -d postgres)
. "$ROOT/scripts/bench/lib/server.sh"
. "$ROOT/scripts/bench/lib/builds.sh"
cleanup() {
    stop_and_drop_db || true
    rm -rf "$WORK"
}
trap cleanup EXIT
echo "ticks of 10 ms over $SECS s, idle"
for run in $(seq "${RUNS:-2}"); do
    for bin in "$@"; do
        BIN=$(readlink -f "$bin")
        start_on_fresh_db "idle_$run" LISTEN_ADDR=127.0.0.1:$API_PORT RUST_LOG=strata=warn \
            DATA_DIR="$WORK/data"
        sleep 8
        t0=$(ticks "$SERVER_PID")
        sleep "$SECS"
        printf '%-30s %4d ticks  %3d threads\n' "run $run $(basename "$bin")" \
            $(($(ticks "$SERVER_PID") - t0)) "$(ls "/proc/$SERVER_PID/task" | wc -l)"
        stop_and_drop_db
    done
done
