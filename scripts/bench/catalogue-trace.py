#!/usr/bin/env python3
"""Writes an access trace (DESIGN.md format) shaped like an object store's catalogue
rather than like any of scripts/gen-trace.py's shapes, so that placement and the
forecaster can be checked on a workload they were not built against. Fixed seed: the
same arguments always give the same trace.

- Old objects (`old-NNNNNN`): Zipf popularity (--alpha) over --old objects, --rate
  accesses per hour in all, each object's share drifting day by day (a log-normal
  step, --drift), all of them under one load curve: a daily cycle peaking at a random
  hour of the afternoon and quieter weekends (--flat for none). 2 % of accesses are
  writes.
- New objects (`new-NNNNNN`): --births an hour (under the same load curve), each
  written once, then read a Pareto-distributed number of times (most never, a few
  thousands) at delays that fall off as a power law from a few minutes to hours.
- Jobs: 25 fixed sets of 3 to 40 old objects, each read 1 to 5 times within 20
  minutes every 1 to 48 hours (jittered).
- One sweep at a random time reads a third of the old objects once each, a second
  apart.
- Sizes log-normal (median 1.5 MB, from 4 KiB to 4 GB), whatever the popularity.

    scripts/bench/catalogue-trace.py [--days 7] [--seed 1] > trace.csv
"""
import argparse
import importlib.util
import math
import random
import sys
from pathlib import Path

# gen-trace.py's Poisson draw and clock, so both generators' traces start at one time.
_spec = importlib.util.spec_from_file_location(
    "gen_trace", Path(__file__).resolve().parents[1] / "gen-trace.py"
)
gen_trace = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(gen_trace)
HOUR_MS, START_MS, poisson = gen_trace.HOUR_MS, gen_trace.START_MS, gen_trace.poisson


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--old", type=int, default=3000, help="old objects")
    parser.add_argument("--rate", type=float, default=3000.0, help="old objects' accesses per hour in all")
    parser.add_argument("--alpha", type=float, default=0.9, help="Zipf exponent of the old objects")
    parser.add_argument("--drift", type=float, default=0.35, help="sigma of a popularity's daily log-normal step")
    parser.add_argument("--births", type=float, default=30.0, help="new objects per hour")
    parser.add_argument("--flat", action="store_true", help="no daily or weekly load curve")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    hours = args.days * 24
    end = START_MS + hours * HOUR_MS
    peak = rng.uniform(10, 18)

    def size():
        return int(min(4e9, max(4096, rng.lognormvariate(math.log(1.5e6), 1.8))))

    def load(hour):
        if args.flat:
            return 1.0
        weekly = 0.55 if (hour // 24) % 7 in (5, 6) else 1.0
        return weekly * (1 + 0.6 * math.cos(2 * math.pi * ((hour % 24) - peak) / 24))

    events = []
    old = [(f"old-{i:06d}", size()) for i in range(args.old)]
    ranks = list(range(1, args.old + 1))
    rng.shuffle(ranks)
    share = [r ** -args.alpha for r in ranks]
    total = sum(share)
    share = [s / total for s in share]
    for hour in range(hours):
        if hour and hour % 24 == 0 and args.drift > 0:
            share = [s * rng.lognormvariate(0, args.drift) for s in share]
            total = sum(share)
            share = [s / total for s in share]
        rate = args.rate * load(hour)
        for (oid, nbytes), s in zip(old, share):
            for _ in range(poisson(rng, rate * s)):
                ts = START_MS + hour * HOUR_MS + rng.randrange(HOUR_MS)
                events.append((ts, oid, nbytes, "write" if rng.random() < 0.02 else "read"))

    born = 0
    for hour in range(hours):
        for _ in range(poisson(rng, args.births * load(hour))):
            oid = f"new-{born:06d}"
            born += 1
            nbytes = size()
            written = START_MS + hour * HOUR_MS + rng.randrange(HOUR_MS)
            events.append((written, oid, nbytes, "write"))
            reads = min(20_000, int(rng.paretovariate(0.9)) - 1)
            scale = rng.uniform(5, 120) * 60_000
            for _ in range(reads):
                ts = written + int(scale * ((1 - rng.random()) ** (-1 / 1.2) - 1))
                if ts < end:
                    events.append((ts, oid, nbytes, "read"))

    for _ in range(25):
        period = rng.choice([1, 2, 3, 6, 8, 12, 24, 24, 48]) * HOUR_MS
        members = rng.sample(old, rng.randrange(3, 40))
        reads = rng.randrange(1, 6)
        t = START_MS + rng.randrange(period)
        while t < end:
            start = t + int(rng.gauss(0, 0.05 * period))
            for oid, nbytes in members:
                for _ in range(reads):
                    ts = start + rng.randrange(20 * 60_000)
                    if START_MS <= ts < end:
                        events.append((ts, oid, nbytes, "read"))
            t += period

    sweep = START_MS + rng.randrange(hours * HOUR_MS)
    for k, (oid, nbytes) in enumerate(rng.sample(old, len(old) // 3)):
        if sweep + k * 1000 < end:
            events.append((sweep + k * 1000, oid, nbytes, "read"))

    events.sort()
    out = sys.stdout
    out.write("ts_ms,object_id,size_bytes,op\n")
    out.writelines(f"{ts},{oid},{nbytes},{op}\n" for ts, oid, nbytes, op in events)


if __name__ == "__main__":
    main()
