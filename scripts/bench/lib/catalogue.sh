# A release `strata serve` on the local stack over a fresh PostgreSQL database that a
# bench script fills by SQL. A script sets ROOT (the checkout) and NAME (part of the
# database's name) and sources this: it starts the stack, builds, creates the database
# (dropped on exit, with the scratch directory WORK), exports DATABASE_URL and
# LISTEN_ADDR, sets URL, BIN (unless set: another build to measure) and PG (psql on the
# postgres database; add -d "$DB" for the bench's), sources server.sh and lets the
# service write its schema.
scripts/stack.sh up >/dev/null
set -a; . .stack/stack.env; set +a
cargo build --release >/dev/null 2>&1 || { cargo build --release; exit 1; }
BIN=${BIN:-$ROOT/target/release/strata}
PG=(psql -h 127.0.0.1 -U postgres -d postgres -qtA)
DB=strata_bench_${NAME}_$$
WORK=$(mktemp -d "${TMPDIR:-/tmp}/strata-bench.XXXXXX")
. "$ROOT/scripts/bench/lib/server.sh"
cleanup() {
    stop_server
    "${PG[@]}" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT
"${PG[@]}" -c "CREATE DATABASE $DB"
export DATABASE_URL=postgres://postgres@127.0.0.1:5432/$DB
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
PORT=$(free_port)
export LISTEN_ADDR=127.0.0.1:$PORT
URL=http://127.0.0.1:$PORT
start_server
stop_server
