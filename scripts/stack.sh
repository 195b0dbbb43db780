#!/usr/bin/env bash
# The local service stack without Docker, on loopback only:
#   PostgreSQL (the running one when there is one), a Kafka-protocol broker (tansu, in
#   memory) with the access-events topics, and three S3-protocol servers (s3s-fs), one
#   per tier.
#
#   scripts/stack.sh up      start whatever is not running (idempotent), install missing tools
#   scripts/stack.sh down    stop what `up` started (PostgreSQL is left alone)
#   scripts/stack.sh status  say what answers where
#
# `up` writes .stack/stack.env, a .env-style file that the tests and `strata serve` can load:
#   set -a; . .stack/stack.env; set +a; cargo run
# Ports and names can be changed through the STACK_* variables below.
#
# The stack listens on fixed ports, so there is one per machine, whichever checkout
# started it: its data, logs and pids live in $STACK_DIR (default ~/.cache/strata-stack),
# and every checkout that runs `up` gets a copy of the env file in its own .stack/.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STATE=${STACK_DIR:-$HOME/.cache/strata-stack}
PG_HOST=127.0.0.1
PG_PORT=${STACK_PG_PORT:-5432}
PG_USER=${STACK_PG_USER:-postgres}
PG_DB=${STACK_PG_DB:-strata}
KAFKA_PORT=${STACK_KAFKA_PORT:-19092}
KAFKA_PARTITIONS=${STACK_KAFKA_PARTITIONS:-3}
S3_ACCESS_KEY=${STACK_S3_ACCESS_KEY:-strata}
S3_SECRET_KEY=${STACK_S3_SECRET_KEY:-strata-local-secret}
TIERS=(onprem private public)
declare -A S3_PORT=([onprem]=${STACK_S3_ONPREM_PORT:-19101} [private]=${STACK_S3_PRIVATE_PORT:-19102} [public]=${STACK_S3_PUBLIC_PORT:-19103})
TANSU_VERSION=${STACK_TANSU_VERSION:-0.6.0}
S3S_FS_VERSION=0.14.1
export PATH="$HOME/.cargo/bin:$PATH"

log() { printf 'stack: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() { # port name [seconds]
    local deadline=$((SECONDS + ${3:-30}))
    until port_open "$1"; do
        [ $SECONDS -lt $deadline ] || die "$2 did not start listening on 127.0.0.1:$1; see $STATE/logs/$2.log"
        sleep 0.2
    done
}

need_apt() { # command package
    command -v "$1" >/dev/null 2>&1 && return
    log "installing $2 (apt)"
    if [ ! -f "$STATE/.apt-updated" ]; then apt-get update -qq; touch "$STATE/.apt-updated"; fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null
}

need_cargo() { # command crate [cargo install args...]
    local cmd=$1; shift
    command -v "$cmd" >/dev/null 2>&1 && return
    log "installing $1 (cargo install; this compiles it once, several minutes)"
    cargo install --locked "$@" || cargo install "$@"
}

start_daemon() { # name command...
    local name=$1; shift
    local pidfile="$STATE/pids/$name.pid"
    if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then return; fi
    nohup "$@" >"$STATE/logs/$name.log" 2>&1 </dev/null &
    echo $! >"$pidfile"
}

postgres_up() {
    if ! pg_isready -q -h $PG_HOST -p "$PG_PORT" 2>/dev/null; then
        if ! command -v pg_ctlcluster >/dev/null 2>&1; then
            need_apt pg_ctlcluster postgresql
        fi
        local version
        version=$(ls /etc/postgresql | sort -V | tail -n 1)
        log "starting PostgreSQL $version"
        pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
        local deadline=$((SECONDS + 30))
        until pg_isready -q -h $PG_HOST -p "$PG_PORT"; do
            [ $SECONDS -lt $deadline ] || die "PostgreSQL is not answering on $PG_HOST:$PG_PORT"
            sleep 0.5
        done
    fi
    # Databases of earlier test runs that stopped before cleaning up after themselves.
    local stale
    for stale in $(psql -h $PG_HOST -p "$PG_PORT" -U "$PG_USER" -d postgres -tAc \
        "SELECT datname FROM pg_database WHERE datname LIKE 'strata\_test\_%'"); do
        psql -h $PG_HOST -p "$PG_PORT" -U "$PG_USER" -d postgres -qc \
            "DROP DATABASE IF EXISTS $stale WITH (FORCE)" || true
    done
    if ! psql -h $PG_HOST -p "$PG_PORT" -U "$PG_USER" -d postgres -tAc \
        "SELECT 1 FROM pg_database WHERE datname = '$PG_DB'" | grep -q 1; then
        psql -h $PG_HOST -p "$PG_PORT" -U "$PG_USER" -d postgres -qc "CREATE DATABASE $PG_DB" \
            || die "cannot create database $PG_DB as $PG_USER"
    fi
}

kafka_up() {
    need_cargo tansu tansu --features dynostore ${TANSU_VERSION:+--version "$TANSU_VERSION"}
    if ! port_open "$KAFKA_PORT"; then
        log "starting tansu broker on 127.0.0.1:$KAFKA_PORT"
        start_daemon kafka tansu broker \
            --storage-engine "memory://tansu/" \
            --listener-url "tcp://127.0.0.1:$KAFKA_PORT" \
            --advertised-listener-url "tcp://127.0.0.1:$KAFKA_PORT" \
            --cluster-id strata-local
        wait_port "$KAFKA_PORT" kafka
    fi
    local broker="tcp://127.0.0.1:$KAFKA_PORT"
    for topic in access-events access-events.dlq; do
        # The broker does not auto-create topics; creating an existing one fails harmlessly.
        tansu topic create "$topic" --broker "$broker" --partitions "$KAFKA_PARTITIONS" \
            >>"$STATE/logs/kafka-topics.log" 2>&1 || true
    done
}

s3_up() {
    need_cargo s3s-fs s3s-fs --version "$S3S_FS_VERSION" --features binary
    local tier port
    for tier in "${TIERS[@]}"; do
        port=${S3_PORT[$tier]}
        # s3s-fs keeps each bucket as a directory under its root.
        mkdir -p "$STATE/s3/$tier/strata-$tier"
        if ! port_open "$port"; then
            log "starting s3s-fs for tier $tier on 127.0.0.1:$port"
            start_daemon "s3-$tier" s3s-fs --host 127.0.0.1 --port "$port" \
                --access-key "$S3_ACCESS_KEY" --secret-key "$S3_SECRET_KEY" "$STATE/s3/$tier"
            wait_port "$port" "s3-$tier"
        fi
    done
}

write_env() {
    local file="$STATE/stack.env" tier upper
    {
        echo "# Written by scripts/stack.sh up; points Strata and the tests at the local stack."
        echo "DATABASE_URL=postgres://$PG_USER@$PG_HOST:$PG_PORT/$PG_DB"
        echo "KAFKA_BROKERS=127.0.0.1:$KAFKA_PORT"
        echo "TIERS=onprem,private,public"
        echo "DEFAULT_TIER=public"
        for tier in "${TIERS[@]}"; do
            upper=${tier^^}
            echo "TIER_${upper}_URL=s3://strata-$tier"
            echo "TIER_${upper}_ENDPOINT=http://127.0.0.1:${S3_PORT[$tier]}"
            echo "TIER_${upper}_REGION=us-east-1"
            echo "TIER_${upper}_ACCESS_KEY_ID=$S3_ACCESS_KEY"
            echo "TIER_${upper}_SECRET_ACCESS_KEY=$S3_SECRET_KEY"
        done
        echo "# Where the S3 servers keep their files (tests may inspect or corrupt them)."
        echo "STACK_S3_ROOT=$STATE/s3"
    } >"$file.tmp"
    mv "$file.tmp" "$file"
    mkdir -p "$ROOT/.stack"
    cp "$file" "$ROOT/.stack/stack.env"
}

status() {
    local ok=0 tier
    if pg_isready -q -h $PG_HOST -p "$PG_PORT" 2>/dev/null; then
        echo "postgres   up    postgres://$PG_USER@$PG_HOST:$PG_PORT/$PG_DB"
    else
        echo "postgres   down  $PG_HOST:$PG_PORT"; ok=1
    fi
    if port_open "$KAFKA_PORT"; then
        echo "kafka      up    127.0.0.1:$KAFKA_PORT (tansu, topics access-events, access-events.dlq)"
    else
        echo "kafka      down  127.0.0.1:$KAFKA_PORT"; ok=1
    fi
    for tier in "${TIERS[@]}"; do
        if port_open "${S3_PORT[$tier]}"; then
            printf 's3-%-8s up    http://127.0.0.1:%s bucket strata-%s\n' "$tier" "${S3_PORT[$tier]}" "$tier"
        else
            printf 's3-%-8s down  127.0.0.1:%s\n' "$tier" "${S3_PORT[$tier]}"; ok=1
        fi
    done
    [ -f "$ROOT/.stack/stack.env" ] && echo "env file   $ROOT/.stack/stack.env"
    return $ok
}

down() {
    local pidfile pid
    for pidfile in "$STATE"/pids/*.pid; do
        [ -f "$pidfile" ] || continue
        pid=$(cat "$pidfile")
        if kill -0 "$pid" 2>/dev/null; then
            log "stopping $(basename "$pidfile" .pid) (pid $pid)"
            kill "$pid" 2>/dev/null || true
            for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
            kill -9 "$pid" 2>/dev/null || true
        fi
        rm -f "$pidfile"
    done
}

mkdir -p "$STATE/pids" "$STATE/logs"
case "${1:-}" in
    up)
        postgres_up
        s3_up
        kafka_up
        write_env
        status
        ;;
    down) down ;;
    status) status ;;
    *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
