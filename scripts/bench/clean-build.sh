#!/usr/bin/env bash
# Clean-build time of the service, as a fresh machine pays it: for each commit given
# (default HEAD), a checkout of it in a temporary directory, `cargo build --release
# --locked` into an empty target directory, timed (wall and CPU). Crates already
# downloaded are reused, so the figure is compiling only; run it on an idle machine.
#
#   scripts/bench/clean-build.sh [COMMIT ...]
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
export PATH="$HOME/.cargo/bin:$PATH" CARGO_INCREMENTAL=0
[ $# -gt 0 ] || set -- HEAD
work=$(mktemp -d)
trap 'git worktree remove --force "$work/tree" 2>/dev/null || true; rm -rf "$work"' EXIT
printf '%-10s %10s %10s %10s\n' commit wall_s user_s sys_s
for commit in "$@"; do
    git worktree add --detach --quiet "$work/tree" "$commit"
    (cd "$work/tree" && cargo fetch --locked --quiet)
    /usr/bin/time -f '%e %U %S' -o "$work/time" \
        bash -c "cd '$work/tree' && CARGO_TARGET_DIR='$work/target' cargo build --release --locked --quiet"
    read -r wall user sys <"$work/time"
    printf '%-10s %10s %10s %10s\n' "$(git rev-parse --short "$commit")" "$wall" "$user" "$sys"
    git worktree remove --force "$work/tree"
    rm -rf "$work/target"
done
