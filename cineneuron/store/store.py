"""The embedding store: a LanceDB database plus a catalog (SQLite, or `catalog_url`) (DESIGN section 2).

`Store.create(uri, preset)` writes the preset (names, configs, dims, per-store encoder state) and
a schema version into the store; `Store.open(uri)` checks them. Every table write is one Lance
commit, so a batch lands whole or not at all, and each ingest is a new, restorable version.
"""

from __future__ import annotations

import json
from datetime import timedelta

import numpy as np
import pyarrow as pa

from cineneuron.errors import CNError, StoreMismatchError
from cineneuron.schemas.presets import Preset, load_preset
from cineneuron.schemas.tables import CLIPS, META, SCHEMA_VERSION, clips_schema, fmri_table_name, meta_schema
from cineneuron.store.catalog import Catalog, is_local, local_path, open_catalog
from cineneuron.store.lance_util import is_conflict, retry, sql_list, sql_str, table_names, yielding
from cineneuron.store.object_store import storage_options as object_store_options
from cineneuron.store.rows import EncodedClip, clips_to_arrow
from cineneuron.store.fmri import FmriTables
from cineneuron.store.scan import scan
from cineneuron.store.search import ExactMix, SearchResult, ann_search


class Store(FmriTables):
    """Open with `Store.open(uri)` or `Store.create(uri, preset)`; `__init__` only stores."""

    def __init__(self, uri: str, db, preset: Preset, catalog: Catalog, *, ann_threshold: int = 200_000,
                 index_type: str = "ivf_flat", nprobes: int = 20, refine_factor: int = 20, ef: int = 200,
                 ivf_partitions: int | None = None):
        self.uri = uri
        self.db = db
        self.preset = preset
        self.catalog = catalog
        self.ann_threshold = ann_threshold
        self.index_type = index_type
        self.nprobes = nprobes
        self.refine_factor = refine_factor
        self.ef = ef
        self.ivf_partitions = ivf_partitions
        self._exact = ExactMix()
        self._clips = None
        self.storage_options: dict | None = None  # what LanceDB got; Ray workers writing staging need it too

    # --- opening ---------------------------------------------------------------------------
    @staticmethod
    def _connect(uri: str, storage_options: dict | None):
        import lancedb  # heavy; keep out of CLI start-up

        # Interval 0: every read sees the newest committed version (other writers included).
        return lancedb.connect(uri, storage_options=object_store_options(uri, storage_options),
                               read_consistency_interval=timedelta(0))

    @classmethod
    def exists(cls, uri: str, storage_options: dict | None = None) -> bool:
        if is_local(uri) and not local_path(uri).exists():
            return False
        return META in table_names(cls._connect(uri, storage_options))

    @classmethod
    def open(cls, uri: str, *, storage_options: dict | None = None, catalog_dir: str | None = None,
             catalog_url: str | None = None, **search_opts) -> "Store":
        if is_local(uri) and not (local_path(uri) / f"{META}.lance").exists():
            raise CNError(f"no CineNeuron store at {uri}; create one with: cn init --store {uri}")
        db = cls._connect(uri, storage_options)
        meta = {r["key"]: r for r in db.open_table(META).to_arrow().to_pylist()}
        version = json.loads(meta["schema_version"]["value"])
        if version != SCHEMA_VERSION:
            raise StoreMismatchError(f"store {uri} has schema version {version}; this CineNeuron reads version {SCHEMA_VERSION}")
        preset = Preset.model_validate_json(meta["preset"]["value"])
        cat = open_catalog(uri, catalog_dir, catalog_url)
        store = cls(uri, db, preset, cat, **search_opts)
        store.storage_options = object_store_options(uri, storage_options)
        return store

    @classmethod
    def create(cls, uri: str, preset: str | Preset = "classic", *, storage_options: dict | None = None,
               catalog_dir: str | None = None, catalog_url: str | None = None, runtime: dict | None = None,
               **search_opts) -> "Store":
        """Create a store, or open an existing one made with the same preset.

        runtime: e.g. {"weights_dir": D}, where relative weight paths resolve (not recorded).
        """
        preset = preset if isinstance(preset, Preset) else load_preset(preset)
        if cls.exists(uri, storage_options):
            store = cls.open(uri, storage_options=storage_options, catalog_dir=catalog_dir,
                             catalog_url=catalog_url, **search_opts)
            store.check_preset(preset.name)
            return store
        preset = _with_identity(preset, runtime)
        db = cls._connect(uri, storage_options)
        schema = clips_schema(preset.dims(), preset.frames.n)
        tbl = db.create_table(CLIPS, schema=schema)
        tbl.set_unenforced_primary_key("clip_id")  # concurrent upserts never duplicate a key
        meta_rows = [
            {"key": "schema_version", "value": json.dumps(SCHEMA_VERSION), "blob": b""},
            {"key": "preset", "value": preset.model_dump_json(), "blob": b""},
        ]
        # Written last: a store without `meta` does not exist, so a crash here leaves no half-store.
        db.create_table(META, pa.Table.from_pylist(meta_rows, schema=meta_schema()))
        cat = open_catalog(uri, catalog_dir, catalog_url)
        cat.record_preset(preset.name, preset.fingerprint(), preset.model_dump(), preset.dims())
        store = cls(uri, db, preset, cat, **search_opts)
        store.storage_options = object_store_options(uri, storage_options)
        return store

    @classmethod
    def from_config(cls, cfg, *, create_preset: str | Preset | None = None, runtime: dict | None = None) -> "Store":
        """Open (or, with `create_preset`, create) the store a `StoreConfig` describes, with all
        its search settings: the one way the CLI, the demo and notebooks open a store.
        runtime: for creating, where relative weight paths resolve (see `create`)."""
        opts = {"storage_options": cfg.storage_options or None, "catalog_dir": cfg.catalog_dir, "catalog_url": cfg.catalog_url,
                "ann_threshold": cfg.ann_threshold, "index_type": cfg.index_type, "nprobes": cfg.nprobes,
                "refine_factor": cfg.refine_factor, "ef": cfg.ef, "ivf_partitions": cfg.ivf_partitions}
        if create_preset is not None:
            return cls.create(cfg.uri, create_preset, runtime=runtime, **opts)
        return cls.open(cfg.uri, **opts)

    # --- self-description ------------------------------------------------------------------
    @property
    def dims(self) -> dict[str, int]:
        return self.preset.dims()

    @property
    def n_frames(self) -> int:
        return self.preset.frames.n

    def check_preset(self, name: str) -> None:
        if name != self.preset.name:
            raise StoreMismatchError(f"store {self.uri} was made with preset '{self.preset.name}', not '{name}'; use another --store or --preset {self.preset.name}")

    def check_identity(self, identity: dict[str, dict]) -> None:
        """Refuse encoders whose identity (weights hash, preprocessing, dims) differs from the store's.

        Both sides go through a JSON round trip first: the stored identity was read back from JSON
        (tuples became lists, int keys strings), the live one was not, and only values count.
        """
        for m, ident in identity.items():
            stored = _as_json(self.preset.identity.get(m))
            ident = _as_json(ident)
            if stored is not None and stored != ident:
                diff = sorted(k for k in set(stored) | set(ident) if stored.get(k) != ident.get(k))
                raise StoreMismatchError(f"the {m} encoder differs from the one store {self.uri} was made with (changed: {', '.join(diff)}); re-create the store or restore the original weights")

    def encoders(self, runtime: dict | None = None):
        """The store's encoders, rebuilt from its own description (LanceDB-style).

        runtime: device, precision and weights folder for this run (not part of the identity).
        """
        from cineneuron.encoders import create_encoders

        return create_encoders(self.preset, store_meta=self.preset.identity.get("_store_meta", {}), runtime=runtime)

    def get_meta(self, key: str) -> tuple[str | None, bytes | None]:
        rows = self.db.open_table(META).search().where(f"key = {sql_str(key)}").to_arrow().to_pylist()
        return (rows[0]["value"], rows[0]["blob"]) if rows else (None, None)

    def set_meta(self, key: str, value: str = "null", blob: bytes = b"") -> None:
        row = pa.Table.from_pylist([{"key": key, "value": value, "blob": blob}], schema=meta_schema())
        t = self.db.open_table(META)
        retry(lambda: t.merge_insert("key").when_matched_update_all().when_not_matched_insert_all().execute(row))

    # --- clips -----------------------------------------------------------------------------
    @property
    def clips(self):
        if self._clips is None:
            self._clips = self.db.open_table(CLIPS)
        return self._clips

    @property
    def version(self) -> int:
        return self.clips.version

    def count(self, where: str | None = None) -> int:
        return self.clips.count_rows(where)

    def upsert_clips(self, clips: list[EncodedClip]) -> int:
        """Idempotent merge-insert on clip_id; returns the new table version."""
        if not clips:
            return self.version
        last = {c.clip_id: c for c in clips}  # a batch never carries one id twice
        table = clips_to_arrow(list(last.values()), self.clips.schema, self.dims, self.n_frames)
        retry(lambda: self.clips.merge_insert("clip_id").when_matched_update_all()
               .when_not_matched_insert_all().execute(table))
        return self.version

    def merge_staged(self, staging) -> int:
        """Stream a staging table (a Ray job's rows, store/staging.py) into clips in ONE
        merge-insert on clip_id: one version per job, and a rerun inserts only what is missing."""
        # A fresh reader per try: a commit conflict with another writer replays the whole merge.
        retry(lambda: self.clips.merge_insert("clip_id").when_matched_update_all()
               .when_not_matched_insert_all().execute(staging.to_lance().scanner().to_reader()))
        return self.version

    def existing_ids(self, ids: list[str] | None = None, where: str | None = None) -> set[str]:
        tbl = scan(self.clips, ["clip_id"], where)
        have = set(tbl.column("clip_id").to_pylist())
        return have if ids is None else have & set(ids)

    def get_clips(self, clip_ids: list[str], columns: list[str] | None = None) -> pa.Table:
        """Rows for the given ids, in that order (missing ids raise)."""
        if not clip_ids:
            return self.clips.schema.empty_table()
        uniq = list(dict.fromkeys(clip_ids))
        out = []
        for i in range(0, len(uniq), 2000):  # keep the IN list a sane size
            chunk = uniq[i:i + 2000]
            flt = f"clip_id IN ({sql_list(chunk)})"
            cols = None if columns is None else list(dict.fromkeys(["clip_id", *columns]))
            out.append(scan(self.clips, cols, flt))
        tbl = pa.concat_tables(out)
        pos = {cid: i for i, cid in enumerate(tbl.column("clip_id").to_pylist())}
        missing = [c for c in uniq if c not in pos]
        if missing:
            raise CNError(f"{len(missing)} clip ids are not in the store (first: {missing[0]})")
        return tbl.take(pa.array([pos[c] for c in clip_ids]))

    def drop_source(self, source: str) -> int:
        n = self.count(f"source = {sql_str(source)}")
        if n == 0:
            raise CNError(f"no clips from source {source!r}; sources: {', '.join(self.sources()) or 'none'}")
        retry(lambda: self.clips.delete(f"source = {sql_str(source)}"))
        return n

    def sources(self) -> list[str]:
        col = scan(self.clips, ["source"]).column("source")
        return sorted(set(col.to_pylist()))

    # --- versions --------------------------------------------------------------------------
    def versions(self) -> list[dict]:
        out = []
        for v in self.clips.list_versions():
            ts = v["timestamp"]
            out.append({"version": int(v["version"]), "timestamp": ts.isoformat() if hasattr(ts, "isoformat") else str(ts)})
        return out

    def rollback(self, version: int) -> int:
        known = [v["version"] for v in self.versions()]
        if version not in known:
            raise CNError(f"clips table has no version {version}; versions: {known[0]}..{known[-1]}")
        self.clips.checkout(version)
        self.clips.restore()  # writes a new version equal to the old one: history is kept
        return self.version

    def optimize(self) -> bool:
        """Compact and index, yielding to concurrent writers: a conflict skips it (False), never fails
        an ingest whose rows are already committed."""
        if not yielding(self.clips.optimize):
            return False
        return yielding(self.maybe_index)

    # --- search ----------------------------------------------------------------------------
    def has_ann_index(self) -> bool:
        return any(getattr(ix, "columns", None) == ["mix"] for ix in self.clips.list_indices())

    def maybe_index(self, force: bool = False) -> bool:
        """Build the ANN index on `mix` once the pool passes `ann_threshold` rows (force: rebuild now)."""
        n = self.count()
        if n < 256 or (not force and (self.has_ann_index() or n < self.ann_threshold)):
            return False  # IVF needs a few hundred rows to train its partitions
        from lancedb.index import IvfFlat, IvfHnswSq, IvfPq

        parts = self.ivf_partitions or max(1, int(np.sqrt(n)))
        if self.index_type == "ivf_flat":
            cfg = IvfFlat(distance_type="dot", num_partitions=parts)
        elif self.index_type == "ivf_hnsw_sq":
            cfg = IvfHnswSq(distance_type="dot", num_partitions=max(1, parts // 16))
        else:
            d = self.preset.mix_dim
            sub = next(s for s in (d // 4, d // 8, d // 16, d // 2, d) if s and d % s == 0)
            cfg = IvfPq(distance_type="dot", num_partitions=parts, num_sub_vectors=sub)
        try:
            self.clips.create_index("mix", config=cfg, replace=True)
        except RuntimeError as e:  # e.g. k-means cannot fill `parts` partitions from near-duplicate rows
            if is_conflict(e):
                raise  # another writer committed meanwhile: the caller retries or yields
            reason = str(e).splitlines()[0].split(", /")[0].removeprefix("lance error: ").strip()
            raise CNError(f"the ANN index on mix was not built ({n} rows, {parts} partitions): {reason}; "
                          f"searches stay exact. Set store.ivf_partitions lower to build it") from None
        return True

    def search_mix(self, vectors: np.ndarray, k: int = 10, *, where: str | None = None,
                   exclude: list[list[str]] | list[str] | None = None, exact: bool | None = None,
                   guard: str | None = None) -> SearchResult:
        """Top-k clip ids by inner product with `mix`, for a (B, d) batch of query vectors.

        where: a SQL filter such as "source IN ('a','b')" or "split = 'train'".
        exclude: ids to leave out, one list for all queries or one list per query.
        exact: None chooses the ANN index when one exists, else the in-memory matmul.
        guard: a filter applied on its own as well (the test-clip guard): a row it excludes is never
        returned, whatever `where` says.
        """
        q = np.atleast_2d(np.asarray(vectors, dtype=np.float32))
        if q.shape[1] != self.preset.mix_dim:
            raise CNError(f"query vectors have dim {q.shape[1]}; this store's mix dim is {self.preset.mix_dim}")
        if exclude and isinstance(exclude[0], str):
            exclude = [list(exclude)] * len(q)
        if exact is None:
            exact = not self.has_ann_index()
        if not exact:
            # IVF-Flat scores are already exact: re-ranking would only re-read the same vectors.
            return ann_search(self.clips, q, k, where, exclude, nprobes=self.nprobes,
                              refine_factor=None if self.index_type == "ivf_flat" else self.refine_factor,
                              ef=self.ef if self.index_type == "ivf_hnsw_sq" else None, guard=guard)
        self._exact.refresh(self.clips, self.version)
        allowed = self._exact.allowed(self.clips, where)
        if guard:
            safe = self._exact.allowed(self.clips, guard)
            allowed = safe if allowed is None else allowed & safe
        return self._exact.search(q, k, allowed, exclude)

    # --- summary ---------------------------------------------------------------------------
    def stats(self) -> dict:
        by_source: dict[str, int] = {}
        by_split: dict[str, int] = {}
        if self.count():
            t = scan(self.clips, ["source", "split"])
            for s, sp in zip(t.column("source").to_pylist(), t.column("split").to_pylist()):
                by_source[s] = by_source.get(s, 0) + 1
                by_split[sp] = by_split.get(sp, 0) + 1
        fmri = {}
        for s in self.catalog.subjects():
            name = fmri_table_name(s.dataset, s.subject)
            splits: dict[str, int] = {}
            if name in table_names(self.db):
                for sp in scan(self.db.open_table(name), ["split"]).column("split").to_pylist():
                    splits[sp] = splits.get(sp, 0) + 1
            fmri[f"{s.dataset}/{s.subject}"] = {"samples": sum(splits.values()), "by_split": dict(sorted(splits.items())),
                                                "n_voxels": s.n_voxels, "n_tr": s.n_tr, "mask_hash": s.mask_hash,
                                                "data_hash": s.data_hash or None, "duplicate_of": []}
        by_hash: dict[str, list[str]] = {}
        for key, v in fmri.items():
            if v["data_hash"]:
                by_hash.setdefault(v["data_hash"], []).append(key)
        for key, v in fmri.items():
            v["duplicate_of"] = [k for k in by_hash.get(v["data_hash"] or "", []) if k != key]
        return {
            "uri": self.uri,
            "schema_version": SCHEMA_VERSION,
            "preset": self.preset.name,
            "preset_fingerprint": self.preset.fingerprint(),
            "dims": self.dims,
            "mix_dim": self.preset.mix_dim,
            "frames": self.preset.frames.model_dump(),
            "clips": self.count(),
            "by_source": by_source,
            "by_split": by_split,
            "version": self.version,
            "ann_index": self.has_ann_index(),
            "fmri": fmri,
        }


def _as_json(obj):
    """`obj` as it reads back from JSON (tuples -> lists, keys -> str), the form stored identities have."""
    return None if obj is None else json.loads(json.dumps(obj, sort_keys=True, default=str))


def _with_identity(preset: Preset, runtime: dict | None = None) -> Preset:
    """Fill in each encoder's identity and per-store state (e.g. projection seeds) at creation."""
    from cineneuron.encoders import create_encoders

    encs = create_encoders(preset, runtime=runtime)
    encs.check_weights()
    store_meta = {}
    identity = {}
    for m, enc in encs.items():
        store_meta.update(enc.init_store_meta())  # records are keyed by encoder name
        enc.store_meta = store_meta.get(enc.name, {})
        identity[m] = enc.identity()
    identity["_store_meta"] = store_meta
    # Kept in its JSON form from the start, so the store just created and the store reopened agree.
    return preset.model_copy(update={"identity": _as_json(identity)})
