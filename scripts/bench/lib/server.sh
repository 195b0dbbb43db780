# Starting and stopping a release `strata serve` for a bench script, which sets BIN (the
# binary), WORK (a scratch directory; the log goes to $WORK/strata.log) and URL (its
# base URL, matching LISTEN_ADDR) before sourcing this.
SERVER_PID=

start_server() { # [wrapper command...]; runs in $WORK/run so that no .env is picked up
    mkdir -p "$WORK/run"
    (cd "$WORK/run" && exec "$@" "$BIN" serve) >>"$WORK/strata.log" 2>&1 &
    SERVER_PID=$!
    local deadline=$((SECONDS + 120))
    until [ "$(curl -s -o /dev/null -w '%{http_code}' "$URL/healthz")" = 200 ]; do
        if ! kill -0 "$SERVER_PID" 2>/dev/null || [ $SECONDS -ge $deadline ]; then
            echo "strata serve did not become healthy; its log:" >&2
            cat "$WORK/strata.log" >&2
            exit 1
        fi
        sleep 0.2
    done
}

stop_server() {
    [ -n "$SERVER_PID" ] || return 0
    kill -INT "$SERVER_PID" 2>/dev/null || true
    local deadline=$((SECONDS + 20))
    while kill -0 "$SERVER_PID" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.2; done
    kill -KILL "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=
}
