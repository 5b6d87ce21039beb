"""The Wan stage 2's ground-truth latent cache: the store's `wan_latents` table.

Latents are computed once per (clip, frames, size, VAE config) and kept here, so epochs and later
runs never re-encode video. The store owns the table; the trainer only asks for ids.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pyarrow as pa

from cineneuron.store.lance_util import retry, sql_list, sql_str, table_names
from cineneuron.store.scan import scan

LATENTS_TABLE = "wan_latents"


def latent_key(num_frames: int, height: int, width: int, vae) -> str:
    """Frames, size and a hash of the VAE config: a cached latent is valid for exactly these."""
    conf = {k: v for k, v in dict(vae.config).items() if not k.startswith("_")}
    digest = hashlib.sha256(json.dumps(conf, sort_keys=True, default=str).encode()).hexdigest()[:12]
    return f"f{num_frames}-h{height}-w{width}-vae{digest}"


def latents_schema() -> pa.Schema:
    return pa.schema([
        pa.field("id", pa.string(), nullable=False),  # clip_id|key
        pa.field("clip_id", pa.string()),
        pa.field("key", pa.string()),  # latent_key(): frames, size, VAE config hash
        pa.field("shape", pa.list_(pa.int32())),  # (z, F', h, w)
        pa.field("source", pa.string()),  # "video" or "preview"
        pa.field("latents", pa.binary()),  # float16, normalised with the VAE's latents_mean/std
    ])


class LatentCache:
    """Ground-truth VAE latents of one key, in the store's `wan_latents` table, with an in-memory memo."""

    def __init__(self, store, key: str, memo_bytes: int = 2 << 30):
        self.store, self.key, self.memo_bytes = store, key, memo_bytes
        self._memo: dict[str, np.ndarray] = {}
        self._memo_size = 0

    def _table(self, create: bool = False):
        if LATENTS_TABLE in table_names(self.store.db):
            return self.store.db.open_table(LATENTS_TABLE)
        if not create:
            return None
        tbl = self.store.db.create_table(LATENTS_TABLE, schema=latents_schema())
        tbl.set_unenforced_primary_key("id")
        return tbl

    def _rows(self, ids: list[str], columns: list[str]) -> pa.Table | None:
        tbl = self._table()
        if tbl is None or not ids:
            return None
        parts = [scan(tbl, columns, f"key = {sql_str(self.key)} AND clip_id IN ({sql_list(ids[i:i + 2000])})")
                 for i in range(0, len(ids), 2000)]
        return pa.concat_tables(parts)

    def cached(self, ids: list[str]) -> set[str]:
        t = self._rows(list(dict.fromkeys(ids)), ["clip_id"])
        return set() if t is None else set(t.column("clip_id").to_pylist())

    def sources(self) -> dict[str, str]:
        tbl = self._table()
        if tbl is None:
            return {}
        t = scan(tbl, ["clip_id", "source"], f"key = {sql_str(self.key)}")
        return dict(zip(t.column("clip_id").to_pylist(), t.column("source").to_pylist()))

    def put(self, items: list[tuple[str, np.ndarray, str]]) -> None:
        """items: (clip_id, latents (z, F', h, w) float16, source); idempotent (merge-insert on clip_id|key)."""
        if not items:
            return
        data = pa.Table.from_pylist([
            {"id": f"{c}|{self.key}", "clip_id": c, "key": self.key, "shape": list(x.shape), "source": src,
             "latents": np.ascontiguousarray(x, dtype=np.float16).tobytes()} for c, x, src in items
        ], schema=latents_schema())
        tbl = self._table(create=True)
        retry(lambda: tbl.merge_insert("id").when_matched_update_all().when_not_matched_insert_all().execute(data))

    def get(self, ids: list[str]) -> dict[str, np.ndarray]:
        """Latents (z, F', h, w) float16 of the ids that have them (missing ids are left out)."""
        need = [c for c in dict.fromkeys(ids) if c not in self._memo]
        t = self._rows(need, ["clip_id", "shape", "latents"])
        found = {}
        if t is not None:
            for c, shape, blob in zip(*(t.column(n).to_pylist() for n in ("clip_id", "shape", "latents"))):
                found[c] = np.frombuffer(blob, dtype=np.float16).reshape(shape)
        for c, x in found.items():
            if self._memo_size + x.nbytes <= self.memo_bytes:  # epochs re-read from memory while it fits
                self._memo[c] = x
                self._memo_size += x.nbytes
        return {c: self._memo.get(c, found.get(c)) for c in ids if c in self._memo or c in found}
