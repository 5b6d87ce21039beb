"""MoM query latency at 10k, 100k and 1M memories: exact (in memory) and ANN (LanceDB IVF-Flat by default).

    python bench/query_bench.py [--sizes 10000 100000 1000000]

The pool is random clustered unit vectors written through the store's own API. Queries are
MoM query vectors: a memory's [w_t T, w_i I, w_a A] with random router weights, plus noise.
Reported per size: p50/p95 latency of one query, queries/s in batches of 64, recall@10 of ANN
against exact, and the ratio to a bare numpy matmul over the same in-memory matrix.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _pool import DIMS, bench_store, fill, numpy_topk, recall_at_k, timeit, tmpdir  # noqa: E402


def mom_queries(matrix: np.ndarray, n: int, rng) -> np.ndarray:
    d_t, d_i = DIMS["text"], DIMS["image"]
    rows = matrix[rng.integers(0, len(matrix), n)] + 0.3 * rng.normal(size=(n, matrix.shape[1])).astype(np.float32)
    w = rng.dirichlet([2, 2, 2], size=n).astype(np.float32)
    rows[:, :d_t] *= w[:, :1]
    rows[:, d_t:d_t + d_i] *= w[:, 1:2]
    rows[:, d_t + d_i:] *= w[:, 2:]
    return rows


def pct(x: np.ndarray, q: float) -> float:
    return float(np.percentile(x, q) * 1e3)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    ap.add_argument("--refine", type=int, default=20)
    ap.add_argument("--index", choices=["ivf_flat", "ivf_pq", "ivf_hnsw_sq"], default="ivf_flat")
    ap.add_argument("--partitions", type=int, default=None, help="IVF partitions (default sqrt(rows))")
    ap.add_argument("--nprobes", type=int, nargs="+", default=[10, 20, 40], help="IVF partitions probed (ann/N rows)")
    a = ap.parse_args()
    root = tmpdir("cn-query-bench-")
    rng = np.random.default_rng(0)
    try:
        store = bench_store(root)
        store.refine_factor = a.refine
        store.index_type = a.index
        store.ivf_partitions = a.partitions
        sys.stdout.reconfigure(line_buffering=True)
        refine = "exact scores, no refine" if a.index == "ivf_flat" else f"refine_factor {a.refine}"
        print(f"mix dim {store.preset.mix_dim}, k=10, {a.index} (dot), {refine}; rows ann/N probe N partitions")
        print(f"{'memories':>9} | {'path':<6} | {'p50 ms':>7} | {'p95 ms':>7} | {'q/s (64)':>8} | {'numpy p50':>9} | {'ratio':>5} | recall@10")
        for n in sorted(a.sizes):
            t = time.perf_counter()
            fill(store, n, batch=20_000)
            store.optimize() if n <= 100_000 else store.clips.optimize()
            write_s = time.perf_counter() - t
            q1s = mom_queries(store._exact.matrix if store._exact.version == store.version else _matrix(store), 64, rng)
            store.search_mix(q1s[:1], 10, exact=True)  # load the matrix for this version
            matrix = store._exact.matrix
            exact_ids = store.search_mix(q1s, 10, exact=True).clip_ids
            lat_np = timeit(lambda: numpy_topk(matrix, q1s[:1], 10), 30)
            lat_ex = timeit(lambda: store.search_mix(q1s[:1], 10, exact=True), 30)
            b_ex = np.median(timeit(lambda: store.search_mix(q1s, 10, exact=True), 5))
            b_np = np.median(timeit(lambda: numpy_topk(matrix, q1s, 10), 5))
            print(f"{n:>9,} | {'exact':<6} | {pct(lat_ex, 50):7.2f} | {pct(lat_ex, 95):7.2f} | {64 / b_ex:8.0f} | "
                  f"{pct(lat_np, 50):9.2f} | {np.median(lat_ex) / np.median(lat_np):5.2f} | 1.000 (batch of 64: {b_ex / b_np:.2f}x numpy)")
            t = time.perf_counter()
            store.maybe_index(force=True)
            build_s = time.perf_counter() - t
            parts = a.partitions or int(np.sqrt(n)) // (16 if a.index == "ivf_hnsw_sq" else 1)
            print(f"{'':>9}   (write {write_s:.0f} s, index build {build_s:.0f} s, {max(parts, 1)} partitions)")
            for nprobes in a.nprobes:
                store.nprobes = nprobes
                ann_ids = store.search_mix(q1s, 10, exact=False).clip_ids
                lat_ann = np.array([timeit(lambda q=q: store.search_mix(q[None], 10, exact=False), 1)[0] for q in q1s])
                b_ann = np.median(timeit(lambda: store.search_mix(q1s, 10, exact=False), 2))
                path = f"ann/{nprobes}"
                print(f"{n:>9,} | {path:<6} | {pct(lat_ann, 50):7.2f} | {pct(lat_ann, 95):7.2f} | {64 / b_ann:8.0f} | "
                      f"{pct(lat_np, 50):9.2f} | {np.median(lat_ann) / np.median(lat_np):5.2f} | {recall_at_k(ann_ids, exact_ids):.3f}")
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _matrix(store) -> np.ndarray:
    store.search_mix(np.zeros((1, store.preset.mix_dim), np.float32), 1, exact=True)
    return store._exact.matrix


if __name__ == "__main__":
    main()
