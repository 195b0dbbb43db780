#!/usr/bin/env bash
# Runs the whole test suite against the real local stack:
#   1. installs the independent test clients when missing (rclone),
#   2. brings up the stack (scripts/stack.sh up: PostgreSQL, tansu, three s3s-fs),
#   3. runs `cargo test` with any extra arguments passed through.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
export PATH="$HOME/.cargo/bin:$PATH"

if ! command -v rclone >/dev/null 2>&1; then
    echo "test: installing rclone (apt)" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rclone >/dev/null
fi

scripts/stack.sh up
cargo test "$@"
