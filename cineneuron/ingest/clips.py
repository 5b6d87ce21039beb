"""`cn ingest`: decode, encode and write clips from any source into the store.

Decoding runs in a background thread (each file in its own guarded reader) while the main
thread encodes and writes, so the slower stage sets the pace. Resuming is free: clips whose id
is already stored are skipped, so an interrupted ingest continues where it stopped, and a write
is one merge-insert per batch, so nothing is ever half-written.
"""

from __future__ import annotations

import contextlib
import io
import queue
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np

from cineneuron.errors import EXIT_PARTIAL, CNError
from cineneuron.schemas.records import ClipSpec
from cineneuron.store import EncodedClip, Store


@dataclass
class IngestOptions:
    limit: int | None = None
    batch_size: int = 16
    backend: str = "decord"
    timeout_s: float = 120.0
    preview_frames: int = 8
    force: bool = False  # re-encode clips already stored (updates their rows)
    captioner: object | None = None  # a cineneuron.labels.Captioner for clips without a caption
    captioner_notice: str | None = None  # why there is none, said once in the summary
    runtime: dict | None = None  # encoders' device, precision, weights folder (runtime.encoder_runtime)
    offload: str = "auto"  # encoders take turns on the device when they do not fit together (encoders/residency.py)


@dataclass
class IngestReport:
    job_id: int
    source: str
    n_total: int = 0
    n_ok: int = 0
    n_failed: int = 0
    n_skipped: int = 0
    unlabelled: list[str] = field(default_factory=list)
    uncaptioned: int = 0
    captioner_notice: str | None = None
    errors: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    setup_s: float = 0.0  # building the encoders (model loads), inside `seconds`
    version: int | None = None
    index_notice: str | None = None  # the ANN index could not be built; searches stay exact
    too_short: list = field(default_factory=list)  # [(video, duration_s)] shorter than one clip window
    resumed: list[int] = field(default_factory=list)  # interrupted jobs of this source this one continues

    @property
    def exit_code(self) -> int:
        return 0 if self.n_failed == 0 else EXIT_PARTIAL

    def summary(self) -> str:
        rate = self.n_ok / self.seconds if self.seconds else 0.0
        line = (f"ingest {self.source}: {self.n_ok} clips stored, {self.n_skipped} already present, "
                f"{self.n_failed} failed, {len(self.unlabelled)} without labels, {self.seconds:.1f} s ({rate:.1f} clips/s), "
                f"store version {self.version}")
        if self.n_failed:
            line += f"; reasons: cn pool jobs --job {self.job_id}"
        if self.resumed:
            line += f"\nresumed interrupted job {', '.join(map(str, self.resumed))} (its stored clips were kept)"
        if self.too_short:
            v, d = self.too_short[0]
            line += (f"\n{len(self.too_short)} video(s) shorter than one clip window gave no clip "
                     f"(first: {v}, {d:.2f} s)")
        if self.uncaptioned and self.captioner_notice:
            line += f"\n{self.uncaptioned} clips had no caption: {self.captioner_notice}"
        if self.index_notice:
            line += f"\n{self.index_notice}"
        return line


def _jpeg(frames: np.ndarray, n: int) -> list[bytes]:
    from PIL import Image

    from cineneuron.frames import resample_indices

    idx = resample_indices(len(frames), min(n, len(frames)))
    out = []
    for f in frames[idx]:
        buf = io.BytesIO()
        Image.fromarray(f).save(buf, format="JPEG", quality=90)
        out.append(buf.getvalue())
    return out


def _by_video(specs: list[ClipSpec]) -> dict[str, list[ClipSpec]]:
    groups: dict[str, list[ClipSpec]] = defaultdict(list)
    for s in specs:
        groups[s.video_uri].append(s)
    return groups


@dataclass
class Decoded:
    """One decoded clip: its spec, frames (T, S, S, 3) uint8 and JPEG previews."""

    spec: ClipSpec
    frames: np.ndarray
    previews: list[bytes]


def decode_group(uri: str, specs: list[ClipSpec], n_frames: int, size: int,
                 opts: IngestOptions) -> tuple[list[Decoded], list[dict]]:
    """One file's clips: (the windows that decode, failure records for the rest).

    Each file is read in the guarded reader; JPEG previews are made here, off the encoder. A file
    cut short keeps every window that decodes. Used by the local decode thread and by the Ray
    decode tasks alike.
    """
    from cineneuron.sources.video import read_clip_frames

    try:
        frames = read_clip_frames(uri, [(s.start_s, s.end_s) for s in specs], n_frames, size,
                                  backend=opts.backend, timeout_s=opts.timeout_s, partial=True)
    except CNError as e:  # VideoReadError: this file fails, the run goes on
        return [], failure_records(specs, str(e))
    except Exception as e:  # noqa: BLE001 - a decoder bug must not kill the run either
        return [], failure_records(specs, f"{type(e).__name__}: {e}")
    good = [Decoded(s, f, _jpeg(f, opts.preview_frames)) for s, f in zip(specs, frames) if not isinstance(f, str)]
    bad = [r for s, f in zip(specs, frames) if isinstance(f, str) for r in failure_records([s], f"cannot read video {uri}: {f}")]
    return good, bad


def failure_records(specs: list[ClipSpec], reason: str) -> list[dict]:
    """The catalog's failure rows for clips that failed: item + reason."""
    return [{"item": f"{s.video}@{s.start_s:g}-{s.end_s:g}", "reason": reason} for s in specs]


def _decode_worker(groups, n_frames, size, opts, out: queue.Queue, stop: threading.Event) -> None:
    for uri, specs in groups.items():
        if stop.is_set():
            break
        out.put(decode_group(uri, specs, n_frames, size, opts))
    out.put(None)


def _batches(q: queue.Queue, report: IngestReport, batch_size: int) -> Iterator[list[Decoded]]:
    pending: list[Decoded] = []
    while (item := q.get()) is not None:
        items, failures = item
        report.n_failed += len(failures)
        report.errors += failures
        pending += items
        while len(pending) >= batch_size:
            yield pending[:batch_size]
            pending = pending[batch_size:]
    if pending:
        yield pending


def encode_batch(encoders, items: list[Decoded], captioner=None) -> tuple[list[EncodedClip], list[str]]:
    """Encode a batch of decoded clips; returns the rows and the ids of clips with no labels.

    With `encoders.residency` offloading, each model visits its device for its own call only."""
    from cineneuron.encoders.residency import Residency
    from cineneuron.labels import labels_from_caption

    specs = [d.spec for d in items]
    frames = np.stack([d.frames for d in items])  # (B, T, S, S, 3) uint8
    captions = [s.caption or (captioner.caption(f) if captioner else "") for s, f in zip(specs, frames)]
    turn = getattr(encoders, "residency", None) or Residency(False)
    with turn.on_device(encoders.image):
        img_frames = encoders.image.encode_frames(frames)  # (B, T, d_img)
    with turn.on_device(encoders.action):
        act = encoders.action.encode_video(frames)  # (B, d_act)
    with turn.on_device(encoders.text):
        txt = encoders.text.encode_text(captions)  # (B, d_txt)
    with turn.on_device(encoders.cond):
        cond = encoders.cond.encode_cond(captions)  # B x (L_i, d_cond)
    rows, unlabelled = [], []
    for i, (s, d) in enumerate(zip(specs, items)):
        labels = s.labels if s.labels is not None else labels_from_caption(captions[i])
        if not labels:
            unlabelled.append(s.clip_id)
        rows.append(EncodedClip(
            clip_id=s.clip_id, source=s.source, video=s.video, video_uri=s.video_uri,
            start_s=s.start_s, end_s=s.end_s, split=s.split, caption=captions[i], labels=list(labels),
            img_frames=img_frames[i], txt=txt[i], act=act[i], cond=cond[i], frames=d.previews, factors=s.factors))
    return rows, unlabelled


class _Writer(threading.Thread):
    """Writes encoded batches while the next ones encode; coalesces what has queued up.

    Each write is one merge-insert (one commit), so a batch lands whole or not at all; larger
    commits also mean fewer fragments (notes/lancedb.md).
    """

    def __init__(self, store: Store, report: IngestReport, progress, total: int, max_rows: int = 256):
        super().__init__(daemon=True)
        self.store, self.report, self.progress, self.total, self.max_rows = store, report, progress, total, max_rows
        self.q: queue.Queue = queue.Queue(maxsize=8)
        self.error: BaseException | None = None

    def run(self) -> None:
        done = False
        while not done:
            rows = self.q.get()
            if rows is None:
                break
            while len(rows) < self.max_rows:  # take whatever else is already waiting
                try:
                    more = self.q.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    done = True
                    break
                rows += more
            try:
                self.store.upsert_clips(rows)
            except BaseException as e:  # noqa: BLE001 - re-raised on the main thread
                self.error = e
                return
            self.report.n_ok += len(rows)
            try:  # the job's heartbeat: its process is alive and making progress
                self.store.catalog.heartbeat(self.report.job_id, self.report.n_ok)
            except Exception:  # noqa: BLE001 - bookkeeping must never stop the writes
                pass
            if self.progress:
                self.progress(len(rows), self.total)

    def put(self, rows: list[EncodedClip]) -> None:
        if self.error is not None:
            raise self.error
        self.q.put(rows)

    def close(self) -> None:
        self.q.put(None)
        self.join()
        if self.error is not None:
            raise self.error


def prepare_encoders(store: Store, runtime: dict | None = None, build: bool = True, offload: str = "off"):
    """The store's own encoders (on the run's device and precision), checked against the identity
    recorded at creation.

    build=False (Ray: each actor builds its own) returns them unbuilt, cheap to ship; only the
    conditioning encoder is built here, on a copy, if the store still lacks its empty embedding.
    offload ("auto", "on", "off"): encoders that do not fit on the device together are built one at
    a time, each parked in CPU memory before the next loads, and take turns on the device.
    """
    encoders = store.encoders(runtime)
    encoders.check_weights()  # a missing file fails here, before any work
    store.check_identity({m: e.identity() for m, e in encoders.items()})
    if build:
        _build(encoders, offload)
    if store.get_meta("empty_cond")[0] is None and hasattr(encoders.cond, "encode_empty"):
        cond = encoders.cond if build else store.encoders(runtime).cond.build()
        with encoders.residency.on_device(cond) if build else contextlib.nullcontext():
            empty = np.asarray(cond.encode_empty(), dtype=np.float16)
        store.set_meta("empty_cond", f'{{"shape": {list(empty.shape)}}}', empty.tobytes())
    return encoders


def _build(encoders, offload: str) -> None:
    """Build every encoder. Unless offloading is off, each is parked in CPU memory before the next
    loads (so loading never holds two models on the device); `auto` then brings them all back
    when their weights fit the device together, and otherwise leaves them taking turns."""
    from cineneuron.encoders.residency import Residency, model_bytes, on_accelerator, should_offload, torch_model

    accel = [e for _, e in encoders.items() if on_accelerator(e)]
    turns = Residency(offload != "off" and bool(accel))
    encoders.residency = turns
    for _, enc in encoders.items():
        enc.build()
        turns.park(enc)
    if offload == "auto" and accel:
        from cineneuron.runtime import device_memory_bytes

        total = sum(model_bytes(e) for e in accel)
        if not should_offload("auto", total, device_memory_bytes(accel[0].config.device)):
            for e in accel:  # they fit together: resident for the whole ingest
                torch_model(e).to(e.config.device)
            turns.offload = False


def plan_job(store: Store, source, opts: IngestOptions, progress=None) -> tuple[IngestReport, list[ClipSpec]]:
    """Start the catalog job: (its report, the clips still to ingest), and report the clips already
    stored to `progress`. Shared with the Ray path."""
    if opts.limit is not None and opts.limit < 0:
        raise CNError(f"limit must be 0 or more (got {opts.limit})")
    specs = list(source.clips())
    if opts.limit is not None:
        specs = specs[: opts.limit]
    name = getattr(source, "source_name", source.name)
    stale = [j.id for j in store.catalog.interrupted_jobs(name, str(source.root), "clips")]
    job = store.catalog.start_job(name, str(source.root), "clips", len(specs))
    if stale:
        store.catalog.mark_resumed(stale, by=job)
    report = IngestReport(job_id=job, source=name, n_total=len(specs), resumed=stale,
                          too_short=list(getattr(source, "too_short", [])))
    # Videos a source could not even list clips for (missing, unreadable) are failures too.
    for video, reason in getattr(source, "skipped", []):
        report.n_failed += 1
        report.errors.append({"item": str(video), "reason": reason})
    have = set() if opts.force else store.existing_ids([s.clip_id for s in specs])
    todo = [s for s in specs if s.clip_id not in have]
    report.n_skipped = len(specs) - len(todo)
    if progress:
        progress(report.n_skipped, report.n_total)
    return report, todo


def finish_job(store: Store, report: IngestReport, opts: IngestOptions, t0: float) -> None:
    """Close the catalog job with what happened (also when the ingest failed half-way)."""
    report.seconds = time.perf_counter() - t0
    report.version = store.version
    report.captioner_notice = None if opts.captioner else opts.captioner_notice
    store.catalog.finish_job(report.job_id, n_ok=report.n_ok, n_failed=report.n_failed, n_skipped=report.n_skipped,
                             errors=report.errors, store_version=report.version,
                             notes={"unlabelled": report.unlabelled, "uncaptioned": report.uncaptioned,
                                    "captioner": report.captioner_notice, "index": report.index_notice,
                                    "too_short": report.too_short, "resumes": report.resumed})


def ingest_clips(store: Store, source, opts: IngestOptions,
                 progress: Callable[[int, int], None] | None = None) -> IngestReport:
    """Ingest every clip a source offers. progress(advance, total) is called per clip handled."""
    t0 = time.perf_counter()
    report, todo = plan_job(store, source, opts, progress)
    try:
        if todo:
            t_setup = time.perf_counter()
            encoders = prepare_encoders(store, opts.runtime, offload=opts.offload)
            report.setup_s = time.perf_counter() - t_setup
            q: queue.Queue = queue.Queue(maxsize=4)
            stop = threading.Event()
            decoder = threading.Thread(target=_decode_worker, daemon=True,
                                       args=(_by_video(todo), store.n_frames, store.preset.frames.size, opts, q, stop))
            writer = _Writer(store, report, progress, report.n_total)
            decoder.start()
            writer.start()
            failed = 0
            try:
                for batch in _batches(q, report, opts.batch_size):
                    rows, unlabelled = encode_batch(encoders, batch, opts.captioner)
                    report.unlabelled += unlabelled
                    report.uncaptioned += sum(not d.spec.caption for d in batch)
                    writer.put(rows)
                    if progress and report.n_failed > failed:
                        progress(report.n_failed - failed, report.n_total)
                        failed = report.n_failed
            finally:
                stop.set()
                writer.close()
            if progress and report.n_failed > failed:
                progress(report.n_failed - failed, report.n_total)
            try:
                store.optimize()
            except CNError as e:  # the rows are committed; only the index is missing
                report.index_notice = str(e)
    finally:
        finish_job(store, report, opts, t0)
    return report
