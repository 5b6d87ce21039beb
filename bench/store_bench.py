"""Store benchmark: upsert throughput, exact search_mix against a bare numpy matmul, ANN recall.

    python bench/store_bench.py [--rows 100000]

Every ratio is measured side by side in one run on the same matrix.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _pool import bench_store, fill, numpy_topk, recall_at_k, timeit, tmpdir  # noqa: E402
from query_bench import mom_queries  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--keep", action="store_true")
    a = ap.parse_args()
    root = tmpdir("cn-store-bench-")
    try:
        store = bench_store(root)
        rate = fill(store, a.rows)
        print(f"upsert: {a.rows} rows at {rate:,.0f} rows/s (batches of 10,000, merge-insert on clip_id)")
        t = time.perf_counter()
        store.upsert_clips(__import__("_pool").random_rows(10_000, 0, np.random.default_rng(0)))
        print(f"re-upsert of 10,000 existing rows: {10_000 / (time.perf_counter() - t):,.0f} rows/s; rows now {store.count()}")

        rng = np.random.default_rng(1)
        store.search_mix(np.zeros((1, store.preset.mix_dim), np.float32), 10, exact=True)  # load the matrix once
        matrix = store._exact.matrix
        q64 = mom_queries(matrix, 64, rng)  # router-weighted memories plus noise, as MoM queries are
        q1 = q64[:1]
        print(f"\nexact search_mix at {store.count():,} rows, k=10 (median of repeats):")
        for name, q, rep in (("1 query", q1, 30), ("64 queries", q64, 10)):
            ours = np.median(timeit(lambda: store.search_mix(q, 10, exact=True), rep))
            bare = np.median(timeit(lambda: numpy_topk(matrix, q, 10), rep))
            print(f"  {name:<11} store {ours * 1e3:7.1f} ms   numpy {bare * 1e3:7.1f} ms   ratio {ours / bare:.2f}x")
        flt = np.median(timeit(lambda: store.search_mix(q64, 10, where="source = 'bench'", exact=True), 5))
        print(f"  64 queries with a filter: {flt * 1e3:.1f} ms")

        t = time.perf_counter()
        store.maybe_index(force=True)
        print(f"\nANN index ({store.index_type}, dot) built in {time.perf_counter() - t:.1f} s")
        exact = store.search_mix(q64, 10, exact=True).clip_ids
        for nprobes in sorted({10, store.nprobes, 40}):
            store.nprobes = nprobes
            approx = store.search_mix(q64, 10, exact=False).clip_ids
            lat = np.median(timeit(lambda: store.search_mix(q1, 10, exact=False), 20))
            print(f"  nprobes {nprobes:>3}: recall@10 {recall_at_k(approx, exact):.3f}, 1-query p50 {lat * 1e3:.1f} ms")
    finally:
        if not a.keep:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
