"""Mixture-of-Memories search over the `mix` column: one maximum-inner-product search.

Two paths (notes/lancedb.md):
- exact: LanceDB's brute-force scan is 10-25x slower than a matmul, so `mix` is held in memory
  and refreshed when the table version changes; a query is one (B, d) @ (d, N) matmul.
- ann: the LanceDB index on `mix` (IVF-Flat by default; IVF-PQ or IVF-HNSW-SQ + refine), always
  with the `dot` distance, since an index queried with another distance silently falls back to
  a full scan.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cineneuron.errors import CNError
from cineneuron.store.lance_util import sql_list
from cineneuron.store.rows import fixed_to_numpy
from cineneuron.store.scan import scan


@dataclass
class SearchResult:
    """Top-k per query, best first. Rows beyond the available count are padded with ''/-inf."""

    clip_ids: list[list[str]]  # (B, k)
    scores: np.ndarray  # (B, k) inner products = the mixture scores


class ExactMix:
    """`mix` held in memory, keyed by the table version it was read at."""

    def __init__(self):
        self.version: int | None = None
        self.ids: np.ndarray = np.empty(0, dtype=object)
        self.matrix: np.ndarray = np.empty((0, 0), dtype=np.float32)
        self.row_of: dict[str, int] = {}
        self._where_cache: dict[str, np.ndarray] = {}

    def refresh(self, table, version: int) -> None:
        if version == self.version:
            return
        tbl = scan(table, ["clip_id", "mix"])
        self.ids = np.asarray(tbl.column("clip_id").to_pylist(), dtype=object)
        self.matrix = np.ascontiguousarray(fixed_to_numpy(tbl.column("mix")))  # (N, d)
        self.row_of = {cid: i for i, cid in enumerate(self.ids)}
        self._where_cache = {}
        self.version = version

    def allowed(self, table, where: str | None) -> np.ndarray | None:
        """Boolean row mask for a SQL filter, evaluated by Lance once per (version, filter)."""
        if where is None:
            return None
        if where not in self._where_cache:
            ids = filtered_ids(table, where)
            mask = np.zeros(len(self.ids), dtype=bool)
            mask[[self.row_of[i] for i in ids if i in self.row_of]] = True
            self._where_cache[where] = mask
        return self._where_cache[where]

    def search(self, q: np.ndarray, k: int, allowed: np.ndarray | None,
               exclude: list[list[str]] | None) -> SearchResult:
        scores = q @ self.matrix.T  # (B, N)
        if allowed is not None:
            scores[:, ~allowed] = -np.inf
        if exclude:
            for b, ids in enumerate(exclude):
                rows = [self.row_of[i] for i in ids if i in self.row_of]
                scores[b, rows] = -np.inf
        return topk(scores, k, self.ids)


def filtered_ids(table, where: str, extra: str | None = None) -> list[str]:
    """Ids of the rows matching `where` (and `extra`); a filter Lance rejects is a user error."""
    flt = where if extra is None else f"({where}) AND ({extra})"
    try:
        return scan(table, ["clip_id"], flt).column("clip_id").to_pylist()
    except (ValueError, RuntimeError, OSError) as e:
        reason = " ".join(str(e).split())[:200]
        raise CNError(f"the pool filter {where!r} cannot be evaluated: {reason}") from None


def topk(scores: np.ndarray, k: int, ids: np.ndarray) -> SearchResult:
    """Top-k per row, ordered by score then by row index (a stable, argsort-compatible order)."""
    n = scores.shape[1]
    kk = min(k, n)
    if kk == 0:
        return SearchResult([[""] * k for _ in range(len(scores))], np.full((len(scores), k), -np.inf))
    part = np.argpartition(-scores, kk - 1, axis=1)[:, :kk] if kk < n else np.tile(np.arange(n), (len(scores), 1))
    part_scores = np.take_along_axis(scores, part, axis=1)
    order = np.lexsort((part, -part_scores), axis=1)
    rows = np.take_along_axis(part, order, axis=1)  # (B, kk)
    best = np.take_along_axis(scores, rows, axis=1)
    out_ids = [[ids[r] if np.isfinite(s) else "" for r, s in zip(rr, ss)] for rr, ss in zip(rows, best)]
    if kk < k:
        pad = k - kk
        out_ids = [row + [""] * pad for row in out_ids]
        best = np.concatenate([best, np.full((len(best), pad), -np.inf)], axis=1)
    return SearchResult(out_ids, best)


def ann_search(table, q: np.ndarray, k: int, where: str | None, exclude: list[list[str]] | None,
               *, nprobes: int, refine_factor: int | None, ef: int | None = None,
               guard: str | None = None) -> SearchResult:
    """LanceDB ANN search with prefiltering; excluded ids are filtered after over-fetching.

    `guard` (the test-clip filter) is checked again on the ids found, on its own, so a result
    can only ever be a row the guard allows, whatever `where` holds.
    """
    n_ex = max((len(e) for e in exclude), default=0) if exclude else 0
    fetch = k + n_ex
    ids_out, scores_out = [], []
    for b in range(len(q)):
        s = (table.search(q[b], vector_column_name="mix").distance_type("dot")
             .nprobes(nprobes).limit(fetch).select(["clip_id", "_distance"]))
        if refine_factor:
            s = s.refine_factor(refine_factor)
        if ef is not None:
            s = s.ef(ef)
        if where:
            s = s.where(where, prefilter=True)
        try:
            res = s.to_arrow()
        except (ValueError, RuntimeError, OSError) as e:
            raise CNError(f"the pool filter {where!r} cannot be evaluated: {' '.join(str(e).split())[:200]}") from None
        ids = res.column("clip_id").to_pylist()
        sc = 1.0 - np.asarray(res.column("_distance").to_numpy(), dtype=np.float64)  # dot: 1 - q.v
        ex = set(exclude[b]) if exclude else set()
        if guard and ids:
            ok = set(filtered_ids(table, guard, f"clip_id IN ({sql_list(ids)})"))
            ex |= {i for i in ids if i not in ok}
        pairs = [(i, v) for i, v in zip(ids, sc) if i not in ex][:k]
        pairs += [("", -np.inf)] * (k - len(pairs))
        ids_out.append([p[0] for p in pairs])
        scores_out.append([p[1] for p in pairs])
    return SearchResult(ids_out, np.asarray(scores_out, dtype=np.float32))
