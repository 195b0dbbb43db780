#!/usr/bin/env bash
# The seed walkthrough against a running Strata server, over its REST API only:
#
#   1. ingest a file: it lands in the default tier (`public` unless DEFAULT_TIER says
#      otherwise);
#   2. simulate 100 accesses: the spike detector sees a burst, and a completed
#      `reactive_access_spike` move puts the object on a hotter tier;
#   3. ingest another file and read it steadily, below the spike detector's lowest
#      promotion level, until the forecaster predicts enough accesses for a hotter tier;
#      then a completed `proactive_prediction` move puts it there;
#   4. print both objects' predictions and the server's metrics.
#
# Usage:  scripts/demo.sh            (server at http://127.0.0.1:8080)
#         STRATA_URL=http://host:8080 API_TOKEN=... scripts/demo.sh
#
# Start a server first, e.g. the embedded default in another terminal: cargo run --release
#
# Why step 3 takes minutes: the REST API can only add accesses *now*, so the forecaster's
# history is built by reading the object in the current clock hour. Reads are paced to at
# most 1/6 of the lowest TIER_<NAME>_PROMOTE_ABOVE per sixth of the detector window
# (read from GET /tiers and GET /plan), so the detector never sees a spike and only the
# forecaster can move the object. With the defaults (promotion above 20 accesses per
# 60 s window; the shipped model wants about 75 accesses in the hour for `private`) that
# is about five minutes, plus up to FORECAST_INTERVAL_SECS (60) for the scheduled run.
# A server started with DETECTOR_WINDOW_SECS=6 DETECTOR_SETTLE_MS=0
# FORECAST_INTERVAL_SECS=5 runs it in about a minute (without DETECTOR_SETTLE_MS=0, a
# forecast interval that short may promote the first object before the spike detector
# reports it). Step 3 needs an active model (the shipped one in models/).
#
# Environment:
#   STRATA_URL                  server base URL (default http://127.0.0.1:8080)
#   API_TOKEN                   bearer token, when the server sets one
#   DEMO_WAIT_SECS              longest wait for each move to complete (default 300)
#   DEMO_PROACTIVE_READ_SECS    longest time step 3 reads before giving up (default 1200)
#
# Needs curl and python3. Exits non-zero with a one-line message on the first
# expectation that fails.
set -euo pipefail

STRATA_URL=${STRATA_URL:-http://127.0.0.1:8080}
STRATA_URL=${STRATA_URL%/}
WAIT_SECS=${DEMO_WAIT_SECS:-300}
READ_SECS=${DEMO_PROACTIVE_READ_SECS:-1200}

say() { printf 'demo: %s\n' "$*"; }
die() { printf 'demo: FAILED: %s\n' "$*" >&2; exit 1; }

for tool in curl python3; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool is required"
done
case "$WAIT_SECS$READ_SECS" in *[!0-9]*) die "DEMO_WAIT_SECS and DEMO_PROACTIVE_READ_SECS must be whole seconds" ;; esac

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
AUTH=()
if [ -n "${API_TOKEN:-}" ]; then AUTH=(-H "Authorization: Bearer $API_TOKEN"); fi

# call METHOD PATH EXPECTED_STATUS [curl args...]: prints the body; dies on another status.
call() {
    local method=$1 path=$2 expected=$3 status
    shift 3
    status=$(curl -sS -D "$WORK/head" -o "$WORK/body" -w '%{http_code}' -X "$method" "${AUTH[@]}" "$@" \
        "$STRATA_URL$path" 2>"$WORK/curl.err") \
        || die "no answer from $STRATA_URL ($method $path): $(head -n 1 "$WORK/curl.err")"
    if [ "$status" != "$expected" ]; then
        die "$method $path answered $status, expected $expected: $(head -c 300 "$WORK/body")"
    fi
    cat "$WORK/body"
}

# json EXPRESSION: evaluates a Python expression over the JSON document on stdin (bound
# to `d`); strings print bare, everything else as JSON.
# An empty input is a request that failed and said so already: exit quietly.
json() {
    python3 -c '
import json, sys
text = sys.stdin.read()
if not text:
    sys.exit(1)
try:
    d = json.loads(text)
except ValueError:
    sys.exit("demo: FAILED: the server answered something that is not JSON: " + text[:200])
r = eval(sys.argv[1])
print(r if isinstance(r, str) else json.dumps(r))' "$1"
}

# migration OBJECT_ID REASON: the newest move of the object with that reason, or null.
migration() {
    call GET "/api/v1/migrations?object_id=$1&reason=$2&limit=1" 200 | json '(d["items"] or [None])[0]'
}

# wait_for_move OBJECT_ID REASON: waits for a completed move; dies if it fails or is late.
wait_for_move() {
    local id=$1 reason=$2 deadline=$((SECONDS + WAIT_SECS)) m status
    while :; do
        m=$(migration "$id" "$reason")
        status=$(json 'd and d["status"]' <<<"$m")
        case "$status" in
            completed)
                say "$reason move completed: $(json '"%s -> %s, %d bytes" % (d["from_tier"], d["to_tier"], d["bytes_copied"])' <<<"$m")"
                return
                ;;
            failed | cancelled)
                die "the $reason move of $id ended $status: $(json 'd["error"]' <<<"$m")"
                ;;
        esac
        [ $SECONDS -lt $deadline ] || die "no completed $reason move of $id within ${WAIT_SECS}s (last seen: $status)"
        sleep 1
    done
}

# rank TIER: 0 for the hottest tier.
rank() { json "[t['name'] for t in d['items']].index('$1')" <<<"$TIERS"; }

# ingest KEY FILE CONTENT_TYPE: prints the new object's id.
ingest() {
    local object
    object=$(call POST "/api/v1/objects?key=$1" 201 -H "Content-Type: $3" --data-binary "@$2")
    local tier
    tier=$(json 'd["tier"]' <<<"$object")
    [ "$tier" = "$DEFAULT_TIER" ] || die "$1 landed in $tier, not in the default tier $DEFAULT_TIER"
    say "ingested $1 -> $(json 'd["id"]' <<<"$object") on $tier ($(json 'd["size"]' <<<"$object") bytes)" >&2
    json 'd["id"]' <<<"$object"
}

# on_hotter_tier OBJECT_ID: dies unless the object sits on a tier hotter than the default.
on_hotter_tier() {
    local tier
    tier=$(call GET "/api/v1/objects/$1" 200 | json 'd["tier"]')
    [ "$(rank "$tier")" -lt "$(rank "$DEFAULT_TIER")" ] \
        || die "object $1 is on $tier, not on a tier hotter than $DEFAULT_TIER"
    say "object $1 is now on $tier"
}

call GET /healthz 200 >/dev/null
TIERS=$(call GET /api/v1/tiers 200)
DEFAULT_TIER=$(json '[t["name"] for t in d["items"] if t["default"]][0]' <<<"$TIERS")
say "server $STRATA_URL; tiers, hottest first: $(json '",".join(t["name"] for t in d["items"])' <<<"$TIERS"); new objects land in $DEFAULT_TIER"
RUN="demo/$(date -u +%Y%m%dT%H%M%SZ)-$RANDOM"

# --- 1, 2: a burst of accesses, a reactive promotion ------------------------------------
LOWEST_PROMOTE=$(json "min([t['promote_above'] for t in d['items'][:$(rank "$DEFAULT_TIER")] if t['promote_above'] is not None] or [None])" <<<"$TIERS")
if [ "$LOWEST_PROMOTE" = null ] || [ "$LOWEST_PROMOTE" -ge 100 ]; then
    die "100 accesses pass no promotion level of this server (TIER_<NAME>_PROMOTE_ABOVE: lowest $LOWEST_PROMOTE)"
fi
printf 'day,visits\nmon,120\ntue,98\nwed,143\n' >"$WORK/report.csv"
HOT=$(ingest "$RUN/report.csv" "$WORK/report.csv" text/csv)
call POST "/api/v1/objects/$HOT/access" 202 -H 'Content-Type: application/json' -d '{"count":100}' >/dev/null
say "published 100 accesses of $HOT; waiting for the spike detector's move"
wait_for_move "$HOT" reactive_access_spike
on_hotter_tier "$HOT"

# --- 3: steady reads, a forecast, a proactive promotion ---------------------------------
PREDICT_ABOVE=$(json "[t['predict_above'] for t in d['items'][:$(rank "$DEFAULT_TIER")] if t['predict_above'] is not None]" <<<"$TIERS")
[ "$PREDICT_ABOVE" != "[]" ] || die "the forecaster never promotes on this server (no TIER_<NAME>_PREDICT_ABOVE above $DEFAULT_TIER)"
# The plan looks back over the detector window by default: its start, against the
# server's own clock (the Date header, whole seconds), gives the window's length.
PLAN=$(call GET /api/v1/plan 200)
WINDOW_SECS=$(python3 -c '
import datetime, email.utils, json, math, sys
since = datetime.datetime.fromisoformat(json.loads(sys.argv[1])["since"].replace("Z", "+00:00"))
for line in open(sys.argv[2], encoding="latin-1"):
    name, _, value = line.partition(":")
    if name.strip().lower() == "date":
        now = email.utils.parsedate_to_datetime(value.strip())
print(math.ceil((now - since).total_seconds()))' "$PLAN" "$WORK/head" 2>/dev/null) \
    || die "cannot tell the detector window from GET /api/v1/plan and its Date header"
# One batch per sixth of the window (the detector's slot), a tenth longer so that no
# slot gets two; each batch at most a sixth of the lowest level, so no window passes it.
PACE=$(python3 -c "print(round($WINDOW_SECS / 6 * 1.1, 2))")
if [ "$LOWEST_PROMOTE" = null ]; then BATCH=10; else BATCH=$((LOWEST_PROMOTE / 6)); fi
[ "$BATCH" -ge 1 ] || die "the lowest promotion level ($LOWEST_PROMOTE) is too low to read below it; step 3 needs at least 6"
printf 'month,revenue\njan,10\nfeb,12\n' >"$WORK/forecast.csv"
STEADY=$(ingest "$RUN/forecast.csv" "$WORK/forecast.csv" text/csv)
say "reading $STEADY $BATCH times every ${PACE}s until the forecaster calls for a hotter tier (thresholds: $PREDICT_ABOVE)"
deadline=$((SECONDS + READ_SECS))
sent=0
while :; do
    prediction=$(call GET "/api/v1/objects/$STEADY/prediction" 200)
    move=$(json 'd["proactive_move"]' <<<"$prediction")
    [ "$move" = null ] || break
    [ "$(migration "$STEADY" proactive_prediction)" = null ] || break
    [ "$(migration "$STEADY" reactive_access_spike)" = null ] \
        || die "the spike detector moved $STEADY although reads stayed below its level"
    [ $SECONDS -lt $deadline ] \
        || die "after ${READ_SECS}s and $sent reads the forecaster still predicts $(json 'd["predicted_accesses"]' <<<"$prediction") and no move"
    if [ $((sent % (BATCH * 6))) -eq 0 ]; then
        say "  $sent reads so far; predicted $(json 'round(d["predicted_accesses"], 1)' <<<"$prediction") accesses next hour -> $(json 'd["predicted_tier"]' <<<"$prediction")"
    fi
    call POST "/api/v1/objects/$STEADY/access" 202 -H 'Content-Type: application/json' \
        -d "{\"count\":$BATCH}" >/dev/null
    sent=$((sent + BATCH))
    sleep "$PACE"
done
say "after $sent reads the forecaster calls for $move; waiting for its scheduled run to move it"
wait_for_move "$STEADY" proactive_prediction
on_hotter_tier "$STEADY"

# --- 4: predictions and metrics -----------------------------------------------------------
for id in "$HOT" "$STEADY"; do
    call GET "/api/v1/objects/$id/prediction" 200 | json '
"prediction for %s: %.1f accesses in the next %d h -> %s (on %s; model %s v%s); top features: %s" % (
    d["object_id"], d["predicted_accesses"], d["horizon_hours"], d["predicted_tier"], d["tier"],
    d["model"]["name"], d["model"]["version"],
    ", ".join("%s %+.2f" % (f["name"], f["contribution"]) for f in d["top_features"]))' \
        | sed 's/^/demo: /'
done
say "metrics:"
call GET /metrics 200 | grep -E '^strata_(events_(consumed|published)_total|spikes_detected_total|(reactive|proactive)_migrations_queued_total|migrations|tier_objects|forecast_runs_total|model_version)' \
    | sed 's/^/demo:   /' || true
say "OK: reactive and proactive moves completed"
say "console: $STRATA_URL/ (tiers, moves, objects and models in a browser)"
