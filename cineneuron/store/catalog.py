"""The SQLite catalog: where it lives and small typed helpers around SQLModel sessions."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from sqlmodel import Session, SQLModel, create_engine, select

from cineneuron.store import liveness

from cineneuron.schemas.catalog import Dataset, EncoderPreset, IngestJob, Run, Subject, _now

CATALOG_FILE = "catalog.sqlite"


def is_local(uri: str) -> bool:
    return "://" not in uri or uri.startswith("file://")


def local_path(uri: str) -> Path:
    return Path(uri[len("file://"):] if uri.startswith("file://") else uri)


def default_catalog_dir(uri: str) -> Path:
    """A local store keeps its catalog inside; a remote one in a local per-URI folder."""
    if is_local(uri):
        return local_path(uri)
    base = Path(os.environ.get("CN_CATALOG_DIR", Path.home() / ".cache" / "cineneuron" / "catalogs"))
    return base / hashlib.sha1(uri.encode()).hexdigest()[:16]


class Catalog:
    def __init__(self, directory: Path):
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / CATALOG_FILE
        self.engine = create_engine(f"sqlite:///{self.path}")
        SQLModel.metadata.create_all(self.engine)
        _add_missing_columns(self.engine)

    def session(self) -> Session:
        return Session(self.engine, expire_on_commit=False)

    # --- datasets, subjects, presets -------------------------------------------------------
    def upsert(self, row) -> None:
        with self.session() as s:
            s.merge(row)
            s.commit()

    def subject(self, dataset: str, subject: str) -> Subject | None:
        with self.session() as s:
            return s.get(Subject, (dataset, subject))

    def subjects(self) -> list[Subject]:
        with self.session() as s:
            return list(s.exec(select(Subject)))

    def datasets(self) -> list[Dataset]:
        with self.session() as s:
            return list(s.exec(select(Dataset)))

    def record_preset(self, name: str, fingerprint: str, config: dict, dims: dict) -> None:
        self.upsert(EncoderPreset(name=name, fingerprint=fingerprint,
                                  config_json=json.dumps(config), dims_json=json.dumps(dims)))

    # --- ingest jobs -----------------------------------------------------------------------
    def start_job(self, source: str, root: str, kind: str = "clips", n_total: int = 0) -> int:
        pid = os.getpid()
        with self.session() as s:
            job = IngestJob(source=source, root=root, kind=kind, n_total=n_total, pid=pid, host=liveness.host(),
                            pid_start=liveness.start_token(pid), heartbeat_at=_now())
            s.add(job)
            s.commit()
            return job.id

    def heartbeat(self, job_id: int, n_ok: int | None = None) -> None:
        with self.session() as s:
            job = s.get(IngestJob, job_id)
            if job is not None:
                job.heartbeat_at = _now()
                if n_ok is not None:
                    job.n_ok = n_ok
                s.add(job)
                s.commit()

    def interrupted_jobs(self, source: str, root: str, kind: str = "clips") -> list[IngestJob]:
        """Jobs of this source left "running" by a process that is gone."""
        with self.session() as s:
            q = select(IngestJob).where(IngestJob.source == source, IngestJob.root == root,
                                        IngestJob.kind == kind, IngestJob.status == "running")
            return [j for j in s.exec(q) if not _alive(j)]

    def mark_resumed(self, job_ids: list[int], by: int) -> None:
        with self.session() as s:
            for jid in job_ids:
                job = s.get(IngestJob, jid)
                job.status, job.resumed_by = "interrupted", by
                s.add(job)
            s.commit()

    def finish_job(self, job_id: int, *, n_ok: int, n_failed: int, n_skipped: int,
                   errors: list[dict], store_version: int | None, notes: dict | None = None) -> IngestJob:
        with self.session() as s:
            job = s.get(IngestJob, job_id)
            job.n_ok, job.n_failed, job.n_skipped = n_ok, n_failed, n_skipped
            job.errors_json = json.dumps(errors)
            job.notes_json = json.dumps(notes or {})
            job.status = "done" if n_failed == 0 else ("partial" if n_ok or n_skipped else "failed")
            job.store_version = store_version
            job.finished_at = _now()
            s.add(job)
            s.commit()
            return job

    def jobs(self, limit: int = 20) -> list[IngestJob]:
        """Recent jobs; one still "running" whose process is gone reads as "interrupted"."""
        with self.session() as s:
            return [_shown(j) for j in s.exec(select(IngestJob).order_by(IngestJob.id.desc()).limit(limit))]

    def job(self, job_id: int) -> IngestJob | None:
        with self.session() as s:
            j = s.get(IngestJob, job_id)
            return None if j is None else _shown(j)

    # --- runs ------------------------------------------------------------------------------
    def add_run(self, *, stage: int, subject: str, dataset: str, config: dict, metrics: dict,
                checkpoint: str, store_version: int | None) -> int:
        with self.session() as s:
            run = Run(stage=stage, subject=subject, dataset=dataset, config_json=json.dumps(config),
                      metrics_json=json.dumps(metrics), checkpoint=checkpoint,
                      store_version=store_version)
            s.add(run)
            s.commit()
            return run.id

    def runs(self, subject: str | None = None, stage: int | None = None) -> list[Run]:
        with self.session() as s:
            q = select(Run).order_by(Run.id.desc())
            if subject is not None:
                q = q.where(Run.subject == subject)
            if stage is not None:
                q = q.where(Run.stage == stage)
            return list(s.exec(q))


def _alive(job: IngestJob) -> bool:
    return liveness.job_alive(job.pid, job.host, job.pid_start, job.heartbeat_at)


def _shown(job: IngestJob) -> IngestJob:
    if job.status == "running" and not _alive(job):
        job = job.model_copy(update={"status": "interrupted"})
    return job


def _add_missing_columns(engine) -> None:
    """Catalogs made before a field was added get the column (additive only; nothing is dropped)."""
    from sqlalchemy import inspect, text

    insp = inspect(engine)
    for table in SQLModel.metadata.sorted_tables:
        if not insp.has_table(table.name):
            continue
        have = {c["name"] for c in insp.get_columns(table.name)}
        for col in table.columns:
            if col.name not in have:  # added nullable: old rows read NULL (e.g. a job with no pid)
                kind = col.type.compile(dialect=engine.dialect)
                with engine.begin() as conn:
                    conn.execute(text(f'ALTER TABLE "{table.name}" ADD COLUMN "{col.name}" {kind}'))
