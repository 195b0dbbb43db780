#!/usr/bin/env python3
"""How much of best static's HOT HIT is hindsight: best static pins the objects with the
most scored accesses per byte, and on objects read a few times a week which ones those
are is partly chance. Splits the scored part (after simulate's default --train-fraction,
a quarter) into even and odd hours; per half, best static chosen on that half itself
against the placement chosen on the other half, scored on this one. The difference is
what knowing the very accesses it is scored on is worth to the reference, beyond their
rate, which no policy that only sees the past can have.

    scripts/bench/static-hindsight.py TRACE CAPACITY_SHARE     (e.g. 0.02)
"""
import collections
import sys

HOUR_MS = 3_600_000


def main():
    trace, share = sys.argv[1], float(sys.argv[2])
    size, rows = {}, []
    with open(trace) as f:
        next(f)
        for line in f:
            ts, oid, nbytes = line.split(",", 3)[:3]
            rows.append((int(ts), oid))
            size.setdefault(oid, int(nbytes))
    first, last = rows[0][0], rows[-1][0]
    scored_from = first + (last - first) * 0.25
    capacity = sum(size.values()) * share
    halves = (collections.Counter(), collections.Counter())
    for ts, oid in rows:
        if ts >= scored_from:
            halves[(ts - first) // HOUR_MS % 2][oid] += 1

    def pinned(hits):
        chosen, room = set(), capacity
        for oid in sorted(hits, key=lambda o: -hits[o] / max(size[o], 1)):
            if size[oid] <= room:
                chosen.add(oid)
                room -= size[oid]
        return chosen

    pins = [pinned(h) for h in halves]
    for half, name in ((0, "even"), (1, "odd")):
        hits = halves[half]
        total = sum(hits.values())
        own = sum(hits[o] for o in pins[half]) / total
        other = sum(hits[o] for o in pins[1 - half]) / total
        print(f"{name} hours: best static {own:.4f}, chosen on the other hours {other:.4f}, "
              f"hindsight {own - other:.4f}")


if __name__ == "__main__":
    main()
