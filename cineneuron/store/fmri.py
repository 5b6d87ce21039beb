"""The store's fMRI side: one table per dataset and subject, and the subject's voxel space.

Mixed into `Store`. The subject's voxel count, TR window and mask live in the catalog; the
table's fixed-shape tensor column makes a wrong shape impossible to write.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import numpy as np
import pyarrow as pa

from cineneuron.errors import CNError, StoreMismatchError
from cineneuron.schemas.catalog import Dataset, Subject
from cineneuron.schemas.records import FmriBatch
from cineneuron.schemas.tables import fmri_schema, fmri_table_name
from cineneuron.store.lance_util import retry, sql_str, table_names
from cineneuron.store.rows import tensor_to_numpy
from cineneuron.store.scan import scan, scan_batches


class FmriTables:
    """fMRI methods of `Store` (which provides `db`, `uri` and `catalog`)."""

    def register_subject(self, dataset: str, subject: str, *, n_tr: int, n_voxels: int,
                         mask: np.ndarray | None, mask_hash: str, qc: dict, root: str = "") -> None:
        """Record a subject's voxel space; a later ingest must use the same mask and size."""
        old = self.catalog.subject(dataset, str(subject))
        if old is not None:
            if old.mask_hash != mask_hash or old.n_voxels != n_voxels or old.n_tr != n_tr:
                raise StoreMismatchError(
                    f"subject {subject} of {dataset} is stored with {old.n_voxels} voxels x {old.n_tr} TRs "
                    f"(mask {old.mask_hash}); this ingest has {n_voxels} x {n_tr} (mask {mask_hash}); nothing was written")
        packed = np.packbits(mask.astype(bool)).tobytes() if mask is not None else b""
        self.catalog.upsert(Dataset(name=dataset, root=root))
        self.catalog.upsert(Subject(dataset=dataset, subject=str(subject), n_voxels=n_voxels, n_tr=n_tr,
                                    mask_hash=mask_hash, mask=packed,
                                    mask_len=0 if mask is None else int(mask.size), qc_json=json.dumps(qc)))

    def subject_mask(self, dataset: str, subject: str) -> np.ndarray | None:
        s = self.catalog.subject(dataset, str(subject))
        if s is None or not s.mask_len:
            return None
        return np.unpackbits(np.frombuffer(s.mask, dtype=np.uint8))[: s.mask_len].astype(bool)

    def fmri_tables(self) -> list[str]:
        return sorted(t for t in table_names(self.db) if t.startswith("fmri_"))

    def fmri_table(self, dataset: str, subject: str):
        name = fmri_table_name(dataset, str(subject))
        if name not in table_names(self.db):
            known = ", ".join(f"{s.dataset}/{s.subject}" for s in self.catalog.subjects()) or "none"
            raise CNError(f"no fMRI for subject {subject} of {dataset} in {self.uri}; stored subjects: {known}")
        return self.db.open_table(name)

    def _fmri_table_for_write(self, name: str, schema: pa.Schema):
        """The subject's table, created if missing. Two ingests of one subject may both find it
        missing: the loser of the create opens the winner's table instead of failing."""
        if name in table_names(self.db):
            return self.db.open_table(name)
        try:
            tbl = self.db.create_table(name, schema=schema)
        except (ValueError, OSError, RuntimeError) as e:
            if "already exists" not in str(e):
                raise
            return self.db.open_table(name)
        tbl.set_unenforced_primary_key("sample_id")
        return tbl

    def add_fmri(self, dataset: str, subject: str, batch: FmriBatch) -> int:
        """Append-or-update fMRI samples; the voxel count must match the subject's."""
        batch.check()
        n, n_tr, v = batch.voxels.shape
        sub = self.catalog.subject(dataset, str(subject))
        if sub is not None and (sub.n_voxels != v or sub.n_tr != n_tr):
            raise StoreMismatchError(f"subject {subject} of {dataset} has {sub.n_voxels} voxels x {sub.n_tr} TRs; this batch has {v} x {n_tr}; nothing was written")
        if not np.isfinite(batch.voxels).all():
            raise CNError(f"fMRI batch for subject {subject} contains NaN or inf; nothing was written")
        name = fmri_table_name(dataset, str(subject))
        schema = fmri_schema(n_tr, v)
        tbl = self._fmri_table_for_write(name, schema)
        if tbl.schema.field("voxels").type != schema.field("voxels").type:
            shape = tbl.schema.field("voxels").type.shape
            raise StoreMismatchError(f"subject {subject} of {dataset} is stored as {shape[1]} voxels x {shape[0]} TRs; this batch has {v} x {n_tr}; nothing was written")
        vox = batch.voxels.astype(np.float16)
        if not np.isfinite(vox).all():
            raise CNError(f"fMRI values for subject {subject} overflow float16 (|x| > 65504); z-score them first")
        data = pa.Table.from_arrays([
            pa.array(batch.sample_id, pa.string()), pa.array(batch.clip_id, pa.string()),
            pa.array([str(subject)] * n, pa.string()), pa.array(batch.split, pa.string()),
            pa.array(np.asarray(batch.repeat, dtype=np.int32)), pa.array(np.asarray(batch.tr_index, dtype=np.int32)),
            pa.FixedShapeTensorArray.from_numpy_ndarray(vox).cast(schema.field("voxels").type),
        ], schema=schema)
        retry(lambda: tbl.merge_insert("sample_id").when_matched_update_all().when_not_matched_insert_all().execute(data))
        return tbl.count_rows()

    @staticmethod
    def fmri_filter(split: str | None = None, repeat: int | None = None, where: str | None = None) -> str | None:
        """The SQL filter on an fMRI table for a split, a repeat (-1: the average) and an extra clause."""
        parts = [f"split = {sql_str(split)}" if split else None, f"repeat = {int(repeat)}" if repeat is not None else None, where]
        return " AND ".join(f"({p})" for p in parts if p) or None

    def fmri_column(self, dataset: str, subject: str, column: str, split: str | None = None,
                    repeat: int | None = None) -> list:
        """One column of a subject's samples (e.g. clip_id, repeat) as a list."""
        return scan(self.fmri_table(dataset, subject), [column], self.fmri_filter(split, repeat)).column(column).to_pylist()

    def count_fmri(self, dataset: str, subject: str, split: str | None = None, repeat: int | None = None) -> int:
        return self.fmri_table(dataset, subject).count_rows(self.fmri_filter(split, repeat))

    def test_matrix(self, dataset: str, subject: str) -> tuple[list[str], np.ndarray]:
        """(clip ids, (N, n_tr * V) float16 voxels) of the subject's test average (else its test samples)."""
        parts = list(self.iter_fmri(dataset, subject, split="test", batch_size=4096, where="repeat = -1")) or \
            list(self.iter_fmri(dataset, subject, split="test", batch_size=4096))
        if not parts:
            return [], np.zeros((0, 0), np.float16)
        ids = [c for p in parts for c in p["clip_id"]]
        x = np.concatenate([p["voxels"].reshape(len(p["voxels"]), -1) for p in parts]).astype(np.float16)
        return ids, x

    def fingerprint_subject(self, dataset: str, subject: str) -> str:
        """sha1 over the sorted rows of the test matrix: equal for a byte-identical copy of a subject,
        whatever its id or source name (clip ids carry the source, so rows are not keyed by them)."""
        import hashlib

        _, x = self.test_matrix(dataset, subject)
        h = hashlib.sha1(f"{x.shape}".encode())
        for row in sorted(r.tobytes() for r in x):
            h.update(row)
        return h.hexdigest()[:16]

    def duplicate_subjects(self, dataset: str, subject: str, min_corr: float = 0.999) -> list[str]:
        """Other stored subjects whose fMRI equals this one's: same data hash, or (same dataset and
        voxel count) a test-average correlation of at least `min_corr` over their shared clips."""
        me = self.catalog.subject(dataset, str(subject))
        if me is None:
            return []
        out = []
        mine = None
        for o in self.catalog.subjects():
            if (o.dataset, o.subject) == (me.dataset, me.subject):
                continue
            if me.data_hash and o.data_hash == me.data_hash:
                out.append(f"{o.dataset}/{o.subject}")
            elif o.dataset == me.dataset and (o.n_voxels, o.n_tr) == (me.n_voxels, me.n_tr):
                mine = mine or self.test_matrix(dataset, subject)
                if _test_corr(mine, self.test_matrix(o.dataset, o.subject)) >= min_corr:
                    out.append(f"{o.dataset}/{o.subject}")
        return out

    def set_subject_hash(self, dataset: str, subject: str, data_hash: str) -> None:
        sub = self.catalog.subject(dataset, str(subject))
        if sub is not None:
            self.catalog.upsert(sub.model_copy(update={"data_hash": data_hash}))

    def iter_fmri(self, dataset: str, subject: str, split: str | None = None, batch_size: int = 256,
                  *, repeat: int | None = None, where: str | None = None, torch: bool = False) -> Iterator[dict]:
        """Stream samples without loading the table: dicts of arrays (or tensors)."""
        tbl = self.fmri_table(dataset, subject)
        flt = self.fmri_filter(split, repeat, where)
        for rb in scan_batches(tbl, where=flt, batch_size=batch_size):
            if rb.num_rows == 0:
                continue
            out = {
                "sample_id": rb.column("sample_id").to_pylist(),
                "clip_id": rb.column("clip_id").to_pylist(),
                "split": rb.column("split").to_pylist(),
                "repeat": rb.column("repeat").to_numpy(),
                "tr_index": rb.column("tr_index").to_numpy(),
                "voxels": tensor_to_numpy(rb.column("voxels")).astype(np.float32),  # (B, n_tr, V)
            }
            if torch:
                import torch as _t

                out["voxels"] = _t.from_numpy(out["voxels"])
            yield out



def _test_corr(a: tuple[list[str], np.ndarray], b: tuple[list[str], np.ndarray]) -> float:
    """Pearson correlation of two test matrices over the clips they share (-1 if fewer than 2)."""
    pos = {c: i for i, c in enumerate(b[0])}
    pairs = [(i, pos[c]) for i, c in enumerate(a[0]) if c in pos]
    if len(pairs) < 2:
        return -1.0
    x = a[1][[i for i, _ in pairs]].astype(np.float64).ravel()
    y = b[1][[j for _, j in pairs]].astype(np.float64).ravel()
    if x.std() == 0 or y.std() == 0:
        return -1.0
    return float(np.corrcoef(x, y)[0, 1])
