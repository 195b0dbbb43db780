#!/usr/bin/env python3
"""Writes an access trace (DESIGN.md format) of many objects with heavy-tailed read
counts and no time structure: OBJECTS objects, each born at a uniform time within DAYS
days and read a Pareto(1.2) number of times (at least once) at uniform times between its
birth and the end; sizes log-uniform from 4 kB to 50 MB. What a placement run faces when
bounded tiers hold hundreds of thousands of small residents. Fixed seed: the same
arguments always give the same trace. Prints the accesses and all objects' bytes on
stderr.

    scripts/bench/pareto-trace.py OBJECTS DAYS [SEED] > trace.csv
"""
import math
import random
import sys


def main():
    objects, days = int(sys.argv[1]), float(sys.argv[2])
    random.seed(int(sys.argv[3]) if len(sys.argv) > 3 else 1)
    span = int(days * 86_400_000)
    start = 1_700_000_000_000
    rows, total = [], 0
    for i in range(objects):
        size = int(math.exp(random.uniform(math.log(4_000), math.log(50_000_000))))
        total += size
        reads = max(1, int(random.paretovariate(1.2)))
        born = random.randrange(span)
        for _ in range(reads):
            rows.append((start + born + int(random.random() * (span - born)), i, size))
    rows.sort()
    sys.stderr.write(f"accesses {len(rows)} bytes {total}\n")
    out = sys.stdout
    out.write("ts_ms,object_id,size_bytes\n")
    for ts, i, size in rows:
        out.write(f"{ts},obj-{i:07d},{size}\n")


main()
