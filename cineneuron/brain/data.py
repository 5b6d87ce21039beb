"""Stage-1 batches streamed from the store.

fMRI rows are streamed from Lance (never the whole table in memory); the clip targets they pair
with (per-frame image embeddings, text, action, labels) are read once per clip id, since the
pool of clips is far smaller than the fMRI. Shuffling uses a seeded buffer, so a run is
reproducible and resumable by epoch.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from cineneuron.store import Store
from cineneuron.store.rows import fixed_to_numpy, tensor_to_numpy


@dataclass
class ClipTargets:
    """Targets of every clip some sample needs, as row-aligned arrays."""

    ids: list[str]
    row: dict[str, int]
    img_frames: np.ndarray  # (N, T, d_img)
    txt: np.ndarray  # (N, d_txt)
    act: np.ndarray  # (N, d_act)
    label_vec: np.ndarray  # (N, 15)
    mix: np.ndarray  # (N, d_mix)

    def take(self, clip_ids: list[str]) -> dict[str, np.ndarray]:
        r = np.array([self.row[c] for c in clip_ids])
        return {"img_frames": self.img_frames[r], "txt": self.txt[r], "act": self.act[r],
                "label_vec": self.label_vec[r], "mix": self.mix[r], "clip_row": r}


def load_targets(store: Store, clip_ids: list[str]) -> ClipTargets:
    tbl = store.get_clips(list(dict.fromkeys(clip_ids)), ["img_frames", "txt", "act", "label_vec", "mix"])
    ids = tbl.column("clip_id").to_pylist()
    return ClipTargets(
        ids=ids, row={c: i for i, c in enumerate(ids)},
        img_frames=tensor_to_numpy(tbl.column("img_frames")).astype(np.float32),
        txt=fixed_to_numpy(tbl.column("txt")), act=fixed_to_numpy(tbl.column("act")),
        label_vec=fixed_to_numpy(tbl.column("label_vec")), mix=fixed_to_numpy(tbl.column("mix")))


def sample_clip_ids(store: Store, dataset: str, subject: str, split: str | None = None) -> list[str]:
    return store.fmri_column(dataset, subject, "clip_id", split)


ROUTER_BLOCK_S = 20.0  # neighbouring clips share BOLD (the response outlasts a clip): hold out whole blocks


def router_fold(store: Store, clip_ids: list[str], frac: float, seed: int) -> set[str]:
    """The training clips kept out of every backbone update, for fitting the MoM router.

    The router must learn how far to trust each space from predictions like the ones it will
    see at test time. On clips the backbone was fitted to, every space retrieves its own clip
    (top-1 near 1.0), so a router fitted there learns nothing about test-time reliability; this
    is the held-out set of stacked generalisation. Blocks of ROUTER_BLOCK_S seconds of one
    video are held out together, chosen by a seeded hash, so the fold is stable across stages.
    """
    if frac <= 0 or not clip_ids:
        return set()
    import hashlib

    tbl = store.get_clips(list(dict.fromkeys(clip_ids)), ["video", "start_s"])
    fold = set()
    for cid, video, start in zip(tbl.column("clip_id").to_pylist(), tbl.column("video").to_pylist(),
                                 tbl.column("start_s").to_pylist()):
        key = f"{seed}|{video}|{int(start // ROUTER_BLOCK_S)}".encode()
        if int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "big") / 2**64 < frac:
            fold.add(cid)
    return fold


def load_split(store: Store, dataset: str, subject: str, split: str, where: str | None = None,
               exclude: set[str] | frozenset = frozenset()) -> dict:
    """A whole split in memory (validation and test sets are small); `exclude` drops clip ids."""
    parts = list(store.iter_fmri(dataset, subject, split=split, batch_size=4096, where=where))
    if exclude:
        parts = [_drop_clips(p, exclude) for p in parts]
    if not parts:
        return {"voxels": np.zeros((0,)), "clip_id": [], "sample_id": [], "repeat": np.zeros(0, int)}
    return {
        "voxels": np.concatenate([p["voxels"] for p in parts]),
        "clip_id": [c for p in parts for c in p["clip_id"]],
        "sample_id": [c for p in parts for c in p["sample_id"]],
        "repeat": np.concatenate([p["repeat"] for p in parts]),
    }


def _drop_clips(part: dict, exclude: set[str] | frozenset) -> dict:
    keep = np.array([c not in exclude for c in part["clip_id"]], bool)
    return {k: ([x for x, m in zip(v, keep) if m] if isinstance(v, list) else v[keep]) for k, v in part.items()}


class StoreBatches:
    """Callable(epoch) -> iterator of batch dicts for the stage-1 trainer.

    Epoch e uses training repeat e % n_repeats, so consecutive epochs see the other repeat.
    Samples of clips in `exclude` are skipped; with `only`, just the samples of those clips are kept.
    """

    def __init__(self, store: Store, dataset: str, subject: str, targets: ClipTargets, *,
                 batch_size: int, seed: int = 0, shuffle_buffer: int = 8192, read_batch: int = 1024,
                 exclude: set[str] | frozenset = frozenset(), only: set[str] | None = None):
        self.store = store
        self.dataset = dataset
        self.subject = str(subject)
        self.targets = targets
        self.batch_size = batch_size
        self.seed = seed
        self.shuffle_buffer = shuffle_buffer
        self.read_batch = read_batch
        self.exclude, self.only = exclude, only
        self.repeats = sorted(set(store.fmri_column(dataset, subject, "repeat", "train"))) or [0]

    def n_batches(self, epoch: int) -> int:
        """Batches epoch `epoch` yields (a ragged last batch of one sample is dropped)."""
        full, rest = divmod(self.n_samples(epoch), self.batch_size)
        return full + (1 if rest >= 2 else 0)

    def n_samples(self, epoch: int) -> int:
        """Training samples epoch `epoch` streams."""
        rep = self.repeats[epoch % len(self.repeats)]
        if self.exclude or self.only is not None:
            n = sum(map(self._wanted, self.store.fmri_column(self.dataset, self.subject, "clip_id", "train", rep)))
        else:
            n = self.store.count_fmri(self.dataset, self.subject, "train", rep)
        return n

    def _rows(self, epoch: int) -> Iterator[tuple[np.ndarray, str]]:
        rep = self.repeats[epoch % len(self.repeats)]
        for b in self.store.iter_fmri(self.dataset, self.subject, split="train", batch_size=self.read_batch, repeat=rep):
            yield from ((v, c) for v, c in zip(b["voxels"], b["clip_id"]) if self._wanted(c))

    def _wanted(self, clip_id: str) -> bool:
        return clip_id not in self.exclude and (self.only is None or clip_id in self.only)

    def _emit(self, rows: list[tuple[np.ndarray, str]]) -> dict:
        import torch

        ids = [c for _, c in rows]
        t = self.targets.take(ids)
        out = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in t.items() if k != "clip_row"}
        out["voxels"] = torch.from_numpy(np.stack([v for v, _ in rows]))  # (B, n_tr, V)
        out["clip_row"] = torch.from_numpy(t["clip_row"])
        out["subject"] = self.subject
        out["clip_id"] = ids
        return out

    def __call__(self, epoch: int) -> Iterator[dict]:
        rng = np.random.default_rng((self.seed, epoch))
        buf: list[tuple[np.ndarray, str]] = []
        pending: list[tuple[np.ndarray, str]] = []
        for row in self._rows(epoch):
            buf.append(row)
            if len(buf) >= self.shuffle_buffer:
                rng.shuffle(buf)
                pending += buf[: len(buf) // 2]
                buf = buf[len(buf) // 2:]
            while len(pending) >= self.batch_size:
                yield self._emit(pending[: self.batch_size])
                pending = pending[self.batch_size:]
        rng.shuffle(buf)
        pending += buf
        # Drop a ragged last batch smaller than 2: InfoNCE needs negatives.
        for i in range(0, len(pending) - 1, self.batch_size):
            chunk = pending[i:i + self.batch_size]
            if len(chunk) >= 2:
                yield self._emit(chunk)
