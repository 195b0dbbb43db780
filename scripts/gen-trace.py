#!/usr/bin/env python3
"""Writes a synthetic access trace (DESIGN.md format) to stdout: objects with daily
cycles, daily batch reads (a few busy hours at the same time every day, nothing
otherwise), slow trends, short bursts and decay to cold, drawn from Poisson processes with a
fixed seed, so the same arguments always give the same trace.

    scripts/gen-trace.py [--objects 300] [--days 14] [--seed 1] > trace.csv
"""
import argparse
import math
import random
import sys

HOUR_MS = 3_600_000
START_MS = 1_790_000_000_000 // (24 * HOUR_MS) * (24 * HOUR_MS)


def poisson(rng, lam):
    # Knuth for small rates, a normal approximation for large ones.
    if lam <= 0:
        return 0
    if lam > 50:
        return max(0, round(rng.gauss(lam, math.sqrt(lam))))
    limit, k, p = math.exp(-lam), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


def profile(rng):
    kind = rng.choice(["daily", "daily", "batch", "trend", "burst", "decay", "quiet"])
    peak = rng.randrange(24)
    scale = rng.uniform(2, 40)
    slope = rng.uniform(-0.04, 0.06)
    bursts = set()
    half_life = rng.uniform(6, 48)
    batch_hours = rng.randrange(1, 4)

    def rate(hour, total_hours):
        day_cycle = (1 + math.cos(2 * math.pi * ((hour % 24) - peak) / 24)) / 2
        if kind == "daily":
            return scale * day_cycle ** 2 + 0.2
        if kind == "batch":
            return scale * 10 if ((hour % 24) - peak) % 24 < batch_hours else 0.0
        if kind == "trend":
            return max(0.0, scale * 0.3 * (1 + slope * hour / 24 * 4)) * (0.5 + day_cycle)
        if kind == "burst":
            if hour not in bursts and rng.random() < 0.01:
                bursts.update(range(hour, hour + rng.randrange(2, 6)))
            return (scale * 3 if hour in bursts else 0.0) + 0.3
        if kind == "decay":
            return scale * 2 * 0.5 ** (hour / half_life)
        return 0.05

    return rate


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--objects", type=int, default=300)
    parser.add_argument("--days", type=int, default=14)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    hours = args.days * 24
    objects = [(f"obj-{i:05d}", rng.randrange(1_000, 50_000_000), profile(rng)) for i in range(args.objects)]
    out = sys.stdout
    out.write("ts_ms,object_id,size_bytes,op\n")
    for hour in range(hours):
        events = []
        for object_id, size, rate in objects:
            for _ in range(poisson(rng, rate(hour, hours))):
                op = "write" if rng.random() < 0.05 else "read"
                events.append((START_MS + hour * HOUR_MS + rng.randrange(HOUR_MS), object_id, size, op))
        events.sort()
        out.writelines(f"{ts},{oid},{size},{op}\n" for ts, oid, size, op in events)


if __name__ == "__main__":
    main()
