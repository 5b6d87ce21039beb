"""What sources hand to the store: clip specs and fMRI sample batches.

Sources produce these; `cineneuron.store` writes them. Keeping them here (numpy only) lets a
source, the simulator and the store agree on ids without importing each other.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np

SPLITS = ("train", "test", "pool")


def clip_id(source: str, video: str, start_s: float, end_s: float) -> str:
    """Stable id of a clip: a hash of source, video path (relative to the dataset root), start, end.

    Times are rounded to the millisecond so float noise never changes an id.
    """
    key = f"{source}|{video}|{start_s:.3f}|{end_s:.3f}"
    return hashlib.sha1(key.encode()).hexdigest()[:20]


@dataclass
class ClipSpec:
    """One clip a source offers for ingest.

    video: path relative to the dataset root (part of the id); video_uri: where to read it.
    """

    source: str
    video: str
    video_uri: str
    start_s: float
    end_s: float
    caption: str | None = None
    labels: list[str] | None = None  # superclass names; None means "derive from the caption"
    split: str = "pool"
    factors: dict = field(default_factory=dict)  # ground truth where known (synth)

    @property
    def clip_id(self) -> str:
        return clip_id(self.source, self.video, self.start_s, self.end_s)


@dataclass
class FmriBatch:
    """A batch of fMRI samples of one subject, aligned to clips.

    voxels: (N, n_tr, n_voxels) float; n_tr and n_voxels are fixed per subject.
    repeat: the repeat index, or -1 for an average of repeats.
    """

    sample_id: list[str]
    clip_id: list[str]
    split: list[str]
    repeat: np.ndarray  # (N,) int
    tr_index: np.ndarray  # (N,) int, TR of the clip's onset within its run
    voxels: np.ndarray  # (N, n_tr, n_voxels)

    def __len__(self) -> int:
        return len(self.sample_id)

    def check(self) -> None:
        n = len(self.sample_id)
        if not (len(self.clip_id) == len(self.split) == len(self.repeat) == len(self.tr_index) == n):
            raise ValueError("FmriBatch fields have different lengths")
        if self.voxels.ndim != 3 or self.voxels.shape[0] != n:
            raise ValueError(f"voxels must be (N, n_tr, n_voxels) with N={n}, got {self.voxels.shape}")
