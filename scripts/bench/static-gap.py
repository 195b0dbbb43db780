#!/usr/bin/env python3
"""Where a policy's hot-tier accesses differ from the best static placement's, by shape.

    scripts/bench/static-gap.py TRACE MOVES CAPACITY_BYTES [TIER] [POLICY]

TRACE is the trace `strata simulate` replayed, MOVES its `--moves-out` file, CAPACITY the
hot tier's bytes (TIER, default onprem; POLICY, default combined). The scored part is the
trace after its first quarter (simulate's default --train-fraction). Best static is
recomputed as the simulator does (the objects with the most scored accesses per byte,
greedily, while they fit); objects are grouped by their name before the first '-' (the
shape, for scripts/gen-trace.py's traces). Per group: the share of all scored accesses
each placement served from the hot tier.
"""
import collections
import csv
import sys


def main():
    trace, moves_path, capacity = sys.argv[1], sys.argv[2], int(sys.argv[3])
    hot_tier = sys.argv[4] if len(sys.argv) > 4 else "onprem"
    policy = sys.argv[5] if len(sys.argv) > 5 else "combined"
    with open(trace) as f:
        next(f)
        rows = [(int(ts), oid, int(size)) for ts, oid, size, *_ in csv.reader(f)]
    first, last = rows[0][0], rows[-1][0]
    scored_from = first + (last - first) * 0.25
    size, hits = {}, collections.Counter()
    for ts, oid, sz in rows:
        size.setdefault(oid, sz)
        if ts >= scored_from:
            hits[oid] += 1
    static, room = set(), capacity
    for oid in sorted(hits, key=lambda o: -hits[o] / max(size[o], 1)):
        if size[oid] <= room:
            static.add(oid)
            room -= size[oid]
    with open(moves_path) as f:
        moves = sorted(
            (int(r["ts_ms"]), r["object_id"], r["to_tier"])
            for r in csv.DictReader(f)
            if r["policy"] == policy
        )
    tier, served, i = {}, collections.Counter(), 0
    for ts, oid, _ in rows:
        while i < len(moves) and moves[i][0] <= ts:
            tier[moves[i][1]] = moves[i][2]
            i += 1
        if ts >= scored_from and tier.get(oid) == hot_tier:
            served[oid] += 1
    total = sum(hits.values())
    shape = lambda oid: oid.split("-", 1)[0]
    groups = sorted({shape(o) for o in hits})
    print(f"{'shape':<10} {'static':>8} {policy:>9} {'diff':>8}  static objects (bytes)")
    for g in groups + ["all"]:
        of = lambda o: g == "all" or shape(o) == g
        st = sum(hits[o] for o in static if of(o)) / total
        po = sum(n for o, n in served.items() if of(o)) / total
        objs = [o for o in static if of(o)]
        print(f"{g:<10} {st:>8.4f} {po:>9.4f} {po - st:>+8.4f}  {len(objs)} ({sum(size[o] for o in objs)})")


main()
