#!/usr/bin/env python3
"""Summarises `ncu --csv --page raw` (stdin) per kernel name: launches, total and mean time, DRAM
bytes read and achieved DRAM throughput, sorted by total time; used by gpu_run.sh's profile
part to show where one decode step's time goes."""
import csv
import sys
from collections import defaultdict

rows = [r for r in csv.reader(line for line in sys.stdin if line.startswith('"'))]
if len(rows) < 3:
    print("ncu: no kernel rows")
    sys.exit(0)
head, units, data = rows[0], rows[1], rows[2:]
col = {name: i for i, name in enumerate(head)}
time_unit = units[col["gpu__time_duration.sum"]]
scale = {"ns": 1e-3, "nsecond": 1e-3, "us": 1.0, "usecond": 1.0, "ms": 1e3, "msecond": 1e3}[time_unit]
byte_unit = units[col["dram__bytes_read.sum"]]
bscale = {"B": 1.0, "byte": 1.0, "KB": 1e3, "Kbyte": 1e3, "MB": 1e6, "Mbyte": 1e6, "GB": 1e9, "Gbyte": 1e9}[byte_unit]
agg = defaultdict(lambda: [0, 0.0, 0.0])
for r in data:
    a = agg[r[col["Kernel Name"]]]
    a[0] += 1
    a[1] += float(r[col["gpu__time_duration.sum"]].replace(",", "")) * scale
    a[2] += float(r[col["dram__bytes_read.sum"]].replace(",", "")) * bscale
total = sum(a[1] for a in agg.values())
print(f"{len(data)} kernels, {total:.1f} us in all (serialised by ncu, no launch gaps)")
print(f"{'kernel':<34} {'n':>4} {'total us':>9} {'mean us':>8} {'MB read':>8} {'TB/s':>6}")
for name, (n, t, b) in sorted(agg.items(), key=lambda kv: -kv[1][1]):
    print(f"{name[:34]:<34} {n:>4} {t:>9.1f} {t / n:>8.2f} {b / 1e6:>8.1f} {b / t / 1e6 if t else 0:>6.2f}")
