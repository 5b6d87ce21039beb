"""Per-run preprocessing (trim, non-finite check, detrend, z-score) and clip/response alignment.

All arrays are (time, voxels). Functions are pure: they return new arrays and never print.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from cineneuron.errors import CNError

# A voxel whose detrended std falls below this fraction of its raw std is a pure polynomial
# (or constant): z-scoring it would only amplify rounding noise, so it becomes 0.
_FLAT_RTOL = 1e-6


@dataclass
class RunInfo:
    """What preprocessing found in one run (indices into the run's voxel columns)."""

    run: str
    constant: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    nan: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))


def trim_run(data: np.ndarray, head: int, tail: int, n_keep: int, run: str) -> np.ndarray:
    """Drop `head` volumes at the start and keep the next `n_keep`; `tail` must be there to drop.

    data: (n_vol, V) -> (n_keep, V). A run too short for head + n_keep + tail is a user error.
    """
    n_vol = data.shape[0]
    if n_vol < head + n_keep + tail:
        raise CNError(
            f"run {run} has {n_vol} volumes; trimming needs {head} + {n_keep} + {tail} "
            f"(first dropped + kept + last dropped); check the file or set n_keep"
        )
    return data[head : head + n_keep]


def nonfinite_columns(data: np.ndarray, run: str) -> np.ndarray:
    """Indices of voxels that are NaN/inf at every volume (missing voxels, set to 0 later).

    A voxel that is non-finite at only some volumes cannot be repaired honestly: CNError naming the run.
    """
    bad = ~np.isfinite(data)  # (n_vol, V)
    if not bad.any():
        return np.zeros(0, dtype=np.int64)
    all_bad = bad.all(axis=0)
    partial = bad.any(axis=0) & ~all_bad
    if partial.any():
        vox = np.flatnonzero(partial)
        raise CNError(
            f"run {run}: {len(vox)} voxel(s) have NaN/inf at some volumes (first voxel {vox[0]}); "
            f"fix the file or exclude those voxels with a mask"
        )
    return np.flatnonzero(all_bad)


def detrend(data: np.ndarray, order: int, run: str = "?") -> np.ndarray:
    """Remove a polynomial of `order` in time from every voxel (including its mean).

    data: (n_vol, V) -> (n_vol, V) float64. Legendre basis on [-1, 1] keeps the fit well conditioned.
    """
    n_vol = data.shape[0]
    if order + 1 >= n_vol:
        raise CNError(f"run {run} has {n_vol} volumes, too few to detrend with order {order}; lower detrend_order")
    x = np.linspace(-1.0, 1.0, n_vol)
    basis = np.polynomial.legendre.legvander(x, order)  # (n_vol, order+1)
    q, _ = np.linalg.qr(basis)  # (n_vol, order+1), orthonormal columns
    data = np.asarray(data, dtype=np.float64)
    return data - q @ (q.T @ data)


def zscore(data: np.ndarray, flat: np.ndarray | None = None) -> np.ndarray:
    """Z-score each voxel over time with the sample std (N-1, as MATLAB's zscore in the official
    cc2017 preprocessing); constant voxels (and those flagged in `flat`) become 0.

    data: (n_vol, V) -> (n_vol, V) float64.
    """
    data = np.asarray(data, dtype=np.float64)
    mean = data.mean(axis=0)
    std = data.std(axis=0, ddof=1) if data.shape[0] > 1 else np.zeros(data.shape[1])
    zero = std <= 0
    if flat is not None:
        zero |= flat
    out = (data - mean) / np.where(zero, 1.0, std)
    out[:, zero] = 0.0
    return out


def preprocess_run(data: np.ndarray, run: str, detrend_order: int | None) -> tuple[np.ndarray, RunInfo]:
    """Missing-voxel check, optional polynomial detrend, z-score. (n_vol, V) -> (n_vol, V) float32."""
    nan_cols = nonfinite_columns(data, run)
    data = np.array(data, dtype=np.float64)  # copy: the caller's array stays as read
    data[:, nan_cols] = 0.0
    raw_std = data.std(axis=0)
    flat = raw_std <= 0
    if detrend_order is not None:
        data = detrend(data, detrend_order, run)
        flat |= data.std(axis=0) <= _FLAT_RTOL * raw_std
    out = zscore(data, flat)
    if not np.isfinite(out).all():  # belt and braces: nothing non-finite may leave this function
        raise CNError(f"run {run}: NaN/inf survived preprocessing; check the file")
    flat[nan_cols] = False  # report missing voxels as NaN, not as constant
    info = RunInfo(run=run, constant=np.flatnonzero(flat), nan=nan_cols)
    return out.astype(np.float32), info


def lag_in_trs(lag_s: float, tr: float) -> int:
    """The lag as a whole number of TRs; a lag that is not a multiple of the TR is a user error."""
    n = lag_s / tr
    if abs(n - round(n)) > 1e-6:
        raise CNError(f"lag {lag_s} s is not a whole number of TRs of {tr} s; choose a multiple of the TR")
    return int(round(n))


def align_tr_clips(n_clips: int, n_vol: int, lag_tr: int, n_tr: int) -> tuple[np.ndarray, np.ndarray]:
    """Clip at TR t pairs with response volumes [t+lag, t+lag+n_tr); clips running past the end drop.

    Returns (tr_index (K,), response_start (K,)).
    """
    t = np.arange(n_clips)
    keep = t + lag_tr + n_tr <= n_vol
    t = t[keep]
    return t, t + lag_tr


def time_to_tr(t_s: float, tr: float) -> int:
    """The first TR whose onset is at or after time t_s (a small tolerance absorbs float noise)."""
    return int(np.ceil(t_s / tr - 1e-6))


# --- aligned samples --------------------------------------------------------------------------


@dataclass
class Run:
    """One preprocessed run (or an average of repeats) with the clips it answers.

    data: (n_vol, n_voxels) float32, the selected voxels. Clip k pairs with the response volumes
    [response_start[k], response_start[k] + n_tr).
    """

    name: str
    split: str
    repeat: int  # -1 for an average of repeats
    data: np.ndarray  # (n_vol, n_voxels)
    tr_index: np.ndarray  # (K,) int, TR of the clip's onset within its run
    response_start: np.ndarray  # (K,) int
    clip_ids: list[str]


@dataclass
class SubjectData:
    """A subject's aligned samples plus the mask and QC that produced them.

    Samples are cut from the runs on demand (`batches`), so an n_tr window never copies a run.
    """

    source: str
    subject: int | str
    n_tr: int
    mask: np.ndarray  # (n_source_voxels,) bool
    mask_hash: str
    qc: dict
    reliability: np.ndarray | None  # (n_voxels,) mean repeat correlation per selected voxel
    runs: list[Run]

    @property
    def n_voxels(self) -> int:
        return int(self.mask.sum())

    @property
    def n_samples(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for run in self.runs:
            out[run.split] = out.get(run.split, 0) + len(run.clip_ids)
        return out

    def sample_id(self, run: str, t: int, repeat: int) -> str:
        rep = "avg" if repeat < 0 else str(repeat)
        return f"{self.source}-sub{self.subject}-{run}-t{t:03d}-r{rep}"

    def batches(self, batch_size: int = 256, split: str | None = None):
        """Yield FmriBatch of at most batch_size samples, runs in order (train first)."""
        from cineneuron.schemas.records import FmriBatch

        if batch_size <= 0:
            raise ValueError("batch_size must be positive")
        parts: list[tuple[Run, np.ndarray]] = []
        filled = 0
        for run in self.runs:
            if split is not None and run.split != split:
                continue
            pos, n = 0, len(run.clip_ids)
            while pos < n:  # a run may straddle batches
                take = min(batch_size - filled, n - pos)
                parts.append((run, np.arange(pos, pos + take)))
                filled += take
                pos += take
                if filled == batch_size:
                    yield self._batch(parts, FmriBatch)
                    parts, filled = [], 0
        if parts:
            yield self._batch(parts, FmriBatch)

    def _batch(self, parts, FmriBatch):
        win = np.arange(self.n_tr)
        voxels, sid, cid, spl, rep, tri = [], [], [], [], [], []
        for run, idx in parts:
            rows = run.response_start[idx][:, None] + win  # (k, n_tr)
            voxels.append(run.data[rows])  # (k, n_tr, n_voxels)
            for i in idx:
                t = int(run.tr_index[i])
                sid.append(self.sample_id(run.name, t, run.repeat))
                cid.append(run.clip_ids[i])
            spl += [run.split] * idx.size
            rep.append(np.full(idx.size, run.repeat, dtype=np.int64))
            tri.append(run.tr_index[idx].astype(np.int64))
        batch = FmriBatch(
            sample_id=sid, clip_id=cid, split=spl, repeat=np.concatenate(rep),
            tr_index=np.concatenate(tri), voxels=np.concatenate(voxels).astype(np.float32),
        )
        batch.check()
        return batch
