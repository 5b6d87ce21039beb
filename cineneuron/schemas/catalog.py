"""Relational bookkeeping beside the store (SQLModel over SQLite), DESIGN section 2.

These are separate from the store's row schemas: SQLModel tables cannot hold vectors, and the
catalog holds what a researcher asks "what happened?" about: datasets, subjects and their voxel
masks, ingest jobs with per-item errors, encoder presets, and training runs.
"""

from __future__ import annotations

from datetime import datetime, timezone

from sqlmodel import Field, SQLModel


def _now() -> datetime:
    return datetime.now(timezone.utc)


class Dataset(SQLModel, table=True):
    name: str = Field(primary_key=True)
    root: str = ""
    created_at: datetime = Field(default_factory=_now)


class Subject(SQLModel, table=True):
    dataset: str = Field(primary_key=True)
    subject: str = Field(primary_key=True)
    n_voxels: int
    n_tr: int
    mask_hash: str
    mask: bytes = b""  # packed bool mask over the source's voxels (np.packbits)
    mask_len: int = 0
    qc_json: str = "{}"
    data_hash: str = ""  # of its test samples' voxels, order- and source-free: finds a copied subject


class IngestJob(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    source: str
    root: str
    kind: str = "clips"  # clips | fmri
    status: str = "running"  # running | done | partial | failed | interrupted (its process is gone)
    n_total: int = 0
    n_ok: int = 0
    n_failed: int = 0
    n_skipped: int = 0
    errors_json: str = "[]"  # [{"item": ..., "reason": ...}]
    notes_json: str = "{}"  # e.g. {"unlabelled": [clip ids], "captioner": notice}
    store_version: int | None = None
    started_at: datetime = Field(default_factory=_now)
    finished_at: datetime | None = None
    # Who runs it, so a job whose process was killed shows as interrupted (store/liveness.py).
    pid: int | None = None
    host: str = ""
    pid_start: str = ""  # the process's start time, so a reused pid is not taken for it
    heartbeat_at: datetime | None = None  # renewed at every commit
    resumed_by: int | None = None  # the job that took over an interrupted one


class EncoderPreset(SQLModel, table=True):
    name: str = Field(primary_key=True)
    fingerprint: str
    config_json: str
    dims_json: str


class Run(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    stage: int
    subject: str
    dataset: str = ""
    config_json: str = "{}"
    metrics_json: str = "{}"
    checkpoint: str = ""
    store_version: int | None = None
    created_at: datetime = Field(default_factory=_now)
