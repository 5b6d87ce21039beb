"""The catalog: where it lives, which database engine holds it, and small typed helpers.

SQLite inside a local store is the default. `store.catalog_url` (any SQLAlchemy URL, e.g.
postgresql+psycopg://user@host/db) puts it in a shared server, so every machine of a job sees the
same jobs, runs and datasets. Upserts are `INSERT ... ON CONFLICT DO UPDATE` in the engine's own
dialect: `Session.merge` (select, then insert) raises duplicate-key errors under concurrent writers.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import event
from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError
from sqlmodel import Session, SQLModel, create_engine, select

from cineneuron.errors import CNError
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


SQLITE_BUSY_S = 30.0  # how long a SQLite writer waits for the lock before "catalog busy"


def _redact(url: str) -> str:
    """The URL without its password, for messages."""
    return re.sub(r"//([^:/@]+):[^@]*@", r"//\1:***@", url)


def _engine(url: str):
    if url.startswith("sqlite"):
        eng = create_engine(url, connect_args={"timeout": SQLITE_BUSY_S})

        @event.listens_for(eng, "connect")
        def _connect(dbapi_conn, _):
            dbapi_conn.isolation_level = None  # transactions begin below, not in the driver
            dbapi_conn.execute("PRAGMA journal_mode=WAL")  # readers never block the writer

        @event.listens_for(eng, "begin")
        def _begin(conn):
            # IMMEDIATE takes the write lock up front, so a writer waits (busy timeout) instead of
            # failing at once when a read transaction would have to be upgraded.
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        return eng
    try:
        return create_engine(url, pool_pre_ping=True)
    except Exception as e:  # noqa: BLE001 - an unknown dialect or a missing driver
        raise CNError(f"store.catalog_url {_redact(url)!r} cannot be used: {type(e).__name__}: {e}") from None


def open_catalog(uri: str, catalog_dir: str | None = None, catalog_url: str | None = None) -> "Catalog":
    """The store's catalog: a shared database when a URL is given, else SQLite in a local folder."""
    if catalog_url:
        return Catalog(url=catalog_url)
    return Catalog(Path(catalog_dir) if catalog_dir else default_catalog_dir(uri))


class Catalog:
    """Open with a folder (SQLite file inside) or a SQLAlchemy URL (`store.catalog_url`)."""

    def __init__(self, directory: Path | None = None, *, url: str | None = None):
        if url is None:
            if directory is None:
                raise ValueError("Catalog needs a folder or a URL")
            directory.mkdir(parents=True, exist_ok=True)
            self.path: Path | None = directory / CATALOG_FILE
            url = f"sqlite:///{self.path}"
        else:
            self.path = None
        self.url = url
        self.engine = _engine(url)
        self.dialect = self.engine.dialect.name
        with self.guard():
            self._create_tables()
            _add_missing_columns(self.engine)

    def _create_tables(self) -> None:
        # Two machines creating the tables at once: the loser sees them exist (or a duplicate
        # type in PostgreSQL's catalog) and simply tries again.
        for attempt in range(5):
            try:
                SQLModel.metadata.create_all(self.engine)
                return
            except (IntegrityError, ProgrammingError):
                if attempt == 4:
                    raise
                time.sleep(0.1 * (attempt + 1))

    @contextmanager
    def guard(self) -> Iterator[None]:
        """Around a catalog operation: a locked or unreachable database is one clear line."""
        try:
            yield
        except OperationalError as e:
            msg = str(e.orig) if getattr(e, "orig", None) is not None else str(e)
            first = msg.strip().splitlines()[0] if msg.strip() else type(e).__name__
            if "locked" in first or "busy" in first:
                raise CNError(f"catalog busy: {self.where()} stayed locked for {SQLITE_BUSY_S:g} s ({first}); "
                              "for many concurrent writers use a server: --set store.catalog_url=postgresql+psycopg://...") from None
            raise CNError(f"catalog {self.where()} unavailable: {first}") from None

    def where(self) -> str:
        return str(self.path) if self.path else _redact(self.url)

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self.guard(), Session(self.engine, expire_on_commit=False) as s:
            yield s

    # --- datasets, subjects, presets -------------------------------------------------------
    def upsert(self, row) -> None:
        """Insert or replace one row by its primary key, atomically (ON CONFLICT DO UPDATE)."""
        with self.guard():
            self._upsert(row)

    def _upsert(self, row) -> None:
        table = type(row).__table__
        if self.dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        elif self.dialect == "sqlite":
            from sqlalchemy.dialects.sqlite import insert
        else:  # other engines: the ORM's merge (not safe under concurrent writers of one key)
            with self.session() as s:
                s.merge(row)
                s.commit()
            return
        values = {c.name: getattr(row, c.name) for c in table.columns}
        keys = [c.name for c in table.primary_key.columns]
        stmt = insert(table).values(**values)
        rest = {c: stmt.excluded[c] for c in values if c not in keys}
        stmt = stmt.on_conflict_do_update(index_elements=keys, set_=rest) if rest else stmt.on_conflict_do_nothing()
        with self.engine.begin() as conn:
            conn.execute(stmt)

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
        # The rows are already committed: try hard not to leave the job marked running.
        for attempt in range(3):
            try:
                return self._finish_job(job_id, n_ok=n_ok, n_failed=n_failed, n_skipped=n_skipped,
                                        errors=errors, store_version=store_version, notes=notes)
            except CNError:
                if attempt == 2:
                    raise
                time.sleep(1.0 + attempt)
        raise AssertionError("unreachable")

    def _finish_job(self, job_id: int, *, n_ok: int, n_failed: int, n_skipped: int,
                    errors: list[dict], store_version: int | None, notes: dict | None) -> IngestJob:
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
