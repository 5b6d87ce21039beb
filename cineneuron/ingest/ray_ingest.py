"""`cn ingest SOURCE --root DIR --ray ADDRESS`: the clips half of an ingest fanned out over Ray.

    files --(Ray tasks: decode_group)--> frames + previews --(actor pool: encode_batch)--> Arrow
    tables --(lance_ray.write_lance, one commit)--> staging table --(ONE merge-insert)--> clips

The same functions as the local ingest decode and encode (ingest/clips.py), so rows, ids, labels
and failure records are the same; only where they run differs. Frames go from a decode task
straight to an encoder actor through Ray's object store, never through the driver. The store
owns the tables: staging and the merge are store/staging.py and Store.merge_staged, so a job is
one clips version, a rerun inserts only what is missing (clips already stored are not even
decoded), and a job that dies before its merge leaves clips as they were.

ADDRESS: `local` starts a throwaway Ray on this machine for the job; `auto` joins the cluster this
machine belongs to (`ray start`, or RAY_ADDRESS); anything else is a Ray address
(`HOST:6379`, `ray://HOST:10001`). A Ray already initialised in this process is used as it is.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time

from cineneuron.errors import CNError
from cineneuron.ingest.clips import (IngestOptions, IngestReport, _by_video, decode_group, encode_batch,
                                     finish_job, plan_job, prepare_encoders)


class ClipEncoder:
    """An encoder actor: builds the store's encoders once, then encodes one file's clips per call."""

    def __init__(self, encoders, schema, dims: dict, n_frames: int, captioner, batch_size: int):
        self.encoders = encoders.build()
        self.schema, self.dims, self.n_frames = schema, dims, n_frames
        self.captioner, self.batch_size = captioner, batch_size

    def encode(self, decoded):
        """decoded: decode_group's (windows that decoded, failure records) -> (Arrow table, summary)."""
        from cineneuron.store.rows import clips_to_arrow

        items, failures = decoded
        if not items:
            return self.schema.empty_table(), {"rows": 0, "failed": failures}
        rows, unlabelled = [], []
        for i in range(0, len(items), self.batch_size):
            r, u = encode_batch(self.encoders, items[i:i + self.batch_size], self.captioner)
            rows += r
            unlabelled += u
        table = clips_to_arrow(rows, self.schema, self.dims, self.n_frames)
        return table, {"rows": len(rows), "failed": failures, "unlabelled": unlabelled,
                       "uncaptioned": sum(not d.spec.caption for d in items)}


@contextlib.contextmanager
def ray_session(address: str):
    try:
        import ray
    except ModuleNotFoundError:
        raise CNError("--ray needs Ray and lance-ray: pip install 'cineneuron[ray]'") from None
    if ray.is_initialized():
        yield ray
        return
    try:
        ray.init(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False)
    except (ConnectionError, RuntimeError, ValueError) as e:
        raise CNError(f"--ray {address}: cannot reach a Ray cluster ({str(e).splitlines()[0]})") from None
    try:
        yield ray
    finally:
        ray.shutdown()


def _uses_gpu(encoders) -> bool:
    return any("cuda" in str(getattr(e.config, "device", "")) for _, e in encoders.items())


def _fan_out(ray, store, todo, encoders, opts: IngestOptions, report: IngestReport, progress):
    """Decode tasks feed an actor pool; returns the refs of the non-empty tables and their rows."""
    groups = _by_video(todo)
    n_actors = max(1, min(len(groups), int(ray.cluster_resources().get("CPU", 1))))
    # Half a CPU each: encoder actors never hold every CPU, so decode tasks always find one.
    decode = ray.remote(num_cpus=0.5, max_retries=2)(decode_group)
    actor = ray.remote(num_cpus=0.5, num_gpus=1 if _uses_gpu(encoders) else 0, max_restarts=2,
                       max_task_retries=2)(ClipEncoder)
    # Unbuilt encoders are their config only, passed by value (a restarted actor still has them);
    # each actor builds (loads weights) once.
    pool = [actor.remote(encoders, store.clips.schema, store.dims, store.n_frames, opts.captioner, opts.batch_size)
            for _ in range(n_actors)]
    light = dataclasses.replace(opts, captioner=None)  # decode tasks need no model
    n, size = store.n_frames, store.preset.frames.size
    outs = [pool[i % n_actors].encode.options(num_returns=2).remote(decode.remote(uri, specs, n, size, light))
            for i, (uri, specs) in enumerate(groups.items())]
    tables, summaries = [t for t, _ in outs], [s for _, s in outs]
    pending, sizes = list(summaries), {ref: len(specs) for ref, specs in zip(summaries, groups.values())}
    while pending and progress:
        done, pending = ray.wait(pending, num_returns=1)
        progress(sizes[done[0]], report.n_total)
    metas = ray.get(summaries)  # in file order, as the local ingest reports them
    for a in pool:
        ray.kill(a)  # frees their CPUs for the staging write; their results live on in the object store
    for m in metas:
        report.n_failed += len(m["failed"])
        report.errors += m["failed"]
        report.unlabelled += m.get("unlabelled", [])
        report.uncaptioned += m.get("uncaptioned", 0)
    keep = [t for t, m in zip(tables, metas) if m["rows"]]
    return keep, sum(m["rows"] for m in metas)


def ingest_clips_ray(store, source, opts: IngestOptions, address: str = "auto", progress=None) -> IngestReport:
    """The clips of `source` into `store` over Ray; the same report as `ingest_clips`."""
    from cineneuron.store.staging import drop_staging, staging_name, write_staging

    t0 = time.perf_counter()
    report, todo = plan_job(store, source, opts, progress)
    try:
        if todo:
            todo = list({s.clip_id: s for s in todo}.values())  # one row per id in the one merge
            t_setup = time.perf_counter()
            encoders = prepare_encoders(store, opts.runtime, build=False)
            report.setup_s = time.perf_counter() - t_setup
            with ray_session(address) as ray:
                ray.data.DataContext.get_current().enable_progress_bars = False
                tables, n_rows = _fan_out(ray, store, todo, encoders, opts, report, progress)
                if n_rows:
                    name = staging_name(report.job_id)
                    staged = write_staging(store, ray.data.from_arrow_refs(tables), name)
                    store.merge_staged(staged)
                    report.n_ok = n_rows
                    drop_staging(store, name)
            try:
                store.maybe_index()  # no compaction: it would be a second version for the job
            except CNError as e:  # the rows are committed; only the index is missing
                report.index_notice = str(e)
    finally:
        finish_job(store, report, opts, t0)
    return report
