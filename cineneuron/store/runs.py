"""Where runs live, which checkpoint a command uses, and whether it fits the store.

A run folder holds the checkpoint (safetensors + JSON) and the resolved root config. Every
checkpoint carries the store's preset fingerprint and the subject's mask hash, so a query or a
resumed training against another store or voxel space is refused in one line.
"""

from __future__ import annotations

from pathlib import Path

from cineneuron.errors import CNError, StoreMismatchError
from cineneuron.store.catalog import default_catalog_dir, is_local, local_path


def runs_dir(store, runs_dir: str | None = None) -> Path:
    if runs_dir:
        return Path(runs_dir)
    if is_local(store.uri):
        return local_path(store.uri) / "runs"
    # A remote store keeps checkpoints in a local folder (a SQLite catalog's, else the per-URI
    # cache folder); machines that must share them set train.runs_dir to a shared path.
    base = store.catalog.path.parent if store.catalog.path is not None else default_catalog_dir(store.uri)
    return base / "runs"


def run_dir(store, dataset: str, subject: str, stage: int, base: str | None = None) -> Path:
    return runs_dir(store, base) / f"{dataset}-sub{subject}" / f"stage{stage}"


def resolve_dataset(store, subject: str, dataset: str | None = None) -> str:
    """The dataset a bare subject id refers to (unique in the catalog), or the one given."""
    subs = [s for s in store.catalog.subjects() if s.subject == str(subject)]
    if dataset:
        if not any(s.dataset == dataset for s in subs):
            raise CNError(f"no subject {subject} of {dataset} in {store.uri}; ingest it with cn ingest {dataset} --subject {subject}")
        return dataset
    if not subs:
        known = ", ".join(f"{s.dataset}/{s.subject}" for s in store.catalog.subjects()) or "none"
        raise CNError(f"unknown subject {subject} in {store.uri} (stored: {known}); ingest fMRI with cn ingest <dataset> --root DIR --subject {subject}")
    if len(subs) > 1:
        raise CNError(f"subject {subject} exists in {', '.join(s.dataset for s in subs)}; choose one with --dataset")
    return subs[0].dataset


def latest_checkpoint(store, dataset: str, subject: str, stage: int | None = None, base: str | None = None) -> Path:
    """The newest stage-2 checkpoint if any, else stage 1 (or exactly `stage`)."""
    stages = [stage] if stage else [2, 1]
    for st in stages:
        d = run_dir(store, dataset, subject, st, base)
        if (d / "model.safetensors").exists():
            return d
    raise CNError(f"no trained model for subject {subject} of {dataset}; run: cn train --stage 1 --subject {subject}")


def check_compatible(store, extra: dict, dataset: str, subject: str) -> None:
    want_fp, want_mask = store.preset.fingerprint(), _mask_hash(store, dataset, subject)
    fp, mask = extra.get("preset_fingerprint"), extra.get("mask_hash")
    if fp != want_fp:
        raise StoreMismatchError(f"checkpoint was trained on preset {extra.get('preset')!r} ({fp}); store {store.uri} has preset {store.preset.name!r} ({want_fp})")
    if mask != want_mask:
        raise StoreMismatchError(f"checkpoint was trained on voxel mask {mask}; subject {subject} of {dataset} in this store has mask {want_mask}")


def _mask_hash(store, dataset: str, subject: str) -> str | None:
    s = store.catalog.subject(dataset, str(subject))
    return s.mask_hash if s else None


def checkpoint_extra(store, dataset: str, subject: str, **more) -> dict:
    return {"preset": store.preset.name, "preset_fingerprint": store.preset.fingerprint(),
            "mask_hash": _mask_hash(store, dataset, subject), "dataset": dataset, "subject": str(subject),
            "store_uri": store.uri, "store_version": store.version, **more}
