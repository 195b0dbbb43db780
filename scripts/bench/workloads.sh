# Sourced by the benches that compare workloads (placement.sh, capture.sh): the
# workloads, each a mix of scripts/gen-trace.py shapes (the default set) or a catalogue
# of scripts/bench/catalogue-trace.py (catalogue, catalogue-churn, catalogue-flat: a
# workload built from none of those shapes), and their traces, generated once and cached
# under TRACE_DIR (default target/bench-traces). Builds the release binary and sets OUT,
# a directory removed on exit.
#
#   workload_trace WORKLOAD DAYS SEED   prints the path of that workload's trace
WORKLOADS=${WORKLOADS:-"daily burst rising decay batch scan mix"}
TRACE_DIR=${TRACE_DIR:-$ROOT/target/bench-traces}
SEEDS=${SEEDS:-1}

# One shape over a Zipf background; scans over a hot set; a mix of every shape.
shapes_of() {
    case "$1" in
    scan) echo "zipf=300,scan=700" ;;
    mix) echo "zipf=300,daily=120,burst=120,rising=100,decay=120,batch=120,scan=120" ;;
    *) echo "zipf=800,$1=200" ;;
    esac
}

# The catalogue workloads' settings: the defaults; a flatter popularity and three times
# the births; no load curve and fewer births.
catalogue_args() {
    case "$1" in
    catalogue) ;;
    catalogue-churn) echo "--alpha 0.7 --births 100" ;;
    catalogue-flat) echo "--flat --alpha 0.8 --births 20" ;;
    *) echo "unknown catalogue workload $1" >&2; return 1 ;;
    esac
}

workload_trace() {
    local trace="$TRACE_DIR/placement-$1-$2-days-seed-$3.csv"
    if [ ! -s "$trace" ]; then
        mkdir -p "$TRACE_DIR"
        case "$1" in
        catalogue*)
            local args
            args=$(catalogue_args "$1")
            # shellcheck disable=SC2086 # the settings are separate words
            python3 "$ROOT/scripts/bench/catalogue-trace.py" $args --days "$2" \
                --seed "$3" >"$trace.part"
            ;;
        *)
            python3 "$ROOT/scripts/gen-trace.py" --shapes "$(shapes_of "$1")" --days "$2" \
                --seed "$3" >"$trace.part"
            ;;
        esac
        mv "$trace.part" "$trace"
    fi
    echo "$trace"
}

cargo build --release --quiet
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
