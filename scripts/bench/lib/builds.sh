# Builds compared run by run, each run of a `strata serve` over a fresh PostgreSQL
# database. A bench script sets PG (psql on the postgres database) and sources
# server.sh, then this.
DB=

start_on_fresh_db() { # NAME [VAR=value ...]: database strata_bench_NAME_<pid>, then BIN over it
    DB=strata_bench_${1}_$$
    shift
    "${PG[@]}" -c "CREATE DATABASE $DB"
    start_server env DATABASE_URL="postgres://postgres@127.0.0.1:5432/$DB" "$@"
}

stop_and_drop_db() { # the server, then its database
    stop_server
    [ -z "$DB" ] || "${PG[@]}" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)"
    DB=
}

ticks() { # PID ...: their CPU so far, user + system, in 10 ms ticks
    local sum=0 pid
    for pid in "$@"; do
        sum=$((sum + $(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null || echo 0)))
    done
    echo "$sum"
}
