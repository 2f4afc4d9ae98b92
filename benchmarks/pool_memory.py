"""Pool build and image read: throughput, and peak memory as the pool grows.

Each size runs in a fresh process so its peak RSS is its own. Memory should stay flat: images go
to tar shards as they are made and are read back one at a time.

    python benchmarks/pool_memory.py [--sizes 2000,8000,32000]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile

CHILD = """
import json, resource, sys, time
from pathlib import Path
from benchmark.pools.shapes import Defects, ShapesPool, build
from benchmark.pools.shards import ShardReader
n, out = int(sys.argv[1]), Path(sys.argv[2])
t0 = time.perf_counter()
table = build(ShapesPool(size=n, defects=Defects(near_duplicate=0.1, mismatched=0.2)), out).table
built = time.perf_counter() - t0
rss_build = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
reader = ShardReader(out)
t0 = time.perf_counter()
for ref in table.column("image").to_pylist():
    reader.read_image(ref)
read = time.perf_counter() - t0
print(json.dumps({"n": n, "build_per_s": n / built, "read_per_s": n / read,
                  "rss_build_mb": rss_build / 1024,
                  "rss_read_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sizes", default="2000,8000,32000")
    sizes = [int(s) for s in ap.parse_args().sizes.split(",")]
    print(
        f"{'samples':>8} {'build img/s':>12} {'read img/s':>11} {'peak RSS build':>15} "
        f"{'peak RSS read':>14}"
    )
    for n in sizes:
        with tempfile.TemporaryDirectory() as d:
            proc = subprocess.run(
                [sys.executable, "-c", CHILD, str(n), d], capture_output=True, text=True, check=True
            )
            r = json.loads(proc.stdout.strip().splitlines()[-1])
        print(
            f"{n:>8,} {r['build_per_s']:>12.0f} {r['read_per_s']:>11.0f} "
            f"{r['rss_build_mb']:>12.0f} MB {r['rss_read_mb']:>11.0f} MB"
        )


if __name__ == "__main__":
    main()
