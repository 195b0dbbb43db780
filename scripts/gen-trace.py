#!/usr/bin/env python3
"""Writes a synthetic access trace (DESIGN.md format) to stdout, drawn from Poisson
processes with a fixed seed, so the same arguments always give the same trace.

Without --shapes: the mix the shipped model was trained on: objects with daily cycles,
daily batch reads (a few busy hours at the same time every day, nothing otherwise), slow
trends, short bursts and decay to cold.

    scripts/gen-trace.py [--objects 300] [--days 14] [--seed 1] > trace.csv

With --shapes, a workload made of the named shapes, NAME=OBJECTS separated by commas;
object ids start with the shape's name (daily-00003, scan-00042), so a simulation's
moves can be told apart by shape:

    zipf     background: a Zipf(1) popularity over the objects, --zipf-rate accesses
             per hour in all, steady
    daily    a daily cycle peaking at --peak accesses per hour at a random hour
    burst    quiet, with bursts of 5 to 20 minutes at --burst-rate accesses per
             minute, about one every two days
    rising   popularity rising exponentially to --peak per hour at the end
    decay    popular from a random start in the first half (--peak per hour), then
             halving every 6 to 48 hours
    batch    periodic batch reads: jobs of about ten objects each read 20 times within
             half an hour, at the job's hour every day
    scan     a backup scan: every day at 01:00 each object is read once, in order,
             within an hour

    scripts/gen-trace.py --shapes zipf=2000,daily=40,scan=500 --days 7 > trace.csv

--scale multiplies every rate (--zipf-rate, --peak, --burst-rate and the legacy mix's).
"""
import argparse
import bisect
import itertools
import math
import random
import sys

HOUR_MS = 3_600_000
START_MS = 1_790_000_000_000 // (24 * HOUR_MS) * (24 * HOUR_MS)
SHAPES = ("zipf", "daily", "burst", "rising", "decay", "batch", "scan")


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


def profile(rng, scale):
    """The legacy mix: one object's rate per hour."""
    kind = rng.choice(["daily", "daily", "batch", "trend", "burst", "decay", "quiet"])
    peak = rng.randrange(24)
    level = rng.uniform(2, 40) * scale
    slope = rng.uniform(-0.04, 0.06)
    bursts = set()
    half_life = rng.uniform(6, 48)
    batch_hours = rng.randrange(1, 4)

    def rate(hour):
        day_cycle = (1 + math.cos(2 * math.pi * ((hour % 24) - peak) / 24)) / 2
        if kind == "daily":
            return level * day_cycle ** 2 + 0.2
        if kind == "batch":
            return level * 10 if ((hour % 24) - peak) % 24 < batch_hours else 0.0
        if kind == "trend":
            return max(0.0, level * 0.3 * (1 + slope * hour / 24 * 4)) * (0.5 + day_cycle)
        if kind == "burst":
            if hour not in bursts and rng.random() < 0.01:
                bursts.update(range(hour, hour + rng.randrange(2, 6)))
            return (level * 3 if hour in bursts else 0.0) + 0.3
        if kind == "decay":
            return level * 2 * 0.5 ** (hour / half_life)
        return 0.05

    return rate


def size(rng):
    # Log-uniform from 1 kB to 50 MB: many small objects, a few large ones.
    return int(math.exp(rng.uniform(math.log(1_000), math.log(50_000_000))))


def legacy(args, rng, hours, emit):
    objects = [(f"obj-{i:05d}", rng.randrange(1_000, 50_000_000), profile(rng, args.scale))
               for i in range(args.objects)]
    for hour in range(hours):
        events = []
        for object_id, nbytes, rate in objects:
            for _ in range(poisson(rng, rate(hour))):
                op = "write" if rng.random() < 0.05 else "read"
                events.append((START_MS + hour * HOUR_MS + rng.randrange(HOUR_MS), object_id, nbytes, op))
        emit(events)


def per_hour_rate(rng, shape, hours, peak):
    """A rate per hour for the shapes drawn hour by hour; None for the others."""
    if shape == "daily":
        top = rng.randrange(24)
        return lambda h: peak * ((1 + math.cos(2 * math.pi * ((h % 24) - top) / 24)) / 2) ** 4 + 0.1
    if shape == "rising":
        growth = math.log(max(peak, 1.0))
        return lambda h: peak * math.exp(growth * (h / max(hours - 1, 1) - 1))
    if shape == "decay":
        start = rng.randrange(max(hours // 2, 1))
        half_life = rng.uniform(6, 48)
        return lambda h: 0.0 if h < start else peak * 0.5 ** ((h - start) / half_life)
    return None


def shaped(args, rng, hours, emit):
    counts = {}
    for part in args.shapes.split(","):
        name, _, n = part.partition("=")
        if name not in SHAPES or not n.isdigit():
            sys.exit(f"gen-trace.py: --shapes wants NAME=OBJECTS with NAME one of {', '.join(SHAPES)}; got {part!r}")
        counts[name] = counts.get(name, 0) + int(n)
    peak = args.peak * args.scale
    objects = {name: [(f"{name}-{i:05d}", size(rng)) for i in range(n)] for name, n in counts.items()}
    rates = [(oid, nbytes, per_hour_rate(rng, name, hours, peak))
             for name, objs in objects.items() for oid, nbytes in objs]
    rates = [r for r in rates if r[2] is not None]
    zipf = objects.get("zipf", [])
    cumulative = list(itertools.accumulate(1.0 / (i + 1) for i in range(len(zipf))))
    bursty = objects.get("burst", [])
    jobs = []
    batch = objects.get("batch", [])
    for j in range(0, len(batch), 10):
        jobs.append((rng.randrange(24), batch[j:j + 10]))
    for hour in range(hours):
        base = START_MS + hour * HOUR_MS
        events = []
        for oid, nbytes, rate in rates:
            for _ in range(poisson(rng, rate(hour))):
                events.append((base + rng.randrange(HOUR_MS), oid, nbytes, "read"))
        if zipf:
            total = cumulative[-1]
            for _ in range(poisson(rng, args.zipf_rate * args.scale)):
                oid, nbytes = zipf[bisect.bisect_left(cumulative, rng.random() * total)]
                events.append((base + rng.randrange(HOUR_MS), oid, nbytes, "read"))
        for oid, nbytes in bursty:
            for _ in range(poisson(rng, 0.5)):
                events.append((base + rng.randrange(HOUR_MS), oid, nbytes, "read"))
            if rng.random() < 1 / 48:
                length = rng.randrange(5, 21) * 60_000
                start = base + rng.randrange(HOUR_MS - length)
                for _ in range(poisson(rng, args.burst_rate * args.scale * length / 60_000)):
                    events.append((start + rng.randrange(length), oid, nbytes, "read"))
        for job_hour, members in jobs:
            if hour % 24 == job_hour:
                for oid, nbytes in members:
                    for _ in range(20):
                        events.append((base + rng.randrange(HOUR_MS // 2), oid, nbytes, "read"))
        scan = objects.get("scan", [])
        if scan and hour % 24 == 1:
            step = HOUR_MS // len(scan)
            events.extend((base + i * step, oid, nbytes, "read") for i, (oid, nbytes) in enumerate(scan))
        for i, event in enumerate(events):
            if rng.random() < args.writes:
                events[i] = event[:3] + ("write",)
        emit(events)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--objects", type=int, default=300, help="objects of the legacy mix")
    parser.add_argument("--days", type=int, default=14)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--shapes", help="NAME=OBJECTS,... (see above) instead of the legacy mix")
    parser.add_argument("--scale", type=float, default=1.0, help="multiplies every rate")
    parser.add_argument("--peak", type=float, default=300.0, help="peak accesses per hour of daily, rising, decay")
    parser.add_argument("--burst-rate", type=float, default=150.0, help="accesses per minute during a burst")
    parser.add_argument("--zipf-rate", type=float, default=2000.0, help="accesses per hour over all zipf objects")
    parser.add_argument("--writes", type=float, default=0.05, help="share of accesses that are writes (shapes only)")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    hours = args.days * 24
    out = sys.stdout
    out.write("ts_ms,object_id,size_bytes,op\n")

    def emit(events):
        events.sort()
        out.writelines(f"{ts},{oid},{nbytes},{op}\n" for ts, oid, nbytes, op in events)

    if args.shapes:
        shaped(args, rng, hours, emit)
    else:
        legacy(args, rng, hours, emit)


if __name__ == "__main__":
    main()
