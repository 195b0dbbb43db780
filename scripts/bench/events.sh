#!/usr/bin/env bash
# The access-event pipeline on the local stack (tansu broker, PostgreSQL), in one run:
#   1. consumption: EVENTS events over OBJECTS objects (default 1,000,000 over 100,000)
#      read by a bare librdkafka consume-and-discard loop, then by Strata's consumer
#      writing exact counts and offsets to PostgreSQL; prints both rates and the ratio;
#      then the same on the embedded broker (in-process mock cluster), whose rate is
#      Strata's own ceiling;
#   2. spike latency: BURSTS bursts of 150 accesses (default 40) while RATE events/s
#      (default 50,000) of background load flow; time from producing the 101st event of
#      a burst to its promotion's row in the queue (p50, p99, max);
#   3. detector memory: RSS growth per tracked object at 1,000,000 objects.
#
#   scripts/bench/events.sh [EVENTS] [OBJECTS] [BURSTS] [RATE]
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
EVENTS=${1:-1000000}
OBJECTS=${2:-100000}
BURSTS=${3:-40}
RATE=${4:-50000}
scripts/stack.sh up >/dev/null
set -a; . .stack/stack.env; set +a
cargo bench --bench event_pipeline -- consume "$EVENTS" "$OBJECTS" 2>/dev/null | tail -n 1
# The same on the embedded broker (librdkafka's mock cluster, one partition keeping its
# newest 5 MB): 300,000 events is about what it holds; three tenths of the objects keep
# the number of events per object.
cargo bench --bench event_pipeline -- consume-embedded 300000 $((OBJECTS * 3 / 10)) 2>/dev/null | tail -n 1
cargo bench --bench event_pipeline -- spikes "$BURSTS" "$RATE" 2>/dev/null | tail -n 1
cargo bench --bench detector_memory -- 1000000 2>/dev/null | tail -n 1
