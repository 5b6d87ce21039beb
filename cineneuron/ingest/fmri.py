"""`cn ingest cc2017|synth|cinebrain --subject K`: a subject's fMRI into the store.

The adapters in `cineneuron.fmri` read, preprocess, select voxels and align samples to clips;
this module checks the subject's voxel space against the catalog (same mask or refuse) and
writes the samples in batches. Re-ingesting updates rows by sample id, so nothing duplicates.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from cineneuron.config import RootConfig
from cineneuron.errors import CNError

FMRI_SOURCES = ("cc2017", "synth", "cinebrain")


@dataclass
class FmriReport:
    dataset: str
    subject: str
    n_voxels: int
    n_tr: int
    samples: dict
    qc: dict
    missing_clips: int
    seconds: float
    duplicates: list = None  # other stored subjects with the same fMRI (a copied subject?)

    @property
    def warning(self) -> str | None:
        if not self.duplicates:
            return None
        return (f"warning: the fMRI of {self.dataset} subject {self.subject} equals that of {', '.join(self.duplicates)} "
                "(same voxel data); is one a copy of the other?")

    def summary(self) -> str:
        from cineneuron.fmri import format_qc

        line = (f"fmri {self.dataset} subject {self.subject}: {sum(self.samples.values())} samples "
                f"({', '.join(f'{k} {v}' for k, v in sorted(self.samples.items()))}), "
                f"{self.n_voxels} voxels x {self.n_tr} TRs, {self.seconds:.1f} s")
        if self.missing_clips:
            line += f"; {self.missing_clips} samples point at clips not yet in the store (ingest the clips too)"
        return line + "\n" + format_qc(self.qc)


def load_subject(source: str, root: str, subject: str, cfg: RootConfig, dataset: str, existing_mask):
    from cineneuron.fmri import load_cc2017, load_cinebrain

    try:
        sub = int(subject)
    except ValueError:
        raise CNError(f"subject must be a number for {source} (got {subject!r})") from None
    if source in ("cc2017", "synth"):
        c = cfg.fmri.cc2017.model_copy(update={"source": dataset})
        return load_cc2017(root, sub, c, existing_mask=existing_mask)
    if source == "cinebrain":
        c = cfg.fmri.cinebrain.model_copy(update={"source": dataset})
        return load_cinebrain(root, sub, c, existing_mask=existing_mask)
    raise CNError(f"source {source!r} has no fMRI; fMRI sources: {', '.join(FMRI_SOURCES)}")


def ingest_subject(store, source: str, root: str, subject: str, cfg: RootConfig, *,
                   source_name: str | None = None) -> FmriReport:
    t0 = time.perf_counter()
    dataset = source_name or source
    subject = str(subject)
    job = store.catalog.start_job(dataset, root, "fmri")
    n = 0
    try:
        data = load_subject(source, root, subject, cfg, dataset, store.subject_mask(dataset, subject))
        # Refuses (before any write) a voxel count or mask that differs from the stored subject's.
        store.register_subject(dataset, subject, n_tr=data.n_tr, n_voxels=data.n_voxels, mask=data.mask,
                               mask_hash=data.mask_hash, qc=data.qc, root=root)
        have = store.existing_ids()
        missing = 0
        for batch in data.batches(cfg.fmri.batch_size):
            store.add_fmri(dataset, subject, batch)
            missing += sum(c not in have for c in batch.clip_id)
            n += len(batch)
    except CNError as e:
        store.catalog.finish_job(job, n_ok=0, n_failed=1, n_skipped=0, errors=[{"item": f"subject {subject}", "reason": str(e)}],
                                 store_version=None)
        if "nothing was written" in str(e) or n:
            raise
        raise type(e)(f"{e}; nothing was written", exit_code=e.exit_code) from None
    store.set_subject_hash(dataset, subject, store.fingerprint_subject(dataset, subject))
    dups = store.duplicate_subjects(dataset, subject)
    # which preprocessing path was taken (CineBrain: preprocessed release, raw, or our own layout)
    notes = {"preprocessing": data.qc["preprocessing"]} if "preprocessing" in data.qc else {}
    notes.update({"duplicate_of": dups} if dups else {})
    store.catalog.finish_job(job, n_ok=n, n_failed=0, n_skipped=0, errors=[], store_version=None, notes=notes or None)
    return FmriReport(dataset, subject, data.n_voxels, data.n_tr, data.n_samples, data.qc, missing,
                      time.perf_counter() - t0, dups)
